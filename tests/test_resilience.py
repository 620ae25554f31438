"""Runs that diverge or are interrupted keep their work; the same seed gives the same pictures."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import ROOT, fit_in_process, tiny_args

STEPS = 30


def final_image(run) -> torch.Tensor:
    return torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]["image.pixels"]


def test_divergence_stops_with_a_message_and_exports_the_last_finite_images(capsys, tmp_path):
    """In this process: the exit code and the one line are ``main``'s, as under ``python -m``
    (the command line's own error path is ``test_cli``'s)."""
    with pytest.raises(SystemExit) as exit:
        fit_in_process(
            tiny_args(
                tmp_path,
                "--trainer.max_steps=8",
                "--model.optimizer=torch.optim.SGD",
                "--model.optimizer.lr=1e38",
                "--model.optimizer.weight_decay=0.1",  # decay at this lr overflows float32 within a few steps
                # The seed's sharpness step clamps to [0, 1], which turns an image of +-1e37 values
                # black; without it the min-max stretch shows the last finite image as it is.
                "--model.display.sharpness=null",
                "--trainer.log_every_n_steps=1",  # the default DivergenceGuard checks at every logging step
            )
        )
    assert exit.value.code == 1
    stderr = capsys.readouterr().err
    assert "Traceback" not in stderr
    message = stderr.strip().splitlines()[-1]
    assert message.startswith("error: the ") and "stopped being finite" in message
    assert "Lower model.optimizer.init_args.lr" in message
    (picture,) = (tmp_path / "maxclass").glob("version_0/images/259_pomeranian.png")
    pixels = np.asarray(Image.open(picture))
    assert pixels.std() > 10  # a real picture, not the flat fill NaNs would give


def _start_fit(save_dir, work_log, *extra):
    args = tiny_args(
        save_dir,
        f"--trainer.max_steps={STEPS}",
        "--model.views=2",
        "--model.transforms=maxclass_lightning.transforms.RandomViews",
        "--trainer.precision=64-true",
        "--trainer.callbacks+=tests.work_log.RecordWork",
        f"--trainer.callbacks.folder={work_log}",
        *extra,
    )
    return subprocess.Popen(
        [sys.executable, "-m", "maxclass_lightning", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def interrupt_after_a_few_steps(process, work_log, send) -> None:
    """Calls ``send()`` once rank 0 has logged its third step."""
    deadline = time.monotonic() + 120
    while not (work_log / "rank0.jsonl").exists() or len((work_log / "rank0.jsonl").read_text().splitlines()) < 3:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    send()


def test_ctrl_c_exports_checkpoints_and_resume_matches_an_uninterrupted_run(tmp_path):
    process = _start_fit(tmp_path / "runs", tmp_path / "work")
    interrupt_after_a_few_steps(process, tmp_path / "work", lambda: process.send_signal(signal.SIGINT))
    _, stderr = process.communicate(timeout=120)
    assert process.returncode != 0
    interrupted = tmp_path / "runs" / "maxclass" / "version_0"
    last = interrupted / "checkpoints" / "last.ckpt"
    assert last.is_file() and "Resume with" in stderr
    stopped_at = torch.load(last, weights_only=True)["global_step"]
    assert 3 <= stopped_at < STEPS
    assert (interrupted / "images" / "259_pomeranian.png").is_file()

    recipe = [
        f"--trainer.max_steps={STEPS}",
        "--model.views=2",
        "--model.transforms=maxclass_lightning.transforms.RandomViews",
        "--trainer.precision=64-true",
    ]
    fit_in_process(tiny_args(tmp_path / "runs", *recipe, f"--ckpt_path={last}"))
    fit_in_process(tiny_args(tmp_path / "straight", *recipe))
    resumed_image = final_image(tmp_path / "runs" / "maxclass" / "version_1")
    torch.testing.assert_close(
        resumed_image, final_image(tmp_path / "straight" / "maxclass" / "version_0"), rtol=0, atol=1e-12
    )


def test_sigterm_stops_between_steps_with_a_checkpoint(tmp_path):
    process = _start_fit(tmp_path / "runs", tmp_path / "work")
    interrupt_after_a_few_steps(process, tmp_path / "work", lambda: process.send_signal(signal.SIGTERM))
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 143, stderr
    run = tmp_path / "runs" / "maxclass" / "version_0"
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert (run / "images" / "grid.png").is_file()


def test_same_config_and_seed_give_bitwise_identical_pngs(tmp_path):
    """A process of its own, and this process after every earlier test of its worker (as a
    notebook's second run would be): nothing a run leaves behind changes the next one."""
    args = [
        "--model.classes=[259,1]",
        "--model.views=2",
        "--model.transforms=maxclass_lightning.transforms.RandomViews",
    ]
    process = subprocess.Popen(
        [sys.executable, "-m", "maxclass_lightning", *tiny_args(tmp_path / "first", *args)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    fit_in_process(tiny_args(tmp_path / "second", *args))  # while the other process starts up
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    for png in ["259_pomeranian.png", "1_goldfish.png", "grid.png"]:
        first = (tmp_path / "first" / "maxclass" / "version_0" / "images" / png).read_bytes()
        second = (tmp_path / "second" / "maxclass" / "version_0" / "images" / png).read_bytes()
        assert first == second, png
