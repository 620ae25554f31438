"""Objective strings: channels, neurons, layers and logit arithmetic, checked against hand-written
loops that maximize the same quantity, and their one-line errors."""

from __future__ import annotations

import pytest
import torch
from torchvision.io import read_image

from maxclass_lightning import classifiers
from maxclass_lightning.errors import ConfigError
from maxclass_lightning.expressions import channels, parse, split_terms
from maxclass_lightning.images import PixelImage
from tests.conftest import fit_in_process, run_dir, run_module, tiny_args
from tests.test_errors import fails_cleanly

#: One xdist worker runs this file (`--dist loadgroup`), so that its module-scoped fixtures run once.
pytestmark = pytest.mark.xdist_group("expressions")

NAMES = classifiers.IMAGENET_CATEGORIES
TINY_CHANNELS = {"": None, "0": 8, "2": 16, "6": 1000}


def test_terms_split_on_spaced_signs_and_keep_hyphenated_class_names():
    assert split_terms("logit:259 - logit:151") == [(1.0, "logit:259"), (-1.0, "logit:151")]
    assert split_terms("- logit:black-and-tan coonhound") == [(-1.0, "logit:black-and-tan coonhound")]
    objective = parse("_x:5 + 0.5 * _x:9 - 2 * _x", NAMES, {"_x": 12})
    assert [(weight, term.label()) for weight, term in objective.terms] == [(1.0, "_x:5"), (0.5, "_x:9"), (-2.0, "_x")]
    assert parse("logit:Pomeranian - logit:151", NAMES, {}).file_name() == "logit_Pomeranian-logit_151"


@pytest.fixture(scope="module")
def vgg16_channels():
    return channels(classifiers.build_classifier("vgg16", None), 32)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("features.99:1", r"'features.99' is not a module of the classifier; did you mean features\.\d"),
        ("features.28:512", r"channel '512' of 'features.28'; it has channels 0 to 511"),
        ("logit:pomeranain", r"unknown class name 'pomeranain'; did you mean 'Pomeranian'"),
        ("logit:1 - ", r"has an empty term"),
    ],
)
def test_a_module_or_channel_that_does_not_exist_names_the_valid_ones(text, message, vgg16_channels):
    with pytest.raises(ConfigError, match=message):
        parse(text, NAMES, vgg16_channels)


def hand_loop(network, objectives_value, keys, steps=3, size=32):
    """The seed's loop (AdamW lr 5, weight decay 0.1) on ``keys``' initial images, maximizing
    ``objectives_value(network, images)`` summed over images, in float64."""
    image = PixelImage(keys, size, seed=0).pixels.detach().double().requires_grad_(True)
    optimizer = torch.optim.AdamW([image], lr=5.0, weight_decay=0.1)
    for _ in range(steps):
        (-objectives_value(network, image).sum()).backward()
        optimizer.step()
        optimizer.zero_grad()
    return image.detach()


def outputs_of(network, images, names):
    captured = {}
    modules = dict(network.named_modules())
    handles = [modules[n].register_forward_hook(lambda m, a, o, n=n: captured.__setitem__(n, o)) for n in names]
    logits = network(images)
    for handle in handles:
        handle.remove()
    return logits, captured


def fit_objectives(tmp_path, classifier, objectives, *extra):
    args = [f"--model.classifier={classifier}", "--model.classes=null", "--trainer.precision=64-true", *extra]
    return fit_in_process(tiny_args(tmp_path, *args, "--trainer.max_steps=3", f"--model.objectives={objectives}"))


def test_a_vgg16_channel_is_maximized_as_a_plain_loop_would(tmp_path):
    cli = fit_objectives(tmp_path, "vgg16", '["features.28:17"]')
    network = classifiers.build_classifier("vgg16", None, seed=0).double()

    def channel(network, images):
        return outputs_of(network, images, ["features.28"])[1]["features.28"][:, 17].mean((1, 2))

    expected = hand_loop(network, channel, cli.model.classes)
    torch.testing.assert_close(cli.model.image.pixels.detach(), expected, rtol=0, atol=1e-9)
    assert sorted(p.name for p in (run_dir(tmp_path) / "images").iterdir())[0] == "0_features.28_17.png"


