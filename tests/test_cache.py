"""The on-disk cache: platformdirs locations, invalidation, corruption, no write access."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import platformdirs
import pytest
from _host import forget_answers

import libbroker
from libbroker import _api, _cache, _config


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the XDG shortcut is Linux-only")
@pytest.mark.parametrize("xdg", [None, "", "/tmp/lb-xdg-test"])
def test_locations_match_platformdirs(monkeypatch, xdg) -> None:
    monkeypatch.delenv("LIBBROKER_CACHE_DIR", raising=False)
    monkeypatch.delenv("LIBBROKER_CONFIG", raising=False)
    for var in ("XDG_CACHE_HOME", "XDG_CONFIG_HOME"):
        if xdg is None:
            monkeypatch.delenv(var, raising=False)
        else:
            monkeypatch.setenv(var, xdg)
    monkeypatch.setattr(_cache, "_dir", None)
    assert _cache.cache_dir() == platformdirs.user_cache_dir("libbroker")
    assert _config.config_path() == os.path.join(platformdirs.user_config_dir("libbroker"), "config.toml")


def _fresh_process() -> None:
    """What a new interpreter has: no in-process memo, only the disk."""
    _api._memo.clear()
    forget_answers()


def test_directory_change_invalidates(tmp_path, monkeypatch, libz) -> None:
    directory = tmp_path / "libs"
    directory.mkdir()
    os.chmod(directory, 0o755)
    shutil.copy(os.path.realpath(libz), directory / "liblbinv.so.1.0")
    monkeypatch.setenv("LIBBROKER_PATH", str(directory))
    assert libbroker.find("lbinv").path.endswith("liblbinv.so.1.0")
    _fresh_process()
    assert libbroker.find("lbinv").path.endswith("liblbinv.so.1.0")  # from the disk index
    shutil.copy(os.path.realpath(libz), directory / "liblbinv.so.2.0")
    os.utime(directory, ns=(os.stat(directory).st_atime_ns, os.stat(directory).st_mtime_ns + 10**9))
    _fresh_process()
    assert libbroker.find("lbinv").path.endswith("liblbinv.so.2.0")


def test_replaced_file_invalidates(tmp_path, monkeypatch, libz) -> None:
    directory = tmp_path / "libs"
    directory.mkdir()
    os.chmod(directory, 0o755)
    target = directory / "liblbrep.so.1"
    shutil.copy(os.path.realpath(libz), target)
    monkeypatch.setenv("LIBBROKER_PATH", str(directory))
    libbroker.find("lbrep")
    # Overwrite in place with a text file: the directory mtime stays, the identity changes.
    mtime = os.stat(directory).st_mtime_ns
    target.write_text("not a library any more\n")
    os.utime(directory, ns=(mtime, mtime))
    _fresh_process()
    with pytest.raises(libbroker.LibraryNotFoundError, match="text file"):
        libbroker.find("lbrep")


def test_corrupt_cache_is_ignored(monkeypatch) -> None:
    libbroker.find("z")
    for name in os.listdir(_cache.cache_dir()):
        with open(os.path.join(_cache.cache_dir(), name), "wb") as f:
            f.write(b"\x00garbage\xff" * 10)
    _fresh_process()
    assert libbroker.find("z").soname == "libz.so.1"


def test_unwritable_cache_is_ignored(tmp_path, monkeypatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache directory should be")
    monkeypatch.setenv("LIBBROKER_CACHE_DIR", str(blocker / "cache"))
    _fresh_process()
    assert libbroker.find("z").soname == "libz.so.1"
    _cache.store("find", {"k": 1})  # no exception
    assert _cache.load("find") == {}


def test_disk_index_serves_with_a_config_file(tmp_path, monkeypatch) -> None:
    config = tmp_path / "config.toml"
    config.write_text('search-paths = []\n')
    monkeypatch.setenv("LIBBROKER_CONFIG", str(config))
    first = libbroker.find("z")
    _fresh_process()

    def no_search(*args, **kwargs):
        raise AssertionError("searched again although the disk index was valid")

    from libbroker import _resolve

    monkeypatch.setattr(_resolve, "resolve", no_search)
    assert libbroker.find("z").path == first.path
    config.write_text('search-paths = ["/opt"]\n')  # a changed config invalidates
    os.utime(config, ns=(0, os.stat(config).st_mtime_ns + 10**9))
    _fresh_process()
    with pytest.raises(AssertionError, match="searched again"):
        libbroker.find("z")


# --- trust (design.md 5.1): what a cached verdict is checked against ---------------------------


def test_identity_catches_chmod_and_chown(tmp_path) -> None:
    f = tmp_path / "libx.so"
    f.write_bytes(b"x")
    before = _cache.identity(str(f))
    os.chmod(f, 0o666)
    after = _cache.identity(str(f))
    assert before != after and before[:4] == after[:4]  # same dev/ino/size/mtime: only ctime+mode moved
    assert _cache.identity(str(tmp_path / "missing")) is None


def test_search_directory_stamp_catches_chmod(tmp_path) -> None:
    stamp = _cache.dir_stamp(str(tmp_path))
    os.chmod(tmp_path, 0o777)
    assert _cache.dir_stamp(str(tmp_path)) != stamp
    assert _cache.dir_stamp(str(tmp_path / "missing")) == -1


def test_decision_stamps_cover_every_directory_from_the_root(tmp_path, libz) -> None:
    stamps = _cache.decision_stamps([], [libz])
    places = [entry for kind, (entry, _) in ((k, v) for k, v in stamps if k == "@place")]
    assert "/" in places and os.path.dirname(os.path.realpath(libz)) in places
    assert _cache.stamps_valid(stamps)
    link = tmp_path / "lib"
    os.symlink(os.path.dirname(os.path.realpath(libz)), link)
    stamps = _cache.decision_stamps([], [str(link / os.path.basename(libz))])
    assert _cache.stamps_valid(stamps)
    os.unlink(link)
    os.symlink("/nonexistent", link)  # the symlink on the way was swapped
    assert not _cache.stamps_valid(stamps)


def test_verdict_that_depended_on_the_cwd_is_replayed_only_there(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    search = [(str(tmp_path), _cache.dir_stamp(str(tmp_path)))]
    assert not _cache.cacheable(search)
    stamps = _cache.decision_stamps(search, [])
    assert _cache.stamps_valid(stamps)  # same cwd: the directory is refused again, same answer
    monkeypatch.chdir("/")
    assert not _cache.stamps_valid(stamps)  # elsewhere the directory would be searched
    elsewhere = _cache.decision_stamps(search, [])
    assert _cache.cacheable(search) and _cache.stamps_valid(elsewhere)
    monkeypatch.chdir(tmp_path)  # the searched directory became the cwd: it is refused now
    assert not _cache.stamps_valid(elsewhere)


@pytest.mark.parametrize("stamps", [None, 5, "x", [1], [("@file", 3)], [("@file", ("/x", None))],
                                    [("@place", ())], [(3, 4)], [("@cwd", 7)]])
def test_stamps_of_the_wrong_shape_are_invalid_not_errors(stamps) -> None:
    assert _cache.stamps_valid(stamps) is False


def test_corrupt_bytes_are_caught_by_the_checksum(tmp_path) -> None:
    _cache.store("k", {"a": list(range(100))})
    path = os.path.join(_cache.cache_dir(), f"k-v{_cache._FORMAT}.marshal")
    raw = bytearray(open(path, "rb").read())
    assert _cache.load("k") == {"a": list(range(100))}
    for i in range(len(raw)):
        flipped = bytearray(raw)
        flipped[i] ^= 0x40
        with open(path, "wb") as f:
            f.write(flipped)
        assert _cache.load("k") == {}, i


def test_cache_directory_is_created_private(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("LIBBROKER_CACHE_DIR", str(tmp_path / "new" / "cache"))
    _cache.store("k", {"a": 1})
    assert os.stat(tmp_path / "new" / "cache").st_mode & 0o777 == 0o700
    assert _cache.load("k") == {"a": 1}


def test_cache_directory_writable_by_others_is_refused_with_a_warning(tmp_path, monkeypatch) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    monkeypatch.setenv("LIBBROKER_CACHE_DIR", str(shared))
    with pytest.warns(libbroker.BrokerWarning, match="ignores its disk cache.*world-writable"):
        assert _cache.usable_dir() is None
    _cache.store("k", {"a": 1})
    assert not os.listdir(shared) and _cache.load("k") == {}


def test_relative_locations_are_never_used(monkeypatch) -> None:
    monkeypatch.setenv("LIBBROKER_CACHE_DIR", "cache")
    monkeypatch.setenv("LIBBROKER_CONFIG", "config.toml")
    assert _cache.cache_dir() is None and _cache.config_path() is None
    monkeypatch.delenv("LIBBROKER_CACHE_DIR")
    monkeypatch.delenv("LIBBROKER_CONFIG")
    monkeypatch.setattr(_cache, "_dir", None)
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")  # the XDG spec: relative values are ignored
    monkeypatch.setenv("HOME", "/home/someone")
    assert _cache.cache_dir() == "/home/someone/.cache/libbroker"


def test_env_key_covers_the_interpreter(monkeypatch) -> None:
    before = _cache.env_key()
    monkeypatch.setattr(sys, "path", [*sys.path, "/elsewhere"])
    assert _cache.env_key() != before
    monkeypatch.setenv("LD_LIBRARY_PATH", "/x")
    assert _cache.env_key() != before


def _cli_find(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "libbroker", "find", "z"], capture_output=True, text=True,
                          env={**os.environ, **env}, cwd="/", timeout=30)


@pytest.mark.parametrize("setting", ["/tmp", "rel", "/dev/null", "mal"])
def test_unusable_cache_dir_warns_with_one_cache_fix(tmp_path, setting) -> None:
    """review F5: every unusable LIBBROKER_CACHE_DIR (sticky /tmp, relative, not a directory,
    another user's) warns once, as `libbroker: warning:`, with one fix clause that applies to a
    cache: never "chmod go-w /tmp", "move the library" or trusted-owners."""
    if setting == "mal":
        if os.geteuid() != 0:
            pytest.skip("chown to another user needs root")
        os.chmod(tmp_path, 0o755)
        (tmp_path / "mal").mkdir()
        os.chown(tmp_path / "mal", 65534, 65534)
        setting = str(tmp_path / "mal")
    r = _cli_find({"LIBBROKER_CACHE_DIR": setting})
    assert r.returncode == 0, r.stderr
    lines = [line for line in r.stderr.splitlines() if line]
    assert len(lines) == 1, r.stderr
    line = lines[0]
    assert line.startswith("libbroker: warning: libbroker ") and ".py:" not in line
    assert line.lower().count("fix:") == 1 and "LIBBROKER_CACHE_DIR" in line
    assert "chmod go-w" not in line and "move the library" not in line and "trusted-owners" not in line


def _both_hold(stamps) -> bool:
    """`_cache.stamps_valid`, checked to agree with the compiled replay's `stamps_hold`."""
    valid = _cache.stamps_valid(stamps)
    if sys.platform.startswith("linux"):
        import _libbroker_warm

        assert _libbroker_warm.stamps_hold(stamps, _cache.config_path()) is valid
    return valid


def _chain(tmp_path, libz):
    """a/libz.so.1 -> b/link2 -> c/libz.so.1 (the shape of /etc/alternatives), all 0755."""
    for d in "abcd":
        (tmp_path / d).mkdir()
        os.chmod(tmp_path / d, 0o755)
    os.chmod(tmp_path, 0o755)
    shutil.copy(os.path.realpath(libz), tmp_path / "c" / "libz.so.1")
    shutil.copy(os.path.realpath(libz), tmp_path / "d" / "libz.so.1")
    os.symlink(tmp_path / "c" / "libz.so.1", tmp_path / "b" / "link2")
    os.symlink(tmp_path / "b" / "link2", tmp_path / "a" / "libz.so.1")
    return str(tmp_path / "a" / "libz.so.1")


def test_repointing_the_middle_link_of_a_chain_voids_the_stamps(tmp_path, libz) -> None:
    # review F8: update-alternatives replaces only the middle link.
    given = _chain(tmp_path, libz)
    stamps = _cache.decision_stamps([], [given])
    places = {stamp[0] for kind, stamp in stamps if kind == "@place"}
    assert str(tmp_path / "b" / "link2") in places  # the middle link itself
    assert _both_hold(stamps)
    os.symlink(tmp_path / "d" / "libz.so.1", tmp_path / "b" / "link2.new")
    os.replace(tmp_path / "b" / "link2.new", tmp_path / "b" / "link2")
    assert os.path.realpath(given) == str(tmp_path / "d" / "libz.so.1")
    assert not _both_hold(stamps)


def test_directory_of_a_middle_link_becoming_writable_voids_the_stamps(tmp_path, libz) -> None:
    # review F11: the walk judges the directory holding every link; so must the stamps.
    from libbroker._places import place_trace

    given = _chain(tmp_path, libz)
    stamps = _cache.decision_stamps([], [given])
    reason, trace = place_trace(given)
    assert reason is None
    places = [stamp for kind, stamp in stamps if kind == "@place"]
    assert all(item in places for item in trace)  # exactly what the walk inspected, all stamped
    assert _both_hold(stamps)
    os.chmod(tmp_path / "b", 0o757)
    assert place_trace(given)[0] is not None  # a fresh walk refuses the chain now...
    assert not _both_hold(stamps)  # ...and the recorded verdict is void


def test_file_unsafe_when_stamped_is_never_replayed(tmp_path, libz) -> None:
    given = _chain(tmp_path, libz)
    os.chmod(tmp_path / "b", 0o777)
    assert not _both_hold(_cache.decision_stamps([], [given]))


def test_config_directory_becoming_writable_voids_the_stamps(tmp_path, monkeypatch) -> None:
    # review F10: the config is used only while the walk to it is safe.
    cfg_dir = tmp_path / "cfg"
    cfg_dir.mkdir()
    os.chmod(tmp_path, 0o755)
    os.chmod(cfg_dir, 0o755)
    cfg = cfg_dir / "config.toml"
    cfg.write_text("[libraries.z]\nprefer = \"system\"\n")
    os.chmod(cfg, 0o600)
    monkeypatch.setenv("LIBBROKER_CONFIG", str(cfg))
    stamps = _cache.decision_stamps([], [])
    assert (str(cfg_dir), _cache._place_stamp(str(cfg_dir))) in [s for k, s in stamps if k == "@place"]
    assert _both_hold(stamps)
    os.chmod(cfg_dir, 0o757)
    assert not _both_hold(stamps)


def test_closure_search_directories_are_stamped(tmp_path, monkeypatch) -> None:
    # review F9: a copy appearing in a directory the closure search passed voids the verdict.
    if shutil.which("gcc") is None or not sys.platform.startswith("linux"):
        pytest.skip("needs gcc and ELF")
    from libbroker._closure import resolve_closure

    os.chmod(tmp_path, 0o755)
    first, second = tmp_path / "first", tmp_path / "second"
    for d in (first, second):
        d.mkdir()
        os.chmod(d, 0o755)
    (tmp_path / "bar.c").write_text("int bar(void){return 2;}\n")
    (tmp_path / "foo.c").write_text("int bar(void); int foo(void){return bar()+40;}\n")
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(second / "libbar.so"), str(tmp_path / "bar.c"),
                    "-Wl,-soname,libbar.so"], check=True)
    foo = tmp_path / "first" / "libfoo.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(foo), str(tmp_path / "foo.c"), f"-L{second}",
                    "-lbar", f"-Wl,--enable-new-dtags,-rpath,{first}:{second}"], check=True)
    closure = resolve_closure(str(foo))
    assert closure.ok and [d.path for d in closure.dependencies] == [str(second / "libbar.so")]
    stamps = _cache.decision_stamps([], [str(foo), str(second / "libbar.so")])
    assert (str(first), _cache.dir_stamp(str(first))) in stamps
    assert _both_hold(stamps)
    shutil.copy(second / "libbar.so", first / "libbar.so")
    assert not _both_hold(stamps)


