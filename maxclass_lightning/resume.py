"""Resuming from a checkpoint: the settings that define the images come from it, and a given value
that contradicts them is an error rather than silently replaced.

A checkpoint holds images, optimizer state and step for one recipe. Continuing it with another class
list, image size, parameterization, classifier, optimizer, views or seed would not continue that
run: it would be a different run wearing its step count. Settings that only say how the run is
carried out (``trainer.max_steps``, devices, logging, ``model.batch_size``, display) may change.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from jsonargparse import Namespace
from jsonargparse.typing import import_object

from maxclass_lightning import classifiers
from maxclass_lightning.errors import ConfigError

#: ``model.*`` settings that a checkpoint fixes.
FIXED_MODEL_SETTINGS = (
    "classes",
    "image_size",
    "classifier",
    "weights",
    "normalize",
    "image",
    "optimizer",
    "lr_scheduler",
    "views",
    "exact_view_steps",
    "average_steps",
    "average_decay",
    "transforms",
    "regularizer_weights",
    "samples_per_class",
    "diversity_weight",
    "diversity_layer",
)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint at ``path`` (memory-mapped: its tensors are not read), or a one-line
    ``ConfigError`` for a file that is missing, truncated or not this app's."""
    path = Path(path).expanduser()
    fix = "pass a checkpoint this app wrote, such as runs/<name>/version_<n>/checkpoints/last.ckpt"
    if not path.is_file():
        state = "is a folder, not a file" if path.is_dir() else "does not exist"
        raise ConfigError(f"ckpt_path {str(path)!r} {state}; {fix}")
    try:
        checkpoint = torch.load(path, map_location="cpu", mmap=True, weights_only=False)
    except Exception as error:  # torch raises many types for a truncated or foreign file
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ConfigError(f"ckpt_path {str(path)!r} cannot be read ({reason}): is it truncated? {fix}") from None
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("hyper_parameters"), dict):
        raise ConfigError(f"ckpt_path {str(path)!r} is not a checkpoint of this app (no hyperparameters); {fix}")
    return checkpoint


def checkpoint_defaults(hparams: dict[str, Any]) -> dict[str, Any]:
    """Parser defaults that make an unspecified setting take the checkpoint's value."""
    defaults = {f"model.{key}": hparams[key] for key in FIXED_MODEL_SETTINGS if key in hparams}
    if "seed" in hparams:
        defaults["seed_everything"] = hparams["seed"]
    return defaults


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
    pairs = [(f"model.{key}", model.get(key), hparams[key]) for key in FIXED_MODEL_SETTINGS if key in hparams]
    if "seed" in hparams:
        pairs.append(("seed_everything", seed, hparams["seed"]))
    for key, given, saved in pairs:
        if key == "model.classes" and same_classes(given, saved, hparams.get("classifier")):
            continue
        found = difference(key, given, saved)
        if found:
            name, given, saved = found
            raise ConfigError(
                f"{name} is {given} but checkpoint {ckpt_path} was made with {saved}: settings that define the "
                f"images come from the checkpoint. Drop {name} to resume, or leave out --ckpt_path to start a new run"
            )
