"""libbroker._versions: product versions from the library itself, the package database,
and (for a few) the file name, checked against oracles nobody here wrote: dpkg-query,
Python's zlib/sqlite3/ssl modules, and gcc-built fixtures with known answers."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap

import pytest
from _host import SYSLIB, debian_upstream, dpkg, host, zlib_version
from hypothesis import given, settings
from hypothesis import strategies as st
from packaging.version import Version

from libbroker import _master, _versions
from libbroker._types import parse_version
from libbroker._versions import (
    file_name_version,
    library_version,
    package_version,
    parse_version_text,
    probe_for,
    version_if_mapped,
)

# ---------------------------------------------------------------------------
# The parser


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # design.md 5.2, verbatim
        ("expat_2.5.0", "2.5.0"),
        ("libcurl/7.88.1 OpenSSL/3.0.19", "7.88.1"),
        ("1.3.1.zlib-ng", "1.3.1"),
        ("1.0.8, 13-Jul-2019", "1.0.8"),
        ("OpenSSL 3.0.19 27 Jan 2026", "3.0.19"),
        # real answers of this host's libraries
        ("LIBTIFF, Version 4.5.0\nCopyright (c) 1988-1996 Sam Leffler", "4.5.0"),
        ("libcurl/7.88.1 OpenSSL/3.0.19 zlib/1.2.13 brotli/1.0.9", "7.88.1"),
        ("OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Haswell MAX_THREADS=64", "0.3.21"),
        ("libarchive 3.6.2", "3.6.2"),
        # a number inside a word is not a version; the first dotted one is
        ("libpng16 1.6.39", "1.6.39"),
        ("sqlite3 v3.40.1", "3.40.1"),
        ("2.0.0rc1", "2.0.0rc1"),
        ("3.2.0-beta2 (x)", "3.2.0b2"),
        ("1.2.3alphabet", "1.2.3"),
        ("1.1.1w  11 Sep 2023", "1.1.1"),
    ],
)
def test_parse_version_text(text: str, expected: str) -> None:
    assert parse_version_text(text) == expected
    assert Version(expected)  # always PEP 440


@pytest.mark.parametrize(
    "text",
    [None, "", "no digits here", "3", "version 12", ".1", "1.", "..", "1..2", "x86_64",
     "\x00\x01\x02", "²．³", "١.٢.٣", "1.2.3.4.5.6.7.8.9", "1234567890.1", 12345, b"1.2.3"],
)
def test_parse_version_text_refuses(text: object) -> None:
    assert parse_version_text(text) is None  # type: ignore[arg-type]


class _Watched(str):
    """A str that records every index or slice taken of it (not of its copies)."""

    taken: list[object]

    def __getitem__(self, key):
        self.taken.append(key)
        return str.__getitem__(self, key)


def test_parse_version_text_is_bounded() -> None:
    # 10 MB without a version, and a version past the scanned prefix: None, and only the
    # first 4096 characters are ever looked at (a deterministic measure, not a timing).
    for text in ("9" * 10_000_000, "x" * 5000 + " 1.2.3", "1." * 5_000_000):
        watched = _Watched(text)
        watched.taken = []
        assert parse_version_text(watched) is None
        assert watched.taken == [slice(None, 4096, None)]
    assert parse_version_text("a" * 100 + " 1.2.3") == "1.2.3"


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=st.sampled_from("0123456789.-_/ ,abrcv~\n\x00é²"), max_size=60))
def test_parse_version_text_any_text(text: str) -> None:
    found = parse_version_text(text)
    if found is not None:
        Version(found)  # always PEP 440
        release = found.split("a")[0].split("b")[0].split("rc")[0]
        assert release in text and release.count(".") >= 1  # a dotted number of the text


def test_types_parse_version_uses_it() -> None:
    assert parse_version("expat_2.5.0") == Version("2.5.0")
    assert parse_version("libcurl/7.88.1 OpenSSL/3.0.19") == Version("7.88.1")
    assert parse_version("0.3.28.0.2") == Version("0.3.28.0.2")  # a provider's PEP 440 version
    assert parse_version("3") == Version("3")
    assert parse_version("nothing") is None
    assert parse_version(None) is None


def test_warm_path_imports_nothing_heavy() -> None:
    code = textwrap.dedent("""
        import sys, libbroker, libbroker._types
        before = set(sys.modules)
        import libbroker._versions
        libbroker._versions.parse_version_text("expat_2.5.0")
        heavy = {"re", "json", "typing", "dataclasses", "pathlib"}
        print(sorted(heavy & (set(sys.modules) - before)))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------------------
