"""libbroker._closure: the dependency closure judged like ld.so, checked against ld.so itself.

Fixtures are built with gcc in each test; the oracles are the system's own
loader (`ldd`, a `ctypes` dlopen in a child process) and `readelf`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import libbroker
from libbroker._closure import resolve_closure

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ELF/glibc loader")
needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIBBROKER_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("LIBBROKER_CONFIG", str(tmp_path / "no-config.toml"))
    monkeypatch.delenv("LIBBROKER_PATH", raising=False)
    monkeypatch.delenv("LD_LIBRARY_PATH", raising=False)
    os.chmod(tmp_path, 0o755)


def cc(out: Path, source: str, *args: str, cxx: bool = False) -> Path:
    """Compile *source* into the shared library *out* (SONAME = its file name)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    src = out.with_suffix(".cc" if cxx else ".c")
    src.write_text(textwrap.dedent(source))
    compiler = "g++" if cxx else "gcc"
    subprocess.run(
        [compiler, "-shared", "-fPIC", "-o", str(out), str(src), f"-Wl,-soname,{out.name}", *args],
        check=True,
    )
    src.unlink()
    return out


def loads_in_child(path: Path, env: dict[str, str] | None = None, cwd: Path | None = None) -> bool:
    """The oracle: does the system loader dlopen *path* (in a fresh process)?"""
    code = f"import ctypes; ctypes.CDLL({str(path)!r})"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, env=env, cwd=cwd, check=False)
    return run.returncode == 0


def ldd(path: Path, env: dict[str, str] | None = None) -> dict[str, str]:
    """needed name -> path, as the system loader resolves it (ldd runs ld.so)."""
    out = subprocess.run(["ldd", str(path)], capture_output=True, text=True, env=env, check=False).stdout
    result = {}
    for line in out.splitlines():
        name, arrow, rest = line.strip().partition(" => ")
        if arrow and rest.startswith("/"):
            result[name] = os.path.realpath(rest.split(" (")[0])
    return result


# --- real host libraries ---------------------------------------------------------


@pytest.mark.parametrize("link", ["curl", "tiff", "png16", "ssl", "stdc++", "sqlite3"])
def test_real_closure_matches_ldd(link: str) -> None:
    try:
        info = libbroker.find(link)
    except libbroker.LibraryNotFoundError:
        pytest.skip(f"lib{link} is not installed (.ci/apt-packages.txt installs it)")
    closure = resolve_closure(info.path)
    assert closure.ok, closure.reason
    ours = {d.needed: os.path.realpath(d.path) for d in closure.dependencies}
    theirs = {k: v for k, v in ldd(Path(info.path)).items() if not k.startswith(("libc.so", "ld-linux"))}
    assert ours == theirs
    assert [d.needed for d in info.dependencies] == [d.needed for d in closure.dependencies]


def test_dependencies_come_before_dependents() -> None:
    try:
        info = libbroker.find("curl")
    except libbroker.LibraryNotFoundError:
        pytest.skip("libcurl is not installed")
    order = [os.path.basename(d.needed) for d in info.dependencies]
    position = {name: i for i, name in enumerate(order)}
    for dep in info.dependencies:
        needed_by_dep = subprocess.run(
            ["readelf", "-d", dep.path], capture_output=True, text=True, check=True
        ).stdout
        for line in needed_by_dep.splitlines():
            if "(NEEDED)" in line:
                inner = line.split("[", 1)[1].rstrip("]")
                if inner in position:
                    assert position[inner] < position[os.path.basename(dep.needed)]


# --- fixtures for each failure kind ----------------------------------------------


@needs_gcc
def test_missing_sibling_rejected_and_next_candidate_loaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # r14: libfoo.so.2 needs libdep.so.1 next to it but has no $ORIGIN RUNPATH.
    cc(tmp_path / "a" / "libdep.so.1", "int dep_f(void){return 7;}")
    cc(tmp_path / "a" / "libfoo.so.2", "int dep_f(void); int foo_g(void){return dep_f();}",
       f"-L{tmp_path / 'a'}", "-l:libdep.so.1")
    cc(tmp_path / "b" / "libfoo.so.1", "int foo_g(void){return 1;}")
    assert not loads_in_child(tmp_path / "a" / "libfoo.so.2")  # the loader agrees
    monkeypatch.setenv("LIBBROKER_PATH", f"{tmp_path / 'a'}:{tmp_path / 'b'}")
    cands = libbroker.candidates("foo")
    first = next(c for c in cands if c.path.endswith("libfoo.so.2"))
    assert not first.accepted
    assert "libdep.so.1" in first.reason and "cannot be found" in first.reason
    assert libbroker.find("foo").path.endswith("libfoo.so.1")
    lib = libbroker.load("foo")
    assert lib.path.endswith("libfoo.so.1") and "foo_g" in lib


