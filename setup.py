"""Builds the master module (cython/_master.pyx -> libbroker._master)."""

from Cython.Build import cythonize
from setuptools import Extension, setup

extensions = [
    Extension(
        "libbroker._master",
        ["cython/_master.pyx"],
        include_dirs=["include"],
        define_macros=[("_GNU_SOURCE", "1")],
    )
]

setup(
    ext_modules=cythonize(
        extensions,
        language_level=3,
        compiler_directives={"boundscheck": False, "wraparound": False},
    )
)
