"""The benchmark (``tools/benchmark.py``) measures what it reports, and each speed option keeps the images;
the device check runs without a GPU and says so."""

from __future__ import annotations

import json
import statistics
import subprocess
import time

import pytest
import torch

from tests.conftest import ROOT
from tools import benchmark
from tools.flops import projected_seconds, recipe_flops

TINY_NETWORK = "tests.networks:tiny_imagenet_classifier"


def test_benchmark_reports_the_median_and_spread_of_measured_interleaved_pairs(capsys):
    """30 timed steps, so that the app logs scalars three times (the event-file ratio needs two
    points besides the last); the timings are the pairs' own, and the figures come from them."""
    steps, warmup, pairs = 30, 3, 3
    args = ["--classifier", TINY_NETWORK, "--sizes", "32", "--batches", "2", "--no-progress-bar"]
    start = time.perf_counter()
    (row,) = benchmark.main([*args, "--steps", str(steps), "--warmup", str(warmup), "--pairs", str(pairs)])
    elapsed = time.perf_counter() - start
    assert len(row["pairs"]) == pairs
    plain = [pair["plain_s_per_step"] for pair in row["pairs"]]
    app = [pair["app_s_per_step"] for pair in row["pairs"]]
    # Measured: every pair its own time, and all the timed steps fit in the wall time of the benchmark.
    assert len(set(plain)) == len(set(app)) == pairs
    assert 0 < steps * (sum(plain) + sum(app)) < elapsed
    ratios = [a / p for p, a in zip(plain, app)]
    assert row["ratio"] == statistics.median(ratios)
    assert (row["ratio_min"], row["ratio_max"]) == (min(ratios), max(ratios))
    assert row["plain_steps_per_s"] == 1 / statistics.median(plain)
    assert row["app_images_steps_per_s"] == 2 / statistics.median(app)
    events = [pair["app_event_s_per_step"] / p for pair, p in zip(row["pairs"], plain)]
    assert row["event_ratio"] == statistics.median(events) and row["event_ratio_min"] == min(events)
    assert all(pair["startup_s"] > 0 for pair in row["pairs"]) and row["startup_s"] > 0
    printed = capsys.readouterr().out
    assert "median of 3 interleaved pairs" in printed and f"{row['ratio']:.3f}" in printed


def test_benchmark_help_lists_its_options(capsys):
    with pytest.raises(SystemExit) as exit:
        benchmark.main(["--help"])
    assert exit.value.code == 0
    printed = capsys.readouterr().out
    assert "--pairs" in printed and "--precision" in printed


SPEED_ARGS = ["--model.classes=[259,1]", "--trainer.max_steps=3", "--trainer.enable_checkpointing=false"]
#: float64, where a speed option may only reorder sums: the images then agree to rounding of
#: float64 whatever the CPU and thread count (in float32 Adam at lr 5 amplifies reordered sums of
#: near-zero gradients to about 3% of a step on some CPUs). A real error, a wrong layout or a
#: miscompiled operator, moves pixels by a good fraction of a step (about 5).
FLOAT64 = "--trainer.precision=64-true"
SAME = {"rtol": 0, "atol": 1e-9}


def _images(in_process_fit, *extra):
    return in_process_fit(*SPEED_ARGS, FLOAT64, *extra).model.image.pixels.detach()


def test_channels_last_gives_the_same_images(in_process_fit):
    args = [f"--model.classifier={TINY_NETWORK}"]  # convolutions are what the layout changes
    default = _images(in_process_fit, *args)
    cli = in_process_fit(*SPEED_ARGS, FLOAT64, *args, "--model.channels_last=true")
    first_conv = cli.model.classifier[0].weight
    assert first_conv.is_contiguous(memory_format=torch.channels_last) and not first_conv.is_contiguous()
    assert cli.model.image.pixels.dtype == torch.float64
    torch.testing.assert_close(cli.model.image.pixels.detach(), default, **SAME)


def test_bf16_mixed_precision_gives_nearly_the_same_images_and_keeps_fp32_parameters(in_process_fit):
    # bf16 changes the trajectory, so the comparison is of the images' updates, on the Fourier
    # image with plain SGD, whose step is proportional to the gradient: with Adam (and more so
    # AdamW at lr 5 on pixels) the first steps follow gradient signs, and bf16 flips the signs of
    # tiny gradient components, which measures Adam's sign amplification, not bf16's gradients.
    fourier = [
        "--model.image=maxclass_lightning.images.FourierImage",
        "--model.optimizer=torch.optim.SGD",
        "--model.optimizer.lr=1.0",
        "--model.transforms=maxclass_lightning.transforms.RandomViews",
        # The tiny network: bf16 matmuls are emulated on most CPUs (VGG16 took 18.6 s here).
        f"--model.classifier={TINY_NETWORK}",
    ]
    default = in_process_fit(*SPEED_ARGS, *fourier).model
    bf16 = in_process_fit(*SPEED_ARGS, *fourier, "--trainer.precision=bf16-mixed").model
    assert all(p.dtype == torch.float32 for p in bf16.image.parameters())
    with torch.no_grad():  # the images both runs started from (the same seed)
        initial = default.image_factory(default.class_indices.tolist(), default.image_size, default.seed)
        start = initial(torch.arange(len(default.owned_rows)))
    updates = torch.stack([(default.render() - start).flatten(), (bf16.render() - start).flatten()])
    assert torch.corrcoef(updates)[0, 1] > 0.99  # measured: 0.99999
    # The option took effect: the classifier ran in bf16 under the trainer's autocast.
    dtypes = []
    bf16.classifier[0].register_forward_hook(lambda module, inputs, output: dtypes.append(output.dtype))
    with bf16.trainer.precision_plugin.forward_context():
        bf16.scores(bf16.render())
    assert dtypes == [torch.bfloat16]


def test_compiled_classifier_gives_the_same_images(in_process_fit):
    args = [f"--model.classifier={TINY_NETWORK}"]
    default = _images(in_process_fit, *args)
    cli = in_process_fit(*SPEED_ARGS, FLOAT64, *args, "--model.compile=true")
    assert cli.model.classifier._compiled_call_impl is not None
    torch.testing.assert_close(cli.model.image.pixels.detach(), default, **SAME)


@pytest.mark.skipif(torch.cuda.is_available(), reason="with a GPU the check runs for minutes")
def test_the_atlas_flops_are_vgg16s_published_cost_times_its_passes():
    """VGG16 at 224 px is 15.5 GMAC (31 GFLOP) forward; the backward to the input costs about as
    much again. The atlas: 512 passes (128 steps x 4 views) for each of 1000 classes."""
    figures = recipe_flops("atlas")
    assert 2 * 29e9 < figures["pass_flops"] < 2 * 33e9
    assert (figures["passes_per_class"], figures["classes"]) == (512, 1000)
    assert figures["run_flops"] == figures["pass_flops"] * 512 * 1000
    assert 30 < projected_seconds(figures["run_flops"], 989.0, 1.0) < 35  # an H200 at its dense bf16 peak


def test_device_check_without_a_gpu_says_so_writes_its_report_and_exits_0(tmp_path):
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "device-check.sh"), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["environment"]["gpus"] == 0 and report["skipped"] == "no CUDA GPU visible"
    assert "No CUDA GPU is visible" in (tmp_path / "out" / "report.md").read_text()
    assert "No CUDA GPU is visible" in result.stdout
