"""What the Trainer iterates: each optimizer step's work items for this process.

There is no dataset. A work item is one (class position, view) pair: one augmented view of one
class image scored by the classifier. Every step covers all items of the run; with several
processes, process ``r`` of ``W`` takes items ``r, r + W, r + 2W, ...``, so no two devices compute
the same item (Lightning's distributed sampler would instead split the *steps*; an iterable
dataset is left alone by it).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.data import DataLoader, IterableDataset


def work_items(num_classes: int, views: int) -> Tensor:
    """All (class position, view) pairs of one step, ``[num_classes * views, 2]``, class-major."""
    positions = torch.arange(num_classes).repeat_interleave(views)
    view_indices = torch.arange(views).repeat(num_classes)
    return torch.stack([positions, view_indices], dim=1)


def shard(items: Tensor, rank: int, world_size: int) -> Tensor:
    """This process's share of the items: every ``world_size``-th, starting at ``rank``."""
    return items[rank::world_size]


class StepWork(IterableDataset):
    """Yields this process's work items once per optimizer step, ``steps`` times."""

    def __init__(self, items: Tensor, steps: int) -> None:
        self.items = items
        self.steps = steps

    def __len__(self) -> int:
        return self.steps

    def __iter__(self):
        for _ in range(self.steps):
            yield self.items


def step_loader(num_classes: int, views: int, steps: int, rank: int, world_size: int) -> DataLoader:
    """A loader of ``steps`` batches, each this process's ``[K, 2]`` work items (no collation, no workers:
    the items are a few integers, made in the main process). Pinned where CUDA is, so that moving
    them to the GPU each step does not wait for it."""
    items = shard(work_items(num_classes, views), rank, world_size)
    return DataLoader(StepWork(items, steps), batch_size=None, num_workers=0, pin_memory=torch.cuda.is_available())
