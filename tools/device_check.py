"""``python -m tools.device_check OUT``: everything a lent GPU should measure, in one go.

A GPU is lent for minutes, by chance, so the check is prepared in advance and runs unattended within
a time budget: the CUDA tests, the atlas time (the goal), the benchmark table with TFLOP/s against
the chip's peak, and a run on all visible GPUs. Each stage has its own time box and the report is
rewritten after each, so a stage that overruns or crashes leaves the ones before it on disk.
Without a GPU it says so, writes the report and exits 0. ``scripts/device-check.sh OUT`` runs it
with a backstop timeout, after checking the packages it needs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import lightning
import torch
import yaml

from maxclass_lightning import recipes
from maxclass_lightning.cli import quiet_lightning
from tools.events import step_seconds
from tools.flops import PEAK_TFLOPS, peak_tflops, projected_seconds, recipe_flops

#: Wall-clock budget of the check, seconds: the device is lent for minutes in all.
DEVICE_CHECK_SECONDS = 450.0
#: The repository root: the stages run the app and the tests from this tree, installed or not.
ROOT = Path(__file__).resolve().parents[1]

#: Seconds left before the deadline, less a reserve for the stages still to come.
Clock = Callable[[float], float]


class Report:
    """``report.md`` and ``report.json``, rewritten after every stage."""

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
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    start = time.perf_counter()
    with (
        open(log, "w") as output,
        subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
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


def _fenced(text: str) -> str:
    return "```\n" + text + "\n```"


def environment(report: Report) -> int:
    """Versions and GPUs; returns the number of GPUs."""
    gpus = torch.cuda.device_count()
    found = {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if gpus else None,
        "gpus": gpus,
        "gpu": torch.cuda.get_device_name(0) if gpus else "none",
        "lightning": lightning.__version__,
        "python": sys.version.split()[0],
    }
    lines = "\n".join(f"- {key}: {value}" for key, value in found.items())
    report.add("environment", found, f"# Device check\n\n## Environment\n\n{lines}")
    return gpus


def cuda_tests(report: Report, logs: Path, left: Clock) -> None:
    """The CUDA-marked tests (tests/test_cuda.py)."""
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-m",
        "cuda",
        "tests/test_cuda.py",
        "-q",
        "-rA",
        "-p",
        "no:cacheprovider",
    ]
    code, seconds, tail = _run(command, min(150.0, left(300.0)), logs / "cuda_tests.log")
    status = "stopped at its time box" if code is None else ("passed" if code == 0 else f"failed (exit {code})")
    report.add(
        "cuda_tests",
        {"exit": code, "seconds": seconds, "tail": tail},
        f"## CUDA tests: {status}, {seconds:.0f} s\n\n{_fenced(tail)}",
    )


def atlas_command(folder: Path) -> list[str]:
    """``configs/atlas.yaml`` with random VGG16 weights (no download), export included."""
    return [
        *(sys.executable, "-m", "maxclass_lightning", "fit", "--config", "configs/atlas.yaml", "--model.weights=null"),
        *("--trainer.enable_progress_bar=false", "--trainer.enable_checkpointing=false"),
        f"--trainer.logger.init_args.save_dir={folder}",
    ]


def atlas(report: Report, runs: Path, logs: Path, left: Clock) -> int:
    """The atlas's wall time, the goal: a prefix first, then the whole run if its projection fits in
    what is left (otherwise the projection is reported as such). Returns the prefix's steps."""
    recipe = yaml.safe_load(recipes.path("atlas").read_text())
    total = int(recipe["trainer"]["max_steps"])
    shape = f"{recipe['model'].get('image_size')} px, {total} steps x {recipe['model'].get('views', 1)} views"
    prefix = min(20, total)
    measured: dict[str, object] = {}
    if left(120.0) > 30:
        command = [*atlas_command(runs / "prefix"), f"--trainer.max_steps={prefix}", "--trainer.log_every_n_steps=10"]
        code, seconds, tail = _run(command, min(120.0, left(120.0)), logs / "atlas_prefix.log")
        per_step = step_seconds(runs / "prefix") if code == 0 else None
        measured["prefix"] = {"steps": prefix, "exit": code, "seconds": seconds, "tail": tail}
        if per_step:
            measured["seconds_per_step"] = per_step[0]
            measured["projected_s"] = seconds + (total - prefix) * per_step[0]
    projected = measured.get("projected_s")
    if projected and left(120.0) > 1.3 * projected:  # and still about 2 minutes for the table
        code, seconds, tail = _run(atlas_command(runs / "full"), left(100.0), logs / "atlas_full.log")
        measured["full"] = {"exit": code, "seconds": seconds, "tail": tail}
    if "full" in measured and measured["full"]["exit"] == 0:
        summary = (
            f"**{measured['full']['seconds']:.1f} s** measured ({total} steps, start-up and export of 1000 PNGs "
            "included)"
        )
    elif projected:
        summary = (
            f"**{projected:.1f} s projected** (not run in full: {prefix} steps with export took "
            f"{measured['prefix']['seconds']:.1f} s at {measured['seconds_per_step']:.3f} s a step, "
            "from TensorBoard wall times)"
        )
    else:
        summary = "not measured: see the tail below"
    summary += _against_peak(measured)
    tails = [_fenced(part["tail"]) for key in ("prefix", "full") if (part := measured.get(key))]
    report.add(
        "atlas",
        measured,
        f"## Atlas (1000 classes, VGG16, configs/atlas.yaml: {shape}; the goal, < 60 s, was set for 200 "
        f"single-view steps at 256 px)\n\n{summary}\n\n" + "\n".join(tails),
    )
    return prefix


