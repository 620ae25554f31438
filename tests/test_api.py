"""The Python API: the same pictures as the command line, for a module instance or a name."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from maxclass_lightning import ClassVisualizer, visualize
from maxclass_lightning.cli import main
from tests.networks import tiny_imagenet_classifier

TINY = "tests.networks:tiny_imagenet_classifier"
SETTINGS = ["--model.classes=[259, 1]", "--model.image_size=32", "--trainer.max_steps=3"]


def test_api_makes_the_command_lines_pictures(tmp_path):
    main(["fit", "--config", "quick", f"--model.classifier={TINY}", "--model.weights=null", *SETTINGS,
          f"--trainer.logger.init_args.save_dir={tmp_path / 'cli'}"])  # fmt: skip
    result = visualize(
        TINY,
        [259, 1],
        recipe="quick",
        steps=3,
        image_size=32,
        weights=None,
        logger=False,
        default_root_dir=str(tmp_path),
    )
    (images,) = (tmp_path / "cli").glob("quick/version_0/images")
    assert result.names == ["259_pomeranian", "1_goldfish"]
    for name, picture in zip(result.names, result.pictures):
        with Image.open(images / f"{name}.png") as png:
            assert np.array_equal(np.asarray(png.convert("RGB")), np.asarray(picture))
    # The scores are the network's on the returned images, in float64.
    network = result.module.classifier
    logits = network(result.images.double().to(next(network.parameters()).dtype)).double()
    torch.testing.assert_close(result.score, logits[:, [259, 1]].diagonal(), rtol=1e-5, atol=1e-5)
    assert result.images.shape == (2, 3, 32, 32)
    assert ((result.rank >= 1) & (result.rank <= 1000)).all() and (
        (0 < result.probability) & (result.probability < 1)
    ).all()


def test_module_instance_is_used_and_kept_out_of_checkpoints(tmp_path):
    torch.manual_seed(0)
    network = tiny_imagenet_classifier()
    before = {k: v.clone() for k, v in network.state_dict().items()}
    result = visualize(network, "pomeranian", recipe="quick", steps=2, image_size=32, default_root_dir=str(tmp_path),
                       logger=False, enable_checkpointing=True)  # fmt: skip
    assert result.module.classifier is network and not any(p.requires_grad for p in network.parameters())
    assert all(torch.equal(before[k], v) for k, v in network.state_dict().items())
    assert result.module.hparams.classifier == "Sequential"
    (checkpoint,) = tmp_path.rglob("*.ckpt")
    saved = torch.load(checkpoint, map_location="cpu", weights_only=False)
    assert not any(isinstance(v, torch.nn.Module) for v in saved["hyper_parameters"].values())
    loaded = ClassVisualizer.load_from_checkpoint(checkpoint, classifier=network)
    torch.testing.assert_close(loaded.render(), result.module.render())
    folder = result.save(tmp_path / "out")
    assert sorted(p.name for p in folder.iterdir()) == [
        "259_pomeranian.png",
        "contact_sheet.png",
        "grid.png",
        "scores.json",
    ]
    assert result._repr_png_().startswith(b"\x89PNG")
