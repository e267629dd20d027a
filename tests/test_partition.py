"""Splitting a batch by destination: every element once, in order, each part its own array."""

import numpy as np
import pytest

from actors.partition import split
from actors.wire import ORDER_DTYPE


def _batch(n: int) -> np.ndarray:
    out = np.zeros(n, ORDER_DTYPE)
    out["seq"] = np.arange(n)
    return out


@pytest.mark.parametrize("routes", [[2, 0, 2, 1, 0, 2], [1, 1, 1], [3], []])
def test_every_element_goes_once_to_its_destination_in_order(routes):
    batch, route = _batch(len(routes)), np.array(routes, dtype=np.int64)
    parts = split(batch, route, 4)
    assert [p for p, _ in parts] == sorted(set(routes))  # only destinations that get some
    for p, part in parts:
        assert part.dtype == ORDER_DTYPE
        assert part["seq"].tolist() == np.flatnonzero(route == p).tolist()
    assert sum(len(part) for _, part in parts) == len(routes)


def test_a_part_is_a_copy_even_when_everything_goes_to_one_destination():
    batch = _batch(3)
    [(destination, part)] = split(batch, np.array([1, 1, 1]), 2)
    part["seq"] = -1
    assert destination == 1 and batch["seq"].tolist() == [0, 1, 2]
