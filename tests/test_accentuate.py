"""Feature accentuation as the issue writes it: ``fit --config accentuate --model.init_image
photo.png --model.classes '[948]'``, on the real EfficientNet-Lite0, at a CI-sized budget."""

from __future__ import annotations

import torch
from PIL import Image, ImageDraw

from maxclass_lightning import classifiers
from maxclass_lightning.images import load_picture
from tests.conftest import fit_in_process, run_dir


def a_photo(path, size: int = 224) -> None:
    """A photograph stand-in: a sky-to-ground gradient, a dark disc and a bright bar."""
    picture = Image.linear_gradient("L").resize((size, size)).convert("RGB")
    draw = ImageDraw.Draw(picture)
    draw.ellipse((40, 60, 120, 140), fill=(40, 30, 90))
    draw.rectangle((130, 20, 200, 200), fill=(220, 180, 60))
    picture.save(path)


def test_accentuate_moves_a_photo_toward_the_class_and_keeps_it_the_same_picture(tmp_path):
    photo = tmp_path / "photo.png"
    a_photo(photo)
    budget = ["--trainer.max_steps=6", "--model.views=2", "--trainer.enable_progress_bar=false"]
    command = f"fit --config accentuate --model.init_image {photo} --model.classes [948]".split()
    fit_in_process([*command, f"--trainer.logger.init_args.save_dir={tmp_path / 'runs'}", *budget])
    after_path = run_dir(tmp_path / "runs", "accentuate") / "images" / "948_granny_smith.png"
    before, after = load_picture(photo, 224), load_picture(after_path, 224)
    correlation = torch.corrcoef(torch.stack([before.flatten(), after.flatten()]))[0, 1]
    assert correlation > 0.9, correlation
    described = classifiers.load("efficientnet_lite0")
    with torch.no_grad():
        logits = described.network.eval()(described.normalization()(torch.stack([before, after])))
    probability = logits.softmax(1)[:, 948]
    assert probability[1] > 10 * probability[0], probability