# This host's libraries: the library's answer against dpkg's (tests/_host.py)

# (soname file, link name, Debian package, file name carries the product version)
HOST_LIBRARIES = [
    ("libz.so.1", "z", "zlib1g", True),
    ("libbz2.so.1.0", "bz2", "libbz2-1.0", False),
    ("libexpat.so.1", "expat", "libexpat1", False),
    ("libcurl.so.4", "curl", "libcurl4", False),
    ("libffi.so.8", "ffi", "libffi8", False),
    ("libpng16.so.16", "png16", "libpng16-16", False),
    ("libtiff.so.6", "tiff", "libtiff6", False),
    ("libuuid.so.1", "uuid", "libuuid1", False),
    ("libgmp.so.10", "gmp", "libgmp10", False),
    ("libcrypto.so.3", "crypto", "libssl3", False),
    ("libssl.so.3", "ssl", "libssl3", False),
    ("libzstd.so.1", "zstd", "libzstd1", True),
    ("liblzma.so.5", "lzma", "liblzma5", True),
    ("libfreetype.so.6", "freetype", "libfreetype6", False),
    ("libsqlite3.so.0", "sqlite3", "libsqlite3-0", False),
    ("libxml2.so.2", "xml2", "libxml2", True),
    ("libjpeg.so.62", "jpeg", "libjpeg62-turbo", False),
]
# Libraries that export no way to ask them (libffi 3.4.4, libuuid, libjpeg62):
# only the database knows.
NO_PROBE = {"ffi", "uuid", "jpeg"}


@pytest.mark.parametrize(("soname", "link", "package", "product_named"), HOST_LIBRARIES)
def test_host_library_versions(soname: str, link: str, package: str, product_named: bool) -> None:
    real, arch_package, expected = host(soname, package)
    interface = os.path.basename(real).partition(".so.")[2]

    # The package database, read by libbroker without running dpkg.
    assert package_version(real) == (expected, f"package:dpkg:{arch_package}")

    # The library's own answer.
    handle = _master.dlopen(real)
    problems: list[str] = []
    own = library_version(handle, link, soname, problems=problems)
    assert problems == []
    if link in NO_PROBE:
        assert own is None
    else:
        assert own == expected

    # File names: the product version only where the allow-list says so.
    if product_named:
        assert file_name_version(real, link) == expected
    else:
        assert file_name_version(real, link) is None
        if interface.count(".") >= 1:
            assert expected != interface  # the number the issue says was reported


# Every way of asking, one at a time: numbers with their decoding, data symbols.
SINGLE_STEPS = [
    ("libsqlite3.so.0", "libsqlite3-0", "sqlite3_libversion", "str", None),
    ("libsqlite3.so.0", "libsqlite3-0", "sqlite3_version", "data_array", None),
    ("libsqlite3.so.0", "libsqlite3-0", "sqlite3_libversion_number", "uint", "sqlite"),
    ("libzstd.so.1", "libzstd1", "ZSTD_versionNumber", "uint", "10000"),
    ("libpng16.so.16", "libpng16-16", "png_access_version_number", "uint", "10000"),
    ("libpng16.so.16", "libpng16-16", "png_get_libpng_ver", "str_null", None),
    ("liblzma.so.5", "liblzma5", "lzma_version_number", "uint", "lzma"),
    ("libcrypto.so.3", "libssl3", "OpenSSL_version_num", "ulong", "openssl"),
    ("libcrypto.so.3", "libssl3", "OpenSSL_version", "str_int", None),
    ("liblz4.so.1", "liblz4-1", "LZ4_versionNumber", "uint", "10000"),
    ("libgmp.so.10", "libgmp10", "__gmp_version", "data_ptr", None),
    ("libxml2.so.2", "libxml2", "xmlParserVersion", "data_ptr", "10000"),
    ("libwebp.so.7", "libwebp7", "WebPGetDecoderVersion", "uint", "webp"),
    ("libfreetype.so.6", "libfreetype6", "FT_Library_Version", "context_triple", None),
]


