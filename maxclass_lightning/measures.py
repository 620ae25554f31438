"""How a picture looks to a person, in numbers: contrast and colourfulness.

Neither is quality on its own (pure noise scores high on both), but pictures that read as their
class to another network and also score like photographs are not washed out. Photographs
(scikit-image's sample photographs, README) score about 0.2 RMS contrast and 30 to 60 colourfulness.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

#: Mean RMS contrast and colourfulness of scikit-image's four colour photographs (astronaut,
#: chelsea, coffee, rocket; ranges 0.12-0.30 and 38-77), measured with the functions below:
#: what the quality recipe's pictures are held to (README, "Quality").
PHOTOGRAPHS = {"rms_contrast": 0.192, "colourfulness": 56.5}

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


def read_picture(path: str) -> np.ndarray:
    """An image file as ``[H, W, 3]`` float64 RGB in [0, 1]."""
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.float64) / 255.0
