"""Range checks of the command line's options, before anything is built or written.

The config parser checks types; this checks values, so that a bad one ends in a line naming the
option, the value and what to give instead, not in a traceback or a run that silently does
something else. Lightning checks some Trainer options itself, but several only when fit starts
(after the run folder is written), some not at all (a negative ``log_every_n_steps``), and this
app gives some a narrower meaning (``max_steps`` is the number of optimizer steps, so nothing may
cut the one epoch of steps short). Options whose value is a class (the image, views, optimizer,
callbacks) are checked by that class when it is built, still before anything is written.
``tests/test_validation.py`` walks every option of ``fit --help`` and fails for one without a check.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from jsonargparse.typing import import_object

from maxclass_lightning.errors import ConfigError

#: Seeds ``seed_everything`` accepts: numpy's seed range (Lightning replaces others with a random seed).
MAX_SEED = 2**32 - 1

#: Trainer accelerators that need a device this machine may not have.
DEVICE_ACCELERATORS = {"gpu": "cuda", "cuda": "cuda", "mps": "mps"}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def at_least(low: int) -> Callable[[Any], bool]:
    return lambda value: _is_int(value) and value >= low


def optional(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda value: value is None or check(value)


def fraction_or_count(value: Any) -> bool:
    """Lightning's ``limit_*_batches``: a fraction in [0, 1] or a whole number of batches."""
    return value is None or (_is_int(value) and value >= 0) or (_is_number(value) and 0 <= value <= 1)


_DURATION = re.compile(r"^\d+:\d{1,2}:\d{1,2}:\d{1,2}$")

#: Accelerator names Lightning knows.
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps", "tpu")


def duration(value: Any) -> bool:
    """Lightning's time options: ``DD:HH:MM:SS``, or a mapping of non-negative whole units."""
    if isinstance(value, str):
        return bool(_DURATION.match(value))
    if isinstance(value, dict):
        units = {"days", "hours", "minutes", "seconds", "milliseconds", "microseconds", "weeks"}
        return set(value) <= units and all(at_least(0)(v) for v in value.values())
    return False


def devices(value: Any) -> bool:
    """A positive count, -1 (all), ``auto``, a list of device indices, or ``"0,1"``."""
    if _is_int(value):
        return value >= 1 or value == -1
    if isinstance(value, list):
        return len(value) > 0 and all(at_least(0)(v) for v in value)
    if isinstance(value, str):
        return value == "auto" or bool(re.match(r"^-1$|^[1-9]\d*$|^\d+(,\d+)+,?$|^\d+,$", value.strip()))
    return False


@dataclass(frozen=True)
class Rule:
    """``check(value)`` is true for a valid value; ``expected`` completes "give ..."."""

    check: Callable[[Any], bool]
    expected: str


