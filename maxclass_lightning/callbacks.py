"""Callbacks that show and keep the class images: TensorBoard snapshots, PNG export, and the
guard that keeps the last finite images when a run diverges (``checkpoints`` keeps the rest).

All are on by default (the module adds any that ``trainer.callbacks`` does not configure) and
write from global rank 0 only. The images are parameters replicated on every process, so rank 0
renders them alone, with no collective call.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_info, rank_zero_only
from torch import Tensor
from typing_extensions import override

from maxclass_lightning.checkpoints import is_disk_full, run_directory
from maxclass_lightning.display import contact_sheet, grid, grid_tiles, save_png
from maxclass_lightning.errors import RunError

#: Images per render-and-display pass when exporting, bounding memory for 1000-class runs.
EXPORT_CHUNK = 16

#: Side of the TensorBoard grid snapshot, pixels: smaller than the exported grid, since it is
#: encoded about 20 times per run.
TENSORBOARD_GRID_MAX_SIDE = 2048


def pictures(
    module: LightningModule, chunk: int = EXPORT_CHUNK, upsample: bool = True
) -> Iterator[tuple[range, Tensor]]:
    """(class positions, display-ready pictures on the CPU) for all classes of the run, ``chunk`` at
    a time; without ``upsample``, at the optimized size (the rest of the display pipeline applies)."""
    display = module.display if upsample else dataclasses.replace(module.display, upsample=1.0)
    count = len(module.classes)
    for start in range(0, count, chunk):
        positions = range(start, min(start + chunk, count))
        yield positions, display(module.render(positions)).cpu()


class ImageExport(Callback):
    """Writes ``images/<index>_<name>.png`` per class, ``images/grid.png`` and a labelled
    ``images/contact_sheet.png`` in the run directory when fit ends, through the module's display
    pipeline."""

    def __init__(self, dirname: str = "images") -> None:
        self.dirname = dirname

    @override
    @rank_zero_only
    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.export(pl_module, run_directory(trainer) / self.dirname)

    @override
    @rank_zero_only
    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        """A run that stops early still leaves the images it reached (after a divergence, the
        guard has already put back the last finite ones); not when the disk is full, where it
        would fail the same way (the checkpoint keeps the images)."""
        if is_disk_full(exception):
            return
        folder = self.export(pl_module, run_directory(trainer) / self.dirname)
        rank_zero_info(f"Exported the images of step {trainer.global_step} to {folder}")

    def export(self, pl_module: LightningModule, folder: Path) -> Path:
        """Write every class picture and the grid into ``folder``."""
        tiles = []
        for positions, batch in pictures(pl_module):
            for position, picture in zip(positions, batch):
                save_png(picture, folder / f"{pl_module.tags[position]}.png")
            tiles.append(grid_tiles(batch, len(pl_module.classes)))
        tiles = torch.cat(tiles)
        save_png(grid(tiles), folder / "grid.png")
        labels = [f"{index} {pl_module.class_names[index]}" for index in pl_module.classes]
        save_png(contact_sheet(tiles, labels), folder / "contact_sheet.png")
        return folder


class ImageLogger(Callback):
    """Logs the class images to TensorBoard while they form.

    Args:
        every_n_steps: steps between snapshots; null: about ``snapshots`` over the run. The
            initial images (step 0) and the last step are always logged.
        snapshots: snapshots per run when ``every_n_steps`` is null.
        max_class_tags: classes that also get their own tag (``images/259_pomeranian``); every
            class is always in ``images/grid``.
        upsample: apply the display's upsampling to snapshots too. Off by default: TensorBoard
            scales images in the browser, and 4x the pixels is 4x the PNG encoding (upsampled,
            3 snapshots of one 256-px class spent 0.46 s encoding in a 20-step, 11 s run here).
    """

    def __init__(
        self, every_n_steps: int | None = None, snapshots: int = 20, max_class_tags: int = 32, upsample: bool = False
    ) -> None:
        self.every_n_steps = every_n_steps
        self.snapshots = snapshots
        self.max_class_tags = max_class_tags
        self.upsample = upsample

    def interval(self, trainer: Trainer) -> int:
        return self.every_n_steps or max(1, trainer.max_steps // self.snapshots)

    @override
    @rank_zero_only
    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.log_images(trainer, pl_module, step=trainer.global_step)

    @override
    @rank_zero_only
    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if step % self.interval(trainer) == 0 or step == trainer.max_steps:
            self.log_images(trainer, pl_module, step=step)

    def log_images(self, trainer: Trainer, pl_module: LightningModule, step: int) -> None:
        writers = [logger.experiment for logger in trainer.loggers if isinstance(logger, TensorBoardLogger)]
        if not writers:
            return
        tiles = []
        for positions, batch in pictures(pl_module, upsample=self.upsample):
            for position, picture in zip(positions, batch):
                if position < self.max_class_tags:
                    for writer in writers:
                        writer.add_image(f"images/{pl_module.tags[position]}", picture, step)
            tiles.append(grid_tiles(batch, len(pl_module.classes), TENSORBOARD_GRID_MAX_SIDE))
        if len(pl_module.classes) > 1:  # with one class its own tag is the whole picture
            for writer in writers:
                writer.add_image("images/grid", grid(torch.cat(tiles)), step)


def log_interval(trainer: Trainer) -> int:
    """``trainer.log_every_n_steps``, with 0 (never) read as once per run."""
    return trainer.log_every_n_steps or trainer.max_steps


class DivergenceGuard(Callback):
    """Stops a run whose loss or images stop being finite, keeping the last finite images.

    Every ``every_n_steps`` steps (default: ``trainer.log_every_n_steps``; each check is a host
    sync) it checks the loss and the image parameters; a finite state is copied aside, and a
    non-finite one is replaced by that copy before the run stops, so the export shows the last
    finite images. All processes decide together, so none is left waiting for the others.
    """

    def __init__(self, every_n_steps: int | None = None) -> None:
        self.every_n_steps = every_n_steps
        self.finite_state: dict[str, Tensor] | None = None
        self.finite_step = 0

    @override
    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.finite_state = {k: v.detach().clone() for k, v in pl_module.image.state_dict().items()}
        self.finite_step = trainer.global_step

    @override
    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if step % (self.every_n_steps or log_interval(trainer)) and step != trainer.max_steps:
            return
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        state = pl_module.image.state_dict()
        loss_finite = bool(torch.isfinite(loss).all())
        images_finite = all(bool(torch.isfinite(v).all()) for v in state.values())
        if trainer.strategy.reduce_boolean_decision(loss_finite and images_finite, all=True):
            self.finite_state = {k: v.detach().clone() for k, v in state.items()}
            self.finite_step = step
            return
        pl_module.image.load_state_dict(self.finite_state)
        what = "image" if not images_finite else "loss"
        raise RunError(
            f"the {what} stopped being finite by step {step} (the optimizer diverged); the images of step "
            f"{self.finite_step}, the last finite ones, are exported to {run_directory(trainer) / 'images'}. "
            "Lower model.optimizer.init_args.lr"
        )