def test_fifo_in_the_cache_directory_does_not_hang(tmp_path, monkeypatch) -> None:
    # review F6: open() of a FIFO blocks until a writer comes unless O_NONBLOCK.
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs")
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    os.chmod(tmp_path, 0o755)
    env = {**os.environ, "LIBBROKER_CACHE_DIR": str(cache), "LIBBROKER_CONFIG": str(tmp_path / "none.toml")}
    code = "import libbroker; print(libbroker.find('z').path)"
    first = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    files = [f for f in os.listdir(cache) if f.endswith(".marshal")]
    assert files
    for name in files:
        os.unlink(cache / name)
        os.mkfifo(cache / name, 0o600)
    again = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and again.stdout == first.stdout, again.stderr


def test_origin_in_ld_library_path_ties_a_verdict_to_the_executable(monkeypatch) -> None:
    """review4 R4-6: with $ORIGIN in LD_LIBRARY_PATH the same text names another directory
    in another program: the verdict records the executable's directory ("@origin") and
    holds only where it is the same (the C replay does not know the stamp: it defers)."""
    from libbroker import _discovery
    from libbroker._config import load_config

    here = _cache.executable_dir()
    assert here == os.path.dirname(os.path.realpath("/proc/self/exe"))
    assert _cache.stamps_valid([("@origin", here)])
    assert not _cache.stamps_valid([("@origin", "/elsewhere")])
    monkeypatch.setenv("LD_LIBRARY_PATH", "$ORIGIN/../lib")
    stamps = _discovery.search("z", config=load_config()).stamps
    assert ("@origin", here) in stamps
    monkeypatch.setenv("LD_LIBRARY_PATH", "/usr/lib")
    assert not any(s[0] == "@origin" for s in _discovery.search("z", config=load_config()).stamps)
