# cython: boundscheck=False, wraparound=False
"""BLAS from the scipy-openblas32 wheel through a brokered table."""

cimport libbroker_openblas as blas

blas.import_openblas()


def config():
    return blas.openblas_get_config().decode()


def ddot(const double[::1] x, const double[::1] y):
    cdef blas.blasint n = x.shape[0], one = 1
    return blas.ddot_(&n, &x[0], &one, &y[0], &one)


def cblas_ddot(const double[::1] x, const double[::1] y):
    return blas.cblas_ddot(<blas.blasint>x.shape[0], &x[0], 1, &y[0], 1)


def dgemm(const double[::1, :] a, const double[::1, :] b, double[::1, :] c):
    """c = a @ b for Fortran-ordered arrays."""
    cdef blas.blasint m = a.shape[0], k = a.shape[1], n = b.shape[1]
    cdef double alpha = 1.0, beta = 0.0
    with nogil:
        blas.dgemm_(b"N", b"N", &m, &n, &k, &alpha, &a[0, 0], &m, &b[0, 0], &k, &beta, &c[0, 0], &m)
