"""Transformation robustness: random views of each image, so the classifier cannot be fooled by
pixel-exact noise and the picture has to work as a picture.

A view pads the image's canvas, rotates, scales and shifts it, and resamples it to the
classifier's input size, all as one affine warp. Its parameters come from the keyed stream
(seed, class, view, step), so a class gets the same views whatever else is in the run.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from typing_extensions import override

from maxclass_lightning.errors import is_count, is_number, is_zoom_range, require
from maxclass_lightning.seeding import keyed_uniform

#: Draws of a view's keyed stream: the first four set its warp (angle, zoom, shift x, shift y),
#: the next six its colour (a contrast factor, then a shift, per channel), draw 10 is unused (a
#: view blur drew it once: docs/lab-notes.md), the rest are its noise, one per pixel.
#: ``keyed_uniform``'s draw ``i`` does not depend on how many are taken, so each addition left the
#: earlier draws unchanged, and every stream is as it was.
AFFINE_DRAWS = 4
COLOR_DRAWS = 6
NOISE_START = AFFINE_DRAWS + COLOR_DRAWS + 1

#: Largest ``color_shift``: e^10 contrast already turns any view into saturated blocks.
MAX_COLOR_SHIFT = 10.0


def check_view_options(name: str, color_shift: float, noise: float, output_size: int | None) -> None:
    """The options every kind of view shares, checked where they are defined."""
    require(
        is_number(color_shift, 0, MAX_COLOR_SHIFT),
        f"{name}.color_shift",
        color_shift,
        "a non-negative shift, e.g. 0.1 (0: off)",
    )
    require(is_number(noise, 0, 1), f"{name}.noise", noise, "a noise level in [0, 1], e.g. 0.05 (0: none)")
    require(
        output_size is None or is_count(output_size, 1),
        f"{name}.output_size",
        output_size,
        "the classifier's input side in pixels, e.g. 224, or null",
    )


class RandomViews(nn.Module):
    """Random affine views, one per work item, applied in a single batched ``grid_sample``.

    Written by hand because torchvision's random transforms draw one parameter set per call from
    the global generator; here every item of a batch needs its own, from its own keyed stream.

    Args:
        pad: canvas added around the image on each side, as a fraction of its side; the canvas
            shows ``fill``, so edges cannot carry the class alone (Lucid pads 12 of 224 px: 0.05).
        jitter: largest shift in each direction, as a fraction of the image side.
        scale: range of zoom factors (log-uniform); above 1 zooms in, i.e. a random crop.
        rotate: largest rotation either way, in degrees.
        fill: value of the padded canvas, in the image's units (0.5: mid-grey for [0, 1] images).
        color_shift: largest random per-channel shift of a view, and the log of its largest
            per-channel contrast factor (Plug-In Inversion's ColorShift, Ghiasi et al. 2022):
            ``(x - fill) * exp(U(-c, c)) + fill + U(-c, c)``. A class cannot then hang on one exact
            colour balance, which another network need not share; 0 turns it off.
        noise: standard deviation of uniform noise added to each view pixel, in image units; the
            class cannot hang on pixel-exact values; 0 turns it off.
        output_size: side of the views in pixels, the classifier's input size; null keeps the
            image's size.
    """

    def __init__(
        self,
        pad: float = 0.05,
        jitter: float = 0.05,
        scale: tuple[float, float] = (0.9, 1.1),
        rotate: float = 10.0,
        fill: float = 0.5,
        color_shift: float = 0.0,
        noise: float = 0.0,
        output_size: int | None = None,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        require(is_number(pad, 0, 1), f"{name}.pad", pad, "a fraction of the side in [0, 1], e.g. 0.05")
        require(is_number(jitter, 0, 1), f"{name}.jitter", jitter, "a fraction of the side in [0, 1], e.g. 0.05")
        require(
            is_zoom_range(scale), f"{name}.scale", scale, "two positive zoom factors, smallest first, e.g. [0.9, 1.1]"
        )
        require(
            is_number(rotate, 0, 180), f"{name}.rotate", rotate, "a largest angle in degrees from 0 to 180, e.g. 10"
        )
        require(is_number(fill), f"{name}.fill", fill, "a finite value, e.g. 0.5")
        check_view_options(name, color_shift, noise, output_size)
        self.pad = pad
        self.jitter = jitter
        self.scale = scale
        self.rotate = rotate
        self.fill = fill
        self.color_shift = color_shift
        self.noise = noise
        self.output_size = output_size

    def affine(self, keys: Tensor) -> Tensor:
        """The ``[K, 2, 3]`` warp of each keyed view, from output to input normalized coordinates."""
        draws = keyed_uniform(keys, AFFINE_DRAWS)
        angle = torch.deg2rad((2 * draws[:, 0] - 1) * self.rotate)
        low, high = math.log(self.scale[0]), math.log(self.scale[1])
        zoom = torch.exp(low + (high - low) * draws[:, 1])
        extent = (1 + 2 * self.pad) / zoom  # how much of the image (normalized units) one view spans
        shift = (2 * draws[:, 2:] - 1) * self.jitter * 2  # a fraction of the side is twice that in [-1, 1]
        cos, sin = torch.cos(angle) * extent, torch.sin(angle) * extent
        return torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)

    def color(self, keys: Tensor) -> tuple[Tensor, Tensor]:
        """Per-channel contrast factor and shift of each keyed view, ``[K, 3, 1, 1]`` each."""
        draws = keyed_uniform(keys, AFFINE_DRAWS + COLOR_DRAWS)[:, AFFINE_DRAWS:]
        spread = (2 * draws - 1) * self.color_shift
        return torch.exp(spread[:, :3])[:, :, None, None], spread[:, 3:, None, None]

    def forward(self, images: Tensor, keys: Tensor) -> Tensor:
        """Views ``[K, 3, output_size, output_size]`` of ``images`` ``[K, 3, H, W]``; ``keys`` [K, m] names each."""
        size = self.output_size or images.shape[-1]
        theta = self.affine(keys).to(device=images.device, dtype=images.dtype)
        grid = F.affine_grid(theta, [len(images), 3, size, size], align_corners=False)
        # Sampling outside the image returns 0, so warping (image - fill) fills the canvas with ``fill``.
        views = F.grid_sample(images - self.fill, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        if self.color_shift:
            factor, shift = (t.to(device=images.device, dtype=images.dtype) for t in self.color(keys))
            views = views * factor + shift
        if self.noise:
            views = views + self.noise_of(views, keys)
        return views + self.fill

    def noise_of(self, views: Tensor, keys: Tensor) -> Tensor:
        """Uniform noise of standard deviation ``noise`` for each view, from the view's own keyed
        draws (from ``NOISE_START`` on): the same on any device."""
        count = views[0].numel()
        uniform = keyed_uniform(keys, NOISE_START + count)[:, NOISE_START:]
        return (uniform.to(device=views.device, dtype=views.dtype).view_as(views) - 0.5) * (self.noise * math.sqrt(12))


class CropViews(RandomViews):
    """Random square crops of a canvas larger than the classifier's input, each resampled to the
    input size with added noise (MACO's views, Fel et al. 2023).

    The canvas (``model.image_size``, e.g. 448 px for a 224 px network) is never seen whole: each
    view is a box of ``box`` of its side at a random place, so detail forms at the scale the
    network reads, and the exported picture has more pixels than one input. Every draw (box, colour,
    noise) comes from the view's keyed stream (seed, class, view, step).

    Args:
        box: range of the box side, as a fraction of the canvas side (uniform); 0.5 of a 448 px
            canvas is one 224 px input at its native scale.
        noise: standard deviation of the uniform noise added to each view pixel, in [0, 1] image
            units; the class cannot hang on pixel-exact values.
        color_shift: random per-channel contrast and shift, as in ``RandomViews``; 0 turns it off.
        output_size: side of the views in pixels, the classifier's input size; null keeps the
            canvas's size.
    """

    def __init__(
        self,
        box: tuple[float, float] = (0.25, 0.5),
        noise: float = 0.05,
        color_shift: float = 0.0,
        output_size: int | None = None,
    ) -> None:
        super().__init__(
            pad=0.0,
            jitter=0.0,
            scale=(1.0, 1.0),
            rotate=0.0,
            color_shift=color_shift,
            noise=noise,
            output_size=output_size,
        )
        require(
            is_zoom_range(box, high=1),
            "CropViews.box",
            box,
            "two fractions of the canvas side in (0, 1], smallest first, e.g. [0.25, 0.5]",
        )
        self.box = box

    @override
    def affine(self, keys: Tensor) -> Tensor:
        """The ``[K, 2, 3]`` warp of each keyed crop: a box of side ``side`` whose corner is placed
        uniformly so that the box stays inside the canvas (normalized coordinates, [-1, 1])."""
        draws = keyed_uniform(keys, AFFINE_DRAWS)
        side = self.box[0] + (self.box[1] - self.box[0]) * draws[:, 0]
        centre = -1 + side[:, None] + 2 * (1 - side[:, None]) * draws[:, 1:3]
        zero = torch.zeros_like(side)
        return torch.stack([torch.stack([side, zero, centre[:, 0]], 1), torch.stack([zero, side, centre[:, 1]], 1)], 1)


class Resize(nn.Module):
    """No augmentation: the image resized to the classifier's input size (or left as is)."""

    def __init__(self, output_size: int | None = None) -> None:
        super().__init__()
        check_view_options("Resize", 0.0, 0.0, output_size)
        self.output_size = output_size

    def forward(self, images: Tensor, keys: Tensor) -> Tensor:
        return images if self.output_size is None else resized(images, self.output_size)


def resized(images: Tensor, size: int) -> Tensor:
    """``images`` resized to ``size`` px a side (bilinear, antialiased, as ``evaluate`` resizes a
    picture); at that size already, ``images`` themselves."""
    if images.shape[-1] == size:
        return images
    return F.interpolate(images, size=(size, size), mode="bilinear", antialias=True)
