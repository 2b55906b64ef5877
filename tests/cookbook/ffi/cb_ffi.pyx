# cython: language_level=3
# libffi: exported data objects through [variables] (ffi_type_double is a struct
# the library exports, not a function) and a call built at run time.
from libc.math cimport pow
cimport libbroker_ffi as ffi

ffi.import_ffi()

FFI_DEFAULT_ABI = 2  # <ffitarget.h>, x86-64 System V (FFI_UNIX64)
FFI_OK = 0


def double_type():
    """(size, alignment, type code) of libffi's own ffi_type_double."""
    return (ffi.ffi_type_double.size, ffi.ffi_type_double.alignment,
            ffi.ffi_type_double.type)


def sint32_size():
    return ffi.ffi_type_sint32.size


def call_pow(double x, double y):
    """pow(x, y), called through ffi_call."""
    cdef ffi.ffi_cif cif
    cdef ffi.ffi_type *args[2]
    cdef void *values[2]
    cdef double result = 0
    args[0] = args[1] = ffi.ffi_type_double
    values[0] = &x
    values[1] = &y
    if ffi.ffi_prep_cif(&cif, FFI_DEFAULT_ABI, 2, ffi.ffi_type_double, args) != FFI_OK:
        raise RuntimeError("ffi_prep_cif failed")
    ffi.ffi_call(&cif, <void (*)() noexcept nogil>pow, &result, values)
    return result
