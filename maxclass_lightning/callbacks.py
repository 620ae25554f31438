"""Callbacks that show and keep the class images: TensorBoard snapshots, PNG export, and the
guard that keeps the last finite images when a run diverges (``checkpoints`` keeps the rest).

All are on by default (the module adds any that ``trainer.callbacks`` does not configure).
With several processes each owns a share of the images (``ownership``): each writes the PNGs of
its own images, and only small thumbnails are gathered to global rank 0, which writes the grid,
the contact sheet and TensorBoard.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor
from typing_extensions import override

from maxclass_lightning import gallery, progress
from maxclass_lightning.checkpoints import (
    InterruptCheckpoint,
    PeriodicCheckpoint,
    is_disk_full,
    is_lightning_default,
    run_directory,
)
from maxclass_lightning.display import contact_sheet, grid, grid_tiles, save_png
from maxclass_lightning.errors import RunError, is_count, require
from maxclass_lightning.metrics import MAX_CLASS_TAGS, ScoreLogger
from maxclass_lightning.ownership import gather_rows
from maxclass_lightning.steps import log_interval

#: Images per render-and-display pass when exporting, bounding memory for 1000-class runs.
EXPORT_CHUNK = 16

#: Side of the TensorBoard grid snapshot, pixels: smaller than the exported grid, since it is
#: encoded about 20 times per run.
TENSORBOARD_GRID_MAX_SIDE = 2048

#: Snapshots per run when ``ImageLogger.every_n_steps`` is null.
SNAPSHOTS = 20

#: The run folder's subfolder of PNGs.
IMAGES_FOLDER = "images"


def pictures(
    module: LightningModule, chunk: int = EXPORT_CHUNK, upsample: bool = True
) -> Iterator[tuple[range, Tensor]]:
    """(image rows in the run, display-ready pictures on the CPU) for this process's images,
    ``chunk`` at a time; without ``upsample``, at the optimized size (the rest of the display
    pipeline applies)."""
    display = module.display if upsample else dataclasses.replace(module.display, upsample=1.0)
    count = len(module.owned_rows)
    for start in range(0, count, chunk):
        rows = range(start, min(start + chunk, count))
        yield module.owned_rows[rows.start : rows.stop], display(module.render(rows)).cpu()


def blank_pictures(module: LightningModule, upsample: bool = True) -> Tensor:
    """No pictures, ``[0, 3, H, W]`` at the display's size: what a process that owns no image
    contributes to a gather, in the shape the others send."""
    display = module.display if upsample else dataclasses.replace(module.display, upsample=1.0)
    return display(torch.zeros(1, 3, module.image_size, module.image_size))[:0]


def image_labels(module: LightningModule) -> list[str]:
    """Each image's contact-sheet label: ``259 Pomeranian`` (``259 Pomeranian #1`` for samples), or
    its objective."""
    k = module.samples_per_class
    return [label if k == 1 else f"{label} #{sample}" for label in module.labels for sample in range(k)]


class ImageExport(Callback):
    """Writes ``images/<index>_<name>.png`` per class, ``images/grid.png`` and a labelled
    ``images/contact_sheet.png`` in the run directory when fit ends, through the module's display
    pipeline."""

    def __init__(self) -> None:
        self.folder: Path | None = None

    @override
    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Every process learns rank 0's run directory (the one its logger made) to write its PNGs into."""
        self.folder = Path(trainer.strategy.broadcast(str(run_directory(trainer) / IMAGES_FOLDER)))

    @override
    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.export(pl_module, self.folder or run_directory(trainer) / IMAGES_FOLDER, sheets=True)

    @override
    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        """A run that stops early still leaves the images it reached (after a divergence, the
        guard has already put back the last finite ones); not when the disk is full, where it
        would fail the same way (the checkpoint keeps the images). Each process writes its own
        PNGs; the grid needs every process and is written by a single process only."""
        alone = trainer.world_size == 1
        if is_disk_full(exception) or (self.folder is None and not alone):
            return
        folder = self.export(pl_module, self.folder or run_directory(trainer) / IMAGES_FOLDER, sheets=alone)
        rank_zero_info(f"Exported the images of step {trainer.global_step} to {folder}")

    def export(self, pl_module: LightningModule, folder: Path, sheets: bool = True) -> Path:
        """Write this process's pictures into ``folder``; with ``sheets``, gather every process's
        grid tiles (small) and write the grid and contact sheet from global rank 0 (a collective)."""
        total = len(pl_module.image_names)
        tiles = []
        for rows, batch in pictures(pl_module):
            for row, picture in zip(rows, batch):
                save_png(picture, folder / f"{pl_module.image_names[row]}.png")
            tiles.append(grid_tiles(batch, total))
        if not sheets:
            return folder
        tiles = gather_rows(torch.cat([grid_tiles(blank_pictures(pl_module), total), *tiles]), pl_module.row_counts)
        if tiles is not None:
            save_png(grid(tiles), folder / "grid.png")
            save_png(contact_sheet(tiles, image_labels(pl_module)), folder / "contact_sheet.png")
        return folder


