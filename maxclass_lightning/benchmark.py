"""``python -m maxclass_lightning.benchmark``: the seed's plain PyTorch loop against the Lightning app.

Both do the same work in one process on the same device: the same (random, seeded) classifier,
image size, number of images, loss and optimizer, for the same steps. Each is timed over the
steps after a warm-up, with the device synchronized only at the two ends of that window. The app
runs as a user runs it: Trainer with its progress bar, TensorBoard logger, the app's default
callbacks (snapshots every 10 steps as in a 200-step run, divergence guard, checkpoints) and
scalars every 10 steps.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import lightning
import torch
import yaml
from lightning.pytorch import Callback, Trainer
from lightning.pytorch.loggers import TensorBoardLogger
from torch.utils.flop_counter import FlopCounterMode

from maxclass_lightning import classifiers, recipes
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
    #: seconds per step between logged steps, from the TensorBoard event wall times (the app only)
    event_seconds_per_step: float | None = None


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
        batch_size=batch,  # one forward pass, as in the plain loop
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
            enable_progress_bar=options.progress_bar,
            enable_model_summary=False,
            benchmark=options.cudnn_benchmark,
        )
        _reset_peak_memory(device)
        clock.fit_called = time.perf_counter()
        trainer.fit(module)
        between_events = _step_seconds(Path(save_dir))
    timing = Timing((clock.end - clock.start) / steps, _peak_memory_mb(device), between_events and between_events[0])
    return timing, clock.first_step - clock.fit_called


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
    parser.add_argument(
        "--no-progress-bar", dest="progress_bar", action="store_false", help="app without its progress bar"
    )
    parser.add_argument("--json", help="also write the rows to this JSON file")
    return parser


#: Dense peak TFLOP/s by GPU name (substring, first match), from the vendors' data sheets (SXM
#: parts; no sparsity): (bf16 tensor cores, tf32 tensor cores). float32 convolutions run on TF32
#: tensor cores only where ``torch.backends.cudnn.allow_tf32`` (PyTorch's default for cuDNN).
PEAK_TFLOPS = {
    "H200": (989.0, 494.0),
    "H100": (989.0, 494.0),
    "A100": (312.0, 156.0),
    "L40S": (362.0, 183.0),
    "L4": (121.0, 60.0),
    "A10": (125.0, 62.5),
    "V100": (125.0, 15.7),  # no bf16: fp16 tensor cores; fp32 (no tf32)
    "T4": (65.0, 8.1),  # fp16 tensor cores; fp32
}


def peak_tflops(device: torch.device, precision: str) -> float | None:
    """The chip's dense peak for this precision, or None for a CPU or an unknown GPU."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, (bf16, tf32) in PEAK_TFLOPS.items():
        if key in name:
            return bf16 if precision == "bf16-mixed" else tf32
    return None


def step_flops(size: int, batch: int, device: torch.device, options: argparse.Namespace) -> int:
    """FLOPs of one step: the classifier's forward and its backward to the input only (the
    network is frozen), counted by ``torch.utils.flop_counter`` on the real operators."""
    network = classifiers.build_classifier(options.classifier, None).to(device)
    image = torch.rand(batch, 3, size, size, device=device, requires_grad=True)
    with FlopCounterMode(display=False) as counter:
        network(image).sum().backward()
    return counter.get_total_flops()


def _spread(values: list[float]) -> str:
    return f"{min(values):.3f}-{max(values):.3f}" if len(values) > 1 else f"{values[0]:.3f}"


