"""Generate libbroker_zlib.h/.pxd from zlib.toml, then build the extension.

Note what is absent: no `libraries=["z"]`, no library_dirs, no rpath. The
extension never links zlib; libbroker hands it the functions at import.
"""

import os

import libbroker
from Cython.Build import cythonize
from setuptools import Extension, setup

HERE = os.path.dirname(os.path.abspath(__file__))
GENERATED = os.path.join(HERE, "build", "libbroker-headers")
libbroker.generate(libbroker.Spec.from_file(os.path.join(HERE, "zlib.toml")), GENERATED)

setup(
    ext_modules=cythonize(
        [
            Extension(
                "zlib_crc._fast",
                ["zlib_crc/_fast.pyx"],
                include_dirs=[libbroker.get_include(), GENERATED],
            )
        ],
        include_path=[GENERATED],
        language_level=3,
    )
)
