"""The gallery in a real headless Chromium (the system's, driven by Playwright): every tile of a
1000-class folder, the filter from the URL and from typing, the sort orders, and the class page of a
real run with its samples, score history and command; loaded from disk with no network."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest
from PIL import Image

from maxclass_lightning import gallery
from maxclass_lightning.classifiers import IMAGENET_CATEGORIES
from maxclass_lightning.errors import ConfigError
from tests.conftest import ROOT, fit_in_process, run_dir, run_module, tiny_args

#: One xdist worker runs this file (`--dist loadgroup`), so that its module-scoped fixtures run once.
pytestmark = pytest.mark.xdist_group("gallery")

#: Where Debian (``apt-get install chromium``) and other systems put Chromium.
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def tag(index: int) -> str:
    return f"{index}_{IMAGENET_CATEGORIES[index].lower().replace(' ', '_')}"


def probability(index: int) -> float:
    """A synthetic score, in an order unlike the class indices'."""
    return ((index * 7919 + 123) % 1000 + 0.25) / 1000


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium; skipped with the reason where it or Playwright is missing, failed under CI."""
    executable = next((path for name in CHROMIUM_NAMES if (path := shutil.which(name))), None)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright, missing = None, "Playwright for Python is not installed (pip install playwright)"
    else:
        missing = None if executable else "no Chromium on PATH (apt-get install chromium)"
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"{missing}; CI must run the browser tests")
        pytest.skip(missing)
    with sync_playwright() as playwright:
        # No sandbox: CI containers run as root, where Chromium's sandbox cannot start.
        chromium = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    """A page that fails the test on a JavaScript error or any request beyond the files on disk."""
    context = browser.new_context(viewport={"width": 1200, "height": 800})
    page = context.new_page()
    errors: list[str] = []

    def request(request) -> None:
        if not request.url.startswith("file://"):
            errors.append(f"request to {request.url}")

    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("request", request)
    yield page
    context.close()
    assert errors == []


@pytest.fixture(scope="module")
def atlas(tmp_path_factory) -> Path:
    """A folder of 1000 tiny ``<index>_<name>.png`` with synthetic scores in ``scores.json``, its gallery built."""
    folder = tmp_path_factory.mktemp("atlas")
    for index in range(1000):
        Image.new("RGB", (8, 8), (index % 256, index // 4 % 256, 128)).save(folder / f"{tag(index)}.png")
    records = [{"name": tag(i), "class": i, "probability": probability(i), "rank": 1 + i % 7} for i in range(1000)]
    (folder / gallery.SCORES_FILE).write_text(json.dumps(records))
    judged = [
        {"path": str(folder / f"{tag(i)}.png"), "target": i, "probability": 1 - probability(i), "rank": 2}
        for i in range(1000)
    ]
    (folder / "lite1.json").write_text(json.dumps(judged))
    gallery.build(folder)
    return folder


def embedded(index: Path) -> dict:
    """The data the page embeds (one JSON blob)."""
    blob = index.read_text().split('<script id="gallery-data" type="application/json">')[1].split("</script>")[0]
    return json.loads(blob)


def shown(page) -> list[int]:
    """The classes of the tiles shown, in page order."""
    return [
        int(c) for c in page.eval_on_selector_all(".tile:not([hidden])", "tiles => tiles.map(t => t.dataset.class)")
    ]


def test_every_class_has_a_tile(atlas, page):
    page.goto((atlas / "gallery" / "index.html").as_uri())
    assert shown(page) == list(range(1000))
    assert page.locator(".tile").count() == 1000
    assert page.locator('.tile[data-class="259"] img[loading="lazy"]').count() == 1
    assert f"{probability(259):.3f} · rank 1" in page.locator('.tile[data-class="259"]').text_content()


def test_filter_from_the_url_shows_exactly_pomeranian(atlas, page):
    page.goto((atlas / "gallery" / "index.html").as_uri() + "?q=pomeranian")
    assert shown(page) == [259]
    assert page.locator(".tile[hidden]").count() == 999
    assert page.input_value("#search") == "pomeranian"


def test_typing_filters_the_tiles_and_the_url(atlas, page):
    page.goto((atlas / "gallery" / "index.html").as_uri())
    page.locator("#search").press_sequentially("pomer")
    assert shown(page) == [259]
    assert page.url.endswith("?q=pomer")
    page.fill("#search", "948")
    assert shown(page) == [948]
    page.fill("#search", "Egyptian cat, 1")  # names ignore case and "_"; a comma means "or"
    assert shown(page) == [1, 285]
    page.fill("#search", "")
    assert len(shown(page)) == 1000


def test_sorting_by_probability_puts_the_weakest_first(atlas, page):
    page.goto((atlas / "gallery" / "index.html").as_uri())
    page.select_option("#sort", "prob")
    assert shown(page) == sorted(range(1000), key=probability)
    page.select_option("#sort", "judge:lite1")  # evaluate --json found in the folder
    assert shown(page) == sorted(range(1000), key=lambda i: 1 - probability(i))
    page.select_option("#sort", "name")
    assert [IMAGENET_CATEGORIES[i] for i in shown(page)[:2]] == ["abacus", "abaya"]
    page.goto((atlas / "gallery" / "index.html").as_uri() + "?sort=prob&q=dog")  # a linked view
    dogs = shown(page)
    assert len(dogs) > 5 and dogs == sorted(dogs, key=probability)


def test_page_is_small_at_1000_classes(atlas):
    folder = atlas / "gallery"
    size = sum((folder / name).stat().st_size for name in ("index.html", *gallery.ASSETS))
    assert size < 2_000_000, size
    assert len(list((folder / "thumbnails").glob("*.jpg"))) == 1000


def test_real_run_class_page(tmp_path, page):
    """A real run's folder (TensorBoard events, config, two samples per class) makes a class page
    with both samples, the score history the run logged and the command that makes it again."""
    fit_in_process(tiny_args(tmp_path, "--model.classes=[1,259,948]", "--model.samples_per_class=2"))
    run = run_dir(tmp_path)
    index = gallery.build(run)
    assert index == run / "gallery" / "index.html"
    page.goto(index.as_uri() + "#class-259")
    assert page.locator("dialog[open] #class-title").inner_text() == "259 pomeranian"
    samples = page.locator("dialog[open] .samples img")
    assert samples.count() == 2
    samples.last.scroll_into_view_if_needed()
    page.wait_for_function(
        "[...document.querySelectorAll('.samples img')].every(i => i.complete && i.naturalWidth > 0)"
    )
    assert page.locator("dialog[open] svg.history polyline").count() == 1
    command = f"python -m maxclass_lightning fit --config {run.absolute() / 'config.yaml'} --model.classes='[259]'"
    assert page.locator("#command").inner_text() == command
    page.keyboard.press("Escape")
    assert page.locator("dialog[open]").count() == 0
    assert " · rank " in page.locator('.tile[data-class="1"]').text_content()  # TensorBoard's last point
    page.click('.tile[data-class="948"]')
    assert page.locator("dialog[open] #class-title").inner_text() == "948 granny smith"
    assert shown(page) == [1, 259, 948]


def test_history_is_what_tensorboard_reads(tmp_path):
    """The gallery's own event reader (no per-record CRC in Python) agrees with tensorboard's."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    fit_in_process(tiny_args(tmp_path, "--model.classes=[1,259]"))
    run = run_dir(tmp_path)
    accumulator = EventAccumulator(str(run), size_guidance={"scalars": 0})
    accumulator.Reload()
    history = gallery.read_tensorboard(run, ["1_goldfish", "259_pomeranian"])
    for tag_name in ("1_goldfish", "259_pomeranian"):
        expected = [[e.step, e.value] for e in accumulator.Scalars(f"prob/{tag_name}")]
        assert history[tag_name]["prob"] == expected and len(expected) >= 3
        assert history[tag_name]["rank"] == accumulator.Scalars(f"rank/{tag_name}")[-1].value