@pytest.mark.parametrize(("soname", "package", "symbol", "shape", "decode"), SINGLE_STEPS)
def test_each_probe_shape(soname: str, package: str, symbol: str, shape: str,
                          decode: str | None) -> None:
    real, _, expected = host(soname, package)
    handle = _master.dlopen(real)
    context = ("FT_Init_FreeType", "FT_Done_FreeType") if shape == "context_triple" else None
    step = _versions.Step(symbol, shape, decode=decode, context=context)
    assert _versions._run_step(handle, step, "", "", None) == expected


def test_python_modules_agree_when_they_map_the_same_file() -> None:
    # Python's own bindings are a second oracle, when they use this very file.
    import sqlite3
    import ssl
    import zlib

    mapped = {os.path.realpath(p) for p, _ in _master.loaded_objects()}
    checks = [("libz.so.1", "z", zlib.ZLIB_RUNTIME_VERSION),
              ("libsqlite3.so.0", "sqlite3", sqlite3.sqlite_version),
              ("libcrypto.so.3", "crypto", parse_version_text(ssl.OPENSSL_VERSION))]
    compared = 0
    for soname, link, answer in checks:
        real = os.path.realpath(os.path.join(SYSLIB, soname))
        if real in mapped:
            assert version_if_mapped(real, link, soname) == answer
            compared += 1
    if not compared:
        pytest.skip("this Python maps none of the system's zlib, sqlite3, libcrypto")


def test_version_if_mapped_never_loads(tmp_path) -> None:
    real = os.path.realpath(os.path.join(SYSLIB, "libz.so.1"))
    copy = tmp_path / "libz.so.1.2.13"
    shutil.copy2(real, copy)
    assert version_if_mapped(str(copy), "z", "libz.so.1") is None
    assert str(copy) not in {p for p, _ in _master.loaded_objects()}
    _master.dlopen(str(copy))
    assert version_if_mapped(str(copy), "z", "libz.so.1") == zlib_version()


def test_probe_table_names() -> None:
    assert probe_for("z", "libz.so.1").product == "zlib"  # type: ignore[union-attr]
    assert probe_for("anything", "libpng16.so.16").product == "libpng"  # type: ignore[union-attr]
    assert probe_for("crypto-3-x64", None).product == "OpenSSL"  # type: ignore[union-attr]
    assert probe_for("zlib1", None).product == "zlib"  # type: ignore[union-attr]
    assert probe_for("openblas64_", None).product == "OpenBLAS"  # type: ignore[union-attr]
    assert probe_for("scipy_openblas32", None).product == "OpenBLAS"  # type: ignore[union-attr]
    assert probe_for("uuid", "libuuid.so.1") is None
    assert probe_for("", None) is None


def test_scipy_openblas_wheel() -> None:
    scipy_openblas32 = pytest.importorskip("scipy_openblas32")
    from importlib.metadata import version

    lib = os.path.join(scipy_openblas32.get_lib_dir(), "libscipy_openblas.so")
    if not os.path.exists(lib):
        pytest.skip("scipy-openblas32 has no libscipy_openblas.so here")
    handle = _master.dlopen(lib)
    found = library_version(handle, "scipy_openblas32", "libscipy_openblas.so")
    # the wheel's version begins with OpenBLAS's (0.3.28.0.2 for 0.3.28; some builds
    # report the wheel's whole number)
    assert found is not None
    assert Version(version("scipy-openblas32")).release[:3] == Version(found).release[:3]


# ---------------------------------------------------------------------------
# Libraries that misbehave: a fixture built with gcc

