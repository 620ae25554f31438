"""Bad input ends in one line naming the problem and the fix, exit code 2, no traceback, no files."""

from __future__ import annotations

import pytest
import torch
from torchvision import models

from maxclass_lightning.cli import DEBUG_VARIABLE, main
from maxclass_lightning.errors import ConfigError
from tests.conftest import VGG16, tiny_args


def fails_cleanly(capsys, save_dir, *args: str, config: str | None = None) -> str:
    """Runs ``fit`` in-process expecting a usage error; returns its one-line message."""
    argv = tiny_args(save_dir, *args)
    if config:
        argv[1:1] = ["--config", config]
    with pytest.raises(SystemExit) as exit:
        main(argv)
    assert exit.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert not any("Traceback" in line for line in errors)
    assert errors[-1].startswith("error: ")
    assert len([line for line in errors if line.startswith("error")]) == 1
    assert not save_dir.exists() or not any(save_dir.rglob("*")), "a failed start wrote files"
    return errors[-1]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--model.classes=[1000]"], "class index 1000 is out of range; this classifier has classes 0 to 999"),
        (["--model.classes=[pomeranain]"], "unknown class name 'pomeranain'; did you mean 'Pomeranian'"),
        (["--model.classes=[]"], "model.classes is empty; give at least one class"),
        (["--model.image_size=16", *VGG16], "too small for it: use e.g. model.image_size: 224"),
        (["--trainer.max_steps=0"], "trainer.max_steps is 0; give the number of optimizer steps"),
        (["--trainer.max_steps=-1"], "trainer.max_steps is -1"),
        (["--model.optimizer.lr=-1"], "model.optimizer cannot be built (Invalid learning rate: -1.0)"),
        (["--model.optimizer=torch.optim.Adamm"], "module 'torch.optim' has no attribute 'Adamm'"),
        (
            ["--model.lr_scheduler=torch.optim.lr_scheduler.CosineAnnealingLR"],
            "model.lr_scheduler torch.optim.lr_scheduler.CosineAnnealingLR needs T_max; give it, e.g. "
            "--model.lr_scheduler.init_args.T_max=...",
        ),
        (
            ["--model.lr_scheduler=torch.optim.lr_scheduler.OneCycleLR", "--model.lr_scheduler.max_lr=1"],
            "model.lr_scheduler cannot be built (You must define either total_steps OR (epochs AND "
            "steps_per_epoch)); fix its init_args",
        ),
        (["--model.classifier=vgg61"], "unknown classifier 'vgg61' (did you mean"),
        (["--model.weights=IMAGENET", *VGG16], "unknown weights 'IMAGENET' for vgg16; use one of DEFAULT"),
        (
            ["--model.clases=[1]"],
            "unrecognized arguments: --model.clases=[1] (options: python -m maxclass_lightning fit",
        ),
        (["--model.image_size=abc"], "model.image_size is abc; give a whole number"),
        (["--model.optimizer.lr=nan"], "model.optimizer.lr is nan; give a finite number"),
        (
            ["--trainer.accelerator=gpu"],
            "trainer.accelerator is gpu but this machine has no GPU; use --trainer.accelerator cpu",
        ),
        (["--seed_everything=-1"], "seed_everything is -1; give a seed from 0 to"),
        # Found by tests/test_fuzz.py: each was a traceback.
        (["--ckpt_path="], "ckpt_path is empty; give a checkpoint file to resume from, or leave it out"),
        (["--trainer.max_steps=100000000000000000000"], "trainer.max_steps is 100000000000000000000; give"),
        (["--trainer.val_check_interval=2"], "trainer.val_check_interval is 2; give null or a fraction"),
        (
            ["--model.views=100000000000000000000"],
            "model.views is 100000000000000000000; give a positive number of views per image up to",
        ),
        (
            ["--model.batch_size=100000000000000000000"],
            "model.batch_size is 100000000000000000000; give a positive number of views per",
        ),
        (["--data={}"], "data is lightning.LightningDataModule; give null (the module makes its own work items"),
        (["--model.lr_scheduler={}"], "model.lr_scheduler names no class; give a learning-rate scheduler class"),
        (
            ["--trainer.callbacks+=maxclass_lightning.progress.ProgressBar", "--trainer.callbacks.redraw_seconds=-1"],
            "ProgressBar.redraw_seconds is -1",
        ),
        (
            [
                "--model.image=maxclass_lightning.images.PhaseImage",
                "--model.image.decorrelate=false",
                "--model.image.saturation=2",
            ],
            "PhaseImage.saturation is 2.0, which scales the decorrelated colour basis; "
            "set decorrelate true or saturation 1",
        ),
    ],
)
def test_usage_error(capsys, tmp_path, args, expected):
    assert expected in fails_cleanly(capsys, tmp_path / "runs", *args)


#: Class options, and a path under a real module that names nothing there.
CLASS_OPTIONS = {
    "trainer.callbacks+": "maxclass_lightning.callbacks.NoSuchCallback",
    "model.optimizer": "torch.optim.NoSuchOptimizer",
    "model.lr_scheduler": "torch.optim.lr_scheduler.NoSuchSchedule",
    "model.image": "maxclass_lightning.images.NoSuchImage",
    "model.transforms": "maxclass_lightning.transforms.NoSuchViews",
    "trainer.logger": "lightning.pytorch.loggers.NoSuchLogger",
}