def main(args: list[str] | None = None) -> list[dict[str, float]]:
    options = parser().parse_args(args)
    quiet_lightning()
    if options.accelerator == "auto":
        options.accelerator = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(options.accelerator)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    print(
        f"# {options.classifier} on {name}, {options.precision}, channels_last {options.channels_last}, "
        f"{options.steps} timed steps after {options.warmup}, best of {options.repeats}"
    )
    header = (
        f"{'size':>5} {'batch':>5} {'plain step/s':>12} {'app step/s':>10} {'app img*step/s':>14} "
        f"{'app/plain time':>14} {'ratio spread':>12} {'event ratios':>12} "
        f"{'plain MB':>9} {'app MB':>9} {'startup s':>9} {'TFLOP/s':>8}"
    )
    print(header)
    rows = []
    for size in options.sizes:
        for batch in options.batches:
            plain, app, startup = [], [], []
            for _ in range(options.repeats):  # interleaved, so that a load change affects both
                plain.append(plain_loop(size, batch, options.steps, options.warmup, device, options))
                timing, seconds = app_run(size, batch, options.steps, options.warmup, device, options)
                app.append(timing)
                startup.append(seconds)
            best_plain = min(plain, key=lambda t: t.seconds_per_step)
            best_app = min(app, key=lambda t: t.seconds_per_step)
            ratios = [a.seconds_per_step / p.seconds_per_step for p, a in zip(plain, app)]
            # as a user would measure it: wall times of logged steps in the event file
            event_ratios = [
                a.event_seconds_per_step / p.seconds_per_step for p, a in zip(plain, app) if a.event_seconds_per_step
            ]
            flops = step_flops(size, batch, device, options)
            peak = peak_tflops(device, options.precision)
            achieved = flops / best_app.seconds_per_step / 1e12
            row = {
                "size": size,
                "batch": batch,
                "precision": options.precision,
                "channels_last": options.channels_last,
                "plain_steps_per_s": 1 / best_plain.seconds_per_step,
                "app_steps_per_s": 1 / best_app.seconds_per_step,
                "app_images_steps_per_s": batch / best_app.seconds_per_step,
                "ratio": best_app.seconds_per_step / best_plain.seconds_per_step,
                "ratio_min": min(ratios),
                "ratio_max": max(ratios),
                "event_ratio_min": min(event_ratios, default=None),
                "event_ratio_max": max(event_ratios, default=None),
                "plain_mb": best_plain.peak_memory_mb,
                "app_mb": best_app.peak_memory_mb,
                "startup_s": min(startup),
                "step_tflop": flops / 1e12,
                "app_tflops": achieved,
                "peak_tflops": peak,
                "fraction_of_peak": achieved / peak if peak else None,
            }
            rows.append(row)
            print(
                f"{size:>5} {batch:>5} {row['plain_steps_per_s']:>12.2f} {row['app_steps_per_s']:>10.2f} "
                f"{row['app_images_steps_per_s']:>14.1f} {row['ratio']:>14.3f} {_spread(ratios):>12} "
                f"{_spread(event_ratios) if event_ratios else '-':>12} "
                f"{row['plain_mb']:>9.0f} {row['app_mb']:>9.0f} {row['startup_s']:>9.2f} {achieved:>8.2f}",
                flush=True,
            )
            if options.json:
                Path(options.json).write_text(json.dumps(rows, indent=1))
    return rows


#: Wall-clock budget of ``--device-check``, seconds: the device is lent for minutes in all.
DEVICE_CHECK_SECONDS = 450.0


