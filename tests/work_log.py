"""A test callback recording which work items each process computed, one JSON-lines file per rank."""

from __future__ import annotations

import json
from pathlib import Path

from lightning.pytorch import Callback


class RecordWork(Callback):
    """Appends ``{"step", "rank", "items"}`` per step to ``<folder>/rank<global rank>.jsonl``."""

    def __init__(self, folder: str) -> None:
        self.folder = Path(folder)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        record = {"step": trainer.global_step, "rank": trainer.global_rank, "items": batch.tolist()}
        with open(self.folder / f"rank{trainer.global_rank}.jsonl", "a") as log:
            log.write(json.dumps(record) + "\n")