BAD_SHAPES = r"""
#include <stddef.h>
#include <zlib.h>
const char *small_int(void) { return (const char *)42; }
const char *unmapped(void) { return (const char *)0x0000700000000000ULL; }
const char *binary(void) { static const char b[] = {1, '1', '.', '2', 0}; return b; }
const char *no_number(void) { return "version unknown"; }
static char long_text[100000];
const char *endless(void) {
    for (size_t i = 0; i + 1 < sizeof long_text; i++) long_text[i] = 'a';
    return long_text;
}
const char *with_int(int x) { return x == 0 ? "fixture 1.2.3" : NULL; }
const char *with_null(const void *p) { return p == NULL ? "fixture 4.5.6" : "pointer given"; }
unsigned int num32(void) { return 10203u; }
unsigned long num64(void) { return 0x123456789UL; }
const char *const ptr_ok = "fixture 7.8.9";
const char *const ptr_small = (const char *)16;
const char *const ptr_null = NULL;
const int not_text = 0x01020304;
const char array_ok[] = "fixture 9.8.7";
/* Depends on the real zlib, defines no zlibVersion of its own. */
unsigned long uses_zlib(void) { return zlibCompileFlags(); }
"""


@pytest.fixture(scope="module")
def bad_lib(tmp_path_factory) -> tuple[int, str]:
    if not shutil.which("gcc"):
        pytest.skip("gcc is needed to build the fixture")
    d = tmp_path_factory.mktemp("badshapes")
    (d / "bad.c").write_text(BAD_SHAPES)
    out = d / "libbadshapes.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-O0", "-o", str(out), str(d / "bad.c"), "-lz"],
                   check=True)
    return _master.dlopen(str(out)), str(out)


def _addr(handle: int, symbol: str) -> int:
    address = _master.dlsym(handle, symbol)
    assert address, symbol
    return address


def test_master_refuses_non_strings(bad_lib) -> None:
    h, _ = bad_lib
    for symbol in ("small_int", "unmapped", "binary"):
        with pytest.raises(ValueError, match="not a readable C string|not printable"):
            _master.call_string_function_int(_addr(h, symbol), 0)
        with pytest.raises(ValueError, match="not a readable C string|not printable"):
            _master.call_string_function_null(_addr(h, symbol))
    with pytest.raises(ValueError, match="not a readable C string"):
        _master.read_string_pointer(_addr(h, "ptr_small"))
    with pytest.raises(ValueError, match="not printable"):
        _master.read_string_array(_addr(h, "not_text"))
    with pytest.raises(ValueError, match="not a readable C string|not printable"):
        _master.read_string_pointer(_addr(h, "not_text"))  # 4 bytes of int read as a pointer
    with pytest.raises(ValueError, match="address is 0"):
        _master.read_string_array(0)
    with pytest.raises(ValueError, match="expected 'unsigned int'"):
        _master.call_number_function(_addr(h, "num32"), "double")


def test_master_shapes_answer(bad_lib) -> None:
    h, _ = bad_lib
    assert _master.call_string_function_int(_addr(h, "with_int"), 0) == b"fixture 1.2.3"
    assert _master.call_string_function_int(_addr(h, "with_int"), 1) is None
    assert _master.call_string_function_null(_addr(h, "with_null")) == b"fixture 4.5.6"
    assert _master.call_number_function(_addr(h, "num32"), "unsigned int") == 10203
    assert _master.call_number_function(_addr(h, "num64"), "unsigned long") == 0x123456789
    assert _master.read_string_pointer(_addr(h, "ptr_ok")) == b"fixture 7.8.9"
    assert _master.read_string_pointer(_addr(h, "ptr_null")) is None
    assert _master.read_string_array(_addr(h, "array_ok")) == b"fixture 9.8.7"
    assert len(_master.call_string_function_null(_addr(h, "endless")) or b"") == 4096  # bounded


