"""Keeping a run's work: periodic atomic checkpoints, a checkpoint on Ctrl-C or SIGTERM, and reading
a checkpoint back without running anything it holds.

A run killed without warning (SIGKILL, the out-of-memory killer, a preempted VM, a cluster's hard
time limit) loses at most one checkpoint interval and the write in flight (a background write is
done once the next save begins): ``checkpoints/last.ckpt`` is rewritten every ``every_n_minutes``
(and/or ``every_n_steps``) and at the end, each time into a sibling temporary file that replaces it
in one ``os.replace``, so the file on disk is always a complete checkpoint.

Checkpoints get shared (a colleague's run, a file from an issue thread), and a pickle can name any
function to call. So every checkpoint this app reads, its own resumes included, is read with
``torch.load(weights_only=True)``: tensors and plain values only. The app's checkpoints hold
nothing else, so no type is added to torch's allowed globals.
"""

from __future__ import annotations

import contextlib
import errno
import os
import pickle
import re
import signal
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.utilities.apply_func import apply_to_collection
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities.exceptions import SIGTERMException
from typing_extensions import override

from maxclass_lightning.errors import ConfigError, is_count, is_number, require
from maxclass_lightning.steps import is_log_step

#: Default wall-clock interval between checkpoints: a killed run loses at most this much work and
#: the time one write takes.
CHECKPOINT_MINUTES = 10.0

#: The checkpoint a run keeps and a resume starts from, in ``<run>/checkpoints/``.
LAST_CHECKPOINT = "last.ckpt"

#: Errors that mean the disk (or the user's quota) is full.
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def load(path: str | Path, name: str = "checkpoint", **options: Any) -> Any:
    """``torch.load(path, weights_only=True, **options)``; a file whose pickle asks for anything but
    tensors and plain values is refused with a one-line ``ConfigError`` naming what it asked for
    (``name``: how the message calls the file, e.g. ``ckpt_path``), not torch's advice to load it
    unsafely. Other errors (a truncated file) pass through."""
    try:
        return torch.load(path, weights_only=True, **options)
    except pickle.UnpicklingError as error:
        if "weights only" not in str(error).lower():
            raise
        asked = re.search(r"GLOBAL (\S+)", str(error))
        raise ConfigError(
            f"{name} {str(path)!r} asks to run Python code ({asked.group(1) if asked else 'not only tensors'}), "
            "and this app runs none from a file: pass a checkpoint this app wrote"
        ) from None


def drop_classifier(checkpoint: dict) -> None:
    """Checkpoints hold the images and optimizer state, not the frozen classifier (528 MB for
    VGG16): it is rebuilt from the hyperparameters."""
    state = checkpoint["state_dict"]
    for key in [key for key in state if key.startswith("classifier.")]:
        del state[key]


def prepare_to_load(module: LightningModule, checkpoint: dict) -> None:
    """Put the rebuilt classifier's weights back so that strict loading still checks the images,
    and give the images the checkpoint's dtype first: Lightning restores before its precision
    plugin converts the module, so a float64 run would otherwise be rounded through float32."""
    state = checkpoint["state_dict"]
    saved = {state[key].dtype for key in module.image_rows() if key in state}
    if len(saved) == 1:
        dtype = saved.pop()
        module.image.to(dtype=dtype)
        if module.image_average is not None:
            module.image_average.to(dtype=dtype)
    state.update({f"classifier.{k}": v for k, v in module.classifier.state_dict().items()})


def run_directory(trainer: Trainer) -> Path:
    """Where the run writes, ``<save_dir>/<name>/version_<n>``, as this process's logger knows it.

    Only rank 0 writes, and its logger is the one that made the directory, so no collective call
    is needed (``trainer.log_dir`` makes one, which cannot be used after an interruption).
    """
    for logger in trainer.loggers:
        if getattr(logger, "log_dir", None):
            return Path(logger.log_dir)
    return Path(trainer.default_root_dir)


def is_disk_full(error: BaseException) -> bool:
    """Whether ``error`` (or what caused it) is a full disk or quota."""
    while error is not None:
        if isinstance(error, OSError) and error.errno in DISK_FULL:
            return True
        error = error.__cause__ or error.__context__
    return False


class AtomicCheckpointIO(TorchCheckpointIO):
    """``torch.save`` into ``<path>.partial`` beside the target, flushed to disk, then ``os.replace``;
    loading is always ``weights_only`` (``load``), whatever the caller asks.

    Written by hand because Lightning's own atomic save stages the file in the system temporary
    folder and moves it: across file systems that move is a copy, which a kill or a full disk can
    leave half-written. A same-folder rename cannot: the previous checkpoint stays whole until the
    new one is complete. On failure (a full disk) the partial file is removed and the error raised.
    """

    @override
    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        try:
            with open(partial, "wb") as file:
                torch.save(checkpoint, file)
                file.flush()
                os.fsync(file.fileno())
            os.replace(partial, path)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise

    @override
    def load_checkpoint(self, path: str | Path, map_location: Any = "cpu", weights_only: bool | None = None) -> dict:
        """``fit --ckpt_path`` and ``trainer.fit(ckpt_path=...)`` read through here: never unpickled
        with ``weights_only=False``, even when asked (Lightning passes the caller's choice)."""
        return load(path, "ckpt_path", map_location=map_location)


