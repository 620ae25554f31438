"""End to end through ``python -m maxclass_lightning``, as a user runs it."""

from __future__ import annotations

import runpy
import sys

import pytest
import torch
from PIL import Image

from maxclass_lightning import ClassVisualizer
from maxclass_lightning.images import PixelImage
from tests.conftest import run_dir, run_module, tiny_args


def test_fit_writes_pngs_checkpoint_config_raises_the_class_score_and_prints_no_warnings(tmp_path):
    result = run_module(tiny_args(tmp_path, "--model.classes=[259,goldfish]", "--trainer.max_steps=5"))
    assert result.returncode == 0, result.stderr
    run = run_dir(tmp_path)

    # No warning noise in a run's output (the run's folder, named after this test, says "warnings").
    output = (result.stdout + result.stderr).replace(str(tmp_path), "<run>")
    assert "Warning" not in output and "warn" not in output.lower(), output
    assert "Tip" not in output

    # One PNG per class through the seed's display pipeline (2x upsample of 32 px), plus the grid.
    for name in ["259_pomeranian.png", "1_goldfish.png"]:
        with Image.open(run / "images" / name) as picture:
            assert picture.size == (64, 64) and picture.mode == "RGB"
            assert len(set(picture.getdata())) > 100  # a picture, not a flat fill
    with Image.open(run / "images" / "grid.png") as grid:
        assert grid.size[0] > 2 * 64
    assert (run / "config.yaml").is_file()
    (checkpoint,) = (run / "checkpoints").glob("*.ckpt")

    # The score of each class went up from its initial image to the optimized one.
    model = ClassVisualizer.load_from_checkpoint(checkpoint)
    initial = PixelImage(model.classes, 32, seed=0).pixels
    with torch.no_grad():
        before = model.scores(initial).gather(1, model.class_indices[:, None])
        after = model.scores(model.render()).gather(1, model.class_indices[:, None])
    assert (after > before).all(), (before, after)


def test_bad_class_name_is_one_line_exit_2_no_traceback(tmp_path, monkeypatch, capsys):
    """``python -m maxclass_lightning`` run by ``runpy`` in this process, as the interpreter runs it
    (its ``__main__``, the command line read from ``sys.argv``): the interpreter's exit code is the
    ``SystemExit`` code, and any other exception would fail the test. No second interpreter: its
    imports cost about 10 s of CPU (the success path's process is the test above)."""
    monkeypatch.setattr(sys, "argv", ["maxclass_lightning", *tiny_args(tmp_path, "--model.classes=[pomeranain]")])
    with pytest.raises(SystemExit) as exit:
        runpy.run_module("maxclass_lightning", run_name="__main__", alter_sys=True)
    assert exit.value.code == 2
    stderr = capsys.readouterr().err
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert lines[-1].startswith("error: model.classes: unknown class name 'pomeranain'") and "Pomeranian" in lines[-1]
    assert not (tmp_path / "maxclass").exists()
