# cython: boundscheck=False, wraparound=False
"""zlib through libbroker: checksums and one-shot compression."""

cimport libbroker_zlib as zlib

zlib.import_zlib()  # ImportError, with the broker's reason as __cause__, if zlib is unusable


def version():
    """zlibVersion() of the copy libbroker loaded."""
    return zlib.zlibVersion().decode()


def crc32(const unsigned char[::1] data, unsigned long value=0):
    cdef unsigned long result = value
    if data.shape[0]:
        with nogil:
            result = zlib.crc32(value, &data[0], <unsigned int>data.shape[0])
    return result


def adler32(const unsigned char[::1] data, unsigned long value=1):
    cdef unsigned long result = value
    if data.shape[0]:
        with nogil:
            result = zlib.adler32(value, &data[0], <unsigned int>data.shape[0])
    return result


def compress(const unsigned char[::1] data, int level=6):
    cdef zlib.uLongf size = zlib.compressBound(data.shape[0])
    out = bytearray(size)
    cdef unsigned char[::1] dest = out
    cdef const unsigned char *src = &data[0] if data.shape[0] else <const unsigned char *>b""
    cdef int rc
    with nogil:
        rc = zlib.compress2(&dest[0], &size, src, data.shape[0], level)
    if rc != 0:
        raise RuntimeError(f"compress2 failed with {rc}")
    return bytes(out[:size])


def uncompress(const unsigned char[::1] data, size_t size):
    out = bytearray(size if size else 1)
    cdef unsigned char[::1] dest = out
    cdef zlib.uLongf length = size
    cdef int rc
    with nogil:
        rc = zlib.uncompress(&dest[0], &length, &data[0], data.shape[0])
    if rc != 0:
        raise RuntimeError(f"uncompress failed with {rc}")
    return bytes(out[:length])
