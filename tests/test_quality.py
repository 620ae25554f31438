"""Quality on real ImageNet networks: the quality recipe, run by the app, scored by `evaluate`.

Sized for CI on 2 cores: one shared run per direction (a module-scoped fixture), one class
(goldfish), 2 views and 32 steps (64 classifier passes) instead of the recipe's 6 classes, 4 views
and 128 steps, in both directions: optimized on Lite0 and judged by Lite1, and the reverse. The
class is the one both judges read best at this budget (measured before the skip gradient), so
that the thresholds keep their margin with a single picture.
Both runs are seeded (``seed_everything`` in the recipe); the thresholds sit well under what was
measured (in each test's docstring), so that other CPUs and thread counts, whose float rounding
differs, pass, and a broken recipe does not. The full measurement is in docs/results.md. The
figures quoted are of the recipe as shipped (amplitude decay 1.75, ``skip_gradient`` 0.5,
``exact_view_steps``: here the last 4 of 32 steps; ``average_steps``: the picture is the average
of the last 8; display sharpness 2.5), earlier recipes' in parentheses.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from maxclass_lightning.cli import main
from maxclass_lightning.evaluate import picture_paths
from maxclass_lightning.measures import (
    PHOTOGRAPH_SLOPES,
    PHOTOGRAPHS,
    colourfulness,
    read_picture,
    rms_contrast,
    spectral_slope,
)
from tests.conftest import ROOT, TINY, fit_in_process

#: One xdist worker runs this file (`--dist loadgroup`), so that its module-scoped fixtures run once.
pytestmark = pytest.mark.xdist_group("quality")

CLASSES = [1]  # goldfish

#: (optimized network, its input side, judge, its input side): the recipe runs on one network
#: and the other, never optimized against, scores the exported PNGs.
DIRECTIONS = {
    "lite0-to-lite1": ("efficientnet_lite0", 224, "efficientnet_lite1", 240),
    "lite1-to-lite0": ("efficientnet_lite1", 240, "efficientnet_lite0", 224),
}


def evaluate(images: Path, classifier: str, size: int) -> list:
    """``evaluate``'s scores of the exported PNGs, read back from disk, in class order."""
    scores = main(["evaluate", str(images), "--classifier", classifier, "--image_size", str(size)])
    assert [score.target for score in scores] == CLASSES
    return scores


def mean_probability(scores: list) -> float:
    return sum(score.probability for score in scores) / len(scores)


@pytest.fixture(scope="module", params=list(DIRECTIONS), ids=list(DIRECTIONS))
def transfer(request, tmp_path_factory):
    """One run of the shipped recipe per direction, shared by the tests of that direction: the
    optimized network's and the judge's scores of the exported pictures."""
    network, size, judge, judge_size = DIRECTIONS[request.param]
    save_dir = tmp_path_factory.mktemp(request.param)
    cli = fit_in_process(
        [
            "fit",
            "--config",
            str(ROOT / "configs" / "quality.yaml"),
            f"--model.classes={CLASSES}",
            f"--model.classifier={network}",
            f"--model.image_size={size}",
            "--model.views=2",
            "--trainer.max_steps=32",
            "--trainer.enable_progress_bar=false",
            "--trainer.enable_model_summary=false",
            f"--trainer.logger.init_args.save_dir={save_dir}",
        ]
    )
    images = Path(cli.trainer.log_dir) / "images"
    pictures = [read_picture(str(path)) for path in picture_paths([str(images)])]
    return evaluate(images, network, size), evaluate(images, judge, judge_size), pictures


def test_optimized_network_reads_its_pictures(transfer):
    """Measured: probability 1.000 (Lite0) and 1.000 (Lite1), top-1."""
    optimized, _, _ = transfer
    assert mean_probability(optimized) >= 0.9
    assert all(score.top1 for score in optimized)


def test_judge_reads_the_pictures(transfer):
    """The judge was never optimized against. Measured at these 64 passes (2026-12-03, goldfish
    alone): Lite1 judging Lite0's picture 0.76, Lite0 judging Lite1's 0.99 (unsharpened 0.75 and
    0.99); without the skip gradient, 0.92 and 0.80 (one class at 64 passes: the 12-class runs
    are in docs/results.md, where the skip gradient lifts Lite1's pictures most). Earlier recipes, on
    goldfish and Granny Smith together: before the averaged export, 0.75 and 0.64; at amplitude
    decay 1.5 without the exact views, 0.23 and 0.73; with a colour shift of 0.1, 0.55 and 0.66;
    the recipe before MACO (decay 1.0, contrast 1.7, lr 0.05) 0.037 and 0.003. A random picture
    scores about 0.001."""
    _, judged, _ = transfer
    assert mean_probability(judged) >= 0.1
    assert all(score.top1 for score in judged)


def test_pictures_are_as_contrasted_and_colourful_as_photographs(transfer):
    """The exported PNGs against scikit-image's colour photographs (``PHOTOGRAPHS``). Measured at
    these 64 passes: Lite0's picture contrast 0.245, colourfulness 69; Lite1's 0.239 and 73
    (photographs: 0.19 and 57). The same runs at saturation 1 (ImageNet's colour balance)
    measured colourfulness 46 (Lite0) and 46 (Lite1): under the photographs' mean, so this test
    fails without the recipe's saturation."""
    _, _, pictures = transfer
    assert len(pictures) == len(CLASSES)
    assert sum(rms_contrast(p) for p in pictures) / len(pictures) >= PHOTOGRAPHS["rms_contrast"]
    assert sum(colourfulness(p) for p in pictures) / len(pictures) >= PHOTOGRAPHS["colourfulness"]


def test_pictures_are_as_sharp_as_photographs(transfer):
    """The exported PNG's spectral slope is no steeper than the softest photograph's
    (``PHOTOGRAPH_SLOPES``). Measured at these 64 passes: Lite0's picture -1.28, Lite1's -1.40
    (photographs: -1.24 to -1.49); without the recipe's display sharpening, -1.57 and -1.67, so this
    test fails without it. The upper bound only rules out noise (Lucent's pictures measure -0.85):
    a 64-pass picture on another CPU may come out a little flatter than the one measured here."""
    _, _, pictures = transfer
    softest, _ = PHOTOGRAPH_SLOPES
    for picture in pictures:
        assert softest <= spectral_slope(picture) <= -1.0


def test_quality_recipe_phases_do_not_collapse(tmp_path):
    """The shipped recipe's optimizer keeps the phases spread as they start (uniform in [-pi, pi],
    mean |phase| pi/2). A weight decay pulls them all to 0 (measured: 0.1, the AdamW default once
    inherited silently, gives 0.48 here after 32 steps), and the picture mirrors itself in negative."""
    cli = main(
        [
            "fit",
            "--config",
            str(ROOT / "configs" / "quality.yaml"),
            *TINY,
            "--trainer.max_steps=32",
            f"--trainer.logger.init_args.save_dir={tmp_path}",
            "--model.classes=[1,948]",
            "--model.classifier=tests.networks:tiny_imagenet_classifier",
            "--model.image_size=64",
            "--model.views=2",
        ]
    )
    assert cli.model.image.phase.abs().mean().item() > 0.8 * math.pi / 2
