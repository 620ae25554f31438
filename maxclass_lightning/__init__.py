"""Optimize input images that maximize a frozen classifier's class scores, as a Lightning app.

The public names are imported on first use (PEP 562), so that ``python -m maxclass_lightning
gallery`` and ``import maxclass_lightning.gallery`` do not pay for torch and Lightning.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

#: Each public name, and the module that defines it.
_EXPORTS = {
    "ClassImages": "images",
    "ClassVisualizer": "module",
    "Display": "display",
    "PixelImage": "images",
    "Visualization": "api",
    "visualize": "api",
}

__all__ = ["ClassImages", "ClassVisualizer", "Display", "PixelImage", "Visualization", "visualize"]

if TYPE_CHECKING:
    from maxclass_lightning.api import Visualization, visualize
    from maxclass_lightning.display import Display
    from maxclass_lightning.images import ClassImages, PixelImage
    from maxclass_lightning.module import ClassVisualizer


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'maxclass_lightning' has no attribute {name!r}")
    return getattr(importlib.import_module(f"maxclass_lightning.{_EXPORTS[name]}"), name)