def _against_peak(measured: dict) -> str:
    """The atlas's FLOPs (``tools.flops``, the figure docs/results.md projects) against its wall
    time: the fraction of the chip's dense bf16 peak the whole run reaches."""
    figures = recipe_flops("atlas")
    peak = peak_tflops(torch.device("cuda"), "bf16-mixed")
    seconds = measured["full"]["seconds"] if measured.get("full", {}).get("exit") == 0 else measured.get("projected_s")
    measured["run_flops"] = figures["run_flops"]
    if not peak or not seconds:
        return f" FLOPs: {figures['run_flops'] / 1e15:.1f} PFLOP."
    at_peak = projected_seconds(figures["run_flops"], peak, 1.0)
    measured["at_peak_s"], measured["fraction_of_peak"] = at_peak, at_peak / seconds
    return (
        f" FLOPs: {figures['run_flops'] / 1e15:.1f} PFLOP, {at_peak:.0f} s at the chip's dense bf16 peak "
        f"({peak:g} TFLOP/s): the run reaches {at_peak / seconds:.0%} of it."
    )


#: Interleaved plain/app pairs per benchmark row on the GPU: a median with a spread, within the time box.
TABLE_PAIRS = 3


def benchmark_table(report: Report, logs: Path, left: Clock) -> None:
    """``python -m tools.benchmark``: VGG16, 256 px, batch 1, 64 and 256; fp32 and bf16; NCHW and NHWC."""
    rows: list[dict] = []
    for precision in ("bf16-mixed", "32-true"):
        for channels_last in (True, False):
            if left(20.0) < 20:
                break
            out = logs / f"table_{precision}_{int(channels_last)}.json"
            command = [sys.executable, "-m", "tools.benchmark", "--sizes", "256", "--batches", "1", "64", "256"]
            command += ["--steps", "10", "--warmup", "3", "--pairs", str(TABLE_PAIRS), "--precision", precision]
            command += ["--cudnn-benchmark", "--no-progress-bar", "--json", str(out)]
            command += ["--channels-last"] if channels_last else []
            code, _, tail = _run(command, min(70.0, left(20.0)), logs / f"table_{precision}_{channels_last}.log")
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
        f"## Benchmark: VGG16 (random weights), 256 px, 10 steps after 3, cudnn benchmark, median of {TABLE_PAIRS} "
        "interleaved pairs (min-max)\n\n"
        + "\n".join(table)
        + f"\n\nTFLOP/s: FlopCounterMode's count of one forward and backward to the input, over the app's "
        f"step time. Dense peaks assumed, bf16/tf32 TFLOP/s: {peaks}.",
    )


def multi_gpu(report: Report, gpus: int, steps: int, runs: Path, logs: Path, left: Clock) -> None:
    """The atlas's first ``steps`` on all visible GPUs, classes owned by processes."""
    if gpus < 2 or left(10.0) <= 30:
        reason = f"{gpus} GPU visible" + ("" if gpus == 1 else " or no time left")
        report.add("multi_gpu", None, f"## Multi-GPU\n\nskipped: {reason}")
        return
    command = [*atlas_command(runs / "multi"), f"--trainer.max_steps={steps}", f"--trainer.devices={gpus}"]
    code, seconds, tail = _run([*command, "--trainer.strategy=owned_classes"], left(10.0), logs / "atlas_multi.log")
    measured = step_seconds(runs / "multi") if code == 0 else None
    result = {
        "gpus": gpus,
        "steps": steps,
        "exit": code,
        "seconds": seconds,
        "seconds_per_step": measured and measured[0],
    }
    text = f"{steps} steps on {gpus} GPUs: exit {code}, {seconds:.1f} s"
    if measured:
        text += f", {measured[0]:.3f} s a step"
    report.add("multi_gpu", result, f"## Atlas on {gpus} GPUs (owned_classes)\n\n{text}\n\n{_fenced(tail)}")


def device_check(folder: Path, budget: float = DEVICE_CHECK_SECONDS) -> Report:
    """The stages in order of what matters most, each within what is left of ``budget`` seconds."""
    deadline = time.perf_counter() + budget
    report = Report(folder)
    logs, runs = folder / "logs", folder / "runs"
    logs.mkdir(exist_ok=True)
    gpus = environment(report)
    if not gpus:
        report.add("skipped", "no CUDA GPU visible", "**No CUDA GPU is visible: nothing to measure here.** Exit 0.")
        return report

    def left(reserve: float = 0.0) -> float:
        return deadline - time.perf_counter() - reserve

    cuda_tests(report, logs, left)
    prefix = atlas(report, runs, logs, left)
    benchmark_table(report, logs, left)
    multi_gpu(report, gpus, prefix, runs, logs, left)
    return report


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or argv[0].startswith("-"):
        sys.exit("usage: python -m tools.device_check OUT_FOLDER")
    quiet_lightning()
    device_check(Path(argv[0]))


if __name__ == "__main__":
    main()
