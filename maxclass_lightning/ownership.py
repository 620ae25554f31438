"""Classes owned by processes: each process holds, optimizes and checkpoints only its own images.

Every class image is independent of every other, so there is nothing to synchronize during a
step: a process owns a contiguous block of the run's classes (all samples of a class together),
holds only those images and their optimizer state, and computes their whole gradient itself.
``ClassOwnership`` is Lightning's ``DDPStrategy`` (process groups, launchers, ``torchrun``,
``srun``, ``num_nodes``, ``reduce``, ``barrier``) minus the ``DistributedDataParallel`` wrapper:
DDP would all-reduce every image gradient each step, and cannot even be told to ignore all
trainable parameters (it refuses a module with none left). Collective calls happen only on
logging steps (a few scalars per class), at the end (picture thumbnails) and at checkpoints,
which gather every process's share into one ordinary checkpoint on global rank 0, the same file
a single process writes, so that a run resumes on any number of processes.
"""

from __future__ import annotations

import atexit
from typing import Any

import torch
import torch.distributed as dist
from lightning.fabric.utilities.apply_func import apply_to_collection, move_data_to_device
from lightning.pytorch.strategies import DDPStrategy, Strategy, StrategyRegistry
from torch import Tensor, nn
from torch.optim import Optimizer
from typing_extensions import override

from maxclass_lightning.averaging import ImageAverage
from maxclass_lightning.errors import ConfigError
from maxclass_lightning.images import ClassImages

#: The name to give ``trainer.strategy``.
STRATEGY_NAME = "owned_classes"


def owned_classes(num_classes: int, rank: int, world_size: int) -> range:
    """The class positions process ``rank`` of ``world_size`` owns: a contiguous block, the first
    ``num_classes % world_size`` processes one class more (processes beyond the classes own none)."""
    base, extra = divmod(num_classes, world_size)
    start = rank * base + min(rank, extra)
    return range(start, start + base + (rank < extra))


def process_rows(row_counts: list[int]) -> list[range]:
    """The rows of the run's images each process holds, from how many each holds (in rank order)."""
    starts = [sum(row_counts[:rank]) for rank in range(len(row_counts))]
    return [range(start, start + count) for start, count in zip(starts, row_counts)]


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def gather_rows(rows: Tensor, counts: list[int], dst: int = 0) -> Tensor | None:
    """Every process's ``rows`` (``counts[r]`` of them on process ``r``) concatenated in rank
    order on process ``dst`` (others get None); one process: ``rows`` itself.

    Written on ``torch.distributed.gather`` because Lightning's ``all_gather`` needs equal shapes
    and gives every process the whole: rows are padded to the largest share and only ``dst``
    receives them.
    """
    if not is_distributed():
        return rows
    # NCCL moves only CUDA tensors; gloo any.
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else rows.device
    padded = rows.new_zeros((max(counts), *rows.shape[1:]), device=device)
    padded[: len(rows)] = rows
    rank = dist.get_rank()
    received = [torch.empty_like(padded) for _ in counts] if rank == dst else None
    dist.gather(padded, received, dst=dst)
    if rank != dst:
        return None
    return torch.cat([part[:count] for part, count in zip(received, counts)]).to(rows.device)


class ClassOwnership(DDPStrategy):
    """DDP's processes without DDP's gradient all-reduce: each process owns a share of the classes.

    The module asks ``owned_classes`` which images to hold. Checkpoints are gathered onto global
    rank 0 in the single-process layout (image rows in run order, optimizer state likewise) and
    sliced back into each process's share on load.
    """

    strategy_name = STRATEGY_NAME

    @override
    def setup_distributed(self) -> None:
        """Lightning's setup, and the process group destroyed when the process exits.

        Lightning registers that only for NCCL. A process that exits with a gloo group alive can
        abort in gloo's worker threads during interpreter shutdown ("terminate called without an
        active exception", pytorch/pytorch#190489); the other machines then wait for it forever.
        """
        super().setup_distributed()
        atexit.unregister(destroy_process_group)  # once, however many runs this process makes
        atexit.register(destroy_process_group)

    @override
    def _setup_model(self, model: nn.Module) -> nn.Module:
        """No ``DistributedDataParallel`` wrapper: no parameter is shared between processes."""
        return model

    def _gathered(self, tensors: dict[Any, Any], rows: set[Any], counts: list[int]) -> dict[Any, Any]:
        """``tensors`` with the entries named in ``rows`` gathered across processes (on CPU, rank 0)."""
        result = {}
        for key, value in tensors.items():
            if key in rows:
                value = gather_rows(value.detach(), counts)
                value = None if value is None else value.cpu()
            result[key] = value
        return result

    @override
    def lightning_module_state_dict(self) -> dict[str, Any]:
        counts = self.lightning_module.row_counts
        return self._gathered(self.lightning_module.state_dict(), set(self.lightning_module.image_rows()), counts)

    @override
    def optimizer_state(self, optimizer: Optimizer) -> dict[str, Tensor]:
        """The optimizer's state with every per-image tensor (shaped like its parameter, e.g.
        Adam's moments) gathered; scalars such as Adam's step count are the same everywhere."""
        counts = self.lightning_module.row_counts
        state = optimizer.state_dict()
        parameters = [p for group in optimizer.param_groups for p in group["params"]]
        gathered = {}
        for index, parameter in enumerate(parameters):
            entry = state["state"].get(index, {})
            rows = {key for key, value in entry.items() if _is_rows_of(value, parameter)}
            gathered[index] = self._gathered(entry, rows, counts)
        return {**state, "state": gathered}

    @override
    def load_model_state_dict(self, checkpoint: dict[str, Any], strict: bool = True) -> None:
        rows = self.lightning_module.owned_rows
        state = dict(checkpoint["state_dict"])
        for key in self.lightning_module.image_rows():
            if key in state:
                state[key] = state[key][rows.start : rows.stop]
        self.lightning_module.load_state_dict(state, strict=strict)

    @override
    def load_optimizer_state_dict(self, checkpoint: dict[str, Any]) -> None:
        rows = self.lightning_module.owned_rows
        total = len(self.lightning_module.image_names)
        for optimizer, saved in zip(self.optimizers, checkpoint["optimizer_states"]):
            state = {
                index: {
                    key: value[rows.start : rows.stop] if _is_full_rows(value, total) else value
                    for key, value in entry.items()
                }
                for index, entry in saved["state"].items()
            }
            optimizer.load_state_dict({**saved, "state": state})
            for parameter, entry in optimizer.state.items():  # Lightning's public helpers, per entry
                optimizer.state[parameter] = apply_to_collection(entry, Tensor, move_data_to_device, self.root_device)


