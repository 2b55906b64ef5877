"""The master module's macOS code, compiled and linked here for x86_64 and arm64 with zig cc.

No Mac runs these: cython/_master.pyx is cythonized, then zig cc (PyPI `ziglang`, which ships
macOS's libc headers and libSystem's link stubs) compiles and links it as a macOS bundle
(`-undefined dynamic_lookup`, as Python extensions are linked on macOS).

Headers: this host's Python headers. Their pyconfig.h is Linux's; the ABI facts the
master module relies on (LP64: SIZEOF_LONG/SIZEOF_VOID_P 8, SIZEOF_WCHAR_T 4, little endian)
are the same on both macOS targets. It also defines _POSIX_C_SOURCE/_XOPEN_SOURCE, which on
Darwin hide everything beyond POSIX (RTLD_NOLOAD, the dyld API) unless _DARWIN_C_SOURCE is
defined, as macOS's own pyconfig.h does: so -D_DARWIN_C_SOURCE=1 here.

Oracles: the preprocessor's output (the macOS branch, not dl_iterate_phdr, is what was
compiled), `file`-independent Mach-O facts read by lief (architecture, undefined dyld symbols
bound to libSystem, the weak import of an API newer than the deployment target).
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from _zig import needs_zig, zig_cc

ROOT = Path(__file__).resolve().parent.parent
PYX = ROOT / "cython" / "_master.pyx"
INCLUDE = ROOT / "include"

# Warnings that mean "this code is wrong on that platform", made errors.
STRICT = (
    "-Werror=implicit-function-declaration",
    "-Werror=int-conversion",
    "-Werror=incompatible-pointer-types",
    "-Werror=unguarded-availability-new",
)

pytestmark = needs_zig


@pytest.fixture(scope="module")
def master_c(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("master") / "_master.c"
    subprocess.run(
        [sys.executable, "-m", "cython", "-3", "-X", "boundscheck=False", "-X", "wraparound=False",
         "-o", str(out), str(PYX)],
        check=True, capture_output=True, timeout=300,
    )
    return out


def flags(target: str) -> list[str]:
    return ["-target", target, "-D_DARWIN_C_SOURCE=1", "-DCYTHON_USE_MODULE_STATE=1", f"-I{sysconfig.get_paths()['include']}", f"-I{INCLUDE}"]


@pytest.mark.parametrize("target", ["x86_64-macos.10.13", "aarch64-macos.11.0"])
def test_macos_branch_is_the_one_compiled(master_c: Path, target: str) -> None:
    text = zig_cc(*flags(target), "-E", str(master_c)).stdout
    assert "_dyld_image_count()" in text and "_dyld_get_image_name(i)" in text
    assert "_dyld_shared_cache_contains_path(path)" in text
    assert "dl_iterate_phdr" not in text  # the Linux branch is out
    assert "LoadLibraryExW" not in text  # and so is Windows'
    assert "RTLD_NOLOAD" not in text  # a macro: expanded to Darwin's value, so <dlfcn.h> gave it


@pytest.mark.parametrize(
    ("target", "arch", "weak_cache_api"),
    [
        ("x86_64-macos.10.13", "x86_64", True),  # below 11.0, as cibuildwheel's x86_64 wheels (10.9+) are
        ("aarch64-macos.11.0", "arm64", False),  # the first macOS on Apple silicon has the API
    ],
)
def test_macos_bundle_links(master_c: Path, tmp_path: Path, target: str, arch: str, weak_cache_api: bool) -> None:
    import lief

    out = tmp_path / "_master.cpython-darwin.so"
    zig_cc(*flags(target), *STRICT, "-O2", "-fno-sanitize=undefined", "-shared", "-Wl,-undefined,dynamic_lookup", "-o", str(out), str(master_c))
    fat = lief.MachO.parse(str(out))
    assert fat is not None and fat.size == 1
    binary = fat.at(0)
    expected_cpu = {"x86_64": lief.MachO.Header.CPU_TYPE.X86_64, "arm64": lief.MachO.Header.CPU_TYPE.ARM64}[arch]
    assert binary.header.cpu_type == expected_cpu
    assert binary.header.file_type == lief.MachO.Header.FILE_TYPE.DYLIB
    libs = [lib.name for lib in binary.libraries if lib.command != lief.MachO.LoadCommand.TYPE.ID_DYLIB]
    assert libs == ["/usr/lib/libSystem.B.dylib"]  # nothing but the system: no DT_NEEDED-like leftovers
    bound = {b.symbol.name: b for b in binary.bindings if b.has_symbol}
    for symbol in ("__dyld_image_count", "__dyld_get_image_name", "_dlopen", "_dlsym", "_dlerror"):
        assert symbol in bound, symbol
        assert bound[symbol].library.name == "/usr/lib/libSystem.B.dylib"
    # macOS 11's API is weakly imported below 11.0, so the module still loads on 10.15
    assert bound["__dyld_shared_cache_contains_path"].weak_import is weak_cache_api
    # Python's own symbols stay undefined, looked up in the interpreter at load time
    assert "_PyCapsule_GetPointer" in {s.name for s in binary.symbols if s.is_external}
    assert os.path.getsize(out) > 0


@pytest.mark.skipif(sys.platform == "darwin", reason="off macOS only: there the cache answers")
def test_in_shared_cache_says_unknown_off_macos() -> None:
    from libbroker import _master

    assert _master.in_shared_cache("/usr/lib/libSystem.B.dylib") is None
    with pytest.raises(ValueError, match="NUL"):
        _master.in_shared_cache("/usr/lib/lib\0z.dylib")
