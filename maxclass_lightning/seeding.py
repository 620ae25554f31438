"""Random streams keyed by what they are for, so a class's result never depends on its neighbours.

An image's initialization depends only on (seed, class) and each augmentation only on
(seed, class, view, step): the same class comes out the same whether it is optimized alone,
in a batch with others, with another batch size, or on any number of devices.
"""

from __future__ import annotations

import numpy as np
import torch


def stream_seed(*keys: int) -> int:
    """A 63-bit seed mixing ``keys`` (numpy's SeedSequence hashes them; nearby keys give unrelated seeds)."""
    return int(np.random.SeedSequence([int(key) for key in keys]).generate_state(1, np.uint64)[0] >> 1)


def generator(*keys: int) -> torch.Generator:
    """A CPU generator for the stream named by ``keys``; draws are then moved to the device."""
    return torch.Generator().manual_seed(stream_seed(*keys))
