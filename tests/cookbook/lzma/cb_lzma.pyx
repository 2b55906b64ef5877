# cython: language_level=3
# liblzma through libbroker, with the constants from the real <lzma.h>: its types
# replace the generated ones one by one (LIBBROKER_EXTERNAL_<type>).
cdef extern from *:
    """
    #include <lzma.h>
    #define LIBBROKER_EXTERNAL_lzma_ret
    #define LIBBROKER_EXTERNAL_lzma_check
    #define LIBBROKER_EXTERNAL_lzma_allocator
    """
    enum: LZMA_OK, LZMA_CHECK_CRC64, LZMA_PRESET_DEFAULT

from libc.stdint cimport uint64_t
cimport libbroker_lzma as lzma

lzma.import_lzma()


def version():
    return lzma.lzma_version_string().decode()


def compress(const unsigned char[::1] data not None):
    cdef size_t size = data.shape[0]
    cdef size_t bound = lzma.lzma_stream_buffer_bound(size)
    cdef size_t written = 0
    out = bytearray(bound)
    cdef unsigned char[::1] buffer = out
    cdef const unsigned char *source = &data[0] if size else NULL
    with nogil:
        ret = lzma.lzma_easy_buffer_encode(LZMA_PRESET_DEFAULT, LZMA_CHECK_CRC64, NULL,
                                           source, size, &buffer[0], &written, bound)
    if ret != LZMA_OK:
        raise ValueError(f"lzma_easy_buffer_encode returned {ret}")
    return bytes(out[:written])


def decompress(const unsigned char[::1] data not None, size_t size):
    cdef uint64_t memlimit = 1 << 30
    cdef size_t consumed = 0, written = 0
    out = bytearray(size + 1)  # one spare byte: never a zero-length buffer
    cdef unsigned char[::1] buffer = out
    if data.shape[0] == 0:
        raise ValueError("no input")
    ret = lzma.lzma_stream_buffer_decode(&memlimit, 0, NULL, &data[0], &consumed,
                                         data.shape[0], &buffer[0], &written, size + 1)
    if ret != LZMA_OK:
        raise ValueError(f"lzma_stream_buffer_decode returned {ret}")
    return bytes(out[:written])