class BackgroundCheckpointIO(AtomicCheckpointIO):
    """``AtomicCheckpointIO`` whose file writing runs in a background thread, from a copy of the
    checkpoint's tensors taken (on the CPU) when the save is asked for: the step only pays the copy.

    Written by hand because Lightning's ``AsyncCheckpointIO`` (experimental) has no way to wait for
    a write or to learn that it failed, and a run must do both: the last checkpoint has to be on
    disk before the process exits, and a full disk has to stop the run. Writes happen one at a
    time, in order; ``wait()`` blocks until the last one is on disk and raises its error, if any.
    The copy costs host memory the size of the images and optimizer state while it is written.
    """

    def __init__(self) -> None:
        super().__init__()
        self._executor: ThreadPoolExecutor | None = None
        self._pending: Future | None = None

    @override
    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None) -> None:
        self.wait()
        copy = apply_to_collection(checkpoint, torch.Tensor, lambda t: t.detach().to("cpu", copy=True))
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="checkpoint-writer")
        self._pending = self._executor.submit(AtomicCheckpointIO.save_checkpoint, self, copy, path, storage_options)

    def wait(self) -> None:
        """Block until the last write is complete; raise its error."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    @override
    def teardown(self) -> None:
        try:
            self.wait()
        finally:
            if self._executor is not None:
                self._executor.shutdown()
                self._executor = None


def use_app_checkpoint_io(trainer: Trainer, background: bool = False) -> None:
    """Give the Trainer the app's checkpoint plugin (atomic writes, loads that run no code) in place
    of Lightning's default one; ``background``: the background writer. A plugin the user
    configured is left alone."""
    io = trainer.strategy.checkpoint_io
    if type(io) is TorchCheckpointIO or (background and type(io) is AtomicCheckpointIO):
        trainer.strategy.checkpoint_io = BackgroundCheckpointIO() if background else AtomicCheckpointIO()


def wait_for_checkpoints(trainer: Trainer) -> None:
    """Block until every checkpoint this process asked for is on disk (raising a write's error)."""
    io = trainer.strategy.checkpoint_io
    if isinstance(io, BackgroundCheckpointIO):
        io.wait()


class PeriodicCheckpoint(ModelCheckpoint):
    """Rewrites ``checkpoints/last.ckpt`` every ``every_n_minutes`` of training, every ``every_n_steps``
    steps, and after the last step, atomically (``AtomicCheckpointIO``).

    One file, always the newest state: images, optimizer state and step (not the frozen classifier,
    rebuilt from the hyperparameters). ``fit --ckpt_path <run>/checkpoints/last.ckpt`` continues a
    killed run to the same final images as an uninterrupted one.

    A ``ModelCheckpoint`` only so that it takes the place of the one the Trainer adds by itself;
    that class's own saving is switched off (no top-k, no last, no epochs): it ignores its time
    interval under manual optimization, and would agree on the time at every step (a collective).

    Args:
        every_n_minutes: wall-clock minutes between checkpoints (``CHECKPOINT_MINUTES``); null: none
            on time. All processes follow rank 0's clock.
        every_n_steps: optimizer steps between checkpoints, in addition; null: none on steps.
        background: write the file in a background thread (``BackgroundCheckpointIO``), so that a
            step pays only for copying the state; the run waits for the last write at its end.
    """

    def __init__(
        self,
        every_n_minutes: float | None = CHECKPOINT_MINUTES,
        every_n_steps: int | None = None,
        background: bool = True,
    ) -> None:
        require(
            every_n_minutes is None or is_number(every_n_minutes, 0, above=True),
            "PeriodicCheckpoint.every_n_minutes",
            every_n_minutes,
            "a positive number of minutes, e.g. 10, or null",
        )
        require(
            every_n_steps is None or is_count(every_n_steps, 1),
            "PeriodicCheckpoint.every_n_steps",
            every_n_steps,
            "a positive number of steps, e.g. 100, or null",
        )
        super().__init__(save_top_k=0, every_n_epochs=0)
        self.every_n_minutes = every_n_minutes
        self.every_n_steps = every_n_steps
        self.background = background
        self.saved_at = time.monotonic()

    @override
    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        use_app_checkpoint_io(trainer, self.background)

    @override
    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.saved_at = time.monotonic()  # the first interval counts from the first step

    @override
    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs, batch, batch_idx) -> None:
        """Save after the last step, every ``every_n_steps``, and once ``every_n_minutes`` have passed.

        With several processes the time decision is rank 0's, broadcast at logging steps only (a
        collective), so the interval is kept to within one logging interval.
        """
        if trainer.fast_dev_run:
            return
        step = trainer.global_step
        due = step == trainer.max_steps or (self.every_n_steps is not None and step % self.every_n_steps == 0)
        if not due and self.every_n_minutes is not None:
            due = time.monotonic() - self.saved_at >= self.every_n_minutes * 60
            if trainer.world_size > 1:
                if not is_log_step(trainer):
                    return
                due = trainer.strategy.broadcast(due)
        if due:
            trainer.save_checkpoint(run_directory(trainer) / "checkpoints" / LAST_CHECKPOINT, weights_only=False)
            self.saved_at = time.monotonic()

    @override
    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        wait_for_checkpoints(trainer)


