"""The exceptions that reach the user as a one-line message instead of a traceback, and the one
way options check their ranges: where the option is defined, so the command line, a YAML file and
the Python API all get the same message."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any


class ConfigError(ValueError):
    """A problem with what the user asked for (exit code 2); the message names it and the fix."""


class RunError(RuntimeError):
    """A run that could not finish (exit code 1), its finished work already saved; the message
    says what happened, where the work is, and what to change."""


@contextlib.contextmanager
def about(option: str) -> Iterator[None]:
    """A ``ConfigError`` raised inside names ``option`` first (``model.classes: ...``)."""
    try:
        yield
    except ConfigError as error:
        raise ConfigError(f"{option}: {error}") from None


def require(valid: bool, option: str, value: Any, expected: str) -> None:
    """``ConfigError("<option> is <value>; give <expected>")`` unless ``valid``."""
    if not valid:
        raise ConfigError(f"{option} is {value!r}; give {expected}")


def is_number(value: Any, low: float = -math.inf, high: float = math.inf, above: bool = False) -> bool:
    """A finite int or float (not a bool) in [low, high], or in (low, high] with ``above``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return False
    return (value > low if above else value >= low) and value <= high


def is_count(value: Any, low: int = 0, high: float = math.inf) -> bool:
    """A whole number (not a bool) in ``[low, high]``."""
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def is_zoom_range(value: Any, high: float = math.inf) -> bool:
    """Two finite factors, the smaller first: ``0 < value[0] <= value[1] <= high``."""
    pair = isinstance(value, (list, tuple)) and len(value) == 2 and all(is_number(v) for v in value)
    return pair and 0 < value[0] <= value[1] <= high
