# cython: language_level=3
"""zlib's crc32 and adler32, called through libbroker's zlib table (no -lz)."""
cimport libbroker_zlib as zlib

zlib.import_zlib()


def crc32(const unsigned char[::1] data not None, unsigned long value=0):
    if data.shape[0] == 0:  # &data[0] of an empty buffer is out of bounds
        return value
    return zlib.crc32(value, &data[0], <unsigned int>data.shape[0])


def adler32(const unsigned char[::1] data not None, unsigned long value=1):
    if data.shape[0] == 0:
        return value
    return zlib.adler32(value, &data[0], <unsigned int>data.shape[0])


def zlib_version():
    return zlib.zlibVersion().decode()
