"""Every option of ``fit --help``, and of the classes the configs name, refuses a wrong-typed and an
out-of-range value with one line, exit code 2, no traceback and no run folder.

The options are read from the real help output, so an option added without an entry in ``BAD``
(and so, without a check that makes its entry fail cleanly) fails ``test_every_option_is_walked``.
"""

from __future__ import annotations

import re

import pytest

from maxclass_lightning.cli import main
from tests.conftest import tiny_args
from tests.test_errors import fails_cleanly

#: A fast network for the runs that get as far as building the model.
FAST = ["--model.classifier=tests.networks:tiny_imagenet_classifier"]

#: The classes the shipped configs and the app's defaults name, per class option.
CLASSES = {
    "model.image": [
        "maxclass_lightning.images.PixelImage",
        "maxclass_lightning.images.FourierImage",
        "maxclass_lightning.images.PhaseImage",
    ],
    "model.transforms": [
        "maxclass_lightning.transforms.RandomViews",
        "maxclass_lightning.transforms.CropViews",
        "maxclass_lightning.transforms.Resize",
    ],
    "model.optimizer": ["torch.optim.AdamW", "torch.optim.Adam"],
    "trainer.logger": ["lightning.pytorch.loggers.TensorBoardLogger"],
    "trainer.callbacks": [
        "maxclass_lightning.callbacks.ImageLogger",
        "maxclass_lightning.callbacks.ImageExport",
        "maxclass_lightning.callbacks.DivergenceGuard",
        "maxclass_lightning.checkpoints.InterruptCheckpoint",
        "maxclass_lightning.checkpoints.PeriodicCheckpoint",
    ],
}

#: Options that take a class and what they refuse as a whole.
NOT_A_CLASS = "no.such.Class"

