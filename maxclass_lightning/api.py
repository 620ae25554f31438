"""The Python API: ``visualize(model, classes)`` for notebooks and scripts.

It runs the command line's own ``MaxClassCLI`` (same recipes, trainer defaults, checks, progress
bar and callbacks) without its subcommand, then fits the module with the Trainer that CLI built,
so a call and ``python -m maxclass_lightning fit`` with the same settings make the same pictures.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import Tensor, nn

from maxclass_lightning import classifiers, recipes
from maxclass_lightning.callbacks import image_labels, pictures
from maxclass_lightning.display import contact_sheet, grid, grid_tiles, save_png
from maxclass_lightning.metrics import item_scores
from maxclass_lightning.module import ClassVisualizer

#: Option values that travel as command-line text (checked by the CLI's own rules); anything
#: else (a logger or callback instance) is handed to the Trainer as the object it is.
_PLAIN = (str, int, float, bool, type(None), list, tuple, dict)


@dataclass
class Visualization:
    """The pictures of a run, one per image (class-major, then sample), and their final scores.

    Attributes:
        names: file names, ``259_pomeranian`` (``259_pomeranian_1`` for samples).
        labels: labels as the contact sheet shows them, ``259 Pomeranian``.
        images: the optimized images ``[N, 3, S, S]`` as the classifier sees them, before the
            display pipeline (raw pixels may leave [0, 1]).
        pictures: the display-ready pictures (upsampled, sharpened, stretched) as PIL images.
        score: the target logit of each image as the classifier sees it (no views).
        probability: the target's softmax probability.
        rank: the target's rank among all classes (1: the classifier's top class).
        module: the trained ``ClassVisualizer`` (its ``trainer`` holds the logger, checkpoints).
    """

    names: list[str]
    labels: list[str]
    images: Tensor
    pictures: list[Image.Image]
    score: Tensor
    probability: Tensor
    rank: Tensor
    module: ClassVisualizer

    def scores(self) -> list[dict[str, Any]]:
        """Per image: name, score, probability and rank, as plain numbers."""
        return [
            {"name": name, "score": float(s), "probability": float(p), "rank": int(r)}
            for name, s, p, r in zip(self.names, self.score, self.probability, self.rank)
        ]

    def grid(self) -> Image.Image:
        """All pictures in one labelled contact sheet."""
        tiles = grid_tiles(torch.stack([_tensor(p) for p in self.pictures]), len(self.pictures))
        return contact_sheet(tiles, self.labels)

    def save(self, folder: str | Path) -> Path:
        """Write ``<name>.png`` per picture, ``grid.png``, ``contact_sheet.png`` and ``scores.json``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for name, picture in zip(self.names, self.pictures):
            save_png(picture, folder / f"{name}.png")
        tiles = grid_tiles(torch.stack([_tensor(p) for p in self.pictures]), len(self.pictures))
        save_png(grid(tiles), folder / "grid.png")
        save_png(contact_sheet(tiles, self.labels), folder / "contact_sheet.png")
        (folder / "scores.json").write_text(json.dumps(self.scores(), indent=2))
        return folder

    def _repr_png_(self) -> bytes:
        """Jupyter shows the contact sheet inline."""
        buffer = io.BytesIO()
        self.grid().save(buffer, format="PNG")
        return buffer.getvalue()

    def __repr__(self) -> str:
        shown = ", ".join(f"{s['name']} p={s['probability']:.3f} rank {s['rank']}" for s in self.scores()[:8])
        return f"Visualization({len(self.names)} images: {shown})"


def _tensor(picture: Image.Image) -> Tensor:
    return (
        torch.frombuffer(bytearray(picture.tobytes()), dtype=torch.uint8)
        .view(picture.height, picture.width, 3)
        .permute(2, 0, 1)
        .float()
        / 255
    )


def _picture(tensor: Tensor) -> Image.Image:
    array = (tensor.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).contiguous()
    return Image.fromarray(array.numpy(), mode="RGB")


def _argument(option: str, value: Any) -> str:
    """``--option=value``: text as it is (quoted, a string option would keep the quotes), the rest as JSON."""
    text = value if isinstance(value, str) else json.dumps(list(value) if isinstance(value, tuple) else value)
    return f"--{option}={text}"


