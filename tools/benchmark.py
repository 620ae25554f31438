"""``python -m tools.benchmark``: the seed's plain PyTorch loop against the Lightning app, as users run it.

Both do the same work in one process on the same device: the same (random, seeded) classifier,
image size, number of images, loss and optimizer. The app runs with a user's defaults: the CLI's
Trainer defaults (a 200-step run, TensorBoard logger, scalars every 10 steps), the progress bar,
and the module's default callbacks untouched (snapshots about 20 a run, so every 10 steps; the
periodic checkpoint; export; divergence and interruption guards). It is stopped after the timed
steps. Each arm is timed over the steps after a warm-up, the device synchronized only at the two
ends of that window.

Plain and app run in interleaved pairs, the order alternating, so that a change of load on a shared
machine (or a device warming up) tilts the pairs both ways. The figure is the median of the pairs'
app/plain ratios, with their min and max as the spread: the best of a few pairs would report
whichever arm was luckiest.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from lightning.pytorch import Callback, Trainer
from lightning.pytorch.loggers import TensorBoardLogger

from maxclass_lightning import classifiers
from maxclass_lightning.cli import TRAINER_DEFAULTS, quiet_lightning
from maxclass_lightning.images import PixelImage
from maxclass_lightning.module import SEED_OPTIMIZER, ClassVisualizer
from tools.events import step_seconds
from tools.flops import peak_tflops, step_flops


@dataclass
class Timing:
    seconds_per_step: float
    peak_memory_mb: float
    #: seconds per step between logged steps, from the TensorBoard event wall times (the app only)
    event_seconds_per_step: float | None = None
    #: Trainer.fit to the first step, classifier construction excluded (the app only)
    startup_s: float = 0.0


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
    optimizer = SEED_OPTIMIZER([image])
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
    """Times steps ``warmup``..``last`` and the start-up before the first step, then stops the run:
    the run keeps a user's length (which sets the snapshot interval) without paying for all of it."""

    def __init__(self, warmup: int, last: int, device: torch.device) -> None:
        self.warmup, self.last, self.device = warmup, last, device
        self.fit_called = self.first_step = self.start = self.end = 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if batch_idx == 0:
            self.first_step = time.perf_counter()
        if batch_idx == self.warmup:
            _synchronize(self.device)
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.last:
            _synchronize(self.device)
            self.end = time.perf_counter()
            trainer.should_stop = True


def app_run(
    size: int, batch: int, steps: int, warmup: int, device: torch.device, options: argparse.Namespace
) -> Timing:
    """The same work through the app, configured as ``fit`` configures it by default."""
    module = ClassVisualizer(
        classes=_classes(batch),
        image_size=size,
        classifier=options.classifier,
        weights=None,
        normalize=False,
        batch_size=batch,  # one forward pass, as in the plain loop
        channels_last=options.channels_last,
        compile=options.compile,
    )
    clock = _StepClock(warmup, warmup + steps, device)
    with tempfile.TemporaryDirectory() as save_dir:
        logger = TensorBoardLogger(**{**TRAINER_DEFAULTS["logger"]["init_args"], "save_dir": save_dir})
        trainer = Trainer(
            **{**TRAINER_DEFAULTS, "max_steps": max(TRAINER_DEFAULTS["max_steps"], warmup + steps), "logger": logger},
            accelerator=device.type,
            devices=1,
            precision=options.precision,
            callbacks=[clock],
            enable_progress_bar=options.progress_bar,
            enable_model_summary=False,  # printed once before the first step: start-up, not steps
            benchmark=options.cudnn_benchmark,
        )
        _reset_peak_memory(device)
        clock.fit_called = time.perf_counter()
        trainer.fit(module)
        between_events = step_seconds(Path(save_dir))
    return Timing(
        (clock.end - clock.start) / steps,
        _peak_memory_mb(device),
        between_events and between_events[0],
        clock.first_step - clock.fit_called,
    )


def measure_pairs(
    size: int, batch: int, device: torch.device, options: argparse.Namespace
) -> list[tuple[Timing, Timing]]:
    """``options.pairs`` (plain, app) timings, the arm that runs first alternating."""
    arms = [plain_loop, app_run]
    pairs = []
    for _ in range(options.pairs):
        timings = {arm: arm(size, batch, options.steps, options.warmup, device, options) for arm in arms}
        pairs.append((timings[plain_loop], timings[app_run]))
        arms.reverse()
    return pairs


def _spread(values: list[float]) -> tuple[float, float] | tuple[None, None]:
    return (min(values), max(values)) if values else (None, None)


