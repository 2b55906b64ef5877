"""macOS dyld search rules (libbroker/_platforms/_macos.py) as pure functions, on this host.

Oracles: macholib.dyld (an independent emulation of dyld's search, given the same
environment and a real directory tree), macholib.dylib.dylib_info for file names, and
macholib.MachO reading dylibs that zig cc builds here (their LC_RPATH/LC_LOAD_DYLIB
drive the resolution, and the expected file is the one the build put there).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from _zig import build, needs_zig
from macholib.dyld import dyld_find
from macholib.dylib import dylib_info

from libbroker._platforms import _macos as mac

# --- file names ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filename", "name"),
    [
        ("libz.dylib", "z"),
        ("libz.1.dylib", "z"),
        ("libz.1.2.13.dylib", "z"),
        ("libssl.3.dylib", "ssl"),
        ("libopenblas.0.dylib", "openblas"),
        ("libscipy_openblas64_.dylib", "scipy_openblas64_"),
        ("@rpath/libgfortran.5.dylib", "gfortran"),
        ("/usr/lib/libSystem.B.dylib", "System.B"),
        ("libz.so.1", None),
        ("z.dylib", None),
        ("lib.dylib", None),
        ("libz.dylib.bak", None),
    ],
)
def test_link_name_of(filename: str, name: str | None) -> None:
    assert mac.link_name_of(filename) == name


@pytest.mark.parametrize("filename", ["libz.dylib", "libz.1.dylib", "libssl.3.dylib", "libffi.8.dylib"])
def test_link_name_agrees_with_macholib(filename: str) -> None:
    info = dylib_info(filename)
    assert info is not None
    assert mac.link_name_of(filename) == info["shortname"][len("lib") :]


def test_matches_link_name_takes_dots_in_names() -> None:
    assert mac.matches_link_name("libpython3.12.dylib", "python3.12")
    assert mac.matches_link_name("libz.1.dylib", "z")
    assert not mac.matches_link_name("libzstd.1.dylib", "z")
    assert not mac.matches_link_name("libz.x.dylib", "z")


@pytest.mark.parametrize(
    ("filename", "version"),
    [("libz.1.2.13.dylib", "1.2.13"), ("libz.1.dylib", None), ("libz.dylib", None), ("libz.so.1.2.13", None)],
)
def test_version_from_filename(filename: str, version: str | None) -> None:
    assert mac.version_from_filename(filename) == version


# --- environment -------------------------------------------------------------------


def test_dyld_paths_default_and_restricted() -> None:
    plain = mac.dyld_paths({}, restricted=False)
    assert plain == {"DYLD_LIBRARY_PATH": [], "DYLD_FALLBACK_LIBRARY_PATH": ["/usr/local/lib", "/usr/lib"], "refused": []}
    env = {"DYLD_LIBRARY_PATH": "/a:/b", "DYLD_FALLBACK_LIBRARY_PATH": "/c"}
    assert mac.dyld_paths(env, restricted=False)["DYLD_LIBRARY_PATH"] == ["/a", "/b"]
    assert mac.dyld_paths(env, restricted=False)["DYLD_FALLBACK_LIBRARY_PATH"] == ["/c"]
    # SIP / hardened runtime: DYLD_* never count, and the fallback is /usr/lib alone
    assert mac.dyld_paths(env, restricted=True) == {
        "DYLD_LIBRARY_PATH": [], "DYLD_FALLBACK_LIBRARY_PATH": ["/usr/lib"], "refused": []
    }
    # an empty fallback variable counts as unset, as in dyld
    assert mac.dyld_paths({"DYLD_FALLBACK_LIBRARY_PATH": ""}, restricted=False)["DYLD_FALLBACK_LIBRARY_PATH"] == [
        "/usr/local/lib", "/usr/lib"
    ]


def test_empty_and_relative_entries_are_refused_by_name() -> None:
    paths = mac.dyld_paths({"DYLD_LIBRARY_PATH": ":lib:/ok", "DYLD_FALLBACK_LIBRARY_PATH": "./x"}, restricted=False)
    assert paths["DYLD_LIBRARY_PATH"] == ["/ok"]
    assert paths["DYLD_FALLBACK_LIBRARY_PATH"] == []
    assert paths["refused"] == [
        "DYLD_LIBRARY_PATH entry ''", "DYLD_LIBRARY_PATH entry 'lib'", "DYLD_FALLBACK_LIBRARY_PATH entry './x'"
    ]


@pytest.mark.parametrize(
    ("executable", "protected"),
    [
        ("/usr/bin/python3", True),
        ("/System/Library/Frameworks/Python.framework/Versions/2.7/bin/python", True),
        ("/bin/sh", True),
        ("/usr/local/bin/python3", False),
        ("/opt/homebrew/bin/python3.12", False),
        ("/Library/Frameworks/Python.framework/Versions/3.12/bin/python3", False),
        ("/Users/me/.venv/bin/python", False),
        ("/usr/../usr/local/bin/python3", False),
    ],
)
def test_sip_protected_locations(executable: str, protected: bool) -> None:
    assert mac.is_sip_protected(executable) is protected


def test_search_directories_order() -> None:
    env = {"DYLD_LIBRARY_PATH": "/dyld/first", "CONDA_PREFIX": "/ignored"}
    dirs = mac.search_directories(
        env=env, restricted=False, sys_prefix="/opt/conda", conda_prefix="/opt/conda", machine="arm64"
    )
    assert dirs == [
        ("/opt/conda/lib", "environment", "sys.prefix"),
        ("/dyld/first", "system", "DYLD_LIBRARY_PATH"),
        ("/usr/local/lib", "system", "DYLD_FALLBACK_LIBRARY_PATH"),
        ("/usr/lib", "system", "DYLD_FALLBACK_LIBRARY_PATH"),
        ("/opt/homebrew/lib", "system", "Homebrew"),
        ("/opt/local/lib", "system", "MacPorts"),
    ]
    intel = mac.search_directories(
        env={}, restricted=True, sys_prefix="/venv", conda_prefix="/other/conda", machine="x86_64"
    )
    # a conda prefix that is not the interpreter's is not searched (design.md 5.1)
    assert [d for d, _, _ in intel] == ["/venv/lib", "/usr/lib", "/usr/local/lib", "/opt/homebrew/lib", "/opt/local/lib"]
    assert ("/usr/local/lib", "system", "Homebrew") in intel


# --- dependency resolution -------------------------------------------------------------


def touch(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\xcf\xfa\xed\xfe")
    return str(path)


# The tree tests resolve real files with POSIX paths, as dyld sees them.
posix_only = pytest.mark.skipif(os.name == "nt", reason="dyld paths are POSIX paths (tests with real files)")


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    if os.name == "nt":
        pytest.skip("dyld paths are POSIX paths (tests with real files)")
    for rel in (
        "app/bin/python", "app/lib/libz.1.dylib", "override/libz.1.dylib", "fallback/libfoo.2.dylib",
        "site/pkg/libB.dylib", "site/pkg/.dylibs/libA.1.dylib", "app/lib/libA.1.dylib",
    ):
        touch(tmp_path / rel)
    return tmp_path


def resolve(name: str, tree: Path, env: dict[str, str], loader: str, chain=None):  # type: ignore[no-untyped-def]
    return mac.resolve_dependency(
        name,
        chain=chain if chain is not None else [(loader, [])],
        executable=str(tree / "app/bin/python"),
        env=env,
        restricted=False,
        exists=os.path.isfile,
    )


@pytest.mark.parametrize(
    ("name", "env_dirs"),
    [
        ("{t}/app/lib/libz.1.dylib", {}),
        ("{t}/app/lib/libz.1.dylib", {"DYLD_LIBRARY_PATH": "{t}/override"}),
        ("{t}/nowhere/libz.1.dylib", {"DYLD_FALLBACK_LIBRARY_PATH": "{t}/app/lib"}),
        ("{t}/nowhere/libfoo.2.dylib", {"DYLD_FALLBACK_LIBRARY_PATH": "{t}/app/lib:{t}/fallback"}),
        ("@loader_path/.dylibs/libA.1.dylib", {}),
        ("@executable_path/../lib/libA.1.dylib", {}),
        ("@executable_path/../lib/libA.1.dylib", {"DYLD_LIBRARY_PATH": "{t}/site/pkg/.dylibs"}),
    ],
)
def test_resolution_agrees_with_macholib(tree: Path, name: str, env_dirs: dict[str, str]) -> None:
    name = name.format(t=tree)
    env = {k: v.format(t=tree) for k, v in env_dirs.items()}
    env.setdefault("DYLD_FALLBACK_LIBRARY_PATH", str(tree / "empty"))  # not macholib's outdated default
    loader = str(tree / "site/pkg/libB.dylib")
    expected = dyld_find(name, executable_path=str(tree / "app/bin"), env=env, loader_path=str(tree / "site/pkg"))
    got = resolve(name, tree, env, loader)
    assert got.path == os.path.normpath(expected)
    assert not got.shared_cache


def test_rpath_order_follows_the_loading_chain(tree: Path) -> None:
    lib_b = str(tree / "site/pkg/libB.dylib")
    python = str(tree / "app/bin/python")
    # libB's own LC_RPATH first, then the main program's: the first existing file wins
    chain = [(lib_b, ["@loader_path/.dylibs"]), (python, ["@loader_path/../lib"])]
    got = resolve("@rpath/libA.1.dylib", tree, {}, lib_b, chain)
    assert got.path == str(tree / "site/pkg/.dylibs/libA.1.dylib")
    assert "@loader_path/.dylibs" in got.how and lib_b in got.how
    # @loader_path inside the executable's LC_RPATH means the executable's directory
    got = resolve("@rpath/libA.1.dylib", tree, {}, lib_b, [(lib_b, ["/nowhere"]), (python, ["@loader_path/../lib"])])
    assert got.path == str(tree / "app/lib/libA.1.dylib")
    assert got.tried == ["/nowhere/libA.1.dylib", str(tree / "app/lib/libA.1.dylib")]


def test_relative_rpath_and_bare_names_never_use_the_cwd(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tree / "site/pkg/.dylibs")  # libA.1.dylib is right here: dyld could take it
    lib_b = str(tree / "site/pkg/libB.dylib")
    got = resolve("@rpath/libA.1.dylib", tree, {"DYLD_FALLBACK_LIBRARY_PATH": "/none"}, lib_b, [(lib_b, ["."])])
    assert got.path is None
    assert any("'.'" in r and "never searched" in r for r in got.refused)
    got = resolve("libA.1.dylib", tree, {"DYLD_FALLBACK_LIBRARY_PATH": "/none"}, lib_b)
    assert got.path is None and got.tried == ["/none/libA.1.dylib"]
    assert any("current directory" in r for r in got.refused)


def test_system_libraries_resolve_to_the_shared_cache(tree: Path) -> None:
    lib_b = str(tree / "site/pkg/libB.dylib")
    env = {"DYLD_FALLBACK_LIBRARY_PATH": str(tree / "empty")}
    got = resolve("/usr/lib/libSystem.B.dylib", tree, env, lib_b)
    assert (got.path, got.shared_cache, got.how) == ("/usr/lib/libSystem.B.dylib", True, "dyld shared cache")
    got = resolve("/System/Library/Frameworks/Accelerate.framework/Versions/A/Accelerate", tree, env, lib_b)
    assert got.shared_cache
    # /usr/local is not the system: a missing file there is simply not found
    got = resolve("/usr/local/lib/libnotthere.dylib", tree, env, lib_b)
    assert got.path is None and not got.shared_cache
    assert mac.shared_cache_candidates("z") == ["/usr/lib/libz.dylib"]
    assert mac.shared_cache_candidates("../x") == [] and mac.shared_cache_candidates("") == []


# --- with real dylibs built here --------------------------------------------------------


def load_commands(path: str) -> tuple[str | None, list[str], list[str]]:
    """(install name, LC_LOAD_DYLIB names, LC_RPATH entries) read by macholib."""
    from macholib import mach_o
    from macholib.MachO import MachO

    [header] = MachO(path).headers
    install, needed, rpaths = None, [], []
    for lc, _cmd, data in header.commands:
        text = data.rstrip(b"\0").decode() if isinstance(data, bytes) else ""
        if lc.cmd == mach_o.LC_ID_DYLIB:
            install = text
        elif lc.cmd in (mach_o.LC_LOAD_DYLIB, mach_o.LC_LOAD_WEAK_DYLIB, mach_o.LC_REEXPORT_DYLIB):
            needed.append(text)
        elif lc.cmd == mach_o.LC_RPATH:
            rpaths.append(text)
    return install, needed, rpaths


@needs_zig
@posix_only
@pytest.mark.parametrize("target", ["aarch64-macos.11.0", "x86_64-macos.10.13"])
def test_a_wheel_layout_built_by_zig_resolves(tmp_path: Path, target: str) -> None:
    """A delocate-style wheel: pkg/libB.dylib -> @rpath/libA.1.dylib with LC_RPATH @loader_path/.dylibs."""
    dylibs = tmp_path / "pkg/.dylibs"
    dylibs.mkdir(parents=True)
    lib_a = build("int a_one(void) { return 1; }\n", str(dylibs / "libA.1.dylib"), target,
                  "-Wl,-install_name,@rpath/libA.1.dylib")
    lib_b = build("int a_one(void);\nint b_two(void) { return a_one() + 1; }\n", str(tmp_path / "pkg/libB.dylib"),
                  target, f"-L{dylibs}", "-l:libA.1.dylib", "-Wl,-rpath,@loader_path/.dylibs",
                  "-Wl,-install_name,@rpath/libB.dylib")
    install, needed, rpaths = load_commands(lib_b)
    assert install == "@rpath/libB.dylib" and rpaths == ["@loader_path/.dylibs"]
    assert "@rpath/libA.1.dylib" in needed and "/usr/lib/libSystem.B.dylib" in needed
    resolved = {
        name: mac.resolve_dependency(
            name, chain=[(lib_b, rpaths)], executable="/usr/local/bin/python3",
            env={"DYLD_FALLBACK_LIBRARY_PATH": str(tmp_path / "none")}, restricted=False, exists=os.path.isfile,
        )
        for name in needed
    }
    assert resolved["@rpath/libA.1.dylib"].path == lib_a
    assert not resolved["@rpath/libA.1.dylib"].shared_cache
    assert resolved["/usr/lib/libSystem.B.dylib"].shared_cache


@needs_zig
@posix_only
def test_resolution_from_libbrokers_own_macho_reader(tmp_path: Path) -> None:
    """The same wheel layout, with the facts read by libbroker._binary (once the Mach-O reader exists)."""
    import importlib.util

    if importlib.util.find_spec("libbroker._binary._macho") is None:
        pytest.skip("needs the PE/Mach-O reader")
    from libbroker._binary import read_binary

    dylibs = tmp_path / "pkg/.dylibs"
    lib_a = build("int a_one(void) { return 1; }\n", str(dylibs / "libA.1.dylib"), "aarch64-macos.11.0",
                  "-Wl,-install_name,@rpath/libA.1.dylib")
    lib_b = build("int a_one(void);\nint b_two(void) { return a_one() + 1; }\n", str(tmp_path / "pkg/libB.dylib"),
                  "aarch64-macos.11.0", f"-L{dylibs}", "-l:libA.1.dylib", "-Wl,-rpath,@loader_path/.dylibs")
    info = read_binary(lib_b)
    assert (info.rpath, info.needed) == (load_commands(lib_b)[2], load_commands(lib_b)[1])  # macholib agrees
    got = mac.resolve_dependency(
        "@rpath/libA.1.dylib", chain=[(lib_b, info.rpath)], executable="/usr/local/bin/python3",
        env={"DYLD_FALLBACK_LIBRARY_PATH": "/none"}, restricted=False, exists=os.path.isfile,
    )
    assert got.path == lib_a
