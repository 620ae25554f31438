"""Callbacks that show and keep the class images: TensorBoard snapshots and PNG export.

Both are on by default (the module adds any that ``trainer.callbacks`` does not configure) and
write from global rank 0 only. The images are parameters replicated on every process, so rank 0
renders them alone, with no collective call.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only
from torch import Tensor
from typing_extensions import override

from maxclass_lightning.display import contact_sheet, grid, grid_tiles, save_png

#: Images per render-and-display pass when exporting, bounding memory for 1000-class runs.
EXPORT_CHUNK = 16


def pictures(module: LightningModule, chunk: int = EXPORT_CHUNK) -> Iterator[tuple[range, Tensor]]:
    """(class positions, display-ready pictures on the CPU) for all classes of the run, ``chunk`` at a time."""
    count = len(module.classes)
    for start in range(0, count, chunk):
        positions = range(start, min(start + chunk, count))
        yield positions, module.display(module.render(positions)).cpu()


class ImageExport(Callback):
    """Writes ``images/<index>_<name>.png`` per class, ``images/grid.png`` and a labelled
    ``images/contact_sheet.png`` in the run directory when fit ends, through the module's display
    pipeline."""

    def __init__(self, dirname: str = "images") -> None:
        self.dirname = dirname

    @override
    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # trainer.log_dir is a collective call under DDP: every rank asks, rank 0 writes.
        folder = Path(trainer.log_dir or trainer.default_root_dir) / self.dirname
        if trainer.is_global_zero:
            self.export(pl_module, folder)

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
    """

    def __init__(self, every_n_steps: int | None = None, snapshots: int = 20, max_class_tags: int = 32) -> None:
        self.every_n_steps = every_n_steps
        self.snapshots = snapshots
        self.max_class_tags = max_class_tags

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
        for positions, batch in pictures(pl_module):
            for position, picture in zip(positions, batch):
                if position < self.max_class_tags:
                    for writer in writers:
                        writer.add_image(f"images/{pl_module.tags[position]}", picture, step)
            tiles.append(grid_tiles(batch, len(pl_module.classes)))
        for writer in writers:
            writer.add_image("images/grid", grid(torch.cat(tiles)), step)
