"""What each image slot of a run maximizes, and the names its pictures and scores go by: a class
logit per slot (``model.classes``) or an objective string per slot (``model.objectives``).

Both kinds read a forward pass the same way (``capture`` the modules they need, then ``values``),
so the module's step has one code path for both.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import Tensor

from maxclass_lightning import classifiers, expressions
from maxclass_lightning.errors import about
from maxclass_lightning.expressions import ObjectiveValues
from maxclass_lightning.objectives import class_logit

#: The seed's class, when neither ``classes`` nor ``objectives`` is given: 259, Pomeranian.
DEFAULT_CLASS = 259


class ClassLogits:
    """The values of a run's classes on a forward pass: each item's logit for its slot's class."""

    def __init__(self, classes: list[int]) -> None:
        self.classes = torch.tensor(classes, dtype=torch.long)

    def capture(self):
        return contextlib.nullcontext({})  # the logits alone: no module output is read

    def values(self, logits: Tensor, captured: dict[str, Tensor], positions: Tensor) -> Tensor:
        """Each item's class logit, ``[K]`` (``positions``: each item's slot)."""
        if self.classes.device != logits.device:  # once: the table stays on the run's device
            self.classes = self.classes.to(logits.device)
        return class_logit(logits, self.classes[positions])


@dataclass
class Targets:
    """Per slot of the run: ``classes`` (its random-stream key: the class index, or the
    objective's key), ``references`` (the class whose probability and rank are reported, -1: the
    top class), ``tags`` (file names: ``259_pomeranian``, ``0_features.28_17``) and ``labels``
    (``259 pomeranian``, the objective's text); ``values`` reads them from a forward pass."""

    classes: list[int]
    references: list[int]
    tags: list[str]
    labels: list[str]
    values: ClassLogits | ObjectiveValues

    def image_names(self, samples_per_class: int) -> list[str]:
        """Per image (slot-major, then sample), its file name: ``259_pomeranian_1`` for samples."""
        k = samples_per_class
        return [tag if k == 1 else f"{tag}_{sample}" for tag in self.tags for sample in range(k)]


def targets(described: classifiers.Classifier, image_size: int, classes, objectives: list[str] | None) -> Targets:
    """The run's targets: ``objectives`` when given, else ``classes`` (null: the seed's class)."""
    names = described.class_names
    if not objectives:
        with about("model.classes"):
            indices = classifiers.resolve_classes(DEFAULT_CLASS if classes is None else classes, names)
        labels = [f"{index} {names[index]}" for index in indices]
        return Targets(indices, indices, [described.tag(i) for i in indices], labels, ClassLogits(indices))
    channels = expressions.channels(described.network, image_size)
    with about("model.objectives"):
        parsed = [expressions.parse(text, names, channels) for text in objectives]
    return Targets(
        classes=[objective.key() for objective in parsed],
        references=[objective.reference() for objective in parsed],
        tags=[f"{position}_{objective.file_name()}" for position, objective in enumerate(parsed)],
        labels=[objective.text for objective in parsed],
        values=ObjectiveValues(parsed, described.network),
    )
