"""libbroker.table(): resolution, symbol checks, versions, one table per layout."""

from __future__ import annotations

import ctypes
import os
import sqlite3
import zlib
from pathlib import Path

import pytest
from _concurrency import run_at_once

import libbroker
from libbroker import _master

SPECS = Path(__file__).parent / "specs"


def _info(capsule: object) -> dict:
    return _master.table_info(capsule)


def test_zlib_table_slots_call_real_zlib() -> None:
    spec = libbroker.Spec.from_file(SPECS / "zlib.toml")
    capsule = libbroker.table(spec)
    info = _info(capsule)
    assert info["magic"] == _master.TABLE_MAGIC and info["abi_major"] == _master.ABI_MAJOR
    assert info["slot_count"] == len(spec.functions)
    assert info["layout_digest"] == spec.layout_digest
    assert info["signatures"] == spec.signatures
    assert info["library_version"] == zlib.ZLIB_RUNTIME_VERSION
    slots = dict(zip([fn.name for fn in spec.functions], info["slots"]))
    crc32 = ctypes.CFUNCTYPE(ctypes.c_ulong, ctypes.c_ulong, ctypes.c_char_p, ctypes.c_uint)(
        slots["crc32"]
    )
    data = os.urandom(100_000)
    assert crc32(0, data, len(data)) == zlib.crc32(data)
    # Optional slots: present one non-NULL, absent one NULL.
    assert slots["crc32_z"] != 0
    assert slots["libbroker_absent_probe"] == 0


def test_same_table_for_spec_path_and_text() -> None:
    path = SPECS / "zlib.toml"
    a = libbroker.table(libbroker.Spec.from_file(path))
    b = libbroker.table(str(path))
    c = libbroker.table(path.read_text())
    assert _master.table_address(a) == _master.table_address(b) == _master.table_address(c)


def test_sqlite_version_function() -> None:
    capsule = libbroker.table(SPECS / "sqlite3.toml")
    assert _info(capsule)["library_version"] == sqlite3.sqlite_version


def test_missing_required_symbols_all_named() -> None:
    text = """
[library]
name = "zmissing"
names = ["z"]
[functions]
required = ["unsigned long crc32(unsigned long, const unsigned char *, unsigned int)",
            "int lb_missing_one(void)", "int lb_missing_two(int)"]
"""
    with pytest.raises(libbroker.MissingSymbolError) as excinfo:
        libbroker.table(text)
    # Candidates are judged without loading: the required symbols are read from ELF,
    # and every missing one is named at once.
    assert excinfo.value.missing == ["lb_missing_one", "lb_missing_two"]
    assert excinfo.value.table == "zmissing"
    assert os.path.basename(excinfo.value.path).startswith("libz.so")


def test_missing_symbols_on_loaded_file_raise_missing_symbol_error(libz: str) -> None:
    lib = libbroker.load(libz)
    from libbroker._errors import MissingSymbolError

    with pytest.raises(MissingSymbolError) as excinfo:
        lib.address("lb_missing_one")
    assert "lb_missing_one" in str(excinfo.value)


def test_version_outside_specifier_shows_both() -> None:
    text = (SPECS / "zlib.toml").read_text().replace('version = ">=1.2.11"', 'version = ">=99"')
    text = text.replace('name = "zlib"', 'name = "zlib99"')
    with pytest.raises(libbroker.IncompatibleLibraryError) as excinfo:
        libbroker.table(text)
    message = str(excinfo.value)
    assert ">=99" in message and zlib.ZLIB_RUNTIME_VERSION in message


def test_version_function_absent() -> None:
    text = """
[library]
name = "zbadver"
names = ["z"]
version = ">=1"
version-function = "lb_no_version_here"
[functions]
required = ["unsigned long crc32(unsigned long, const unsigned char *, unsigned int)"]
"""
    with pytest.raises(libbroker.BrokerError, match="lb_no_version_here"):
        libbroker.table(text)


