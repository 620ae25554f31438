"""Many classes, several processes: a class's result depends on nothing but (seed, class)."""

from __future__ import annotations

import json

import pytest
import torch

from tests.conftest import run_dir, run_module, tiny_args

CLASSES = [1, 259, 948]
# Two random views per image per step, so augmentations are sharded and keyed too. In float64, so
# that what is compared is the computation, not float32 summation order (which Adam at lr 5
# amplifies for near-zero gradients, to about 1e-4 after 5 steps).
COMMON = [
    "--trainer.max_steps=5",
    "--trainer.precision=64-true",
    "--model.views=2",
    "--model.transforms=maxclass_lightning.transforms.RandomViews",
]


def final_images(run) -> dict[int, torch.Tensor]:
    """Class index -> the optimized image tensor stored in the run's checkpoint."""
    (path,) = (run / "checkpoints").glob("*.ckpt")
    checkpoint = torch.load(path, weights_only=False)
    classes = checkpoint["hyper_parameters"]["classes"]
    images = checkpoint["state_dict"]["image.pixels"]
    return {int(c): image for c, image in zip(classes, images)}


@pytest.fixture(scope="module")
def single_process(tmp_path_factory):
    save_dir = tmp_path_factory.mktemp("single")
    result = run_module(tiny_args(save_dir, f"--model.classes={CLASSES}", *COMMON))
    assert result.returncode == 0, result.stderr
    return final_images(run_dir(save_dir))


def test_class_image_independent_of_batch_and_batch_size(single_process, tmp_path):
    alone = run_module(tiny_args(tmp_path / "alone", "--model.classes=[259]", *COMMON))
    assert alone.returncode == 0, alone.stderr
    chunked = run_module(tiny_args(tmp_path / "chunked", f"--model.classes={CLASSES}", "--model.batch_size=1", *COMMON))
    assert chunked.returncode == 0, chunked.stderr
    pomeranian = single_process[259]
    torch.testing.assert_close(final_images(run_dir(tmp_path / "alone"))[259], pomeranian, rtol=0, atol=1e-4)
    for index, image in final_images(run_dir(tmp_path / "chunked")).items():
        torch.testing.assert_close(image, single_process[index], rtol=0, atol=1e-4)


def test_two_ddp_processes_split_the_work_and_match_one_process(single_process, tmp_path):
    work_log = tmp_path / "work"
    result = run_module(
        tiny_args(
            tmp_path / "ddp",
            f"--model.classes={CLASSES}",
            *COMMON,
            "--trainer.devices=2",
            "--trainer.strategy=ddp",
            "--model.batch_size=1",  # the chunked step under DDP too
            "--trainer.callbacks+=tests.work_log.RecordWork",
            f"--trainer.callbacks.folder={work_log}",
        )
    )
    assert result.returncode == 0, result.stderr

    # The same images as one process computed.
    run = run_dir(tmp_path / "ddp")
    for index, image in final_images(run).items():
        torch.testing.assert_close(image, single_process[index], rtol=0, atol=1e-4)

    # Disjoint work: at every step the two processes' items partition all (class, view) pairs.
    records = [
        json.loads(line) for rank in (0, 1) for line in (work_log / f"rank{rank}.jsonl").read_text().splitlines()
    ]
    for step in range(5):
        shares = [{tuple(item) for item in r["items"]} for r in records if r["step"] == step]
        assert len(shares) == 2 and all(shares)
        assert not shares[0] & shares[1]
        assert shares[0] | shares[1] == {(position, view) for position in range(3) for view in range(2)}

    # One set of outputs, written once.
    assert len(list(run.glob("events.out.tfevents.*"))) == 1
    assert sorted(p.name for p in (run / "images").iterdir()) == [
        "1_goldfish.png",
        "259_pomeranian.png",
        "948_granny_smith.png",
        "contact_sheet.png",
        "grid.png",
    ]
    assert len(list((tmp_path / "ddp" / "maxclass").iterdir())) == 1


def test_more_processes_than_work_items(tmp_path):
    """One class, one view, two processes: the second has nothing to do and must not hang or fail."""
    result = run_module(
        tiny_args(
            tmp_path,
            "--model.classes=[259]",
            "--trainer.max_steps=2",
            "--model.image=maxclass_lightning.images.FourierImage",
            "--trainer.devices=2",
            "--trainer.strategy=ddp",
        ),
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    assert (run_dir(tmp_path) / "images" / "259_pomeranian.png").is_file()
