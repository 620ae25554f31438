"""The exported picture as an average of the image over the run's last steps (Polyak averaging).

Each step pulls the image toward what its random views reward; the pulls that only one view
drew average out, and what every view rewards stays. Lightning's ``EMAWeightAveraging`` averages
the whole LightningModule: it would copy the frozen classifier, average images that the
``owned_classes`` strategy has not yet narrowed to a process's share, and keep a second
module state in each checkpoint. This averages the image parameters only, as buffers of the
module, so checkpoints, resuming and class ownership treat them like the images themselves.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from maxclass_lightning.images import ClassImages


def buffer_name(parameter_name: str) -> str:
    """The buffer holding the average of an image parameter (dots are not allowed in buffer names)."""
    return parameter_name.replace(".", "__")


class ImageAverage(nn.Module):
    """An exponential moving average of every parameter of ``image``, one row per image.

    After the run's last step the image and its average trade places, so that everything after
    it (the export, the last scores and snapshot, the checkpoint, the Python API) sees the
    average; a run resumed from that checkpoint trades them back first and goes on from the
    last step's image, as if it had not stopped.

    Args:
        image: the parameterization whose parameters are averaged (its rows: this process's images).
        decay: weight of the previous average at each update.
    """

    def __init__(self, image: ClassImages, decay: float) -> None:
        super().__init__()
        self.decay = decay
        for name, parameter in image.named_parameters():
            self.register_buffer(buffer_name(name), parameter.detach().clone())
        #: whether the image holds the average and these buffers the last step's image
        self.register_buffer("swapped", torch.zeros((), dtype=torch.bool))

    def pairs(self, image: ClassImages) -> list[tuple[Tensor, Tensor]]:
        """(average, parameter) pairs."""
        return [(self.get_buffer(buffer_name(name)), parameter) for name, parameter in image.named_parameters()]

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

    def row_names(self) -> list[str]:
        """The buffers with one row per image (all but the flag)."""
        return [name for name, _ in self.named_buffers() if name != "swapped"]
