"""The trust boundary (issue 8, design.md 5.1), tried the way an attacker would.

Every case builds its fixtures (gcc libraries with a constructor that leaves a
marker file, chmod/chown, symlinks, forged cache entries) and runs libbroker in
a child process through the public API, then checks both the outcome (the
marker was never written, the right file was used) and the message.
"""

from __future__ import annotations

import marshal
import os
import pwd
import shutil
import subprocess
import sys
import textwrap

import pytest
from _host import forget_answers

ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="chown/setuid to another user needs root")
needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed")
pytestmark = [needs_gcc, pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ELF/POSIX rules")]

EVIL = r"""
#include <stdio.h>
#include <stdlib.h>
__attribute__((constructor)) static void pwned(void) {
    const char *m = getenv("PWNED_MARKER");
    FILE *f = m ? fopen(m, "a") : NULL;
    if (f) { fputs("attacker constructor ran\n", f); fclose(f); }
}
const char *who(void) { return "planted"; }
unsigned long crc32(unsigned long c, const unsigned char *b, unsigned int n) { return 0xdeadbeef; }
const char *zlibVersion(void) { return "1.2.13"; }
"""
GOOD_DEP = 'const char *who(void) { return "legit"; }\n'
USES_DEP = "const char *who(void); const char *foo_who(void) { return who(); }\n"


def gcc(directory, name: str, source: str, *extra: str, soname: str | None = None) -> str:
    os.makedirs(directory, exist_ok=True)
    src = os.path.join(directory, name + ".c")
    with open(src, "w") as f:
        f.write(source)
    out = os.path.join(directory, name)
    subprocess.run(
        ["gcc", "-shared", "-fPIC", "-o", out, src, f"-Wl,-soname,{soname or name}", *extra],
        check=True,
        capture_output=True,
    )
    os.unlink(src)
    os.chmod(out, 0o755)
    return out


@pytest.fixture
def box(tmp_path):
    """A private (0755) work area, a marker path and a clean child environment."""
    os.chmod(tmp_path, 0o755)
    marker = tmp_path / "PWNED"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIBBROKER_") and k != "LD_LIBRARY_PATH"}
    env.update(
        LIBBROKER_CACHE_DIR=str(tmp_path / "cache"),
        LIBBROKER_CONFIG=str(tmp_path / "config.toml"),
        PWNED_MARKER=str(marker),
        PYTHONWARNINGS="always",
    )
    return tmp_path, marker, env


def child(code: str, env: dict, cwd=None, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, **kw,
    )


# --- 1. dependencies never come from the current directory ------------------------------


def _dep_fixture(tmp):
    good, cwd = tmp / "good", tmp / "cwd"
    gcc(good, "libdep.so.1", GOOD_DEP)
    gcc(cwd, "libdep.so.1", EVIL)
    return good, cwd


def test_dependency_through_empty_ld_library_path_entry(box) -> None:
    tmp, marker, env = box
    good, cwd = _dep_fixture(tmp)
    gcc(good, "libfoo.so.1", USES_DEP, f"-L{good}", "-l:libdep.so.1")
    env["LD_LIBRARY_PATH"] = f":{good}"
    r = child("""
        import ctypes, libbroker
        lib = libbroker.load('foo')
        f = ctypes.CFUNCTYPE(ctypes.c_char_p)(lib.address('foo_who'))
        print(lib.path, [d.path for d in lib.dependencies], f().decode())
    """, env, cwd=cwd)
    assert not marker.exists(), r.stdout + r.stderr
    assert r.returncode == 0, r.stderr
    assert f"{good}/libfoo.so.1" in r.stdout and f"{good}/libdep.so.1" in r.stdout
    assert r.stdout.split()[-1] == "legit"


@pytest.mark.parametrize("runpath", [":{good}", "lib:{good}", ".:{good}"])
def test_dependency_through_empty_or_relative_runpath_entry(box, runpath) -> None:
    tmp, marker, env = box
    good, cwd = _dep_fixture(tmp)
    os.makedirs(cwd / "lib", exist_ok=True)
    shutil.copy2(cwd / "libdep.so.1", cwd / "lib" / "libdep.so.1")
    gcc(good, "libbar.so.1", USES_DEP, f"-L{good}", "-l:libdep.so.1",
        f"-Wl,--enable-new-dtags,-rpath,{runpath.format(good=good)}")
    env["LIBBROKER_PATH"] = str(good)
    r = child("import libbroker; lib = libbroker.load('bar'); print([d.path for d in lib.dependencies])", env, cwd=cwd)
    assert not marker.exists(), r.stdout + r.stderr
    assert r.returncode == 0 and f"{good}/libdep.so.1" in r.stdout, r.stderr


def test_inspect_shows_runpath(box) -> None:
    tmp, _, env = box
    lib = gcc(tmp / "d", "libr.so.1", GOOD_DEP, "-Wl,--enable-new-dtags,-rpath,$ORIGIN/../x:")
    r = subprocess.run([sys.executable, "-m", "libbroker", "inspect", "--json", lib],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode in (0, 1), r.stderr
    assert '"runpath"' in r.stdout and "$ORIGIN/../x" in r.stdout


# --- 2. no cached verdict outlives its inputs ------------------------------------------------


@pytest.fixture
def cached_foo(box):
    tmp, _marker, env = box
    lib = tmp / "lib"
    gcc(lib, "libfoo.so.1", GOOD_DEP)
    env["LD_LIBRARY_PATH"] = str(lib)
    r = child("import libbroker; print(libbroker.find('foo').path)", env)
    assert r.returncode == 0 and "libfoo.so.1" in r.stdout, r.stderr
    return lib, env


@pytest.mark.parametrize("what, mode", [("dir", 0o777), ("dir", 0o775), ("file", 0o666), ("file", 0o646)])
def test_chmod_after_a_cached_verdict_is_seen(cached_foo, what, mode) -> None:
    lib, env = cached_foo
    os.chmod(lib if what == "dir" else lib / "libfoo.so.1", mode)
    for code in ("libbroker.find('foo')", "libbroker.load('foo')"):
        r = child(f"import libbroker\ntry:\n    {code}\nexcept libbroker.BrokerError as e:\n    print('REFUSED', e)", env)
        assert "REFUSED" in r.stdout, (code, r.stdout, r.stderr)
        assert "writable" in r.stdout


def test_directory_that_becomes_the_cwd_is_not_served_from_cache(box) -> None:
    tmp, _, env = box
    lib = tmp / "lib"
    gcc(lib, "libfoo.so.1", GOOD_DEP)
    env["LIBBROKER_PATH"] = str(lib)
    code = "import libbroker\ntry:\n    print(libbroker.find('foo').path)\nexcept libbroker.BrokerError as e:\n    print('REFUSED', e)"
    assert "libfoo.so.1" in child(code, env, cwd="/").stdout
    r = child(code, env, cwd=lib)
    assert "REFUSED" in r.stdout and "current directory" in r.stdout, r.stdout
    assert "libfoo.so.1" in child(code, env, cwd="/").stdout  # and back


def test_another_interpreter_prefix_does_not_share_verdicts(box, monkeypatch) -> None:
    tmp, _, env = box
    prefix = tmp / "venv"
    gcc(prefix / "lib", "libpfx.so.1", GOOD_DEP)
    monkeypatch.setenv("LIBBROKER_CACHE_DIR", env["LIBBROKER_CACHE_DIR"])
    import libbroker
    from libbroker import _api, _cache

    before = _cache.env_key()
    monkeypatch.setattr(sys, "prefix", str(prefix))
    assert _cache.env_key() != before
    assert libbroker.find("pfx").path == str(prefix / "lib" / "libpfx.so.1")
    monkeypatch.setattr(sys, "prefix", sys.base_prefix)
    _api._memo.clear()
    forget_answers()  # and the directory answers of that second
    with pytest.raises(libbroker.LibraryNotFoundError):
        libbroker.find("pfx")


def test_edit_with_restored_mtime_changes_identity(tmp_path) -> None:
    from libbroker import _cache

    f = tmp_path / "libx.so"
    f.write_bytes(b"one")
    st = os.stat(f)
    before = _cache.identity(str(f))
    f.write_bytes(b"two")
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    after = _cache.identity(str(f))
    assert before != after and before[3] == after[3]  # same mtime, other ctime


# --- 3. the cache and the config file are not trusted blindly -------------------------------


def test_forged_cache_in_a_directory_others_can_write_is_ignored(box) -> None:
    tmp, marker, env = box
    cache = tmp / "cache"
    cache.mkdir()
    os.chmod(cache, 0o777)
    evil = gcc(tmp / "e", "libz.so.1", EVIL)
    from libbroker import _cache

    ident = _cache.identity(evil)
    forged = {("z", None, (), ("x",)): ([("@file", (evil, ident))],
                                        {"name": "z", "path": evil, "soname": "libz.so.1",
                                         "origin": "system", "version_text": "1.2.13"})}
    (cache / f"find-v{_cache._FORMAT}.marshal").write_bytes(_cache._wrap(marshal.dumps(forged)))
    r = child("import libbroker; print(libbroker.load('z').path)", env)
    assert not marker.exists()
    assert r.returncode == 0 and evil not in r.stdout
    assert "BrokerWarning" in r.stderr and "ignores its disk cache" in r.stderr and "chmod 700" in r.stderr


@needs_root
def test_cache_file_owned_by_another_user_is_ignored(box) -> None:
    tmp, _, env = box
    from libbroker import _cache

    cache = tmp / "cache"
    cache.mkdir(mode=0o700)
    path = cache / "x-v2.marshal"
    path.write_bytes(_cache._wrap(marshal.dumps({"k": 1})))
    os.chown(path, pwd.getpwnam("nobody").pw_uid, -1)
    r = child("from libbroker import _cache; print(_cache.load('x'))", env)
    assert r.stdout.strip() == "{}"


def test_wrong_typed_cache_entries_are_ignored_and_rewritten(box) -> None:
    tmp, _, env = box
    assert child("import libbroker; libbroker.find('z'); libbroker.candidates('z')", env).returncode == 0
    from libbroker import _cache

    for path in (tmp / "cache").glob("*.marshal"):
        data = marshal.loads(_cache._unwrap(path.read_bytes()))
        for value in data.values():
            if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], dict):
                value[1]["name"] = ["z"]
            elif isinstance(value, dict):
                value["soname"] = 5
        path.write_bytes(_cache._wrap(marshal.dumps(data)))
    for _ in range(2):
        r = child("import libbroker; print(libbroker.load('z').name, libbroker.find('z').soname)", env)
        assert r.returncode == 0 and r.stdout.split() == ["z", "libz.so.1"], r.stderr


