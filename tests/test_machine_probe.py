"""The machine probe: its chase is one cycle over the working set, its figures are sane.

Never how fast the machine is: only what the probe measures and how it reports it.
"""

import math

import numpy as np
import pytest

from lab.bench.probe import (
    LINE_BYTES,
    _chase,
    _chase_array,
    _xorshift,
    measure_probe,
    relative_to_probe,
    single_cycle,
)

_MASK = (1 << 64) - 1


def _cycle_order(nxt: np.ndarray) -> list[int]:
    """The slots in the order a walk from slot 0 visits them, until it returns to 0."""
    seen, i = [0], int(nxt[0])
    while i != 0 and len(seen) <= len(nxt):
        seen.append(i)
        i = int(nxt[i])
    return seen


@pytest.mark.parametrize("slots", [1, 2, 3, 17, 1000])
@pytest.mark.parametrize("seed", [0, 1, 7])
def test_the_permutation_is_one_cycle_through_every_slot(slots, seed):
    nxt = single_cycle(slots, seed)
    assert nxt.dtype == np.int64 and sorted(nxt.tolist()) == list(range(slots))
    order = _cycle_order(nxt)
    assert sorted(order) == list(range(slots))  # every slot once, then back to the start
    assert slots == 1 or not np.any(nxt == np.arange(slots))  # no slot points at itself


def test_seeds_give_different_cycles():
    assert not np.array_equal(single_cycle(1000, 0), single_cycle(1000, 1))


def test_the_chase_is_padded_to_one_line_per_slot():
    chain = _chase_array(64, seed=3)
    assert chain.ctypes.data % LINE_BYTES == 0 and chain.nbytes == 64 * LINE_BYTES
    words = LINE_BYTES // 8
    np.testing.assert_array_equal(chain[::words], single_cycle(64, 3) * words)
    assert not np.any(chain.reshape(64, words)[:, 1:])  # only word 0 of each line is used


@pytest.mark.parametrize("loads", [0, 1, 5, 99, 100, 101, 250])
def test_the_chase_kernel_follows_the_chain(loads):
    slots, words = 100, LINE_BYTES // 8
    chain = _chase_array(slots, seed=5)
    nxt = single_cycle(slots, seed=5)
    start = 3
    slot = start
    for _ in range(loads):
        slot = int(nxt[slot])
    assert _chase(chain, start * words, loads) == slot * words
    if loads % slots == 0:
        assert slot == start  # a whole round comes back to where it began


def _xorshift_reference(x: int, ops: int) -> int:
    for _ in range(ops):
        x ^= (x << 13) & _MASK
        x ^= x >> 7
        x ^= (x << 17) & _MASK
    return x


@pytest.mark.parametrize("seed,ops", [(1, 0), (1, 1), (1, 1000), (0x9E3779B97F4A7C15, 77)])
def test_the_compute_kernel_is_xorshift64(seed, ops):
    assert int(_xorshift(np.uint64(seed), ops)) == _xorshift_reference(seed, ops)


@pytest.mark.parametrize("working_set", [100, 64 * 1000, 1 << 20])
def test_the_figures_are_positive_and_finite(working_set):
    probe = measure_probe(working_set, seconds=0.05, repeats=2)
    for key in ("chase_ns_per_load", "compute_ns_per_op"):
        assert math.isfinite(probe[key]) and probe[key] > 0
    slots = max(2, working_set // LINE_BYTES)
    assert probe["working_set_mb"] == round(slots * LINE_BYTES / 2**20, 3)
    assert probe["chase_loads"] > 0 and probe["compute_ops"] > 0 and probe["repeats"] == 2
    if probe["chase_loads"] >= slots:
        assert probe["chase_loads"] % slots == 0  # whole rounds


@pytest.mark.parametrize(
    "kwargs", [{"working_set_bytes": 0}, {"seconds": 0.0}, {"repeats": 0}, {"seconds": -1.0}]
)
def test_bad_arguments_are_refused(kwargs):
    with pytest.raises(ValueError):
        measure_probe(**{"working_set_bytes": 4096, **kwargs})


def test_relative_to_probe_divides_by_each_figure():
    probe = {"chase_ns_per_load": 80.0, "compute_ns_per_op": 2.0}
    assert relative_to_probe(40.0, probe) == {"loads_per_item": 0.5, "ops_per_item": 20.0}
    rel = relative_to_probe(100.0, probe, per="message")
    assert rel == {"loads_per_message": 1.25, "ops_per_message": 50.0}