def test_32_threads_get_one_table() -> None:
    text = (SPECS / "zlib.toml").read_text().replace('name = "zlib"', 'name = "zlibthreads"')
    results = run_at_once(lambda: _master.table_address(libbroker.table(text)))
    assert len(results) == 32 and len(set(results)) == 1


def test_libm_table() -> None:
    import math

    capsule = libbroker.table(SPECS / "libm.toml")
    spec = libbroker.Spec.from_file(SPECS / "libm.toml")
    slots = dict(zip([fn.name for fn in spec.functions], _info(capsule)["slots"]))
    hypot = ctypes.CFUNCTYPE(ctypes.c_double, ctypes.c_double, ctypes.c_double)(slots["hypot"])
    assert hypot(3.0, 4.0) == math.hypot(3.0, 4.0)


def test_version_function_that_is_not_a_string_is_an_error() -> None:
    text = """
[library]
name = "cryptover"
names = ["crypto"]
version = ">=1"
version-function = "OPENSSL_version_major"
[functions]
required = ["int RAND_bytes(unsigned char *buf, int num)"]
"""
    # OPENSSL_version_major returns an unsigned int: reading it as a string must
    # be refused, never dereferenced.
    with pytest.raises(libbroker.IncompatibleLibraryError, match="not a const char"):
        libbroker.table(text)


VERSIONS_C = """
const char *lbv_null(void) { return 0; }
const char *lbv_junk(void) { return "no version in here"; }
const char *lbv_good(void) { return "lbv library 4.2.0 (built today)"; }
int lbv_one(void) { return 1; }
"""


@pytest.fixture(scope="module")
def lbv_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    import shutil
    import subprocess

    if shutil.which("gcc") is None:
        pytest.skip("gcc builds the test library")
    directory = tmp_path_factory.mktemp("lbv")
    os.chmod(directory, 0o755)
    (directory / "lbv.c").write_text(VERSIONS_C)
    subprocess.run(
        ["gcc", "-shared", "-fPIC", "-Wl,-soname,liblbv.so.4", "-o", str(directory / "liblbv.so.4"),
         str(directory / "lbv.c")],
        check=True,
    )
    return str(directory)


def _lbv_spec(function: str, version: str | None = ">=4") -> str:
    wanted = f'version = "{version}"\n' if version else ""
    return (
        f'[library]\nname = "lbv_{function}"\nnames = ["lbv"]\n{wanted}'
        f'version-function = "lbv_{function}"\n'
        f'[functions]\nrequired = ["int lbv_one(void)", "const char *lbv_{function}(void)"]\n'
    )


@pytest.mark.parametrize(
    ("function", "message"),
    [("null", "returned NULL"), ("junk", "no token parses as a version")],
)
def test_version_function_null_or_nonsense(lbv_dir, monkeypatch, function, message) -> None:
    monkeypatch.setenv("LIBBROKER_PATH", lbv_dir)
    with pytest.raises(libbroker.IncompatibleLibraryError, match=message):
        libbroker.table(_lbv_spec(function))


def test_version_function_first_version_token(lbv_dir, monkeypatch) -> None:
    monkeypatch.setenv("LIBBROKER_PATH", lbv_dir)
    info = _info(libbroker.table(_lbv_spec("good")))
    assert info["library_version"] == "4.2.0"
    with pytest.raises(libbroker.IncompatibleLibraryError, match="4.2.0"):
        libbroker.table(_lbv_spec("good", ">=5").replace('name = "lbv_good"', 'name = "lbv_good5"'))


def test_too_new_glibc_refused_by_load(tmp_path, libz) -> None:
    data = open(os.path.realpath(libz), "rb").read()
    assert b"GLIBC_2.14" in data
    patched = tmp_path / "libz.so.1.2.13"
    patched.write_bytes(data.replace(b"GLIBC_2.14", b"GLIBC_9.99"))
    with pytest.raises(libbroker.IncompatibleLibraryError, match="GLIBC_9.99"):
        libbroker.load(str(patched))


