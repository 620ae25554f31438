"""What the images maximize: the class logit, minus optional penalties.

The objective of one forward pass is the sum over its work items of the target logit (each image's
mean over its views), minus the weighted per-image regularizers, minus Lucid's diversity term
among the samples of a class when ``samples_per_class > 1`` and a diversity weight is given.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from maxclass_lightning import regularizers
from maxclass_lightning.errors import ConfigError


def class_logit(logits: Tensor, targets: Tensor) -> Tensor:
    """Each item's logit for its own target class, ``[K]`` (logits ``[K, classes]``)."""
    return logits.gather(1, targets[:, None]).squeeze(1)


def target_scores(logits: Tensor, targets: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Each item's target logit, its softmax probability and its rank among all classes (1: the
    classifier's top class), ``[K]`` each: how a classifier reads a picture, in fit, evaluate and
    the Python API alike."""
    score = class_logit(logits, targets)
    probability = logits.softmax(1).gather(1, targets[:, None]).squeeze(1)
    rank = (logits > score[:, None]).sum(1) + 1
    return score, probability, rank


def diversity(features: Tensor, groups: Tensor) -> Tensor:
    """Lucid's diversity: the summed cosine similarity between the Gram matrices of every two
    items of the same group, over the group size (``features`` ``[K, C, H, W]``, ``groups``
    ``[K]``: items of one group are the samples of one class seen through the same view).

    A Gram matrix (channel co-activations, summed over positions) describes a picture's style
    independently of where things are; penalizing its similarity pushes the samples of a class
    towards different ways of showing it rather than shifted copies.
    """
    flat = features.flatten(2).float() if features.dtype in (torch.float16, torch.bfloat16) else features.flatten(2)
    grams = F.normalize((flat @ flat.transpose(1, 2)).flatten(1), dim=1)
    same = groups[:, None] == groups[None, :]
    others = same & ~torch.eye(len(groups), dtype=torch.bool, device=groups.device)
    group_size = same.sum(1).to(grams.dtype)
    return ((grams @ grams.T) * others).sum(1).div(group_size).sum()


class ClassObjective:
    """The loss of a forward pass: ``-(logit + diversity and regularizer terms)``, as a sum over
    images (each a mean over its views), so that a class's gradient does not depend on the others.

    Args:
        classifier: the frozen network, whose ``diversity_layer`` output is read (a forward hook).
        views: views per image (their scores are averaged).
        samples_per_class: images per class.
        diversity_weight: weight of the diversity penalty (0: off; Lucid's examples use 1e2 to
            1e3 against a channel objective, logits here are of order 10 to 50).
        diversity_layer: name of the classifier module whose output feeds the diversity term
            (``features.16`` in VGG16, ``_blocks.8`` in EfficientNet-Lite0).
        regularizer_weights: per-image penalties by name (``regularizers``).
    """

    def __init__(
        self,
        classifier: nn.Module,
        views: int,
        samples_per_class: int = 1,
        diversity_weight: float = 0.0,
        diversity_layer: str | None = None,
        regularizer_weights: dict[str, float] | None = None,
    ) -> None:
        self.views = views
        self.samples_per_class = samples_per_class
        self.diversity_weight = diversity_weight
        self.regularizer_weights = regularizers.check(regularizer_weights or {})
        self.layer: nn.Module | None = None
        # A layer name is checked even while the term is off: a typo should not wait for the run
        # that turns it on.
        if self.uses_diversity or diversity_layer is not None:
            layers = dict(classifier.named_modules())
            if diversity_layer not in layers:
                examples = ", ".join(name for name in list(layers)[1:6])
                raise ConfigError(
                    f"model.diversity_layer is {diversity_layer!r}, not a layer of the classifier; "
                    f"give a module name such as {examples}"
                )
            self.layer = layers[diversity_layer] if self.uses_diversity else None

    @property
    def uses_diversity(self) -> bool:
        return self.diversity_weight != 0 and self.samples_per_class > 1

    @property
    def group_items(self) -> int:
        """Work items that must share a forward pass: all samples and views of a class when the
        diversity term compares them, otherwise one."""
        return self.samples_per_class * self.views if self.uses_diversity else 1

    @contextmanager
    def capture(self) -> Iterator[list[Tensor]]:
        """Collects the diversity layer's output of the forward passes run inside."""
        captured: list[Tensor] = []
        if self.layer is None:
            yield captured
            return
        handle = self.layer.register_forward_hook(lambda module, args, output: captured.append(output))
        try:
            yield captured
        finally:
            handle.remove()

    def loss(
        self, target: Tensor, images: Tensor, features: list[Tensor], groups: Tensor, start: Tensor | None = None
    ) -> Tensor:
        """The loss of a forward pass.

        Args:
            target: each item's target logit, ``[K]``.
            images: each item's image, ``[K, 3, H, W]``, in the parameterization's range.
            features: the diversity layer's output, ``[[K, C, h, w]]`` (empty when off).
            groups: each item's (class, view) group, ``[K]``.
            start: the picture the run started from (``model.init_image``), or None.
        """
        loss = -target.sum() / self.views
        if self.regularizer_weights:
            loss = loss + regularizers.weighted(images, self.regularizer_weights, start).sum() / self.views
        if self.uses_diversity:
            loss = loss + self.diversity_weight * diversity(features[0], groups) / self.views
        return loss