#: What each class option says it takes.
KINDS = {
    "trainer.callbacks+": "give a Callback class such as",
    "model.optimizer": "give an optimizer class such as torch.optim.AdamW",
    "model.lr_scheduler": "give a learning-rate scheduler class such as",
    "model.image": "give an image class such as maxclass_lightning.images.FourierImage",
    "model.transforms": "give a views class such as maxclass_lightning.transforms.RandomViews",
    "trainer.logger": "give a logger class such as lightning.pytorch.loggers.TensorBoardLogger",
}

#: What a message must never show: the parser's own objects instead of the user's mistake.
PARSER_INTERNALS = ("Namespace(", "NestedArg(", "<class", "class path", "typing.", "Given value")


@pytest.mark.parametrize("option", sorted(CLASS_OPTIONS))
def test_a_class_path_that_does_not_import_says_so_with_the_path(option, capsys, tmp_path):
    path = CLASS_OPTIONS[option]
    message = fails_cleanly(capsys, tmp_path / "runs", f"--{option}={path}")
    assert f"{option.rstrip('+')} is {path}, which cannot be imported" in message, message
    assert KINDS[option] in message, message
    assert not any(internal in message for internal in PARSER_INTERNALS), message


@pytest.mark.parametrize("option", sorted(CLASS_OPTIONS))
def test_a_class_of_the_wrong_kind_says_what_kind_is_expected(option, capsys, tmp_path):
    # nn.Linear is a module, so a (useless) transform: views get an optimizer instead.
    wrong = "torch.optim.AdamW" if option in ("model.image", "model.transforms") else "torch.nn.Linear"
    message = fails_cleanly(capsys, tmp_path / "runs", f"--{option}={wrong}")
    assert f"{option.rstrip('+')} is {wrong}, which is not the right kind of class; {KINDS[option]}" in message
    assert not any(internal in message for internal in PARSER_INTERNALS), message


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN"])
@pytest.mark.parametrize(
    "option",
    ["model.optimizer.init_args.lr", "model.optimizer.lr", "model.average_decay", "model.diversity_weight"],
)
def test_a_non_finite_number_is_asked_to_be_finite(option, value, capsys, tmp_path):
    message = fails_cleanly(capsys, tmp_path / "runs", f"--{option}={value}")
    assert f"{option.replace('init_args.', '')} is {value}; give a finite number" in message, message
    assert not any(internal in message for internal in PARSER_INTERNALS), message


def test_weights_file_missing_unreadable_or_for_another_network(capsys, tmp_path):
    missing = fails_cleanly(capsys, tmp_path / "runs", *VGG16, f"--model.weights={tmp_path / 'none.pth'}")
    assert "does not exist; pass an existing .pth state dict" in missing
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"\x00not a checkpoint")
    unreadable = fails_cleanly(capsys, tmp_path / "runs", *VGG16, f"--model.weights={junk}")
    assert "cannot be read as a state dict" in unreadable
    other = tmp_path / "resnet18.pth"
    torch.save(models.resnet18().state_dict(), other)
    message = fails_cleanly(capsys, tmp_path / "runs", *VGG16, f"--model.weights={other}")
    assert "does not fit classifier 'vgg16'" in message


def test_output_folder_that_cannot_be_written(capsys, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    message = fails_cleanly(capsys, blocker / "runs")
    assert "trainer.logger.init_args.save_dir is" in message and "which cannot be written" in message


def test_malformed_yaml(capsys, tmp_path):
    config = tmp_path / "broken.yaml"
    config.write_text("model:\n  classes: [1\n  image_size: 32\n")
    message = fails_cleanly(capsys, tmp_path / "runs", config=str(config))
    assert message.startswith(f"error: {config}:3:13: invalid YAML (expected ',' or ']'")


def test_unknown_key_in_yaml(capsys, tmp_path):
    config = tmp_path / "typo.yaml"
    config.write_text("model:\n  image_sise: 32\n")
    message = fails_cleanly(capsys, tmp_path / "runs", config=str(config))
    assert message.startswith(f"error: {config}:2: ") and "image_sise" in message


def test_bad_value_in_a_config_file_names_the_file_and_line(capsys, tmp_path):
    config = tmp_path / "recipe.yaml"
    config.write_text("model:\n  optimizer:\n    class_path: torch.optim.Adam\n    init_args:\n      lr: abc\n")
    message = fails_cleanly(capsys, tmp_path / "runs", config=str(config))
    assert message.startswith(f"error: {config}:5: model.optimizer.lr is abc; give a finite number")


def test_debug_variable_shows_the_traceback(monkeypatch, tmp_path):
    """With the variable set the error is raised, not printed as one line, so Python shows its traceback
    (the one-line error of a real process: ``tests/test_cli.py``)."""
    monkeypatch.setenv(DEBUG_VARIABLE, "1")
    with pytest.raises(ConfigError, match="class index 1000 is out of range"):
        main(tiny_args(tmp_path / "runs", "--model.classes=[1000]"))


@pytest.mark.parametrize("argv", [["validate"], ["fitt", "--model.classes=[1]"], []], ids=["validate", "typo", "none"])
def test_unknown_or_missing_subcommand_is_one_line_naming_every_subcommand(capsys, argv):
    with pytest.raises(SystemExit) as exit:
        main(argv)
    assert exit.value.code == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert "give fit or evaluate or gallery, e.g. python -m maxclass_lightning fit --help" in lines[0]
    if argv:
        assert f"{argv[0]} is not a subcommand" in lines[0]


def test_top_level_help_names_every_subcommand(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps the description
    assert out.startswith("usage: python -m maxclass_lightning")
    assert "fit: optimize pictures" in out and "evaluate: score pictures" in out
    assert "gallery: build a run's web gallery" in out