@needs_gcc
def test_origin_runpath_resolves_sibling(tmp_path: Path) -> None:
    cc(tmp_path / "libdep.so.1", "int dep_f(void){return 7;}")
    top = cc(tmp_path / "libtop.so.1", "int dep_f(void); int top(void){return dep_f();}",
             f"-L{tmp_path}", "-l:libdep.so.1", "-Wl,-rpath,$ORIGIN")
    closure = resolve_closure(str(top))
    assert closure.ok, closure.reason
    assert [(d.needed, d.path) for d in closure.dependencies] == [("libdep.so.1", str(tmp_path / "libdep.so.1"))]
    readelf = subprocess.run(["readelf", "-d", str(top)], capture_output=True, text=True, check=True).stdout
    kind = "runpath" if "RUNPATH" in readelf else "rpath"
    assert closure.dependencies[0].origin == kind
    assert ldd(top)["libdep.so.1"] == str(tmp_path / "libdep.so.1")


@needs_gcc
def test_rpath_inherited_runpath_not(tmp_path: Path) -> None:
    # ld.so: a DT_RPATH of the loader serves its dependencies' needs too; DT_RUNPATH does not.
    cc(tmp_path / "deep" / "libleaf.so.1", "int leaf(void){return 1;}")
    cc(tmp_path / "mid" / "libmid.so.1", "int leaf(void); int mid(void){return leaf();}",
       f"-L{tmp_path / 'deep'}", "-l:libleaf.so.1")
    for tags, ok in (("--disable-new-dtags", True), ("--enable-new-dtags", False)):
        top = cc(tmp_path / f"libtop{int(ok)}.so.1", "int mid(void); int top(void){return mid();}",
                 f"-L{tmp_path / 'mid'}", "-l:libmid.so.1",
                 f"-Wl,{tags},-rpath,{tmp_path / 'mid'}:{tmp_path / 'deep'}")
        closure = resolve_closure(str(top))
        assert closure.ok is ok, closure.reason
        assert loads_in_child(top) is ok  # the loader agrees
        if not ok:
            assert "libleaf.so.1" in (closure.reason or "")


@needs_gcc
def test_glibcxx_need_newer_than_host_rejected(tmp_path: Path) -> None:
    if shutil.which("g++") is None:
        pytest.skip("needs g++")
    lib = cc(tmp_path / "libcxxuser.so.1", """
        #include <string>
        extern "C" int size_of(const char *s) { return (int) std::string(s).size(); }
    """, cxx=True)
    data = lib.read_bytes()
    needs = sorted({data[i:i + 14] for i in range(len(data)) if data.startswith(b"GLIBCXX_3.4.", i)})
    assert needs, "the fixture needs a GLIBCXX version"
    # Same length, so every offset stays valid: GLIBCXX_3.4.NN -> GLIBCXX_9.4.NN.
    lib.write_bytes(data.replace(b"GLIBCXX_3.4.", b"GLIBCXX_9.4."))
    assert not loads_in_child(lib)  # the loader refuses it too
    closure = resolve_closure(str(lib))
    assert not closure.ok
    assert "GLIBCXX_9.4." in (closure.reason or "") and "libstdc++.so.6" in (closure.reason or "")
    assert "defines up to GLIBCXX_3.4." in (closure.reason or "")


@needs_gcc
def test_musl_library_rejected_on_glibc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if shutil.which("musl-gcc") is None:
        pytest.skip("needs musl-gcc (Debian's musl-tools, in .ci/apt-packages.txt)")
    src = tmp_path / "m.c"
    src.write_text("int m(void){return 3;}\n")
    out = tmp_path / "libmuslonly.so.1"
    subprocess.run(["musl-gcc", "-shared", "-fPIC", "-o", str(out), str(src),
                    "-Wl,-soname,libmuslonly.so.1"], check=True)
    monkeypatch.setenv("LIBBROKER_PATH", str(tmp_path))
    (cand,) = libbroker.candidates("muslonly")
    assert not cand.accepted and "musl" in cand.reason and "glibc" in cand.reason
    with pytest.raises(libbroker.LibraryNotFoundError, match="musl"):
        libbroker.load("muslonly")


