"""The one place where Numba's compile flags are set, and a prefetch hint.

- ``cache=True``: actors and tests load compiled kernels from disk instead of
  recompiling.
- ``error_model="numpy"``: no Python-style division checks.
- ``_nrt=False``: the kernels never allocate, so Numba's reference counting is
  dead weight; with it on, every touch of a state array does atomic
  incref/decref pairs, which made the kernels about 50x slower.
"""

import numba
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = ["JIT_OPTIONS", "njit", "njit_inline", "prefetch", "read_only", "WARM_UP_SIZES"]

JIT_OPTIONS = {
    "cache": True,
    "nogil": True,
    "fastmath": False,
    "error_model": "numpy",
    "_nrt": False,
}


#: Batch lengths a warm-up runs each kernel on: Numba types a one-element field view
#: as contiguous and a longer one as strided, two signatures of the same kernel.
WARM_UP_SIZES = (1, 2)


def read_only(array):
    """A read-only view of ``array`` for a kernel's input.

    Arrays that arrive over Ray or a stream are read-only and local ones are
    not, and Numba compiles a kernel once per flag: with every input passed
    through here, each kernel has one signature per layout, whatever the
    transport.
    """
    view = array.view()
    view.flags.writeable = False
    return view


def njit(fn):
    """Compile ``fn`` with the project's flags."""
    return numba.njit(**JIT_OPTIONS)(fn)


def njit_inline(fn):
    """Like :func:`njit`, and inlined into callers at Numba IR level."""
    return numba.njit(inline="always", **JIT_OPTIONS)(fn)


@intrinsic
def prefetch(typingctx, arr, idx):
    """``prefetch(arr, i)``: start loading the cache line of ``arr[i]`` (1-d ``arr``).

    Only a hint (``llvm.prefetch``, for reading, into all cache levels): it
    never faults and never changes memory, so a stale or wrong index costs
    only bandwidth.
    """
    if not (isinstance(arr, types.Array) and arr.ndim == 1 and isinstance(idx, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        aty, ity = signature.args
        data = context.make_array(aty)(context, builder, args[0]).data
        i = context.cast(builder, args[1], ity, types.intp)
        ptr = builder.bitcast(builder.gep(data, [i]), ir.IntType(8).as_pointer())
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [ptr.type, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0i8")
        builder.call(fn, [ptr, i32(0), i32(3), i32(1)])  # read, high locality, data
        return context.get_dummy_value()

    return types.void(arr, idx), codegen