def test_flipped_bit_in_a_cache_file_is_cheap(box) -> None:
    import resource

    tmp, _, env = box
    assert child("import libbroker; libbroker.find('z')", env).returncode == 0
    path = next((tmp / "cache").glob("find-*.marshal"))
    raw = bytearray(path.read_bytes())
    i = next(j for j in range(12, len(raw)) if raw[j] in (0x5B, 0xDB))  # a list: its count follows
    raw[i + 4] ^= 0x40
    path.write_bytes(bytes(raw))
    limit = 1 << 30

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    r = child("import libbroker; print(libbroker.find('z').path)", env, preexec_fn=cap, timeout=60)
    assert r.returncode == 0 and "libz" in r.stdout, r.stderr


def test_oversized_cache_file_is_not_read(box) -> None:
    tmp, _, env = box
    cache = tmp / "cache"
    cache.mkdir(mode=0o700)
    from libbroker import _cache

    (cache / f"find-v{_cache._FORMAT}.marshal").write_bytes(b"\0" * (_cache._MAX_BYTES + 10))
    r = child("import libbroker; print(libbroker.find('z').path)", env)
    assert r.returncode == 0 and "libz" in r.stdout


@pytest.mark.parametrize("text", ["search-paths = " + "[" * 1000 + "]" * 1000 + "\n",
                                  "x = " + "{a=" * 2000 + "1" + "}" * 2000 + "\n"])