def test_a_timm_neuron_is_maximized_as_a_plain_loop_would(tmp_path):
    cli = fit_objectives(tmp_path, "timm:resnet18", '["layer3.0.conv1:7@center"]')
    network = classifiers.build_classifier("timm:resnet18", None, seed=0).double()

    def neuron(network, images):
        output = outputs_of(network, images, ["layer3.0.conv1"])[1]["layer3.0.conv1"]
        return output[:, 7, output.shape[2] // 2, output.shape[3] // 2]

    expected = hand_loop(network, neuron, cli.model.classes)
    torch.testing.assert_close(cli.model.image.pixels.detach(), expected, rtol=0, atol=1e-9)


def test_layers_and_logit_arithmetic_each_drive_their_own_image(tmp_path):
    objectives = ["2", "logit:259 - 0.5 * logit:151", "2:3"]
    cli = fit_objectives(tmp_path, "tests.networks:tiny_imagenet_classifier", str(objectives).replace("'", '"'))
    network = classifiers.build_classifier("tests.networks:tiny_imagenet_classifier", None, seed=0).double()

    def values(network, images):
        logits, captured = outputs_of(network, images, ["2"])
        layer = captured["2"].square().flatten(1).mean(1)
        return torch.stack([layer[0], logits[1, 259] - 0.5 * logits[1, 151], captured["2"][2, 3].mean()])

    expected = hand_loop(network, values, cli.model.classes)
    torch.testing.assert_close(cli.model.image.pixels.detach(), expected, rtol=0, atol=1e-9)
    assert cli.model.labels == objectives
    images = run_dir(tmp_path) / "images"
    assert sorted(p.name for p in images.glob("[0-9]_*.png")) == [
        "0_2.png",
        "1_logit_259-0.5xlogit_151.png",
        "2_2_3.png",
    ]
    assert read_image(str(images / "0_2.png")).shape == (3, 64, 64)  # the seed's display: 2x upsample


def test_each_picture_drives_its_own_channel_harder_than_the_other_picture_does(tmp_path):
    """Two channels of one layer, read back from the exported PNGs."""
    fit_objectives(tmp_path, "tests.networks:tiny_imagenet_classifier", '["2:5", "2:9"]')
    network = classifiers.build_classifier("tests.networks:tiny_imagenet_classifier", None, seed=0)
    images = run_dir(tmp_path) / "images"
    pictures = torch.stack([read_image(str(images / name)).float() / 255 for name in ("0_2_5.png", "1_2_9.png")])
    with torch.no_grad():
        output = outputs_of(network, torch.nn.functional.interpolate(pictures, size=32), ["2"])[1]["2"]
    means = output.mean((2, 3))
    assert means[0, 5] > means[1, 5] and means[1, 9] > means[0, 9]


def test_objectives_and_classes_together_or_a_wrong_module_are_one_line(tmp_path, capsys):
    both = fails_cleanly(capsys, tmp_path / "a", "--model.classes=[1]", '--model.objectives=["logit:2"]')
    assert "model.classes is [1]; give null with model.objectives" in both
    wrong = fails_cleanly(capsys, tmp_path / "b", "--model.classes=null", '--model.objectives=["9:1"]')
    assert "'9' is not a module of the classifier" in wrong


def test_objectives_and_their_samples_are_owned_across_two_processes_as_in_one(tmp_path):
    """Two samples of each objective, tied by the diversity term: process 0 owns the first two
    objectives' samples, process 1 the third's, and the images are one process's."""
    objectives = '--model.objectives=["2:1", "2:2", "logit:7"]'
    samples = ["--model.samples_per_class=2", "--model.diversity_weight=1.0", "--model.diversity_layer=2"]
    one = fit_objectives(
        tmp_path / "one", "tests.networks:tiny_imagenet_classifier", objectives.split("=", 1)[1], *samples
    )
    args = ["--model.classes=null", objectives, *samples, "--trainer.devices=2", "--trainer.strategy=owned_classes"]
    result = run_module(tiny_args(tmp_path / "two", *args, "--trainer.precision=64-true", "--trainer.max_steps=3"))
    assert result.returncode == 0, result.stderr
    run = run_dir(tmp_path / "two")
    assert sorted(p.name for p in (run / "images").glob("[0-9]_*.png")) == [
        f"{name}_{sample}.png" for name in ("0_2_1", "1_2_2", "2_logit_7") for sample in (0, 1)
    ]
    saved = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]["image.pixels"]
    assert saved.shape == (6, 3, 32, 32)
    torch.testing.assert_close(saved, one.model.image.pixels.detach().cpu(), rtol=0, atol=1e-9)


def test_the_quality_recipe_on_two_lite0_channels_as_the_issue_writes_it(tmp_path):
    """``fit --config quality --model.classifier efficientnet_lite0 --model.image_size 224
    --model.objectives '["_blocks.12:5", "_blocks.12:9"]'``: the objectives replace the recipe's
    classes, and each exported picture, read back, drives its own channel harder than the other does."""
    objectives = '["_blocks.12:5", "_blocks.12:9"]'
    budget = ["--trainer.max_steps=6", "--model.views=1", "--trainer.enable_progress_bar=false"]
    command = "fit --config quality --model.classifier efficientnet_lite0 --model.image_size 224 --model.objectives"
    fit_in_process([*command.split(), objectives, f"--trainer.logger.init_args.save_dir={tmp_path}", *budget])
    images = run_dir(tmp_path, "quality") / "images"
    names = ("0__blocks.12_5.png", "1__blocks.12_9.png")
    assert sorted(p.name for p in images.glob("[0-9]_*.png")) == list(names)
    described = classifiers.load("efficientnet_lite0")
    pictures = torch.stack([read_image(str(images / name)).float() / 255 for name in names])
    with torch.no_grad():
        output = outputs_of(described.network.eval(), described.normalization()(pictures), ["_blocks.12"])[1]
    means = output["_blocks.12"].mean((2, 3))
    assert means[0, 5] > means[1, 5] and means[1, 9] > means[0, 9], means[:, [5, 9]]
