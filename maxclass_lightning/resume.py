"""Resuming from a checkpoint: the settings that define the images come from it, and a given value
that contradicts them is an error rather than silently replaced.

A checkpoint holds images, optimizer state and step for one recipe. Continuing it with another class
list, image size, parameterization, classifier, optimizer, views or seed would not continue that
run: it would be a different run wearing its step count. So every ``ClassVisualizer`` option is
fixed by the checkpoint except the few in ``MAY_CHANGE``, which say how the run is carried out;
an option added later is fixed by default. Trainer options (``max_steps``, devices, logging) may
always change.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from jsonargparse import Namespace
from jsonargparse.typing import import_object
from lightning.pytorch.utilities import rank_zero_warn

from maxclass_lightning import checkpoints, classifiers
from maxclass_lightning.errors import ConfigError
from maxclass_lightning.module import ClassVisualizer

#: ``model.*`` settings that may differ from the checkpoint's: memory, speed and display only.
MAY_CHANGE = ("batch_size", "channels_last", "compile", "display")


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint at ``path`` (memory-mapped: its tensors are not read; unpickled with
    ``weights_only``: nothing in it runs), or a one-line ``ConfigError`` for a file that is missing,
    truncated, asks to run code, or is not this app's."""
    path = Path(path).expanduser()
    fix = "pass a checkpoint this app wrote, such as runs/<name>/version_<n>/checkpoints/last.ckpt"
    if not path.is_file():
        state = "is a folder, not a file" if path.is_dir() else "does not exist"
        raise ConfigError(f"ckpt_path {str(path)!r} {state}; {fix}")
    try:
        checkpoint = checkpoints.load(path, "ckpt_path", map_location="cpu", mmap=True)
    except ConfigError:
        raise
    except Exception as error:  # torch raises many types for a truncated or foreign file
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ConfigError(f"ckpt_path {str(path)!r} cannot be read ({reason}): is it truncated? {fix}") from None
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("hyper_parameters"), dict):
        raise ConfigError(f"ckpt_path {str(path)!r} is not a checkpoint of this app (no hyperparameters); {fix}")
    return checkpoint


def fixed_settings(hparams: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The checkpoint's settings that define its images, by config key (``model.classes``; its
    ``seed`` as ``seed_everything``), and the settings it holds that this release no longer has,
    as ``key=value``.

    Only options of the current ``ClassVisualizer`` count, and of a class's ``init_args`` only
    those its class still takes: a removed option cannot be given any more, so a checkpoint from an
    older release (which saved every option, at its default too) still resumes without it.
    """
    options = inspect.signature(ClassVisualizer.__init__).parameters
    fixed: dict[str, Any] = {}
    gone: list[str] = []
    for name, value in hparams.items():
        if name.startswith("_") or name in MAY_CHANGE:  # LightningCLI's own entries (_instantiator)
            continue
        if name not in options:
            gone.append(f"model.{name}={value!r}")
            continue
        key = "seed_everything" if name == "seed" else f"model.{name}"
        fixed[key] = _current(key, value, gone)
    return fixed, gone


def _current(key: str, value: Any, gone: list[str]) -> Any:
    """``value`` without the ``init_args`` its class no longer takes (listed in ``gone``)."""
    if not (isinstance(value, dict) and "class_path" in value and isinstance(value.get("init_args"), dict)):
        return value
    try:
        parameters = inspect.signature(_import(value["class_path"])).parameters
    except (TypeError, ValueError):  # not importable or no signature: compared as saved
        return value
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return value
    kept = {}
    for name, arg in value["init_args"].items():
        if name in parameters:
            kept[name] = _current(f"{key}.init_args.{name}", arg, gone)
        else:
            gone.append(f"{key}.init_args.{name}={arg!r}")
    return {**value, "init_args": kept}


def checkpoint_defaults(hparams: dict[str, Any]) -> dict[str, Any]:
    """Parser defaults that make an unspecified setting take the checkpoint's value; a warning
    names the checkpoint's settings that this release no longer has (they are left out)."""
    fixed, gone = fixed_settings(hparams)
    if gone:
        rank_zero_warn(f"the checkpoint's settings that this release no longer has are left out: {', '.join(gone)}")
    return fixed


def difference(key: str, given: Any, saved: Any) -> tuple[str, Any, Any] | None:
    """The first (key, given, saved) where ``given`` differs from the checkpoint's ``saved``, or None.

    Class paths compare by the object they import (``maxclass_lightning.PixelImage`` is
    ``maxclass_lightning.images.PixelImage``), and init_args on the keys the checkpoint has (a
    later release may add options).
    """
    if isinstance(given, Namespace):
        given = given.as_dict()
    if isinstance(given, dict) and isinstance(saved, dict) and "class_path" in saved:
        if "class_path" not in given or _import(given["class_path"]) is not _import(saved["class_path"]):
            return key, given.get("class_path"), saved["class_path"]
        given_args, saved_args = given.get("init_args") or {}, saved.get("init_args") or {}
        for name, value in saved_args.items():
            found = difference(f"{key}.init_args.{name}", given_args.get(name), value)
            if found:
                return found
        return None
    return None if _plain(given) == _plain(saved) else (key, given, saved)


def same_classes(given: Any, saved: Any, classifier: Any) -> bool:
    """Whether two class lists name the same classes (``pomeranian`` is ``[259]``), by the
    checkpoint's classifier's class names; False where they cannot be resolved."""
    try:
        names = classifiers.class_names(classifier) if isinstance(classifier, str) else None
        names = names or classifiers.IMAGENET_CATEGORIES
        return classifiers.resolve_classes(given, names) == classifiers.resolve_classes(saved, names)
    except Exception:  # an unresolvable list is compared as written instead
        return False


def _plain(value: Any) -> Any:
    """Lists and tuples alike, namespaces as dicts."""
    if isinstance(value, Namespace):
        value = value.as_dict()
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _import(class_path: str) -> Any:
    try:
        return import_object(class_path)
    except (ImportError, AttributeError, ValueError):
        return class_path


def check_contradictions(model: dict[str, Any], seed: int, hparams: dict[str, Any], ckpt_path: str) -> None:
    """A ``ConfigError`` naming the first setting whose given value (``model``: the run's model
    config as dumped; ``seed``: ``seed_everything``) differs from the checkpoint's."""
    for key, saved in fixed_settings(hparams)[0].items():
        given = seed if key == "seed_everything" else model.get(key.removeprefix("model."))
        if key == "model.classes" and same_classes(given, saved, hparams.get("classifier")):
            continue
        found = difference(key, given, saved)
        if found:
            name, given, saved = found
            raise ConfigError(
                f"{name} is {given} but checkpoint {ckpt_path} was made with {saved}: settings that define the "
                f"images come from the checkpoint. Drop {name} to resume, or leave out --ckpt_path to start a new run"
            )