def test_deeply_nested_config_is_a_clear_error(box, text) -> None:
    tmp, _, env = box
    (tmp / "config.toml").write_text(text)
    r = child("import libbroker; libbroker.find('z')", env)
    assert r.returncode != 0
    assert "RecursionError" not in r.stderr
    assert "SpecError" in r.stderr and "config.toml" in r.stderr
    assert len(r.stderr.splitlines()) < 40
    r = subprocess.run([sys.executable, "-m", "libbroker", "find", "z"], env=env, capture_output=True, text=True)
    assert r.returncode == 2 and "RecursionError" not in r.stderr and len(r.stderr.splitlines()) < 10


@pytest.mark.parametrize("mode", [0o666, 0o664])
def test_config_writable_by_others_is_ignored_with_a_warning(box, mode) -> None:
    tmp, marker, env = box
    evil = gcc(tmp / "e", "libz.so.1", EVIL)
    cfg = tmp / "config.toml"
    cfg.write_text(f'search-paths = ["{tmp / "e"}"]\n[libraries.z]\npath = "{evil}"\n')
    os.chmod(cfg, mode)
    r = child("import libbroker; print(libbroker.load('z').path)", env)
    assert not marker.exists() and r.returncode == 0 and evil not in r.stdout
    assert "BrokerWarning" in r.stderr and "ignores the config file" in r.stderr and "writable" in r.stderr