def test_rebuild_keeps_thumbnails_and_main_prints_the_page(atlas, capsys):
    thumbnail = atlas / "gallery" / "thumbnails" / f"{tag(259)}.jpg"
    before = thumbnail.stat().st_mtime_ns
    assert gallery.main([str(atlas)]) == 0
    assert thumbnail.stat().st_mtime_ns == before
    assert capsys.readouterr().out.strip() == f"Gallery: {(atlas / 'gallery' / 'index.html').absolute().as_uri()}"


def test_one_line_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"^gallery folder is '.*missing', not a folder; give "):
        gallery.main([str(tmp_path / "missing")])
    (tmp_path / "grid.png").write_bytes(b"")
    with pytest.raises(
        ConfigError, match=r"which has no class PNGs; give a run folder or a folder of <index>_<name>.png"
    ):
        gallery.main([str(tmp_path)])
    (tmp_path / "1_goldfish.png").write_bytes(b"")
    with pytest.raises(ConfigError, match=r"1_goldfish.png is not a picture Pillow can read; give PNG files$"):
        gallery.main([str(tmp_path)])
    Image.new("RGB", (8, 8)).save(tmp_path / "1_goldfish.png")
    (tmp_path / "notes.json").write_text("{}")
    with pytest.raises(ConfigError, match=r"notes\.json', not evaluate --json output"):
        gallery.main([str(tmp_path), "--evaluations", str(tmp_path / "notes.json")])


