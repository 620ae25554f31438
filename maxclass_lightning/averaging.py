"""The exported picture as an average of the image over the run's last steps (Polyak averaging).

Each step pulls the image toward what its random views reward; the pulls that only one view
drew average out, and what every view rewards stays. Lightning's ``EMAWeightAveraging`` averages
the whole LightningModule: it would copy the frozen classifier, average images that the
``owned_classes`` strategy has not yet narrowed to a process's share, keep a second module state
in each checkpoint, and (through torch's ``AveragedModel``) average the integer class-index
buffers too. This averages the image parameters only, as buffers of the module, so checkpoints,
resuming and class ownership treat them like the images themselves. Everything about averaging
lives here: when it runs, the update, the swap at the end and the swap back on resume.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from maxclass_lightning.images import ClassImages
from maxclass_lightning.steps import first_of_last


def buffer_name(parameter_name: str) -> str:
    """The buffer holding the average of an image parameter (dots are not allowed in buffer names)."""
    return parameter_name.replace(".", "__")


class ImageAverage(nn.Module):
    """An exponential moving average of every parameter of ``image`` over a run's last ``steps``,
    one row per image.

    After the run's last step the image and its average trade places, so that everything after
    it (the export, the last scores and snapshot, the checkpoint, the Python API) sees the
    average; a run resumed from that checkpoint trades them back first and goes on from the
    last step's image, as if it had not stopped.

    Args:
        image: the parameterization whose parameters are averaged (its rows: this process's images).
        steps: the run's last steps averaged: a whole number, or a fraction of ``max_steps``.
        decay: weight of the previous average at each update.
    """

    def __init__(self, image: ClassImages, steps: int | float, decay: float) -> None:
        super().__init__()
        self.steps = steps
        self.decay = decay
        for name, parameter in image.named_parameters():
            self.register_buffer(buffer_name(name), parameter.detach().clone())
        #: whether the image holds the average and these buffers the last step's image
        self.register_buffer("swapped", torch.zeros((), dtype=torch.bool))

    def pairs(self, image: ClassImages) -> list[tuple[Tensor, Tensor]]:
        """(average, parameter) pairs."""
        return [(self.get_buffer(buffer_name(name)), parameter) for name, parameter in image.named_parameters()]

    def after_step(self, image: ClassImages, step: int, max_steps: int) -> None:
        """Fold the image into the average after optimizer step ``step`` (0-based) if it is one of
        the run's last ``steps``; after the last one, swap, so that what follows sees the average."""
        first = first_of_last(self.steps, max_steps)
        if step >= first:
            self.update(image, first=step == first)
            if step == max_steps - 1:
                self.swap(image)

    def resume(self, image: ClassImages) -> None:
        """A run resumed from the end of one that averaged goes on from its last step's image."""
        if self.swapped:
            self.swap(image)

    @torch.no_grad()
    def update(self, image: ClassImages, first: bool) -> None:
        """Fold the image into the average; the first update of a run's averaging steps starts it
        from the image (so a resumed run that enters them later starts it the same way)."""
        for average, parameter in self.pairs(image):
            average.copy_(parameter) if first else average.lerp_(parameter, 1 - self.decay)

    @torch.no_grad()
    def swap(self, image: ClassImages) -> None:
        for average, parameter in self.pairs(image):
            last = parameter.detach().clone()
            parameter.copy_(average)
            average.copy_(last)
        self.swapped.logical_not_()

    def rows(self, prefix: str) -> dict[str, Tensor]:
        """The buffers with one row per image (all but the flag), by state-dict key under ``prefix``."""
        return {f"{prefix}.{name}": buffer for name, buffer in self.named_buffers() if name != "swapped"}