def test_without_home_there_is_no_config_or_cache_relative_to_the_cwd(box, monkeypatch) -> None:
    """A container uid with no passwd entry and no HOME: expanduser('~') stays '~' (relative)."""
    tmp, marker, _ = box
    project = tmp / "project"
    evil = gcc(project, "libz.so.1", EVIL)
    for rel in ("config.toml", ".config/libbroker/config.toml", "~/.config/libbroker/config.toml",
                "~/.cache/libbroker/.keep"):
        (project / rel).parent.mkdir(parents=True, exist_ok=True)
        (project / rel).write_text(f'[libraries.z]\npath = "{evil}"\n')
    for key in ("HOME", "LIBBROKER_CONFIG", "LIBBROKER_CACHE_DIR", "XDG_CONFIG_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(key, raising=False)

    def no_entry(uid: int) -> None:
        raise KeyError(f"getpwuid(): uid not found: {uid}")

    monkeypatch.setattr(pwd, "getpwuid", no_entry)
    assert os.path.expanduser("~") == "~"  # what the old code joined onto: relative to the cwd
    monkeypatch.chdir(project)
    import libbroker
    from libbroker import _api, _cache

    monkeypatch.setattr(_cache, "_dir", None)
    _api._memo.clear()
    forget_answers()  # and the directory answers of that second
    assert _cache.config_path() is None and _cache.cache_dir() is None and _cache.usable_dir() is None
    assert libbroker.find("z").path != evil
    assert not (project / "~" / ".cache" / "libbroker" / f"find-v{_cache._FORMAT}.marshal").exists()
    assert not marker.exists()
    monkeypatch.setenv("LIBBROKER_CONFIG", "config.toml")  # a relative override is no location either
    assert _cache.config_path() is None


# --- 4. places not covered before ---------------------------------------------------------------


def _refusal(env, cwd=None, name="foo") -> str:
    r = child(f"""
        import libbroker
        try:
            print('LOADED', libbroker.load({name!r}).path)
        except libbroker.BrokerError as e:
            print('REFUSED', e)
    """, env, cwd=cwd)
    return r.stdout + r.stderr


def test_symlink_from_safe_directory_into_world_writable_directory(box) -> None:
    tmp, marker, env = box
    ww = tmp / "ww"
    evil = gcc(ww, "libfoo.so.1.0", EVIL, soname="libfoo.so.1")
    os.chmod(ww, 0o777)
    safe = tmp / "safe"
    safe.mkdir()
    os.symlink(evil, safe / "libfoo.so.1")
    env["LIBBROKER_PATH"] = str(safe)
    out = _refusal(env)
    assert not marker.exists() and "REFUSED" in out and "world-writable" in out and str(ww) in out


@pytest.mark.parametrize("where", ["ww", "cwd"])
def test_config_pin_in_unsafe_place(box, where) -> None:
    tmp, marker, env = box
    d = tmp / where
    evil = gcc(d, "libfoo.so.1", EVIL)
    if where == "ww":
        os.chmod(d, 0o777)
    (tmp / "config.toml").write_text(f'[libraries.foo]\npath = "{evil}"\n')
    out = _refusal(env, cwd=d)
    assert not marker.exists() and "REFUSED" in out
    assert "world-writable" in out or "current directory" in out


def test_safe_looking_directory_under_world_writable_parent(box) -> None:
    tmp, marker, env = box
    parent = tmp / "open"
    parent.mkdir()
    os.chmod(parent, 0o777)
    gcc(parent / "lib", "libfoo.so.1", EVIL)
    env["LIBBROKER_PATH"] = str(parent / "lib")
    out = _refusal(env)
    assert not marker.exists() and "REFUSED" in out and str(parent) in out


@needs_root
@pytest.mark.parametrize("what", ["file", "dir"])
def test_files_and_directories_owned_by_another_user(box, what) -> None:
    tmp, marker, env = box
    d = tmp / "theirs"
    lib = gcc(d, "libfoo.so.1", EVIL)
    nobody = pwd.getpwnam("nobody").pw_uid
    os.chown(lib if what == "file" else d, nobody, -1)
    env["LIBBROKER_PATH"] = str(d)
    out = _refusal(env)
    assert not marker.exists() and "REFUSED" in out and "owned by another user" in out


@needs_root
def test_trusted_owners_config_key(box) -> None:
    tmp, _, env = box
    d = tmp / "site"
    gcc(d, "libfoo.so.1", GOOD_DEP)
    os.chown(d, pwd.getpwnam("nobody").pw_uid, -1)
    env["LIBBROKER_PATH"] = str(d)
    (tmp / "config.toml").write_text('trusted-owners = ["nobody"]\n')
    assert "LOADED" in _refusal(env)


def test_search_paths_from_a_config_others_can_write(box) -> None:
    tmp, marker, env = box
    d = tmp / "extra"
    gcc(d, "libfoo.so.1", EVIL)
    cfg = tmp / "config.toml"
    cfg.write_text(f'search-paths = ["{d}"]\n')
    os.chmod(cfg, 0o646)
    out = _refusal(env)
    assert not marker.exists() and "REFUSED" in out and "ignores the config file" in out


def test_explicit_load_of_a_file_others_can_write(box) -> None:
    tmp, marker, env = box
    evil = gcc(tmp / "d", "libfoo.so.1", EVIL)
    os.chmod(evil, 0o666)
    out = _refusal(env, name=evil)
    assert not marker.exists() and "REFUSED" in out and "not in a safe place" in out and "chmod go-w" in out


def test_provider_unpacked_in_the_current_directory(box) -> None:
    tmp, marker, env = box
    import zipfile

    evil = gcc(tmp / "build", "libz.so.1", EVIL)
    r = subprocess.run([sys.executable, "-m", "libbroker", "wrap", evil, "--name", "z", "--version", "1.2.13",
                        "-o", str(tmp / "dist")], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    downloads = tmp / "downloads"
    zipfile.ZipFile(r.stdout.strip().splitlines()[-1]).extractall(downloads)
    env.pop("PYTHONPATH", None)
    code = "import libbroker; i = libbroker.find('z'); print(i.origin, i.path); libbroker.load('z')"
    r = child(code, env, cwd=downloads)
    assert r.returncode == 0 and not r.stdout.startswith("provider"), r.stdout + r.stderr
    r = subprocess.run([sys.executable, "-m", "libbroker", "find", "z"], cwd=downloads, env=env,
                       capture_output=True, text=True, timeout=120)
    assert "provider" not in r.stdout
    assert not marker.exists()


# --- 5. the bytes checked are the bytes mapped --------------------------------------------------


def test_identity_mismatch_is_refused(box) -> None:
    tmp, _marker, env = box
    good = gcc(tmp / "lib", "libfoo.so.1", GOOD_DEP)
    r = child(f"""
        import os, shutil
        from libbroker import _cache, _loader, BrokerError
        ident = _cache.identity({good!r})
        os.utime({good!r}, ns=(1, 1))
        try:
            _loader.load_file({good!r}, judged=True, identity=ident)
        except BrokerError as e:
            print('REFUSED', e)
    """, env)
    assert "REFUSED" in r.stdout and "changed since it was checked" in r.stdout


def test_file_swapped_while_loading_is_never_the_refused_one(box) -> None:
    """A racer swaps the library between a good copy and a world-writable attacker copy (r_toctou)."""
    tmp, marker, env = box
    lib = tmp / "lib"
    lib.mkdir()
    good = tmp / "good.so"
    shutil.copy2(os.path.realpath("/lib/x86_64-linux-gnu/libz.so.1"), good)
    evil = gcc(tmp / "e", "libz.so.1", EVIL)
    os.chmod(evil, 0o666)
    stop = tmp / "stop"
    racer = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import os, shutil, time
        end = time.time() + 60
        i = 0
        while time.time() < end and not os.path.exists({str(stop)!r}):
            src = {str(good)!r} if i % 2 == 0 else {evil!r}
            shutil.copy2(src, {str(lib / '.tmp')!r})
            os.chmod({str(lib / '.tmp')!r}, 0o666 if src == {evil!r} else 0o644)
            os.rename({str(lib / '.tmp')!r}, {str(lib / 'libz.so.1')!r})
            i += 1
    """)])
    try:
        env["LIBBROKER_PATH"] = str(lib)
        code = textwrap.dedent("""
            import libbroker, os, shutil
            for n in range(40):
                os.environ['LIBBROKER_CACHE_DIR'] = os.environ['LIBBROKER_CACHE_DIR'] + str(n)
                try:
                    libbroker._api._memo.clear()
                    libbroker.load('z')
                except libbroker.BrokerError:
                    pass
        """)
        for _ in range(3):
            r = child(code, env)
            assert r.returncode == 0, r.stderr
    finally:
        stop.touch()
        racer.wait(timeout=60)
    assert not marker.exists()


BAD_FOO = r"""
#include <stdio.h>
#include <stdlib.h>
__attribute__((constructor)) static void ctor(void) {
    FILE *f = fopen(getenv("PWNED_MARKER"), "a");
    if (f) { fputs("bad constructor ran\n", f); fclose(f); }
}
int other_fn(void) { return 2; }
"""


@pytest.mark.parametrize("cache", ["cold", "warm"])
def test_file_replaced_after_judging_is_never_mapped(box, cache) -> None:
    """review F0: an upgrade race in a safe (root or own, 0755) directory. The judged file
    exports foo_fn; the replacement does not (the spec refuses it) and has a constructor.
    Whatever the timing, the replacement is never mapped: its constructor runs 0 times."""
    tmp, marker, env = box
    lib = tmp / "race"
    gcc(lib, ".g", "int foo_fn(void) { return 1; }\n", soname="libfoo.so.1")
    gcc(lib, ".b", BAD_FOO, soname="libfoo.so.1")
    shutil.copy2(lib / ".g", lib / "libfoo.so.1")
    spec = tmp / "foo.toml"
    spec.write_text('[library]\nname = "foo"\nnames = ["foo"]\n[functions]\nrequired = ["int foo_fn(void)"]\n')
    stop = tmp / "stop"
    racer = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import os, shutil, time
        end = time.time() + 40
        while time.time() < end and not os.path.exists({str(stop)!r}):
            for src in ({str(lib / '.b')!r}, {str(lib / '.g')!r}):
                shutil.copyfile(src, {str(lib / '.t')!r})
                os.rename({str(lib / '.t')!r}, {str(lib / 'libfoo.so.1')!r})
                time.sleep(0.02)  # an upgrade's pace: each file is in place for a moment
    """)])
    env["LIBBROKER_PATH"] = str(lib)
    code = f"""
        import os, libbroker
        for n in range(8):
            if {cache!r} == 'cold':
                os.environ['LIBBROKER_CACHE_DIR'] = os.environ['LIBBROKER_CACHE_DIR'] + str(n)
            try:
                libbroker.table({str(spec)!r}); print('ok')
                break
            except libbroker.BrokerError as e:
                print('refused', type(e).__name__, e)
    """
    outcomes = []
    try:
        deadline = __import__("time").monotonic() + 12
        while __import__("time").monotonic() < deadline:
            r = child(code, env, timeout=60)
            assert r.returncode == 0, r.stderr
            outcomes.append(r.stdout)
    finally:
        stop.touch()
        racer.wait(timeout=60)
    assert len(outcomes) >= 5
    assert not marker.exists(), f"the replaced file was mapped: {marker.read_text()!r}"
    # Refused only while the file is being swapped; most processes end with the good file.
    assert sum("ok" in o.splitlines() for o in outcomes) >= len(outcomes) // 2, outcomes[:3]


