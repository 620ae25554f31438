"""Checks that a run can start, made when the module is built, before a Trainer writes anything
and before the images are allocated: the optimizer and its schedule build, the images and one
forward pass fit in memory, and one image goes through the views and the classifier."""

from __future__ import annotations

import os
from collections.abc import Callable

import torch
from lightning.pytorch import LightningModule
from torch import nn

from maxclass_lightning.data import view_keys
from maxclass_lightning.ensembles import Ensemble
from maxclass_lightning.errors import ConfigError, is_count, is_number, require
from maxclass_lightning.steps import is_fraction_or_count

#: Tensors held per image value while a run optimizes it: the image, its gradient, Adam's two
#: moments and the average of the last steps.
TENSORS_PER_IMAGE = 5

#: Side (px) of the small forward pass that measures a classifier's activations per input pixel.
PROBE_SIDE = 64

GIB = 2**30


def check_optimizer(optimizer: Callable | None, lr_scheduler: Callable | None) -> None:
    """``model.optimizer`` and ``model.lr_scheduler`` build, with the options given."""
    probe = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    if optimizer is not None:
        try:
            probe = optimizer([nn.Parameter(torch.zeros(1))])
        except (ValueError, TypeError) as error:
            raise ConfigError(f"model.optimizer cannot be built ({error}); fix its init_args") from None
    if lr_scheduler is not None:
        try:
            lr_scheduler(probe)
        except (ValueError, TypeError, KeyError) as error:
            raise ConfigError(f"model.lr_scheduler cannot be built ({error}); fix its init_args") from None


def available_memory() -> int | None:
    """Bytes of host memory available to a new allocation (Linux's ``MemAvailable``), or None."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def activation_bytes_per_pixel(network: nn.Module) -> float | None:
    """Bytes of layer outputs one input pixel costs in a forward pass (what backward keeps),
    measured on one ``PROBE_SIDE`` image; None for a network that does not take that size."""
    outputs: list[int] = []

    def count(module, args, output) -> None:
        if isinstance(output, torch.Tensor):
            outputs.append(output.numel() * output.element_size())

    leaves = [module for module in network.modules() if not list(module.children())]
    handles = [leaf.register_forward_hook(count) for leaf in leaves]
    try:
        with torch.no_grad():
            network(torch.zeros(1, 3, PROBE_SIDE, PROBE_SIDE))
    except Exception:  # a network with a fixed input size refuses it, each in its own way
        return None
    finally:
        for handle in handles:
            handle.remove()
    return sum(outputs) / PROBE_SIDE**2


def activation_bytes_per_view(network: nn.Module, view_size: int) -> float | None:
    """Bytes of layer outputs one view of ``view_size`` px costs in a forward pass. An ensemble's
    members each read the view resized to their own input side, whatever the view's size."""
    if isinstance(network, Ensemble):
        members = [activation_bytes_per_view(member, size) for member, size in zip(network.members, network.sizes)]
        return None if None in members else sum(members)
    per_pixel = activation_bytes_per_pixel(network)
    return None if per_pixel is None else per_pixel * view_size**2


def check_memory(module: LightningModule) -> None:
    """The module's images (with their gradients and optimizer state) fit in host memory, where
    they are made; on a machine without CUDA, one forward pass of views must fit there too."""
    available = available_memory()
    if available is None:
        return
    network, images, image_size = module.classifier, len(module.image_names), module.image_size
    view_size = getattr(module.transforms, "output_size", None) or image_size
    pass_items = min(module.pass_size(), images * module.views)
    held = images * 3 * image_size**2 * 4 * TENSORS_PER_IMAGE  # float32
    per_view = activation_bytes_per_view(network, view_size) if not torch.cuda.is_available() else None
    need = held + (pass_items * per_view if per_view is not None else 0)
    if need > available:
        # The images alone too large: only a smaller side helps; otherwise fewer views per pass do.
        fix = (
            "a smaller model.image_size such as 224"
            if held > available
            else f"a smaller model.batch_size (views per classifier pass, now {pass_items})"
        )
        raise ConfigError(
            f"model.image_size is {image_size}: {images} image(s) need about {need / GIB:,.1f} GiB (pixels, "
            f"gradients, optimizer state and one forward pass of {pass_items} view(s)), more than the "
            f"{available / GIB:,.1f} GiB available; give {fix}"
        )


