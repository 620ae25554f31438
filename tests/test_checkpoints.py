"""A run killed without warning loses at most one checkpoint interval and the write in flight, and a
full disk stops it with one line and the last checkpoint intact."""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
import torch
from lightning.pytorch import Callback
from lightning.pytorch.callbacks import ModelCheckpoint

from maxclass_lightning.checkpoints import (
    AtomicCheckpointIO,
    BackgroundCheckpointIO,
    PeriodicCheckpoint,
    is_lightning_default,
)
from maxclass_lightning.cli import main
from maxclass_lightning.errors import ConfigError
from tests.conftest import ROOT, fit_in_process, run_dir, run_module, tiny_args
from tests.test_errors import fails_cleanly

STEPS = 40
INTERVAL = 3
#: Two classes, two random views, in float64: a resumed run can be compared exactly.
RECIPE = [
    "--model.classes=[259,1]",
    "--model.views=2",
    "--model.transforms=maxclass_lightning.transforms.RandomViews",
    "--trainer.precision=64-true",
]


def _final_image(run: Path) -> torch.Tensor:
    return torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]["image.pixels"]


def test_sigkill_at_a_random_moment_leaves_a_recent_checkpoint_that_resumes_to_the_same_image(tmp_path):
    work_log = tmp_path / "work" / "rank0.jsonl"
    args = tiny_args(
        tmp_path / "killed",
        *RECIPE,
        f"--trainer.max_steps={STEPS}",
        "--trainer.callbacks+=maxclass_lightning.checkpoints.PeriodicCheckpoint",
        f"--trainer.callbacks.every_n_steps={INTERVAL}",
        "--trainer.callbacks+=tests.work_log.RecordWork",
        f"--trainer.callbacks.folder={work_log.parent}",
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "maxclass_lightning", *args], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    # A random step after the first two intervals: a background write is on disk once the next
    # save has begun (saves wait for the write before), not before, so a kill during the write of
    # checkpoint m leaves checkpoint m - INTERVAL, and a kill before the second save may leave none.
    kill_after = random.Random().randint(2 * INTERVAL + 1, STEPS - 10)
    deadline = time.monotonic() + 240
    while not work_log.exists() or len(work_log.read_text().splitlines()) < kill_after:
        assert process.poll() is None, process.communicate()[1][-2000:]
        assert time.monotonic() < deadline
        time.sleep(0.005)
    time.sleep(random.Random().uniform(0, 0.05))  # anywhere within the step, the save included
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL

    run = run_dir(tmp_path / "killed")
    started = len(work_log.read_text().splitlines())  # steps begun; the last may be unfinished
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)  # complete and loadable
    saved = checkpoint["global_step"]
    # At most one interval and the write in flight behind the steps begun.
    assert saved % INTERVAL == 0 and started - 1 - 2 * INTERVAL <= saved <= started, (saved, started)

    resumed = fit_in_process(
        tiny_args(
            tmp_path / "resumed",
            *RECIPE,
            f"--trainer.max_steps={STEPS}",
            f"--ckpt_path={run / 'checkpoints' / 'last.ckpt'}",
        )
    )
    straight = fit_in_process(tiny_args(tmp_path / "straight", *RECIPE, f"--trainer.max_steps={STEPS}"))
    assert resumed.trainer.global_step == straight.trainer.global_step == STEPS
    torch.testing.assert_close(
        _final_image(run_dir(tmp_path / "resumed")), _final_image(run_dir(tmp_path / "straight")), rtol=0, atol=1e-12
    )


class CheckpointSeen(Callback):
    """Records, at the start of each step, the step the run's ``last.ckpt`` holds (None: no file)."""

    def __init__(self) -> None:
        self.seen: list[int | None] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        path = Path(trainer.log_dir) / "checkpoints" / "last.ckpt"
        self.seen.append(torch.load(path, weights_only=True)["global_step"] if path.exists() else None)


