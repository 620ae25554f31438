"""The terminal progress bar: Lightning's tqdm bar, redrawn a few times a second instead of every step.

Lightning's ``TQDMProgressBar`` at its default ``refresh_rate`` of 1 formats the metrics and
redraws the bar after every step, forcing the redraw past tqdm's own ``mininterval``: about a
millisecond of Python a step (``docs/lab-notes.md``), which a GPU step of a few milliseconds
cannot hide. A fixed larger ``refresh_rate`` would leave a CPU run, seconds a step, without an
update for a minute; so the bar is gated by time instead. The scores it shows come straight from
``metrics.ScoreLogger`` rather than through ``LightningModule.log``, which costs milliseconds a call.
"""

from __future__ import annotations

import time

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import TQDMProgressBar
from typing_extensions import override

from maxclass_lightning.errors import is_number, require
from maxclass_lightning.metrics import ScoreLogger

#: Least time between two redraws of the training bar, seconds.
REDRAW_SECONDS = 0.25


class ProgressBar(TQDMProgressBar):
    """``TQDMProgressBar`` that redraws the training bar at most every ``redraw_seconds`` (and
    at the last step), and otherwise as Lightning's (``refresh_rate`` still applies), with the
    latest logged scores."""

    def __init__(self, *args, redraw_seconds: float = REDRAW_SECONDS, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        require(is_number(redraw_seconds, 0), "ProgressBar.redraw_seconds", redraw_seconds, "seconds, e.g. 0.25")
        self.redraw_seconds = redraw_seconds
        self.drawn_at = float("-inf")

    @override
    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs, batch, batch_idx: int) -> None:
        now = time.monotonic()
        total = self.train_progress_bar.total if self.train_progress_bar is not None else None
        last = 0 <= trainer.max_steps <= trainer.global_step or (total is not None and batch_idx + 1 >= total)
        if now - self.drawn_at < self.redraw_seconds and not last:
            return
        self.drawn_at = now
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    @override
    def get_metrics(
        self, trainer: Trainer, pl_module: LightningModule
    ) -> dict[str, int | str | float | dict[str, float]]:
        items = super().get_metrics(trainer, pl_module)
        for callback in trainer.callbacks:
            if isinstance(callback, ScoreLogger):
                items.update(callback.latest)
        return items


def replacing_default(trainer: Trainer) -> list[ProgressBar]:
    """A ``ProgressBar`` to take the place of the Trainer's default tqdm bar (Lightning replaces a
    callback by one of a subclass that ``configure_callbacks`` returns); none when the bar is
    off or is the user's own."""
    bar = trainer.progress_bar_callback
    if type(bar) is not TQDMProgressBar:
        return []
    return [ProgressBar(refresh_rate=bar.refresh_rate, process_position=bar.process_position)]
