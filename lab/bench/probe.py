"""A small machine probe, measured beside every benchmark figure.

This VM's speed drifts from day to day, so a throughput figure alone cannot
be compared with one from another day. The probe times two things in the
same run, and :func:`relative_to_probe` expresses a figure in their units:

- **Dependent-load chase**: a pointer chase over a random single-cycle
  permutation of ``working_set_bytes``. Every load's address is the previous
  load's value, so loads cannot overlap and the prefetcher cannot guess the
  next line: the figure is the load-to-use latency of a working set that
  size (cache, TLB and DRAM together), in ns per load.
- **Compute chain**: a dependent xorshift64 chain in registers, in ns per
  iteration: the core's speed with memory out of the picture.

Each chase slot is padded to a 64-byte cache line (the next slot's word
offset in word 0, the other 7 words unused), so every load is a different
line and the line count is the working set over 64 B, as in the engine,
whose order and level rows are one line each. Unpadded int64 slots would put
8 slots in a line, so part of the loads would hit a line an earlier load
brought in, and the figure would depend on that fraction instead of on the
latency alone.

Each figure is the best (minimum) of ``repeats`` timings, after a warm-up
that compiles or loads the kernels. The chase's pages are faulted in while
it is built, so page faults stay off the clock; TLB misses stay on it, as
they do for the engine's own random loads.
"""

import math
import time

import numpy as np

from engine.jit import njit

__all__ = ["LINE_BYTES", "measure_probe", "relative_to_probe", "single_cycle"]

#: Bytes per chase slot: one cache line.
LINE_BYTES = 64
_WORDS = LINE_BYTES // 8

_REPEATS = 5
#: Loads of the chase that sizes the timed ones, and their floor.
_MIN_LOADS = 1 << 16
_CALIBRATE_OPS = 1 << 20


@njit
def _chase(chain, start, loads):
    """Follow ``chain`` from word ``start`` for ``loads`` loads; the word offset reached."""
    i = start
    for _ in range(loads):
        i = chain[i]
    return i


@njit
def _xorshift(x, ops):
    """``ops`` steps of xorshift64 from ``x`` (uint64); the value reached."""
    for _ in range(ops):
        x ^= x << np.uint64(13)
        x ^= x >> np.uint64(7)
        x ^= x << np.uint64(17)
    return x


def single_cycle(slots: int, seed: int = 0) -> np.ndarray:
    """A random permutation ``nxt`` of ``0..slots-1`` that is one cycle through every slot.

    Equivalent to Sattolo's algorithm (a uniformly random cyclic permutation)
    but vectorised: shuffle the slots into a visiting order and link each one
    to the one after it, the last back to the first.
    """
    if slots < 1:
        raise ValueError("slots must be at least 1")
    order = np.random.default_rng(seed).permutation(slots)
    nxt = np.empty(slots, dtype=np.int64)
    nxt[order] = np.roll(order, -1)
    return nxt


def _chase_array(slots: int, seed: int = 0) -> np.ndarray:
    """The padded chase: word ``s * 8`` of the line-aligned array holds ``nxt[s] * 8``."""
    raw = np.zeros(slots * _WORDS + _WORDS, dtype=np.int64)
    skip = (-raw.ctypes.data % LINE_BYTES) // 8
    chain = raw[skip : skip + slots * _WORDS]
    # Word offsets, not slot numbers: the chase's only dependent work is the load.
    chain[::_WORDS] = single_cycle(slots, seed) * _WORDS
    return chain


def _best_of(repeats: int, fn) -> float:
    """The minimum wall time of ``repeats`` calls of ``fn``, in seconds."""
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def measure_probe(working_set_bytes: int, seconds: float = 0.4, repeats: int = _REPEATS) -> dict:
    """Time the chase over ``working_set_bytes`` and the compute chain; about ``seconds`` of it.

    The budget is split evenly between the two figures and their repeats.
    Each chase timing carries on along the cycle from where the last one
    stopped (so it never re-walks lines the last one just cached), in whole
    rounds when a round fits in its share. Returns ``chase_ns_per_load`` and
    ``compute_ns_per_op`` (best of ``repeats``), the working set chased
    (``working_set_bytes`` rounded down to whole lines, at least 2), and the
    loads and ops each timing made. Building the chase (a page fault per 4 KiB
    on first write) comes on top: about 0.25 s for 80 MiB on the lab VM.
    """
    if working_set_bytes <= 0:
        raise ValueError("working_set_bytes must be positive")
    if seconds <= 0 or repeats < 1:
        raise ValueError("seconds must be positive and repeats at least 1")
    slots = max(2, working_set_bytes // LINE_BYTES)
    chain = _chase_array(slots)
    per_timing = seconds / (2 * repeats)

    # Warm-up: compile or load both kernels and time a short chase to size the real ones.
    _xorshift(np.uint64(1), 1)
    _chase(chain, 0, 1)
    start = time.perf_counter()
    at = _chase(chain, 0, _MIN_LOADS)
    warm_s = time.perf_counter() - start
    loads = max(_MIN_LOADS, int(_MIN_LOADS * per_timing / max(warm_s, 1e-9)))
    if loads >= slots:
        loads = loads // slots * slots
    chase_s = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        at = _chase(chain, at, loads)
        chase_s = min(chase_s, time.perf_counter() - start)

    calibrate_s = _best_of(1, lambda: _xorshift(np.uint64(1), _CALIBRATE_OPS))
    ops = max(_CALIBRATE_OPS, int(_CALIBRATE_OPS * per_timing / max(calibrate_s, 1e-9)))
    compute_s = _best_of(repeats, lambda: _xorshift(np.uint64(1), ops))

    return {
        "chase_ns_per_load": round(chase_s / loads * 1e9, 3),
        "compute_ns_per_op": round(compute_s / ops * 1e9, 3),
        "working_set_mb": round(slots * LINE_BYTES / 2**20, 3),
        "chase_loads": loads,
        "compute_ops": ops,
        "repeats": repeats,
    }


def relative_to_probe(ns_per_item: float, probe: dict, per: str = "item") -> dict:
    """A cost of ``ns_per_item`` in the probe's units, keyed ``loads_per_<per>``, ``ops_per_<per>``.

    - ``loads_per_<per>``: how many dependent cache-missing loads (of the
      probe's working set) the item costs. If memory latency is what drifts
      from day to day, this stays about constant while the raw figure moves.
    - ``ops_per_<per>``: how many dependent xorshift steps it costs; this one
      stays constant if the core's speed is what drifts.
    """
    return {
        f"loads_per_{per}": round(ns_per_item / probe["chase_ns_per_load"], 3),
        f"ops_per_{per}": round(ns_per_item / probe["compute_ns_per_op"], 3),
    }
