# cython: language_level=3
# libbz2's one-shot buffer functions through libbroker.
cimport libbroker_bz2 as bz2

bz2.import_bz2()

BZ_OK = 0  # <bzlib.h>


def version():
    return bz2.BZ2_bzlibVersion().decode()


def compress(bytes data not None, int level=9):
    cdef unsigned int size = len(data)
    cdef unsigned int capacity = size + size // 100 + 600  # bzlib.h's documented bound
    out = bytearray(capacity)
    cdef char *buffer = out
    ret = bz2.BZ2_bzBuffToBuffCompress(buffer, &capacity, data, size, level, 0, 0)
    if ret != BZ_OK:
        raise ValueError(f"BZ2_bzBuffToBuffCompress returned {ret}")
    return bytes(out[:capacity])


def decompress(bytes data not None, unsigned int size):
    cdef unsigned int capacity = size + 1
    out = bytearray(capacity)
    cdef char *buffer = out
    ret = bz2.BZ2_bzBuffToBuffDecompress(buffer, &capacity, data, len(data), 0, 0)
    if ret != BZ_OK:
        raise ValueError(f"BZ2_bzBuffToBuffDecompress returned {ret}")
    return bytes(out[:capacity])
