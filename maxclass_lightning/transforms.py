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

from maxclass_lightning.seeding import keyed_uniform

#: Draws of a view's keyed stream: the first four set its warp (angle, zoom, shift x, shift y),
#: the next six its colour (a contrast factor, then a shift, per channel). ``keyed_uniform``'s
#: draw ``i`` does not depend on how many are taken, so adding colour left the warps unchanged.
AFFINE_DRAWS = 4
COLOR_DRAWS = 6


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
        output_size: int | None = None,
    ) -> None:
        super().__init__()
        if scale[0] <= 0 or scale[1] < scale[0]:
            raise ValueError(f"scale range {scale} must be positive and increasing, e.g. [0.9, 1.1]")
        self.pad = pad
        self.jitter = jitter
        self.scale = scale
        self.rotate = rotate
        self.fill = fill
        self.color_shift = color_shift
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
        return views + self.fill


class Resize(nn.Module):
    """No augmentation: the image resized to the classifier's input size (or left as is)."""

    def __init__(self, output_size: int | None = None) -> None:
        super().__init__()
        self.output_size = output_size

    def forward(self, images: Tensor, keys: Tensor) -> Tensor:
        if self.output_size is None or self.output_size == images.shape[-1]:
            return images
        return F.interpolate(images, size=(self.output_size, self.output_size), mode="bilinear", antialias=True)
