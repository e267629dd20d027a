"""The one place where Numba's compile flags are set.

- ``cache=True``: actors and tests load compiled kernels from disk instead of
  recompiling.
- ``error_model="numpy"``: no Python-style division checks.
- ``_nrt=False``: the kernels never allocate, so Numba's reference counting is
  dead weight; with it on, every touch of a state array does atomic
  incref/decref pairs, which made the kernels about 50x slower.
"""

import numba

__all__ = ["JIT_OPTIONS", "njit", "njit_inline"]

JIT_OPTIONS = {
    "cache": True,
    "nogil": True,
    "fastmath": False,
    "error_model": "numpy",
    "_nrt": False,
}


def njit(fn):
    """Compile ``fn`` with the project's flags."""
    return numba.njit(**JIT_OPTIONS)(fn)


def njit_inline(fn):
    """Like :func:`njit`, and inlined into callers at Numba IR level."""
    return numba.njit(inline="always", **JIT_OPTIONS)(fn)