def _is_rows_of(value: Any, parameter: Tensor) -> bool:
    """Whether optimizer state ``value`` holds one row per image of ``parameter``."""
    return isinstance(value, Tensor) and value.dim() > 0 and value.shape == parameter.shape


def _is_full_rows(value: Any, total: int) -> bool:
    """Whether a checkpointed optimizer state tensor holds one row per image of the run."""
    return isinstance(value, Tensor) and value.dim() > 1 and len(value) == total


class OwnedImages:
    """The part of ``ClassVisualizer`` that holds this process's images: their parameterization,
    moving average and per-row bookkeeping, for the block of class positions it owns (all of them
    in a single process). The module provides ``classes``, ``references``, ``samples_per_class``,
    ``image_factory``, ``image_size``, ``seed``, ``start_picture`` and the averaging options."""

    def own(self, positions: range, row_counts: list[int]) -> None:
        """Hold the images of the classes at these positions of the run (a contiguous block), and
        only those: ``owned_rows`` are their rows among all the run's images, ``row_counts`` the
        rows each process holds, ``all_rows`` the rows of each process."""
        k = self.samples_per_class
        self.owned_rows, self.row_counts = range(positions.start * k, positions.stop * k), row_counts
        self.all_rows = process_rows(row_counts)
        #: per image row of this process, its class position in the run, its stream key (its
        #: class) and the class whose probability and rank it reports (-1: the top class)
        row_positions = torch.arange(positions.start, positions.stop).repeat_interleave(k)
        self.register_buffer("row_positions", row_positions, persistent=False)
        self.register_buffer("class_indices", torch.tensor(self.classes)[row_positions], persistent=False)
        self.register_buffer("reference_classes", torch.tensor(self.references)[row_positions], persistent=False)
        self.image: ClassImages = self.image_factory(self.class_indices.tolist(), self.image_size, self.seed)
        if self.start_picture is not None:
            self.image.start_from(self.start_picture.cpu())
        self.image_average = (
            ImageAverage(self.image, self.average_steps, self.average_decay) if self.average_steps else None
        )

    def image_rows(self) -> dict[str, Tensor]:
        """The state-dict entries with one row per image of this process: the images and their averages."""
        rows = {f"image.{name}": parameter for name, parameter in self.image.named_parameters()}
        return rows | (self.image_average.rows("image_average") if self.image_average is not None else {})

    def setup(self, stage: str) -> None:
        """Under ``owned_classes``, keep only this process's share of the classes: their images
        are made from their own random streams, the same as in a single-process run."""
        share = process_share(self.trainer, len(self.classes), self.samples_per_class)
        if share is not None:
            self.own(*share)


def destroy_process_group() -> None:
    """The default process group destroyed, if there is one: a clean exit for gloo's threads."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def uses_ownership(strategy: Strategy) -> bool:
    return isinstance(strategy, ClassOwnership)


def process_share(trainer, num_classes: int, samples_per_class: int) -> tuple[range, list[int]] | None:
    """Under ``owned_classes``: this process's class positions and every process's count of image
    rows; None for a single process (any other strategy with several processes is refused)."""
    if not uses_ownership(trainer.strategy):
        check_strategy(trainer.strategy, trainer.world_size)
        return None
    shares = [owned_classes(num_classes, rank, trainer.world_size) for rank in range(trainer.world_size)]
    return shares[trainer.global_rank], [len(share) * samples_per_class for share in shares]


def check_strategy(strategy: Strategy, processes: int) -> None:
    """``ConfigError`` for several processes under a strategy that would replicate every image."""
    if processes > 1 and not uses_ownership(strategy):
        raise ConfigError(
            f"trainer.strategy is {type(strategy).__name__}, which would copy every image to every "
            f"process; give --trainer.strategy {STRATEGY_NAME} (each process owns a share of the classes)"
        )


StrategyRegistry.register(
    STRATEGY_NAME,
    ClassOwnership,
    description="DDP processes, each owning a share of the classes; no gradient all-reduce",
)
