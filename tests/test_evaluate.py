"""`evaluate`: scores what the user sees, PNGs read back from disk, with any classifier."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from maxclass_lightning import classifiers, evaluate
from maxclass_lightning.errors import ConfigError

NETWORK = "tests.networks:tiny_imagenet_classifier"


def write_pictures(folder, indices):
    rng = np.random.default_rng(0)
    for index in indices:
        name = classifiers.IMAGENET_CATEGORIES[index].lower().replace(" ", "_")
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(folder / f"{index}_{name}.png")


def test_scores_match_a_direct_forward_pass_in_class_order(tmp_path, capsys):
    write_pictures(tmp_path, [948, 1, 259])
    scores = evaluate.main([str(tmp_path), "--classifier", NETWORK, "--weights", "null", "--image_size", "32"])
    assert [s.target for s in scores] == [1, 259, 948]  # by class index, not file-name order
    network = classifiers.build_classifier(NETWORK, None)
    for s in scores:
        picture = evaluate.load_picture(tmp_path / s.path.split("/")[-1], 32)
        normalized = (picture - torch.tensor(classifiers.IMAGENET_MEAN)[:, None, None]) / torch.tensor(
            classifiers.IMAGENET_STD
        )[:, None, None]
        logits = network(normalized[None])[0]
        assert s.probability == pytest.approx(logits.softmax(0)[s.target].item(), rel=1e-4)
        assert s.rank == int((logits > logits[s.target]).sum()) + 1
    printed = capsys.readouterr().out
    assert "summary: 3 pictures" in printed and "259 Pomeranian" in printed


def test_sixteen_bit_pngs_are_read_in_the_unit_range(tmp_path):
    path = tmp_path / "1_goldfish.png"
    Image.fromarray(np.full((8, 8), 65535, dtype=np.uint16)).save(path)
    picture = evaluate.load_picture(path, 8)
    assert picture.shape == (3, 8, 8) and picture.max().item() == pytest.approx(1.0)


def test_classes_must_match_the_pictures(tmp_path):
    write_pictures(tmp_path, [1, 259])
    with pytest.raises(ConfigError, match="1 classes for 2 pictures"):
        evaluate.main([str(tmp_path), "--classifier", NETWORK, "--weights", "null", "--classes", "[1]"])
    with pytest.raises(ConfigError, match="does not exist"):
        evaluate.main([str(tmp_path / "nowhere.png"), "--classifier", NETWORK, "--weights", "null"])
