"""Builds the master module (cython/_master.pyx -> libbroker._master)."""

from Cython.Build import cythonize
from setuptools import Extension, setup

extensions = [
    Extension(
        "libbroker._master",
        ["cython/_master.pyx"],
        include_dirs=["include"],
        # Module state (not C globals) lets Cython create the module once per
        # interpreter, so that the module itself can refuse a subinterpreter with a
        # clear message (the first line of _master.pyx) instead of pinning the
        # process to whichever interpreter imported it first.
        # Uncompressed string constants: nothing to inflate at import (a consumer's
        # warm import pays this module's import; docs/benchmarks.md).
        define_macros=[("_GNU_SOURCE", "1"), ("CYTHON_USE_MODULE_STATE", "1"),
                       ("CYTHON_COMPRESS_STRINGS", "0")],
    ),
    # The registry, the table builder and a consumer's warm import: plain C and
    # top-level, because a Cython module's import, or the package's __init__, costs
    # more than the whole replay (docs/decisions.md).
    Extension(
        "_libbroker_warm",
        ["csrc/_libbroker_warm.c"],
        include_dirs=["include"],
        define_macros=[("_GNU_SOURCE", "1")],
    ),
]

setup(
    ext_modules=cythonize(
        extensions,
        language_level=3,
        compiler_directives={"boundscheck": False, "wraparound": False},
    )
)
