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
from pathlib import Path

import torch
from torch import Tensor, nn
from torchvision.io import ImageReadMode, decode_image
from torchvision.transforms import v2

from maxclass_lightning.errors import ConfigError, is_number, require
from maxclass_lightning.seeding import generator

#: Largest ``saturation``: ten times ImageNet's colour is already far past any photograph's.
MAX_SATURATION = 10.0


def sample_numbers(classes: Sequence[int]) -> list[int]:
    """Each entry's sample number: how many times its class appeared before it in ``classes``."""
    seen: dict[int, int] = {}
    numbers = []
    for index in classes:
        numbers.append(seen.get(index, 0))
        seen[index] = numbers[-1] + 1
    return numbers


def stack_images(initial: list[Tensor], shape: tuple[int, ...]) -> Tensor:
    """The images' initial values as one tensor, ``[len(initial), *shape]``; an empty one for a
    process that owns no class."""
    return torch.stack(initial) if initial else torch.zeros(0, *shape)


def load_picture(path: Path, size: int) -> Tensor:
    """A PNG or JPEG file as RGB in [0, 1], resized to ``[3, size, size]`` (antialiased): how
    ``evaluate`` reads a picture, and how ``model.init_image`` starts one."""
    try:
        decoded = decode_image(str(path), mode=ImageReadMode.RGB)
    except (RuntimeError, OSError):
        raise ConfigError(f"{path} cannot be read as a picture; give PNG or JPEG files") from None
    picture = v2.functional.to_dtype(decoded, torch.float32, scale=True)
    return v2.functional.resize(picture, [size, size], antialias=True)


class ClassImages(nn.Module):
    """Base of the parameterizations: one image per class in ``classes``, ``size`` pixels square."""

    def __init__(self, classes: Sequence[int], size: int, seed: int) -> None:
        super().__init__()
        self.classes = list(classes)
        self.size = size
        self.seed = seed

    def generators(self) -> list[torch.Generator]:
        """One random stream per image. A class listed k times gets k samples: the first from the
        stream (seed, class), as a one-sample run's image, the others from (seed, class, sample)."""
        return [
            generator(self.seed, index) if sample == 0 else generator(self.seed, index, sample)
            for index, sample in zip(self.classes, sample_numbers(self.classes))
        ]

    def forward(self, positions: Tensor) -> Tensor:
        raise NotImplementedError

    def start_from(self, picture: Tensor) -> None:
        """Every image starts as ``picture`` (``[3, size, size]`` in [0, 1]), as nearly as the
        parameterization can show it: feature accentuation starts from the user's photograph."""
        raise ConfigError(
            f"model.image {type(self).__name__} cannot start from a picture; use PixelImage or FourierImage"
        )


class PixelImage(ClassImages):
    """The seed's parameterization: raw pixel values, initialized U[0, 1] and left unbounded."""

    def __init__(self, classes: Sequence[int], size: int, seed: int) -> None:
        super().__init__(classes, size, seed)
        initial = [torch.rand(3, size, size, generator=stream) for stream in self.generators()]
        self.pixels = nn.Parameter(stack_images(initial, (3, size, size)))

    def forward(self, positions: Tensor) -> Tensor:
        return self.pixels[positions]

    @torch.no_grad()
    def start_from(self, picture: Tensor) -> None:
        self.pixels.copy_(picture.to(self.pixels).expand_as(self.pixels))


#: What ``model.image`` holds: a parameterization class with its options, still to be given
#: (classes, size, seed) by the module.
ImageCallable = Callable[[Sequence[int], int, int], ClassImages]


#: Square root of the colour covariance of ImageNet images, in RGB (from Lucid, measured on
#: ImageNet). Optimizing in its decorrelated basis gives every colour direction a step of the
#: same size, so natural colours come out instead of saturated noise.
IMAGENET_COLOR_SQRT_COVARIANCE = torch.tensor([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]])


