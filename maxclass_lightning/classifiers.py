"""The frozen network being visualized: building it, loading its weights, naming its classes.

A classifier is named either by a torchvision model name (``vgg16``) or by the import path
``package.module:function`` of any callable returning an ``nn.Module`` that maps images to
logits. torchvision's weights enums are the one source of truth for class names.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn
from torchvision import models

from maxclass_lightning.errors import ConfigError

#: ImageNet channel statistics of the images the torchvision classifiers were trained on,
#: for inputs in [0, 1].
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: Every torchvision ImageNet-1k classification model shares these 1000 class names.
IMAGENET_CATEGORIES: list[str] = models.VGG16_Weights.IMAGENET1K_V1.meta["categories"]

ALL_CLASSES = "all"


def is_import_path(classifier: str) -> bool:
    """Whether ``classifier`` names a callable (``package.module:function``) rather than a torchvision model."""
    return ":" in classifier


def _import_callable(path: str) -> Callable[[], nn.Module]:
    module_name, _, attribute = path.partition(":")
    try:
        target = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise ConfigError(
            f"classifier {path!r} cannot be imported ({error}); "
            "give a torchvision model name such as vgg16 or an importable package.module:function"
        ) from None
    if not callable(target):
        raise ConfigError(f"classifier {path!r} is not callable; point it at a function returning an nn.Module")
    return target


def _torchvision_weights_enum(classifier: str):
    try:
        return models.get_model_weights(classifier)
    except (KeyError, ValueError):
        close = difflib.get_close_matches(classifier, models.list_models(module=models), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ConfigError(
            f"unknown classifier {classifier!r}{hint}; use a torchvision classification model name "
            "such as vgg16, or package.module:function"
        ) from None


def class_names(classifier: str, network: nn.Module | None = None) -> list[str]:
    """The classifier's class names, index i naming logit i.

    torchvision models take them from their weights enum; a callable's network may carry a
    ``categories`` attribute, and otherwise is taken to be an ImageNet-1k classifier.
    """
    if is_import_path(classifier):
        return list(getattr(network, "categories", IMAGENET_CATEGORIES))
    return list(_torchvision_weights_enum(classifier).DEFAULT.meta["categories"])


def resolve_classes(classes: int | str | Sequence[int | str], names: Sequence[str]) -> list[int]:
    """Class indices for a mix of indices and case-insensitive names, or ``"all"``."""
    if isinstance(classes, str) and classes.lower() == ALL_CLASSES:
        return list(range(len(names)))
    if isinstance(classes, (int, str)):
        classes = [classes]
    if len(classes) == 0:
        raise ConfigError("model.classes is empty; give at least one class index or name, or 'all'")
    by_lower: dict[str, list[int]] = {}
    for index, name in enumerate(names):
        by_lower.setdefault(name.lower(), []).append(index)
    indices = []
    for item in classes:
        if isinstance(item, str) and item.strip().lstrip("-").isdigit():
            item = int(item)
        if isinstance(item, int):
            if not 0 <= item < len(names):
                raise ConfigError(
                    f"class index {item} is out of range; this classifier has classes 0 to {len(names) - 1}"
                )
            indices.append(item)
            continue
        indices.append(_index_of_name(item.strip(), names, by_lower))
    repeated = sorted({index for index in indices if indices.count(index) > 1})
    if repeated:
        listed = ", ".join(f"{index} ({names[index]})" for index in repeated)
        raise ConfigError(f"model.classes lists {listed} more than once; list each class once")
    return indices


def _index_of_name(name: str, names: Sequence[str], by_lower: dict[str, list[int]]) -> int:
    """The index of a class name: case-insensitive, with the exact spelling deciding between
    names that differ only in case (ImageNet has 'Cardigan', the corgi, and 'cardigan')."""
    matches = by_lower.get(name.lower(), [])
    exact = [index for index in matches if names[index] == name]
    if len(exact) == 1:
        return exact[0]
    if len(matches) == 1:
        return matches[0]
    if matches:
        listed = ", ".join(f"{index} ({names[index]})" for index in matches)
        raise ConfigError(f"class name {name!r} is ambiguous: {listed}; give the index")
    close = difflib.get_close_matches(name.lower(), list(by_lower), n=3)
    hint = f"; did you mean {', '.join(repr(names[by_lower[c][0]]) for c in close)}?" if close else ""
    raise ConfigError(f"unknown class name {name!r}{hint} Give a class index (0-{len(names) - 1}) or name")


def _load_state_dict(network: nn.Module, path: Path, classifier: str) -> None:
    if not path.is_file():
        raise ConfigError(
            f"weights file {str(path)!r} does not exist; pass an existing .pth state dict, "
            "a torchvision weights name such as DEFAULT, or null for a random network"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a file that is not a checkpoint
        raise ConfigError(
            f"weights file {str(path)!r} cannot be read as a state dict ({type(error).__name__}); "
            "save one with torch.save(model.state_dict(), path)"
        ) from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConfigError(
            f"weights file {str(path)!r} holds no state dict; save one with torch.save(model.state_dict(), path)"
        )
    try:
        network.load_state_dict(state)
    except RuntimeError as error:
        first = str(error).splitlines()[1].strip() if "\n" in str(error) else str(error)
        raise ConfigError(
            f"weights file {str(path)!r} does not fit classifier {classifier!r} ({first}); "
            "pass weights saved from the same architecture"
        ) from None


def looks_like_path(weights: str) -> bool:
    """Weights given as a file rather than a torchvision weights name such as ``DEFAULT``."""
    return "/" in weights or "\\" in weights or Path(weights).suffix in {".pth", ".pt", ".ckpt", ".bin"}


def build_classifier(classifier: str, weights: str | None, seed: int = 0) -> nn.Module:
    """The network with its weights, frozen and in eval mode.

    ``weights`` is a torchvision weights name (downloaded and cached by torchvision), a path to
    a local state dict, or ``None``: a random network (seeded, so a run is reproducible) for
    torchvision names, or the callable's network as it returns it.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if is_import_path(classifier):
            network = _import_callable(classifier)()
            if not isinstance(network, nn.Module):
                raise ConfigError(f"classifier {classifier!r} returned {type(network).__name__}, not an nn.Module")
            if weights is not None and not looks_like_path(weights):
                raise ConfigError(
                    f"weights {weights!r} is a torchvision weights name, but classifier {classifier!r} is a "
                    "callable: pass a state dict path or null"
                )
        else:
            enum = _torchvision_weights_enum(classifier)
            named = None
            if weights is not None and not looks_like_path(weights):
                try:
                    named = enum[weights]
                except KeyError:
                    valid = ", ".join(["DEFAULT", *enum.__members__])
                    raise ConfigError(
                        f"unknown weights {weights!r} for {classifier}; use one of {valid}, a .pth path, or null"
                    ) from None
            network = _download(classifier, named)
        if weights is not None and looks_like_path(weights):
            _load_state_dict(network, Path(weights).expanduser(), classifier)
    return freeze(network)


def _download(classifier: str, weights) -> nn.Module:
    try:
        return models.get_model(classifier, weights=weights)
    except (OSError, RuntimeError) as error:  # URLError is an OSError; a truncated download a RuntimeError
        if weights is None:
            raise
        reason = str(getattr(error, "reason", error)).splitlines()[0]
        raise ConfigError(
            f"cannot download {classifier} weights {weights.name} ({reason}); without network pass a local "
            "state dict (model.weights: path/to/file.pth) or model.weights: null for a random network"
        ) from None


def freeze(network: nn.Module) -> nn.Module:
    """No gradients for the weights and eval mode (dropout off, batch-norm statistics fixed)."""
    network.requires_grad_(False)
    return network.eval()