class ImageLogger(Callback):
    """Logs the class images to TensorBoard while they form.

    Every class is in ``images/grid``; the first ``metrics.MAX_CLASS_TAGS`` also get their own
    tag (``images/259_pomeranian``).

    Args:
        every_n_steps: steps between snapshots; null: about ``SNAPSHOTS`` over the run. The
            initial images (step 0) and the last step are always logged.
        upsample: apply the display's upsampling to snapshots too. Off by default: TensorBoard
            scales images in the browser, and 4x the pixels is 4x the PNG encoding (upsampled,
            3 snapshots of one 256-px class spent 0.46 s encoding in a 20-step, 11 s run here).
    """

    def __init__(self, every_n_steps: int | None = None, upsample: bool = False) -> None:
        require(
            every_n_steps is None or is_count(every_n_steps, 1),
            "ImageLogger.every_n_steps",
            every_n_steps,
            "a positive number of steps or null",
        )
        self.every_n_steps = every_n_steps
        self.upsample = upsample
        self.writing: Future | None = None
        self.writer_thread: ThreadPoolExecutor | None = None

    def interval(self, trainer: Trainer) -> int:
        return self.every_n_steps or max(1, trainer.max_steps // SNAPSHOTS)

    @override
    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # One writer thread, so snapshots reach the event file in step order.
        self.writer_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="image-logger")
        self.log_images(trainer, pl_module, step=trainer.global_step)

    @override
    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """The last snapshot is in the event file before the logger closes it; a failed write surfaces here."""
        self.wait(stop=True)

    @override
    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        with contextlib.suppress(Exception):  # the run's own exception is the one to report
            self.wait(stop=True)

    def wait(self, stop: bool = False) -> None:
        """Block until the snapshot handed to the writer thread is written and re-raise its error;
        with ``stop``, end the thread."""
        writing, self.writing = self.writing, None
        if stop and self.writer_thread is not None:
            self.writer_thread.shutdown()
            self.writer_thread = None
        if writing is not None:
            writing.result()

    @override
    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if step % self.interval(trainer) == 0 or step == trainer.max_steps:
            self.log_images(trainer, pl_module, step=step)

    def log_images(self, trainer: Trainer, pl_module: LightningModule, step: int) -> None:
        """Every process renders its own images; the tagged pictures and the grid's thumbnails
        are gathered to global rank 0 (a collective), which writes them."""
        if not any(isinstance(logger, TensorBoardLogger) for logger in trainer.loggers):
            return
        total = len(pl_module.image_names)
        blank = blank_pictures(pl_module, self.upsample)
        tagged, tiles = [blank], [grid_tiles(blank, total, TENSORBOARD_GRID_MAX_SIDE)]
        for rows, batch in pictures(pl_module, upsample=self.upsample):
            tagged.append(batch[: max(0, min(rows.stop, MAX_CLASS_TAGS) - rows.start)])
            tiles.append(grid_tiles(batch, total, TENSORBOARD_GRID_MAX_SIDE))
        tag_counts = [max(0, min(rows.stop, MAX_CLASS_TAGS) - rows.start) for rows in pl_module.all_rows]
        tagged = gather_rows(torch.cat(tagged), tag_counts)
        tiles = gather_rows(torch.cat(tiles), pl_module.row_counts)
        if tagged is None:  # not global rank 0
            return
        writers = [logger.experiment for logger in trainer.loggers if isinstance(logger, TensorBoardLogger)]
        names = pl_module.image_names
        self.wait()  # at most one snapshot in flight: bounded memory, and its error seen at the next one

        def write() -> None:
            # Off the training thread: PNG encoding is most of a snapshot's cost, and the next
            # steps do not need its result (TensorBoard's event writer is thread-safe).
            for row, picture in enumerate(tagged):
                for writer in writers:
                    writer.add_image(f"images/{names[row]}", picture, step)
            if total > 1:  # with one image its own tag is the whole picture
                for writer in writers:
                    writer.add_image("images/grid", grid(tiles), step)

        if self.writer_thread is None:  # called outside a fit
            write()
        else:
            self.writing = self.writer_thread.submit(write)