@needs_gcc
def test_two_sqlite3_copies_fallback_and_unload(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # r10: the first copy is too old; load() must try the next one and unmap the old one.
    script = textwrap.dedent("""
        import os, libbroker
        from libbroker import _master
        lib = libbroker.load("sqlite3", ">=3.35")
        print(lib.path, lib.version, lib.version_source)
        print(any("3.31.1" in p for p, _ in _master.loaded_objects()))
    """)
    for version in ("3.31.1", "3.45.3"):
        cc(tmp_path / version / "libsqlite3.so.0.8.6",
           f'const char *sqlite3_libversion(void){{return "{version}";}}\n'
           "int sqlite3_open(const char*f,void**d){return 0;}", "-Wl,-soname,libsqlite3.so.0")
        os.symlink("libsqlite3.so.0.8.6", tmp_path / version / "libsqlite3.so.0")
    env = dict(os.environ, LIBBROKER_PATH=f"{tmp_path / '3.31.1'}:{tmp_path / '3.45.3'}")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=False)
    assert out.returncode == 0, out.stderr
    path, version, source, old_mapped = out.stdout.split()
    assert "3.45.3" in path and version == "3.45.3" and source == "library"
    assert old_mapped == "False"


@needs_gcc
def test_empty_ld_library_path_entry_never_serves_a_dependency(tmp_path: Path) -> None:
    # r04: a dependency planted in the current directory, reached through an empty entry.
    cc(tmp_path / "good" / "libdep.so.1", 'const char *who(void){return "legit";}')
    cc(tmp_path / "good" / "libfoo4.so.1", "const char *who(void); const char *foo_who(void){return who();}",
       f"-L{tmp_path / 'good'}", "-l:libdep.so.1")
    planted = tmp_path / "cwd"
    cc(planted / "libdep.so.1", 'const char *who(void){return "planted";}')
    script = textwrap.dedent("""
        import ctypes, libbroker
        lib = libbroker.load("foo4")
        f = ctypes.cast(lib.address("foo_who"), ctypes.CFUNCTYPE(ctypes.c_char_p))
        print(f().decode(), [d.path for d in lib.dependencies])
    """)
    env = dict(os.environ, LD_LIBRARY_PATH=f":{tmp_path / 'good'}")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=planted, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("legit ")
    assert str(planted) not in out.stdout


@needs_gcc
def test_relative_runpath_entry_never_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cc(tmp_path / "rel" / "libreldep.so.1", "int d(void){return 1;}")
    top = cc(tmp_path / "top" / "libreltop.so.1", "int d(void); int t(void){return d();}",
             f"-L{tmp_path / 'rel'}", "-l:libreldep.so.1", "-Wl,--enable-new-dtags,-rpath,rel")
    monkeypatch.chdir(tmp_path)
    assert loads_in_child(top, cwd=tmp_path)  # ld.so itself would take it from the cwd
    closure = resolve_closure(str(top))
    assert not closure.ok and "libreldep.so.1" in (closure.reason or "")
    assert "relative" in (closure.reason or "")