def test_dependency_or_path_replaced_after_judging_is_refused_before_dlopen(box) -> None:
    """review F0, deterministic: the verdict (find, load(path)'s closure) carries each file's
    judged identity; a dependency or the file itself replaced afterwards is refused before
    dlopen ("changed since it was checked") and its constructor never runs."""
    tmp, marker, env = box
    lib = tmp / "lib"
    gcc(lib, "libdep.so.1", GOOD_DEP)
    gcc(lib, "libfoo.so.1", USES_DEP, f"-L{lib}", "-l:libdep.so.1", f"-Wl,-rpath,{lib}")
    gcc(tmp / "bad", "libdep.so.1", EVIL)
    gcc(tmp / "bad", "libfoo.so.1", EVIL + "const char *foo_who(void) { return who(); }\n")
    gcc(tmp / "good", "libdep.so.1", GOOD_DEP)
    env["LIBBROKER_PATH"] = str(lib)
    r = child(f"""
        import os, shutil, libbroker
        from libbroker import _api, _loader
        def swap(name, src={str(tmp / 'bad')!r}):
            shutil.copy2(src + '/' + name, {str(lib)!r} + '/.t')
            os.rename({str(lib)!r} + '/.t', {str(lib)!r} + '/' + name)
        info = libbroker.find('foo')
        assert [d.needed for d in info.dependencies] == ['libdep.so.1']
        swap('libdep.so.1')
        failures = []
        print('TRY', _api._try_load(info, None, failures), failures)
        swap('libdep.so.1', {str(tmp / 'good')!r})
        deps, judged = _api._prepare_path({str(lib / 'libfoo.so.1')!r})
        swap('libfoo.so.1')
        try:
            _loader.load_file({str(lib / 'libfoo.so.1')!r}, identity=judged)
        except libbroker.BrokerError as e:
            print('PATH', e)
    """, env)
    assert r.returncode == 0, r.stderr
    assert not marker.exists(), r.stdout
    assert "TRY None" in r.stdout and "libdep.so.1' failed to load: the file changed since it was checked" in r.stdout
    assert "PATH" in r.stdout and "changed since it was checked" in r.stdout