def test_table_unmaps_copies_rejected_for_their_version(tmp_path) -> None:
    # r10: table() tries the old copy first (its version is known only once loaded),
    # must pick the newer one and leave no second copy mapped for doctor to blame.
    import subprocess
    import sys
    import textwrap

    for version in ("3.31.1", "3.45.3"):
        d = tmp_path / version
        d.mkdir()
        src = d / "s.c"
        src.write_text(
            f'const char *sqlite3_libversion(void){{return "{version}";}}\n'
            "int sqlite3_open(const char*f,void**d){return 0;}\n"
        )
        subprocess.run(
            ["gcc", "-shared", "-fPIC", "-o", str(d / "libsqlite3.so.0.8.6"), str(src),
             "-Wl,-soname,libsqlite3.so.0"],
            check=True,
        )
        (d / "libsqlite3.so.0").symlink_to("libsqlite3.so.0.8.6")
    spec = tmp_path / "s.toml"
    spec.write_text(
        '[library]\nname = "sqlite"\nnames = ["sqlite3"]\nversion = ">=3.35"\n'
        'version-function = "sqlite3_libversion"\n'
        '[functions]\nrequired = ["int sqlite3_open(const char *f, void **db)"]\n'
    )
    script = textwrap.dedent(f"""
        import libbroker
        from libbroker import _master
        libbroker.table({str(spec)!r})
        print(libbroker.report()["duplicates"])
        print(sorted(p for p, _ in _master.loaded_objects() if "libsqlite3" in p))
    """)
    env = dict(
        os.environ,
        LIBBROKER_PATH=f"{tmp_path / '3.31.1'}:{tmp_path / '3.45.3'}",
        LIBBROKER_CACHE_DIR=str(tmp_path / "cache"),
        LIBBROKER_CONFIG=str(tmp_path / "none.toml"),
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=False)
    assert out.returncode == 0, out.stderr
    duplicates, mapped = out.stdout.splitlines()
    assert duplicates == "[]"
    assert "3.45.3" in mapped and "3.31.1" not in mapped


def test_readme_zlib_spec_where_zlib_is_zlib_ng(tmp_path) -> None:
    # zlib-ng in compat mode answers zlibVersion() with "1.3.1.zlib-ng": the README's
    # spec (version >=1.2.11, version-function zlibVersion) must accept it.
    import subprocess
    import sys
    import textwrap

    src = tmp_path / "ng.c"
    src.write_text(textwrap.dedent("""
        const char *zlibVersion(void) { return "1.3.1.zlib-ng"; }
        unsigned long crc32(unsigned long c, const unsigned char *b, unsigned int n) { return 42; }
        unsigned long adler32(unsigned long c, const unsigned char *b, unsigned int n) { return 7; }
        unsigned long compressBound(unsigned long n) { return n + 64; }
        int compress2(unsigned char *d, unsigned long *dl, const unsigned char *s, unsigned long sl, int l) { return -1; }
        int uncompress(unsigned char *d, unsigned long *dl, const unsigned char *s, unsigned long sl) { return -1; }
    """))
    ng = tmp_path / "ng"
    ng.mkdir()
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(ng / "libz.so.1.3.1.zlib-ng"), str(src),
                    "-Wl,-soname,libz.so.1"], check=True)
    (ng / "libz.so.1").symlink_to("libz.so.1.3.1.zlib-ng")
    spec = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "zlib_crc", "zlib.toml")
    script = textwrap.dedent(f"""
        import libbroker
        from libbroker._tables import resolve_spec, coerce_spec
        lib, _ = resolve_spec(coerce_spec({spec!r}))
        print(lib.path, lib.version)
    """)
    env = dict(os.environ, LIBBROKER_PATH=str(ng), LIBBROKER_CACHE_DIR=str(tmp_path / "cache"),
               LIBBROKER_CONFIG=str(tmp_path / "none.toml"))
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=False)
    assert out.returncode == 0, out.stderr
    path, version = out.stdout.split()
    assert path.startswith(str(ng)) and version == "1.3.1"


