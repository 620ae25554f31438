"""The shipped configs: all valid, and pomeranian.yaml is the seed recipe."""

from __future__ import annotations

import pytest
import torch
from jsonargparse.typing import import_object

from maxclass_lightning import recipes
from maxclass_lightning.cli import TRAINER_DEFAULTS, MaxClassCLI, main
from maxclass_lightning.display import Display
from maxclass_lightning.module import ClassVisualizer
from maxclass_lightning.transforms import Resize
from tests.conftest import ROOT

CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))


def test_the_expected_configs_exist():
    assert {p.stem for p in CONFIGS} >= {"pomeranian", "quick", "lucid", "quality", "atlas", "ddp"}


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.stem)
def test_config_parses_against_the_schema(config, capsys):
    with pytest.raises(SystemExit) as exit:
        main(["fit", "--config", str(config), "--print_config"])
    assert exit.value.code == 0
    printed = capsys.readouterr().out
    assert "seed_everything:" in printed and "max_steps:" in printed


def test_pomeranian_config_is_the_seed_recipe():
    cli = MaxClassCLI(
        ClassVisualizer,
        trainer_defaults=TRAINER_DEFAULTS,
        auto_configure_optimizers=False,
        run=False,
        args=["--config", str(ROOT / "configs" / "pomeranian.yaml"), "--model.weights=null"],
    )
    model, trainer = cli.model, cli.trainer
    assert model.classes == [259] and model.class_names[259] == "Pomeranian"
    pixels = model.image.pixels
    assert pixels.shape == (1, 3, 256, 256) and 0 <= pixels.min() and pixels.max() <= 1
    assert isinstance(model.normalize, torch.nn.Identity)  # the seed feeds the raw image
    assert isinstance(model.transforms, Resize) and model.transforms.output_size is None and model.views == 1
    assert model.objective.regularizer_weights == {} and not model.objective.uses_diversity
    optimizer = model.optimizer(model.image.parameters())
    assert type(optimizer) is torch.optim.AdamW
    assert optimizer.defaults["lr"] == 5.0 and optimizer.defaults["weight_decay"] == 0.1
    assert trainer.max_steps == 200
    assert model.display == Display(upsample=2.0, sharpness=0.0, rescale="minmax")
    assert cli.config.model.weights is None and "IMAGENET1K_V1" in (ROOT / "configs" / "pomeranian.yaml").read_text()


def _class_defaults(class_path: str) -> dict:
    """The constructor defaults of the class a config names (what it brings when named), as the
    parser reads them (``TensorBoardLogger`` passes its ``**kwargs`` to ``SummaryWriter``)."""
    from jsonargparse import ArgumentParser

    parser = ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(import_object(class_path), "cls")
    return parser.get_defaults().cls.as_dict()


def _plain(value):
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


#: The app's own defaults for a class option, which apply when a config names that same class.
APP_DEFAULTS = {"trainer.logger": TRAINER_DEFAULTS["logger"]}


def _compare_classes(written, resolved, where: str) -> None:
    """Every class a config names resolves to exactly what the config writes plus its own
    defaults (and the app's defaults for that same class): nothing else carries over."""
    if isinstance(written, dict) and "class_path" in written:
        same = import_object(resolved["class_path"]) is import_object(written["class_path"])
        assert same, f"{where}: {resolved['class_path']}, expected {written['class_path']}"
        app = APP_DEFAULTS.get(where, {})
        same_class = app.get("class_path") == written["class_path"]
        expected = {
            **_class_defaults(written["class_path"]),
            **(app.get("init_args", {}) if same_class else {}),
            **(written.get("init_args") or {}),
        }
        for key, value in (resolved.get("init_args") or {}).items():
            assert key in expected, f"{where}.init_args.{key} is not an option of {written['class_path']}"
            assert _plain(value) == _plain(expected[key]), (
                f"{where}.init_args.{key}: {value!r}, expected {expected[key]!r}"
            )
        return
    if isinstance(written, dict):
        for key, value in written.items():
            _compare_classes(value, resolved[key], f"{where}.{key}" if where else key)
    elif isinstance(written, list):
        for index, (item, got) in enumerate(zip(written, resolved)):
            _compare_classes(item, got, f"{where}[{index}]")


@pytest.mark.parametrize("recipe", recipes.names())
def test_resolved_recipe_is_the_yaml_plus_the_named_classes_own_defaults(recipe, capsys):
    """A class named in a recipe in place of the app's default (torch.optim.Adam for AdamW) keeps
    none of the default's settings: the recipe spells every value that differs from the class's
    own defaults (jsonargparse carries over shared ``init_args`` by design; the recipes once ran
    with the default AdamW's weight_decay 0.1)."""
    import yaml

    with pytest.raises(SystemExit):
        main(["fit", "--config", str(recipes.path(recipe)), "--print_config"])
    resolved = yaml.safe_load(capsys.readouterr().out)
    _compare_classes(yaml.safe_load(recipes.path(recipe).read_text()), resolved, "")


def test_a_class_named_on_the_command_line_keeps_the_shared_options_it_was_given(capsys):
    """On the command line, naming another class keeps the shared ``init_args`` already set
    (jsonargparse's documented behaviour), and ``--print_config`` and the run's config.yaml show
    them: ``--model.optimizer=torch.optim.SGD`` after the seed recipe is SGD with lr 5.0."""
    import yaml

    with pytest.raises(SystemExit):
        main(["fit", "--config", str(recipes.path("seed")), "--model.optimizer=torch.optim.SGD", "--print_config"])
    optimizer = yaml.safe_load(capsys.readouterr().out)["model"]["optimizer"]
    assert optimizer["class_path"] == "torch.optim.SGD"
    assert optimizer["init_args"]["lr"] == 5.0 and optimizer["init_args"]["weight_decay"] == 0.1
    assert optimizer["init_args"]["momentum"] == _class_defaults("torch.optim.SGD")["momentum"]