# --- 6. reader gaps: refused before dlopen ---------------------------------------------------------


def _copy_libz(tmp) -> str:
    d = tmp / "lib"
    d.mkdir(exist_ok=True)
    dst = d / "libz.so.1"
    shutil.copy2(os.path.realpath("/lib/x86_64-linux-gnu/libz.so.1"), dst)
    return str(dst)


def _load_in_child(env, path) -> subprocess.CompletedProcess:
    return child(f"""
        import libbroker
        try:
            libbroker.load({path!r})
            print('LOADED')
        except libbroker.BrokerError as e:
            print('REFUSED', e)
    """, env)


def test_truncated_after_the_dynamic_section(box) -> None:
    tmp, _, env = box
    path = _copy_libz(tmp)
    from libbroker._binary import read_binary

    read_binary(path)
    with open(path, "rb") as f:
        data = f.read()
    # Keep headers and dynamic section (which sits in the last PT_LOAD) but cut the text.
    with open(path, "r+b") as f:
        f.truncate(len(data) - 4096)
    r = _load_in_child(env, path)
    assert r.returncode == 0 and "REFUSED" in r.stdout, r.stdout + r.stderr
    assert "truncated" in r.stdout or "past the end" in r.stdout or "corrupt" in r.stdout


def test_sparse_file_with_huge_string_table_size(box) -> None:
    import struct

    tmp, _, env = box
    path = _copy_libz(tmp)
    from libbroker._binary import _elfload

    with open(path, "r+b") as f:
        image = _elfload._Image(f, os.fstat(f.fileno()).st_size, "<", True)
        head = f.read(64)
        phoff, phnum = struct.unpack_from("<Q", head, 32)[0], struct.unpack_from("<H", head, 56)[0]
        f.seek(phoff)
        ph = f.read(56 * phnum)
        dyn = None
        for i in range(phnum):
            p_type, _, p_offset, _p_vaddr, _, p_filesz, _p_memsz, _ = struct.unpack_from("<IIQQQQQQ", ph, 56 * i)
            if p_type == 2:
                dyn = (p_offset, p_filesz)
        assert dyn is not None
        f.seek(dyn[0])
        raw = f.read(dyn[1])
        for k in range(0, len(raw), 16):
            tag, _ = struct.unpack_from("<qQ", raw, k)
            if tag == 10:  # DT_STRSZ
                f.seek(dyn[0] + k + 8)
                f.write(struct.pack("<Q", 6 << 30))
        f.truncate(8 << 30)  # sparse: no disk used, but "big enough" for the claimed size
        del image
    import resource

    limit = 1 << 30
    r = child(f"""
        import libbroker
        try:
            libbroker.load({path!r})
            print('LOADED')
        except libbroker.BrokerError as e:
            print('REFUSED', e)
    """, env, preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (limit, limit)), timeout=60)
    os.unlink(path)
    assert r.returncode == 0 and "REFUSED" in r.stdout and "DT_STRSZ" in r.stdout, r.stdout + r.stderr


def test_every_real_library_passes_the_loader_checks() -> None:
    """No false refusals: every shared library of the system and the venv is loadable by these rules."""
    from libbroker._binary._elfload import loader_refusal

    roots = [f"/usr/lib/{getattr(sys.implementation, '_multiarch', 'x86_64-linux-gnu')}", sys.prefix]
    seen = 0
    for root in roots:
        for d, _, files in os.walk(root):
            for name in files:
                path = os.path.join(d, name)
                if ".so" not in name or os.path.islink(path) or os.path.getsize(path) > 64 << 20:
                    continue
                with open(path, "rb") as f:
                    if f.read(4) != b"\x7fELF":
                        continue
                seen += 1
                assert loader_refusal(path) is None, path
    assert seen > 50


# --- 3. stale verdicts: every input the place walk and the closure search read is stamped ----

