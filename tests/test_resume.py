"""Resuming takes the image-defining settings from the checkpoint and refuses contradictions."""

from __future__ import annotations

import inspect

import pytest
import torch

from maxclass_lightning.cli import main
from maxclass_lightning.module import ClassVisualizer
from maxclass_lightning.resume import MAY_CHANGE
from tests.conftest import run_dir, tiny_args
from tests.test_errors import fails_cleanly

#: One xdist worker runs this file (`--dist loadgroup`), so that its module-scoped fixtures run once.
pytestmark = pytest.mark.xdist_group("resume")

#: The run the checkpoint comes from: two classes, two random views, a learning rate halved every
#: 2 steps (so a schedule restarted on resume gives other images), in float64 so that resuming can
#: be compared with an uninterrupted run exactly.
RECIPE = [
    "--model.classes=[259,1]",
    "--model.views=2",
    "--model.transforms=maxclass_lightning.transforms.RandomViews",
    "--model.lr_scheduler=torch.optim.lr_scheduler.StepLR",
    "--model.lr_scheduler.step_size=2",
    "--model.lr_scheduler.gamma=0.5",
    # The image averaged over the last 2 steps: the 3-step checkpoint holds the average as the
    # image, which a resumed run must trade back for the last step's image to go on.
    "--model.average_steps=2",
    "--model.average_decay=0.5",
    "--trainer.precision=64-true",
]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """``last.ckpt`` of a 3-step run."""
    save_dir = tmp_path_factory.mktemp("first")
    main(tiny_args(save_dir, *RECIPE, "--trainer.max_steps=3"))
    return run_dir(save_dir) / "checkpoints" / "last.ckpt"


#: For every setting a checkpoint fixes, a value that contradicts the checkpoint's, and the key the
#: message names (a row for an option this release no longer has is not run).
CONTRADICTIONS = {
    "classes": ("--model.classes=[259,2]", "model.classes is [259, 2]"),
    "objectives": ('--model.objectives=["logit:1"]', "model.objectives is ['logit:1']"),
    "init_image": ("--model.init_image=docs/gallery.png", "model.init_image is docs/gallery.png"),
    "image_size": ("--model.image_size=40", "model.image_size is 40"),
    "classifier": ("--model.classifier=vgg11", "model.classifier is vgg11"),
    "weights": ("--model.weights=DEFAULT", "model.weights is DEFAULT"),
    "normalize": ("--model.normalize=true", "model.normalize is True"),
    "skip_gradient": ("--model.skip_gradient=0.5", "model.skip_gradient is 0.5"),
    "image": (
        "--model.image=maxclass_lightning.images.FourierImage",
        "model.image is maxclass_lightning.images.Fourier",
    ),
    "optimizer": ("--model.optimizer.lr=1.0", "model.optimizer.init_args.lr is 1.0"),
    "lr_scheduler": ("--model.lr_scheduler.gamma=0.9", "model.lr_scheduler.init_args.gamma is 0.9"),
    "views": ("--model.views=3", "model.views is 3"),
    "exact_view_steps": ("--model.exact_view_steps=1", "model.exact_view_steps is 1"),
    "average_steps": ("--model.average_steps=3", "model.average_steps is 3"),
    "average_decay": ("--model.average_decay=0.8", "model.average_decay is 0.8"),
    "transforms": ("--model.transforms.rotate=45", "model.transforms.init_args.rotate is 45.0"),
    "regularizer_weights": (
        "--model.regularizer_weights={total_variation: 1.0}",
        "model.regularizer_weights is {'total_variation': 1.0}",
    ),
    "seed": ("--seed_everything=7", "seed_everything is 7"),
    "samples_per_class": ("--model.samples_per_class=2", "model.samples_per_class is 2"),
    "diversity_weight": ("--model.diversity_weight=0.5", "model.diversity_weight is 0.5"),
    "diversity_layer": ("--model.diversity_layer=3", "model.diversity_layer is 3"),
    "max_class_scalars": ("--model.max_class_scalars=3", "model.max_class_scalars is 3"),
}

#: The options of this release (``seed`` is given as ``seed_everything``).
OPTIONS = set(inspect.signature(ClassVisualizer.__init__).parameters) - {"self"}


def test_every_option_but_the_few_that_may_change_is_fixed_and_tested():
    """A new option is fixed by default: it needs a row here, or a place in ``MAY_CHANGE``."""
    assert set(MAY_CHANGE) <= OPTIONS
    assert OPTIONS - set(MAY_CHANGE) <= set(CONTRADICTIONS)


@pytest.mark.parametrize("setting", sorted(set(CONTRADICTIONS) & OPTIONS))
def test_resume_refuses_a_contradicting_setting(setting, checkpoint, capsys, tmp_path):
    argument, named = CONTRADICTIONS[setting]
    message = fails_cleanly(capsys, tmp_path / "runs", *RECIPE, f"--ckpt_path={checkpoint}", argument)
    assert named in message, message
    assert f"checkpoint {checkpoint} was made with" in message
    assert "to resume, or leave out --ckpt_path" in message


def test_resume_takes_unspecified_settings_from_the_checkpoint(checkpoint, tmp_path):
    # No recipe given: classes, views, transforms and seed come from the checkpoint, not the defaults.
    cli = main(tiny_args(tmp_path, "--trainer.precision=64-true", "--trainer.max_steps=4", f"--ckpt_path={checkpoint}"))
    assert cli.model.classes == [259, 1] and cli.model.views == 2
    assert type(cli.model.transforms).__name__ == "RandomViews"
    assert cli.trainer.global_step == 4