#: Option -> (a wrong-typed value, an out-of-range value). ``None`` as the out-of-range value: every
#: value of the option's type is valid (booleans, choices the parser lists, free labels), so the
#: type check is the whole check. Nested options are written ``<option>:<Class>.<argument>``.
BAD: dict[str, tuple[str | None, str | None]] = {
    "seed_everything": ("abc", "-1"),
    "trainer": ("5", "/no/such/trainer.yaml"),
    "trainer.accelerator": ("[1, 2]", "gpu"),
    "trainer.strategy": ("[1, 2]", "ddp_bogus"),
    "trainer.devices": ("{a: 1}", "0"),
    "trainer.num_nodes": ("abc", "0"),
    "trainer.precision": ("[1]", None),
    "trainer.logger": ("5", NOT_A_CLASS),
    "trainer.callbacks": ("3", NOT_A_CLASS),
    "trainer.fast_dev_run": ("abc", "-1"),
    "trainer.max_epochs": ("abc", "0"),
    "trainer.min_epochs": ("abc", "5"),
    "trainer.max_steps": ("abc", "0"),
    "trainer.min_steps": ("abc", "1000"),
    "trainer.max_time": ("[1]", "00:00:00:-5"),
    "trainer.limit_train_batches": ("abc", "0.5"),
    "trainer.limit_val_batches": ("abc", "-1"),
    "trainer.limit_test_batches": ("abc", "-1"),
    "trainer.limit_predict_batches": ("abc", "-1"),
    "trainer.overfit_batches": ("abc", "2"),
    "trainer.val_check_interval": ("[1]", "-1"),
    "trainer.check_val_every_n_epoch": ("abc", "0"),
    "trainer.num_sanity_val_steps": ("abc", "-2"),
    "trainer.log_every_n_steps": ("abc", "-1"),
    "trainer.enable_checkpointing": ("maybe", None),
    "trainer.enable_progress_bar": ("maybe", None),
    "trainer.enable_model_summary": ("maybe", None),
    "trainer.accumulate_grad_batches": ("abc", "0"),
    "trainer.gradient_clip_val": ("abc", "0.5"),
    "trainer.gradient_clip_algorithm": ("[1]", "sideways"),
    "trainer.deterministic": ("maybe", None),
    "trainer.benchmark": ("maybe", None),
    "trainer.inference_mode": ("maybe", None),
    "trainer.use_distributed_sampler": ("maybe", None),
    "trainer.profiler": ("[1]", "bogus"),
    "trainer.detect_anomaly": ("maybe", None),
    "trainer.barebones": ("maybe", "true"),
    "trainer.plugins": ("5", NOT_A_CLASS),
    "trainer.sync_batchnorm": ("maybe", None),
    "trainer.reload_dataloaders_every_n_epochs": ("abc", "-1"),
    "trainer.default_root_dir": (None, "/dev/null/runs"),  # any text is a path
    "trainer.enable_autolog_hparams": ("maybe", None),
    "trainer.model_registry": ("[1]", "registry"),
    "model": ("5", "/no/such/model.yaml"),
    "model.classes": ("{a: 1}", "[1000]"),
    "model.image_size": ("abc", "0"),
    "model.objectives": ("{a: 1}", "[no_such_layer:0]"),
    "model.init_image": ("{a: 1}", "/no/such/picture.png"),
    "model.classifier": ("[1]", "vgg61"),
    "model.weights": ("[1]", "NOT_A_WEIGHTS_NAME"),
    "model.normalize": ("maybe", None),
    "model.skip_gradient": ("abc", "0"),
    "model.image": ("5", NOT_A_CLASS),
    "model.optimizer": ("5", NOT_A_CLASS),
    "model.lr_scheduler": ("5", NOT_A_CLASS),
    "model.views": ("abc", "0"),
    "model.exact_view_steps": ("abc", "1.5"),
    "model.average_steps": ("abc", "1.5"),
    "model.average_decay": ("abc", "1.0"),
    "model.transforms": ("5", NOT_A_CLASS),
    "model.regularizer_weights": ("[1]", "{sharpness: 1.0}"),
    "model.batch_size": ("abc", "0"),
    "model.samples_per_class": ("abc", "0"),
    "model.diversity_weight": ("abc", "-1"),
    "model.diversity_layer": (None, "no.such.layer"),  # any text is a name; the classifier's are checked
    "model.channels_last": ("maybe", None),
    "model.compile": ("maybe", None),
    "model.display": ("5", "{upsample: 0}"),
    "model.display.upsample": ("abc", "0"),
    "model.display.sharpness": ("abc", "-1"),
    "model.display.rescale": ("[1]", "stretch"),
    # Set from seed_everything, which is checked.
    "model.seed": ("abc", None),
    "data": ("5", NOT_A_CLASS),
    "ckpt_path": ("[1]", "/no/such/last.ckpt"),
    "weights_only": ("maybe", None),
    # Nested options of the classes the configs name.
    "model.image:FourierImage.decay": ("abc", "-1"),
    "model.image:FourierImage.init_std": ("abc", "-1"),
    "model.image:FourierImage.gain": ("abc", "0"),
    "model.image:FourierImage.decorrelate": ("maybe", None),
    "model.image:FourierImage.saturation": ("abc", "-1"),
    "model.image:PhaseImage.decay": ("abc", "-1"),
    "model.image:PhaseImage.contrast": ("abc", "0"),
    "model.image:PhaseImage.decorrelate": ("maybe", None),
    "model.image:PhaseImage.margin": ("abc", "1.5"),
    "model.image:PhaseImage.saturation": ("abc", "-1"),
    "model.transforms:RandomViews.pad": ("abc", "-0.1"),
    "model.transforms:RandomViews.jitter": ("abc", "-0.1"),
    "model.transforms:RandomViews.scale": ("abc", "[1.2, 0.8]"),
    "model.transforms:RandomViews.rotate": ("abc", "500"),
    "model.transforms:RandomViews.fill": ("abc", "inf"),
    "model.transforms:RandomViews.color_shift": ("abc", "-1"),
    "model.transforms:RandomViews.noise": ("abc", "2"),
    "model.transforms:RandomViews.output_size": ("abc", "0"),
    "model.transforms:CropViews.box": ("abc", "[0.5, 0.25]"),
    "model.transforms:CropViews.noise": ("abc", "-0.1"),
    "model.transforms:CropViews.color_shift": ("abc", "-1"),
    "model.transforms:CropViews.output_size": ("abc", "0"),
    "model.transforms:Resize.output_size": ("abc", "0"),
    "model.optimizer:AdamW.lr": ("abc", "-1"),
    "model.optimizer:AdamW.betas": ("abc", "[0.9, 1.5]"),
    "model.optimizer:AdamW.eps": ("abc", "-1"),
    "model.optimizer:AdamW.weight_decay": ("abc", "-1"),
    "model.optimizer:AdamW.amsgrad": ("maybe", None),
    "model.optimizer:AdamW.foreach": ("maybe", None),
    "model.optimizer:AdamW.maximize": ("maybe", None),
    "model.optimizer:AdamW.capturable": ("maybe", None),
    "model.optimizer:AdamW.differentiable": ("maybe", None),
    "model.optimizer:AdamW.fused": ("maybe", None),
    "model.optimizer:Adam.lr": ("abc", "-1"),
    "model.optimizer:Adam.betas": ("abc", "[0.9, 1.5]"),
    "model.optimizer:Adam.eps": ("abc", "-1"),
    "model.optimizer:Adam.weight_decay": ("abc", "-1"),
    "model.optimizer:Adam.amsgrad": ("maybe", None),
    "model.optimizer:Adam.foreach": ("maybe", None),
    "model.optimizer:Adam.maximize": ("maybe", None),
    "model.optimizer:Adam.capturable": ("maybe", None),
    "model.optimizer:Adam.differentiable": ("maybe", None),
    "model.optimizer:Adam.fused": ("maybe", None),
    "model.optimizer:Adam.decoupled_weight_decay": ("maybe", None),
    "trainer.logger:TensorBoardLogger.save_dir": ("{a: 1}", "/dev/null/runs"),
    "trainer.logger:TensorBoardLogger.name": ("[1]", None),  # any name, "a/b" too: nested folders
    "trainer.logger:TensorBoardLogger.version": ("[1]", None),  # any number or name is a folder
    "trainer.logger:TensorBoardLogger.log_graph": ("maybe", None),
    "trainer.logger:TensorBoardLogger.default_hp_metric": ("maybe", None),
    "trainer.logger:TensorBoardLogger.prefix": ("[1]", None),
    "trainer.logger:TensorBoardLogger.sub_dir": ("[1]", None),
    "trainer.logger:TensorBoardLogger.comment": ("[1]", None),
    "trainer.logger:TensorBoardLogger.purge_step": ("abc", "-1"),
    "trainer.logger:TensorBoardLogger.max_queue": ("abc", "0"),
    "trainer.logger:TensorBoardLogger.flush_secs": ("abc", "0"),
    "trainer.logger:TensorBoardLogger.filename_suffix": ("[1]", None),
    "trainer.callbacks:ImageLogger.every_n_steps": ("abc", "0"),
    "trainer.callbacks:ImageLogger.upsample": ("maybe", None),
    "trainer.callbacks:PeriodicCheckpoint.every_n_minutes": ("abc", "-1"),
    "trainer.callbacks:PeriodicCheckpoint.every_n_steps": ("abc", "0"),
    "trainer.callbacks:PeriodicCheckpoint.background": ("maybe", None),
}

