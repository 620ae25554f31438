"""From optimized image to picture: the seed's display pipeline, grids and PNG files.

The seed shows its result after a 2x bilinear upsample, ``adjust_sharpness(x, 0.0)`` (a 3x3
smoothing that also clamps to [0, 1]) and a min-max stretch. Each image is stretched on its
own, so a class's picture does not depend on the other classes of the run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor
from torch.nn import functional as F
from torchvision.transforms.functional import adjust_sharpness, to_pil_image
from torchvision.utils import make_grid, save_image

from maxclass_lightning.errors import is_number, require

#: The seed's display settings.
SEED_UPSAMPLE = 2.0
SEED_SHARPNESS = 0.0

#: Largest ``upsample``: a 256-px image at 16x is already a 4096-px picture.
MAX_UPSAMPLE = 16.0

#: Grid tiles are shrunk so that a grid of many classes stays a viewable size (pixels per side).
GRID_MAX_SIDE = 4096

#: Contact sheet layout, in pixels: white space between tiles, and label font size as a fraction
#: of the tile side with a floor that stays legible.
TILE_GAP = 4
LABEL_FONT_DIVISOR = 12
LABEL_MIN_FONT = 10


@dataclass
class Display:
    """How an optimized image becomes a picture in [0, 1].

    Args:
        upsample: bilinear scale factor (the seed: 2); 1 keeps the optimized size.
        sharpness: ``adjust_sharpness`` factor (the seed: 0.0, a smoothing); null skips it.
        rescale: ``minmax`` stretches each image to [0, 1] (the seed); ``clamp`` shows values as
            the classifier saw them, for parameterizations already in [0, 1].
    """

    upsample: float = SEED_UPSAMPLE
    sharpness: float | None = SEED_SHARPNESS
    rescale: Literal["minmax", "clamp"] = "minmax"

    def __post_init__(self) -> None:
        require(
            is_number(self.upsample, 0, MAX_UPSAMPLE, above=True),
            "Display.upsample",
            self.upsample,
            "a positive scale factor up to 16, e.g. 2 (1: none)",
        )
        require(
            self.sharpness is None or is_number(self.sharpness, 0),
            "Display.sharpness",
            self.sharpness,
            "a non-negative sharpness factor (0: smooth) or null",
        )
        require(self.rescale in ("minmax", "clamp"), "Display.rescale", self.rescale, "minmax or clamp")

    @torch.no_grad()
    def __call__(self, images: Tensor) -> Tensor:
        """[N, 3, H, W] in any range -> [N, 3, H * upsample, W * upsample] in [0, 1], float32."""
        images = images.detach().float()
        if self.upsample != 1:
            images = F.interpolate(images, scale_factor=self.upsample, mode="bilinear")
        if self.sharpness is not None:
            images = adjust_sharpness(images, sharpness_factor=self.sharpness)
        if self.rescale == "clamp":
            return images.clamp(0, 1)
        # In float64, so that a huge but finite image (a run about to diverge) still stretches.
        wide = images.double()
        low = wide.amin(dim=(1, 2, 3), keepdim=True)
        high = wide.amax(dim=(1, 2, 3), keepdim=True)
        return ((wide - low) / (high - low).clamp_min(torch.finfo(wide.dtype).tiny)).float()


def grid_columns(count: int) -> int:
    """Columns of a near-square grid of ``count`` tiles."""
    return math.ceil(math.sqrt(count))


def grid_tiles(pictures: Tensor, count: int, max_side: int = GRID_MAX_SIDE) -> Tensor:
    """Pictures shrunk (never enlarged) so that a grid of ``count`` of them fits in ``max_side`` pixels."""
    side = min(pictures.shape[-1], max_side // grid_columns(count))
    if side == pictures.shape[-1]:
        return pictures
    return F.interpolate(pictures, size=(side, side), mode="bilinear", antialias=True)


def grid(tiles: Tensor) -> Tensor:
    """A near-square grid ``[3, H, W]`` of tiles ``[N, 3, h, w]`` in [0, 1], on white."""
    return make_grid(tiles, nrow=grid_columns(len(tiles)), padding=2, pad_value=1.0)


def contact_sheet(tiles: Tensor, labels: list[str]) -> Image.Image:
    """The grid's tiles with each label written under its tile, on white (Pillow draws the text)."""
    count, _, side, _ = tiles.shape
    columns = grid_columns(count)
    rows = math.ceil(count / columns)
    font = ImageFont.load_default(size=max(LABEL_MIN_FONT, side // LABEL_FONT_DIVISOR))
    label_height = int(font.size * 1.5)
    cell_width, cell_height = side + TILE_GAP, side + label_height + TILE_GAP
    sheet = Image.new("RGB", (columns * cell_width + TILE_GAP, rows * cell_height + TILE_GAP), "white")
    draw = ImageDraw.Draw(sheet)
    for index, (tile, label) in enumerate(zip(tiles, labels)):
        left = TILE_GAP + (index % columns) * cell_width
        top = TILE_GAP + (index // columns) * cell_height
        sheet.paste(to_pil_image(tile), (left, top))
        while len(label) > 1 and draw.textlength(label, font=font) > side:
            label = label[:-1]
        draw.text((left + side / 2, top + side + label_height / 2), label, fill="black", font=font, anchor="mm")
    return sheet


def save_png(picture: Tensor | Image.Image, path: Path) -> None:
    """Write a [3, H, W] picture in [0, 1] as an 8-bit PNG, atomically, so no half-written file is left."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    if isinstance(picture, Image.Image):
        picture.save(partial, format="png")
    else:
        save_image(picture, partial, format="png")
    partial.replace(path)
