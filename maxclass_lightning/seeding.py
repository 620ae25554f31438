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


def _signed(constant: int) -> int:
    """A 64-bit unsigned constant as the int64 with the same bits (torch has no uint64 arithmetic)."""
    return constant - (1 << 64) if constant >= 1 << 63 else constant


_GOLDEN = _signed(0x9E3779B97F4A7C15)
_MIX1 = _signed(0xBF58476D1CE4E5B9)
_MIX2 = _signed(0x94D049BB133111EB)


def _shift_right(state: torch.Tensor, bits: int) -> torch.Tensor:
    """Logical right shift of int64 bit patterns (torch's ``>>`` is arithmetic on negatives)."""
    return (state >> bits) & ((1 << (64 - bits)) - 1)


def _splitmix64(state: torch.Tensor) -> torch.Tensor:
    """SplitMix64's finalizer on int64 bit patterns; int64 multiplication wraps like uint64."""
    state = state + _GOLDEN
    state = (state ^ _shift_right(state, 30)) * _MIX1
    state = (state ^ _shift_right(state, 27)) * _MIX2
    return state ^ _shift_right(state, 31)


def keyed_uniform(keys: torch.Tensor, count: int) -> torch.Tensor:
    """``count`` U[0, 1) draws for each row of integer ``keys`` ([K, m] -> float64 [K, count]), on
    the keys' device.

    Written by hand because torch and numpy generators are one object per stream, and a step of a
    1000-class run needs thousands of streams: this hashes all rows at once, on the device where
    the views are made, with no transfer to the host. Integer hashing gives the same bits on any
    device.
    """
    keys = torch.as_tensor(keys, dtype=torch.int64)
    state = torch.zeros(len(keys), dtype=torch.int64, device=keys.device)
    for column in keys.T:
        state = _splitmix64(state ^ column)
    draws = _splitmix64(state[:, None] + torch.arange(1, count + 1, device=keys.device))  # draw i: state + i + 1
    return _shift_right(draws, 11).double() / float(2**53)  # the 53 bits a float64 mantissa holds