@needs_gcc
def test_rtld_global_copy_refused_naming_both(tmp_path: Path) -> None:
    # A copy in the global scope would take over the private copy's internal calls.
    body = "int helper(void){{return {n};}} int api(void){{return helper();}}"
    cc(tmp_path / "one" / "libinterp.so.1", body.format(n=1))
    cc(tmp_path / "two" / "libinterp.so.1", body.format(n=2))
    script = textwrap.dedent(f"""
        import ctypes, libbroker
        ctypes.CDLL({str(tmp_path / 'one' / 'libinterp.so.1')!r}, mode=ctypes.RTLD_GLOBAL)
        try:
            libbroker.load({str(tmp_path / 'two' / 'libinterp.so.1')!r})
            print("loaded")
        except libbroker.IncompatibleLibraryError as exc:
            print("refused", exc)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("refused"), out.stdout
    assert str(tmp_path / "one") in out.stdout and str(tmp_path / "two") in out.stdout


def test_mapped_copy_reused_after_import_ssl() -> None:
    # import ssl maps libcrypto; load("crypto") must reuse that copy, not map a second one.
    script = textwrap.dedent("""
        import os, ssl, libbroker
        from libbroker import _master
        mapped = {os.path.realpath(p) for p, _ in _master.loaded_objects() if "libcrypto.so" in p}
        lib = libbroker.load("crypto")
        after = {os.path.realpath(p) for p, _ in _master.loaded_objects() if "libcrypto.so" in p}
        print(len(mapped), len(after), os.path.realpath(lib.path) in mapped, lib.origin)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    before, after, same, origin = out.stdout.split()
    assert before == "1" and after == "1" and same == "True" and origin != "path"


@needs_gcc
def test_second_copy_warns_naming_both(tmp_path: Path) -> None:
    cc(tmp_path / "old" / "liblbdup.so.1", 'const char *sqlite3_libversion(void){return "1.0.0";}')
    cc(tmp_path / "new" / "liblbdup.so.1", 'const char *sqlite3_libversion(void){return "2.0.0";}')
    script = textwrap.dedent(f"""
        import ctypes, warnings, libbroker
        ctypes.CDLL({str(tmp_path / 'old' / 'liblbdup.so.1')!r})
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            lib = libbroker.load("lbdup")
        print(lib.path)
        for w in seen:
            print(w.category.__name__, w.message)
    """)
    env = dict(os.environ, LIBBROKER_PATH=str(tmp_path / "new"))
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0] == str(tmp_path / "new" / "liblbdup.so.1")
    assert "DuplicateLibraryWarning" in out.stdout
    assert str(tmp_path / "old") in out.stdout and str(tmp_path / "new") in out.stdout


@needs_gcc
def test_cycle_walked_once_and_depth_bounded(tmp_path: Path) -> None:
    # liba needs libb needs liba: built in two steps (a stub liba first).
    d = tmp_path / "cyc"
    cc(d / "libcyca.so.1", "int a(void){return 1;}")
    cc(d / "libcycb.so.1", "int a(void); int b(void){return a();}", f"-L{d}", "-l:libcyca.so.1", "-Wl,-rpath,$ORIGIN")
    cc(d / "libcyca.so.1", "int b(void); int a(void){return 1;} int a2(void){return b();}",
       f"-L{d}", "-l:libcycb.so.1", "-Wl,-rpath,$ORIGIN")
    closure = resolve_closure(str(d / "libcyca.so.1"))
    assert closure.ok, closure.reason
    assert [x.needed for x in closure.dependencies] == ["libcycb.so.1"]
    assert loads_in_child(d / "libcyca.so.1")  # ld.so copes with the cycle too
    # A chain deeper than the bound is refused with the reason, not a RecursionError.
    chain = tmp_path / "chain"
    depth = 40
    cc(chain / f"libch{depth}.so.1", f"int f{depth}(void){{return {depth};}}")
    for i in range(depth - 1, -1, -1):
        cc(chain / f"libch{i}.so.1", f"int f{i + 1}(void); int f{i}(void){{return f{i + 1}();}}",
           f"-L{chain}", f"-l:libch{i + 1}.so.1", "-Wl,-rpath,$ORIGIN")
    deep = resolve_closure(str(chain / "libch0.so.1"))
    assert not deep.ok and "deeper than" in (deep.reason or "")
    shallow = resolve_closure(str(chain / "libch20.so.1"))
    assert shallow.ok and len(shallow.dependencies) == depth - 20


def test_executable_never_accepted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    exe = os.path.realpath(sys.executable)
    target = tmp_path / "libpyexe.so.1"
    shutil.copy(exe, target)
    monkeypatch.setenv("LIBBROKER_PATH", str(tmp_path))
    (cand,) = libbroker.candidates("pyexe")
    assert not cand.accepted and "executable" in cand.reason


def test_unreadable_file_is_a_reason_not_a_crash(tmp_path: Path) -> None:
    bogus = tmp_path / "libjunk.so.1"
    bogus.write_bytes(b"\x7fELF" + b"\0" * 10)
    closure = resolve_closure(str(bogus))
    assert not closure.ok and closure.reason