def visualize(
    classifier: str | nn.Module,
    classes: int | str | list[int | str] | None = None,
    recipe: str | Path = "quality",
    objectives: list[str] | None = None,
    steps: int | None = None,
    image_size: int | None = None,
    weights: str | None = classifiers.PRETRAINED,
    seed: int | None = None,
    model_options: dict[str, Any] | None = None,
    **trainer_options: Any,
) -> Visualization:
    """Optimize one picture per class of ``classifier`` and return them with their scores.

    Args:
        classifier: an ``nn.Module`` instance (ImageNet logits; frozen in place), a torchvision
            name (``vgg16``), ``efficientnet_lite0``, ``timm:<name>`` or ``package.module:function``.
        classes: class indices or names (case-insensitive), or ``all`` (default: the recipe's).
        objectives: instead of classes, one picture per objective string: ``"features.28:17"``
            (a channel), ``"features.28:17@center"`` (its centre neuron), ``"features.28"`` (a
            layer), ``"logit:259 - logit:151"`` (sums of these, weighted).
        recipe: a shipped recipe's name (``seed``, ``quality``, ``lucid``, ``atlas``, ``quick``)
            or a YAML config file; its classifier and classes are replaced by the arguments.
        steps: optimizer steps (default: the recipe's ``trainer.max_steps``).
        image_size: side of the optimized images in pixels (default: the recipe's, else the
            classifier's input side).
        weights: ``DEFAULT`` (pretrained; a module instance as given), a state dict path, or None
            (a seeded random network).
        seed: ``seed_everything`` (default: the recipe's).
        model_options: other ``ClassVisualizer`` options, by name (``{"views": 4}``).
        trainer_options: any ``Trainer`` option (``devices``, ``precision``, ``logger``, ...).
    """
    arguments = ["--config", str(recipes.path(recipe) if recipes.is_name(str(recipe)) else recipe)]
    named = isinstance(classifier, str)
    # A module instance cannot be written as text: a name stands in while parsing, then the instance.
    arguments += [_argument("model.classifier", classifier if named else "vgg16"), _argument("model.weights", weights)]
    if objectives is not None:  # one image per objective, instead of the recipe's classes
        arguments += [_argument("model.classes", None), _argument("model.objectives", list(objectives))]
    elif classes is not None:
        arguments.append(_argument("model.classes", classes))
    if image_size is not None:
        arguments.append(_argument("model.image_size", image_size))
    if steps is not None:
        arguments.append(_argument("trainer.max_steps", steps))
    if seed is not None:
        arguments.append(_argument("seed_everything", seed))
    for name, value in (model_options or {}).items():
        arguments.append(_argument(f"model.{name}", value))
    objects = {}
    for name, value in trainer_options.items():
        if isinstance(value, _PLAIN) and not (isinstance(value, (list, tuple)) and not all(map(_is_plain, value))):
            arguments.append(_argument(f"trainer.{name}", value))
        else:
            objects[name] = value
    objects.setdefault("enable_model_summary", False)  # the layer table says nothing about the pictures
    with quiet():
        cli = _cli(arguments, None if named else classifier, objects)
        cli.trainer.fit(cli.model)
    return _result(cli.model)


#: Loggers whose notices (seed, accelerators, tips, the replaced default checkpoint, the end of
#: fit) a notebook user does not need around the progress bar and the pictures.
NOTICE_LOGGERS = ("lightning.pytorch", "lightning.fabric")


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """The command line's warning filters, scoped to the call, plus Lightning's notices held back
    and jsonargparse's note that a module instance cannot be written into a config: what is left
    is the progress bar, real problems (warnings and errors) and the result."""
    from maxclass_lightning.cli import quiet_lightning  # the command line imports this module

    loggers = [logging.getLogger(name) for name in NOTICE_LOGGERS]
    levels = [logger.level for logger in loggers]
    with warnings.catch_warnings():
        quiet_lightning()
        warnings.filterwarnings("ignore", message=r"(?s).*Unable to serialize instance")
        warnings.filterwarnings("ignore", message=r".*skip_none parameter was deprecated.*")
        # The module logs its scores itself, from step 0 and at the end, whatever the run's length.
        warnings.filterwarnings("ignore", message=r".*smaller than the logging interval.*")
        for logger in loggers:
            logger.setLevel(logging.WARNING)
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels):
                logger.setLevel(level)


def _is_plain(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool, type(None)))


def _cli(arguments: list[str], module: nn.Module | None, objects: dict[str, Any]):
    """The command line's ``MaxClassCLI``, parsed from ``arguments`` and instantiated without running,
    with the module instance and the Trainer option objects put in after the checks."""
    # Imported here: the command line imports the package, whose __init__ imports this module.
    from lightning.pytorch.cli import SaveConfigCallback

    from maxclass_lightning.cli import TRAINER_DEFAULTS, MaxClassCLI
    from maxclass_lightning.parse_errors import check_config_files

    class _Api(MaxClassCLI):
        def before_instantiate_classes(self) -> None:
            super().before_instantiate_classes()
            if module is not None:
                self.config.model.classifier = module
            for name, value in objects.items():
                self.config.trainer[name] = value

    check_config_files(arguments)
    with warnings.catch_warnings():
        # A notebook kernel's own sys.argv is no conflict with these arguments.
        warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
        return _Api(
            ClassVisualizer,
            seed_everything_default=0,
            trainer_defaults=TRAINER_DEFAULTS,
            # config.yaml cannot hold a module instance; a named classifier's run saves it as the CLI does
            save_config_callback=None if module is not None else SaveConfigCallback,
            save_config_kwargs={"overwrite": True},
            parser_kwargs={"exit_on_error": False},
            auto_configure_optimizers=False,
            run=False,
            args=arguments,
        )


@torch.no_grad()
def _result(module: ClassVisualizer) -> Visualization:
    rows = range(len(module.owned_rows))
    images = module.render(rows).float().cpu()
    shown = torch.cat([batch for _, batch in pictures(module)]) if len(rows) else images[:0]
    device = next(iter(module.parameters()), torch.zeros(())).device
    positions = torch.arange(len(rows), device=device)
    logits, target, _ = module.read(images.to(device), positions)
    columns = item_scores(logits.double(), target.double(), module.reference_classes[positions]).cpu()
    score, probability, rank = columns[:, 0], columns[:, 1], columns[:, 2].long()
    return Visualization(
        names=list(module.image_names),
        labels=image_labels(module),
        images=images,
        pictures=[_picture(picture) for picture in shown],
        score=score,
        probability=probability,
        rank=rank,
        module=module,
    )