def summarize(size: int, batch: int, pairs: list[tuple[Timing, Timing]]) -> dict:
    """One row: medians over the pairs, the app/plain ratio's median and spread, and each pair's timings."""
    ratios = [app.seconds_per_step / plain.seconds_per_step for plain, app in pairs]
    # as a user would measure it: wall times of logged steps in the event file
    event_ratios = [
        app.event_seconds_per_step / plain.seconds_per_step for plain, app in pairs if app.event_seconds_per_step
    ]
    plain_s = statistics.median(plain.seconds_per_step for plain, _ in pairs)
    app_s = statistics.median(app.seconds_per_step for _, app in pairs)
    ratio_min, ratio_max = _spread(ratios)
    event_ratio_min, event_ratio_max = _spread(event_ratios)
    return {
        "size": size,
        "batch": batch,
        "plain_steps_per_s": 1 / plain_s,
        "app_steps_per_s": 1 / app_s,
        "app_images_steps_per_s": batch / app_s,
        "ratio": statistics.median(ratios),
        "ratio_min": ratio_min,
        "ratio_max": ratio_max,
        "event_ratio": statistics.median(event_ratios) if event_ratios else None,
        "event_ratio_min": event_ratio_min,
        "event_ratio_max": event_ratio_max,
        "plain_mb": max(plain.peak_memory_mb for plain, _ in pairs),
        "app_mb": max(app.peak_memory_mb for _, app in pairs),
        "startup_s": statistics.median(app.startup_s for _, app in pairs),
        "pairs": [
            {
                "plain_s_per_step": plain.seconds_per_step,
                "app_s_per_step": app.seconds_per_step,
                "app_event_s_per_step": app.event_seconds_per_step,
                "startup_s": app.startup_s,
            }
            for plain, app in pairs
        ],
    }


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tools.benchmark", description=__doc__)
    parser.add_argument("--classifier", default="vgg16", help="torchvision model name (random weights)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 256], help="image sides, pixels")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32], help="images per step")
    parser.add_argument("--steps", type=int, default=20, help="timed steps after warm-up")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--pairs", type=int, default=5, help="interleaved plain/app pairs; the median is reported")
    parser.add_argument("--accelerator", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--precision", default="32-true", choices=["32-true", "bf16-mixed"])
    parser.add_argument("--channels-last", action="store_true", help="NHWC classifier")
    parser.add_argument("--compile", action="store_true", help="torch.compile the classifier")
    parser.add_argument("--cudnn-benchmark", action="store_true", help="cudnn autotuning (CUDA)")
    parser.add_argument(
        "--no-progress-bar", dest="progress_bar", action="store_false", help="app without its progress bar"
    )
    parser.add_argument("--json", help="also write the rows to this JSON file (after each row)")
    return parser


def _range(low: float | None, high: float | None) -> str:
    return "-" if low is None else f"{low:.3f}-{high:.3f}"


def main(args: list[str] | None = None) -> list[dict]:
    options = parser().parse_args(args)
    if options.pairs < 1 or options.steps < 1 or options.warmup < 0:
        parser().error("--pairs and --steps must be at least 1, --warmup at least 0")
    quiet_lightning()
    if options.accelerator == "auto":
        options.accelerator = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(options.accelerator)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    print(
        f"# {options.classifier} on {name}, {options.precision}, channels_last {options.channels_last}, "
        f"{options.steps} timed steps after {options.warmup}, median of {options.pairs} interleaved pairs"
    )
    print(
        f"{'size':>5} {'batch':>5} {'plain step/s':>12} {'app step/s':>10} {'app img*step/s':>14} "
        f"{'app/plain time':>14} {'ratio spread':>12} {'event ratios':>12} "
        f"{'plain MB':>9} {'app MB':>9} {'startup s':>9} {'TFLOP/s':>8}"
    )
    rows = []
    for size in options.sizes:
        for batch in options.batches:
            row = summarize(size, batch, measure_pairs(size, batch, device, options))
            network = classifiers.build_classifier(options.classifier, None).to(device)
            flops = step_flops(network, size, batch, device)
            peak = peak_tflops(device, options.precision)
            achieved = flops * row["app_steps_per_s"] / 1e12
            row.update(
                precision=options.precision,
                channels_last=options.channels_last,
                step_tflop=flops / 1e12,
                app_tflops=achieved,
                peak_tflops=peak,
                fraction_of_peak=achieved / peak if peak else None,
            )
            rows.append(row)
            print(
                f"{size:>5} {batch:>5} {row['plain_steps_per_s']:>12.2f} {row['app_steps_per_s']:>10.2f} "
                f"{row['app_images_steps_per_s']:>14.1f} {row['ratio']:>14.3f} "
                f"{_range(row['ratio_min'], row['ratio_max']):>12} "
                f"{_range(row['event_ratio_min'], row['event_ratio_max']):>12} "
                f"{row['plain_mb']:>9.0f} {row['app_mb']:>9.0f} {row['startup_s']:>9.2f} {achieved:>8.2f}",
                flush=True,
            )
            if options.json:
                Path(options.json).write_text(json.dumps(rows, indent=1))
    return rows


if __name__ == "__main__":
    main()
