"""Fixtures the benchmarks build for themselves in a temporary directory.

A tiny `libbenchadd.so` (gcc), specs, generated headers, and five Cython
extensions built in one setuptools run: the brokered and the directly linked
`bench_add` callers, a caller through a hand-written pointer type without
`noexcept`, a raw C `dlsym` loop, and a zlib consumer like examples/zlib_crc.
The benchmarks may run gcc; the package itself never does.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap

import builders

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
ZLIB_SPEC = os.path.join(ROOT, "examples", "zlib_crc", "zlib.toml")
TABLE_SIZE = 1500

BENCHADD_C = "int bench_add(int a, int b) { return a + b; }\n"
BENCHADD_H = "int bench_add(int a, int b);\n"
BENCHADD_SPEC = """\
[library]
name = "benchadd"
names = ["benchadd"]

[functions]
required = ["int bench_add(int a, int b)"]
"""

# Both callers share this body; only where `bench_add` comes from differs.
_CALLER_BODY = """
def c_loop(int n):
    cdef int i, acc = 0
    with nogil:
        for i in range(n):
            acc = {call}(acc, 1)
    return acc


cpdef int add(int a, int b) noexcept:
    return {call}(a, b)
"""

BROKERED_PYX = (
    "# cython: language_level=3\n"
    "cimport libbroker_benchadd as ba\n\n"
    "ba.import_benchadd()\n" + _CALLER_BODY.format(call="ba.bench_add")
)

DIRECT_PYX = (
    "# cython: language_level=3\n"
    'cdef extern from "benchadd.h":\n'
    "    int bench_add(int a, int b) noexcept nogil\n" + _CALLER_BODY.format(call="bench_add")
)

# The pointer type a hand-written .pxd would declare outside `cdef extern`: without
# `noexcept`, Cython 3 treats it as `except *` and tests PyErr_Occurred() after every
# call (acquiring the GIL to do so inside `nogil`).
HAND_PXD = """\
cdef extern from "libbroker_benchadd.h":
    ctypedef struct libbroker_benchadd_table:
        int (*bench_add)(int, int) noexcept nogil
    libbroker_benchadd_table *table "libbroker_benchadd"
    int import_benchadd "libbroker_import_benchadd"() except -1

ctypedef int (*add_fn)(int, int) nogil
"""

NOEXC_PYX = """\
# cython: language_level=3
cimport handadd

handadd.import_benchadd()


def c_loop(int n):
    cdef int i, acc = 0
    cdef handadd.add_fn f = <handadd.add_fn>handadd.table.bench_add
    with nogil:
        for i in range(n):
            acc = f(acc, 1)
    return acc


def c_loop_gil(int n):
    cdef int i, acc = 0
    cdef handadd.add_fn f = <handadd.add_fn>handadd.table.bench_add
    for i in range(n):
        acc = f(acc, 1)
    return acc
"""

DLSYM_PYX = """\
# cython: language_level=3, boundscheck=False, wraparound=False
from libc.stdlib cimport malloc, free

cdef extern from "<dlfcn.h>" nogil:
    void *dlsym(void *handle, const char *symbol)

cdef const char **names = NULL
cdef void **slots = NULL
cdef Py_ssize_t count = 0
cdef list keep = []


def prepare(list symbols):
    \"\"\"Hold the C strings, so run() is nothing but the dlsym loop.\"\"\"
    global names, slots, count, keep
    keep = [bytes(s) for s in symbols]
    free(names)
    free(slots)
    count = len(keep)
    names = <const char **>malloc(count * sizeof(char *))
    slots = <void **>malloc(count * sizeof(void *))
    for i in range(count):
        names[i] = <const char *>keep[i]


def run(size_t handle):
    \"\"\"dlsym every prepared name; the number found.\"\"\"
    cdef Py_ssize_t i, found = 0
    with nogil:
        for i in range(count):
            slots[i] = dlsym(<void *>handle, names[i])
            if slots[i] != NULL:
                found += 1
    return found
"""

ZCONSUMER_PYX = """\
# cython: language_level=3
cimport libbroker_zlib as zlib

zlib.import_zlib()


