"""The LightningModule's contract: frozen classifier, seed-exact optimization, checkpoints."""

from __future__ import annotations

from pathlib import Path

import torch

from maxclass_lightning import ClassVisualizer, classifiers
from maxclass_lightning.images import PixelImage


def test_classifier_stays_in_eval_mode_when_module_trains():
    module = ClassVisualizer(classes=[259], image_size=32, weights=None)
    module.train()
    assert module.training and module.image.training
    assert not module.classifier.training
    images = module.render()
    assert torch.equal(module.scores(images), module.scores(images))  # dropout off


def test_fit_equals_the_seed_plain_loop(in_process_fit):
    """The app's image after fit is the seed's loop's image: same init, loss, optimizer, steps.

    In float64 on both sides: at lr 5 Adam's normalized step turns float32 rounding differences in
    near-zero gradients into visible ones, and those differ between CPUs' kernels."""
    cli = in_process_fit("--model.classes=[259]", "--trainer.max_steps=3", "--trainer.precision=64-true")
    network = classifiers.build_classifier("vgg16", None, seed=0).double()
    image = PixelImage([259], 32, seed=0).pixels.detach().double().requires_grad_(True)
    optimizer = torch.optim.AdamW([image], lr=5.0, weight_decay=0.1)
    for _ in range(3):
        loss = -network(image)[0, 259]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    torch.testing.assert_close(cli.model.image.pixels.detach(), image.detach(), rtol=0, atol=1e-9)


def test_fit_leaves_classifier_weights_bitwise_unchanged(in_process_fit):
    cli = in_process_fit("--model.classes=[259,1]", "--trainer.max_steps=2")
    fresh = classifiers.build_classifier("vgg16", None, seed=0)
    after = cli.model.classifier.state_dict()
    assert all(torch.equal(after[name], value) for name, value in fresh.state_dict().items())
    assert not cli.model.classifier.training


def test_batch_size_changes_memory_not_results(in_process_fit):
    # In float64, so that what is compared is the computation, not float32 summation order (which
    # Adam at lr 5 amplifies for near-zero gradients: about 1e-4 after 5 steps).
    args = [
        "--model.classes=[1,259,948]",
        "--trainer.max_steps=3",
        "--trainer.precision=64-true",
        "--model.classifier=tests.networks:tiny_imagenet_classifier",
    ]
    whole = in_process_fit(*args).model.image.pixels.detach()
    chunked = in_process_fit(*args, "--model.batch_size=2").model.image.pixels.detach()
    torch.testing.assert_close(chunked, whole, rtol=1e-10, atol=1e-10)


def test_checkpoint_holds_images_not_classifier_and_loads_back(in_process_fit):
    cli = in_process_fit("--model.classes=[259]", "--trainer.max_steps=2")
    (checkpoint_path,) = (Path(cli.trainer.log_dir) / "checkpoints").glob("*.ckpt")
    checkpoint = torch.load(checkpoint_path, weights_only=False)
    assert list(checkpoint["state_dict"]) == ["image.pixels"]
    assert checkpoint["global_step"] == 2
    loaded = ClassVisualizer.load_from_checkpoint(checkpoint_path)
    assert torch.equal(loaded.image.pixels, cli.model.image.pixels.detach())
    assert loaded.classes == [259]
