"""The documentation stays true: the README's commands, links that lead somewhere, a configuration
row for every option, recipes whose comments stay short, and the plot script that draws a figure."""

from __future__ import annotations

import importlib.util
import inspect
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from PIL import Image

from maxclass_lightning import cli
from tests.conftest import ROOT

README = ROOT / "README.md"
DOCS = ROOT / "docs"
RECIPES = ROOT / "maxclass_lightning" / "recipes"
CONFIGURATION = DOCS / "configuration.md"

#: The issue's budget for the README (#22): a user guide, not a lab notebook.
README_MAX_LINES = 300

#: Comment lines a recipe may carry: what it is for, its budget, a link to the results.
RECIPE_MAX_COMMENT_LINES = 15

#: The commands CI and a new user run, exactly as the README must give them.
INSTALL_AND_FIT = 'pip install -e ".[lite]" && python -m maxclass_lightning fit --config quality'
INSTALL_AND_TEST = 'pip install -e ".[test]" && python -m pytest'

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)


def pages() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def links(page: Path) -> list[str]:
    """Targets of the page's links and images, outside code blocks."""
    return LINK.findall(FENCE.sub("", page.read_text()))


def anchors(page: Path) -> set[str]:
    """The heading anchors GitHub gives a page: lower case, punctuation dropped, spaces as hyphens."""
    headings = re.findall(r"^#+\s+(.*)$", FENCE.sub("", page.read_text()), re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-") for heading in headings}


def table_rows(page: Path) -> list[str]:
    return [line for line in page.read_text().splitlines() if line.startswith("|")]


def named_parameters(function) -> set[str]:
    """The parameters a config can name (not ``*args``, ``**kwargs``)."""
    variadic = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    parameters = inspect.signature(function).parameters.items()
    return {name for name, parameter in parameters if parameter.kind not in variadic}


def fit_help(capsys) -> str:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["fit", "--help"])
    assert exit_.value.code == 0
    return capsys.readouterr().out


def test_readme_is_short_and_gives_the_install_fit_and_test_commands():
    text = README.read_text()
    assert len(text.splitlines()) <= README_MAX_LINES
    assert INSTALL_AND_FIT in text
    assert INSTALL_AND_TEST in text  # .ci/run runs this command
    assert "python -m maxclass_lightning fit --config" in text


def test_docs_pages_exist():
    for name in ("configuration", "distributed", "results", "development", "lab-notes"):
        assert (DOCS / f"{name}.md").is_file(), name


@pytest.mark.parametrize("page", pages(), ids=lambda page: page.name)
def test_every_relative_link_and_image_leads_to_a_file(page):
    checked = 0
    for target in links(page):
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        assert linked.exists(), f"{page.name} links to {target}, which does not exist"
        if anchor and linked.suffix == ".md":
            assert anchor in anchors(linked), f"{page.name} links to {target}: no such heading"
        checked += 1
    assert checked or page.name != "README.md"  # the README has a picture and links at least


def test_readme_links_every_docs_page():
    linked = {Path(target.partition("#")[0]).name for target in links(README)}
    assert {page.name for page in DOCS.glob("*.md")} <= linked


@pytest.mark.parametrize("recipe", sorted(RECIPES.glob("*.yaml")), ids=lambda recipe: recipe.name)
def test_recipe_comments_are_short_and_point_to_the_results(recipe):
    text = recipe.read_text()
    comments = [line for line in text.splitlines() if "#" in line]
    assert len(comments) <= RECIPE_MAX_COMMENT_LINES, f"{recipe.name}: {len(comments)} comment lines"
    assert "docs/results.md" in text


@pytest.mark.parametrize("recipe", sorted(RECIPES.glob("*.yaml")), ids=lambda recipe: recipe.name)
def test_recipe_names_no_removed_option(recipe):
    """The options measured and removed (docs/lab-notes.md) stay out of the recipes."""
    model = yaml.safe_load(recipe.read_text())["model"]
    image = (model.get("image") or {}).get("init_args") or {}
    views = (model.get("transforms") or {}).get("init_args") or {}
    assert "phase_rate" not in image
    assert "blur" not in views
    assert "l2" not in (model.get("regularizer_weights") or {})
    assert "max_class_scalars" not in model