class SpectralImage(ClassImages):
    """Base of the Fourier-domain parameterizations: a spectrum per class, turned into an image by
    an orthonormal inverse FFT, a colour mix through ``IMAGENET_COLOR_SQRT_COVARIANCE`` (when
    ``decorrelate``) and a sigmoid, which keeps every pixel the classifier sees in [0, 1], so the
    exported picture is what was scored (unless the display sharpens it). Subclasses say what the
    spectrum is.

    ``saturation`` scales the two colour-opponent columns of the mix: 1 gives ImageNet's colour
    covariance, whose colour is weak next to its brightness (the opponent columns are 0.28 and
    0.13 of the brightness column's length), so pictures come out less colourful than
    photographs; 0 gives grey pictures.
    """

    def __init__(
        self, classes: Sequence[int], size: int, seed: int, decorrelate: bool = True, saturation: float = 1.0
    ) -> None:
        super().__init__(classes, size, seed)
        name = type(self).__name__
        require(
            is_number(saturation, 0, MAX_SATURATION),
            f"{name}.saturation",
            saturation,
            "a colour factor from 0 (grey) to 10, e.g. 1.0",
        )
        if saturation != 1.0 and not decorrelate:
            raise ConfigError(
                f"{name}.saturation is {saturation}, which scales the decorrelated colour basis; "
                "set decorrelate true or saturation 1"
            )
        self.decorrelate = decorrelate
        # Side of the rendered canvas, and the border cut from each side of it, pixels.
        self.canvas, self.border = size, 0
        color = IMAGENET_COLOR_SQRT_COVARIANCE / IMAGENET_COLOR_SQRT_COVARIANCE.norm(dim=0).max()
        # Columns 1 and 2 are the colour-opponent directions (about red-blue and green-magenta);
        # column 0, about equal in R, G and B, is brightness, which saturation leaves alone.
        color[:, 1:] *= saturation
        self.register_buffer("color", color, persistent=False)

    @staticmethod
    def frequencies(size: int) -> Tensor:
        """Radial frequency of each ``rfft2`` coefficient of a ``size`` square, cycles per pixel."""
        return torch.sqrt(torch.fft.fftfreq(size)[:, None] ** 2 + torch.fft.rfftfreq(size)[None, :] ** 2)

    def spectrum(self, positions: Tensor) -> Tensor:
        """Complex ``[K, 3, canvas, canvas // 2 + 1]`` spectra of these classes."""
        raise NotImplementedError

    def start_spectrum(self, picture: Tensor) -> Tensor:
        """The complex spectrum ``[3, canvas, canvas // 2 + 1]`` whose image is ``picture``: the
        sigmoid, the colour mix and the FFT undone (the border, if any, mirrors the picture)."""
        # The sigmoid's inverse is infinite at 0 and 1: a pixel that saturates keeps 1/255 from them.
        logit = torch.logit(picture.double().clamp(1 / 255, 1 - 1 / 255))
        if self.decorrelate:
            logit = torch.einsum("dc,chw->dhw", torch.linalg.inv(self.color.double()), logit)
        if self.border:
            logit = torch.nn.functional.pad(logit[None], [self.border] * 4, mode="reflect")[0]
        return torch.fft.rfft2(logit, norm="ortho")

    def forward(self, positions: Tensor) -> Tensor:
        image = torch.fft.irfft2(self.spectrum(positions), s=(self.canvas, self.canvas), norm="ortho")
        if self.border:
            image = image[..., self.border : self.border + self.size, self.border : self.border + self.size]
        if self.decorrelate:
            image = torch.einsum("nchw,dc->ndhw", image, self.color)
        return torch.sigmoid(image)


