"""``python -m maxclass_lightning evaluate``: score pictures with any classifier.

It scores what the user sees: PNG files as read back from disk (8-bit, after the display
pipeline), resized to the classifier's input size and normalized with the classifier's own mean
and std, as ``fit`` does (``classifiers.Classifier``). A picture's target class comes from its
exported name ``<index>_<name>.png`` or from ``--classes``.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from jsonargparse import ArgumentParser
from torch import nn

from maxclass_lightning import classifiers
from maxclass_lightning.errors import ConfigError, about
from maxclass_lightning.images import load_picture
from maxclass_lightning.objectives import target_scores

#: How many of the top classes count as a top-5 hit.
TOP_K = 5

#: Pictures per forward pass.
EVALUATE_BATCH = 32

_EXPORTED_NAME = re.compile(r"^(\d+)_")


@dataclass
class Score:
    """How the classifier sees one picture of ``target``."""

    path: str
    target: int
    name: str
    probability: float
    rank: int  # 1: the classifier's top class

    @property
    def top1(self) -> bool:
        return self.rank == 1

    @property
    def top5(self) -> bool:
        return self.rank <= TOP_K


def picture_paths(inputs: list[str]) -> list[Path]:
    """PNG files named by ``inputs``: files, or folders (their class PNGs, not grids)."""
    paths = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():  # in class-index order, as exported
            exported = [p for p in path.glob("*.png") if _EXPORTED_NAME.match(p.name)]
            paths += sorted(exported, key=lambda p: int(_EXPORTED_NAME.match(p.name).group(1)))
        elif path.is_file():
            paths.append(path)
        else:
            raise ConfigError(f"{item} does not exist; give PNG files or a run's images/ folder")
    if not paths:
        raise ConfigError(f"no class PNGs in {' '.join(inputs)}; give files or a folder of <index>_<name>.png")
    return paths


def target_classes(paths: list[Path], classes: list[int | str] | None, names: list[str]) -> list[int]:
    """Each picture's target class: ``classes`` in order, or the index its exported name starts with."""
    if classes is not None:
        classes = classes if isinstance(classes, list) else [classes]  # one picture: --classes 285
        with about("classes"):
            targets = [classifiers.resolve_classes([target], names)[0] for target in classes]  # repeats allowed
        if len(targets) != len(paths):
            raise ConfigError(f"{len(targets)} classes for {len(paths)} pictures; give one class per picture")
        return targets
    targets = []
    for path in paths:
        match = _EXPORTED_NAME.match(path.name)
        if not match:
            raise ConfigError(f"cannot tell the class of {path.name}; name it <index>_<name>.png or pass --classes")
        targets.append(classifiers.resolve_classes([int(match.group(1))], names)[0])
    return targets


@torch.no_grad()
def score(
    paths: list[Path],
    targets: list[int],
    classifier: classifiers.Classifier,
    size: int | None = None,
    normalize: bool = True,
    device: str = "cpu",
    batch_size: int = EVALUATE_BATCH,
) -> list[Score]:
    """Target probability and rank (1: top) of each picture under ``classifier``, at ``size`` px
    (default: its input side), normalized with its own mean and std."""
    preprocess = classifier.normalization() if normalize else nn.Identity()
    network = classifier.network.to(device)
    scores = []
    for start in range(0, len(paths), batch_size):
        batch_paths, batch_targets = paths[start : start + batch_size], targets[start : start + batch_size]
        pictures = torch.stack([load_picture(path, size or classifier.input_size) for path in batch_paths])
        logits = network(preprocess(pictures.to(device))).float()
        _, probabilities, ranks = target_scores(logits, torch.tensor(batch_targets, device=device))
        for path, target, probability, rank in zip(batch_paths, batch_targets, probabilities.tolist(), ranks.tolist()):
            scores.append(Score(str(path), target, classifier.class_names[target], probability, rank))
    return scores


def report(scores: list[Score]) -> str:
    """One line per picture, then a summary line."""
    lines = [f"{'class':<28} {'prob':>7} {'top1':>5} {'top5':>5} {'rank':>5}"]
    for s in scores:
        lines.append(f"{f'{s.target} {s.name}':<28} {s.probability:7.3f} {s.top1!s:>5} {s.top5!s:>5} {s.rank:>5}")
    count = len(scores)
    mean = sum(s.probability for s in scores) / count
    lines.append(
        f"summary: {count} pictures, top-1 {sum(s.top1 for s in scores)}/{count}, "
        f"top-5 {sum(s.top5 for s in scores)}/{count}, mean target probability {mean:.3f}"
    )
    return "\n".join(lines)


def parser() -> ArgumentParser:
    parser = ArgumentParser(prog="python -m maxclass_lightning evaluate", description=__doc__, exit_on_error=False)
    parser.add_argument("pictures", nargs="+", help="PNG files, or a run's images/ folder")
    parser.add_argument(
        "--classifier",
        default="vgg16",
        help="torchvision name, efficientnet_lite0/1/2, timm:<name>, package.module:function",
    )
    parser.add_argument(
        "--weights", type=str | None, default="DEFAULT", help="DEFAULT (pretrained), a .pth path, or null (random)"
    )
    parser.add_argument(
        "--classes", type=list[int | str] | int | str | None, default=None, help="one class per picture (a list)"
    )
    parser.add_argument(
        "--image_size", type=int | None, default=None, help="input side in pixels (default: the classifier's own)"
    )
    parser.add_argument("--normalize", type=bool, default=True, help="the classifier's own mean/std before it")
    parser.add_argument("--device", default="cpu", help="where the classifier runs: cpu, cuda, cuda:1, ...")
    parser.add_argument("--json", type=str | None, default=None, help="also write the scores to this file")
    return parser


def check_options(config) -> None:
    """The values the parser's types let through but that cannot work, before anything runs."""
    if config.image_size is not None and config.image_size < 1:
        raise ConfigError(f"--image_size is {config.image_size}; give the classifier's input side in pixels, e.g. 224")
    try:
        device = torch.device(config.device)
    except RuntimeError:
        raise ConfigError(f"--device is {config.device}; give cpu, cuda or cuda:<index>") from None
    if device.type == "cuda" and (not torch.cuda.is_available() or (device.index or 0) >= torch.cuda.device_count()):
        raise ConfigError(f"--device is {config.device} but this machine has no such GPU; use --device cpu")
    if config.json:
        folder = Path(config.json).expanduser().absolute().parent
        if not folder.is_dir() or not os.access(folder, os.W_OK):
            raise ConfigError(f"--json is {config.json}, in a folder that cannot be written; give a writable path")


def main(args: list[str]) -> list[Score]:
    config = parser().parse_args(args)
    check_options(config)
    paths = picture_paths(config.pictures)
    classifier = classifiers.load(config.classifier, config.weights)
    targets = target_classes(paths, config.classes, classifier.class_names)
    scores = score(paths, targets, classifier, config.image_size, config.normalize, config.device)
    print(report(scores))
    if config.json:
        records = [{**asdict(s), "top1": s.top1, "top5": s.top5} for s in scores]
        Path(config.json).write_text(json.dumps(records, indent=2))
    return scores
