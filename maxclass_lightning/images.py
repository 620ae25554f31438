"""How a class image is represented while it is optimized.

Each parameterization is an ``nn.Module`` holding one image per class of the run as its
parameters. ``forward(positions)`` renders the images of those classes (positions in the run's
class list) as ``[K, 3, size, size]`` tensors. A class's initial values come from its own random
stream (``seeding``), so they do not depend on which other classes share the run.

In YAML a parameterization is chosen like an optimizer: ``class_path`` plus ``init_args``; the
module supplies ``classes``, ``size`` and ``seed``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from maxclass_lightning.seeding import generator


class ClassImages(nn.Module):
    """Base of the parameterizations: one image per class in ``classes``, ``size`` pixels square."""

    def __init__(self, classes: Sequence[int], size: int, seed: int) -> None:
        super().__init__()
        self.classes = list(classes)
        self.size = size
        self.seed = seed

    def forward(self, positions: Tensor) -> Tensor:
        raise NotImplementedError


class PixelImage(ClassImages):
    """The seed's parameterization: raw pixel values, initialized U[0, 1] and left unbounded."""

    def __init__(self, classes: Sequence[int], size: int, seed: int) -> None:
        super().__init__(classes, size, seed)
        initial = [torch.rand(3, size, size, generator=generator(seed, index)) for index in self.classes]
        self.pixels = nn.Parameter(torch.stack(initial))

    def forward(self, positions: Tensor) -> Tensor:
        return self.pixels[positions]


#: What ``model.image`` holds: a parameterization class with its options, still to be given
#: (classes, size, seed) by the module.
ImageCallable = Callable[[Sequence[int], int, int], ClassImages]
