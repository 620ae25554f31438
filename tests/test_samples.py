"""Several images per class, the diversity term that spreads them apart, and TensorBoard for runs
of many classes."""

from __future__ import annotations

import re

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from maxclass_lightning.errors import ConfigError
from maxclass_lightning.images import FourierImage, PhaseImage, PixelImage
from maxclass_lightning.objectives import diversity
from tests.conftest import ROOT, fit_in_process, run_dir, tiny_args
from tests.diversity import measure


@pytest.mark.parametrize("parameterization", [PixelImage, FourierImage, PhaseImage])
def test_sample_zero_is_the_single_image_and_samples_have_their_own_streams(parameterization):
    alone = parameterization([259], 16, 3).state_dict()
    samples = parameterization([1, 259, 259, 259], 16, 3).state_dict()
    for name, value in alone.items():
        torch.testing.assert_close(samples[name][1], value[0], rtol=0, atol=0)
        assert not torch.equal(samples[name][2], samples[name][1])
        assert not torch.equal(samples[name][3], samples[name][2])
        # A sample's stream is its own: the same without the other class.
        torch.testing.assert_close(parameterization([259, 259], 16, 3).state_dict()[name][1], samples[name][2])


def test_diversity_is_the_cosine_similarity_of_gram_matrices_within_groups():
    features = torch.randn(4, 5, 3, 3, dtype=torch.float64)
    grams = [(f.flatten(1) @ f.flatten(1).T).flatten() for f in features]
    cosine = [[torch.nn.functional.cosine_similarity(a, b, dim=0) for b in grams] for a in grams]
    # Items 0, 1 and 2 are one class's samples under one view; item 3 is alone in its group.
    expected = (2 * (cosine[0][1] + cosine[0][2] + cosine[1][2])) / 3
    torch.testing.assert_close(diversity(features, torch.tensor([7, 7, 7, 9])), expected)
    # Identical samples are penalized most: every pair's similarity is 1.
    same = features[:1].expand(3, -1, -1, -1)
    torch.testing.assert_close(
        diversity(same, torch.zeros(3, dtype=torch.long)), torch.tensor(2.0, dtype=torch.float64)
    )


def test_diversity_layer_must_exist():
    from maxclass_lightning.module import ClassVisualizer

    with pytest.raises(ConfigError, match=re.escape("model.diversity_layer is 'features.99'")):
        ClassVisualizer(
            classes=[1],
            image_size=32,
            weights=None,
            samples_per_class=2,
            diversity_weight=1.0,
            diversity_layer="features.99",
        )


def test_big_runs_get_histograms_and_summaries_not_per_class_tags(tmp_path):
    classes = list(range(0, 1000, 25))  # 40 classes: more than metrics.MAX_CLASS_TAGS
    fit_in_process(
        tiny_args(
            tmp_path,
            f"--model.classes={classes}",
            "--model.classifier=tests.networks:tiny_imagenet_classifier",
            "--trainer.max_steps=2",
        )
    )
    accumulator = EventAccumulator(str(run_dir(tmp_path)), size_guidance={"histograms": 0, "scalars": 0})
    accumulator.Reload()
    tags = accumulator.Tags()
    assert not [tag for tag in tags["scalars"] if tag.startswith(("prob/", "score/", "rank/"))]
    probability = accumulator.Histograms("histograms/prob")[-1].histogram_value
    rank = accumulator.Histograms("histograms/rank")[-1].histogram_value
    assert probability.num == rank.num == len(classes)
    assert 0 <= probability.min <= probability.max <= 1 and 1 <= rank.min <= rank.max <= 1000
    minimum = accumulator.Scalars("summary/prob_min")[-1].value
    assert minimum == pytest.approx(probability.min, rel=1e-5)
    assert accumulator.Scalars("prob")[-1].value == pytest.approx(probability.sum / probability.num, rel=1e-5)
    assert 0 <= accumulator.Scalars("summary/top1_fraction")[-1].value <= 1


def test_diversity_term_spreads_the_samples_of_a_class(tmp_path):
    """Three samples of one class on EfficientNet-Lite0, with and without the term, at a CI budget
    (96 px: measured cosine 0.72 without the term, 0.49 with it; at 128 px 0.74 and 0.50)."""
    folders = {}
    # Weight 100: at quality.yaml's Adam lr 0.2, 20 no longer spreads the samples at this budget.
    for weight in (0, 100):
        save_dir = tmp_path / f"weight{weight}"
        fit_in_process(
            [
                "fit",
                "--config",
                str(ROOT / "configs" / "quality.yaml"),
                "--model.classifier=tests.networks:efficientnet_lite0",
                "--model.classes=[1]",
                "--model.samples_per_class=3",
                "--model.views=1",
                "--model.image_size=96",
                f"--model.diversity_weight={weight}",
                "--model.diversity_layer=_blocks.8",
                "--trainer.max_steps=32",
                "--trainer.enable_progress_bar=false",
                f"--trainer.logger.init_args.save_dir={save_dir}",
            ]
        )
        folders[weight] = run_dir(save_dir, "quality") / "images"
    independent, diverse = measure(folders[0]), measure(folders[100])
    assert diverse["cosine"] < independent["cosine"] - 0.05, (independent, diverse)
