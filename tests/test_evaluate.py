"""`evaluate`: scores what the user sees, PNGs read back from disk, with any classifier."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from maxclass_lightning import classifiers, evaluate
from maxclass_lightning.errors import ConfigError
from tests.conftest import fit_in_process, run_dir, tiny_args
from tests.networks import OWN_MEAN

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


def test_evaluate_normalizes_as_fit_does_for_a_network_with_its_own_statistics(tmp_path):
    """A network whose mean and std are not ImageNet's reads the exported picture in ``evaluate``
    exactly as the run that made it did (float64 on both sides)."""
    own = "tests.networks:tiny_classifier_with_own_statistics"
    cli = fit_in_process(tiny_args(tmp_path, f"--model.classifier={own}", "--model.normalize=true",
                                   "--model.classes=[259]", "--trainer.precision=64-true"))  # fmt: skip
    assert tuple(cli.model.normalize.mean) == OWN_MEAN
    images = run_dir(tmp_path) / "images"
    (score,) = evaluate.main([str(images), "--classifier", own, "--weights", "null"])
    picture = evaluate.load_picture(images / "259_pomeranian.png", 32).double()
    with torch.no_grad():
        made = cli.model.scores(picture[None].to(cli.model.device))[0].softmax(0)[259].item()
        imagenet = (
            picture - torch.tensor(classifiers.IMAGENET_MEAN, dtype=torch.float64)[:, None, None]
        ) / torch.tensor(classifiers.IMAGENET_STD, dtype=torch.float64)[:, None, None]
        other = cli.model.classifier(imagenet[None])[0].softmax(0)[259].item()
    assert score.probability == pytest.approx(made, rel=1e-5)
    assert score.probability != pytest.approx(other, rel=1e-3)  # ImageNet's statistics would read it otherwise


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


def test_one_picture_takes_one_bare_class(tmp_path):
    """``--classes 285`` for a single picture, as ``--classes '[285]'``; the picture's file name says
    another class, and the one given wins."""
    write_pictures(tmp_path, [1])
    (picture,) = tmp_path.glob("*.png")
    bare = evaluate.main([str(picture), "--classifier", NETWORK, "--weights", "null", "--classes", "285"])
    listed = evaluate.main([str(picture), "--classifier", NETWORK, "--weights", "null", "--classes", "[285]"])
    assert [score.target for score in bare] == [score.target for score in listed] == [285]
