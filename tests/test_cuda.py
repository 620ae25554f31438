"""The CUDA path: the same images as on the CPU, bf16 with NHWC, no host sync in a plain step,
determinism and owned classes on two GPUs. Marked ``cuda``; skipped where no GPU is visible
(``python -m pytest -m cuda`` runs only these; ``scripts/device-check.sh`` runs them on a GPU)."""

from __future__ import annotations

import pytest
import torch
from lightning.pytorch import Callback
from torch.profiler import ProfilerActivity, profile

from maxclass_lightning.transforms import RandomViews
from tests.conftest import run_dir, run_module, tiny_args
from tests.test_distributed import final_images

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

CLASSES = [1, 259, 948]
#: float64 on both devices: cuDNN and the CPU's kernels sum in different orders, which float64
#: keeps at rounding level (Adam at lr 5 would amplify float32 rounding of tiny gradients).
FLOAT64 = ["--trainer.max_steps=4", "--trainer.precision=64-true", f"--model.classes={CLASSES}"]
CUDA = ["--trainer.accelerator=cuda", "--trainer.devices=1"]
EXACT = {"rtol": 0, "atol": 1e-9}


def test_fit_on_cuda_equals_fit_on_cpu(in_process_fit):
    cpu = in_process_fit(*FLOAT64).model.image.pixels.detach()
    cuda = in_process_fit(*FLOAT64, *CUDA).model
    assert cuda.image.pixels.device.type == "cuda"
    torch.testing.assert_close(cuda.image.pixels.detach().cpu(), cpu, **EXACT)


def test_bf16_channels_last_keep_float32_images_and_correlated_updates(in_process_fit):
    fourier = [
        "--model.classes=[259,1]",
        "--trainer.max_steps=3",
        "--model.image=maxclass_lightning.images.FourierImage",
        "--model.optimizer=torch.optim.SGD",  # steps proportional to the gradient (test_benchmark.py)
        "--model.optimizer.lr=1.0",
        "--model.transforms=maxclass_lightning.transforms.RandomViews",
        *CUDA,
    ]
    default = in_process_fit(*fourier).model
    fast = in_process_fit(*fourier, "--trainer.precision=bf16-mixed", "--model.channels_last=true").model
    assert all(p.dtype == torch.float32 and p.is_cuda for p in fast.image.parameters())
    with torch.no_grad():  # the images both runs started from (the same seed)
        initial = default.image_factory(default.class_indices.tolist(), default.image_size, default.seed)
        start = initial.to(default.device)(torch.arange(len(default.owned_rows), device=default.device))
    updates = torch.stack([(default.render() - start).flatten(), (fast.render() - start).flatten()]).cpu()
    assert torch.corrcoef(updates)[0, 1] > 0.7
    outputs = []
    fast.classifier.features[0].register_forward_hook(lambda module, inputs, output: outputs.append(output))
    with fast.trainer.precision_plugin.forward_context():
        fast.scores(fast.render())
    assert outputs[0].dtype == torch.bfloat16
    assert outputs[0].is_contiguous(memory_format=torch.channels_last)


#: Profiler events that make the host wait for the GPU: stream and event synchronizations and
#: the device-to-host copies behind ``.item()``, ``bool(tensor)`` and ``.cpu()``.
SYNC_EVENTS = ("cudaStreamSynchronize", "cudaEventSynchronize", "aten::_local_scalar_dense")


class ProfileSteps(Callback):
    """Profiles the Trainer's steps ``first``..``last`` (hooks, callbacks and the loop included)."""

    def __init__(self, first: int, last: int) -> None:
        self.first, self.last = first, last
        self.profiler = profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA])

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if batch_idx == self.first:
            self.profiler.__enter__()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if batch_idx == self.last:
            self.profiler.__exit__(None, None, None)


def test_no_host_sync_in_a_step_that_does_not_log(in_process_fit):
    """Steps 2 to 8 of a run logging every 10 steps: default callbacks and progress bar on, as
    a user runs it. A logging step syncs once (the scalars); the others must not wait."""
    cli = in_process_fit(
        *CUDA,
        "--model.classes=[259,1]",
        "--trainer.max_steps=12",
        "--trainer.log_every_n_steps=10",
        "--trainer.enable_progress_bar=true",
        f"--trainer.callbacks+={__name__}.ProfileSteps",
        "--trainer.callbacks.first=2",
        "--trainer.callbacks.last=8",
    )
    (probe,) = [c for c in cli.trainer.callbacks if isinstance(c, ProfileSteps)]
    names = [event.name for event in probe.profiler.events()]
    assert any(name.startswith("aten::convolution") for name in names), "the profile saw no step"
    syncs = {name: names.count(name) for name in SYNC_EVENTS if name in names}
    assert not syncs, f"host syncs in 7 non-logging steps: {syncs}"
    # torch.cuda.synchronize(): at most the profiler's own, as it stops
    assert names.count("cudaDeviceSynchronize") <= 1, "torch.cuda.synchronize() in the steps"


def test_deterministic_runs_are_bitwise_equal(tmp_path):
    """``trainer.deterministic`` (``torch.use_deterministic_algorithms``): two runs, the same bits."""
    args = [*CUDA, "--trainer.deterministic=true", f"--model.classes={CLASSES}", "--model.views=2"]
    images = []
    for name in ("first", "second"):
        result = run_module(tiny_args(tmp_path / name, *args), CUBLAS_WORKSPACE_CONFIG=":4096:8")
        assert result.returncode == 0, result.stderr[-2000:]
        images.append(final_images(run_dir(tmp_path / name)))
    for index in CLASSES:
        assert torch.equal(images[0][index], images[1][index]), f"class {index} differs between identical runs"


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 CUDA GPUs")
def test_two_gpus_own_their_classes_and_match_one_gpu(tmp_path):
    runs = {}
    for name, devices in (
        ("one", ["--trainer.devices=1"]),
        ("two", ["--trainer.devices=2", "--trainer.strategy=owned_classes"]),
    ):
        result = run_module(tiny_args(tmp_path / name, *FLOAT64, "--trainer.accelerator=cuda", *devices))
        assert result.returncode == 0, result.stderr[-2000:]
        runs[name] = final_images(run_dir(tmp_path / name))
    for index in CLASSES:
        torch.testing.assert_close(runs["two"][index], runs["one"][index], **EXACT)


def test_noisy_views_on_cuda_equal_the_cpus():
    """Warps, colour and noise draw from keys on the views' device (the module's work items live there)."""
    views = RandomViews(rotate=20, color_shift=0.1, noise=0.05, output_size=16)
    images = torch.rand(3, 3, 24, 24, dtype=torch.float64)
    keys = torch.tensor([[0, 1, 0, 5], [0, 259, 0, 5], [0, 259, 1, 5]])
    on_cuda = views(images.cuda(), keys.cuda())
    torch.testing.assert_close(on_cuda.cpu(), views(images, keys), **EXACT)