#: Options checked here, by their key in the parsed ``fit`` config (``model.*`` options are
#: checked by ``ClassVisualizer`` itself, so that the Python API gets the same messages).
RULES: dict[str, Rule] = {
    "seed_everything": Rule(
        lambda v: isinstance(v, bool) or (_is_int(v) and 0 <= v <= MAX_SEED), f"a seed from 0 to {MAX_SEED}"
    ),
    "trainer.max_steps": Rule(at_least(1), "the number of optimizer steps, e.g. 200"),
    "trainer.accelerator": Rule(
        lambda v: not isinstance(v, str) or v.lower() in ACCELERATORS, f"one of {', '.join(ACCELERATORS)}"
    ),
    "trainer.devices": Rule(devices, "a number of devices, -1 for all, auto, or a list of device indices"),
    "trainer.max_time": Rule(optional(duration), "null or a duration as DD:HH:MM:SS, e.g. 00:12:00:00"),
    "trainer.num_nodes": Rule(at_least(1), "the number of machines, 1 or more"),
    "trainer.log_every_n_steps": Rule(optional(at_least(0)), "steps between logged scalars, e.g. 10 (0: at the end)"),
    "trainer.fast_dev_run": Rule(lambda v: isinstance(v, bool) or at_least(0)(v), "true, false or a number of steps"),
    # One epoch holds all max_steps steps: an epoch limit may be absent, -1 or at least 1.
    "trainer.max_epochs": Rule(
        lambda v: v is None or v == -1 or at_least(1)(v), "null, -1 or 1 (the steps are one epoch)"
    ),
    "trainer.min_epochs": Rule(optional(lambda v: v in (0, 1)), "null, 0 or 1 (the steps are one epoch)"),
    "trainer.min_steps": Rule(optional(at_least(0)), "null or a number of steps up to trainer.max_steps"),
    "trainer.limit_train_batches": Rule(
        lambda v: v is None or v == 1.0 or (_is_int(v) and v >= 1 and not isinstance(v, bool)),
        "null or 1.0 (trainer.max_steps sets the length of a run)",
    ),
    "trainer.limit_val_batches": Rule(fraction_or_count, "a fraction in [0, 1] or a number of batches (unused here)"),
    "trainer.limit_test_batches": Rule(fraction_or_count, "a fraction in [0, 1] or a number of batches (unused here)"),
    "trainer.limit_predict_batches": Rule(
        fraction_or_count, "a fraction in [0, 1] or a number of batches (unused here)"
    ),
    "trainer.overfit_batches": Rule(lambda v: v == 0, "0 (every step already sees the same work)"),
    "trainer.val_check_interval": Rule(
        lambda v: v is None or (_is_number(v) and v > 0) or duration(v),
        "null or a positive interval (unused here: there is no validation)",
    ),
    "trainer.check_val_every_n_epoch": Rule(optional(at_least(1)), "null or a positive number of epochs (unused)"),
    "trainer.num_sanity_val_steps": Rule(optional(at_least(-1)), "null, -1 or a number of steps (unused here)"),
    "trainer.accumulate_grad_batches": Rule(lambda v: v == 1, "1 (each step already sums the whole work)"),
    # The image is optimized by hand (one step over all forward passes), which Lightning's clipping
    # does not support; AdamW's update is already bounded by its learning rate.
    "trainer.gradient_clip_val": Rule(
        lambda v: v is None or v == 0, "null or 0 (no clipping: the image's optimizer steps by hand)"
    ),
    "trainer.gradient_clip_algorithm": Rule(lambda v: v in (None, "norm", "value"), "null, norm or value"),
    "trainer.reload_dataloaders_every_n_epochs": Rule(at_least(0), "0 or a number of epochs"),
    "trainer.profiler": Rule(
        lambda v: not isinstance(v, str) or v in ("simple", "advanced", "pytorch"), "simple, advanced or pytorch"
    ),
    "trainer.barebones": Rule(lambda v: v is False, "false (the app logs images and writes checkpoints)"),
    "trainer.model_registry": Rule(lambda v: v is None, "null (no model registry: the classifier is not trained)"),
    "trainer.strategy": Rule(lambda v: not isinstance(v, str) or _known_strategy(v), "auto, ddp, ddp_spawn, fsdp, ..."),
}


def finite(low: float = -math.inf, high: float = math.inf, above: bool = False) -> Callable[[Any], bool]:
    """A finite number in [low, high] (above ``low`` strictly with ``above``)."""
    return lambda v: _is_number(v) and (v > low if above else v >= low) and v <= high


def name_text(value: Any) -> bool:
    """A file or folder name: non-empty, no path separator."""
    return isinstance(value, str) and value.strip() != "" and "/" not in value and "\\" not in value


def zoom_range(value: Any) -> bool:
    """Two positive zoom factors, the smaller first."""
    pair = isinstance(value, (list, tuple)) and len(value) == 2 and all(_is_number(x) for x in value)
    return pair and 0 < value[0] <= value[1]


def any_value(value: Any) -> bool:
    """For options where every value of the right type is valid (a boolean, a free label): the
    parser's type check is the whole check."""
    return True


#: Options the view transforms share.
OUTPUT_SIZE = Rule(optional(at_least(1)), "the classifier's input side in pixels, e.g. 224, or null")
COLOR_SHIFT = Rule(finite(0, 10), "a non-negative shift, e.g. 0.1 (0: off)")
NOISE = Rule(finite(0, 1), "a noise level in [0, 1], e.g. 0.05 (0: none)")
#: Option the spectral image parameterizations share.
SATURATION = Rule(finite(0, 10), "a colour factor from 0 (grey) to 10, e.g. 1.0 (ImageNet's colour balance)")