def test_warning_classes() -> None:
    assert issubclass(libbroker.DuplicateLibraryWarning, libbroker.BrokerWarning)
    assert issubclass(libbroker.BrokerWarning, UserWarning)


@needs_gcc
def test_provider_chain_in_fresh_venv(tmp_path: Path) -> None:
    # Issue item 3: a provider whose library needs another provider's library
    # (docs/providers.md recommends it). Neither is on any system path: the
    # closure takes the dependency from its provider and load() maps it first.
    import inspect
    import venv

    from libbroker._wrap import wrap

    cc(tmp_path / "build" / "libdepb.so.1", 'const char *depb_who(void){return "depb";}')
    cc(tmp_path / "build" / "libtopa.so.1", "const char *depb_who(void); const char *topa_who(void){return depb_who();}",
       f"-L{tmp_path / 'build'}", "-l:libdepb.so.1")
    extra = {"requires": ["libbroker-provider-depb"]} if "requires" in inspect.signature(wrap).parameters else {}
    wheels = [
        wrap(str(tmp_path / "build" / "libdepb.so.1"), name="depb", version="1.0.0", out_dir=str(tmp_path / "dist")),
        wrap(str(tmp_path / "build" / "libtopa.so.1"), name="topa", version="2.0.0", out_dir=str(tmp_path / "dist"),
             **extra),
    ]
    root = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True, symlinks=True).create(str(root))
    python = str(root / "bin" / "python")
    subprocess.run([python, "-m", "pip", "-q", "--disable-pip-version-check", "install", "--no-deps",
                    "--no-index", *wheels], check=True)
    shutil.rmtree(tmp_path / "build")  # the only copies left are the providers'
    script = textwrap.dedent("""
        import ctypes, json, libbroker
        info = libbroker.find("topa")
        lib = libbroker.load("topa")
        f = ctypes.cast(lib.address("topa_who"), ctypes.CFUNCTYPE(ctypes.c_char_p))
        print(json.dumps({"who": f().decode(), "origin": info.origin,
                          "deps": [[d.needed, d.path, d.origin] for d in info.dependencies]}))
    """)
    root_dir = os.path.dirname(os.path.dirname(os.path.abspath(libbroker.__file__)))
    env = dict(os.environ, PYTHONPATH=root_dir, LIBBROKER_CACHE_DIR=str(tmp_path / "cache"))
    out = subprocess.run([python, "-c", script], capture_output=True, text=True, env=env, check=False)
    assert out.returncode == 0, out.stderr
    import json

    result = json.loads(out.stdout.splitlines()[-1])
    assert result["who"] == "depb" and result["origin"].startswith("provider:")
    ((needed, path, origin),) = result["deps"]
    assert needed == "libdepb.so.1" and origin.startswith("provider:") and path.startswith(str(root))


@needs_gcc
def test_deepbind_isolation_keeps_own_calls(tmp_path: Path) -> None:
    body = "int helper(void){{return {n};}} int api(void){{return helper();}}"
    cc(tmp_path / "one" / "libinterp.so.1", body.format(n=1))
    cc(tmp_path / "two" / "libinterp.so.1", body.format(n=2))
    config = tmp_path / "config.toml"
    config.write_text('isolation = "deepbind"\n')
    script = textwrap.dedent(f"""
        import ctypes, libbroker
        ctypes.CDLL({str(tmp_path / 'one' / 'libinterp.so.1')!r}, mode=ctypes.RTLD_GLOBAL)
        lib = libbroker.load({str(tmp_path / 'two' / 'libinterp.so.1')!r})
        api = ctypes.CFUNCTYPE(ctypes.c_int)(lib.address("api"))
        print(api())
    """)
    env = dict(os.environ, LIBBROKER_CONFIG=str(config))
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "2"  # its own helper, not the global copy's