_OPTION = re.compile(r"^\s+--([\w.]+)[ ,\n]", re.MULTILINE)
#: Help lines that are not options a value can be given to.
NOT_OPTIONS = {"print_config", "help", "config"}


def _help(capsys, *args: str) -> str:
    with pytest.raises(SystemExit):
        main(["fit", *args])
    return capsys.readouterr().out


def walked_options(capsys) -> set[str]:
    """Every option ``fit --help`` lists, and every option of the classes in ``CLASSES``."""
    options = {name for name in _OPTION.findall(_help(capsys, "--help")) if not name.endswith(".help")}
    options -= NOT_OPTIONS
    options |= {f"model.display.{name}" for name in ("upsample", "sharpness", "rescale")}
    for option, class_paths in CLASSES.items():
        for class_path in class_paths:
            nested = _OPTION.findall(_help(capsys, f"--{option}.help", class_path))
            short = class_path.rsplit(".", 1)[1]
            for name in nested:
                argument = name.removeprefix(f"{option}.").removeprefix("init_args.")
                if name.startswith(f"{option}.") and not name.endswith(".help") and argument not in APP_SUPPLIED:
                    options.add(f"{option}:{short}.{argument}")
    return options


#: Constructor arguments the app gives the class itself; the parser refuses them from the user.
APP_SUPPLIED = {"classes", "size", "seed", "params"}


