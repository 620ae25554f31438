"""How different a class's samples are: mean pairwise cosine similarity of EfficientNet-Lite0's
penultimate features (the pooled 1280 features its last layer reads) of the exported pictures,
and whether each sample is Lite0's top-1 for its class.

    python -m tests.diversity RUN_IMAGES_FOLDER [...]
"""

from __future__ import annotations

import itertools
import re
import sys
from pathlib import Path

import torch
from torch.nn import functional as F
from torchvision.io import ImageReadMode, decode_image
from torchvision.transforms import v2

from maxclass_lightning.classifiers import IMAGENET_MEAN, IMAGENET_STD
from tests.networks import LITE0_SIZE, efficientnet_lite0

#: ``<index>_<name>_<sample>.png``
SAMPLE_NAME = re.compile(r"^(\d+)_.*_(\d+)\.png$")


def samples_by_class(folder: Path) -> dict[int, list[Path]]:
    found: dict[int, list[Path]] = {}
    for path in sorted(folder.glob("*.png")):
        match = SAMPLE_NAME.match(path.name)
        if match:
            found.setdefault(int(match[1]), []).append(path)
    return found


@torch.no_grad()
def measure(folder: Path, network: torch.nn.Module | None = None) -> dict[str, float]:
    """Mean pairwise cosine similarity of the samples' penultimate features (over classes), and
    the fraction of samples Lite0 reads as their class (top-1)."""
    network = network or efficientnet_lite0().eval()
    prepare = v2.Compose([v2.Resize(LITE0_SIZE, antialias=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    features: list[torch.Tensor] = []
    handle = network._fc.register_forward_hook(lambda module, args, output: features.append(args[0]))
    similarities, hits, count = [], 0, 0
    try:
        for index, paths in samples_by_class(folder).items():
            pictures = torch.stack([decode_image(str(p), ImageReadMode.RGB).float() / 255 for p in paths])
            features.clear()
            logits = network(prepare(pictures))
            unit = F.normalize(features[0].flatten(1).double(), dim=1)
            similarities += [float(unit[i] @ unit[j]) for i, j in itertools.combinations(range(len(paths)), 2)]
            hits += int((logits.argmax(1) == index).sum())
            count += len(paths)
    finally:
        handle.remove()
    return {"cosine": sum(similarities) / len(similarities), "top1": hits / count}


if __name__ == "__main__":
    model = efficientnet_lite0().eval()
    for argument in sys.argv[1:]:
        print(argument, measure(Path(argument), model))