@needs_gcc
def test_hwcaps_subdirectory_of_a_search_directory(tmp_path: Path) -> None:
    # glibc >= 2.33 tries <dir>/glibc-hwcaps/<level>/ before <dir> for every search directory.
    from libbroker._ldcache import supported_hwcaps

    levels = supported_hwcaps()
    if not levels:
        pytest.skip("this CPU supports no glibc-hwcaps level")
    cc(tmp_path / "lib" / "libhwdep.so.1", "int hw(void){return 0;}")
    cc(tmp_path / "lib" / "glibc-hwcaps" / levels[-1] / "libhwdep.so.1", "int hw(void){return 1;}")
    top = cc(tmp_path / "lib" / "libhwtop.so.1", "int hw(void); int t(void){return hw();}",
             f"-L{tmp_path / 'lib'}", "-l:libhwdep.so.1", "-Wl,-rpath,$ORIGIN")
    closure = resolve_closure(str(top))
    assert closure.ok, closure.reason
    chosen = closure.dependencies[0].path
    assert chosen == str(tmp_path / "lib" / "glibc-hwcaps" / levels[-1] / "libhwdep.so.1")
    glibc = os.confstr("CS_GNU_LIBC_VERSION") or ""
    if glibc.startswith("glibc ") and tuple(int(x) for x in glibc[6:].split(".")[:2]) >= (2, 33):
        assert ldd(top)["libhwdep.so.1"] == chosen  # ld.so agrees


@needs_gcc
def test_runpath_with_empty_entry_never_serves_a_dependency(tmp_path: Path) -> None:
    # r04 (b): DT_RUNPATH ":<good>" - ld.so would look in the current directory first.
    good = tmp_path / "good"
    cc(good / "libdep.so.1", 'const char *who(void){return "legit";}')
    cc(good / "libbar4.so.1", "const char *who(void); const char *bar_who(void){return who();}",
       f"-L{good}", "-l:libdep.so.1", f"-Wl,--enable-new-dtags,-rpath,:{good}")
    planted = tmp_path / "cwd"
    cc(planted / "libdep.so.1", 'const char *who(void){return "planted";}')
    assert ldd(good / "libbar4.so.1", env=None) != {}  # readable by the real loader
    script = textwrap.dedent("""
        import ctypes, libbroker
        lib = libbroker.load("bar4")
        f = ctypes.cast(lib.address("bar_who"), ctypes.CFUNCTYPE(ctypes.c_char_p))
        print(f().decode())
    """)
    env = dict(os.environ, LIBBROKER_PATH=str(good))
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=planted,
                         check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "legit"


