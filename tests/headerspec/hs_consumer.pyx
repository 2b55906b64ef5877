# cython: language_level=3
# One consumer of three specs written by `libbroker spec` at test time from the
# real zlib.h, sqlite3.h and OpenBLAS's cblas.h.
cimport libbroker_zlib as zlib
cimport libbroker_sqlite3 as sq
cimport libbroker_cblas as cblas

zlib.import_zlib()
sq.import_sqlite3()
cblas.import_cblas()


def crc32(bytes data not None):
    return zlib.crc32(0, <const unsigned char *>data, len(data))


def zlib_version():
    return zlib.zlibVersion().decode()


cdef int on_row(void *rows, int count, char **values, char **names) noexcept with gil:
    (<list>rows).append(tuple(values[i].decode() if values[i] != NULL else None
                              for i in range(count)))
    return 0


def query(str sql not None):
    cdef sq.sqlite3 *db = NULL
    cdef char *error = NULL
    rows = []
    if sq.sqlite3_open(b":memory:", &db) != 0:
        raise OSError("sqlite3_open failed")
    try:
        if sq.sqlite3_exec(db, sql.encode(), on_row, <void *>rows, &error) != 0:
            message = error.decode() if error != NULL else "?"
            sq.sqlite3_free(error)
            raise ValueError(message)
    finally:
        sq.sqlite3_close(db)
    return rows


def sqlite_version():
    return sq.sqlite3_libversion().decode()


def ddot(double[::1] x not None, double[::1] y not None):
    if x.shape[0] != y.shape[0] or x.shape[0] == 0:
        raise ValueError("two vectors of the same, non-zero length")
    return cblas.cblas_ddot(<int>x.shape[0], &x[0], 1, &y[0], 1)


def dgemm(double[:, ::1] a not None, double[:, ::1] b not None, double[:, ::1] c not None):
    """c = a @ b (row-major)."""
    cdef int m = a.shape[0], k = a.shape[1], n = b.shape[1]
    cblas.cblas_dgemm(101, 111, 111, m, n, k, 1.0, &a[0, 0], k, &b[0, 0], n, 0.0,
                      &c[0, 0], n)  # CblasRowMajor, CblasNoTrans