def test_library_version_reports_why(bad_lib) -> None:
    h, _ = bad_lib
    problems: list[str] = []
    assert library_version(h, "badshapes", None, "small_int", problems=problems) is None
    assert "not a readable C string" in problems[-1]
    assert library_version(h, "badshapes", None, "no_number", problems=problems) is None
    assert "no dotted version number" in problems[-1]
    assert library_version(h, "badshapes", None, "binary", problems=problems) is None
    assert "not printable" in problems[-1]
    assert library_version(h, "badshapes", None, "absent_function") is None
    assert library_version(h, "badshapes", None, "with_null") is None  # called with no argument


def test_probe_refuses_a_dependencys_symbol(bad_lib) -> None:
    h, path = bad_lib
    address = _master.dlsym(h, "zlibVersion")  # found in libz, a dependency
    assert address and _master.symbol_in_object(h, address) is False
    assert _master.symbol_in_object(h, _addr(h, "num32")) is True
    # Named like zlib, it would otherwise report the real zlib's version.
    assert library_version(h, "z", "libz.so.1") is None
    assert file_name_version(path, "z") is None


def test_best_version_order(tmp_path) -> None:
    real, arch_package, expected = host("libffi.so.8", "libffi8")
    # libffi 3.4.4 cannot be asked: the package database answers, never the 8.1.2 of its name.
    assert _versions.best_version(real, "ffi", "libffi.so.8") == (
        expected, f"package:dpkg:{arch_package}")
    real, _, expected = host("libcurl.so.4", "libcurl4")
    handle = _master.dlopen(real)
    assert _versions.best_version(real, "curl", "libcurl.so.4", handle) == (expected, "library")
    # A copy no package owns and nobody loaded: only a product-numbered name speaks.
    zreal, _, zlib_expected = host("libz.so.1", "zlib1g")
    copy = tmp_path / os.path.basename(zreal)
    shutil.copy2(zreal, copy)
    assert _versions.best_version(str(copy), "z", "libz.so.1") == (zlib_expected, "file-name")
    bz2 = tmp_path / "libbz2.so.1.0.4"
    shutil.copy2(os.path.join(SYSLIB, "libbz2.so.1.0"), bz2)
    assert _versions.best_version(str(bz2), "bz2", "libbz2.so.1.0") is None


@pytest.mark.parametrize(("decoder", "number", "expected"), [
    # the macros' documented values in each project's header
    ("openssl", 0x1010117F, "1.1.1"),  # OPENSSL_VERSION_NUMBER of 1.1.1w
    ("openssl", 0x30000130, "3.0.19"),  # 3.x: MNN00PP0, patch 19 = 0x13
    ("openssl", 0x1000214F, "1.0.2"),  # 1.0.2u
    ("sqlite", 3040001, "3.40.1"),  # SQLITE_VERSION_NUMBER
    ("lzma", 50020052, "5.2.5"),  # LZMA_VERSION of xz 5.2.5 (stable)
    ("10000", 10639, "1.6.39"),  # PNG_LIBPNG_VER
    ("10000", 10504, "1.5.4"),  # ZSTD_VERSION_NUMBER
    ("10000", 20914, "2.9.14"),  # LIBXML_VERSION
    ("webp", 0x010204, "1.2.4"),  # WebPGetDecoderVersion
])
def test_decoders(decoder: str, number: int, expected: str) -> None:
    assert _versions.DECODERS[decoder](number) == expected


def test_library_version_without_a_handle() -> None:
    assert library_version(0, "z", "libz.so.1") is None


def test_every_product_numbered_file_here_agrees_with_dpkg() -> None:
    # The allow-list against every library file of this host that it speaks for.
    checked = 0
    for name in sorted(os.listdir(SYSLIB)):
        path = os.path.join(SYSLIB, name)
        if os.path.islink(path) or not os.path.isfile(path):
            continue
        by_name = file_name_version(path, "")
        if by_name is None:
            continue
        owner = dpkg("-S", path) or dpkg("-S", path.replace("/usr/lib/", "/lib/", 1))
        if not owner:
            continue
        package = owner.split(": ")[0].split(", ")[0]  # "libicu72:amd64: /usr/lib/..."
        version = dpkg("-W", "-f=${Version}", package)
        assert version, owner
        assert by_name == debian_upstream(version), (path, owner, version)
        checked += 1
    if not checked:
        pytest.skip("no product-numbered library file owned by dpkg here")