#: The most views, samples or views per pass a run takes: far past any useful value, and far
#: below what would overflow the work items' index arithmetic.
MAX_COUNT = 2**20


def check_options(options: dict) -> None:
    """``ClassVisualizer``'s own ranges (``options``: its arguments by name), before anything is built."""
    require(
        not (options["objectives"] and options["classes"] is not None),
        "model.classes",
        options["classes"],
        "null with model.objectives (one image per objective), or leave out model.objectives",
    )
    require(
        options["objectives"] is None or isinstance(options["objectives"], (list, tuple)),
        "model.objectives",
        options["objectives"],
        "a list of objective strings such as ['features.28:17', 'logit:259 - logit:151']",
    )
    require(
        options["init_image"] is not None or "init_distance" not in (options["regularizer_weights"] or {}),
        "model.init_image",
        options["init_image"],
        "a picture file with regularizer_weights.init_distance",
    )
    require(
        options["image_size"] is None or is_count(options["image_size"], 1),
        "model.image_size",
        options["image_size"],
        "a positive number of pixels such as 224",
    )
    require(
        is_count(options["views"], 1, MAX_COUNT),
        "model.views",
        options["views"],
        f"a positive number of views per image up to {MAX_COUNT}, e.g. 1 or 4",
    )
    for name, example in (("exact_view_steps", "16, or 0.125"), ("average_steps", "32, or 0.25")):
        require(
            is_fraction_or_count(options[name]),
            f"model.{name}",
            options[name],
            f"a number of final steps or a fraction of the run in [0, 1], e.g. {example} (0: none)",
        )
    require(
        is_number(options["skip_gradient"], 0, 1, above=True),
        "model.skip_gradient",
        options["skip_gradient"],
        "a scale in (0, 1] such as 0.5 (1: off)",
    )
    require(
        is_number(options["average_decay"], 0) and options["average_decay"] < 1,
        "model.average_decay",
        options["average_decay"],
        "a weight in [0, 1) such as 0.9",
    )
    require(
        options["batch_size"] is None or is_count(options["batch_size"], 1, MAX_COUNT),
        "model.batch_size",
        options["batch_size"],
        f"a positive number of views per classifier pass up to {MAX_COUNT}, or null",
    )
    require(
        is_count(options["samples_per_class"], 1, MAX_COUNT),
        "model.samples_per_class",
        options["samples_per_class"],
        f"a positive number up to {MAX_COUNT}, such as 1 or 4",
    )
    require(
        is_number(options["diversity_weight"], 0),
        "model.diversity_weight",
        options["diversity_weight"],
        "a non-negative weight such as 0 (off) or 10",
    )


def check_forward(module: LightningModule) -> None:
    """One image goes through the views and the classifier, giving one score per class name."""
    work = torch.zeros(1, 2, dtype=torch.long)
    try:
        with torch.no_grad():
            keys = view_keys(work, module.seed, module.class_indices, step=0)
            logits = module.scores(module.transforms(module.image(work[:, 0]), keys))
    except RuntimeError as error:
        raise ConfigError(
            f"one {module.image_size}-px image cannot go through classifier {module.hparams.classifier} "
            f"({str(error).splitlines()[0]}); the image size is likely too small for it: use e.g. "
            "model.image_size: 224"
        ) from None
    if logits.shape[-1] != len(module.class_names):
        raise ConfigError(
            f"classifier {module.hparams.classifier} gives {logits.shape[-1]} scores but has "
            f"{len(module.class_names)} class names; give the network a matching `categories` list"
        )
