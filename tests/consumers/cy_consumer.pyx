# cython: boundscheck=False, wraparound=False
"""A Cython consumer of three brokered libraries: zlib, sqlite3, libm."""

from libc.stddef cimport size_t

cimport libbroker_libm as m
cimport libbroker_sqlite3 as sq
cimport libbroker_zlib as zlib

zlib.import_zlib()
sq.import_sqlite3()
m.import_libm()


def zlib_version():
    return zlib.zlibVersion().decode()


def crc32(const unsigned char[::1] data, unsigned long value=0):
    cdef unsigned long result = value
    if data.shape[0]:
        with nogil:
            result = zlib.crc32(value, &data[0], <unsigned int>data.shape[0])
    return result


def adler32(const unsigned char[::1] data, unsigned long value=1):
    if not data.shape[0]:
        return value
    return zlib.adler32(value, &data[0], <unsigned int>data.shape[0])


def compress(const unsigned char[::1] data, int level=6):
    cdef zlib.uLongf size = zlib.compressBound(data.shape[0])
    out = bytearray(size)
    cdef unsigned char[::1] dest = out
    cdef int rc
    with nogil:
        rc = zlib.compress2(&dest[0], &size, &data[0], data.shape[0], level)
    if rc != 0:
        raise RuntimeError(rc)
    return bytes(out[:size])


def uncompress(const unsigned char[::1] data, size_t size):
    out = bytearray(size)
    cdef unsigned char[::1] dest = out
    cdef zlib.uLongf length = size
    cdef int rc = zlib.uncompress(&dest[0], &length, &data[0], data.shape[0])
    if rc != 0:
        raise RuntimeError(rc)
    return bytes(out[:length])


def optional_slots():
    """(crc32_z present, libbroker_absent_probe present)"""
    return zlib.table.crc32_z != NULL, zlib.table.libbroker_absent_probe != NULL


def sqlite_version():
    return sq.sqlite3_libversion().decode()


def sqlite_roundtrip(int rows):
    """Open an in-memory database, insert *rows* rows, return sqlite3_changes() after an UPDATE."""
    cdef sq.sqlite3 *db = NULL
    cdef char *err = NULL
    if sq.sqlite3_open(b":memory:", &db) != 0:
        raise RuntimeError("sqlite3_open failed")
    try:
        sql = b"CREATE TABLE t(x INTEGER);" + b"".join(
            b"INSERT INTO t VALUES(%d);" % i for i in range(rows)
        )
        if sq.sqlite3_exec(db, sql, NULL, NULL, &err) != 0:
            message = err.decode() if err != NULL else "?"
            sq.sqlite3_free(err)
            raise RuntimeError(message)
        if sq.sqlite3_exec(db, b"UPDATE t SET x = x + 1 WHERE x % 2 = 0", NULL, NULL, &err) != 0:
            raise RuntimeError(sq.sqlite3_errmsg(db).decode())
        return sq.sqlite3_changes(db)
    finally:
        sq.sqlite3_close(db)


cpdef double cos(double x) noexcept nogil:
    return m.cos(x)


cpdef double sqrt(double x) noexcept nogil:
    return m.sqrt(x)


cpdef double hypot(double x, double y) noexcept nogil:
    return m.hypot(x, y)
