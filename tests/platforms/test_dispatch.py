"""Discovery and the closure dispatch on the platform (libbroker/_discovery.py,
libbroker/_closure.py, libbroker/_platforms/_closures.py), on Linux.

Fake trees stand for a Windows machine (file names, override places, PATH and
current-directory decoys); real DLLs cross-built by mingw-w64 are judged by
`platform_closure` with the PE reader, pefile being the outside oracle for their
imports. The same rules against Windows' real loader: tests/windows/ under wine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from libbroker import _closure, _discovery
from libbroker._binary import _pe, read_binary
from libbroker._config import Config
from libbroker._platforms import _windows as win
from libbroker._platforms._closures import platform_closure

MINGW = shutil.which("x86_64-w64-mingw32-gcc")
PE_FIXTURES = Path(__file__).resolve().parent.parent / "binary" / "fixtures" / "pe"


def names(search: _discovery.Search) -> list[str]:
    return [os.path.basename(e.path) for e in search.entries]


@pytest.fixture
def lib_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """One override directory holding every naming style of link name "lbx"."""
    lib = tmp_path / "lib"
    lib.mkdir()
    for filename in ("liblbx-2.dll", "lbx.dll", "liblbx.dll", "liblbx-10.dll", "liblbx.so.1",
                     "liblbx.1.dylib", "lbxy.dll", "liblbx-x.dll", "lbx.txt"):
        (lib / filename).write_bytes(b"MZ not really")
    monkeypatch.setenv("LIBBROKER_PATH", str(lib))
    return lib


def test_windows_names_and_order(lib_tree: Path) -> None:
    found = _discovery.search("lbx", config=Config(None), use_providers=False, platform="win32")
    overrides = [os.path.basename(e.path) for e in found.entries if e.origin == "override"]
    assert overrides == ["lbx.dll", "liblbx.dll", "liblbx-10.dll", "liblbx-2.dll"]
    assert all(e.refusal is None for e in found.entries if e.origin == "override")


def test_linux_names_unchanged(lib_tree: Path) -> None:
    found = _discovery.search("lbx", config=Config(None), use_providers=False, platform="linux")
    overrides = [os.path.basename(e.path) for e in found.entries if e.origin == "override"]
    assert overrides == ["liblbx.so.1"]


def test_windows_places_never_cwd_or_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """cwd: listed with its refusal when named as an override; PATH: only when configured."""
    cwd = tmp_path / "cwd"
    pathdir = tmp_path / "pathdir"
    for d in (cwd, pathdir):
        d.mkdir()
        (d / "lbx.dll").write_bytes(b"MZ decoy")
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("PATH", f"{pathdir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("LIBBROKER_PATH", str(cwd))
    found = _discovery.search("lbx", config=Config(None), use_providers=False, platform="win32")
    in_cwd = [e for e in found.entries if os.path.dirname(e.path) == str(cwd)]
    assert in_cwd and all(e.refusal and "current directory" in e.refusal for e in in_cwd)
    assert not any(os.path.dirname(e.path) == str(pathdir) for e in found.entries)
    assert not any("PATH (enabled" in line for line in found.searched)
    monkeypatch.delenv("LIBBROKER_PATH")
    config = Config(None)
    config.windows_path = True
    found = _discovery.search("lbx", config=config, use_providers=False, platform="win32")
    from_path = [e for e in found.entries if os.path.dirname(e.path) == str(pathdir)]
    assert len(from_path) == 1 and from_path[0].origin == "system" and from_path[0].refusal is None
    assert found.entries[-1] is from_path[0]                       # PATH comes last
    assert any(line.startswith("PATH (enabled in the configuration)") for line in found.searched)
    # Windows places are the prefix's Library\bin, DLLs and the prefix; never /lib64.
    assert not any("/lib64" in line or "ld.so.cache" in line for line in found.searched)


def test_config_key_windows_path(tmp_path: Path) -> None:
    from libbroker._config import _parse
    from libbroker._errors import SpecError

    good = tmp_path / "good.toml"
    good.write_text("windows-path = true\n")
    assert _parse(str(good)).windows_path is True
    bad = tmp_path / "bad.toml"
    bad.write_text('windows-path = "yes"\n')
    with pytest.raises(SpecError, match="'windows-path' must be true or false, found 'yes'"):
        _parse(str(bad))


# -- the closure --------------------------------------------------------------


def test_pe_on_linux_is_refused_by_format() -> None:
    closure = _closure.resolve_closure(str(PE_FIXTURES / "pe_fixture_x64.dll"))
    assert not closure.ok
    assert closure.reason == "PE file but this interpreter is ELF"
    assert closure.fix and "machine" in closure.fix


def mingw_dll(out: Path, source: str, *libs: str) -> str:
    assert MINGW is not None
    src = out.with_suffix(".c")
    src.write_text(source)
    subprocess.run([MINGW, "-shared", "-O1", "-static-libgcc", "-o", str(out), str(src),
                    f"-L{out.parent}", *libs], check=True, capture_output=True, timeout=120)
    return str(out)


@pytest.fixture
def dlls(tmp_path: Path) -> Path:
    if MINGW is None:
        pytest.skip("mingw-w64 is not installed (.ci/apt-packages.txt)")
    build = tmp_path / "build"
    build.mkdir()
    mingw_dll(build / "lbdep.dll", "__declspec(dllexport) int lbdep_answer(void) { return 42; }\n")
    mingw_dll(build / "lbmain.dll",
              "__declspec(dllimport) int lbdep_answer(void);\n"
              "__declspec(dllexport) int lbmain_answer(void) { return lbdep_answer() + 1; }\n",
              "-llbdep")
    return build


def system_context(root: str, **kw: object) -> win.SearchContext:
    """The system DLLs the root imports stand as loaded (as they are in every process)."""
    pefile = pytest.importorskip("pefile")
    pe = pefile.PE(root)
    system = {e.dll.decode().lower(): f"C:/Windows/System32/{e.dll.decode()}"
              for e in getattr(pe, "DIRECTORY_ENTRY_IMPORT", [])
              if not e.dll.decode().lower().startswith("lb")}
    pe.close()
    return win.SearchContext(application_dir=None, system_dir=None, loaded=system, **kw)  # type: ignore[arg-type]


def test_windows_closure_dependency_next_to_the_dll(dlls: Path, tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    root = str(lib / "lbmain.dll")
    shutil.copy(dlls / "lbmain.dll", root)
    shutil.copy(dlls / "lbdep.dll", lib / "lbdep.dll")
    info = _pe.read(root)
    closure = _closure.Closure(root)
    platform_closure(closure, info, "win32", host=info, context=system_context(root))
    assert closure.ok, closure.reason
    assert [(d.needed.lower(), d.path, d.origin) for d in closure.dependencies] == [
        ("lbdep.dll", str(lib / "lbdep.dll"), "dll-load-dir")]
    # The system's own DLLs are not mapped by libbroker, so not listed.
    assert str(lib / "lbdep.dll") in closure.paths


def test_windows_closure_missing_dependency_names_it_and_path(dlls: Path, tmp_path: Path) -> None:
    lib = tmp_path / "lonely"
    pathdir = tmp_path / "pathdir"
    lib.mkdir()
    pathdir.mkdir()
    root = str(lib / "lbmain.dll")
    shutil.copy(dlls / "lbmain.dll", root)
    shutil.copy(dlls / "lbdep.dll", pathdir / "lbdep.dll")
    info = _pe.read(root)
    closure = _closure.Closure(root)
    platform_closure(closure, info, "win32", host=info,
                     context=system_context(root, path_entries=[str(pathdir)]))
    assert not closure.ok and closure.dependencies == []
    assert closure.reason is not None and "lbmain.dll imports lbdep.dll" in closure.reason
    assert f"PATH entry '{pathdir}'" in closure.reason
    assert closure.fix is not None and closure.fix.startswith("put the DLL next to the library")


def test_windows_closure_refuses_another_machine_first(dlls: Path) -> None:
    x86 = PE_FIXTURES / "pe_fixture_x86.dll"
    closure = _closure.Closure(str(x86))
    platform_closure(closure, read_binary(str(x86)), "win32", host=_pe.read(str(dlls / "lbmain.dll")),
                     context=system_context(str(x86)))
    assert closure.reason == "32-bit PE but this interpreter is 64-bit"
    assert closure.fix is not None and "machine and word size" in closure.fix


def test_macos_closure_without_or_with_the_dyld_policy(tmp_path: Path) -> None:
    """Before the macOS policy is merged the file's own checks only (a note says so)."""
    macho = Path(__file__).resolve().parent.parent / "binary" / "fixtures" / "macho" / "libbase.dylib"
    info = read_binary(str(macho))
    closure = _closure.Closure(str(macho))
    platform_closure(closure, info, "darwin", host=info, env={})
    try:
        import libbroker._platforms._macos  # noqa: F401
    except ImportError:
        assert closure.ok and closure.notes and "_macos is missing" in closure.notes[0]
        return
    # With dyld's rules: libbase.dylib needs only libSystem, served by the shared cache.
    assert closure.ok, closure.reason
    assert all(not d.path.startswith("/usr/lib/") for d in closure.dependencies)


