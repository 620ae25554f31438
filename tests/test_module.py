"""The LightningModule's contract: frozen classifier, seed-exact optimization, checkpoints."""

from __future__ import annotations

from pathlib import Path

import torch
from torchvision.io import read_image

from maxclass_lightning import ClassVisualizer, classifiers
from maxclass_lightning.images import PixelImage
from maxclass_lightning.transforms import RandomViews, resized
from tests.conftest import fit_in_process, run_dir, tiny_args


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


def test_lr_scheduler_steps_once_per_optimizer_step(tmp_path):
    """A cosine schedule over 4 steps in the app gives the plain loop's image with torch's scheduler
    stepped after each optimizer step (float64); with no schedule the image differs."""
    tiny = "tests.networks:tiny_imagenet_classifier"
    args = ["--model.classes=[259]", "--trainer.precision=64-true", "--trainer.enable_checkpointing=false"]
    schedule = ["--model.lr_scheduler=torch.optim.lr_scheduler.CosineAnnealingLR", "--model.lr_scheduler.T_max=4"]
    cli = fit_in_process(tiny_args(tmp_path / "cosine", *args, *schedule))
    constant = fit_in_process(tiny_args(tmp_path / "constant", *args)).model.image.pixels.detach()
    network = classifiers.build_classifier(tiny, None, seed=0).double()
    image = PixelImage([259], 32, seed=0).pixels.detach().double().requires_grad_(True)
    optimizer = torch.optim.AdamW([image], lr=5.0, weight_decay=0.1)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=4)
    for _ in range(4):
        (-network(image)[0, 259]).backward()
        optimizer.step()
        optimizer.zero_grad()
        scheduler.step()
    torch.testing.assert_close(cli.model.image.pixels.detach(), image.detach(), rtol=0, atol=1e-9)
    assert not torch.allclose(constant, image.detach(), rtol=0, atol=1e-3)
    assert cli.trainer.optimizers[0].param_groups[0]["lr"] == scheduler.get_last_lr()[0] == 0.0


def test_average_steps_export_the_average_of_the_last_steps(tmp_path):
    """Averaging the last 2 of 4 steps at decay 0.5: the image after fit (exported, checkpointed)
    is the plain loop's (step 3 + step 4) / 2, not its last step's image (float64)."""
    args = ["--model.classes=[259]", "--trainer.precision=64-true", "--model.average_decay=0.5"]
    cli = fit_in_process(tiny_args(tmp_path, *args, "--model.average_steps=0.5"))
    network = classifiers.build_classifier("tests.networks:tiny_imagenet_classifier", None, seed=0).double()
    image = PixelImage([259], 32, seed=0).pixels.detach().double().requires_grad_(True)
    optimizer = torch.optim.AdamW([image], lr=5.0, weight_decay=0.1)
    steps = []
    for _ in range(4):
        (-network(image)[0, 259]).backward()
        optimizer.step()
        optimizer.zero_grad()
        steps.append(image.detach().clone())
    average = (steps[2] + steps[3]) / 2
    torch.testing.assert_close(cli.model.image.pixels.detach(), average, rtol=0, atol=1e-9)
    assert not torch.allclose(cli.model.image.pixels.detach(), steps[3], rtol=0, atol=1e-3)
    saved = torch.load(run_dir(tmp_path) / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    torch.testing.assert_close(saved["image.pixels"], average, rtol=0, atol=1e-9)
    torch.testing.assert_close(saved["image_average.pixels"], steps[3], rtol=0, atol=1e-9)
    # The PNG is the average through the display pipeline, read back from disk (8-bit rounding).
    png = read_image(str(run_dir(tmp_path) / "images" / "259_pomeranian.png")).double() / 255
    for image, exported in ((average, True), (steps[3], False)):
        picture = cli.model.display(image.float()).double()[0]
        assert torch.allclose(png, picture, rtol=0, atol=1 / 255 + 1e-6) == exported


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


class ViewZeroIsThePictureFrom(RandomViews):
    """Reference for ``exact_view_steps``: random views whose view 0 is the image itself, resized,
    from step ``start`` on (a view's key is seed, class, view, step)."""

    def __init__(self, start: int = 0, **options) -> None:
        super().__init__(**options)
        self.start = start

    def forward(self, images: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        views = super().forward(images, keys)
        exact = (keys[:, 2] == 0) & (keys[:, 3] >= self.start)
        return torch.where(exact[:, None, None, None], resized(images, views.shape[-1]), views)


def test_exact_view_steps_score_the_picture_itself_in_the_last_steps(tmp_path):
    """2 of 4 steps (or 0.5 of them), 2 views, 32-px images seen at 24 px: the same images, bit for
    bit, as views whose view 0 is the resized picture from step 2 on; not the same as views alone."""
    common = [
        "--model.classes=[259,1]",
        "--model.views=2",
        "--trainer.precision=64-true",
        "--trainer.enable_checkpointing=false",
        "--model.transforms.rotate=30",
        "--model.transforms.output_size=24",
    ]

    def images(name: str, transforms: str, *extra: str) -> torch.Tensor:
        cli = fit_in_process(
            tiny_args(tmp_path / name, *common[:4], f"--model.transforms={transforms}", *common[4:], *extra)
        )
        return cli.model.image.pixels.detach()

    exact = images("exact", "maxclass_lightning.transforms.RandomViews", "--model.exact_view_steps=2")
    reference = images("reference", "tests.test_module.ViewZeroIsThePictureFrom", "--model.transforms.start=2")
    augmented = images("augmented", "maxclass_lightning.transforms.RandomViews")
    assert torch.equal(exact, reference)
    assert not torch.allclose(exact, augmented)
    # A fraction of the run: half of 4 steps is 2.
    half = images("half", "maxclass_lightning.transforms.RandomViews", "--model.exact_view_steps=0.5")
    assert torch.equal(half, exact)


def test_an_image_too_large_for_memory_is_one_line_before_anything_is_allocated(tmp_path, capsys):
    from tests.test_errors import fails_cleanly

    message = fails_cleanly(capsys, tmp_path / "runs", "--model.image_size=200000")
    assert "model.image_size is 200000: 1 image(s) need about" in message
    assert "GiB available; give a smaller model.image_size such as 224" in message
    needed = float(message.split("need about ")[1].split(" GiB")[0].replace(",", ""))
    assert needed > 3 * 200000**2 * 4 * 5 / 2**30  # at least the pixels, their gradients and Adam's moments
