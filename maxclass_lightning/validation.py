"""Range checks of the Trainer options that Lightning accepts but this app cannot run with.

The parser checks types, and the constructors check ranges where each option is defined: the
app's own classes raise ``ConfigError``, and Lightning's Trainer refuses a bad accelerator,
strategy, device count or time limit when it is built (``cli`` turns that into one line). Left
here are the Trainer options Lightning takes without a word or checks only once fit has started:
a negative ``log_every_n_steps``, a seed it would replace with a random one, and the options
this app gives a narrower meaning (``max_steps`` is the number of optimizer steps, so nothing
may cut the one epoch of steps short; the image steps by hand, so no accumulation or clipping).
``tests/test_validation.py`` walks every option of ``fit --help`` with a bad value.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import torch

from maxclass_lightning.errors import ConfigError
from maxclass_lightning.parse_errors import KINDS

#: Seeds ``seed_everything`` accepts: numpy's seed range (Lightning replaces others with a random seed).
MAX_SEED = 2**32 - 1

#: Most optimizer steps: the step loader's length must fit an index (``sys.maxsize`` on 64 bits).
MAX_STEPS = 2**63 - 1

#: Trainer accelerators that need a device this machine may not have.
DEVICE_ACCELERATORS = {"gpu": "cuda", "cuda": "cuda", "mps": "mps"}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _at_least(low: int, none: bool = False) -> Callable[[Any], bool]:
    return lambda value: (none and value is None) or (_is_int(value) and value >= low)


#: Lightning's ``max_time``: ``DD:HH:MM:SS`` (its own refusal names neither the option nor the form).
_DURATION = re.compile(r"^\d+:\d{1,2}:\d{1,2}:\d{1,2}$")
_UNITS = {"days", "hours", "minutes", "seconds", "milliseconds", "microseconds", "weeks"}


def _duration(value: Any) -> bool:
    if isinstance(value, dict):
        return set(value) <= _UNITS and all(_at_least(0)(v) for v in value.values())
    return value is None or (isinstance(value, str) and bool(_DURATION.match(value)))


#: Option (its key in the parsed ``fit`` config) -> (check, what to give instead).
RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "seed_everything": (
        lambda v: isinstance(v, bool) or (_is_int(v) and 0 <= v <= MAX_SEED),
        f"a seed from 0 to {MAX_SEED}",
    ),
    "trainer.max_steps": (lambda v: _at_least(1)(v) and v <= MAX_STEPS, "the number of optimizer steps, e.g. 200"),
    "trainer.max_time": (_duration, "null or a duration as DD:HH:MM:SS, e.g. 00:12:00:00"),
    "trainer.log_every_n_steps": (_at_least(0, none=True), "steps between logged scalars, e.g. 10 (0: at the end)"),
    # One epoch holds all max_steps steps: an epoch limit may be absent, -1 or at least 1.
    "trainer.max_epochs": (lambda v: v in (None, -1) or _at_least(1)(v), "null, -1 or 1 (the steps are one epoch)"),
    "trainer.min_epochs": (lambda v: v in (None, 0, 1), "null, 0 or 1 (the steps are one epoch)"),
    "trainer.min_steps": (_at_least(0, none=True), "null or a number of steps up to trainer.max_steps"),
    "trainer.limit_train_batches": (
        lambda v: v is None or v == 1.0 or _at_least(1)(v),
        "null or 1.0 (trainer.max_steps sets the length of a run)",
    ),
    "trainer.overfit_batches": (lambda v: v == 0, "0 (every step already sees the same work)"),
    # Fit has no validation; a count of batches beyond the run's steps stops Lightning once fit starts.
    "trainer.val_check_interval": (
        lambda v: v is None or (isinstance(v, float) and 0 < v <= 1),
        "null or a fraction in (0, 1] such as 1.0 (unused: fit has no validation)",
    ),
    "trainer.check_val_every_n_epoch": (_at_least(1, none=True), "null or a positive number of epochs (unused)"),
    "trainer.num_sanity_val_steps": (_at_least(-1, none=True), "null, -1 or a number of steps (unused here)"),
    "trainer.accumulate_grad_batches": (lambda v: v == 1, "1 (each step already sums the whole work)"),
    # The image is optimized by hand (one step over all forward passes), which Lightning's clipping
    # does not support; AdamW's update is already bounded by its learning rate.
    "trainer.gradient_clip_val": (
        lambda v: v in (None, 0),
        "null or 0 (no clipping: the image's optimizer steps by hand)",
    ),
    "trainer.barebones": (lambda v: v is False, "false (the app logs images and writes checkpoints)"),
    # The module yields its own work items (``data``); a data module would replace them.
    "data": (lambda v: v is None, "null (the module makes its own work items each step)"),
    "trainer.model_registry": (lambda v: v is None, "null (no model registry: the classifier is not trained)"),
}


def check(config: Any) -> None:
    """``ConfigError`` for the first option of the parsed ``fit`` config that breaks its rule,
    or that asks for hardware this machine does not have."""
    for key, (valid, expected) in RULES.items():
        section, _, name = key.rpartition(".")
        value = (config[section] if section else config)[name]
        if not valid(value):
            shown = getattr(value, "class_path", None) or repr(value)  # a class by its path, not the parser's namespace
            raise ConfigError(f"{key} is {shown}; give {expected}")
    for name in ("optimizer", "lr_scheduler", "image", "transforms"):
        # An empty mapping ({}) for an optional class option parses as the class path typing.Union.
        if str(getattr(config.model[name], "class_path", "")).startswith("typing."):
            raise ConfigError(f"model.{name} names no class; give {KINDS[f'model.{name}']}")
    trainer = config.trainer
    if trainer.min_steps is not None and trainer.min_steps > trainer.max_steps:
        raise ConfigError(
            f"trainer.min_steps is {trainer.min_steps}, more than trainer.max_steps ({trainer.max_steps}); "
            "give at most max_steps or null"
        )
    check_accelerator(trainer.accelerator, trainer.devices)
    for logger in trainer.logger if isinstance(trainer.logger, list) else [trainer.logger]:
        check_summary_writer(getattr(logger, "init_args", None) or {})


#: ``TensorBoardLogger`` passes these on to TensorBoard's ``SummaryWriter``, whose signature has no
#: types for the parser to check: a wrong one ends in a traceback from its writer thread mid-run.
SUMMARY_WRITER_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "max_queue": (_at_least(1), "a positive number of pending events, e.g. 10"),
    "flush_secs": (
        lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0,
        "a positive number of seconds, e.g. 120",
    ),
    "purge_step": (_at_least(0, none=True), "null or a step, 0 or more"),
    "comment": (lambda v: isinstance(v, str), "a suffix for the event file's folder"),
    "filename_suffix": (lambda v: isinstance(v, str), "a suffix for the event file name"),
}


def check_summary_writer(init_args: Any) -> None:
    for key, (valid, expected) in SUMMARY_WRITER_RULES.items():
        if key in init_args and not valid(init_args[key]):
            raise ConfigError(f"trainer.logger.init_args.{key} is {init_args[key]!r}; give {expected}")


def check_accelerator(accelerator: Any, devices: Any) -> None:
    """The named device type exists here, with enough devices for an explicit count (Lightning
    refuses both too, in words that name neither the option nor the fix)."""
    if not isinstance(accelerator, str):
        return
    kind = DEVICE_ACCELERATORS.get(accelerator.lower())
    if kind == "cuda":
        available = torch.cuda.device_count()
    elif kind == "mps":
        available = int(torch.backends.mps.is_available())
    else:
        return
    if available == 0:
        raise ConfigError(
            f"trainer.accelerator is {accelerator} but this machine has no {accelerator.upper()}; "
            "use --trainer.accelerator cpu (or auto, which picks what is there)"
        )
    if _is_int(devices) and devices > available:
        raise ConfigError(
            f"trainer.devices is {devices} but this machine has {available} {accelerator.upper()}(s); "
            f"give at most {available}, or -1 for all"
        )