MACHO = Path(__file__).resolve().parent.parent / "binary" / "fixtures" / "macho"


def test_macos_closure_follows_rpath_and_names_a_missing_dylib(tmp_path: Path) -> None:
    """libupward.dylib loads @rpath/libbase.1.dylib with LC_RPATH @loader_path/../lib
    (macholib, the oracle, reads the same load commands in tests/binary/test_macho.py)."""
    pytest.importorskip("libbroker._platforms._macos")
    lib = tmp_path / "pkg" / "lib"
    lib.mkdir(parents=True)
    root = lib / "libupward.dylib"
    shutil.copy(MACHO / "libupward.dylib", root)
    info = read_binary(str(root))
    missing = _closure.Closure(str(root))
    platform_closure(missing, info, "darwin", host=info, env={})
    assert not missing.ok
    assert missing.reason is not None and "loads @rpath/libbase.1.dylib" in missing.reason
    assert str(lib / "libbase.1.dylib") in missing.reason          # where dyld would look
    assert missing.fix is not None and "LC_RPATH" in missing.fix
    shutil.copy(MACHO / "libbase.dylib", lib / "libbase.1.dylib")
    found = _closure.Closure(str(root))
    platform_closure(found, info, "darwin", host=info, env={})
    assert found.ok, found.reason
    # libSystem is the shared cache's (no file here): never listed; libbase is, via @rpath.
    assert [(d.needed, d.path) for d in found.dependencies] == [
        ("@rpath/libbase.1.dylib", str(lib / "libbase.1.dylib"))]
    assert found.dependencies[0].origin.startswith("@rpath")


