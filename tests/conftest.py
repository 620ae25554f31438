"""Shared helpers: run the real CLI in a subprocess or in-process, on a tiny random VGG16."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Under pytest-xdist, one thread per worker: two workers of two threads each on CI's 2 cores fight
# over them, and most of the suite's tensors are too small to gain from a second thread. Set before
# torch is imported here, and inherited by the subprocesses the tests start. An explicit
# OMP_NUM_THREADS wins. (Exactness tests compare in float64, so the thread count changes nothing.)
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")

#: A run small enough for 2 CPU cores: a tiny random (seeded) network with ImageNet's 1000 classes,
#: 32 px, a few steps, no download. VGG16 (the default classifier) costs about 8 times as much per
#: run at this size; tests of VGG16 itself name it (``VGG16``).
TINY = [
    "--seed_everything=0",
    "--model.classifier=tests.networks:tiny_imagenet_classifier",
    "--trainer.accelerator=cpu",
    "--trainer.max_steps=4",
    "--trainer.log_every_n_steps=2",
    "--trainer.enable_progress_bar=false",
    "--trainer.enable_model_summary=false",
    "--model.image_size=32",
    "--model.weights=null",
    "--model.normalize=false",
]


#: Arguments that put the default classifier back into a ``tiny_args`` run.
VGG16 = ["--model.classifier=vgg16"]


def tiny_args(save_dir: Path, *extra: str) -> list[str]:
    """``fit`` arguments for a tiny run writing under ``save_dir``."""
    return ["fit", *TINY, f"--trainer.logger.init_args.save_dir={save_dir}", *extra]


def run_module(args: list[str], cwd: Path = ROOT, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    """``python -m maxclass_lightning ARGS`` as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "maxclass_lightning", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
    )


def fit_in_process(args: list[str]):
    """``main(args)`` in this process, for runs that need no process of their own: the same CLI and
    Trainer as ``run_module`` without an interpreter's start-up (about 5 s of imports each)."""
    from maxclass_lightning.cli import main

    argv, sys.argv = sys.argv, ["maxclass_lightning"]
    try:
        return main(args)
    finally:
        sys.argv = argv


def run_dir(save_dir: Path, name: str = "maxclass") -> Path:
    """The one run directory a run created under ``save_dir``."""
    versions = sorted((save_dir / name).glob("version_*"))
    assert len(versions) == 1, f"expected one run under {save_dir / name}, found {versions}"
    return versions[0]


@pytest.fixture(autouse=True)
def command_line_of_the_app(monkeypatch):
    """In-process CLI runs see the app's own command line, not pytest's (LightningCLI warns when
    given both ``args`` and a command line)."""
    monkeypatch.setattr(sys, "argv", ["maxclass_lightning"])


@pytest.fixture
def in_process_fit(tmp_path):
    """Runs the CLI's ``fit`` on the default classifier (VGG16, random) in this process and returns
    the LightningCLI (model and trainer)."""

    def fit(*extra: str):
        return fit_in_process(tiny_args(tmp_path, *VGG16, *extra))

    return fit
