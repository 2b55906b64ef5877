"""The public API under wine: libbroker.find/load/table/report and a C consumer
on mingw-built DLLs, through discovery's Windows places and the closure's safe
DLL search (libbroker._platforms._windows), not through the master module alone.

Fixtures (.ci/wine-tier.sh): lib/lbmain.dll imports lbdep.dll (answer 42, next
to it); the current directory and a PATH directory hold decoys of both
(answers -2000 and -1000); lonely/lbmiss.dll imports lbdep2.dll, which only
the PATH directory and the current directory hold. pefile is the outside
oracle for what each DLL imports.
"""

from __future__ import annotations

import ctypes
import importlib
import os
import sys
from collections.abc import Iterator

import pefile
import pytest

import libbroker
from libbroker import _master, _registry


@pytest.fixture(autouse=True)
def isolated(tmp_path: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A fresh cache and no config file, so every verdict is made here."""
    monkeypatch.setenv("LIBBROKER_CACHE_DIR", os.path.join(str(tmp_path), "cache"))
    monkeypatch.setenv("LIBBROKER_CONFIG", os.path.join(str(tmp_path), "config.toml"))
    monkeypatch.delenv("LIBBROKER_PATH", raising=False)
    yield


def imports_of(path: str) -> set[str]:
    pe = pefile.PE(path, fast_load=False)
    try:
        return {e.dll.decode().lower() for e in getattr(pe, "DIRECTORY_ENTRY_IMPORT", [])}
    finally:
        pe.close()


def loaded_paths() -> dict[str, str]:
    return {os.path.basename(p).lower(): p for p, _ in _master.loaded_objects()}


def same(a: str, b: str) -> bool:
    return os.path.normcase(os.path.realpath(a)) == os.path.normcase(os.path.realpath(b))


def path_dirs() -> list[str]:
    return [d for d in os.environ.get("PATH", "").split(os.pathsep) if d]


def test_search_by_name_never_reads_cwd_or_path(fixtures: str) -> None:
    assert os.path.isfile(os.path.join(os.getcwd(), "lbmain.dll"))            # the cwd decoy
    assert any(os.path.isfile(os.path.join(d, "lbmain.dll")) for d in path_dirs())  # the PATH decoy
    with pytest.raises(libbroker.LibraryNotFoundError) as info:
        libbroker.find("lbmain")
    text = str(info.value)
    assert "lbmain" in text
    assert os.path.normcase(os.getcwd()) not in os.path.normcase(text)
    # The message lists the Windows places that were searched (System32 among them).
    assert "system directory" in text


def test_find_by_name_with_dependency(fixtures: str, monkeypatch: pytest.MonkeyPatch) -> None:
    lib = os.path.join(fixtures, "lib")
    monkeypatch.setenv("LIBBROKER_PATH", lib)
    info = libbroker.find("lbmain")
    assert same(info.path, os.path.join(lib, "lbmain.dll"))
    assert info.origin == "override"
    assert "lbdep.dll" in imports_of(info.path)                              # pefile's view
    deps = {os.path.basename(d.path).lower(): d for d in info.dependencies}
    assert "lbdep.dll" in deps
    assert same(deps["lbdep.dll"].path, os.path.join(lib, "lbdep.dll"))
    assert deps["lbdep.dll"].origin == "dll-load-dir"
    # System DLLs (kernel32, msvcrt) are the system's, not listed.
    assert not any(name in deps for name in ("kernel32.dll", "msvcrt.dll"))


def test_load_by_name_maps_the_judged_copy(fixtures: str, monkeypatch: pytest.MonkeyPatch) -> None:
    lib = os.path.join(fixtures, "lib")
    monkeypatch.setenv("LIBBROKER_PATH", lib)
    library = libbroker.load("lbmain")
    assert same(library.path, os.path.join(lib, "lbmain.dll"))
    answer = ctypes.CFUNCTYPE(ctypes.c_int)(library.address("lbmain_answer"))
    assert answer() == 43                                       # 42 next to it, not -1000/-2000
    assert same(loaded_paths()["lbdep.dll"], os.path.join(lib, "lbdep.dll"))
    assert libbroker.load("lbmain") is library                  # once per file
    assert any(same(x.path, library.path) for x in libbroker.loaded())


def test_missing_dependency_is_named_with_a_fix(fixtures: str, monkeypatch: pytest.MonkeyPatch) -> None:
    lonely = os.path.join(fixtures, "lonely")
    assert imports_of(os.path.join(lonely, "lbmiss.dll")) >= {"lbdep2.dll"}
    monkeypatch.setenv("LIBBROKER_PATH", lonely)
    with pytest.raises(libbroker.NoAcceptableLibraryError) as info:
        libbroker.find("lbmiss")
    text = str(info.value)
    assert "lbdep2.dll" in text
    assert "PATH entry" in text                      # where it is, and that PATH is never read
    assert "os.add_dll_directory" in text or "LIBBROKER_PATH" in text   # the fix
    with pytest.raises(libbroker.BrokerError) as by_name:
        libbroker.load("lbmiss")
    assert "lbdep2.dll" in str(by_name.value)
    with pytest.raises(libbroker.IncompatibleLibraryError) as by_path:
        libbroker.load(os.path.join(lonely, "lbmiss.dll"))
    assert "lbdep2.dll" in str(by_path.value)
    assert "lbdep2.dll" not in loaded_paths()


def test_path_is_searched_only_when_configured(fixtures: str, tmp_path: str) -> None:
    """windows-path = true in the config file adds PATH, last."""
    with pytest.raises(libbroker.LibraryNotFoundError):
        libbroker.find("lbdep2")
    with open(os.environ["LIBBROKER_CONFIG"], "w", encoding="utf-8") as f:
        f.write("windows-path = true\n")
    info = libbroker.find("lbdep2")
    assert any(same(os.path.dirname(info.path), d) for d in path_dirs())
    assert info.origin == "system"


def test_table_and_report(fixtures: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIBBROKER_PATH", os.path.join(fixtures, "lib"))
    spec = libbroker.Spec.from_file(os.path.join(fixtures, "lbmain.toml"))
    capsule = libbroker.table(spec)
    info = _master.table_info(capsule)
    assert info["slot_count"] == 3
    assert info["slots"][0] and info["slots"][1] and info["slots"][2] == 0
    lbmain = os.path.join(fixtures, "lib", "lbmain.dll")
    report = libbroker.report()
    (entry,) = [e for e in report["loaded"] if same(str(e["path"]), lbmain)]
    assert entry["origin"] == "libbroker"
    assert entry["soname"] == "lbmain.dll"                    # the export directory's name
    deps = [d["path"] for d in entry.get("dependencies", [])]
    assert any(same(p, os.path.join(fixtures, "lib", "lbdep.dll")) for p in deps), entry
    assert any(same(str(t["library"]), lbmain) for t in report["tables"]), report["tables"]


def test_consumer_pyd_through_the_generated_header(fixtures: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """lbconsumer's PyInit calls libbroker._runtime.import_table (the header's
    libbroker_import_lbmain), which finds lbmain by name through discovery."""
    monkeypatch.setenv("LIBBROKER_PATH", os.path.join(fixtures, "lib"))
    consumer = os.path.join(fixtures, "consumer")
    _registry.by_spec.clear()
    sys.modules.pop("lbconsumer", None)
    sys.path.insert(0, consumer)
    try:
        mod = importlib.import_module("lbconsumer")
    finally:
        sys.path.remove(consumer)
    assert mod.answer() == 43
    assert mod.version().startswith("lbmain 2.5.1")
    assert mod.has_absent() is False
    tables = libbroker.report().get("tables", [])
    assert any("lbconsumer" in t.get("consumers", []) for t in tables), tables


PE_FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "binary", "fixtures", "pe")


@pytest.mark.parametrize(("filename", "reason"), [
    ("pe_fixture_x86.dll", "32-bit PE but this interpreter is 64-bit"),
    ("pe_fixture_arm64.dll", "PE machine 'aarch64'"),
])
def test_inspect_judges_a_dll_on_its_own_host(filename: str, reason: str) -> None:
    """On Windows a DLL of another machine is loadable: false, with the reason."""
    from libbroker._cli import inspect_data

    data = inspect_data(os.path.join(PE_FIXTURES, filename))
    assert data["format"] == "PE"
    assert data["loadable"] is False
    assert reason in str(data["reason"])


def test_inspect_loadable_dll_lists_its_dependency(fixtures: str) -> None:
    from libbroker._cli import inspect_data

    data = inspect_data(os.path.join(fixtures, "lib", "lbmain.dll"))
    assert data["loadable"] is True, data["reason"]
    deps = data["dependencies"]
    assert isinstance(deps, list)
    already = loaded_paths().get("lbdep.dll")
    if already is None:
        assert [os.path.basename(d["path"]).lower() for d in deps] == ["lbdep.dll"]
    else:
        # Mapped by an earlier test: the loaded-module list serves it, nothing to map.
        assert same(already, os.path.join(fixtures, "lib", "lbdep.dll"))
        assert deps == []


def test_list_sees_the_dlls_and_not_the_decoys(fixtures: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from libbroker._listing import visible_libraries

    monkeypatch.setenv("LIBBROKER_PATH", os.path.join(fixtures, "lib"))
    groups = visible_libraries()
    names = {str(i["name"]) for i in groups["override"]}
    assert {"lbmain", "lbdep"} <= names
    every = [str(i["path"]) for items in groups.values() for i in items]
    assert not any(same(os.path.dirname(p), os.getcwd()) for p in every)          # never the cwd
    assert not any(any(same(os.path.dirname(p), d) for d in path_dirs() if os.path.isdir(d)
                       and "pathdir" in d) for p in every)                       # nor PATH


def test_origin_of_a_copy_mapped_by_someone_else(fixtures: str) -> None:
    """A DLL someone else mapped is classified by the Windows places."""
    from libbroker import _api

    system32 = os.path.join(os.environ["SystemRoot"], "System32")
    assert _api._origin_of(os.path.join(system32, "kernel32.dll")) == "system"
    assert _api._origin_of(os.path.join(sys.base_prefix, "DLLs", "_ctypes.pyd")) == "environment"
    assert _api._origin_of(os.path.join(fixtures, "lib", "lbmain.dll")) == "path"