#: The options of the classes the configs name, by class import path and ``init_args`` key.
#: Torch's optimizers check their own options when built (``ClassVisualizer`` builds one first).
CLASS_RULES: dict[str, dict[str, Rule]] = {
    "maxclass_lightning.images.FourierImage": {
        "decay": Rule(finite(0), "a non-negative exponent, e.g. 1.0"),
        "init_std": Rule(finite(0), "a non-negative standard deviation, e.g. 0.01"),
        "gain": Rule(finite(0, above=True), "a positive factor, e.g. 0.25"),
        "decorrelate": Rule(any_value, "true or false"),
        "saturation": SATURATION,
    },
    "maxclass_lightning.images.PhaseImage": {
        "decay": Rule(finite(0), "a non-negative exponent, e.g. 1.0"),
        "contrast": Rule(finite(0, above=True), "a positive standard deviation, e.g. 1.7"),
        "decorrelate": Rule(any_value, "true or false"),
        "margin": Rule(lambda v: _is_number(v) and 0 <= v < 1, "a fraction of the side in [0, 1), e.g. 0.125"),
        "saturation": SATURATION,
        "phase_rate": Rule(finite(0, 4), "a non-negative exponent up to 4, e.g. 0.5 (0: every phase alike)"),
    },
    "maxclass_lightning.transforms.RandomViews": {
        "pad": Rule(finite(0, 1), "a fraction of the side in [0, 1], e.g. 0.05"),
        "jitter": Rule(finite(0, 1), "a fraction of the side in [0, 1], e.g. 0.05"),
        "scale": Rule(
            lambda v: (
                isinstance(v, (list, tuple)) and len(v) == 2 and all(_is_number(x) for x in v) and 0 < v[0] <= v[1]
            ),
            "two positive zoom factors, smallest first, e.g. [0.9, 1.1]",
        ),
        "rotate": Rule(finite(0, 180), "a largest angle in degrees from 0 to 180, e.g. 10"),
        "fill": Rule(finite(), "a finite value, e.g. 0.5"),
        "color_shift": COLOR_SHIFT,
        "blur": Rule(finite(0, 16), "a largest blur in view pixels from 0 to 16, e.g. 1.0 (0: none)"),
        "noise": NOISE,
        "output_size": OUTPUT_SIZE,
    },
    "maxclass_lightning.transforms.CropViews": {
        "box": Rule(
            lambda v: (
                isinstance(v, (list, tuple)) and len(v) == 2 and all(_is_number(x) for x in v) and 0 < v[0] <= v[1] <= 1
            ),
            "two fractions of the canvas side in (0, 1], smallest first, e.g. [0.25, 0.5]",
        ),
        "noise": NOISE,
        "color_shift": COLOR_SHIFT,
        "output_size": OUTPUT_SIZE,
    },
    "maxclass_lightning.transforms.Resize": {
        "output_size": OUTPUT_SIZE,
    },
    "maxclass_lightning.display.Display": {
        "upsample": Rule(finite(0, 16, above=True), "a positive scale factor up to 16, e.g. 2 (1: none)"),
        "sharpness": Rule(optional(finite(0)), "a non-negative sharpness factor (0: smooth) or null"),
        "rescale": Rule(lambda v: v in ("minmax", "clamp"), "minmax or clamp"),
    },
    "maxclass_lightning.callbacks.ImageLogger": {
        "every_n_steps": Rule(optional(at_least(1)), "a positive number of steps or null"),
        "snapshots": Rule(at_least(1), "a positive number of snapshots, e.g. 20"),
        "max_class_tags": Rule(at_least(0), "a number of classes, 0 or more"),
        "upsample": Rule(any_value, "true or false"),
    },
    "maxclass_lightning.callbacks.ImageExport": {
        "dirname": Rule(name_text, "a folder name inside the run, e.g. images"),
    },
    "maxclass_lightning.callbacks.DivergenceGuard": {
        "every_n_steps": Rule(optional(at_least(1)), "a positive number of steps or null"),
    },
    "maxclass_lightning.checkpoints.InterruptCheckpoint": {
        "filename": Rule(name_text, "a file name, e.g. last.ckpt"),
    },
    "maxclass_lightning.checkpoints.PeriodicCheckpoint": {
        "every_n_minutes": Rule(optional(finite(0, above=True)), "a positive number of minutes, e.g. 10, or null"),
        "every_n_steps": Rule(optional(at_least(1)), "a positive number of steps or null"),
        "background": Rule(any_value, "true or false"),
    },
    "lightning.pytorch.loggers.TensorBoardLogger": {
        "save_dir": Rule(lambda v: isinstance(v, str) and v.strip() != "", "a folder for the runs, e.g. runs"),
        "name": Rule(optional(name_text), "a run name without a path separator, e.g. quick"),
        "version": Rule(
            lambda v: v is None or (at_least(0)(v)) or name_text(v), "null (the next free one), a number or a name"
        ),
        "log_graph": Rule(lambda v: v is False, "false (the classifier's graph is not what a run shows)"),
        "default_hp_metric": Rule(any_value, "true or false"),
        "prefix": Rule(any_value, "a prefix for the scalar tags"),
        "sub_dir": Rule(optional(name_text), "a folder name or null"),
        "comment": Rule(lambda v: isinstance(v, str), "a suffix for the event file's folder"),
        "purge_step": Rule(optional(at_least(0)), "null or a step, 0 or more"),
        "max_queue": Rule(at_least(1), "a positive number of pending events, e.g. 10"),
        "flush_secs": Rule(finite(0, above=True), "a positive number of seconds, e.g. 120"),
        "filename_suffix": Rule(lambda v: isinstance(v, str), "a suffix for the event file name"),
    },
}


