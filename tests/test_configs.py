"""The shipped configs: all valid, and pomeranian.yaml is the seed recipe."""

from __future__ import annotations

import pytest
import torch

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
    assert model.regularizer_weights == {}
    optimizer = model.optimizer(model.image.parameters())
    assert type(optimizer) is torch.optim.AdamW
    assert optimizer.defaults["lr"] == 5.0 and optimizer.defaults["weight_decay"] == 0.1
    assert trainer.max_steps == 200
    assert model.display == Display(upsample=2.0, sharpness=0.0, rescale="minmax")
    assert cli.config.model.weights is None and "IMAGENET1K_V1" in (ROOT / "configs" / "pomeranian.yaml").read_text()
