"""Classes owned by processes: a class's result depends on nothing but (seed, class), no image
crosses processes during a step, and checkpoints resume on any number of processes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys

import pytest
import torch

from tests.conftest import ROOT, fit_in_process, run_dir, run_module, tiny_args
from tests.test_errors import fails_cleanly
from tests.test_resilience import interrupt_after_a_few_steps

#: One xdist worker runs this file (`--dist loadgroup`), so that its module-scoped fixtures run once.
pytestmark = pytest.mark.xdist_group("distributed")

CLASSES = [1, 259, 948]
# Two random views per image per step, so augmentations are keyed too; in float64, so that the
# comparison is exact up to float64 rounding (Adam at lr 5 amplifies float32 rounding of
# near-zero gradients to about 1e-4 after 5 steps).
COMMON = [
    "--trainer.max_steps=5",
    "--trainer.precision=64-true",
    "--model.views=2",
    "--model.transforms=maxclass_lightning.transforms.RandomViews",
    # The image averaged over the last 2 steps: the averages are gathered and sliced like the images.
    "--model.average_steps=2",
]
#: float64 rounding only: batched convolutions may sum in another order (measured: 1.2e-12 after
#: 5 steps on pixels of about 5; float32 rounding would show as 1e-4).
EXACT = {"rtol": 0, "atol": 1e-10}
#: Pixels of one 32-px image: the smallest image transfer a collective could make.
IMAGE_ELEMENTS = 3 * 32 * 32


def owned(devices: int, *extra: str) -> list[str]:
    return [f"--trainer.devices={devices}", "--trainer.strategy=owned_classes", *extra]


def final_images(run) -> dict[int, torch.Tensor]:
    """Class index -> the optimized image tensor stored in the run's checkpoint."""
    (path,) = (run / "checkpoints").glob("*.ckpt")
    checkpoint = torch.load(path, weights_only=True)
    classes = checkpoint["hyper_parameters"]["classes"]
    images = checkpoint["state_dict"]["image.pixels"]
    assert len(images) == len(classes)
    return {int(c): image for c, image in zip(classes, images)}


