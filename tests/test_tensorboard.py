"""What a user watching TensorBoard sees: read back from the event files and from a live server."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import numpy as np
import pytest
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.conftest import fit_in_process, run_dir, tiny_args

#: One xdist worker runs this file (`--dist loadgroup`), so that its module-scoped fixtures run once.
pytestmark = pytest.mark.xdist_group("tensorboard")

STEPS = 8
LOG_EVERY = 3
SNAPSHOT_EVERY = 2


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A finished 2-class run with image snapshots every 2 steps and scalars every 3."""
    save_dir = tmp_path_factory.mktemp("tensorboard")
    fit_in_process(
        tiny_args(
            save_dir,
            "--model.classes=[259,goldfish]",
            f"--trainer.max_steps={STEPS}",
            f"--trainer.log_every_n_steps={LOG_EVERY}",
            "--trainer.callbacks+=maxclass_lightning.callbacks.ImageLogger",
            f"--trainer.callbacks.every_n_steps={SNAPSHOT_EVERY}",
        )
    )
    return run_dir(save_dir)


def events(run) -> EventAccumulator:
    accumulator = EventAccumulator(str(run), size_guidance={"images": 0, "scalars": 0})
    accumulator.Reload()
    return accumulator


def test_image_snapshots_per_class_and_grid_up_to_the_last_step(finished_run):
    accumulator = events(finished_run)
    expected_steps = [0, 2, 4, 6, 8]  # the initial images, every 2 steps, and the last step
    for tag in ["images/grid", "images/259_pomeranian", "images/1_goldfish"]:
        snapshots = accumulator.Images(tag)
        assert [s.step for s in snapshots] == expected_steps, tag
        pixels = np.asarray(Image.open(io.BytesIO(snapshots[-1].encoded_image_string)).convert("RGB"))
        assert pixels.min() < 64 and pixels.max() > 192  # min-max display spans the range
    # Snapshots are at the optimized size (32 px); the exported PNGs get the 2x upsample.
    assert (
        accumulator.Images("images/259_pomeranian")[-1].width,
        accumulator.Images("images/1_goldfish")[-1].height,
    ) == (32, 32)


def test_scalars_per_class_and_image_statistics(finished_run):
    accumulator = events(finished_run)
    tags = set(accumulator.Tags()["scalars"])
    for name in ["259_pomeranian", "1_goldfish"]:
        assert {f"score/{name}", f"prob/{name}", f"rank/{name}"} <= tags
    assert {"loss", "image/mean", "image/std", "image/min", "image/max"} <= tags
    scores = accumulator.Scalars("score/259_pomeranian")
    assert [s.step for s in scores] == [0, 3, 6, 8]  # every 3 steps, and the final images
    assert scores[-1].value > scores[0].value
    probabilities = [s.value for s in accumulator.Scalars("prob/1_goldfish")]
    assert all(0 <= p <= 1 for p in probabilities)
    ranks = [s.value for s in accumulator.Scalars("rank/1_goldfish")]
    assert all(1 <= r <= 1000 for r in ranks)  # 1: the classifier's top class
    loss = [s.value for s in accumulator.Scalars("loss")]
    assert loss[-1] < loss[0]


def test_hyperparameters_include_optimizer_and_steps(finished_run):
    hparams = (finished_run / "hparams.yaml").read_text()
    classifier = "classifier: tests.networks:tiny_imagenet_classifier"
    for line in ["max_steps: 8", "optimizer: AdamW", "lr: 5.0", classifier, "image_size: 32"]:
        assert line in hparams
    assert "classes: 259_pomeranian, 1_goldfish" in hparams
    # No placeholder hp_metric of -1: the first value is the initial mean probability.
    assert all(s.value >= 0 for s in events(finished_run).Scalars("hp_metric"))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


def test_live_tensorboard_server_serves_the_run_images(finished_run):
    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tensorboard.main",
            "--logdir",
            str(finished_run.parent),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--samples_per_plugin",
            "images=100",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}/data/plugin/images"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                tags = json.loads(_get(f"{base}/tags"))
                if tags:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "TensorBoard did not serve image tags within 60 s"
            time.sleep(0.5)
        run = finished_run.name
        assert {"images/grid", "images/259_pomeranian", "images/1_goldfish"} <= set(tags[run])
        query = urllib.parse.urlencode({"run": run, "tag": "images/259_pomeranian"})
        snapshots = json.loads(_get(f"{base}/images?{query}"))
        assert [s["step"] for s in snapshots] == [0, 2, 4, 6, 8]
        png = _get(f"{base}/individualImage?{snapshots[-1]['query']}")
        with Image.open(io.BytesIO(png)) as picture:
            assert picture.size == (32, 32)
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_the_final_scores_and_the_gallery_are_written_beside_the_images(finished_run):
    """``scores.json`` holds the scalars' last points; the gallery page lists every picture."""
    import json

    accumulator = events(finished_run)
    records = {record["name"]: record for record in json.loads((finished_run / "scores.json").read_text())}
    assert sorted(records) == ["1_goldfish", "259_pomeranian"]
    for name, record in records.items():
        assert record["probability"] == pytest.approx(accumulator.Scalars(f"prob/{name}")[-1].value, rel=1e-6)
        assert record["rank"] == accumulator.Scalars(f"rank/{name}")[-1].value
        assert record["class"] == int(name.split("_")[0])
    page = (finished_run / "gallery" / "index.html").read_text()
    assert "259_pomeranian" in page and "1_goldfish" in page
    assert len(list((finished_run / "gallery" / "thumbnails").iterdir())) == 2
