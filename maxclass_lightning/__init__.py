"""Optimize input images that maximize a frozen classifier's class scores, as a Lightning app."""

from maxclass_lightning.api import Visualization, visualize
from maxclass_lightning.display import Display
from maxclass_lightning.images import ClassImages, PixelImage
from maxclass_lightning.module import ClassVisualizer

__all__ = ["ClassImages", "ClassVisualizer", "Display", "PixelImage", "Visualization", "visualize"]
