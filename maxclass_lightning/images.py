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


#: Square root of the colour covariance of ImageNet images, in RGB (from Lucid, measured on
#: ImageNet). Optimizing in its decorrelated basis gives every colour direction a step of the
#: same size, so natural colours come out instead of saturated noise.
IMAGENET_COLOR_SQRT_COVARIANCE = torch.tensor([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]])


class FourierImage(ClassImages):
    """Lucid's parameterization: a 2-D Fourier spectrum scaled by 1/f^decay, decorrelated colour, sigmoid.

    Natural images have about 1/f amplitude spectra; scaling the parameters the same way makes a
    gradient step change low frequencies as much as high ones, so images form as shapes, not
    pixel noise. The sigmoid keeps every pixel the classifier sees in [0, 1], so the exported
    picture is exactly what was scored.

    Args:
        decay: exponent of the 1/f frequency scaling (1: natural images).
        init_std: standard deviation of the initial spectrum (small: a near-grey start).
        gain: factor on the spatial image before the sigmoid. It sets how far one optimizer step
            moves the picture; Lucid's value, 1/4, keeps the sigmoid out of saturation at lr 0.05.
        decorrelate: mix colour channels through ``IMAGENET_COLOR_SQRT_COVARIANCE``.
    """

    def __init__(
        self,
        classes: Sequence[int],
        size: int,
        seed: int,
        decay: float = 1.0,
        init_std: float = 0.01,
        gain: float = 0.25,
        decorrelate: bool = True,
    ) -> None:
        super().__init__(classes, size, seed)
        self.gain = gain
        self.decorrelate = decorrelate
        frequencies = torch.sqrt(torch.fft.fftfreq(size)[:, None] ** 2 + torch.fft.rfftfreq(size)[None, :] ** 2)
        self.register_buffer("frequency_scale", frequencies.clamp_min(1.0 / size) ** -decay, persistent=False)
        color = IMAGENET_COLOR_SQRT_COVARIANCE / IMAGENET_COLOR_SQRT_COVARIANCE.norm(dim=0).max()
        self.register_buffer("color", color, persistent=False)
        shape = (3, size, size // 2 + 1, 2)
        initial = [torch.randn(shape, generator=generator(seed, index)) * init_std for index in self.classes]
        self.spectrum = nn.Parameter(torch.stack(initial))

    def forward(self, positions: Tensor) -> Tensor:
        spectrum = torch.view_as_complex(self.spectrum[positions]) * self.frequency_scale
        image = torch.fft.irfft2(spectrum, s=(self.size, self.size), norm="ortho") * self.gain
        if self.decorrelate:
            image = torch.einsum("nchw,dc->ndhw", image, self.color)
        return torch.sigmoid(image)
