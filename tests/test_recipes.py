"""Recipes ship inside the package: by name from the command line, from an installed wheel,
with configs/ as links to them (one source of truth)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from maxclass_lightning import recipes
from maxclass_lightning.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ["seed", "quality", "lucid", "atlas", "quick"]


def test_configs_are_the_packaged_recipes_and_name_no_test_code():
    assert set(RECIPES) <= set(recipes.names())
    for config in (ROOT / "configs").glob("*.yaml"):
        assert config.resolve().parent == recipes.FOLDER, f"{config} is a copy, not the packaged recipe"
    assert recipes.path("pomeranian") == recipes.path("seed") == (ROOT / "configs" / "pomeranian.yaml").resolve()
    for name in recipes.names():
        assert "tests." not in yaml.safe_dump(yaml.safe_load(recipes.path(name).read_text()))


def test_recipe_names_resolve_on_the_command_line():
    assert recipes.resolve_arguments(["fit", "--recipe", "quality", "--config=seed"]) == [
        "fit", "--config", str(recipes.path("quality")), "--config", str(recipes.path("seed")),
    ]  # fmt: skip
    assert recipes.resolve_arguments(["fit", "--config", "my.yaml"]) == ["fit", "--config", "my.yaml"]
    with pytest.raises(ConfigError, match=r"unknown recipe 'qualty'.*quality"):
        recipes.resolve_arguments(["fit", "--recipe", "qualty"])
    # A bare word given to --config is a recipe name too, when no such file exists.
    with pytest.raises(ConfigError, match=r"unknown recipe 'qualty'.*quality"):
        recipes.resolve_arguments(["fit", "--config", "qualty"])


def test_recipes_run_by_name_from_an_installed_wheel(tmp_path):
    wheels, target = tmp_path / "wheels", tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    built = subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", wheels, ROOT], capture_output=True
    )
    assert built.returncode == 0, built.stderr.decode()
    (wheel,) = wheels.glob("maxclass_lightning-*.whl")
    installed = subprocess.run([*pip, "install", "--no-deps", "--target", target, wheel], capture_output=True)
    assert installed.returncode == 0, installed.stderr.decode()
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    # One interpreter for every recipe (each start imports Lightning): print each resolved config,
    # then a one-step run of the quick recipe through ``python -m``'s own entry point, all from
    # the installed copy, in a folder that is not the clone.
    script = f"""
import contextlib, io, json, runpy, sys, maxclass_lightning
from maxclass_lightning.cli import main
printed = {{}}
for name in {RECIPES!r}:
    with contextlib.redirect_stdout(io.StringIO()) as out, contextlib.suppress(SystemExit):
        main(["fit", "--recipe", name, "--print_config"])
    printed[name] = out.getvalue()
sys.argv = ["maxclass_lightning", "fit", "--config", "quick", "--trainer.max_steps=1", "--model.image_size=32"]
runpy.run_module("maxclass_lightning", run_name="__main__")
print(json.dumps({{"file": maxclass_lightning.__file__, "printed": printed}}))
"""
    result = subprocess.run([sys.executable, "-c", script], cwd=outside, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(target)})  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert Path(report["file"]).is_relative_to(target)
    for name in RECIPES:
        printed, recipe = yaml.safe_load(report["printed"][name]), yaml.safe_load(recipes.path(name).read_text())
        assert printed["model"]["classifier"] == recipe["model"]["classifier"]
        assert printed["trainer"]["max_steps"] == recipe["trainer"]["max_steps"]
    assert (outside / "runs" / "quick" / "version_0" / "images" / "259_pomeranian.png").is_file()


def test_fast_is_quality_with_half_the_views_and_a_larger_step():
    """``fast`` is what the README says: ``quality`` at 2 views instead of 4 and Adam lr 0.3
    instead of 0.2, and nothing else (its figures in docs/results.md rest on that)."""

    def load(name: str) -> dict:
        return yaml.safe_load(recipes.path(name).read_text())

    quality, fast = load("quality"), load("fast")
    assert (quality["model"]["views"], fast["model"]["views"]) == (4, 2)
    assert quality["trainer"]["max_steps"] == fast["trainer"]["max_steps"] == 128
    lr = [recipe["model"]["optimizer"]["init_args"].pop("lr") for recipe in (quality, fast)]
    assert lr == [0.2, 0.3]
    for recipe in (quality, fast):
        del recipe["model"]["views"], recipe["trainer"]["logger"]["init_args"]["name"]
    assert fast == quality