@pytest.mark.parametrize(("name", "product"), [
    # Windows DLL names (vcpkg, conda-forge, MSYS2, OpenSSL's own builds) and macOS dylibs
    ("zlib1.dll", "zlib"), ("libcrypto-3-x64.dll", "OpenSSL"), ("libssl-1_1-x64.dll", "OpenSSL"),
    ("libcurl.dll", "curl"), ("libexpat.dll", "expat"), ("libpng16-16.dll", "libpng"),
    ("libbz2.dll", "bzip2"), ("liblzma.dll", "xz"), ("zstd.dll", "zstd"), ("libffi-8.dll", "libffi"),
    ("tiff.dll", "libtiff"), ("sqlite3.dll", "SQLite"), ("libxml2-2.dll", "libxml2"),
    ("libgmp-10.dll", "GMP"), ("libfreetype-6.dll", "FreeType"), ("libpixman-1-0.dll", "pixman"),
    ("libz.1.dylib", "zlib"), ("libssl.3.dylib", "OpenSSL"), ("libzstd.1.5.5.dylib", "zstd"),
    ("libscipy_openblas64_.so", "OpenBLAS"), ("libopenblasp-r0.3.21.so", "OpenBLAS"),
])
def test_probe_names_across_platforms(name: str, product: str) -> None:
    probe = probe_for("", name)
    assert probe is not None and probe.product == product


# ---------------------------------------------------------------------------
# Every surface shows the one version, with its source (design.md 5.2): find,
# candidates, load by name and by path, table (cold and from the disk index),
# `check`, `list`. Interface numbers in file names are never shown.

# (soname file, link name, Debian package, a function the spec requires)
SURFACE_LIBRARIES = [
    ("libgmp.so.10", "gmp", "libgmp10", "void __gmpz_init(void *)"),
    ("libffi.so.8", "ffi", "libffi8", "int ffi_prep_cif(void *, int, unsigned int, void *, void *)"),
    ("libbz2.so.1.0", "bz2", "libbz2-1.0", "const char *BZ2_bzlibVersion(void)"),
    ("libcurl.so.4", "curl", "libcurl4", "const char *curl_version(void)"),
    ("libexpat.so.1", "expat", "libexpat1", "const char *XML_ExpatVersion(void)"),
    ("libtiff.so.6", "tiff", "libtiff6", "const char *TIFFGetVersion(void)"),
]

SURFACES = textwrap.dedent("""
    import json, os, subprocess, sys
    import libbroker
    link, real, spec = sys.argv[1:4]
    def pair(obj):
        return [obj.version_text, obj.version_source]
    out = {"find": pair(libbroker.find(link)),
           "candidates": pair(next(c for c in libbroker.candidates(link) if c.accepted))}
    libbroker.table(spec)
    out["table"] = pair(next(l for l in libbroker.loaded() if l.name == link))
    out["load"] = pair(libbroker.load(link))
    out["load_path"] = pair(libbroker.load(real))
    print(json.dumps(out))
""")


