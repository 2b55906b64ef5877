# cython: language_level=3
# libzstd's one-shot functions through libbroker.
cimport libbroker_zstd as zstd

zstd.import_zstd()


def version():
    return zstd.ZSTD_versionString().decode()


def compress(bytes data not None, int level=3):
    cdef size_t bound = zstd.ZSTD_compressBound(len(data))
    out = bytearray(bound)
    cdef char *buffer = out
    cdef size_t n = zstd.ZSTD_compress(buffer, bound, <const char *>data, len(data), level)
    if zstd.ZSTD_isError(n):
        raise ValueError(zstd.ZSTD_getErrorName(n).decode())
    return bytes(out[:n])


def decompress(bytes data not None):
    cdef unsigned long long size = zstd.ZSTD_getFrameContentSize(<const char *>data, len(data))
    if size >= <unsigned long long>(-2):  # ZSTD_CONTENTSIZE_UNKNOWN / _ERROR
        raise ValueError("not a zstd frame with a known content size")
    out = bytearray(size + 1)
    cdef char *buffer = out
    cdef size_t n = zstd.ZSTD_decompress(buffer, size + 1, <const char *>data, len(data))
    if zstd.ZSTD_isError(n):
        raise ValueError(zstd.ZSTD_getErrorName(n).decode())
    return bytes(out[:n])
