"""``python -m maxclass_lightning.benchmark``: the seed's plain PyTorch loop against the Lightning app.

Both do the same work in one process on the same device: the same (random, seeded) classifier,
image size, number of images, loss and optimizer, for the same steps. Each is timed over the
steps after a warm-up, with the device synchronized only at the two ends of that window. The app
runs as a user runs it: Trainer, TensorBoard logger, image snapshots and scalars every 10 steps.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass

import torch
from lightning.pytorch import Callback, Trainer
from lightning.pytorch.loggers import TensorBoardLogger

from maxclass_lightning import classifiers
from maxclass_lightning.callbacks import ImageLogger
from maxclass_lightning.cli import quiet_lightning
from maxclass_lightning.images import PixelImage
from maxclass_lightning.module import SEED_LEARNING_RATE, SEED_WEIGHT_DECAY, ClassVisualizer

#: Snapshot and scalar interval of the app during timing: a 200-step run's default (about 20 snapshots).
LOG_EVERY = 10


@dataclass
class Timing:
    seconds_per_step: float
    peak_memory_mb: float


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    else:
        try:  # Linux: writing 5 resets the process's peak resident set size (VmHWM)
            with open("/proc/self/clear_refs", "w") as clear:
                clear.write("5")
        except OSError:
            pass


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        with open("/proc/self/status") as status:
            line = next(line for line in status if line.startswith("VmHWM"))
        return int(line.split()[1]) / 1024
    except (OSError, StopIteration):
        return float("nan")


def _classes(batch: int) -> list[int]:
    """``batch`` distinct ImageNet classes, spread over the range."""
    return [(259 + 997 * i) % 1000 for i in range(batch)]


def plain_loop(
    size: int, batch: int, steps: int, warmup: int, device: torch.device, options: argparse.Namespace
) -> Timing:
    """The seed's loop: an image parameter, a frozen classifier, AdamW, ``-logit`` summed over images."""
    network = classifiers.build_classifier(options.classifier, None).to(device)
    memory_format = torch.channels_last if options.channels_last else torch.contiguous_format
    network.to(memory_format=memory_format)
    if options.compile:
        network.compile()
    classes = torch.tensor(_classes(batch), device=device)
    image = PixelImage(classes.tolist(), size, seed=0).pixels.detach().to(device).requires_grad_(True)
    optimizer = torch.optim.AdamW([image], lr=SEED_LEARNING_RATE, weight_decay=SEED_WEIGHT_DECAY)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=options.precision == "bf16-mixed")
    _reset_peak_memory(device)
    for step in range(warmup + steps):
        if step == warmup:
            _synchronize(device)
            start = time.perf_counter()
        with autocast:
            logits = network(image.contiguous(memory_format=memory_format))
        loss = -logits.float().gather(1, classes[:, None]).sum()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    _synchronize(device)
    return Timing((time.perf_counter() - start) / steps, _peak_memory_mb(device))


class _StepClock(Callback):
    """Times the steps after ``warmup`` and the start-up before the first step."""

    def __init__(self, warmup: int, device: torch.device) -> None:
        self.warmup = warmup
        self.device = device
        self.fit_called = self.first_step = self.start = self.end = 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if batch_idx == 0:
            self.first_step = time.perf_counter()
        if batch_idx == self.warmup:
            _synchronize(self.device)
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == trainer.max_steps:
            _synchronize(self.device)
            self.end = time.perf_counter()


def app_run(
    size: int, batch: int, steps: int, warmup: int, device: torch.device, options: argparse.Namespace
) -> tuple[Timing, float]:
    """The same work through the app; returns its timing and the start-up seconds (Trainer.fit to
    the first step, classifier construction excluded)."""
    module = ClassVisualizer(
        classes=_classes(batch),
        image_size=size,
        classifier=options.classifier,
        weights=None,
        normalize=False,
        channels_last=options.channels_last,
        compile=options.compile,
    )
    clock = _StepClock(warmup, device)
    with tempfile.TemporaryDirectory() as save_dir:
        trainer = Trainer(
            accelerator=device.type,
            devices=1,
            precision=options.precision,
            max_steps=warmup + steps,
            log_every_n_steps=LOG_EVERY,
            logger=TensorBoardLogger(save_dir, name="benchmark"),
            callbacks=[clock, ImageLogger(every_n_steps=LOG_EVERY)],
            enable_progress_bar=False,
            enable_model_summary=False,
            enable_checkpointing=False,
            benchmark=options.cudnn_benchmark,
        )
        _reset_peak_memory(device)
        clock.fit_called = time.perf_counter()
        trainer.fit(module)
    return Timing((clock.end - clock.start) / steps, _peak_memory_mb(device)), clock.first_step - clock.fit_called


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m maxclass_lightning.benchmark", description=__doc__)
    parser.add_argument("--classifier", default="vgg16", help="torchvision model name (random weights)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 256], help="image sides, pixels")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32], help="images per step")
    parser.add_argument("--steps", type=int, default=20, help="timed steps after warm-up")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--repeats", type=int, default=1, help="alternate plain/app this often; best of each")
    parser.add_argument("--accelerator", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--precision", default="32-true", choices=["32-true", "bf16-mixed"])
    parser.add_argument("--channels-last", action="store_true", help="NHWC classifier")
    parser.add_argument("--compile", action="store_true", help="torch.compile the classifier")
    parser.add_argument("--cudnn-benchmark", action="store_true", help="cudnn autotuning (CUDA)")
    return parser


def main(args: list[str] | None = None) -> list[dict[str, float]]:
    options = parser().parse_args(args)
    quiet_lightning()
    if options.accelerator == "auto":
        options.accelerator = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(options.accelerator)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    print(f"# {options.classifier} on {name}, {options.precision}, {options.steps} timed steps after {options.warmup}")
    header = (
        f"{'size':>5} {'batch':>5} {'plain step/s':>12} {'app step/s':>10} {'app img*step/s':>14} "
        f"{'app/plain time':>14} {'plain MB':>9} {'app MB':>9} {'startup s':>9}"
    )
    print(header)
    rows = []
    for size in options.sizes:
        for batch in options.batches:
            plain, app, startup = [], [], []
            for _ in range(options.repeats):
                plain.append(plain_loop(size, batch, options.steps, options.warmup, device, options))
                timing, seconds = app_run(size, batch, options.steps, options.warmup, device, options)
                app.append(timing)
                startup.append(seconds)
            best_plain = min(plain, key=lambda t: t.seconds_per_step)
            best_app = min(app, key=lambda t: t.seconds_per_step)
            row = {
                "size": size,
                "batch": batch,
                "plain_steps_per_s": 1 / best_plain.seconds_per_step,
                "app_steps_per_s": 1 / best_app.seconds_per_step,
                "app_images_steps_per_s": batch / best_app.seconds_per_step,
                "ratio": best_app.seconds_per_step / best_plain.seconds_per_step,
                "plain_mb": best_plain.peak_memory_mb,
                "app_mb": best_app.peak_memory_mb,
                "startup_s": min(startup),
            }
            rows.append(row)
            print(
                f"{size:>5} {batch:>5} {row['plain_steps_per_s']:>12.2f} {row['app_steps_per_s']:>10.2f} "
                f"{row['app_images_steps_per_s']:>14.1f} {row['ratio']:>14.3f} {row['plain_mb']:>9.0f} "
                f"{row['app_mb']:>9.0f} {row['startup_s']:>9.2f}",
                flush=True,
            )
    return rows


if __name__ == "__main__":
    main()
