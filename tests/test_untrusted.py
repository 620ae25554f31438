"""A checkpoint or weights file from elsewhere runs no code: every place that reads one refuses a
crafted pickle in one line, and whatever the app writes it reads back with ``weights_only``."""

from __future__ import annotations

import os
import shlex

import numpy as np
import pytest
import torch
from lightning.pytorch import Trainer
from PIL import Image

from maxclass_lightning.checkpoints import saved_step
from maxclass_lightning.cli import main
from maxclass_lightning.errors import ConfigError
from maxclass_lightning.module import ClassVisualizer
from tests.conftest import run_dir, tiny_args
from tests.test_errors import fails_cleanly


class Payload:
    """Unpickled, it runs a shell command that creates ``marker``."""

    def __init__(self, marker) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {shlex.quote(str(self.marker))}",)


@pytest.fixture
def crafted(tmp_path):
    """A file that looks like this app's checkpoint (hyperparameters, images) and like a state
    dict, with a payload inside; and the file the payload would create."""
    marker = tmp_path / "code-ran"
    path = tmp_path / "crafted.ckpt"
    torch.save(
        {
            "global_step": 3,
            "hyper_parameters": {"classes": [259], "payload": Payload(marker)},
            "state_dict": {"image.pixels": torch.zeros(1, 3, 32, 32)},
        },
        path,
    )
    return path, marker


def test_the_payload_is_real(crafted):
    """What every other test here refuses would run if unpickled without ``weights_only``."""
    path, marker = crafted
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_fit_ckpt_path_refuses_it_in_one_line(crafted, capsys, tmp_path):
    path, marker = crafted
    # LightningCLI offers fit's own weights_only option: false does not make the app unpickle code.
    message = fails_cleanly(capsys, tmp_path / "runs", f"--ckpt_path={path}", "--weights_only=false")
    assert f"ckpt_path {str(path)!r} asks to run Python code (posix.system)" in message
    assert not marker.exists()


def test_lightning_reads_a_resume_without_running_code_even_when_told_it_may(crafted, tmp_path):
    """``trainer.fit(ckpt_path=...)`` from Python, past the command line's own check, and with no
    periodic checkpoint: the app's checkpoint plugin loads with ``weights_only`` whatever it is asked."""
    path, marker = crafted
    model = ClassVisualizer(classifier="tests.networks:tiny_imagenet_classifier", weights=None, image_size=32)
    trainer = Trainer(
        max_steps=2,
        default_root_dir=tmp_path,
        enable_checkpointing=False,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    with pytest.raises(ConfigError, match="asks to run Python code"):
        trainer.fit(model, ckpt_path=path, weights_only=False)
    assert not marker.exists()


def test_model_weights_refuses_it_in_one_line(crafted, capsys, tmp_path):
    path, marker = crafted
    message = fails_cleanly(capsys, tmp_path / "runs", f"--model.weights={path}")
    assert "cannot be read" in message
    assert not marker.exists()


def test_evaluate_weights_refuses_it_in_one_line(crafted, capsys, tmp_path):
    path, marker = crafted
    picture = tmp_path / "259_pomeranian.png"
    Image.fromarray(np.zeros((32, 32, 3), dtype=np.uint8)).save(picture)
    arguments = ["evaluate", str(picture), "--classifier=tests.networks:tiny_imagenet_classifier", f"--weights={path}"]
    with pytest.raises(SystemExit) as exit:
        main([*arguments, "--image_size=32"])
    assert exit.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: ") and "cannot be read" in errors[0], errors
    assert not marker.exists()


def test_load_from_checkpoint_refuses_it(crafted):
    path, marker = crafted
    with pytest.raises(Exception, match="Weights only load failed"):
        ClassVisualizer.load_from_checkpoint(path)
    assert not marker.exists()


def test_the_disk_full_message_reads_the_step_without_running_code(crafted):
    path, marker = crafted
    assert saved_step(path) == "?"
    assert not marker.exists()


def test_what_the_app_writes_reads_back_with_weights_only(tmp_path):
    """The richest state a run writes: a schedule, the averaging buffers, float64, several samples,
    a Fourier image; the file loads with ``weights_only`` and back into a ``ClassVisualizer``."""
    main(
        tiny_args(
            tmp_path,
            "--model.classes=[259,1]",
            "--model.samples_per_class=2",
            "--model.image=maxclass_lightning.images.FourierImage",
            "--model.transforms=maxclass_lightning.transforms.RandomViews",
            "--model.lr_scheduler=torch.optim.lr_scheduler.OneCycleLR",
            "--model.lr_scheduler.max_lr=1.0",
            "--model.lr_scheduler.total_steps=4",
            "--model.average_steps=2",
            "--trainer.precision=64-true",
        )
    )
    path = run_dir(tmp_path) / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(path, weights_only=True)
    assert checkpoint["global_step"] == 4 and checkpoint["lr_schedulers"] and checkpoint["optimizer_states"]
    assert any(key.startswith("image_average.") for key in checkpoint["state_dict"])
    model = ClassVisualizer.load_from_checkpoint(path, weights_only=True)
    assert model.samples_per_class == 2