def records(folder, ranks) -> list[dict]:
    return [json.loads(line) for rank in ranks for line in (folder / f"rank{rank}.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def single_process(tmp_path_factory):
    save_dir = tmp_path_factory.mktemp("single")
    fit_in_process(tiny_args(save_dir, f"--model.classes={CLASSES}", *COMMON))
    return final_images(run_dir(save_dir))


def test_class_image_independent_of_batch_and_batch_size(single_process, tmp_path):
    fit_in_process(tiny_args(tmp_path / "alone", "--model.classes=[259]", *COMMON))
    fit_in_process(tiny_args(tmp_path / "chunked", f"--model.classes={CLASSES}", "--model.batch_size=1", *COMMON))
    pomeranian = single_process[259]
    torch.testing.assert_close(final_images(run_dir(tmp_path / "alone"))[259], pomeranian, **EXACT)
    for index, image in final_images(run_dir(tmp_path / "chunked")).items():
        torch.testing.assert_close(image, single_process[index], **EXACT)


@pytest.fixture(scope="module")
def resumed_on_two_processes(tmp_path_factory):
    """A one-process checkpoint of step 3 resumed on two owning processes to step 5, chunked
    (batch size 1), with each process's work and collectives recorded: one launch serves the
    ownership and the resume tests (each launch pays two interpreters' imports)."""
    tmp_path = tmp_path_factory.mktemp("resumed")
    fit_in_process(tiny_args(tmp_path / "first", f"--model.classes={CLASSES}", *COMMON, "--trainer.max_steps=3"))
    checkpoint = run_dir(tmp_path / "first") / "checkpoints" / "last.ckpt"
    result = run_module(
        tiny_args(
            tmp_path / "owned",
            f"--model.classes={CLASSES}",
            *COMMON,
            *owned(2),
            "--model.batch_size=1",  # chunked steps too
            "--trainer.callbacks+=tests.work_log.RecordWork",
            f"--trainer.callbacks.folder={tmp_path / 'work'}",
            "--trainer.callbacks+=tests.ownership_probes.Collectives",
            f"--trainer.callbacks.folder={tmp_path / 'comm'}",
            f"--ckpt_path={checkpoint}",
        )
    )
    assert result.returncode == 0, result.stderr
    return tmp_path, checkpoint


def test_two_processes_own_their_classes_and_match_one_process(single_process, resumed_on_two_processes):
    folder, _ = resumed_on_two_processes

    # The same images as one process computed, gathered into one checkpoint.
    run = run_dir(folder / "owned")
    for index, image in final_images(run).items():
        torch.testing.assert_close(image, single_process[index], **EXACT)

    # Process 0 holds classes 1 and 259, process 1 Granny Smith: each computes all views of its
    # own images (rows local to the process) at every step, and nothing else.
    work = records(folder / "work", (0, 1))
    assert sorted((record["rank"], record["step"]) for record in work) == [(0, 3), (0, 4), (1, 3), (1, 4)]
    expected = {0: {(row, view) for row in range(2) for view in range(2)}, 1: {(0, 0), (0, 1)}}
    for record in work:
        assert {tuple(item) for item in record["items"]} == expected[record["rank"]]

    # No collective during a step, except the logging steps' scalars (every 2nd step): never an image.
    steps = records(folder / "comm", (0, 1))
    assert sorted(record["step"] % 2 for record in steps) == [0, 0, 1, 1]
    for record in steps:
        moved = [elements for _, elements in record["collectives"]]
        if record["step"] % 2:
            assert moved == [], record
        else:
            assert moved and max(moved) < IMAGE_ELEMENTS, record

    # One set of outputs, each picture written once.
    assert len(list(run.glob("events.out.tfevents.*"))) == 1
    assert sorted(p.name for p in (run / "images").iterdir()) == [
        "1_goldfish.png",
        "259_pomeranian.png",
        "948_granny_smith.png",
        "contact_sheet.png",
        "grid.png",
    ]
    assert len(list((folder / "owned" / "maxclass").iterdir())) == 1


def test_a_process_owning_no_class(single_process, tmp_path):
    """More processes than classes: process 1 owns nothing, steps with the group and writes nothing."""
    result = run_module(tiny_args(tmp_path, "--model.classes=[259]", *COMMON, *owned(2)))
    assert result.returncode == 0, result.stderr
    run = run_dir(tmp_path)
    torch.testing.assert_close(final_images(run)[259], single_process[259], **EXACT)
    pngs = sorted(p.name for p in (run / "images").glob("*.png"))
    assert pngs == ["259_pomeranian.png", "contact_sheet.png", "grid.png"]


def test_resume_on_the_same_or_another_number_of_processes(single_process, resumed_on_two_processes, tmp_path):
    """A one-process checkpoint resumes on two processes (the launch above) and on one (two to one:
    the Ctrl-C test)."""
    folder, checkpoint = resumed_on_two_processes
    fit_in_process(tiny_args(tmp_path / "one", f"--model.classes={CLASSES}", *COMMON, f"--ckpt_path={checkpoint}"))
    for run in (folder / "owned", tmp_path / "one"):
        for index, image in final_images(run_dir(run)).items():
            torch.testing.assert_close(image, single_process[index], **EXACT)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


#: What a launcher or an earlier Lightning run in this process may have left in the environment,
#: which would steer a new launch's rendezvous (torchrun sets its own).
LAUNCH_VARIABLES = ("MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK")


def launch_environment() -> dict[str, str]:
    clean = {key: value for key, value in os.environ.items() if key not in LAUNCH_VARIABLES}
    return {**clean, "PYTHONPATH": str(ROOT)}


def test_two_machines_simulated_with_torchrun_match_one_process(single_process, tmp_path):
    """Two ``torchrun`` launches on 127.0.0.1, as on two machines (one process each, node ranks 0
    and 1): the same images as one process, every PNG written once."""
    port = _free_port()
    logs = [(tmp_path / f"node{node}.log").open("w") for node in (0, 1)]
    launches = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--nnodes=2",
                f"--node-rank={node}",
                "--nproc-per-node=1",
                "--master-addr=127.0.0.1",
                f"--master-port={port}",
                "-m",
                "maxclass_lightning",
                *tiny_args(tmp_path, f"--model.classes={CLASSES}", *COMMON, *owned(1), "--trainer.num_nodes=2"),
            ],
            cwd=ROOT,
            # Files, not pipes: a launch whose pipe nobody reads blocks once it is full, and the
            # other machine then waits for it forever.
            stdout=subprocess.DEVNULL,
            stderr=logs[node],
            env=launch_environment(),
        )
        for node in (0, 1)
    ]
    try:
        for launch in launches:
            launch.wait(timeout=180)
    finally:
        for launch, log in zip(launches, logs):
            launch.kill()
            log.close()
    for node, launch in enumerate(launches):
        assert launch.returncode == 0, (tmp_path / f"node{node}.log").read_text()[-3000:]
    run = run_dir(tmp_path)
    for index, image in final_images(run).items():
        torch.testing.assert_close(image, single_process[index], **EXACT)
    pngs = sorted(p.name for p in (run / "images").glob("*.png"))
    assert pngs == ["1_goldfish.png", "259_pomeranian.png", "948_granny_smith.png", "contact_sheet.png", "grid.png"]


def test_ctrl_c_on_two_processes_gathers_one_checkpoint_of_every_class(tmp_path):
    """Ctrl-C reaches every process of the group; they agree on a step, each hands its share of the
    images to rank 0, which writes one checkpoint that resumes on one process."""
    steps = 400
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "maxclass_lightning",
            *tiny_args(
                tmp_path / "runs",
                f"--model.classes={CLASSES}",
                *COMMON,
                *owned(2),
                f"--trainer.max_steps={steps}",
                "--trainer.callbacks+=tests.work_log.RecordWork",
                f"--trainer.callbacks.folder={tmp_path / 'work'}",
            ),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    interrupt_after_a_few_steps(process, tmp_path / "work", lambda: os.killpg(process.pid, signal.SIGINT))
    _, stderr = process.communicate(timeout=120)
    assert process.returncode != 0 and "Resume with" in stderr, stderr
    last = run_dir(tmp_path / "runs") / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(last, weights_only=True)
    stopped_at = checkpoint["global_step"]
    assert 3 <= stopped_at < steps
    assert checkpoint["state_dict"]["image.pixels"].shape[0] == len(CLASSES)
    (moments,) = checkpoint["optimizer_states"][0]["state"].values()
    assert moments["exp_avg"].shape[0] == len(CLASSES)

    fit_in_process(
        tiny_args(
            tmp_path / "resumed",
            f"--model.classes={CLASSES}",
            *COMMON,
            f"--trainer.max_steps={stopped_at + 2}",
            f"--ckpt_path={last}",
        )
    )
    assert (
        torch.load(run_dir(tmp_path / "resumed") / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
        == stopped_at + 2
    )


def test_replicating_ddp_is_refused_in_one_line_before_processes_start(capsys, tmp_path):
    message = fails_cleanly(capsys, tmp_path, "--model.classes=[259]", "--trainer.devices=2", "--trainer.strategy=ddp")
    assert message.startswith("error: trainer.strategy is DDPStrategy")
    assert "--trainer.strategy owned_classes" in message