class Report:
    """The device check's report, rewritten after every stage, so that a stage that overruns or
    crashes leaves everything before it on disk: ``report.md`` and ``report.json``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.sections: list[str] = []
        self.data: dict[str, object] = {}

    def add(self, key: str, value: object, markdown: str) -> None:
        self.data[key] = value
        self.sections.append(markdown.rstrip() + "\n")
        (self.folder / "report.json").write_text(json.dumps(self.data, indent=1, default=str))
        (self.folder / "report.md").write_text("\n".join(self.sections))
        print(markdown, flush=True)


def _run(command: list[str], seconds: float, log: Path) -> tuple[int | None, float, str]:
    """Run ``command`` from the repository root for at most ``seconds``; (exit code or None when
    stopped, wall seconds, the output's tail). The whole output goes to ``log``."""
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    start = time.perf_counter()
    with (
        open(log, "w") as output,
        subprocess.Popen(
            command, cwd=root, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        ) as process,
    ):
        try:
            code = process.wait(timeout=max(1.0, seconds))
        except subprocess.TimeoutExpired:  # its own children too (the tests' CLI runs, DDP processes)
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            code = None
    tail = "\n".join(log.read_text(errors="replace").replace("\r", "\n").splitlines()[-15:])
    return code, time.perf_counter() - start, tail


def _step_seconds(run: Path) -> tuple[float, int] | None:
    """Seconds per step between the first and the last in-training ``loss`` scalar of a run,
    from its TensorBoard event wall times (what a user sees), and the steps between them."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = [path.parent for path in run.rglob("events.out.tfevents.*")]
    if not events:
        return None
    accumulator = EventAccumulator(str(events[0]))
    accumulator.Reload()
    if "loss" not in accumulator.Tags().get("scalars", []):
        return None
    # The last point is logged after the run's end hooks (the export among them): left out.
    points = accumulator.Scalars("loss")[:-1]
    if len(points) < 2:
        return None
    first, last = points[0], points[-1]
    return (last.wall_time - first.wall_time) / (last.step - first.step), last.step - first.step


def _fenced(text: str) -> str:
    return "```\n" + text + "\n```"


def device_check(folder: Path, budget: float = DEVICE_CHECK_SECONDS) -> Report:
    """Everything a lent GPU should measure, in one go within ``budget`` seconds: the CUDA
    tests, the benchmark table, the atlas time and a multi-GPU run. Without a GPU it says so,
    writes the report and returns (exit 0)."""
    deadline = time.perf_counter() + budget
    report = Report(folder)
    logs = folder / "logs"
    logs.mkdir(exist_ok=True)
    python = sys.executable
    gpus = torch.cuda.device_count()
    name = torch.cuda.get_device_name(0) if gpus else "none"
    environment = {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if gpus else None,
        "gpus": gpus,
        "gpu": name,
        "lightning": lightning.__version__,
        "python": sys.version.split()[0],
    }
    lines = "\n".join(f"- {key}: {value}" for key, value in environment.items())
    report.add("environment", environment, f"# Device check\n\n## Environment\n\n{lines}")
    if not gpus:
        report.add("skipped", "no CUDA GPU visible", "**No CUDA GPU is visible: nothing to measure here.** Exit 0.")
        return report

    def left(reserve: float = 0.0) -> float:
        return deadline - time.perf_counter() - reserve

    # 1. The CUDA-marked tests.
    code, seconds, tail = _run(
        [python, "-m", "pytest", "-m", "cuda", "tests/test_cuda.py", "-q", "-rA", "-p", "no:cacheprovider"],
        min(150.0, left(300.0)),
        logs / "cuda_tests.log",
    )
    status = "stopped at its time box" if code is None else ("passed" if code == 0 else f"failed (exit {code})")
    report.add(
        "cuda_tests",
        {"exit": code, "seconds": seconds, "tail": tail},
        f"## CUDA tests: {status}, {seconds:.0f} s\n\n{_fenced(tail)}",
    )

    # 2. The atlas, the goal: configs/atlas.yaml, random VGG16, export included. A prefix first, then the
    # whole run if its projection fits in what is left.
    atlas: dict[str, object] = {}
    runs = folder / "runs"
    base = [python, "-m", "maxclass_lightning", "fit", "--config", "configs/atlas.yaml", "--model.weights=null"]
    base += ["--trainer.enable_progress_bar=false", "--trainer.enable_checkpointing=false"]
    recipe = yaml.safe_load(recipes.path("atlas").read_text())
    total = int(recipe["trainer"]["max_steps"])
    shape = f"{recipe['model'].get('image_size')} px, {total} steps x {recipe['model'].get('views', 1)} views"
    prefix = min(20, total)
    if left(120.0) > 30:
        command = [*base, f"--trainer.max_steps={prefix}", f"--trainer.logger.init_args.save_dir={runs / 'prefix'}"]
        command += ["--trainer.log_every_n_steps=10"]
        code, seconds, tail = _run(command, min(120.0, left(120.0)), logs / "atlas_prefix.log")
        measured = _step_seconds(runs / "prefix") if code == 0 else None
        atlas["prefix"] = {"steps": prefix, "exit": code, "seconds": seconds, "tail": tail}
        if measured:
            per_step, _ = measured
            atlas["seconds_per_step"] = per_step
            atlas["projected_s"] = seconds + (total - prefix) * per_step
    projected = atlas.get("projected_s")
    if projected and left(120.0) > 1.3 * projected:  # and still about 2 minutes for the table
        command = [*base, f"--trainer.logger.init_args.save_dir={runs / 'full'}"]
        code, seconds, tail = _run(command, left(100.0), logs / "atlas_full.log")
        atlas["full"] = {"exit": code, "seconds": seconds, "tail": tail}
    if "full" in atlas and atlas["full"]["exit"] == 0:
        summary = (
            f"**{atlas['full']['seconds']:.1f} s** measured ({total} steps, start-up and export of 1000 PNGs included)"
        )
    elif projected:
        summary = (
            f"**{projected:.1f} s projected** (not run in full: {prefix} steps with export took "
            f"{atlas['prefix']['seconds']:.1f} s at {atlas['seconds_per_step']:.3f} s a step, "
            "from TensorBoard wall times)"
        )
    else:
        summary = "not measured: see the tail below"
    tails = [_fenced(part["tail"]) for key in ("prefix", "full") if (part := atlas.get(key))]
    report.add(
        "atlas",
        atlas,
        f"## Atlas (1000 classes, VGG16, configs/atlas.yaml: {shape}; the goal, < 60 s, was set for 200 "
        f"single-view steps at 256 px)\n\n{summary}\n\n" + "\n".join(tails),
    )

    # 3. The benchmark table: VGG16, 256 px, batch 1, 64 and 256; fp32 and bf16; NCHW and NHWC.
    rows: list[dict] = []
    for precision in ("bf16-mixed", "32-true"):
        for channels_last in (True, False):
            if left(20.0) < 20:
                break
            out = logs / f"table_{precision}_{int(channels_last)}.json"
            command = [python, "-m", "maxclass_lightning.benchmark", "--sizes", "256", "--batches", "1", "64", "256"]
            command += ["--steps", "10", "--warmup", "3", "--precision", precision, "--cudnn-benchmark"]
            command += ["--no-progress-bar", "--json", str(out)] + (["--channels-last"] if channels_last else [])
            code, seconds, tail = _run(command, min(70.0, left(20.0)), logs / f"table_{precision}_{channels_last}.log")
            if out.exists():
                rows.extend(json.loads(out.read_text()))
            if code != 0:
                rows.append({"precision": precision, "channels_last": channels_last, "error": tail[-600:]})
    table = [
        "| precision | NHWC | batch | plain step/s | app step/s | images x steps/s | app/plain | app peak MB "
        "| TFLOP/s | of peak |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        if "error" in row:
            table.append(f"| {row['precision']} | {row['channels_last']} | failed or stopped: see logs | | | | | | | |")
            continue
        fraction = f"{row['fraction_of_peak']:.0%}" if row.get("fraction_of_peak") else "?"
        table.append(
            f"| {row['precision']} | {row['channels_last']} | {row['batch']} | {row['plain_steps_per_s']:.2f} "
            f"| {row['app_steps_per_s']:.2f} | {row['app_images_steps_per_s']:.1f} | {row['ratio']:.3f} "
            f"({row['ratio_min']:.3f}-{row['ratio_max']:.3f}) | {row['app_mb']:.0f} | {row['app_tflops']:.1f} "
            f"| {fraction} |"
        )
    peaks = ", ".join(f"{key} {bf16:g}/{tf32:g}" for key, (bf16, tf32) in PEAK_TFLOPS.items())
    report.add(
        "benchmark",
        rows,
        "## Benchmark: VGG16 (random weights), 256 px, 10 steps after 3, cudnn benchmark\n\n"
        + "\n".join(table)
        + f"\n\nTFLOP/s: FlopCounterMode's count of one forward and backward to the input, over the app's "
        f"step time. Dense peaks assumed, bf16/tf32 TFLOP/s: {peaks}.",
    )

    # 4. All visible GPUs, classes owned by processes.
    if gpus > 1 and left(10.0) > 30:
        command = [*base, f"--trainer.max_steps={prefix}", f"--trainer.devices={gpus}"]
        command += ["--trainer.strategy=owned_classes", f"--trainer.logger.init_args.save_dir={runs / 'multi'}"]
        code, seconds, tail = _run(command, left(10.0), logs / "atlas_multi.log")
        measured = _step_seconds(runs / "multi") if code == 0 else None
        multi = {
            "gpus": gpus,
            "steps": prefix,
            "exit": code,
            "seconds": seconds,
            "seconds_per_step": measured and measured[0],
        }
        text = f"{prefix} steps on {gpus} GPUs: exit {code}, {seconds:.1f} s"
        if measured:
            text += f", {measured[0]:.3f} s a step"
        report.add("multi_gpu", multi, f"## Atlas on {gpus} GPUs (owned_classes)\n\n{text}\n\n{_fenced(tail)}")
    else:
        report.add(
            "multi_gpu",
            None,
            f"## Multi-GPU\n\nskipped: {gpus} GPU visible" + ("" if gpus == 1 else " or no time left"),
        )
    return report


if __name__ == "__main__":
    if sys.argv[1:2] == ["--device-check"]:
        if len(sys.argv) != 3:
            sys.exit("usage: python -m maxclass_lightning.benchmark --device-check OUT_FOLDER")
        quiet_lightning()
        device_check(Path(sys.argv[2]))
    else:
        main()