def test_lite_recipes_use_the_shipped_weights():
    """``weights: null`` is a random network for every classifier (#23): a Lite recipe that said
    it would make pictures of noise."""
    for recipe in RECIPES.glob("*.yaml"):
        model = yaml.safe_load(recipe.read_text())["model"]
        if str(model.get("classifier", "")).startswith("efficientnet_lite"):
            assert model.get("weights", "DEFAULT") == "DEFAULT", recipe.name


def test_configuration_has_a_row_for_every_model_option(capsys):
    options = set(re.findall(r"^\s+--model\.(\w+)\b(?!\.)", fit_help(capsys), re.MULTILINE))
    assert {"classes", "weights", "image", "optimizer", "transforms", "display"} <= options
    rows = "\n".join(table_rows(CONFIGURATION))
    missing = sorted(option for option in options if f"| `model.{option}` |" not in rows)
    assert not missing, f"docs/configuration.md has no row for model.{', model.'.join(missing)}"
    stale = sorted(set(re.findall(r"^\| `model\.(\w+)` \|", rows, re.MULTILINE)) - options)
    assert not stale, f"docs/configuration.md has rows for model.{', model.'.join(stale)}, which fit --help lacks"


def test_configuration_has_a_row_for_every_option_of_the_shipped_classes():
    """Each option of the image, view, display and callback classes the app ships."""
    from maxclass_lightning import callbacks, checkpoints, display, images, metrics, progress, transforms

    positional = {"self", "classes", "size", "seed"}
    rows = "\n".join(table_rows(CONFIGURATION))
    classes = [
        images.FourierImage,
        images.PhaseImage,
        transforms.RandomViews,
        transforms.CropViews,
        callbacks.ImageLogger,
        callbacks.ImageExport,
        callbacks.DivergenceGuard,
        callbacks.GalleryExport,
        metrics.ScoreLogger,
        progress.ProgressBar,
        checkpoints.PeriodicCheckpoint,
        checkpoints.InterruptCheckpoint,
    ]
    options = {kind.__name__: named_parameters(kind.__init__) - positional for kind in classes}
    options["Display"] = named_parameters(display.Display)
    missing = [f"{kind}.{name}" for kind, names in options.items() for name in names if f"{kind}.{name}`" not in rows]
    assert not missing, f"docs/configuration.md has no row for {', '.join(sorted(missing))}"
    stale = [
        f"{kind}.{name}"
        for kind, name in re.findall(r"^\| `(?:\w+\.)?(\w+)\.(\w+)` \|", rows, re.MULTILINE)
        if kind in options and name not in options[kind]
    ]
    assert not stale, f"docs/configuration.md has rows for {', '.join(stale)}, which the code lacks"


def test_time_to_quality_plot_is_drawn(tmp_path):
    pytest.importorskip("matplotlib")
    data = tmp_path / "curves.json"
    data.write_text(json.dumps({"recipe a": [[64, 0.1], [256, 0.6]], "recipe b": [[128, 0.5], [512, 0.9]]}))
    output = tmp_path / "plot.png"
    result = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "time_to_quality.py"), str(data), str(output)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    with Image.open(output) as picture:
        assert picture.size == (640, 400)
        assert len(picture.convert("RGB").getcolors(1 << 24)) > 10  # lines and text, not a blank canvas


def test_time_to_quality_plot_draws_every_curve():
    """More curves than the palette's 20 colours: each is still drawn and in the legend (a ``zip``
    with the palette once dropped the 21st silently)."""
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    spec = importlib.util.spec_from_file_location("time_to_quality", ROOT / "docs" / "time_to_quality.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    curves = {f"recipe {i}": [[64, i / 30], [256, i / 25]] for i in range(25)}
    figure, axes = plt.subplots()
    try:
        lines = module.plot_curves(axes, curves)
        assert [line.get_label() for line in lines] == list(curves)
        assert [line.get_label() for line in axes.legend().get_lines()] == list(curves)
    finally:
        plt.close(figure)