def test_macos_weak_dependency_may_be_missing(tmp_path: Path) -> None:
    pytest.importorskip("libbroker._platforms._macos")
    root = tmp_path / "libweak.dylib"
    shutil.copy(MACHO / "libweak.dylib", root)
    info = read_binary(str(root))
    closure = _closure.Closure(str(root))
    platform_closure(closure, info, "darwin", host=info, env={})
    assert closure.ok, closure.reason
    assert any("weak @rpath/libbase.1.dylib not found" in n for n in closure.notes)


def test_macos_names_in_discovery(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("libbroker._platforms._macos")
    lib = tmp_path / "lib"
    lib.mkdir()
    for filename in ("liblbx.dylib", "liblbx.1.dylib", "liblbx.1.2.3.dylib", "liblbx.so.1", "lbx.dll",
                     "liblbxy.dylib"):
        (lib / filename).write_bytes(b"\xcf\xfa\xed\xfe")
    monkeypatch.setenv("LIBBROKER_PATH", str(lib))
    found = _discovery.search("lbx", config=Config(None), use_providers=False, platform="darwin")
    overrides = [os.path.basename(e.path) for e in found.entries if e.origin == "override"]
    assert overrides == ["liblbx.1.2.3.dylib", "liblbx.1.dylib", "liblbx.dylib"]
    assert not any("ld.so.cache" in line for line in found.searched)


def test_universal_dylib_is_judged_by_the_host_slice() -> None:
    """A fat x86_64+arm64 file is loadable on either host (dyld picks the slice); a thin
    arm64 one is refused on x86_64 naming both machines."""
    from libbroker._binary import check_compatible

    fat = read_binary(str(MACHO / "libbase_fat.dylib"))
    arm64 = read_binary(str(MACHO / "libbase.dylib"))
    x86_64 = read_binary(str(MACHO / "libbase_x86_64.dylib"))
    assert [s.machine_name for s in fat.slices] == ["x86_64", "arm64"]     # arm64 is not first
    assert check_compatible(fat, arm64, glibc=None) is None
    assert check_compatible(fat, x86_64, glibc=None) is None
    reason = check_compatible(arm64, x86_64, glibc=None)
    assert reason is not None and reason.startswith("Mach-O machine 'arm64'")
    closure = _closure.Closure(str(MACHO / "libbase_fat.dylib"))
    platform_closure(closure, fat, "darwin", host=arm64, env={})
    assert closure.ok, closure.reason


def test_windows_closure_provider_copy_comes_first(dlls: Path, tmp_path: Path) -> None:
    """A provider wheel's lbdep.dll serves the import before the one next to the DLL."""
    lib = tmp_path / "lib"
    wheel = tmp_path / "site-packages" / "lbdep_provider" / "bin"
    lib.mkdir()
    wheel.mkdir(parents=True)
    root = str(lib / "lbmain.dll")
    shutil.copy(dlls / "lbmain.dll", root)
    shutil.copy(dlls / "lbdep.dll", lib / "lbdep.dll")
    shutil.copy(dlls / "lbdep.dll", wheel / "lbdep.dll")
    info = _pe.read(root)
    closure = _closure.Closure(root)
    platform_closure(closure, info, "win32", host=info,
                     context=system_context(root, providers={"LBDEP.DLL": str(wheel / "lbdep.dll")}))
    assert closure.ok, closure.reason
    assert [(d.path, d.origin) for d in closure.dependencies] == [(str(wheel / "lbdep.dll"), "provider")]


def test_provider_dlls_shape() -> None:
    """Whatever providers are installed here: lower-case DLL names to absolute paths."""
    from libbroker._platforms._closures import provider_dlls

    for name, path in provider_dlls().items():
        assert name == name.lower() and name.endswith(".dll")
        assert os.path.isabs(path) and os.path.basename(path).lower() == name


@pytest.mark.parametrize(("filename", "link"), [
    ("zlib1.dll", "zlib1"), ("libbz2-1.dll", "bz2"), ("libcrypto-3-x64.dll", "crypto"),
    ("LIBFOO.DLL", "foo"), ("libffi-8.dll", "ffi"), ("lib.dll", "lib"), ("libz.so.1", None), (".dll", None),
])
def test_dll_link_names(filename: str, link: str | None) -> None:
    from libbroker._listing import dll_link_name

    assert dll_link_name(filename) == link
    if link is not None:  # the discovery policy agrees: find(link) would see this file
        assert win.matches_link_name(filename, link, "AMD64")


def test_listing_by_platform(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`libbroker list` sees PE files as libraries on Windows, Mach-O on macOS, by magic."""
    from libbroker._listing import visible_libraries

    lib = tmp_path / "lib"
    lib.mkdir()
    shutil.copy(PE_FIXTURES / "pe_fixture_x64.dll", lib / "libpe-1.dll")
    (lib / "fake.dll").write_bytes(b"not a PE file")
    shutil.copy(MACHO / "libbase.dylib", lib / "libbase.1.dylib")
    monkeypatch.setenv("LIBBROKER_PATH", str(lib))
    monkeypatch.setenv("LIBBROKER_CONFIG", str(tmp_path / "none.toml"))
    windows = visible_libraries("win32")["override"]
    assert [(i["name"], os.path.basename(str(i["path"]))) for i in windows] == [("pe", "libpe-1.dll")]
    pytest.importorskip("libbroker._platforms._macos")
    macos = visible_libraries("darwin")["override"]
    assert [(i["name"], os.path.basename(str(i["path"]))) for i in macos] == [("base", "libbase.1.dylib")]
