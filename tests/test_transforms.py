"""Random views: shapes, keyed determinism, independence from the rest of the batch."""

from __future__ import annotations

import pytest
import torch

from maxclass_lightning.errors import ConfigError
from maxclass_lightning.seeding import keyed_uniform
from maxclass_lightning.transforms import CropViews, RandomViews, Resize


def keys(*rows):
    return torch.tensor(rows, dtype=torch.long)


def test_views_have_the_classifier_input_size():
    views = RandomViews(output_size=20)(torch.rand(3, 3, 32, 32), keys([0, 1, 0, 0], [0, 2, 0, 0], [0, 3, 1, 0]))
    assert views.shape == (3, 3, 20, 20)


def test_a_view_depends_only_on_its_key():
    images = torch.rand(3, 3, 16, 16)
    transform = RandomViews(rotate=30, scale=(0.7, 1.3), jitter=0.2)
    batch = transform(images, keys([0, 1, 0, 5], [0, 259, 0, 5], [0, 948, 1, 5]))
    alone = transform(images[1:2], keys([0, 259, 0, 5]))
    torch.testing.assert_close(alone[0], batch[1], rtol=0, atol=1e-6)
    again = transform(images, keys([0, 1, 0, 5], [0, 259, 0, 5], [0, 948, 1, 5]))
    assert torch.equal(again, batch)
    next_step = transform(images, keys([0, 1, 0, 6], [0, 259, 0, 6], [0, 948, 1, 6]))
    assert not torch.allclose(next_step, batch)


def test_no_randomness_gives_the_image_back():
    images = torch.rand(2, 3, 16, 16)
    identity = RandomViews(pad=0, jitter=0, scale=(1, 1), rotate=0)
    torch.testing.assert_close(identity(images, keys([0, 1, 0, 0], [0, 2, 0, 0])), images, rtol=0, atol=1e-5)


def test_padding_shows_the_fill_value_at_the_border():
    images = torch.zeros(1, 3, 32, 32)
    padded = RandomViews(pad=0.25, jitter=0, scale=(1, 1), rotate=0, fill=0.5)(images, keys([0, 1, 0, 0]))
    assert torch.allclose(padded[..., 0, :], torch.full_like(padded[..., 0, :], 0.5))
    assert torch.allclose(padded[..., 16, 16], torch.zeros(3))


def test_views_pass_gradients_to_the_image():
    images = torch.rand(1, 3, 16, 16, requires_grad=True)
    RandomViews()(images, keys([0, 1, 0, 0])).sum().backward()
    assert images.grad.abs().sum() > 0


def test_resize_without_size_is_the_identity():
    images = torch.rand(1, 3, 16, 16)
    assert Resize()(images, keys([0, 1, 0, 0])) is images
    assert Resize(8)(images, keys([0, 1, 0, 0])).shape == (1, 3, 8, 8)


def test_color_shift_changes_each_views_colour_within_bounds():
    images = torch.full((2, 3, 8, 8), 0.5)
    still = dict(pad=0, jitter=0, scale=(1, 1), rotate=0)
    plain = RandomViews(**still)(images, keys([0, 1, 0, 0], [0, 2, 0, 0]))
    shifted = RandomViews(**still, color_shift=0.1)(images, keys([0, 1, 0, 0], [0, 2, 0, 0]))
    torch.testing.assert_close(plain, images, rtol=0, atol=1e-5)
    offsets = (shifted - images).mean(dim=(2, 3))
    assert (offsets.abs() <= 0.1 + 1e-6).all() and offsets.abs().max() > 0.01
    assert not torch.allclose(offsets[0], offsets[1])  # each view its own colour


def test_color_shift_leaves_the_warp_unchanged():
    images = torch.rand(1, 3, 16, 16)
    warped = RandomViews(rotate=30)(images, keys([0, 1, 0, 3]))
    recoloured = RandomViews(rotate=30, color_shift=0.2)(images, keys([0, 1, 0, 3]))
    factor, shift = RandomViews(rotate=30, color_shift=0.2).color(keys([0, 1, 0, 3]))
    torch.testing.assert_close(recoloured, (warped - 0.5) * factor.float() + shift.float() + 0.5, rtol=0, atol=1e-5)


