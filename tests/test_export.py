"""Export of many classes: one PNG per class, a grid and a labelled contact sheet."""

from __future__ import annotations

import torch
from PIL import Image

from maxclass_lightning.display import Display, contact_sheet, grid, grid_tiles
from tests.conftest import fit_in_process, run_dir, tiny_args


def test_all_classes_in_one_run_export_one_png_each(tmp_path):
    fit_in_process(
        tiny_args(
            tmp_path,
            "--model.classes=all",
            "--model.classifier=tests.networks:tiny_imagenet_classifier",
            "--model.batch_size=300",
            "--trainer.max_steps=2",
            "--model.display.upsample=1",  # 32-px pictures: PNG encoding is most of this test's time
        )
    )
    images = run_dir(tmp_path) / "images"
    pngs = sorted(p.name for p in images.glob("*.png"))
    assert len(pngs) == 1000 + 2  # every class, the grid and the contact sheet
    assert "259_pomeranian.png" in pngs and "999_toilet_tissue.png" in pngs
    with Image.open(images / "contact_sheet.png") as sheet:
        assert sheet.width <= 4096 + 32 * 8 and sheet.height > sheet.width // 2


def test_display_matches_the_seed_pipeline():
    from torchvision.transforms.functional import adjust_sharpness

    images = torch.randn(2, 3, 16, 16) * 3
    upsampled = torch.nn.Upsample(scale_factor=2, mode="bilinear")(images[:1])
    sharpened = adjust_sharpness(upsampled, sharpness_factor=0.0)
    seed = (sharpened - sharpened.min()) / (sharpened.max() - sharpened.min())
    shown = Display()(images)
    assert shown.shape == (2, 3, 32, 32)
    torch.testing.assert_close(shown[:1], seed)
    assert shown.amin(dim=(1, 2, 3)).tolist() == [0, 0] and shown.amax(dim=(1, 2, 3)).tolist() == [1, 1]


def test_grid_tiles_shrink_to_fit_and_contact_sheet_has_labels():
    pictures = torch.rand(100, 3, 512, 512)
    tiles = grid_tiles(pictures, 100)
    assert tiles.shape[-1] == 4096 // 10
    assert grid(tiles).shape[-1] <= 4096 + 2 * 11
    sheet = contact_sheet(tiles[:3], ["1 goldfish", "259 Pomeranian", "948 Granny Smith"])
    pixels = torch.tensor(list(sheet.getdata())).view(sheet.height, sheet.width, 3)
    label_band = pixels[4 + 409 : 4 + 409 + 20]  # under the first row of tiles
    assert (label_band.sum(-1) < 200).any()  # dark text drawn on the white band
