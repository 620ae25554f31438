"""What a periodic checkpoint costs a run's steps: a 1000-class run at 256 px, saved every few steps.

    python -m tools.checkpoint_cost [--classes 1000] [--size 256] [--steps 12] [--every 4]

The checkpoint's size and cost depend on the images and their optimizer state (1000 x 3 x 256 x
256 float32 values, three times: pixels and Adam's two moments), not on the classifier, so a tiny
random network stands in for VGG16 to keep steps short on a CPU. Each run times every step with
the checkpoint written in the foreground (``background false``) and in a background thread (the
default), and prints the extra seconds a saving step takes over the median step, next to the
share of a 10-minute interval (``every_n_minutes``' default) that is.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from lightning.pytorch import Callback, Trainer
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn

from maxclass_lightning.checkpoints import CHECKPOINT_MINUTES, PeriodicCheckpoint
from maxclass_lightning.cli import quiet_lightning
from maxclass_lightning.module import ClassVisualizer


class StepClock(Callback):
    """Wall time of each training step, from its start to the next one's (so that every callback of
    the step, the checkpoint's included, whatever their order, is in it)."""

    def __init__(self) -> None:
        self.starts: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.starts.append(time.perf_counter())

    @property
    def seconds(self) -> list[float]:
        return [later - earlier for earlier, later in zip(self.starts, self.starts[1:])]


def tiny_classifier() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=4, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 1000),
    )


def measure(classes: int, size: int, steps: int, every: int, background: bool) -> dict[str, float]:
    clock = StepClock()
    model = ClassVisualizer(
        classes=list(range(classes)),
        image_size=size,
        classifier=tiny_classifier(),
        weights=None,
        normalize=False,
        batch_size=250,
    )
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as folder:
        trainer = Trainer(
            accelerator="cpu",
            max_steps=steps,
            logger=TensorBoardLogger(folder, name="cost"),
            callbacks=[clock, PeriodicCheckpoint(every_n_minutes=None, every_n_steps=every, background=background)],
            enable_progress_bar=False,
            enable_model_summary=False,
            log_every_n_steps=steps,
        )
        trainer.fit(model)
        size_gb = (Path(trainer.log_dir) / "checkpoints" / "last.ckpt").stat().st_size / 1e9
    # clock.seconds[i] is step i + 1, up to the last but one (the last has no next start).
    saving = [s for step, s in enumerate(clock.seconds, 1) if step % every == 0]
    plain = [s for step, s in enumerate(clock.seconds, 1) if step % every and step > 1]
    extra = statistics.median(saving) - statistics.median(plain)
    return {"size_gb": size_gb, "step_s": statistics.median(plain), "extra_s": extra}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--every", type=int, default=4)
    options = parser.parse_args(argv)
    quiet_lightning()
    print(f"{options.classes} classes at {options.size} px; a checkpoint every {options.every} steps")
    print("| writer | checkpoint | median step | extra seconds on a saving step | share of a 10-minute interval |")
    print("|---|---|---|---|---|")
    for background in (False, True):
        row = measure(options.classes, options.size, options.steps, options.every, background)
        share = row["extra_s"] / (CHECKPOINT_MINUTES * 60)
        writer = "background thread (default)" if background else "foreground"
        print(
            f"| {writer} | {row['size_gb']:.2f} GB | {row['step_s']:.2f} s | {row['extra_s']:.2f} s | {share:.2%} |",
            flush=True,
        )


if __name__ == "__main__":
    sys.exit(main())