WHO = 'const char *foo_who(void) {{ return "{}"; }}\n'
CALL_WHO = """
    import ctypes, libbroker
    try:
        lib = libbroker.load('foo')
        f = ctypes.CFUNCTYPE(ctypes.c_char_p)(lib.address('foo_who'))
        print('WHO', f().decode(), [d.path for d in lib.dependencies])
    except libbroker.BrokerError as e:
        print('REFUSED', type(e).__name__)
"""


def _twice_then(code: str, env: dict, change) -> tuple[str, str]:
    """(stdout of a run served by the cache after *change*, stdout of a fresh-cache run)."""
    for _ in range(2):  # the second run replays the first one's verdict
        r = child(code, env)
        assert r.returncode == 0 and "WHO" in r.stdout, r.stdout + r.stderr
    change()
    cached = child(code, env)
    fresh = child(code, {**env, "LIBBROKER_CACHE_DIR": env["LIBBROKER_CACHE_DIR"] + "-fresh"})
    assert cached.returncode == 0 and fresh.returncode == 0, cached.stderr + fresh.stderr
    return cached.stdout, fresh.stdout


def _chain(tmp):
    """a/libfoo.so.1 -> b/link2 -> c/libfoo.so.1 (an /etc/alternatives chain); d/ holds another copy."""
    gcc(tmp / "c", "libfoo.so.1", WHO.format("c"))
    gcc(tmp / "d", "libfoo.so.1", WHO.format("d"))
    os.makedirs(tmp / "a")
    os.makedirs(tmp / "b")
    os.symlink(tmp / "c" / "libfoo.so.1", tmp / "b" / "link2")
    os.symlink(tmp / "b" / "link2", tmp / "a" / "libfoo.so.1")


def test_repointed_middle_link_of_a_chain_is_seen(box) -> None:
    # review F8: update-alternatives replaces the middle link only.
    tmp, _, env = box
    _chain(tmp)
    env["LIBBROKER_PATH"] = str(tmp / "a")

    def repoint() -> None:
        os.symlink(tmp / "d" / "libfoo.so.1", tmp / "b" / "link2.new")
        os.replace(tmp / "b" / "link2.new", tmp / "b" / "link2")

    cached, fresh = _twice_then(CALL_WHO, env, repoint)
    assert "WHO d " in fresh  # the oracle: a process with no cache maps the new target
    assert cached == fresh


def test_chain_through_a_directory_that_became_writable_is_refused(box) -> None:
    # review F11: the directory holding the middle link is judged by the walk, so it is stamped.
    tmp, _, env = box
    _chain(tmp)
    env["LIBBROKER_PATH"] = str(tmp / "a")
    cached, fresh = _twice_then(CALL_WHO, env, lambda: os.chmod(tmp / "b", 0o777))
    assert "REFUSED" in fresh
    assert cached == fresh
    r = child("import libbroker\ntry:\n    libbroker.find('foo')\nexcept libbroker.BrokerError as e:\n"
              "    print('REFUSED', e)", env)
    assert "REFUSED" in r.stdout and "writable" in r.stdout, r.stdout + r.stderr


def test_copy_appearing_earlier_on_a_dependency_runpath_is_seen(box) -> None:
    # review F9: the closure search passed first/ before it found second/libbar.so.
    tmp, _, env = box
    first, second = tmp / "first", tmp / "second"
    os.makedirs(first)
    gcc(second, "libbar.so", 'const char *bar(void) { return "second"; }\n')
    foo = gcc(tmp / "lib", "libfoo.so.1", 'const char *bar(void); const char *foo_who(void) { return bar(); }\n',
              f"-L{second}", "-l:libbar.so", f"-Wl,--enable-new-dtags,-rpath,{first}:{second}")
    env["LIBBROKER_PATH"] = str(tmp / "lib")
    cached, fresh = _twice_then(
        CALL_WHO, env, lambda: gcc(first, "libbar.so", 'const char *bar(void) { return "first"; }\n'))
    oracle = child(f"import ctypes; f = ctypes.CDLL({foo!r}).foo_who; f.restype = ctypes.c_char_p; "
                   "print(f().decode())", env)
    assert oracle.stdout.strip() == "first", oracle.stderr  # the system loader takes the earlier copy
    assert f"WHO first ['{first}/libbar.so']" in fresh
    assert cached == fresh
    r = child("import libbroker; print([d.path for d in libbroker.find('foo').dependencies])", env)
    assert f"{first}/libbar.so" in r.stdout, r.stdout + r.stderr


def test_config_pin_after_its_directory_became_writable_is_not_replayed(box) -> None:
    # review F10: a fresh read ignores that config file, so no verdict made with it is replayed.
    tmp, _, env = box
    pinned = gcc(tmp / "pinned", "libfoo.so.1", WHO.format("pinned"))
    cfg = tmp / "cfg"
    os.makedirs(cfg)
    os.chmod(cfg, 0o755)
    (cfg / "config.toml").write_text(f'[libraries.foo]\npath = "{pinned}"\n')
    os.chmod(cfg / "config.toml", 0o600)
    env["LIBBROKER_CONFIG"] = str(cfg / "config.toml")
    cached, fresh = _twice_then(CALL_WHO, env, lambda: os.chmod(cfg, 0o777))
    assert "REFUSED" in fresh and "WHO" not in cached
    assert cached == fresh


