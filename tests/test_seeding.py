"""Keyed random streams: reproducible, independent of batch composition, well spread."""

from __future__ import annotations

import numpy as np
import torch

from maxclass_lightning.seeding import generator, keyed_uniform


def _splitmix64_reference(state: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        state = state + np.uint64(0x9E3779B97F4A7C15)
        state = (state ^ (state >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        state = (state ^ (state >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return state ^ (state >> np.uint64(31))


def test_keyed_uniform_matches_unsigned_64_bit_reference():
    keys = np.array([[0, 259, 0, 5], [7, 1, 3, 199], [2**31, 999, 7, 0]], dtype=np.int64)
    state = np.zeros(len(keys), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for column in keys.T:
            state = _splitmix64_reference(state ^ column.astype(np.uint64))
        expected = np.stack([_splitmix64_reference(state + np.uint64(i + 1)) >> np.uint64(11) for i in range(3)], 1)
    expected = expected.astype(np.float64) / 2**53
    np.testing.assert_array_equal(keyed_uniform(torch.from_numpy(keys), 3).numpy(), expected)


def test_a_rows_draws_do_not_depend_on_the_other_rows():
    keys = torch.tensor([[0, 259, 0, 5], [0, 1, 0, 5], [0, 948, 1, 5]])
    together = keyed_uniform(keys, 4)
    assert torch.equal(keyed_uniform(keys[1:2], 4)[0], together[1])
    assert torch.equal(keyed_uniform(keys.flip(0), 4).flip(0), together)


def test_keyed_uniform_is_uniform_and_keys_decorrelate():
    keys = torch.stack([torch.zeros(20000), torch.arange(20000), torch.zeros(20000), torch.ones(20000)], 1).long()
    draws = keyed_uniform(keys, 2)
    assert draws.min() >= 0 and draws.max() < 1
    assert abs(draws.mean().item() - 0.5) < 0.01 and abs(draws.std().item() - 12**-0.5) < 0.01
    assert abs(torch.corrcoef(draws.T)[0, 1].item()) < 0.03
    # Neighbouring steps give unrelated draws.
    next_step = keyed_uniform(keys + torch.tensor([0, 0, 0, 1]), 1)[:, 0]
    assert abs(torch.corrcoef(torch.stack([draws[:, 0], next_step]))[0, 1].item()) < 0.03


def test_generator_streams_are_reproducible_and_distinct():
    assert torch.equal(torch.rand(5, generator=generator(0, 259)), torch.rand(5, generator=generator(0, 259)))
    assert not torch.equal(torch.rand(5, generator=generator(0, 259)), torch.rand(5, generator=generator(0, 258)))
