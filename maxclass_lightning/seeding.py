"""Random streams keyed by what they are for, so a class's result never depends on its neighbours.

An image's initialization depends only on (seed, class) and each augmentation only on
(seed, class, view, step): the same class comes out the same whether it is optimized alone,
in a batch with others, with another batch size, or on any number of devices.
"""

from __future__ import annotations

import numpy as np
import torch

_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def stream_seed(*keys: int) -> int:
    """A 63-bit seed mixing ``keys`` (numpy's SeedSequence hashes them; nearby keys give unrelated seeds)."""
    return int(np.random.SeedSequence([int(key) for key in keys]).generate_state(1, np.uint64)[0] >> 1)


def generator(*keys: int) -> torch.Generator:
    """A CPU generator for the stream named by ``keys``; draws are then moved to the device."""
    return torch.Generator().manual_seed(stream_seed(*keys))


def _splitmix64(state: np.ndarray) -> np.ndarray:
    """SplitMix64's finalizer, elementwise on uint64 (wrapping arithmetic)."""
    state = state + np.uint64(0x9E3779B97F4A7C15)
    state = (state ^ (state >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    state = (state ^ (state >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return state ^ (state >> np.uint64(31))


def keyed_uniform(keys: np.ndarray, count: int) -> torch.Tensor:
    """``count`` U[0, 1) draws for each row of integer ``keys`` ([K, m] -> float64 [K, count]).

    Written by hand because torch and numpy generators are one object per stream, and a step of a
    1000-class run needs thousands of streams: this hashes all rows at once, a few microseconds.
    """
    with np.errstate(over="ignore"):
        state = np.zeros(len(keys), dtype=np.uint64)
        for column in np.asarray(keys, dtype=np.int64).T:
            state = _splitmix64(state ^ column.astype(np.uint64))
        draws = [_splitmix64(state + np.uint64(index + 1)) for index in range(count)]
    bits = np.stack(draws, axis=1) >> np.uint64(11)  # the 53 bits a float64 mantissa holds
    return torch.from_numpy(bits.astype(np.float64) / float(2**53))
