"""The benchmark runs end to end and prints its table; each speed option keeps the images."""

from __future__ import annotations

import json
import math
import subprocess

import pytest
import torch

from maxclass_lightning import benchmark
from tests.conftest import ROOT


def test_benchmark_prints_a_row_per_setting(capsys):
    rows = benchmark.main(
        ["--classifier", "resnet18", "--sizes", "32", "--batches", "1", "2", "--steps", "2", "--warmup", "1"]
    )
    printed = capsys.readouterr().out
    assert "plain step/s" in printed and "app/plain time" in printed
    assert [(r["size"], r["batch"]) for r in rows] == [(32, 1), (32, 2)]
    for row in rows:
        assert row["plain_steps_per_s"] > 0 and row["app_steps_per_s"] > 0
        assert math.isfinite(row["ratio"]) and row["startup_s"] >= 0
        assert row["app_images_steps_per_s"] == row["batch"] * row["app_steps_per_s"]


def test_benchmark_help_lists_its_options(capsys):
    try:
        benchmark.main(["--help"])
    except SystemExit as exit:
        assert exit.code == 0
    assert "--precision" in capsys.readouterr().out


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
    default = _images(in_process_fit)
    cli = in_process_fit(*SPEED_ARGS, FLOAT64, "--model.channels_last=true")
    first_conv = cli.model.classifier.features[0].weight
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
    ]
    default = in_process_fit(*SPEED_ARGS, *fourier).model
    bf16 = in_process_fit(*SPEED_ARGS, *fourier, "--trainer.precision=bf16-mixed").model
    assert all(p.dtype == torch.float32 for p in bf16.image.parameters())
    with torch.no_grad():  # the images both runs started from (the same seed)
        initial = default.image_factory(default.class_indices.tolist(), default.image_size, default.seed)
        start = initial(torch.arange(len(default.owned_rows)))
    updates = torch.stack([(default.render() - start).flatten(), (bf16.render() - start).flatten()])
    assert torch.corrcoef(updates)[0, 1] > 0.7
    # The option took effect: the classifier ran in bf16 under the trainer's autocast.
    dtypes = []
    bf16.classifier.features[0].register_forward_hook(lambda module, inputs, output: dtypes.append(output.dtype))
    with bf16.trainer.precision_plugin.forward_context():
        bf16.scores(bf16.render())
    assert dtypes == [torch.bfloat16]


def test_compiled_classifier_gives_the_same_images(in_process_fit):
    args = ["--model.classifier=tests.networks:tiny_imagenet_classifier"]
    default = _images(in_process_fit, *args)
    cli = in_process_fit(*SPEED_ARGS, FLOAT64, *args, "--model.compile=true")
    assert cli.model.classifier._compiled_call_impl is not None
    torch.testing.assert_close(cli.model.image.pixels.detach(), default, **SAME)


@pytest.mark.skipif(torch.cuda.is_available(), reason="with a GPU the check runs for minutes")
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