def _cli_json(*args: str, env: dict[str, str]) -> object:
    import json

    done = subprocess.run([sys.executable, "-m", "libbroker", *args, "--json"], capture_output=True,
                          text=True, env=env, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Debian libraries")
@pytest.mark.parametrize(("soname", "link", "package", "function"), SURFACE_LIBRARIES)
def test_every_surface_shows_the_product_version(tmp_path, soname: str, link: str, package: str,
                                                 function: str) -> None:
    import json

    real, arch_package, expected = host(soname, package)
    interface = os.path.basename(real).partition(".so.")[2]
    assert interface != expected  # the file name's numbers are not the version (dpkg says)
    spec = tmp_path / f"{link}.toml"
    spec.write_text(f'[library]\nname = "surface_{link}"\nnames = ["{link}"]\n'
                    f'[functions]\nrequired = ["{function}"]\n')
    env = {**os.environ, "LIBBROKER_CACHE_DIR": str(tmp_path / "cache")}
    allowed = {"library", f"package:dpkg:{arch_package}"}

    shown: dict[str, list[str | None]] = {}
    for run in ("cold", "warm"):  # the second process reads the table from the disk index
        done = subprocess.run([sys.executable, "-c", SURFACES, link, real, str(spec)],
                              capture_output=True, text=True, env=env, timeout=300, check=False)
        assert done.returncode == 0, done.stderr
        shown.update({f"{k} ({run})": v for k, v in json.loads(done.stdout).items()})
    check = _cli_json("check", str(spec), env=env)
    assert isinstance(check, dict)
    shown["check"] = [check["version"], check["library"]["version_source"]]
    found = _cli_json("find", link, env=env)
    assert isinstance(found, dict)
    shown["cli find"] = [found["version"], found["version_source"]]
    listed = _cli_json("list", env=env)
    assert isinstance(listed, dict)
    item = next(i for i in listed["system"] if os.path.realpath(i["path"]) == real)
    shown["list"] = [item["version"], item["version_source"]]
    for surface, (version, source) in shown.items():
        assert version == expected and source in allowed, (surface, version, source, expected)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Debian libraries")
def test_unknown_beats_the_file_names_interface_numbers(tmp_path, monkeypatch) -> None:
    """A copy no package owns, of a library that cannot be asked (libffi 3.4.4): no version,
    on every surface, never the 8.1.2 of its name; gmp's copy answers itself once loaded."""
    import json

    ffi_real, _, _ = host("libffi.so.8", "libffi8")
    gmp_real, _, gmp_expected = host("libgmp.so.10", "libgmp10")
    if library_version(_master.dlopen(ffi_real), "ffi", "libffi.so.8") is not None:
        pytest.skip("this libffi reports its own version")
    copies = tmp_path / "copies"
    copies.mkdir()
    for real, soname in ((ffi_real, "libffi.so.8"), (gmp_real, "libgmp.so.10")):
        shutil.copy2(real, copies / os.path.basename(real))
        os.symlink(os.path.basename(real), copies / soname)
    env = {**os.environ, "LIBBROKER_CACHE_DIR": str(tmp_path / "cache"),
           "LIBBROKER_PATH": str(copies)}
    code = textwrap.dedent("""
        import json, sys, libbroker
        ffi, gmp = sys.argv[1:3]
        pair = lambda o: [o.version_text, o.version_source]
        print(json.dumps({"find ffi": pair(libbroker.find("ffi")),
                          "load ffi": pair(libbroker.load("ffi")),
                          "load ffi path": pair(libbroker.load(ffi)),
                          "load gmp path": pair(libbroker.load(gmp))}))
    """)
    done = subprocess.run(
        [sys.executable, "-c", code, str(copies / os.path.basename(ffi_real)),
         str(copies / os.path.basename(gmp_real))],
        capture_output=True, text=True, env=env, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown.pop("load gmp path") == [gmp_expected, "library"]
    assert all(v == [None, None] for v in shown.values()), shown

    spec = tmp_path / "gmp.toml"
    spec.write_text('[library]\nname = "copied_gmp"\nnames = ["gmp"]\n'
                    '[functions]\nrequired = ["void __gmpz_init(void *)"]\n')
    check = _cli_json("check", str(spec), env=env)
    assert isinstance(check, dict)
    assert check["path"].startswith(str(copies))
    assert (check["version"], check["library"]["version_source"]) == (gmp_expected, "library")


def test_one_source_of_versions() -> None:
    """The parallel paths are gone: every caller asks libbroker._versions."""
    from libbroker import _discovery, _resolve, _types

    for module, name in ((_types, "KNOWN_VERSION_FUNCTIONS"), (_types, "LIBTOOL_NUMBERED"),
                         (_discovery, "version_from_filename")):
        assert not hasattr(module, name), name
    bz2_real, _, _ = host("libbz2.so.1.0", "libbz2-1.0")
    # The resolver's and the loader's entry point is best_version, whatever it finds.
    assert _resolve.product_version(bz2_real, "bz2") == _versions.best_version(
        bz2_real, "bz2", "libbz2.so.1.0")
