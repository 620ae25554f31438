"""When things happen in a run, counted in optimizer steps: the logging interval, and "the run's
last N steps" for the options that act at the end of a run (``exact_view_steps``, ``average_steps``)."""

from __future__ import annotations

import math

from lightning.pytorch import Trainer


def log_interval(trainer: Trainer) -> int:
    """``trainer.log_every_n_steps``, with 0 (never) read as once per run: the steps at which
    scalars are logged and processes agree on a stop (a collective)."""
    return trainer.log_every_n_steps or trainer.max_steps


def is_log_step(trainer: Trainer) -> bool:
    """Every ``log_interval`` steps, counting from the first."""
    return trainer.global_step % log_interval(trainer) == 0


def first_of_last(steps: int | float, max_steps: int) -> float:
    """The first step of a run's last ``steps``: a whole number of steps, or a float fraction of
    ``max_steps`` (as Lightning's ``limit_*_batches``), so that a recipe's share survives a
    shortened or lengthened run; infinite for none."""
    count = round(steps * max_steps) if isinstance(steps, float) else steps
    return max(0, max_steps - count) if count > 0 else math.inf


def is_fraction_or_count(value: object) -> bool:
    """A whole number of steps, 0 or more, or a finite fraction in [0, 1]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if isinstance(value, int):
        return value >= 0
    return math.isfinite(value) and 0 <= value <= 1