@needs_gcc
def test_load_path_follows_the_closure(tmp_path: Path) -> None:
    # load(PATH): the closure judged and mapped by path too; a planted copy in the
    # current directory (empty LD_LIBRARY_PATH entry) never serves a dependency.
    good = tmp_path / "good"
    cc(good / "libdep.so.1", 'const char *who(void){return "legit";}')
    top = cc(good / "libfoo5.so.1", "const char *who(void); const char *foo_who(void){return who();}",
             f"-L{good}", "-l:libdep.so.1")
    planted = tmp_path / "cwd"
    cc(planted / "libdep.so.1", 'const char *who(void){return "planted";}')
    script = textwrap.dedent(f"""
        import ctypes, libbroker
        try:
            libbroker.load({str(top)!r})
        except libbroker.IncompatibleLibraryError as exc:
            print("refused", exc)
        else:
            print("loaded")
    """)
    # Without good/ on any path the dependency cannot be found: refused, naming it.
    env = dict(os.environ, LD_LIBRARY_PATH=":")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=planted,
                         check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("refused") and "libdep.so.1" in out.stdout
    script2 = textwrap.dedent(f"""
        import ctypes, libbroker
        lib = libbroker.load({str(top)!r})
        f = ctypes.cast(lib.address("foo_who"), ctypes.CFUNCTYPE(ctypes.c_char_p))
        print(f().decode(), [d.path for d in lib.dependencies])
    """)
    env = dict(os.environ, LD_LIBRARY_PATH=f":{good}")
    out = subprocess.run([sys.executable, "-c", script2], capture_output=True, text=True, env=env, cwd=planted,
                         check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("legit ") and str(good / "libdep.so.1") in out.stdout


def test_mapped_openssl_wins_over_an_earlier_copy_on_the_search_path(tmp_path: Path) -> None:
    # Issue item 4: after `import ssl` maps libcrypto.so.3, load("crypto") must not map a
    # second OpenSSL found first on LD_LIBRARY_PATH (here: a byte copy, another inode).
    import ssl

    real = next(
        (os.path.realpath(p) for p in ldd(Path(__import__("_ssl").__file__)).values() if "libcrypto" in p), None
    )
    if real is None:
        pytest.skip("_ssl is not linked against a shared libcrypto")
    del ssl
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(real, other / os.path.basename(real))
    if not (other / "libcrypto.so.3").exists():
        os.symlink(os.path.basename(real), other / "libcrypto.so.3")
    script = textwrap.dedent(f"""
        import os, ssl, warnings, libbroker
        from libbroker import _master
        os.environ["LD_LIBRARY_PATH"] = {str(other)!r}  # libbroker's search sees it first
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            lib = libbroker.load("crypto")
        copies = {{os.path.realpath(p) for p, _ in _master.loaded_objects() if "libcrypto.so" in p}}
        print(os.path.realpath(lib.path), len(copies))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    path, count = out.stdout.split()
    assert path == real and count == "1"


def test_candidates_list_the_mapped_copy_load_reuses(tmp_path: Path) -> None:
    import ssl

    real = next(
        (os.path.realpath(p) for p in ldd(Path(__import__("_ssl").__file__)).values() if "libcrypto" in p), None
    )
    if real is None:
        pytest.skip("_ssl is not linked against a shared libcrypto")
    del ssl
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(real, other / "libcrypto.so.3")
    script = textwrap.dedent(f"""
        import os, ssl, libbroker
        os.environ["LD_LIBRARY_PATH"] = {str(other)!r}
        first = [c for c in libbroker.candidates("crypto") if c.accepted][0]
        print(os.path.realpath(first.path), os.path.realpath(libbroker.load("crypto").path))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    listed, loaded = out.stdout.split()
    assert listed == loaded == real


@needs_gcc
def test_changed_dependency_is_judged_again(tmp_path: Path) -> None:
    d = tmp_path / "lib"
    cc(d / "libchgdep.so.1", "int d(void){return 1;}")
    top = cc(d / "libchgtop.so.1", "int d(void); int t(void){return d();}", f"-L{d}", "-l:libchgdep.so.1",
             "-Wl,-rpath,$ORIGIN")
    assert resolve_closure(str(top)).ok
    (d / "libchgdep.so.1").unlink()
    (d / "libchgdep.so.1").write_text("not a library any more\n")
    again = resolve_closure(str(top))
    assert not again.ok and "libchgdep.so.1" in (again.reason or "")


@needs_gcc
def test_openssl_symbol_version_need_checked(tmp_path: Path) -> None:
    crypto = os.path.join("/usr/lib", getattr(sys.implementation, "_multiarch", ""), "libcrypto.so.3")
    if not os.path.exists(crypto):
        pytest.skip("needs libcrypto.so.3")
    lib = cc(tmp_path / "libsslneed.so.1", "unsigned long OpenSSL_version_num(void); "
             "unsigned long v(void){return OpenSSL_version_num();}", f"-L{os.path.dirname(crypto)}",
             "-l:libcrypto.so.3")
    assert resolve_closure(str(lib)).ok
    data = lib.read_bytes()
    assert b"OPENSSL_3.0.0" in data
    lib.write_bytes(data.replace(b"OPENSSL_3.0.0", b"OPENSSL_9.0.0"))
    assert not loads_in_child(lib)  # the loader refuses it too
    closure = resolve_closure(str(lib))
    assert not closure.ok and "OPENSSL_9.0.0" in (closure.reason or "") and "libcrypto.so.3" in (closure.reason or "")


@needs_gcc
def test_directories_searched_before_each_choice_are_recorded(tmp_path: Path) -> None:
    # review F9: what the cache stamps so that a copy appearing earlier voids the verdict.
    from libbroker._closure import searched_for

    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    cc(second / "libbar.so.1", "int bar(void){return 2;}")
    top = cc(tmp_path / "lib" / "libtop.so.1", "int bar(void); int top(void){return bar();}",
             f"-L{second}", "-l:libbar.so.1", f"-Wl,--enable-new-dtags,-rpath,{first}:{second}")
    closure = resolve_closure(str(top))
    assert closure.ok, closure.reason
    assert ldd(top)["libbar.so.1"] == str(second / "libbar.so.1")  # the loader agrees on the choice
    assert str(first) in closure.searched  # passed before the chosen copy
    assert str(second) not in closure.searched  # the chosen copy's directory: an "@dir" stamp already
    assert searched_for(str(top)) == (closure.searched, closure.inputs)
    assert closure.inputs == []  # libc is the copy this process maps: no ld.so.cache read for it
