"""Image parameterizations: shapes, ranges, per-class determinism, gradients."""

from __future__ import annotations

import pytest
import torch

from maxclass_lightning.errors import ConfigError
from maxclass_lightning.images import FourierImage, PhaseImage, PixelImage
from maxclass_lightning.measures import colourfulness, rms_contrast

PARAMETERIZATIONS = [PixelImage, FourierImage, PhaseImage]


@pytest.mark.parametrize("kind", PARAMETERIZATIONS, ids=lambda k: k.__name__)
def test_renders_requested_classes_at_the_right_shape(kind):
    images = kind([1, 259, 948], 24, seed=0)
    rendered = images(torch.tensor([2, 0]))
    assert rendered.shape == (2, 3, 24, 24) and rendered.dtype == torch.float32
    assert torch.equal(rendered[0], images(torch.tensor([2]))[0])


@pytest.mark.parametrize("kind", PARAMETERIZATIONS, ids=lambda k: k.__name__)
def test_initial_image_depends_only_on_seed_and_class(kind):
    alone = kind([259], 16, seed=3)(torch.tensor([0]))
    among_others = kind([1, 259, 948], 16, seed=3)(torch.tensor([1]))
    assert torch.equal(alone, among_others)
    assert not torch.equal(alone, kind([259], 16, seed=4)(torch.tensor([0])))
    assert not torch.equal(alone, kind([258], 16, seed=3)(torch.tensor([0])))


def test_pixel_image_is_the_seeds_uniform_init_and_unbounded():
    image = PixelImage([259], 64, seed=0)
    pixels = image.pixels
    assert 0 <= pixels.min() < 0.01 and 0.99 < pixels.max() <= 1
    assert abs(pixels.mean().item() - 0.5) < 0.01
    with torch.no_grad():
        pixels.mul_(10)
    assert image(torch.tensor([0])).max() > 9  # no squashing: the seed's values are unbounded


def test_fourier_image_stays_in_unit_range_and_starts_near_grey():
    image = FourierImage([1, 2], 32, seed=0)
    start = image(torch.tensor([0, 1]))
    assert (start - 0.5).abs().max() < 0.05
    with torch.no_grad():
        image.coefficients.mul_(1e4)
    pushed = image(torch.tensor([0, 1]))
    assert 0 <= pushed.min() and pushed.max() <= 1 and pushed.std() > 0.2


def test_fourier_scaling_favours_low_frequencies():
    image = FourierImage([1], 64, seed=0, decay=1.0)
    scale = image.frequency_scale
    assert scale[0, 1] > scale[0, 8] > scale[0, 32]
    assert scale[1, 0] == scale[-1, 0]  # positive and negative vertical frequencies alike


def test_fourier_gradients_reach_the_spectrum():
    image = FourierImage([1], 16, seed=0)
    image(torch.tensor([0]))[:, 0].sum().backward()
    assert image.coefficients.grad is not None and image.coefficients.grad.abs().sum() > 0


def test_phase_image_keeps_its_amplitude_spectrum_whatever_the_phase():
    image = PhaseImage([1, 2], 32, seed=0, decorrelate=False)
    with torch.no_grad():
        image.phase.add_(torch.randn_like(image.phase) * 3)
    rendered = image(torch.tensor([0, 1]))
    assert 0 <= rendered.min() and rendered.max() <= 1
    spatial = torch.logit(rendered.double().clamp(1e-12, 1 - 1e-12))
    amplitude = torch.fft.rfft2(spatial, norm="ortho").abs()
    expected = image.amplitude.double().expand_as(amplitude)
    # Hermitian symmetry makes the real transform fold some coefficients; away from the edge
    # columns every amplitude is exactly the fixed one.
    torch.testing.assert_close(amplitude[..., 1:-1], expected[..., 1:-1], rtol=1e-4, atol=1e-4)


def test_phase_image_has_photograph_contrast_from_the_start():
    rendered = PhaseImage([1, 2, 3], 64, seed=0)(torch.tensor([0, 1, 2]))
    assert 0.15 < rendered.std(dim=(2, 3)).mean() < 0.3
    assert abs(rendered.mean().item() - 0.5) < 0.05


