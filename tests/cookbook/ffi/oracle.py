"""Oracles: math.pow for the call; ctypes for the size of a C double (no other
oracle knows what libffi's exported ffi_type_double must hold)."""
import ctypes
import math


def check(cb, tmp_path):
    size, alignment, code = cb.double_type()
    assert (size, alignment) == (ctypes.sizeof(ctypes.c_double),
                                 ctypes.alignment(ctypes.c_double))
    assert code == 3  # FFI_TYPE_DOUBLE in <ffi.h>
    assert cb.sint32_size() == ctypes.sizeof(ctypes.c_int32)
    for x, y in ((2.0, 0.5), (10.0, -3.0), (1.5, 7.25)):
        assert cb.call_pow(x, y) == math.pow(x, y)