def test_every_option_is_walked(capsys):
    walked = walked_options(capsys)
    missing = sorted(walked - set(BAD))
    assert not missing, f"options without a bad-value entry (add a range check, then an entry to BAD): {missing}"
    stale = sorted(set(BAD) - walked)
    assert not stale, f"BAD lists options fit --help no longer has: {stale}"


def _arguments(option: str, value: str) -> list[str]:
    if ":" not in option:
        return [f"--{option}={value}"]
    parent, rest = option.split(":")
    short, argument = rest.split(".")
    class_path = next(path for path in CLASSES[parent] if path.endswith(f".{short}"))
    join = "+=" if parent == "trainer.callbacks" else "="
    return [f"--{parent}{join}{class_path}", f"--{parent}.init_args.{argument}={value}"]


CASES = [
    pytest.param(option, value, id=f"{option}={value}")
    for option, (wrong_type, out_of_range) in sorted(BAD.items())
    for value in (wrong_type, out_of_range)
    if value is not None
]


@pytest.mark.parametrize(("option", "value"), CASES)
def test_bad_value_is_one_line_exit_2_nothing_written(option, value, capsys, tmp_path):
    message = fails_cleanly(capsys, tmp_path / "runs", *FAST, *_arguments(option, value))
    # The option, or (for an option of a named class, checked by its constructor) the argument.
    named = option.split(":")[0]
    assert named in message or named.rsplit(".", 1)[-1] in message or f".{option.rsplit('.', 1)[-1]} " in message, (
        message
    )


def test_tiny_fast_run_is_valid(tmp_path):
    """The walk's base arguments alone run: each failure above is the bad value's."""
    cli = main(tiny_args(tmp_path, *FAST, "--trainer.max_steps=1"))
    assert cli.trainer.global_step == 1


#: ``evaluate``'s options -> (a wrong-typed value, an out-of-range value), as ``BAD``.
EVALUATE_BAD: dict[str, tuple[str | None, str | None]] = {
    "classifier": ("[1]", "vgg61"),
    "weights": ("[1]", "/no/such/weights.pth"),
    "classes": ("{a: 1}", "[1000]"),
    "image_size": ("abc", "0"),
    "normalize": ("maybe", None),
    "device": ("[1]", "cuda:7"),
    "json": (None, "/dev/null/scores.json"),  # any text is a path
}


def test_every_evaluate_option_is_walked(capsys):
    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    options = set(_OPTION.findall(capsys.readouterr().out)) - NOT_OPTIONS
    assert options == set(EVALUATE_BAD)


@pytest.mark.parametrize(
    ("option", "value"),
    [pytest.param(o, v, id=f"{o}={v}") for o, values in sorted(EVALUATE_BAD.items()) for v in values if v is not None],
)
def test_bad_evaluate_value_is_one_line_exit_2(option, value, capsys, tmp_path):
    from PIL import Image

    Image.new("RGB", (32, 32), "orange").save(tmp_path / "1_goldfish.png")
    arguments = ["evaluate", str(tmp_path), "--classifier=tests.networks:tiny_imagenet_classifier", "--weights=null"]
    with pytest.raises(SystemExit) as exit:
        main([*arguments, f"--{option}={value}"])
    assert exit.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: ") and option in errors[0], errors
    assert sorted(p.name for p in tmp_path.iterdir()) == ["1_goldfish.png"]


def test_unreadable_picture_is_one_line(capsys, tmp_path):
    (tmp_path / "1_goldfish.png").write_bytes(b"not a picture")
    with pytest.raises(SystemExit) as exit:
        main(["evaluate", str(tmp_path), "--classifier=tests.networks:tiny_imagenet_classifier", "--weights=null"])
    assert exit.value.code == 2
    assert (
        capsys.readouterr().err.strip()
        == f"error: {tmp_path / '1_goldfish.png'} cannot be read as a picture; give PNG or JPEG files"
    )