@pytest.mark.parametrize(("minutes", "expected"), [("1e-6", [None, 1, 2, 3]), ("null", [None, None, None, None])])
def test_wall_clock_interval(minutes, expected, tmp_path):
    """With a (tiny) interval every step's end rewrites last.ckpt; with none, only the run's end."""
    cli = main(
        tiny_args(
            tmp_path,
            "--trainer.max_steps=4",
            "--trainer.callbacks+=maxclass_lightning.checkpoints.PeriodicCheckpoint",
            f"--trainer.callbacks.every_n_minutes={minutes}",
            "--trainer.callbacks.background=false",  # each file complete when the next step looks
            "--trainer.callbacks+=tests.test_checkpoints.CheckpointSeen",
        )
    )
    (seen,) = [callback for callback in cli.trainer.callbacks if isinstance(callback, CheckpointSeen)]
    assert seen.seen == expected
    assert torch.load(run_dir(tmp_path) / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 4


def test_periodic_checkpoint_is_on_by_default(tmp_path):
    from maxclass_lightning.checkpoints import CHECKPOINT_MINUTES

    cli = main(tiny_args(tmp_path, "--trainer.max_steps=2"))
    (checkpoint,) = cli.trainer.checkpoint_callbacks
    assert isinstance(checkpoint, PeriodicCheckpoint) and checkpoint.every_n_minutes == CHECKPOINT_MINUTES == 10
    assert [p.name for p in (run_dir(tmp_path) / "checkpoints").iterdir()] == ["last.ckpt"]


def test_background_writes_land_in_order_and_a_failed_one_raises_on_wait(tmp_path):
    path = tmp_path / "last.ckpt"
    writer = BackgroundCheckpointIO()
    state = {"global_step": 1, "image": torch.zeros(3)}
    writer.save_checkpoint(state, path)
    state["image"] += 1  # the next step changes the state in place: the write has its own copy
    state["global_step"] = 2
    writer.save_checkpoint(state, path)
    writer.wait()
    saved = torch.load(path, weights_only=True)
    assert saved["global_step"] == 2 and torch.equal(saved["image"], torch.ones(3))
    writer.save_checkpoint({"global_step": 3, "broken": Unpicklable()}, path)
    with pytest.raises(OSError, match="No space left"):
        writer.teardown()
    assert torch.load(path, weights_only=True)["global_step"] == 2


class Unpicklable:
    """Fails to be written as a full disk would."""

    def __reduce__(self):
        raise OSError(28, "No space left on device")


def test_atomic_save_keeps_the_previous_file_when_writing_fails(tmp_path):
    path = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"global_step": 1}, path)

    with pytest.raises(OSError):
        AtomicCheckpointIO().save_checkpoint({"global_step": 2, "broken": Unpicklable()}, path)
    assert torch.load(path, weights_only=True) == {"global_step": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]  # no partial file left


class FillDisk(Callback):
    """Fills the run's file system after ``after_step`` steps, as another program might."""

    def __init__(self, after_step: int) -> None:
        self.after_step = after_step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.after_step:
            with open(Path(trainer.log_dir).parent / "filler", "wb") as filler:
                try:
                    while True:
                        filler.write(b"\0" * 65536)
                        filler.flush()
                except OSError:
                    pass


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("mount") is None, reason="mounting a tmpfs needs root")
def test_full_disk_stops_with_one_line_and_keeps_the_last_checkpoint(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        result = run_module(
            tiny_args(
                disk,
                f"--trainer.max_steps={STEPS}",
                "--trainer.callbacks+=maxclass_lightning.checkpoints.PeriodicCheckpoint",
                "--trainer.callbacks.every_n_steps=2",
                "--trainer.callbacks+=tests.test_checkpoints.FillDisk",
                "--trainer.callbacks.after_step=5",
            )
        )
        assert result.returncode == 1, result.stderr
        assert "Traceback" not in result.stderr
        message = result.stderr.strip().splitlines()[-1]
        last = run_dir(disk) / "checkpoints" / "last.ckpt"
        assert message.startswith("error: the disk is full"), message
        # Step 4's save is written in the background: when the disk fills after step 5, that write
        # may have finished (step 4 kept) or failed (step 2 kept); the message names the one kept.
        saved = torch.load(last, weights_only=True)["global_step"]
        assert saved in (2, 4), saved
        assert f"the last complete checkpoint, {last} (step {saved}), is intact" in message
        assert f"resume with --ckpt_path {last}" in message
        assert not list(last.parent.glob("*.partial"))
    finally:
        subprocess.run(["umount", str(disk)], check=False)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"every_n_minutes": -1}, "PeriodicCheckpoint.every_n_minutes is -1; give a positive number of minutes"),
        ({"every_n_minutes": float("inf")}, "PeriodicCheckpoint.every_n_minutes is inf; give"),
        ({"every_n_steps": 0}, "PeriodicCheckpoint.every_n_steps is 0; give a positive number of steps"),
    ],
)
def test_periodic_checkpoint_refuses_an_interval_out_of_range(options, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        PeriodicCheckpoint(**options)


def test_an_interval_out_of_range_is_one_line_on_the_command_line(capsys, tmp_path):
    message = fails_cleanly(
        capsys,
        tmp_path / "runs",
        "--trainer.callbacks+=maxclass_lightning.checkpoints.PeriodicCheckpoint",
        "--trainer.callbacks.every_n_steps=0",
    )
    assert "every_n_steps is 0; give a positive number of steps" in message


def test_only_lightnings_own_default_checkpoint_is_replaced(tmp_path):
    assert is_lightning_default(ModelCheckpoint())
    assert not is_lightning_default(ModelCheckpoint(every_n_train_steps=5))
    assert not is_lightning_default(ModelCheckpoint(train_time_interval=timedelta(minutes=1)))
    assert not is_lightning_default(ModelCheckpoint(dirpath=tmp_path))
    assert not is_lightning_default(ModelCheckpoint(save_last=True))
    assert not is_lightning_default(PeriodicCheckpoint())
