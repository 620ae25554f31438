"""Per-image penalties: each image's penalty depends on that image alone."""

from __future__ import annotations

import pytest
import torch

from maxclass_lightning import regularizers
from maxclass_lightning.errors import ConfigError


def test_flat_images_have_no_total_variation_or_blur_penalty():
    flat = torch.full((2, 3, 8, 8), 0.3)
    assert torch.equal(regularizers.total_variation(flat), torch.zeros(2))
    assert torch.allclose(regularizers.blur(flat), torch.zeros(2))


def test_noise_costs_more_than_smooth_images():
    noise = torch.rand(1, 3, 16, 16)
    smooth = torch.linspace(0, 1, 16).expand(1, 3, 16, 16)
    assert regularizers.total_variation(noise) > regularizers.total_variation(smooth)
    assert regularizers.blur(noise) > regularizers.blur(smooth)


def test_weighted_penalty_is_per_image():
    images = torch.rand(3, 3, 8, 8)
    weights = {"blur": 0.5, "total_variation": 2.0}
    together = regularizers.weighted(images, weights)
    assert together.shape == (3,)
    torch.testing.assert_close(regularizers.weighted(images[1:2], weights), together[1:2])


def test_unknown_regularizer_name_fails_clearly():
    with pytest.raises(
        ConfigError, match=r"unknown regularizer l2, tv in model\.regularizer_weights; use total_variation, blur"
    ):
        regularizers.check({"tv": 1.0, "l2": 0.1})


def test_a_non_finite_weight_is_refused():
    with pytest.raises(ConfigError, match=r"model\.regularizer_weights\.blur is nan; give a finite weight"):
        regularizers.check({"blur": float("nan")})


def test_init_distance_is_each_images_mean_squared_distance_to_the_start():
    start = torch.rand(3, 8, 8, dtype=torch.float64)
    images = torch.stack([start, start + 0.5, start - 0.25])
    penalty = regularizers.weighted(images, {"init_distance": 2.0}, start)
    torch.testing.assert_close(penalty, torch.tensor([0.0, 0.5, 0.125], dtype=torch.float64), rtol=0, atol=1e-12)
    with pytest.raises(ConfigError, match=r"give model\.init_image"):
        regularizers.weighted(images, {"init_distance": 1.0}, None)
