"""The Windows search policy (libbroker/_platforms/_windows.py) against wine's
real loader: what the policy predicts for the tier's DLLs is what happens, and
the process facts it reads (System32, KnownDLLs, os.add_dll_directory) exist."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pefile

from libbroker import _master
from libbroker._platforms import _windows as win


def pe_facts(path: str) -> SimpleNamespace:
    try:
        pe = pefile.PE(path, fast_load=True)
    except pefile.PEFormatError as exc:  # as libbroker's own reader: a ValueError-like refusal
        raise ValueError(f"{path}: {exc}") from exc
    pe.parse_data_directories(directories=[
        pefile.DIRECTORY_ENTRY["IMAGE_DIRECTORY_ENTRY_IMPORT"],
        pefile.DIRECTORY_ENTRY["IMAGE_DIRECTORY_ENTRY_DELAY_IMPORT"]])
    facts = SimpleNamespace(
        needed=[e.dll.decode() for e in getattr(pe, "DIRECTORY_ENTRY_IMPORT", [])],
        delay_needed=[e.dll.decode() for e in getattr(pe, "DIRECTORY_ENTRY_DELAY_IMPORT", [])],
        machine_name=pefile.MACHINE_TYPE[pe.FILE_HEADER.Machine])
    pe.close()
    return facts


def test_process_facts() -> None:
    system = win.system_directory()
    assert system and os.path.isfile(os.path.join(system, "kernel32.dll"))
    app = win.application_directory()
    assert app and os.path.isfile(os.path.join(app, "python311.dll"))
    assert "kernel32.dll" in win.known_dlls() or not win.known_dlls()  # wine may list none
    places = win.host_search_places()
    assert [p.directory for p in places if p.label == "system directory"] == [system]
    assert not any(p.label.startswith("PATH") for p in places)
    with_path = win.host_search_places(use_path=True)
    assert any(p.label.startswith("PATH") for p in with_path)


def test_added_dll_directories_are_seen(fixtures: str) -> None:
    lib = os.path.join(fixtures, "lib")
    handle = os.add_dll_directory(lib)
    try:
        assert lib in win.added_dll_directories()
    finally:
        handle.close()
    assert lib not in win.added_dll_directories()


def test_policy_predicts_the_missing_dependency(fixtures: str) -> None:
    path = os.path.join(fixtures, "lonely", "lbmiss.dll")
    result = win.closure(path, pe_facts, win.host_context())
    assert not result.loadable
    (problem,) = result.problems
    assert "lbmiss.dll imports lbdep2.dll" in problem
    assert os.path.join(fixtures, "pathdir") in problem      # "found in PATH, never read"
    try:
        _master.dlopen(path)
    except OSError as exc:
        assert exc.winerror == 126
    else:
        raise AssertionError("wine loaded a DLL whose dependency the safe search cannot find")


def test_policy_predicts_where_the_dependency_comes_from(fixtures: str) -> None:
    path = os.path.join(fixtures, "lib", "lbmain.dll")
    ctx = win.host_context()
    ctx.loaded = {}                                 # as before anything was loaded
    result = win.closure(path, pe_facts, ctx)
    assert result.loadable, result.problems
    by_name = {r.needed.lower(): r for r in result.order}
    assert by_name["lbdep.dll"].kind == win.LOAD_DIR
    predicted = by_name["lbdep.dll"].path
    _master.dlopen(path)
    actual = {os.path.basename(p).lower(): p for p, _ in _master.loaded_objects()}["lbdep.dll"]
    assert os.path.normcase(actual) == os.path.normcase(predicted or "")


def test_add_dll_directory_serves_dependencies(fixtures: str) -> None:
    """lbuser.dll imports lbdep3.dll, held only by fixtures/added: the loader finds
    it once the directory is added, as the policy predicts, and not before."""
    path = os.path.join(fixtures, "user", "lbuser.dll")
    added = os.path.join(fixtures, "added")
    before = win.closure(path, pe_facts, win.host_context())
    assert not before.loadable and "lbdep3.dll" in before.problems[0]
    try:
        _master.dlopen(path)
    except OSError as exc:
        assert exc.winerror == 126
    else:
        raise AssertionError("lbdep3.dll was found without its directory being added")
    handle = os.add_dll_directory(added)
    try:
        after = win.closure(path, pe_facts, win.host_context())
        assert after.loadable, after.problems
        dep = {r.needed.lower(): r for r in after.order}["lbdep3.dll"]
        assert (dep.kind, os.path.normcase(dep.path or "")) == (
            win.USER_DIR, os.path.normcase(os.path.join(added, "lbdep3.dll")))
        assert _master.dlopen(path)
    finally:
        handle.close()
    loaded = {os.path.basename(p).lower(): p for p, _ in _master.loaded_objects()}
    assert os.path.normcase(loaded["lbdep3.dll"]) == os.path.normcase(os.path.join(added, "lbdep3.dll"))


def test_another_machine_is_passed_over(fixtures: str) -> None:
    """A 32-bit lbdep4.dll sits next to lbarch.dll; the 64-bit one only in
    fixtures/good. Without that directory the load fails; with it added, the loader
    passes over the 32-bit file and takes the good one, as the policy predicts."""
    path = os.path.join(fixtures, "arch", "lbarch.dll")
    good = os.path.join(fixtures, "good")
    before = win.closure(path, pe_facts, win.host_context())
    assert not before.loadable
    assert "passed over: built for IMAGE_FILE_MACHINE_I386" in before.problems[0]
    try:
        _master.dlopen(path)
    except OSError as exc:
        assert exc.winerror == 126
    else:
        raise AssertionError("lbarch.dll loaded with only a 32-bit lbdep4.dll in reach")
    handle = os.add_dll_directory(good)
    try:
        after = win.closure(path, pe_facts, win.host_context())
        assert after.loadable, after.problems
        dep = {r.needed.lower(): r for r in after.order}["lbdep4.dll"]
        assert os.path.normcase(dep.path or "") == os.path.normcase(os.path.join(good, "lbdep4.dll"))
        _master.dlopen(path)
    finally:
        handle.close()
    loaded = {os.path.basename(p).lower(): p for p, _ in _master.loaded_objects()}
    assert os.path.normcase(loaded["lbdep4.dll"]) == os.path.normcase(os.path.join(good, "lbdep4.dll"))
