"""Test callbacks that measure what class ownership promises, one JSON-lines file per rank.

``Collectives`` runs torch's profiler over each training step (from the batch's start to its end,
before the image snapshots) and records every collective the process backend ran, with the
number of elements it moved. ``ImageState`` records the bytes of this process's image state
(parameters, gradients, optimizer state) and the process's peak resident memory.
"""

from __future__ import annotations

import json
import resource
from pathlib import Path

import torch
from lightning.pytorch import Callback
from torch.profiler import ProfilerActivity, profile

#: Profiler event name prefixes of the process-group backends' collectives.
BACKENDS = ("gloo:", "nccl:")


def _append(folder: Path, rank: int, record: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"rank{rank}.jsonl", "a") as log:
        log.write(json.dumps(record) + "\n")


class Collectives(Callback):
    """Appends ``{"step", "rank", "collectives": [[name, elements], ...]}`` per training step."""

    def __init__(self, folder: str) -> None:
        self.folder = Path(folder)
        self.profiler: profile | None = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.profiler = profile(activities=[ProfilerActivity.CPU], record_shapes=True)
        self.profiler.__enter__()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.profiler.__exit__(None, None, None)
        collectives = [
            [event.name, sum(torch.Size(shape).numel() for shape in event.input_shapes)]
            for event in self.profiler.events()
            if event.name.startswith(BACKENDS)
        ]
        record = {"step": trainer.global_step - 1, "rank": trainer.global_rank, "collectives": collectives}
        _append(self.folder, trainer.global_rank, record)


class ImageState(Callback):
    """Appends ``{"rank", "images", "parameters", "gradients", "optimizer", "peak_rss"}`` (bytes)
    after the first training step, when gradients and optimizer state exist."""

    def __init__(self, folder: str) -> None:
        self.folder = Path(folder)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if batch_idx != 0:
            return
        parameters = list(pl_module.image.parameters())
        optimizer = trainer.optimizers[0]
        state = [v for entry in optimizer.state.values() for v in entry.values() if isinstance(v, torch.Tensor)]
        record = {
            "rank": trainer.global_rank,
            "images": len(pl_module.owned_rows),
            "parameters": sum(p.nbytes for p in parameters),
            "gradients": sum(p.grad.nbytes for p in parameters if p.grad is not None),
            "optimizer": sum(v.nbytes for v in state),
            "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        }
        _append(self.folder, trainer.global_rank, record)