# The same four through the compiled warm path (csrc/_libbroker_warm.c replays the stamps).

FOO_SPEC = '[library]\nname = "foo"\nnames = ["foo"]\n[functions]\nrequired = ["int foo(void)"]\n'
WARM_CHILD = """
import ctypes, json
import _libbroker_warm as w
from libbroker import _master
out = {{"replayed": 0}}
try:
    capsule = w.import_table("foo", {digest!r}, {request!r})
except Exception as exc:
    out["error"] = type(exc).__name__
else:
    out["replayed"] = len(w.warm_pending)
    out["foo"] = ctypes.CFUNCTYPE(ctypes.c_int)(_master.table_info(capsule)["slots"][0])()
print(json.dumps(out))
"""


def _warm_child(env: dict, tmp, fresh: bool = False) -> dict:
    import json

    from libbroker import Spec, _request

    spec = Spec.from_string(FOO_SPEC)
    code = WARM_CHILD.format(digest=spec.spec_digest, request=_request.render(spec))
    if fresh:
        env = {**env, "LIBBROKER_CACHE_DIR": str(tmp / "fresh" / "cache")}
    run = tmp / "run"  # a cwd nothing writes to: the child's sys.path[0]
    run.mkdir(mode=0o755, exist_ok=True)
    r = subprocess.run([sys.executable, "-c", code], env=env, cwd=run, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def _warm_then(env: dict, tmp, change) -> tuple[dict, dict]:
    """(the run after *change* with the cache two runs wrote, a run with an empty cache)."""
    (tmp / "fresh").mkdir(mode=0o700)
    first = _warm_child(env, tmp)
    assert first["replayed"] == 0 and "foo" in first, first
    assert _warm_child(env, tmp) == {**first, "replayed": 1}  # the C replay serves it now
    change()
    return _warm_child(env, tmp), _warm_child(env, tmp, fresh=True)


def _same_verdict(replayed: dict, fresh: dict) -> None:
    assert replayed["replayed"] == 0, replayed  # the replay deferred to the Python rules
    assert {k: v for k, v in replayed.items() if k != "replayed"} == {k: v for k, v in fresh.items() if k != "replayed"}


def _int_chain(tmp) -> None:
    gcc(tmp / "c", "libfoo.so.1", "int foo(void) { return 3; }\n")
    gcc(tmp / "d", "libfoo.so.1", "int foo(void) { return 4; }\n")
    os.makedirs(tmp / "a")
    os.makedirs(tmp / "b")
    os.symlink(tmp / "c" / "libfoo.so.1", tmp / "b" / "link2")
    os.symlink(tmp / "b" / "link2", tmp / "a" / "libfoo.so.1")


def test_warm_replay_sees_a_repointed_middle_link(box) -> None:
    tmp, _, env = box
    _int_chain(tmp)
    env["LIBBROKER_PATH"] = str(tmp / "a")

    def repoint() -> None:
        os.symlink(tmp / "d" / "libfoo.so.1", tmp / "b" / "link2.new")
        os.replace(tmp / "b" / "link2.new", tmp / "b" / "link2")

    replayed, fresh = _warm_then(env, tmp, repoint)
    assert fresh.get("foo") == 4
    _same_verdict(replayed, fresh)


def test_warm_replay_sees_a_chain_directory_become_writable(box) -> None:
    tmp, _, env = box
    _int_chain(tmp)
    env["LIBBROKER_PATH"] = str(tmp / "a")
    replayed, fresh = _warm_then(env, tmp, lambda: os.chmod(tmp / "b", 0o777))
    assert "error" in fresh
    _same_verdict(replayed, fresh)


def test_warm_replay_sees_a_copy_earlier_on_a_dependency_runpath(box) -> None:
    tmp, _, env = box
    first, second = tmp / "first", tmp / "second"
    os.makedirs(first)
    gcc(second, "libbar.so", "int bar(void) { return 2; }\n")
    gcc(tmp / "lib", "libfoo.so", "int bar(void); int foo(void) { return 40 + bar(); }\n",
        f"-L{second}", "-l:libbar.so", f"-Wl,--enable-new-dtags,-rpath,{first}:{second}")
    env["LIBBROKER_PATH"] = str(tmp / "lib")
    replayed, fresh = _warm_then(env, tmp, lambda: gcc(first, "libbar.so", "int bar(void) { return 3; }\n"))
    assert fresh.get("foo") == 43  # what the system loader binds: first/ comes first
    _same_verdict(replayed, fresh)


def test_warm_replay_drops_a_pin_of_a_config_that_became_unsafe(box) -> None:
    tmp, _, env = box
    pinned = gcc(tmp / "pinned", "libfoo.so.1", "int foo(void) { return 5; }\n")
    cfg = tmp / "cfg"
    os.makedirs(cfg)
    (cfg / "config.toml").write_text(f'[libraries.foo]\npath = "{pinned}"\n')
    os.chmod(cfg / "config.toml", 0o600)
    env["LIBBROKER_CONFIG"] = str(cfg / "config.toml")
    replayed, fresh = _warm_then(env, tmp, lambda: os.chmod(cfg, 0o777))
    assert "foo" not in fresh  # the pin is ignored by a fresh read: nothing else serves foo
    _same_verdict(replayed, fresh)