class FourierImage(SpectralImage):
    """Lucid's parameterization: a 2-D Fourier spectrum scaled by 1/f^decay, decorrelated colour, sigmoid.

    Natural images have about 1/f amplitude spectra; scaling the parameters the same way makes a
    gradient step change low frequencies as much as high ones, so images form as shapes, not
    pixel noise.

    Args:
        decay: exponent of the 1/f frequency scaling (1: natural images).
        init_std: standard deviation of the initial spectrum (small: a near-grey start).
        gain: factor on the spatial image before the sigmoid. It sets how far one optimizer step
            moves the picture; Lucid's value, 1/4, keeps the sigmoid out of saturation at lr 0.05.
        decorrelate: mix colour channels through ``IMAGENET_COLOR_SQRT_COVARIANCE``.
        saturation: factor on the colour-opponent part of that mix (``SpectralImage``).
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
        saturation: float = 1.0,
    ) -> None:
        super().__init__(classes, size, seed, decorrelate, saturation)
        require(is_number(decay, 0), "FourierImage.decay", decay, "a non-negative exponent, e.g. 1.0")
        require(
            is_number(init_std, 0), "FourierImage.init_std", init_std, "a non-negative standard deviation, e.g. 0.01"
        )
        require(is_number(gain, 0, above=True), "FourierImage.gain", gain, "a positive factor, e.g. 0.25")
        # The gain is folded into the frequency scale: the inverse FFT is linear.
        scale = self.frequencies(size).clamp_min(1.0 / size) ** -decay * gain
        self.register_buffer("frequency_scale", scale, persistent=False)
        shape = (3, size, size // 2 + 1, 2)
        initial = [torch.randn(shape, generator=stream) * init_std for stream in self.generators()]
        self.coefficients = nn.Parameter(stack_images(initial, shape))

    def spectrum(self, positions: Tensor) -> Tensor:
        return torch.view_as_complex(self.coefficients[positions]) * self.frequency_scale

    @torch.no_grad()
    def start_from(self, picture: Tensor) -> None:
        """Exactly the picture (to float rounding and the 1/255 kept from saturation)."""
        coefficients = torch.view_as_real(self.start_spectrum(picture) / self.frequency_scale.double())
        self.coefficients.copy_(coefficients.to(self.coefficients).expand_as(self.coefficients))


#: Contrast of a phase-only image: the standard deviation of each decorrelated channel before
#: the colour mix and the sigmoid. The normalized colour matrix shrinks it to about 0.6 of that
#: per RGB channel, and the sigmoid then gives a picture whose pixels spread by about 0.21 around
#: mid-grey: the contrast of a photograph (ImageNet's per-channel std is 0.22-0.23), with
#: almost no pixel saturated.
PHASE_IMAGE_CONTRAST = 1.7


class PhaseImage(SpectralImage):
    """Magnitude-constrained phase optimization (MACO, Fel et al. 2023): a fixed natural 1/f
    amplitude spectrum, only the Fourier phase optimized; decorrelated colour, sigmoid.

    With the amplitude free (``FourierImage``) the optimizer can pour energy into whatever
    frequencies fool this one network, typically high-frequency textures that other networks do
    not read. Fixing the amplitude to a natural image's 1/f^decay falloff keeps every picture's
    power spectrum photograph-like, so only where structures sit (the phase) can change: the
    features have to be image-like, which is what transfers to other classifiers.

    Args:
        decay: exponent of the fixed 1/f amplitude (1: natural images; higher: smoother).
        contrast: standard deviation of each decorrelated channel before the sigmoid
            (``PHASE_IMAGE_CONTRAST``); it sets the picture's contrast, which no longer changes.
        decorrelate: mix colour channels through ``IMAGENET_COLOR_SQRT_COVARIANCE``.
        margin: extra canvas on each side, as a fraction of the side, rendered and cut away. The
            fixed energy has to go somewhere: without a margin the optimizer parks the surplus at
            the image's wrap-around corners, which the views see least, as a bright spot; with
            one it can park it out of the picture.
        saturation: factor on the colour-opponent part of the colour mix (``SpectralImage``): above
            1, more colourful pictures at the same brightness contrast.
    """

    def __init__(
        self,
        classes: Sequence[int],
        size: int,
        seed: int,
        decay: float = 1.0,
        contrast: float = PHASE_IMAGE_CONTRAST,
        decorrelate: bool = True,
        margin: float = 0.0,
        saturation: float = 1.0,
    ) -> None:
        super().__init__(classes, size, seed, decorrelate, saturation)
        require(is_number(decay, 0), "PhaseImage.decay", decay, "a non-negative exponent, e.g. 1.0")
        require(
            is_number(contrast, 0, above=True),
            "PhaseImage.contrast",
            contrast,
            "a positive standard deviation, e.g. 1.7",
        )
        require(
            is_number(margin, 0) and margin < 1,
            "PhaseImage.margin",
            margin,
            "a fraction of the side in [0, 1), e.g. 0.125",
        )
        self.border = round(size * margin)
        self.canvas = canvas = size + 2 * self.border
        amplitude = self.frequencies(canvas).clamp_min(1.0 / canvas) ** -decay
        # The mean brightness is the sigmoid's midpoint: the zero-frequency term carries no energy.
        amplitude[0, 0] = 0.0
        # Scale so that the spatial image has standard deviation ``contrast``: with the orthonormal
        # transform, the pixel variance is the spectrum's energy over the pixel count, where each
        # rfft column other than the first (and the Nyquist one, for even sizes) stands for two.
        weights = torch.full_like(amplitude, 2.0)
        weights[:, 0] = 1.0
        if canvas % 2 == 0:
            weights[:, -1] = 1.0
        energy = (weights * amplitude.square()).sum() / canvas**2
        self.register_buffer("amplitude", amplitude * contrast / energy.sqrt(), persistent=False)
        shape = (3, canvas, canvas // 2 + 1)
        initial = [(torch.rand(shape, generator=stream) * 2 - 1) * torch.pi for stream in self.generators()]
        #: the Fourier phases of the images, radians
        self.phase = nn.Parameter(stack_images(initial, shape))

    def spectrum(self, positions: Tensor) -> Tensor:
        phase = self.phase[positions]
        return torch.polar(self.amplitude.expand_as(phase), phase)

    @torch.no_grad()
    def start_from(self, picture: Tensor) -> None:
        """The picture's Fourier phases under the fixed amplitude: its layout and edges, not its
        exact colours and contrast (MACO's own starting point for a given image)."""
        phase = torch.angle(self.start_spectrum(picture))
        self.phase.copy_(phase.to(self.phase).expand_as(self.phase))
