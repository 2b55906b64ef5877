"""Build-system helpers for extensions that call libraries through libbroker tables.

setuptools: generate the headers into the build directory as part of ``build_ext``
(nothing generated is committed; an unchanged spec rewrites nothing, so nothing is
re-cythonized or recompiled)::

    from setuptools import Extension, setup
    from libbroker.build import build_ext

    setup(
        ext_modules=[Extension("fastcrc", ["fastcrc.pyx"])],
        cmdclass={"build_ext": build_ext.with_specs("zlib.toml")},
    )

The specs can also be given as ``python setup.py build_ext --libbroker-specs a.toml,b.toml``
or in setup.cfg (``[build_ext] libbroker_specs = zlib.toml``). ``.pyx`` sources are
cythonized by Cython's own ``build_ext`` when Cython is installed.

meson (meson-python): ``libbroker config --includedir`` gives the include directory,
``libbroker config --pkgconfig`` the directory of ``libbroker.pc``; see
``examples/meson_zlib``.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

from ._api import get_include

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

_base_build_ext: Any
try:  # Cython's build_ext cythonizes .pyx sources with the include dirs added below
    from Cython.Distutils import (  # type: ignore[attr-defined,unused-ignore]
        build_ext as _base_build_ext,
    )
except ImportError:  # a C-only project: setuptools' own
    from setuptools.command.build_ext import (  # type: ignore[import-untyped,no-redef,unused-ignore]
        build_ext as _base_build_ext,
    )

GENERATED_SUBDIR = "libbroker-generated"


def pkgconfig_dir() -> str:
    """The directory holding ``libbroker.pc`` (add it to ``PKG_CONFIG_PATH``)."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "pkgconfig")


def generate_headers(specs: Sequence[str | os.PathLike[str]], outdir: str) -> list[str]:
    """Generate the headers of every spec into ``outdir``; return the files (paths).
    Raises SpecError for a bad spec (file and line named)."""
    from ._codegen import generate

    written: list[str] = []
    for spec in specs:
        written += generate(spec, outdir)
    return written


class build_ext(_base_build_ext):  # type: ignore[misc,unused-ignore]
    """``build_ext`` that first generates the libbroker headers of its specs into
    ``<build_temp>/libbroker-generated`` and adds that directory and
    ``libbroker.get_include()`` to every extension's include path."""

    user_options: ClassVar[list[tuple[str, str | None, str]]] = [
        *_base_build_ext.user_options,
        ("libbroker-specs=", None,
         "libbroker spec files to generate headers for (comma-separated)"),
    ]
    specs: tuple[str, ...] = ()

    @classmethod
    def with_specs(cls, *specs: str | os.PathLike[str]) -> type[build_ext]:
        """A subclass that generates the headers of ``specs`` (paths, relative to the
        directory of setup.py)."""
        return type("build_ext", (cls,), {"specs": tuple(os.fspath(s) for s in specs)})

    def initialize_options(self) -> None:
        super().initialize_options()
        self.libbroker_specs: str | None = None

    def build_extensions(self) -> None:
        specs = list(self.specs)
        if self.libbroker_specs:
            specs += [s.strip() for s in self.libbroker_specs.split(",") if s.strip()]
        outdir = os.path.join(self.build_temp, GENERATED_SUBDIR)
        generate_headers(specs, outdir)
        for ext in self.extensions:
            for directory in (get_include(), outdir):
                if directory not in ext.include_dirs:
                    ext.include_dirs.append(directory)
        super().build_extensions()


__all__ = ["GENERATED_SUBDIR", "build_ext", "generate_headers", "pkgconfig_dir"]