def test_the_command_starts_without_torch_and_ends_bad_input_in_one_line(atlas, tmp_path):
    """``python -m maxclass_lightning gallery`` as a user runs it: a rebuild that never imports torch
    or Lightning (seconds of start-up), and a missing folder or unknown option in one line, exit 2."""
    probe = (
        "import runpy, sys; sys.argv = ['maxclass_lightning', *sys.argv[1:]]\n"
        "try:\n    runpy.run_module('maxclass_lightning', run_name='__main__')\n"
        "finally:\n    print('imported:', 'torch' in sys.modules, 'lightning' in sys.modules)"
    )
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    built = subprocess.run(
        [sys.executable, "-c", probe, "gallery", str(atlas)], capture_output=True, text=True, env=environment
    )
    assert built.returncode == 0, built.stderr
    assert built.stdout.splitlines()[-1] == "imported: False False"
    for argv, message in (
        ([str(tmp_path / "missing")], "not a folder"),
        (["--bogus"], "unrecognized arguments: --bogus"),
    ):
        result = run_module(["gallery", *argv])
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ") and message in result.stderr


def test_constants_match_the_run_that_writes_the_files():
    """The gallery keeps its own copies so that it starts without torch."""
    from maxclass_lightning import callbacks, metrics

    assert gallery.IMAGES_FOLDER == callbacks.IMAGES_FOLDER
    assert gallery.MAX_CLASS_TAGS == metrics.MAX_CLASS_TAGS


def test_a_diverged_score_is_unknown(tmp_path):
    """A NaN probability (a run that diverged) leaves the tile without a score; the page stays valid JSON."""
    Image.new("RGB", (8, 8)).save(tmp_path / "1_goldfish.png")
    Image.new("RGB", (8, 8)).save(tmp_path / "2_great_white_shark.png")
    records = [{"name": "1_goldfish", "class": 1, "probability": float("nan"), "rank": 500}]
    records.append({"name": "2_great_white_shark", "class": 2, "probability": 0.5, "rank": 1})
    (tmp_path / gallery.SCORES_FILE).write_text(json.dumps(records))
    classes = embedded(gallery.build(tmp_path))["classes"]
    assert [c["score"] for c in classes] == [None, [0.5, 1]]


def test_output_elsewhere_links_back_to_the_pictures(atlas, tmp_path):
    """``--output`` away from the run: thumbnails beside the page, samples by relative paths."""
    index = gallery.build(atlas, tmp_path / "site")
    classes = embedded(index)["classes"]
    assert len(classes) == 1000
    for item in classes[::97]:
        assert (index.parent / urllib.parse.unquote(item["thumbnail"])).is_file()
        sample = index.parent / urllib.parse.unquote(item["samples"][0]["file"])
        assert sample.resolve() == (atlas / f"{item['tag']}.png").resolve()
