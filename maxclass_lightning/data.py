"""What the Trainer iterates: each optimizer step's work items for this process.

There is no dataset. A work item is one (image row, view) pair: one augmented view of one of
this process's images, scored by the classifier. A process holds only the images of the classes
it owns (``ownership``), so every step covers all items of its own images and no two processes
ever compute the same item (Lightning's distributed sampler would instead split the *steps*; an
iterable dataset is left alone by it).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.data import DataLoader, IterableDataset

from maxclass_lightning.errors import is_count, require


def view_keys(work: Tensor, seed: int, class_indices: Tensor, step: int) -> Tensor:
    """(seed, class, view, step) of each work item, ``[K, 4]`` on its device: all that its random
    view may depend on (``class_indices``: each image row's class; a class's samples see the same
    views)."""
    constant = torch.ones_like(work[:, 0])
    return torch.stack([constant * seed, class_indices[work[:, 0]], work[:, 1], constant * step], dim=1)


def pass_size(batch_size: int, group: int) -> int:
    """Work items per forward pass: about ``batch_size``, a whole number of ``group`` s (the items
    that must share a pass, e.g. the samples the diversity term compares)."""
    return max(group, batch_size // group * group)


def work_items(num_images: int, views: int) -> Tensor:
    """All (image row, view) pairs of one step, ``[num_images * views, 2]``, image-major."""
    rows = torch.arange(num_images).repeat_interleave(views)
    view_indices = torch.arange(views).repeat(num_images)
    return torch.stack([rows, view_indices], dim=1)


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


def step_loader(num_images: int, views: int, steps: int) -> DataLoader:
    """A loader of ``steps`` batches, each this process's ``[K, 2]`` work items (no collation, no workers:
    the items are a few integers, made in the main process). Pinned where CUDA is, so that moving
    them to the GPU each step does not wait for it."""
    require(is_count(steps, 1), "trainer.max_steps", steps, "the number of optimizer steps, e.g. 200")
    items = work_items(num_images, views)
    return DataLoader(StepWork(items, steps), batch_size=None, num_workers=0, pin_memory=torch.cuda.is_available())