def test_a_crop_view_depends_only_on_its_key():
    canvas = torch.rand(3, 3, 48, 48)
    crops = CropViews(box=(0.25, 0.5), noise=0.05, color_shift=0.1, output_size=16)
    batch_keys = keys([0, 1, 0, 5], [0, 259, 0, 5], [0, 259, 1, 5])
    batch = crops(canvas, batch_keys)
    assert batch.shape == (3, 3, 16, 16)
    alone = crops(canvas[1:2], keys([0, 259, 0, 5]))
    torch.testing.assert_close(alone[0], batch[1], rtol=0, atol=1e-6)
    assert torch.equal(crops(canvas, batch_keys), batch)
    for other in ([1, 259, 0, 5], [0, 260, 0, 5], [0, 259, 2, 5], [0, 259, 0, 6]):  # seed, class, view, step
        assert not torch.allclose(crops(canvas[1:2], keys(other))[0], batch[1], atol=1e-3)


def test_crops_stay_inside_the_canvas_and_span_the_box():
    # A canvas whose red channel is the column coordinate: a crop's columns show where its box sits.
    side = 64
    canvas = torch.linspace(0, 1, side).expand(1, 3, side, side).clone()
    crops = CropViews(box=(0.25, 0.5), noise=0.0, output_size=32)
    views = crops(canvas.expand(200, -1, -1, -1), keys(*[[0, 1, view, 0] for view in range(200)]))
    extent = views[:, 0].amax((1, 2)) - views[:, 0].amin((1, 2))
    assert extent.min() >= 0.25 - 2 / side
    assert extent.max() <= 0.5
    assert views.min() >= 0 and views.max() <= 1  # no sample fell outside the canvas


def test_crop_noise_has_the_set_spread():
    canvas = torch.full((1, 3, 64, 64), 0.5)
    plain = CropViews(noise=0.0, output_size=64)(canvas, keys([0, 1, 0, 0]))
    noisy = CropViews(noise=0.05, output_size=64)(canvas, keys([0, 1, 0, 0]))
    assert abs((noisy - plain).std().item() - 0.05) < 0.005
    assert (noisy - plain).abs().max() <= 0.05 * 3**0.5 + 1e-6  # uniform noise: bounded by sqrt(3) std


STILL = dict(pad=0, jitter=0, scale=(1, 1), rotate=0)


def test_noise_depends_only_on_the_view_key():
    images = torch.rand(3, 3, 24, 24)
    transform = RandomViews(rotate=20, color_shift=0.1, noise=0.05, output_size=16)
    batch_keys = keys([0, 1, 0, 5], [0, 259, 0, 5], [0, 259, 1, 5])
    batch = transform(images, batch_keys)
    torch.testing.assert_close(transform(images[1:2], batch_keys[1:2])[0], batch[1], rtol=0, atol=1e-6)
    assert torch.equal(transform(images, batch_keys), batch)
    for other in ([1, 259, 0, 5], [0, 260, 0, 5], [0, 259, 2, 5], [0, 259, 0, 6]):  # seed, class, view, step
        assert not torch.allclose(transform(images[1:2], keys(other))[0], batch[1], atol=1e-3)


def test_view_noise_has_the_set_spread_and_leaves_the_warp_unchanged():
    images = torch.rand(1, 3, 64, 64, dtype=torch.float64)
    plain = RandomViews(rotate=30)(images, keys([0, 1, 0, 0]))
    noisy = RandomViews(rotate=30, noise=0.05)(images, keys([0, 1, 0, 0]))
    assert abs((noisy - plain).std().item() - 0.05) < 0.005
    assert (noisy - plain).abs().max() <= 0.05 * 3**0.5 + 1e-9  # uniform noise: bounded by sqrt(3) std


def test_noise_is_drawn_from_the_view_streams_draws_from_eleven_on():
    """Draw 10 stays unused, so every noise stream is the one earlier pictures were made with."""
    flat = torch.full((2, 3, 4, 4), 0.5, dtype=torch.float64)
    view_keys = keys([0, 1, 0, 3], [0, 2, 1, 3])
    noisy = RandomViews(**STILL, noise=0.1, output_size=4)(flat, view_keys)
    uniform = keyed_uniform(view_keys, 11 + 48)[:, 11:].view(2, 3, 4, 4)
    torch.testing.assert_close(noisy - 0.5, (uniform - 0.5) * 0.1 * 12**0.5, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    ("kind", "option", "value"),
    [
        (RandomViews, "scale", (1.5, 0.5)),
        (RandomViews, "rotate", 200.0),
        (RandomViews, "noise", float("inf")),
        (RandomViews, "pad", -0.1),
        (CropViews, "box", (0.5, 1.5)),
        (CropViews, "output_size", 0),
        (Resize, "output_size", -3),
    ],
)
def test_an_out_of_range_view_option_is_refused_where_it_is_defined(kind, option, value):
    with pytest.raises(ConfigError, match=rf"^{kind.__name__}\.{option} is "):
        kind(**{option: value})
