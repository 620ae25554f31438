"""How a picture looks to a person, in numbers: contrast, colourfulness and sharpness (the slope
of the amplitude spectrum).

Neither is quality on its own (pure noise scores high on both), but pictures that read as their
class to another network and also score like photographs are not washed out. Photographs
(scikit-image's sample photographs, README) score about 0.2 RMS contrast and 30 to 60 colourfulness.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

#: Mean RMS contrast, colourfulness and spectral slope of scikit-image's four colour photographs
#: (astronaut, chelsea, coffee, rocket, centre squares; ranges 0.12-0.30, 38-77 and -1.24 to
#: -1.49), measured with the functions below: what the recipes' pictures are held to (docs/results.md).
PHOTOGRAPHS = {"rms_contrast": 0.192, "colourfulness": 56.5, "spectral_slope": -1.37}
#: The photographs' range of spectral slopes (softest, sharpest): a picture inside it is as sharp as
#: a photograph.
PHOTOGRAPH_SLOPES = (-1.49, -1.24)

#: ITU-R BT.601 luma weights of R, G, B: the grey level PIL's ``convert("L")`` computes.
LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114])


def rms_contrast(picture: np.ndarray) -> float:
    """Standard deviation of the grey levels, in [0, 1] units, of an ``[H, W, 3]`` RGB picture
    in [0, 1] (Peli 1990's RMS contrast); 0 for a flat picture, 0.5 at most."""
    return float((np.asarray(picture, dtype=np.float64) @ LUMA_WEIGHTS).std())


def colourfulness(picture: np.ndarray) -> float:
    """Hasler and Süsstrunk's colourfulness (2003) of an ``[H, W, 3]`` RGB picture in [0, 1],
    computed on 0-255 values as in the paper: 0 for grey, about 15 "slightly", 33 "moderately",
    59 "quite", 82 "highly", 109 "extremely" colourful."""
    red, green, blue = np.moveaxis(np.asarray(picture, dtype=np.float64) * 255.0, -1, 0)
    red_green = red - green
    yellow_blue = 0.5 * (red + green) - blue
    spread = np.hypot(red_green.std(), yellow_blue.std())
    centre = np.hypot(red_green.mean(), yellow_blue.mean())
    return float(spread + 0.3 * centre)


#: The band over which ``spectral_slope`` fits, in cycles per picture at ``SLOPE_SIDE`` pixels: above
#: the few largest shapes, below the finest pixel-level detail and JPEG/PNG quantization.
SLOPE_BAND = (4.0, 80.0)
SLOPE_SIDE = 224


def spectral_slope(picture: np.ndarray) -> float:
    """The log-log slope of an ``[H, W, 3]`` RGB picture's amplitude spectrum: grey levels at
    ``SLOPE_SIDE`` px, a Hann window (the picture's borders would otherwise add a 1/f cross),
    amplitude averaged over rings of whole cycles per picture, a least-squares line over
    ``SLOPE_BAND``. Photographs measure about -1.3 to -1.5; steeper is softer, flatter is noisier
    (white noise: 0)."""
    grey = np.asarray(picture, dtype=np.float64) @ LUMA_WEIGHTS
    if grey.shape != (SLOPE_SIDE, SLOPE_SIDE):
        image = Image.fromarray(grey.astype(np.float32), mode="F")
        grey = np.asarray(image.resize((SLOPE_SIDE, SLOPE_SIDE), Image.Resampling.LANCZOS), dtype=np.float64)
    window = np.outer(np.hanning(SLOPE_SIDE), np.hanning(SLOPE_SIDE))
    amplitude = np.abs(np.fft.fft2((grey - grey.mean()) * window))
    frequencies = np.fft.fftfreq(SLOPE_SIDE, d=1.0 / SLOPE_SIDE)
    radius = np.rint(np.hypot(*np.meshgrid(frequencies, frequencies, indexing="ij"))).astype(int)
    rings = np.arange(int(SLOPE_BAND[0]), int(SLOPE_BAND[1]) + 1)
    mean_amplitude = np.bincount(radius.ravel(), amplitude.ravel())[rings] / np.bincount(radius.ravel())[rings]
    slope, _ = np.polyfit(np.log(rings), np.log(mean_amplitude), 1)
    return float(slope)


def read_picture(path: str) -> np.ndarray:
    """An image file as ``[H, W, 3]`` float64 RGB in [0, 1]."""
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.float64) / 255.0