def class_of(spec: Any) -> Any:
    """The class a ``class_path`` option names, or None."""
    class_path = spec.get("class_path") if spec is not None and hasattr(spec, "get") else None
    try:
        return import_object(class_path) if class_path else None
    except (ImportError, AttributeError, ValueError):
        return None


def rules_of(cls: Any) -> dict[str, Rule] | None:
    """``CLASS_RULES`` of a class, matched by the class object (import paths differ by re-exports)."""
    for class_path, rules in CLASS_RULES.items():
        if cls is not None and import_object(class_path) is cls:
            return rules
    return None


def check_class_options(option: str, spec: Any, init_args_key: str = ".init_args") -> None:
    """``ConfigError`` for the first ``init_args`` entry of a class option that breaks its rule."""
    rules = rules_of(class_of(spec)) or {}
    init_args = (spec.get("init_args") if rules else None) or {}
    for key, rule in rules.items():
        if key in init_args and not rule.check(init_args[key]):
            raise ConfigError(f"{option}{init_args_key}.{key} is {init_args[key]!r}; give {rule.expected}")


def _known_strategy(name: str) -> bool:
    from lightning.pytorch.strategies import StrategyRegistry

    return name == "auto" or name in StrategyRegistry.available_strategies()


def lookup(config: Any, key: str) -> Any:
    """``config``'s value at a dotted key (a namespace), or ``KeyError``."""
    value = config
    for part in key.split("."):
        value = value[part]
    return value


def check(config: Any) -> None:
    """``ConfigError`` for the first option of the parsed ``fit`` config that breaks its rule,
    or that asks for hardware this machine does not have."""
    for key, rule in RULES.items():
        try:
            value = lookup(config, key)
        except KeyError:
            continue
        if not rule.check(value):
            raise ConfigError(f"{key} is {value!r}; give {rule.expected}")
    model, trainer = config.model, config.trainer
    for key in ("image", "transforms", "optimizer"):
        check_class_options(f"model.{key}", model.get(key))
    if model.get("display") is not None:  # a dataclass option: its fields, without init_args
        display = {"class_path": "maxclass_lightning.display.Display", "init_args": model.display}
        check_class_options("model.display", display, init_args_key="")
    for index, callback in enumerate(trainer.callbacks or []):
        check_class_options(f"trainer.callbacks[{index}]", callback)
    loggers = trainer.logger if isinstance(trainer.logger, list) else [trainer.logger]
    for logger in loggers:
        check_class_options("trainer.logger", logger)
    if trainer.min_steps is not None and trainer.min_steps > trainer.max_steps:
        raise ConfigError(
            f"trainer.min_steps is {trainer.min_steps}, more than trainer.max_steps ({trainer.max_steps}); "
            "give at most max_steps or null"
        )
    check_accelerator(trainer.accelerator, trainer.devices)


def check_accelerator(accelerator: Any, devices: Any) -> None:
    """The named device type exists here, with enough devices for an explicit count."""
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
