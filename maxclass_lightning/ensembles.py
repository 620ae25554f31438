"""Several classifiers as one (torch-dreams' ``ModelBunch``): each network sees the image at its own
input side and with its own normalization, and their logits are averaged, so a class objective is
the mean of the networks' objectives. What several networks agree on transfers to networks never
optimized against better than what one alone rewards."""

from __future__ import annotations

from torch import Tensor, nn
from torchvision.transforms import v2

from maxclass_lightning.transforms import resized


class Ensemble(nn.Module):
    """The mean logits of ``networks`` on one batch of images in [0, 1].

    Args:
        networks: frozen classifiers with the same classes.
        sizes: each network's input side in pixels (the images are resized to it).
        normalizations: each network's input normalization (``nn.Identity`` for raw images).
    """

    def __init__(self, networks: list[nn.Module], sizes: list[int], normalizations: list[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(networks)
        self.sizes = sizes
        self.normalizations = nn.ModuleList(normalizations)

    def forward(self, images: Tensor) -> Tensor:
        logits = [
            network(normalize(resized(images, size)))
            for network, size, normalize in zip(self.members, self.sizes, self.normalizations)
        ]
        return sum(logits[1:], logits[0]) / len(logits)


def normalization(mean: tuple[float, ...], std: tuple[float, ...], normalize: bool) -> nn.Module:
    return v2.Normalize(mean, std) if normalize else nn.Identity()
