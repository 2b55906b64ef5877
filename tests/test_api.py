"""The Python API on real system libraries, checked against Python's own bindings."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import zlib

import pytest
from _concurrency import run_at_once
from _host import forget_answers
from packaging.version import Version

import libbroker
from libbroker import (
    IncompatibleLibraryError,
    Library,
    LibraryInfo,
    LibraryNotFoundError,
    NoAcceptableLibraryError,
)


def test_find_zlib_matches_pythons_zlib() -> None:
    info = libbroker.find("z")
    assert isinstance(info, LibraryInfo)
    assert os.path.isabs(info.path) and os.path.exists(info.path)
    assert info.soname == "libz.so.1"
    assert info.origin in ("system", "environment")
    # The file-name version (libz.so.1 -> libz.so.1.2.13) is the runtime zlib's.
    assert info.version == Version(zlib.ZLIB_RUNTIME_VERSION)


def test_find_does_not_load(libz: str) -> None:
    code = (
        "import libbroker, sys; info = libbroker.find('z'); "
        "from libbroker import _master; print(_master.noload(info.path) != 0, libbroker.loaded())"
    )
    # In a fresh process that never imported zlib-using code through libbroker,
    # find() leaves libbroker's own list empty.
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().endswith("[]")


def test_load_zlib_version_and_symbols() -> None:
    lib = libbroker.load("z")
    assert isinstance(lib, Library)
    assert lib.version == Version(zlib.ZLIB_RUNTIME_VERSION)
    assert "crc32" in lib and "no_such_function_xyz" not in lib
    assert lib.address("crc32") > 0
    with pytest.raises(libbroker.MissingSymbolError, match="no_such_function_xyz"):
        lib.address("no_such_function_xyz")
    assert lib in libbroker.loaded()
    assert lib.handle != 0


def test_load_sqlite3_version_matches_python() -> None:
    lib = libbroker.load("sqlite3")
    assert str(lib.version) == sqlite3.sqlite_version


def test_libm_linker_script_is_not_the_library() -> None:
    cands = libbroker.candidates("m")
    script = [c for c in cands if os.path.basename(c.path) == "libm.so" and not os.path.islink(c.path)]
    accepted = [c for c in cands if c.accepted]
    assert accepted and os.path.basename(os.path.realpath(accepted[0].path)).startswith("libm.so.6")
    if script:  # Debian ships /usr/lib/<triplet>/libm.so as a GNU ld script
        assert not script[0].accepted and "linker script" in script[0].reason
    assert libbroker.find("m").soname == "libm.so.6"


def test_libcrypto_found_and_loadable() -> None:
    info = libbroker.find("crypto")
    assert info.soname and info.soname.startswith("libcrypto.so.")
    lib = libbroker.load(info.path)
    assert "EVP_DigestInit_ex" in lib


def test_same_file_through_symlink_is_same_object(tmp_path, libz: str) -> None:
    link = tmp_path / "libz-alias.so"
    link.symlink_to(os.path.realpath(libz))
    a = libbroker.load(libz)
    b = libbroker.load(str(link))
    assert a is b and a.handle == b.handle


def test_32_threads_load_one_object(libdir_with) -> None:
    directory = libdir_with("libz.so.1", "liblbthreads.so.1")
    path = os.path.join(directory, "liblbthreads.so.1")
    results = run_at_once(lambda: libbroker.load(path))
    assert len(results) == 32
    assert len({id(r) for r in results}) == 1
    assert len({r.handle for r in results}) == 1  # type: ignore[attr-defined]


def test_find_override_directory_first(monkeypatch, libdir_with) -> None:
    directory = libdir_with("libz.so.1")
    monkeypatch.setenv("LIBBROKER_PATH", directory)
    info = libbroker.find("z")
    assert info.origin == "override"
    assert os.path.dirname(info.path) == directory


def test_unsatisfiable_version_specifier() -> None:
    with pytest.raises(IncompatibleLibraryError) as excinfo:
        libbroker.find("z", ">=99")
    message = str(excinfo.value)
    assert ">=99" in message and zlib.ZLIB_RUNTIME_VERSION in message
    assert isinstance(excinfo.value, LibraryNotFoundError)  # both: seen, and all rejected


def test_not_found_lists_places_searched() -> None:
    with pytest.raises(LibraryNotFoundError) as excinfo:
        libbroker.find("lb_surely_absent_library")
    assert not isinstance(excinfo.value, NoAcceptableLibraryError)
    message = str(excinfo.value)
    assert "ld.so.cache" in message and "default directory" in message
    assert excinfo.value.searched


def test_find_warm_is_served_from_memory(monkeypatch) -> None:
    first = libbroker.find("z")
    assert libbroker.find("z") is first


def test_find_from_disk_index_in_fresh_process(tmp_path) -> None:
    env = dict(os.environ, LIBBROKER_CACHE_DIR=str(tmp_path / "c"))
    code = (
        "import sys; before = set(sys.modules); import libbroker; i = libbroker.find('z'); "
        "new = set(sys.modules) - before; "
        "bad = [m for m in ('packaging', 're', 'typing', 'tomllib', 'importlib.metadata') if m in new];"
        "print(i.path, bad)"
    )
    cold = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    warm = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert cold.stdout.split()[0] == warm.stdout.split()[0]
    # Served from the disk index: none of the heavy modules was imported.
    assert warm.stdout.strip().endswith("[]"), warm.stdout


def test_get_include_has_header() -> None:
    assert os.path.isfile(os.path.join(libbroker.get_include(), "libbroker.h"))


def test_public_names() -> None:
    for name in (
        "__version__", "find", "candidates", "load", "loaded", "Spec", "table",
        "get_include", "report", "BrokerError", "SpecError", "LibraryNotFoundError",
        "IncompatibleLibraryError", "MissingSymbolError",
    ):
        assert hasattr(libbroker, name), name


def test_sqlite_find_never_reports_the_libtool_number() -> None:
    code = (
        "import libbroker\n"
        "before = libbroker.find('sqlite3').version_text\n"
        "import sqlite3\n"  # maps libsqlite3 in the process: a NOLOAD probe can ask it
        "libbroker._api._memo.clear()\n"
        "print(before, libbroker.find('sqlite3').version_text, sqlite3.sqlite_version)\n"
    )
    env = dict(os.environ)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    before, after, expected = out.stdout.split()
    # Before: the package database's version (or unknown), never libtool's 0.8.6.
    assert before != "0.8.6" and not before.startswith("0.")
    assert after == expected


def test_load_sqlite_with_version_specifier() -> None:
    lib = libbroker.load("sqlite3", ">=3.7")
    assert str(lib.version) == sqlite3.sqlite_version
    with pytest.raises(IncompatibleLibraryError, match=">=99"):
        libbroker.load("sqlite3", ">=99")


def test_truncated_elf_load_is_an_error_not_a_crash(tmp_path, libz) -> None:
    # glibc's dlopen maps pages past the end of a truncated file: SIGBUS if it got there.
    bad = tmp_path / "libz.so.2"
    bad.write_bytes(open(os.path.realpath(libz), "rb").read(3000))
    with pytest.raises(IncompatibleLibraryError, match="truncated"):
        libbroker.load(str(bad))


def test_load_path_reads_soname_and_version(libz) -> None:
    import pathlib

    lib = libbroker.load(pathlib.Path(os.path.realpath(libz)))
    assert lib.soname == "libz.so.1" and str(lib.version) == zlib.ZLIB_RUNTIME_VERSION


@pytest.mark.parametrize("bad", ["", " z", "../etc/z", None, 3])
def test_bad_names_rejected(bad) -> None:
    with pytest.raises(libbroker.SpecError):
        libbroker.find(bad)  # type: ignore[arg-type]


def test_soname_major_is_not_a_version() -> None:
    info = libbroker.find("crypto")
    # libcrypto.so.3: an ABI number, not OpenSSL 3.0.x (design.md 5.2: never the file name).
    assert info.version_source != "file-name"
    assert info.version is None or str(info.version) != "3"
    libm = libbroker.find("m")  # libm.so.6: glibc 2.36 (package database) or unknown, never 6
    assert libm.version is None or str(libm.version) != "6"


def test_dependency_and_version_source_are_public() -> None:
    from libbroker import Dependency

    info = libbroker.find("z")
    assert isinstance(info.dependencies, list)
    assert all(isinstance(d, Dependency) and os.path.isabs(d.path) for d in info.dependencies)
    assert info.version_source is not None  # zlib: the library, its package or its file name
    lib = libbroker.load("z")
    assert lib.version_source is not None and str(lib.version) == zlib.ZLIB_RUNTIME_VERSION


def test_cached_find_keeps_the_closure_and_ignores_corrupt_closures(tmp_path, monkeypatch) -> None:
    from libbroker import _cache

    monkeypatch.setenv("LIBBROKER_CACHE_DIR", str(tmp_path / "cache"))
    code = "import libbroker; i = libbroker.find('png16'); print(i.version_source, [d.needed for d in i.dependencies])"
    env = dict(os.environ, LIBBROKER_CACHE_DIR=str(tmp_path / "cache"))
    try:
        first = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    except subprocess.CalledProcessError:
        pytest.skip("libpng16 is not installed")
    second = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert first == second and "libz.so.1" in first
    assert str(_cache._file("find")).startswith(str(tmp_path))
    data = _cache.load("find")
    assert data
    for stamps, fields in data.values():
        fields["dependencies"] = [(1, 2)]  # a corrupt closure: the entry is re-judged, never a crash
    _cache.store("find", data)
    third = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert third == first


def test_every_verdict_carries_the_judged_identity(tmp_path) -> None:
    """review F0: find()'s answer (fresh with the version asked of a mapped copy, from memory,
    and from the disk cache in a fresh process) names the identity of the file judged, and so
    does each dependency; load() maps only those files. Child processes: nothing loaded yet."""
    import subprocess
    import sys

    code = (
        "import os, sys, zlib, libbroker; from libbroker import _cache\n"  # zlib maps libz
        "same = lambda p, i: i is not None and i == _cache.identity(os.path.realpath(p))\n"
        "for _ in range(2):\n"
        "    i = libbroker.find('z')\n"
        "    print(i.version_source, same(i.path, i._identity), all(same(d.path, d._identity) for d in i.dependencies))\n"
    )
    for _ in range(2):  # cold, then from the disk cache
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ))
        assert r.stdout.split() == ["library", "True", "True"] * 2, r.stdout + r.stderr


def test_an_override_naming_another_file_wins_over_a_loaded_copy(libdir_with) -> None:
    """design.md 5.1: a copy libbroker already loaded is reused, unless an override
    (here LIBBROKER_PATH) names another file: then that file is loaded as a second copy,
    with a DuplicateLibraryWarning naming both."""
    override = libdir_with("libz.so.1", subdir="override")
    code = (
        "import os, warnings, libbroker\n"
        "first = libbroker.load('z')\n"
        f"os.environ['LIBBROKER_PATH'] = {override!r}\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    second = libbroker.load('z')\n"
        "print(first.path); print(second.path); print(second.origin)\n"
        "print([str(w.message) for w in caught if issubclass(w.category, libbroker.DuplicateLibraryWarning)])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    first, second, origin, warned = out.stdout.splitlines()
    assert os.path.dirname(first) != override
    assert os.path.dirname(second) == override and origin == "override"
    assert override in warned and os.path.basename(first) in warned


def test_pip_install_without_providers_keeps_the_verdict(tmp_path) -> None:
    # issue 11: a sys.path directory gaining a distribution voids a cached find only when
    # the provider entry points seen change; else the verdict is re-stamped, not re-judged.
    site = tmp_path / "site"
    site.mkdir()
    env = dict(os.environ, LIBBROKER_CACHE_DIR=str(tmp_path / "c"), PYTHONPATH=str(site))
    code = (
        "import sys, libbroker, libbroker._resolve as r\n"
        "if sys.argv[1] == 'forbid':\n"
        "    def no(*a, **k): raise SystemExit('RESOLVED')\n"
        "    r.resolve = no\n"
        "print(libbroker.find('z').path)\n"
    )
    first = subprocess.run([sys.executable, "-c", code, "allow"], env=env, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    plain = site / "plain-1.0.dist-info"
    plain.mkdir()
    (plain / "METADATA").write_text("Metadata-Version: 2.1\nName: plain\nVersion: 1.0\n\n")
    (plain / "entry_points.txt").write_text("[console_scripts]\nplain = plain:main\n")
    again = subprocess.run([sys.executable, "-c", code, "forbid"], env=env, capture_output=True, text=True)
    assert again.returncode == 0 and again.stdout == first.stdout, again.stderr
    provider = site / "zprov-1.0.dist-info"
    provider.mkdir()
    (provider / "METADATA").write_text("Metadata-Version: 2.1\nName: zprov\nVersion: 1.0\n\n")
    (provider / "entry_points.txt").write_text("[libbroker.providers]\nz = zprov\n")
    changed = subprocess.run([sys.executable, "-c", code, "forbid"], env=env, capture_output=True, text=True)
    assert "RESOLVED" in changed.stderr  # a new provider: judged afresh


def test_version_is_asked_when_read_and_agrees_with_dpkg(tmp_path) -> None:
    """find() without a specifier does not read package databases; `.version` read later
    (in the same process, or from the cached verdict in the next one) still comes from
    the sources of design.md 5.2, and agrees with dpkg-query for the host's zlib."""
    from _host import host

    if not os.path.isdir("/var/lib/dpkg"):
        pytest.skip("no dpkg database")
    _real, package, expected = host("libz.so.1", "zlib1g")
    env = dict(os.environ, LIBBROKER_CACHE_DIR=str(tmp_path / "c"))
    code = (
        "import sys; import libbroker; i = libbroker.find('z'); "
        "asked = 'libbroker._pkgdb' in sys.modules; "
        "print(asked, i.version, i.version_source, i.as_dict()['version'])"
    )
    for _ in range(2):  # judged afresh, then replayed from the cache
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                             check=True).stdout.split()
        assert out == ["False", expected, f"package:dpkg:{package}", expected], out
    # With a specifier the version is the verdict's business: asked while judging.
    code = "import sys; import libbroker; i = libbroker.find('z', '>=1'); print('libbroker._pkgdb' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], env=dict(env, LIBBROKER_CACHE_DIR=str(tmp_path / "d")),
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True"]