def crc32(const unsigned char[::1] data):
    return zlib.crc32(0, &data[0], <unsigned int>data.shape[0]) if data.shape[0] else 0
"""

# The same consumer linked the ordinary way (-lz, zlib.h): what libbroker replaces.
ZLINKED_PYX = """\
# cython: language_level=3
cdef extern from "zlib.h" nogil:
    unsigned long crc32(unsigned long crc, const unsigned char *buf, unsigned int len)


def crc32_(const unsigned char[::1] data):
    return crc32(0, &data[0], <unsigned int>data.shape[0]) if data.shape[0] else 0
"""

SETUP_PY = """\
import sys
from Cython.Build import cythonize
from setuptools import Extension, setup

GEN, SRC, LIB, INCLUDE = {gen!r}, {src!r}, {lib!r}, {include!r}
brokered = dict(include_dirs=[INCLUDE, GEN])
extensions = [
    Extension("bench_brokered", ["bench_brokered.pyx"], **brokered),
    Extension("bench_noexc", ["bench_noexc.pyx"], **brokered),
    Extension("bench_zconsumer", ["bench_zconsumer.pyx"], **brokered),
    # Linked the ordinary way: DT_NEEDED + rpath, calls through the PLT. The
    # function lives in another .so, so the compiler cannot inline it.
    Extension("bench_direct", ["bench_direct.pyx"], include_dirs=[SRC],
              libraries=["benchadd"], library_dirs=[LIB], runtime_library_dirs=[LIB]),
    Extension("bench_dlsym", ["bench_dlsym.pyx"]),
    Extension("bench_zlinked", ["bench_zlinked.pyx"], libraries=["z"]),
]
setup(
    script_args=["build_ext", "--inplace", "-j", "2"],
    ext_modules=cythonize(extensions, include_path=[GEN], nthreads=2, quiet=True),
)
"""


class Fixtures:
    """Paths of everything built under *root*."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.lib = os.path.join(root, "lib")  # LIBBROKER_PATH: libbenchadd.so only
        self.src = os.path.join(root, "src")
        self.gen = os.path.join(root, "gen")
        self.build = os.path.join(root, "build")  # the extensions; cwd of the children
        self.cache = os.path.join(root, "cache")  # LIBBROKER_CACHE_DIR
        # A directory on every child's sys.path (PYTHONPATH): "invalidated" touches it,
        # as any `pip install` touches site-packages.
        self.site = os.path.join(root, "site")
        self.ext = os.path.join(root, "ext")  # C extension consumers (builders.py)
        self.pycache = os.path.join(root, "pycache")  # PYTHONPYCACHEPREFIX of the children
        # libbroker laid out as a wheel installs it (the package directory with its built
        # master): the children import it from here, first on their path, not through
        # the development venv's editable-install finder (a .pth hook and a meta-path
        # finder a user's installed wheel does not have).
        self.installed = os.path.join(root, "installed")
        self.benchadd_spec = os.path.join(self.src, "benchadd.toml")
        self.openblas_spec = os.path.join(self.src, "openblas1500.toml")
        self.openblas_path = ""
        self.openblas_symbols: list[str] = []
        for path in (self.lib, self.src, self.gen, self.build, self.cache, self.pycache,
                     self.site, self.ext, self.installed):
            os.makedirs(path, exist_ok=True)

    def environ(self) -> dict[str, str]:
        """The environment every child and the benchmark process itself use."""
        env = dict(os.environ)
        env["LIBBROKER_PATH"] = self.lib
        env["LIBBROKER_CACHE_DIR"] = self.cache
        # An installed wheel runs from byte-code; a PYTHONDONTWRITEBYTECODE=1 shell
        # would make every child compile libbroker's sources again. The byte-code
        # goes under the fixture directory, never beside the sources.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = self.pycache
        path = [self.installed, self.build, self.ext, self.site]
        if env.get("PYTHONPATH"):
            path.append(env["PYTHONPATH"])
        env["PYTHONPATH"] = os.pathsep.join(path)
        return env

    def environ_no_bytecode(self) -> dict[str, str]:
        """As environ(), but compiling every .py without a stored .pyc (for reference)."""
        env = self.environ()
        del env["PYTHONPYCACHEPREFIX"]
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        return env


