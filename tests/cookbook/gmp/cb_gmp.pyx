# cython: language_level=3
# GMP: functions the header renames with macros (mpz_mul is __gmpz_mul: the spec
# names the exported symbols) and a data object (gmp_version) through [variables].
from libc.stdlib cimport free
cimport libbroker_gmp as gmp

gmp.import_gmp()


def version():
    return gmp.__gmp_version[0].decode()


def multiply(a, b):
    """a * b for Python ints, computed by GMP (through decimal strings)."""
    cdef gmp.__mpz_struct x, y, product
    cdef char *text
    gmp.__gmpz_init(&x)
    gmp.__gmpz_init(&y)
    gmp.__gmpz_init(&product)
    try:
        if gmp.__gmpz_set_str(&x, str(a).encode(), 10) or gmp.__gmpz_set_str(&y, str(b).encode(), 10):
            raise ValueError("not integers")
        gmp.__gmpz_mul(&product, &x, &y)
        text = gmp.__gmpz_get_str(NULL, 10, &product)
        try:
            return int(text.decode())
        finally:
            free(text)  # GMP allocated it with the default allocator, malloc
    finally:
        gmp.__gmpz_clear(&x)
        gmp.__gmpz_clear(&y)
        gmp.__gmpz_clear(&product)
