"""Networks for tests: the built-in Lite networks under their test-folder names, and a tiny random one."""

from __future__ import annotations

from torch import nn

from maxclass_lightning import classifiers

#: Input sides the Lite models were trained at, in pixels.
LITE0_SIZE = classifiers.LITE_NETWORKS["efficientnet_lite0"][1]
LITE1_SIZE = classifiers.LITE_NETWORKS["efficientnet_lite1"][1]


def efficientnet_lite0() -> nn.Module:
    """EfficientNet-Lite0 with its ImageNet weights (224 px, ImageNet mean/std), as the app builds it."""
    return classifiers.build_classifier("efficientnet_lite0")


def efficientnet_lite1() -> nn.Module:
    """EfficientNet-Lite1 with its ImageNet weights (240 px): a second network, for measuring transfer."""
    return classifiers.build_classifier("efficientnet_lite1")


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


#: Input statistics far from ImageNet's, for tests that a network is fed as it expects.
OWN_MEAN, OWN_STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


def tiny_classifier_with_own_statistics() -> nn.Module:
    """The tiny network, stating its own input side and mean/std the way timm models do
    (``pretrained_cfg``), for tests that ``fit`` and ``evaluate`` both normalize with them."""
    network = tiny_imagenet_classifier()
    network.pretrained_cfg = {"input_size": (3, 32, 32), "mean": OWN_MEAN, "std": OWN_STD}
    return network


def never_built() -> nn.Module:
    """A classifier whose construction fails the test: for checks that must fail before it."""
    raise AssertionError("the classifier was built")
