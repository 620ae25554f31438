"""Optional per-image penalties added to the loss, each a mean over one image's pixels.

Each image's penalty depends on that image alone, so the gradients of different classes stay
independent. The seed's own L2 term is AdamW's weight decay (``model.optimizer``), so it has no
penalty of its own here.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from maxclass_lightning.errors import ConfigError, is_number, require


def total_variation(images: Tensor, start: Tensor | None = None) -> Tensor:
    """Mean absolute difference between neighbouring pixels per image, ``[K]``: penalizes noise."""
    dy = (images[:, :, 1:, :] - images[:, :, :-1, :]).abs().mean(dim=(1, 2, 3))
    dx = (images[:, :, :, 1:] - images[:, :, :, :-1]).abs().mean(dim=(1, 2, 3))
    return dx + dy


def blur(images: Tensor, start: Tensor | None = None) -> Tensor:
    """Mean squared distance to the image's own 3x3 box blur per image, ``[K]`` (the blur target is
    held fixed, so the image is pulled toward its smoothed self)."""
    smoothed = F.avg_pool2d(images.detach(), kernel_size=3, stride=1, padding=1, count_include_pad=False)
    return (images - smoothed).square().mean(dim=(1, 2, 3))


def init_distance(images: Tensor, start: Tensor | None = None) -> Tensor:
    """Mean squared distance to the picture the run started from (``model.init_image``), per
    image, ``[K]``: feature accentuation keeps the photograph recognisably itself."""
    if start is None:
        raise ConfigError("model.regularizer_weights.init_distance needs a start picture; give model.init_image")
    return (images - start.to(images)).square().mean(dim=(1, 2, 3))


PENALTIES = {"total_variation": total_variation, "blur": blur, "init_distance": init_distance}


def check(weights: dict[str, float]) -> dict[str, float]:
    """The weights, after checking every name is a known penalty."""
    unknown = sorted(set(weights) - set(PENALTIES))
    if unknown:
        raise ConfigError(
            f"unknown regularizer {', '.join(unknown)} in model.regularizer_weights; use {', '.join(PENALTIES)}"
        )
    for name, weight in weights.items():
        require(is_number(weight), f"model.regularizer_weights.{name}", weight, "a finite weight, e.g. 0.1 (0: off)")
    return {name: float(weight) for name, weight in weights.items() if weight}


def weighted(images: Tensor, weights: dict[str, float], start: Tensor | None = None) -> Tensor:
    """Sum of the weighted penalties per image, ``[K]`` (zeros when no weights are set);
    ``start``: the picture the run started from, if any."""
    total = torch.zeros(len(images), device=images.device, dtype=images.dtype)
    for name, weight in weights.items():
        total = total + weight * PENALTIES[name](images, start)
    return total