class DivergenceGuard(Callback):
    """Stops a run whose loss or images stop being finite, keeping the last finite images.

    Every ``trainer.log_every_n_steps`` steps (each check is a host sync) it checks the loss and
    the image parameters; a finite state is copied aside, and a
    non-finite one is replaced by that copy before the run stops, so the export shows the last
    finite images. All processes decide together, so none is left waiting for the others.
    """

    def __init__(self) -> None:
        self.finite_state: dict[str, Tensor] | None = None
        self.finite_step = 0

    @override
    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.finite_state = {k: v.detach().clone() for k, v in pl_module.image.state_dict().items()}
        self.finite_step = trainer.global_step

    @override
    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if step % log_interval(trainer) and step != trainer.max_steps:
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
            f"{self.finite_step}, the last finite ones, are exported to {run_directory(trainer) / IMAGES_FOLDER}. "
            "Lower model.optimizer.init_args.lr"
        )


class GalleryExport(Callback):
    """Writes the run's web gallery, ``<run>/gallery/index.html`` (``gallery.build``), when fit
    ends, after the PNG export and the final scores: once, on global rank 0, from every
    process's PNGs."""

    @override
    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        trainer.strategy.barrier()  # every process's PNGs are on disk
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                if isinstance(logger, TensorBoardLogger):
                    logger.experiment.flush()  # the final scores reach the event file, for the history
            rank_zero_info(f"Gallery: {gallery.build(run_directory(trainer)).absolute().as_uri()}")


def default_callbacks(trainer: Trainer) -> list[Callback]:
    """Periodic checkpoints, scores, TensorBoard snapshots, PNG export, the gallery and the
    divergence and interruption guards, on by default; ``trainer.callbacks`` entries of the same type take their
    place (``trainer.enable_checkpointing: false`` turns the periodic checkpoint off)."""
    present = {type(callback) for callback in trainer.callbacks}
    # The checkpoint first: on SIGTERM the grace period may not outlast a 1000-class export.
    defaults = [InterruptCheckpoint, DivergenceGuard, ScoreLogger, ImageExport, GalleryExport, ImageLogger]
    checkpoints = trainer.checkpoint_callbacks  # empty with trainer.enable_checkpointing false
    if checkpoints and all(is_lightning_default(callback) for callback in checkpoints):
        defaults.insert(0, PeriodicCheckpoint)
    return [callback() for callback in defaults if callback not in present] + progress.replacing_default(trainer)
