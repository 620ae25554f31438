"""Contrast and colourfulness on pictures whose values follow from the definitions by hand."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from maxclass_lightning.measures import colourfulness, read_picture, rms_contrast, spectral_slope


def halves(left: tuple[float, float, float], right: tuple[float, float, float]) -> np.ndarray:
    """An 8x8 RGB picture in [0, 1]: ``left`` colour on the left half, ``right`` on the right."""
    picture = np.empty((8, 8, 3))
    picture[:, :4], picture[:, 4:] = left, right
    return picture


def test_rms_contrast_of_black_and_white_halves_is_one_half():
    assert rms_contrast(halves((0, 0, 0), (1, 1, 1))) == pytest.approx(0.5)
    assert rms_contrast(halves((0.3, 0.3, 0.3), (0.3, 0.3, 0.3))) == pytest.approx(0.0)


def test_colourfulness_of_red_and_green_halves():
    # red-green is +-255 (std 255, mean 0); yellow-blue is 127.5 everywhere (std 0, mean 127.5).
    assert colourfulness(halves((1, 0, 0), (0, 1, 0))) == pytest.approx(255 + 0.3 * 127.5)


def test_grey_pictures_have_no_colourfulness():
    assert colourfulness(halves((0, 0, 0), (1, 1, 1))) == pytest.approx(0.0)


def test_read_picture_gives_rgb_in_unit_range(tmp_path):
    Image.fromarray(np.full((4, 4), 255, dtype=np.uint8), mode="L").save(tmp_path / "white.png")
    picture = read_picture(str(tmp_path / "white.png"))
    assert picture.shape == (4, 4, 3)
    assert picture.min() == picture.max() == 1.0


def power_law_picture(exponent: float, side: int = 224, seed: int = 0) -> np.ndarray:
    """A grey ``[side, side, 3]`` picture with amplitude 1/f^exponent and random phases."""
    frequencies = np.fft.fftfreq(side, d=1.0 / side)
    radius = np.hypot(*np.meshgrid(frequencies, frequencies, indexing="ij"))
    amplitude = np.where(radius > 0, np.maximum(radius, 1.0) ** -exponent, 0.0)
    phases = np.random.default_rng(seed).uniform(0, 2 * np.pi, (side, side))
    grey = np.real(np.fft.ifft2(amplitude * np.exp(1j * phases)))
    grey = (grey - grey.min()) / (grey.max() - grey.min())
    return np.repeat(grey[:, :, None], 3, axis=2)


@pytest.mark.parametrize("exponent", [0.0, 1.0, 1.5, 2.0])
def test_spectral_slope_recovers_the_exponent_of_a_power_law_picture(exponent):
    assert spectral_slope(power_law_picture(exponent)) == pytest.approx(-exponent, abs=0.1)


def test_spectral_slope_is_measured_at_224_px_whatever_the_side():
    """A 448 px picture with the same spectrum per picture (cycles per picture) measures the same."""
    assert spectral_slope(power_law_picture(1.5, side=448)) == pytest.approx(-1.5, abs=0.15)