def _write(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def _run(argv: Sequence[str], cwd: str, what: str, env: dict[str, str] | None = None) -> None:
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, env=env,
                          check=False)
    if proc.returncode != 0:
        raise RuntimeError(
            f"{what} failed with exit code {proc.returncode}: {' '.join(argv)!r} in {cwd!r}\n"
            f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )


def openblas_symbols(path: str, count: int = TABLE_SIZE) -> list[str]:
    """*count* exported `scipy_*` functions, spread evenly over the sorted export list.

    Returned without the `scipy_` prefix, as a spec with symbol-prefix names them.
    """
    from libbroker import _binary as _elffile

    names = sorted(
        f[len("scipy_"):]
        for f in _elffile.read_binary(path).functions
        if f.startswith("scipy_") and f[len("scipy_"):].isidentifier()
    )
    if len(names) < count:
        raise RuntimeError(
            f"expected at least {count} scipy_* functions in {path!r}, found {len(names)}"
        )
    step = len(names) / count
    return [names[int(i * step)] for i in range(count)]


def _spec_text(name: str, header: str, prototypes: list[str]) -> str:
    body = "".join(f'  "{p}",\n' for p in prototypes)
    return f'[library]\nname = "{name}"\n{header}\n[functions]\nrequired = [\n{body}]\n'


def build(root: str, *, quick: bool = False) -> Fixtures:
    """Build every fixture under *root*; RuntimeError with the tool output on failure.

    *quick* compiles the Cython extensions at -O0 (their figures then mean nothing;
    --quick only proves the runner works).
    """
    import scipy_openblas32

    import libbroker

    fx = Fixtures(root)
    # symlinks=False: the include/ link of the source tree becomes a directory, as in a wheel.
    shutil.copytree(os.path.dirname(libbroker.__file__), os.path.join(fx.installed, "libbroker"),
                    ignore=shutil.ignore_patterns("__pycache__"), dirs_exist_ok=True)
    # The touched sys.path directory looks like a small site-packages.
    builders.distributions(root, 17, site=fx.site)
    _write(os.path.join(fx.src, "benchadd.c"), BENCHADD_C)
    _write(os.path.join(fx.src, "benchadd.h"), BENCHADD_H)
    _run(
        ["gcc", "-O2", "-shared", "-fPIC", "-o", os.path.join(fx.lib, "libbenchadd.so"),
         os.path.join(fx.src, "benchadd.c")],
        fx.src,
        "compiling libbenchadd.so",
    )
    _write(fx.benchadd_spec, BENCHADD_SPEC)
    libbroker.generate(libbroker.Spec.from_file(fx.benchadd_spec), fx.gen)
    libbroker.generate(libbroker.Spec.from_file(ZLIB_SPEC), fx.gen)

    fx.openblas_path = os.path.join(scipy_openblas32.get_lib_dir(), "libscipy_openblas.so")
    fx.openblas_symbols = openblas_symbols(fx.openblas_path)
    header = 'names = ["scipy_openblas"]\npackages = ["scipy-openblas32"]\nsymbol-prefix = "scipy_"\n'
    _write(
        fx.openblas_spec,
        _spec_text("openblas1500", header, [f"int {n}(void)" for n in fx.openblas_symbols]),
    )

    sources = {
        "bench_brokered.pyx": BROKERED_PYX,
        "bench_direct.pyx": DIRECT_PYX,
        "bench_noexc.pyx": NOEXC_PYX,
        "handadd.pxd": HAND_PXD,
        "bench_dlsym.pyx": DLSYM_PYX,
        "bench_zconsumer.pyx": ZCONSUMER_PYX,
        "bench_zlinked.pyx": ZLINKED_PYX,
    }
    for name, text in sources.items():
        _write(os.path.join(fx.build, name), textwrap.dedent(text))
    _write(
        os.path.join(fx.build, "setup.py"),
        SETUP_PY.format(gen=fx.gen, src=fx.src, lib=fx.lib, include=libbroker.get_include()),
    )
    env = dict(os.environ)
    if quick:
        env["CFLAGS"] = env.get("CFLAGS", "") + " -O0"
    _run([sys.executable, "setup.py"], fx.build, "building the Cython fixtures", env=env)
    return fx