def test_a_version_asked_later_is_the_judged_files(tmp_path, monkeypatch, libz) -> None:
    """review3 F1: after an upgrade re-points the link, a version asked later is the judged
    file's (or unknown once that file is gone), never the new file's; a loaded Library's
    is fixed when it is mapped."""
    from libbroker import _api, _loader

    real = os.path.realpath(libz)
    directory = tmp_path / "libs"
    directory.mkdir()
    os.chmod(directory, 0o755)

    def install(version: str) -> None:
        shutil.copy(real, directory / f"libz.so.{version}")
        link = directory / "libz.so.1"
        if link.is_symlink():
            link.unlink()
        os.symlink(f"libz.so.{version}", link)

    install("1.2.13")
    monkeypatch.setenv("LIBBROKER_PATH", str(directory))
    info = libbroker.find("z")
    cands = libbroker.candidates("z")
    install("1.3.1")  # the upgrade: a new file, the link re-pointed, the old file still there
    assert (info.version_text, info.version_source) == ("1.2.13", "file-name")
    assert cands[0].version_text == "1.2.13"
    _api._memo.clear()
    forget_answers()
    info = libbroker.find("z")  # judged on 1.3.1
    install("1.4.0")
    os.unlink(directory / "libz.so.1.3.1")  # ...and the judged file removed
    assert info.version is None and info.version_source is None
    _api._memo.clear()
    forget_answers()
    library = libbroker.load("z")
    mapped = library.version_text
    install("1.5.0")
    assert library.version_text == mapped and library in _loader.loaded()