def is_lightning_default(callback: Callback) -> bool:
    """Whether ``callback`` is the plain ``ModelCheckpoint()`` the Trainer adds by itself (or one
    configured the same way), which ``PeriodicCheckpoint`` replaces; any other is the user's.
    Compared by public attributes: ``state_key`` holds the monitor, mode and save intervals."""
    default = ModelCheckpoint()
    settings = ("dirpath", "filename", "monitor", "save_top_k", "save_last", "state_key")
    return type(callback) is ModelCheckpoint and all(getattr(callback, s) == getattr(default, s) for s in settings)


class InterruptCheckpoint(Callback):
    """Makes Ctrl-C (SIGINT) and SIGTERM stop the run between two steps, with a resumable checkpoint.

    SIGINT is turned into a request that is honoured at the end of the current step, so the
    checkpoint ``checkpoints/last.ckpt`` holds a consistent state: images, optimizer and step, and
    ``fit --ckpt_path .../last.ckpt`` finishes the run as if it had never stopped. With several
    processes the request is agreed on at the next logging step (a collective). A second Ctrl-C
    stops at once, mid-step, and then no new checkpoint is written (the periodic one stays).
    Lightning itself turns SIGTERM into an exception between steps, on every process at once.

    Always present in a run (``ClassVisualizer.configure_callbacks``), it also installs the app's
    checkpoint plugin, so that a resume reads its checkpoint safely with any checkpoint callback.
    """

    def __init__(self) -> None:
        self.requested = False
        self.forced = False
        self.previous_handler = None

    def _request(self, signum, frame) -> None:
        if self.requested:
            self.forced = True
            raise KeyboardInterrupt
        self.requested = True

    @override
    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        use_app_checkpoint_io(trainer)

    @override
    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.requested = self.forced = False
        self.previous_handler = signal.signal(signal.SIGINT, self._request)

    @override
    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs, batch, batch_idx) -> None:
        requested = self.requested
        if trainer.world_size > 1:
            # Every process must stop at the same step; agreeing costs a collective, so it is
            # done at the logging interval only.
            if not is_log_step(trainer):
                return
            requested = trainer.strategy.reduce_boolean_decision(requested, all=False)
        if requested:
            raise KeyboardInterrupt

    @override
    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._restore_handler()

    @override
    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        interrupted = isinstance(exception, (KeyboardInterrupt, SIGTERMException))
        if interrupted:
            if self.forced:
                rank_zero_info(f"Stopped mid-step after step {trainer.global_step}; no new checkpoint written.")
            else:
                path = self.save(trainer)
                rank_zero_info(
                    f"Interrupted after step {trainer.global_step}; checkpoint {path}. "
                    f"Resume with: python -m maxclass_lightning fit --config <config> --ckpt_path {path}"
                )
        self._restore_handler()

    def save(self, trainer: Trainer) -> Path:
        """Write the checkpoint and wait until it is on disk. Every process takes part, since a
        strategy that splits the images (``owned_classes``) gathers them while it does; global rank 0
        writes it. The processes reach here at the same step: the stop was agreed on
        (``on_train_batch_end``, or Lightning's SIGTERM broadcast)."""
        path = run_directory(trainer) / "checkpoints" / LAST_CHECKPOINT
        with contextlib.suppress(OSError):  # a failed older write: this one is tried anyway
            wait_for_checkpoints(trainer)  # an older periodic write must not land after this one
        trainer.save_checkpoint(path, weights_only=False)
        wait_for_checkpoints(trainer)
        return path

    def _restore_handler(self) -> None:
        if self.previous_handler is not None:
            signal.signal(signal.SIGINT, self.previous_handler)
            self.previous_handler = None


def disk_full_message(trainer: Trainer | None) -> str:
    """What a run stopped by a full disk kept: checkpoints are written atomically, so the last
    complete one is still there, and how to resume from it."""
    if trainer is None:
        return "the disk is full; free space and start again"
    where = run_directory(trainer)
    last = where / "checkpoints" / LAST_CHECKPOINT
    kept = (
        f"the last complete checkpoint, {last} (step {saved_step(last)}), is intact: free space and resume "
        f"with --ckpt_path {last}"
        if last.is_file()
        else "no checkpoint had been written yet: free space and start again"
    )
    return f"the disk is full: writing to {where} failed after step {trainer.global_step}; {kept}"


def saved_step(path: Path) -> int | str:
    """The optimizer step a checkpoint holds, or ``?`` if it cannot be read (safely)."""
    try:
        return int(load(path, map_location="cpu", mmap=True)["global_step"])
    except Exception:  # a message helper: any unreadable file reads as unknown
        return "?"
