"""Windows search policy (libbroker/_platforms/_windows.py), on Linux.

Fake trees (System32, the DLL's directory, os.add_dll_directory directories, a
conda Library\\bin, PATH and current-directory decoys) stand for a Windows
machine; the closure is checked both with a fake import reader and with real
DLLs cross-built by mingw-w64 whose imports pefile (an outside oracle) reads.
What the real loader does with the same files is checked under wine by
tests/windows/ (.ci/wine-tier.sh).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from libbroker._platforms import _windows as win


def touch(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"MZ fake")
    return str(path)


@pytest.fixture
def tree(tmp_path: Path) -> SimpleNamespace:
    """A fake Windows machine: C:/Windows/System32, a Python, a library directory."""
    t = SimpleNamespace(
        root=tmp_path,
        system=tmp_path / "Windows" / "System32",
        python=tmp_path / "Python311",
        conda=tmp_path / "conda" / "envs" / "x",
        libdir=tmp_path / "pkg" / "libs",
        added=tmp_path / "added",
        added2=tmp_path / "added2",
        pathdir=tmp_path / "onpath",
        cwd=tmp_path / "work",
    )
    for d in (t.system, t.python / "DLLs", t.conda / "Library" / "bin", t.libdir, t.added,
              t.added2, t.pathdir, t.cwd):
        d.mkdir(parents=True, exist_ok=True)
    for dll in ("kernel32.dll", "ntdll.dll", "msvcrt.dll", "user32.dll"):
        touch(t.system / dll)
    return t


def context(t: SimpleNamespace, **kw: object) -> win.SearchContext:
    args: dict[str, object] = {
        "application_dir": str(t.python), "dll_directories": [str(t.added), str(t.added2)],
        "system_dir": str(t.system), "known_dlls": ["kernel32.dll", "ntdll.dll"],
        "path_entries": [str(t.pathdir), str(t.cwd)]}
    args.update(kw)
    return win.SearchContext(**args)  # type: ignore[arg-type]


# -- names -------------------------------------------------------------------


@pytest.mark.parametrize("filename, name, machine, expected", [
    ("zlib1.dll", "zlib1", None, True),
    ("ZLIB1.DLL", "zlib1", None, True),          # NTFS ignores case
    ("libz.dll", "z", None, True),
    ("libbz2-1.dll", "bz2", None, True),
    ("libgfortran-5.dll", "gfortran", None, True),
    ("libcrypto-3-x64.dll", "crypto", "AMD64", True),
    ("libcrypto-3-x64.dll", "crypto", "ARM64", False),  # another machine's build
    ("libcrypto-3-arm64.dll", "crypto", "ARM64", True),
    ("libz-x.dll", "z", None, False),
    ("libz-.dll", "z", None, False),
    ("libzstd.dll", "z", None, False),
    ("z.so", "z", None, False),
    ("z.dll.bak", "z", None, False),
    ("zlib1.dll", "zlib1.dll", None, True),      # a file name given whole
    ("sqlite3.dll", "sqlite3", None, True),
])
def test_link_names(filename: str, name: str, machine: str | None, expected: bool) -> None:
    assert win.matches_link_name(filename, name, machine) is expected


def test_directory_order_of_names(tmp_path: Path) -> None:
    for n in ("libz-1.dll", "libz.dll", "z.dll", "libz-2.dll", "libzstd.dll", "readme.txt"):
        touch(tmp_path / n)
    got = [os.path.basename(p) for p in win.library_files(str(tmp_path), "z")]
    assert got == ["z.dll", "libz.dll", "libz-2.dll", "libz-1.dll"]
    assert win.library_files(str(tmp_path / "absent"), "z") == []


@pytest.mark.parametrize("name, expected", [
    ("api-ms-win-crt-runtime-l1-1-0.dll", True),
    ("API-MS-WIN-CORE-SYNCH-L1-2-0.dll", True),
    ("ext-ms-win-ntuser-window-l1-1-0.dll", True),
    ("apiary.dll", False),
    ("kernel32.dll", False),
])
def test_api_sets_are_virtual(name: str, expected: bool) -> None:
    assert win.is_api_set(name) is expected


def test_find_file_ignores_case(tmp_path: Path) -> None:
    touch(tmp_path / "Dep.DLL")
    assert win.find_file(str(tmp_path), "dep.dll") == str(tmp_path / "Dep.DLL")
    assert win.find_file(str(tmp_path), "other.dll") is None
    (tmp_path / "dir.dll").mkdir()
    assert win.find_file(str(tmp_path), "dir.dll") is None  # a directory is not a DLL


# -- places ------------------------------------------------------------------


def test_search_places_order(tree: SimpleNamespace) -> None:
    venv = tree.root / "venv"
    venv.mkdir()
    places = win.search_places(
        prefix=str(venv), base_prefix=str(tree.python), application_dir=str(tree.python),
        dll_directories=[str(tree.added)], system_dir=str(tree.system), cwd=str(tree.cwd))
    got = [(p.label, p.directory) for p in places]
    assert got == [
        ("sys.prefix", str(venv / "Library" / "bin")),
        ("sys.prefix", str(venv / "DLLs")),
        ("sys.prefix", str(venv)),
        ("sys.base_prefix", str(tree.python / "Library" / "bin")),
        ("sys.base_prefix", str(tree.python / "DLLs")),
        ("sys.base_prefix", str(tree.python)),
        # the application directory is the base prefix here: listed once
        ("os.add_dll_directory", str(tree.added)),
        ("system directory", str(tree.system)),
    ]
    assert {p.origin for p in places[:-1]} == {"environment"}
    assert places[-1].origin == "system"
    assert all(p.refusal is None for p in places)


def test_path_and_cwd_never_searched_unless_configured(tree: SimpleNamespace) -> None:
    plain = win.search_places(prefix=str(tree.python), base_prefix=str(tree.python),
                              application_dir=str(tree.python), system_dir=str(tree.system),
                              cwd=str(tree.cwd))
    assert not any(p.label.startswith("PATH") for p in plain)
    assert not any(win.same_place(p.directory, str(tree.cwd)) for p in plain)
    configured = win.search_places(
        prefix=str(tree.python), base_prefix=str(tree.python), application_dir=str(tree.python),
        system_dir=str(tree.system), cwd=str(tree.cwd),
        path_entries=[str(tree.pathdir), "", "relative\\bin", str(tree.cwd)])
    path_places = [p for p in configured if p.label.startswith("PATH")]
    assert [p.directory for p in path_places] == [str(tree.pathdir), "", "relative\\bin", str(tree.cwd)]
    assert path_places[0].refusal is None
    assert "empty" in (path_places[1].refusal or "")
    assert "relative" in (path_places[2].refusal or "")
    assert "current directory" in (path_places[3].refusal or "")
    assert configured.index(path_places[0]) > max(
        i for i, p in enumerate(configured) if p.label == "system directory")


def test_conda_library_bin_only_for_this_interpreter(tree: SimpleNamespace) -> None:
    mine = win.search_places(prefix=str(tree.conda), base_prefix=str(tree.conda),
                             application_dir=str(tree.conda), system_dir=str(tree.system),
                             conda_prefix=str(tree.conda))
    assert mine[0].directory == str(tree.conda / "Library" / "bin")
    assert sum(p.directory == str(tree.conda / "Library" / "bin") for p in mine) == 1
    other = win.search_places(prefix=str(tree.python), base_prefix=str(tree.python),
                              application_dir=str(tree.python), system_dir=str(tree.system),
                              conda_prefix=str(tree.conda))
    refused = [p for p in other if p.label == "CONDA_PREFIX"]
    assert len(refused) == 1 and "not this interpreter's prefix" in (refused[0].refusal or "")


def test_place_refusals(tree: SimpleNamespace) -> None:
    assert win.place_refusal(str(tree.libdir), str(tree.cwd)) is None
    sub = tree.cwd / ".venv" / "Library" / "bin"
    sub.mkdir(parents=True)
    assert win.place_refusal(str(sub), str(tree.cwd)) is None  # absolute, below the cwd: allowed
    link = tree.root / "link-to-cwd"
    link.symlink_to(tree.cwd)
    assert "current directory" in (win.place_refusal(str(link), str(tree.cwd)) or "")
    assert "relative" in (win.place_refusal(".", str(tree.cwd)) or "")


# -- dependency resolution ----------------------------------------------------


def test_dependency_order(tree: SimpleNamespace) -> None:
    """Each place wins over the ones after it; PATH and the cwd never count."""
    ctx = context(tree)
    load_dir = str(tree.libdir)
    name = "dep.dll"
    placed = [
        (tree.system, win.SYSTEM_DIR),
        (tree.added2, win.USER_DIR),
        (tree.added, win.USER_DIR),
        (tree.python, win.APPLICATION_DIR),
        (tree.libdir, win.LOAD_DIR),
    ]
    touch(tree.pathdir / name)
    touch(tree.cwd / name)
    assert win.resolve_dependency(name, load_dir, ctx).kind == win.MISSING
    for directory, kind in placed:
        touch(directory / name)
        res = win.resolve_dependency(name, load_dir, ctx)
        assert (res.kind, res.path) == (kind, str(directory / name))


def test_dependency_missing_names_path_decoy_and_fix(tree: SimpleNamespace) -> None:
    ctx = context(tree)
    touch(tree.pathdir / "dep.dll")
    res = win.resolve_dependency("dep.dll", str(tree.libdir), ctx)
    assert res.kind == win.MISSING and res.path is None
    reason = win.missing_reason(res, "lib.dll", ctx)
    assert "lib.dll imports dep.dll" in reason
    assert str(tree.pathdir) in reason and "never reads" in reason
    assert "os.add_dll_directory" in reason
    for place in (str(tree.libdir), str(tree.python), str(tree.added), str(tree.system)):
        assert place in reason


def test_api_sets_known_dlls_loaded_and_providers_first(tree: SimpleNamespace) -> None:
    touch(tree.libdir / "kernel32.dll")          # a planted KnownDLL next to the library
    touch(tree.libdir / "ucrtbase.dll")
    touch(tree.libdir / "prov.dll")
    elsewhere = touch(tree.root / "loaded" / "ucrtbase.dll")
    provided = touch(tree.root / "site" / "prov" / "prov.dll")
    ctx = context(tree, loaded={"UCRTBASE.dll": elsewhere}, providers={"prov.dll": provided})
    res = win.resolve_dependency("KERNEL32.dll", str(tree.libdir), ctx)
    assert (res.kind, res.path) == (win.KNOWN_DLL, str(tree.system / "kernel32.dll"))
    res = win.resolve_dependency("ucrtbase.dll", str(tree.libdir), ctx)
    assert (res.kind, res.path) == (win.LOADED, elsewhere)
    res = win.resolve_dependency("prov.dll", str(tree.libdir), ctx)
    assert (res.kind, res.path) == (win.PROVIDER, provided)
    res = win.resolve_dependency("api-ms-win-crt-heap-l1-1-0.dll", str(tree.libdir), ctx)
    assert (res.kind, res.path) == (win.API_SET, None)


def test_relative_user_directory_is_skipped(tree: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tree.cwd)
    touch(tree.cwd / "sub" / "dep.dll")
    ctx = context(tree, dll_directories=["sub"])
    assert win.resolve_dependency("dep.dll", str(tree.libdir), ctx).kind == win.MISSING


# -- closures with a fake reader ---------------------------------------------


def fake_reader(imports: dict[str, tuple[list[str], list[str], str]]):
    def read(path: str) -> SimpleNamespace:
        try:
            needed, delayed, machine = imports[os.path.basename(path).lower()]
        except KeyError:
            raise ValueError(f"{path}: not a PE file") from None
        return SimpleNamespace(needed=needed, delay_needed=delayed, machine_name=machine)
    return read


def test_closure_load_order_and_root_dir_rule(tree: SimpleNamespace) -> None:
    """Dependencies come before dependents; b.dll found in an added directory has its
    own imports searched in the *root's* directory, not in b.dll's."""
    root = touch(tree.libdir / "root.dll")
    touch(tree.libdir / "a.dll")
    touch(tree.added / "b.dll")
    touch(tree.added / "c.dll")                  # next to b: found only via the added dir
    touch(tree.libdir / "c.dll")                 # the root's directory wins for b's import
    read = fake_reader({
        "root.dll": (["a.dll", "KERNEL32.dll", "api-ms-win-crt-runtime-l1-1-0.dll"], ["late.dll"], "AMD64"),
        "a.dll": (["b.dll", "msvcrt.dll"], [], "AMD64"),
        "b.dll": (["c.dll", "a.dll"], [], "AMD64"),
        "c.dll": ([], [], "AMD64"),
    })
    result = win.closure(root, read, context(tree))
    assert result.loadable, result.problems
    order = [(r.needed.lower(), r.kind, r.path) for r in result.order]
    assert order == [
        ("c.dll", win.LOAD_DIR, str(tree.libdir / "c.dll")),
        ("b.dll", win.USER_DIR, str(tree.added / "b.dll")),
        ("msvcrt.dll", win.SYSTEM_DIR, str(tree.system / "msvcrt.dll")),
        ("a.dll", win.LOAD_DIR, str(tree.libdir / "a.dll")),
        ("kernel32.dll", win.KNOWN_DLL, str(tree.system / "kernel32.dll")),
        ("root.dll", "root", root),
    ]
    assert len(result.notes) == 1 and "late.dll" in result.notes[0] and "delay-loaded" in result.notes[0]


def test_closure_missing_and_unreadable(tree: SimpleNamespace) -> None:
    root = touch(tree.libdir / "root.dll")
    touch(tree.cwd / "gone.dll")                 # a decoy in the current directory
    touch(tree.libdir / "garbage.dll")
    read = fake_reader({"root.dll": (["gone.dll", "garbage.dll"], [], "AMD64")})
    result = win.closure(root, read, context(tree))
    assert not result.loadable
    text = "\n".join(result.problems)
    assert "root.dll imports gone.dll" in text and "does not find" in text
    assert "garbage.dll" in text and "cannot be read" in text
    assert len(result.problems) == 2


def test_closure_passes_over_another_machine(tree: SimpleNamespace) -> None:
    """A 32-bit or ARM64 file of the right name is passed over and the search goes
    on, as the loader does (wine shows the same in tests/windows)."""
    root = touch(tree.libdir / "root.dll")
    touch(tree.libdir / "arm.dll")
    read = fake_reader({"root.dll": (["arm.dll"], [], "AMD64"), "arm.dll": ([], [], "ARM64")})
    missing = win.closure(root, read, context(tree))
    (problem,) = missing.problems
    assert "root.dll imports arm.dll" in problem
    assert f"{tree.libdir / 'arm.dll'} passed over: built for ARM64, not AMD64" in problem
    assert "install a build for this machine" in problem
    good = touch(tree.added2 / "arm.dll")
    by_dir = {os.path.dirname(good): ([], [], "AMD64")}

    def read2(path: str) -> SimpleNamespace:
        if os.path.dirname(path) in by_dir:
            return SimpleNamespace(needed=[], delay_needed=[], machine_name="AMD64")
        return read(path)

    found = win.closure(root, read2, context(tree))
    assert found.loadable, found.problems
    assert [(r.kind, r.path) for r in found.order] == [(win.USER_DIR, good), ("root", root)]


def test_closure_unreadable_root_and_cycles(tree: SimpleNamespace) -> None:
    bad = touch(tree.libdir / "bad.dll")
    assert "cannot be read" in win.closure(bad, fake_reader({}), context(tree)).problems[0]
    root = touch(tree.libdir / "x.dll")
    touch(tree.libdir / "y.dll")
    read = fake_reader({"x.dll": (["y.dll"], [], "AMD64"), "y.dll": (["x.dll"], [], "AMD64")})
    result = win.closure(root, read, context(tree))
    assert [(r.needed, r.path) for r in result.order] == [
        ("y.dll", str(tree.libdir / "y.dll")), ("x.dll", root)]


def test_closure_is_bounded(tree: SimpleNamespace) -> None:
    root = touch(tree.libdir / "r.dll")
    chain = {f"d{i}.dll": ([f"d{i + 1}.dll"], [], "AMD64") for i in range(100)}
    chain["r.dll"] = (["d0.dll"], [], "AMD64")
    for i in range(101):
        touch(tree.libdir / f"d{i}.dll")
    chain["d100.dll"] = ([], [], "AMD64")
    result = win.closure(root, fake_reader(chain), context(tree))
    assert any("64 levels" in p for p in result.problems)
    wide = {"r.dll": ([f"d{i}.dll" for i in range(101)], [], "AMD64")}
    wide.update({f"d{i}.dll": ([], [], "AMD64") for i in range(101)})
    assert any("exceeds 50 DLLs" in p for p in win.closure(
        root, fake_reader(wide), context(tree), limit=50).problems)
    small = dict(chain)
    small["d10.dll"] = ([], [], "AMD64")
    assert win.closure(root, fake_reader(small), context(tree)).loadable


# -- closures of real DLLs: mingw-w64 builds them, pefile reads them ----------

MINGW = shutil.which("x86_64-w64-mingw32-gcc")


def pefile_reader(path: str) -> SimpleNamespace:
    pefile = pytest.importorskip("pefile")
    try:
        pe = pefile.PE(path, fast_load=True)
    except pefile.PEFormatError as exc:  # as libbroker's own reader: a ValueError-like refusal
        raise ValueError(f"{path}: {exc}") from exc
    pe.parse_data_directories(directories=[
        pefile.DIRECTORY_ENTRY["IMAGE_DIRECTORY_ENTRY_IMPORT"],
        pefile.DIRECTORY_ENTRY["IMAGE_DIRECTORY_ENTRY_DELAY_IMPORT"]])
    needed = [e.dll.decode() for e in getattr(pe, "DIRECTORY_ENTRY_IMPORT", [])]
    delayed = [e.dll.decode() for e in getattr(pe, "DIRECTORY_ENTRY_DELAY_IMPORT", [])]
    machine = pefile.MACHINE_TYPE[pe.FILE_HEADER.Machine].replace("IMAGE_FILE_MACHINE_", "")
    pe.close()
    return SimpleNamespace(needed=needed, delay_needed=delayed, machine_name=machine)


def mingw_dll(out: Path, source: str, *libs: str) -> str:
    src = out.with_suffix(".c")
    src.write_text(source)
    cmd = [MINGW, "-shared", "-O1", "-o", str(out), str(src), f"-L{out.parent}", *libs]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    return str(out)


@pytest.mark.skipif(MINGW is None, reason="mingw-w64 is not installed (.ci/apt-packages.txt)")
def test_closure_of_mingw_dlls(tree: SimpleNamespace, tmp_path: Path) -> None:
    build = tmp_path / "build"
    build.mkdir()
    mingw_dll(build / "lbdep.dll", "__declspec(dllexport) int lbdep_answer(void) { return 42; }\n")
    mingw_dll(build / "lbmain.dll",
              "__declspec(dllimport) int lbdep_answer(void);\n"
              "__declspec(dllexport) int lbmain_answer(void) { return lbdep_answer() + 1; }\n",
              "-llbdep")
    root = str(tree.libdir / "lbmain.dll")
    shutil.copy(build / "lbmain.dll", root)
    shutil.copy(build / "lbdep.dll", tree.pathdir / "lbdep.dll")   # decoy in PATH only
    shutil.copy(build / "lbdep.dll", tree.cwd / "lbdep.dll")       # and in the cwd
    facts = pefile_reader(root)
    assert "lbdep.dll" in [n.lower() for n in facts.needed]
    missing = win.closure(root, pefile_reader, context(tree))
    assert not missing.loadable
    assert "lbmain.dll imports lbdep.dll" in missing.problems[0]
    assert str(tree.pathdir) in missing.problems[0]
    shutil.copy(build / "lbdep.dll", tree.libdir / "LBDEP.DLL")
    found = win.closure(root, pefile_reader, context(tree))
    assert found.loadable, found.problems
    by_name = {r.needed.lower(): r for r in found.order}
    assert by_name["lbdep.dll"].kind == win.LOAD_DIR
    assert by_name["lbdep.dll"].path == str(tree.libdir / "LBDEP.DLL")
    assert by_name["kernel32.dll"].kind == win.KNOWN_DLL
    # mingw's C runtime import is msvcrt.dll (in System32 here) or the ucrt API sets
    assert all(r.kind != win.MISSING for r in found.order)
    assert found.order[-1].path == root


def test_runtime_facts_off_windows() -> None:
    if os.name == "nt":
        pytest.skip("checked under wine by tests/windows/")
    assert win.system_directory() is None
    assert win.known_dlls() == frozenset()
    assert win.added_dll_directories() == []
    app = win.application_directory()
    assert app is not None and os.path.isabs(app)
    places = win.host_search_places()
    assert places[0].directory == os.path.join(sys.prefix, "Library", "bin")
    assert not any(p.origin == "system" for p in places)  # no System32 off Windows
    ctx = win.host_context()
    assert any(os.path.basename(p).startswith("libc.so") for p in ctx.loaded.values())