def test_phase_image_margin_renders_the_centre_of_a_larger_canvas():
    with_margin = PhaseImage([259], 32, seed=0, margin=0.125)
    assert with_margin.phase.shape == (1, 3, 40, 21)
    rendered = with_margin(torch.tensor([0]))
    assert rendered.shape == (1, 3, 32, 32)
    whole_canvas = PhaseImage([259], 40, seed=0)(torch.tensor([0]))
    torch.testing.assert_close(rendered, whole_canvas[..., 4:36, 4:36])


@pytest.mark.parametrize("kind", [FourierImage, PhaseImage], ids=lambda k: k.__name__)
def test_saturation_scales_colour_and_leaves_brightness(kind):
    """Saturation scales the colour-opponent part of the colour mix only: the same spectra give a
    more colourful picture above 1, a grey one at 0 (equal channels up to the brightness column's
    own 0.26/0.27 imbalance), and about the same brightness contrast."""
    pictures = {}
    for saturation in (0.0, 1.0, 2.0):
        image = kind([1, 259], 64, seed=0, saturation=saturation)
        with torch.no_grad():  # a FourierImage starts near grey: give it a picture's worth of spectrum
            for parameter in image.parameters():
                parameter.copy_(torch.randn_like(parameter) * (1.0 if kind is PhaseImage else 3.0))
            pictures[saturation] = image(torch.tensor([0, 1])).permute(0, 2, 3, 1).double().numpy()
    colour = {s: sum(colourfulness(p) for p in pictures[s]) for s in pictures}
    brightness = {s: sum(rms_contrast(p) for p in pictures[s]) for s in pictures}
    assert colour[0.0] < 0.3 * colour[1.0] and colour[2.0] > 1.5 * colour[1.0]
    assert abs(brightness[2.0] - brightness[1.0]) < 0.1 * brightness[1.0]
    assert abs(brightness[0.0] - brightness[1.0]) < 0.1 * brightness[1.0]


def test_saturation_needs_the_decorrelated_colour_mix():
    with pytest.raises(ValueError, match=r"PhaseImage.saturation is 2\.0, which scales the decorrelated colour basis"):
        PhaseImage([1], 16, seed=0, decorrelate=False, saturation=2.0)
    PhaseImage([1], 16, seed=0, decorrelate=False, saturation=1.0)


@pytest.mark.parametrize(
    ("kind", "option", "value"),
    [
        (PhaseImage, "decay", -1.0),
        (PhaseImage, "contrast", 0.0),
        (PhaseImage, "margin", 1.0),
        (PhaseImage, "saturation", float("nan")),
        (FourierImage, "gain", 0.0),
        (FourierImage, "init_std", -0.1),
    ],
)
def test_an_out_of_range_option_is_refused_where_it_is_defined(kind, option, value):
    with pytest.raises(ConfigError, match=rf"^{kind.__name__}\.{option} is {value!r}; give "):
        kind([1], 16, seed=0, **{option: value})


def a_picture(size: int = 32) -> torch.Tensor:
    """A smooth colour picture in (0, 1) with an edge: what a photograph gives ``start_from``."""
    y, x = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    disc = ((x - 0.4) ** 2 + (y - 0.6) ** 2 < 0.08).double()
    return torch.stack([0.2 + 0.6 * x, 0.3 + 0.4 * disc, 0.8 - 0.6 * y]).double()


@pytest.mark.parametrize("kind", [PixelImage, FourierImage])
def test_pixel_and_fourier_images_start_exactly_at_the_picture(kind):
    picture = a_picture()
    images = kind([1, 948], 32, seed=0).double()
    images.start_from(picture)
    shown = images(torch.tensor([0, 1]))
    torch.testing.assert_close(shown, picture.expand(2, -1, -1, -1), rtol=0, atol=1e-6)


def test_phase_image_starts_from_the_pictures_layout():
    """Only the phases are free: the start keeps the picture's layout (correlated with it), not its
    exact values; a random start is not correlated with it."""
    picture = a_picture()
    started, random = PhaseImage([1], 32, seed=0).double(), PhaseImage([1], 32, seed=0).double()
    started.start_from(picture)
    grey = picture.mean(0).flatten()

    def correlation(images: PhaseImage) -> float:
        shown = images(torch.tensor([0]))[0].mean(0).flatten()
        return torch.corrcoef(torch.stack([shown, grey]))[0, 1].item()

    assert correlation(started) > 0.6 and abs(correlation(random)) < 0.3  # measured: 0.80