def test_an_earlier_name_appearing_later_voids_the_table_verdict(tmp_path: Path) -> None:
    # review5 F2: `names = ["lbmnfoo", "z"]` served by z from LIBBROKER_PATH depends on the
    # whole search for lbmnfoo (every place of an earlier name ranks first): a libz-like
    # liblbmnfoo appearing in a later place is chosen by the next process, cache or not.
    import subprocess
    import sys

    over = tmp_path / "over"
    later = tmp_path / "later"
    for d in (tmp_path, over, later):
        d.mkdir(exist_ok=True)
        os.chmod(d, 0o755)
    system = libbroker.find("z")
    (over / (system.soname or "libz.so.1")).write_bytes(Path(system.path).read_bytes())
    spec = tmp_path / "mn.toml"
    spec.write_text('[library]\nname = "mn"\nnames = ["lbmnfoo", "z"]\n[functions]\n'
                    'required = ["const char *zlibVersion(void)"]\n')
    env = {**os.environ, "LIBBROKER_PATH": str(over), "LD_LIBRARY_PATH": str(later),
           "LIBBROKER_CACHE_DIR": str(tmp_path / "cache"),
           "LIBBROKER_CONFIG": str(tmp_path / "no-config.toml")}
    code = (f"import libbroker\nlibbroker.table(libbroker.Spec.from_file({str(spec)!r}))\n"
            "print(sorted({l.split()[-1] for l in open('/proc/self/maps') if 'lbmn' in l or "
            f"{str(tmp_path)!r} in l}}))\n")

    def mapped() -> str:
        return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                              check=True).stdout.strip()

    assert str(over) in mapped()
    src = tmp_path / "foo.c"
    src.write_text('const char *zlibVersion(void) { return "9.9.9"; }\n')
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(later / "liblbmnfoo.so.1"), str(src),
                    "-Wl,-soname,liblbmnfoo.so.1"], check=True)
    os.symlink("liblbmnfoo.so.1", later / "liblbmnfoo.so")
    assert "liblbmnfoo.so.1" in mapped()


def test_a_version_refusal_names_each_copy_once_and_the_places(tmp_path: Path) -> None:
    # review5 F8: every copy refused for its version (asked of the library itself) is named
    # once, and the places searched are listed, as every not-found error lists them.
    import subprocess
    import sys

    over = tmp_path / "over"
    over.mkdir(mode=0o755)
    os.chmod(tmp_path, 0o755)
    system = libbroker.find("z")
    (over / (system.soname or "libz.so.1")).write_bytes(Path(system.path).read_bytes())
    spec = tmp_path / "z99.toml"
    spec.write_text('[library]\nname = "z99"\nnames = ["z"]\nversion = ">=99"\n'
                    'version-function = "zlibVersion"\n[functions]\n'
                    'required = ["const char *zlibVersion(void)"]\n')
    env = {**os.environ, "LIBBROKER_PATH": str(over), "LIBBROKER_CACHE_DIR": str(tmp_path / "cache"),
           "LIBBROKER_CONFIG": str(tmp_path / "no-config.toml")}
    code = (f"import libbroker\ntry:\n    libbroker.table(libbroker.Spec.from_file({str(spec)!r}))\n"
            "except libbroker.IncompatibleLibraryError as e:\n    print(e)\n")
    text = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True, cwd="/").stdout
    copy = str(over / (system.soname or "libz.so.1"))
    assert text.count(copy) == 1, text
    assert "searched: LIBBROKER_PATH" in text and "ld.so.cache" in text