def test_resume_with_more_steps_reaches_the_uninterrupted_image(checkpoint, tmp_path):
    resumed = main(tiny_args(tmp_path / "resumed", *RECIPE, "--trainer.max_steps=6", f"--ckpt_path={checkpoint}"))
    straight = main(tiny_args(tmp_path / "straight", *RECIPE, "--trainer.max_steps=6"))
    assert resumed.trainer.global_step == 6
    assert resumed.trainer.optimizers[0].param_groups[0]["lr"] == 5.0 * 0.5**3  # the schedule went on
    torch.testing.assert_close(resumed.model.image.pixels, straight.model.image.pixels, rtol=0, atol=1e-12)


def test_settings_that_may_change_on_resume_are_honoured(checkpoint, tmp_path):
    cli = main(
        tiny_args(
            tmp_path,
            *RECIPE,
            "--trainer.max_steps=4",
            "--model.batch_size=1",
            "--model.display.upsample=1.0",
            f"--ckpt_path={checkpoint}",
        )
    )
    assert cli.model.batch_size == 1 and cli.model.display.upsample == 1.0


def test_missing_truncated_or_foreign_checkpoint_is_one_line(checkpoint, capsys, tmp_path):
    missing = fails_cleanly(capsys, tmp_path / "runs", f"--ckpt_path={tmp_path / 'none.ckpt'}")
    assert "ckpt_path" in missing and "does not exist" in missing
    folder = fails_cleanly(capsys, tmp_path / "runs", f"--ckpt_path={checkpoint.parent}")
    assert "ckpt_path" in folder and "is a folder, not a file" in folder
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(checkpoint.read_bytes()[:4000])
    assert "is it truncated?" in fails_cleanly(capsys, tmp_path / "runs", f"--ckpt_path={truncated}")
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    assert "not a checkpoint of this app" in fails_cleanly(capsys, tmp_path / "runs", f"--ckpt_path={foreign}")


def test_resume_inside_the_averaging_steps_reaches_the_uninterrupted_image(tmp_path):
    """A checkpoint written inside the averaging steps (step 4 of 6, averaging the last 4) holds
    the running average, and the resumed run ends where the uninterrupted one does."""
    recipe = [*RECIPE, "--trainer.max_steps=6", "--model.average_steps=4"]
    steps = tmp_path / "every-step"
    every_step = [
        "--trainer.callbacks+=lightning.pytorch.callbacks.ModelCheckpoint",
        f"--trainer.callbacks.dirpath={steps}",
        "--trainer.callbacks.every_n_train_steps=1",
        "--trainer.callbacks.save_top_k=-1",
    ]
    straight = main(tiny_args(tmp_path / "straight", *recipe, *every_step))
    (middle,) = steps.glob("*step=4.ckpt")
    saved = torch.load(middle, weights_only=True)["state_dict"]
    assert not torch.allclose(saved["image_average.pixels"], saved["image.pixels"])  # a running average
    resumed = main(tiny_args(tmp_path / "resumed", *recipe, f"--ckpt_path={middle}"))
    assert resumed.trainer.global_step == 6
    torch.testing.assert_close(resumed.model.image.pixels, straight.model.image.pixels, rtol=0, atol=1e-12)
    torch.testing.assert_close(
        resumed.model.image_average.pixels, straight.model.image_average.pixels, rtol=0, atol=1e-12
    )


def older_release(checkpoint, path, **hparams):
    """``checkpoint`` as an older release might have written it: ``hparams`` changed or added."""
    saved = torch.load(checkpoint, weights_only=True)
    saved["hyper_parameters"].update(hparams)
    torch.save(saved, path)
    return path


def test_options_an_older_release_had_are_left_out_with_a_warning(checkpoint, tmp_path):
    """A release saves every option, at its default too: one later removed must not stop a resume."""
    saved = torch.load(checkpoint, weights_only=True)["hyper_parameters"]
    transforms = {**saved["transforms"], "init_args": {**saved["transforms"]["init_args"], "wobble": 0.0}}
    old = older_release(checkpoint, tmp_path / "old.ckpt", tint_steps=64, transforms=transforms)
    with pytest.warns(UserWarning, match="that this release no longer has are left out") as warned:
        cli = main(tiny_args(tmp_path / "runs", *RECIPE, "--trainer.max_steps=4", f"--ckpt_path={old}"))
    (message,) = [str(w.message) for w in warned if "left out" in str(w.message)]
    assert "model.tint_steps=64" in message and "model.transforms.init_args.wobble=0.0" in message
    assert cli.trainer.global_step == 4
    assert type(cli.model.transforms).__name__ == "RandomViews" and cli.model.views == 2


def test_a_setting_this_release_cannot_build_is_one_line(checkpoint, capsys, tmp_path):
    """A penalty the images were made with and this release no longer has: the run cannot go on."""
    old = older_release(checkpoint, tmp_path / "old.ckpt", regularizer_weights={"sharpen": 1.0})
    message = fails_cleanly(capsys, tmp_path / "runs", f"--ckpt_path={old}")
    assert "sharpen" in message and "regularizer_weights" in message
