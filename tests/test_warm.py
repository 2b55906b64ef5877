"""The compiled warm path (csrc/_warm.c) against the Python rules it replays.

Each piece the master computes itself (the environment key, the cache location,
the cache file checks, the stamps) is compared with `_cache`, the Python code
that writes and otherwise judges them: equal, or (for the cache directory)
never more trusting. Consumers replaying through it: tests/consumers/test_warm_consumer.py.
"""

from __future__ import annotations

import binascii
import os
import random
import sys
from pathlib import Path

import pytest

from libbroker import _cache, _warm

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the compiled replay is Linux-only")


def test_constants_agree_with_the_writer() -> None:
    assert _warm.CACHE_FORMAT == _cache._FORMAT
    assert _warm.CACHE_MAGIC == _cache._MAGIC
    assert _warm.CACHE_MAX_BYTES == _cache._MAX_BYTES


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"LIBBROKER_PATH": "/opt/x", "LD_LIBRARY_PATH": "/a:/b", "CONDA_PREFIX": "/c"},
        {"HOME": "/home/u", "XDG_CONFIG_HOME": "/x/c", "XDG_CACHE_HOME": "/x/k", "LIBBROKER_CONFIG": "/x/c.toml"},
    ],
)
def test_env_key_equals_the_python_one(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    for key in ("LIBBROKER_PATH", "LD_LIBRARY_PATH", "CONDA_PREFIX", "LIBBROKER_CONFIG", "XDG_CONFIG_HOME",
                "XDG_CACHE_HOME"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(sys, "path", [*sys.path, "/lb-test-entry"])
    assert _warm.env_key() == _cache.env_key()


@pytest.mark.parametrize(
    "env, expected",
    [
        ({"LIBBROKER_CACHE_DIR": "/x/cache"}, "/x/cache"),
        ({"LIBBROKER_CACHE_DIR": "relative"}, None),  # Python warns and uses no cache
        ({"XDG_CACHE_HOME": "/x/xdg", "HOME": "/home/u"}, "/x/xdg/libbroker"),
        ({"XDG_CACHE_HOME": " /x/xdg ", "HOME": "/home/u"}, "/x/xdg/libbroker"),
        ({"XDG_CACHE_HOME": "rel", "HOME": "/home/u"}, "/home/u/.cache/libbroker"),
        ({"HOME": "/home/u"}, "/home/u/.cache/libbroker"),
    ],
)
def test_cache_dir_equals_the_python_one(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: str | None
) -> None:
    for key in ("LIBBROKER_CACHE_DIR", "XDG_CACHE_HOME"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(_cache, "_dir", None)
    assert _warm.cache_dir() == expected
    if expected is not None:
        assert _cache.cache_dir() == expected


def test_no_home_defers_to_python(monkeypatch: pytest.MonkeyPatch) -> None:
    # Python then asks the password database; the compiled path does not guess.
    for key in ("LIBBROKER_CACHE_DIR", "XDG_CACHE_HOME", "HOME"):
        monkeypatch.delenv(key, raising=False)
    assert _warm.cache_dir() is None


def _fresh_dir(root: Path, name: str, mode: int) -> str:
    d = root / name
    d.mkdir()
    os.chmod(d, mode)
    return str(d)


def test_cache_dir_rule_is_never_more_trusting(tmp_path: Path) -> None:
    root = tmp_path / "r"
    root.mkdir(mode=0o755)
    os.chmod(tmp_path, 0o755)
    ours = _fresh_dir(root, "ours", 0o700)
    group = _fresh_dir(root, "group", 0o770)
    world = _fresh_dir(root, "world", 0o777)
    sticky = _fresh_dir(root, "sticky", 0o1777)
    below_sticky = _fresh_dir(Path(sticky), "mine", 0o700)
    os.symlink(ours, root / "link")
    cases = {ours: True, group: False, world: False, sticky: False, below_sticky: True,
             str(root / "link"): False, str(root / "missing"): False, f"{ours}/../ours": False}
    if os.getuid() == 0:
        try:
            import pwd

            other = pwd.getpwnam("mallory").pw_uid
        except KeyError:
            other = None
        if other is not None:
            theirs = _fresh_dir(root, "theirs", 0o700)
            os.chown(theirs, other, -1)
            cases[theirs] = False
    for directory, expected in cases.items():
        assert _warm.cache_dir_is_safe(directory) is expected, directory
        if expected:
            # Whatever the compiled rule trusts, the Python rule trusts too.
            from libbroker._places import base_uids, unsafe_dir_reason

            assert unsafe_dir_reason(directory, trusted_uids=base_uids()) is None


def test_read_entry_checks_like_cache_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    monkeypatch.setenv("LIBBROKER_CACHE_DIR", str(cache))
    data = {"k": [1, 2, b"x" * 1000], "s": "é"}
    _cache.store("probe", data)
    path = cache / f"probe-v{_cache._FORMAT}.marshal"
    assert _warm.read_entry(str(path)) == data == _cache.load("probe")
    raw = path.read_bytes()
    # The checksum is binascii's (the writer's), computed in C here.
    assert int.from_bytes(raw[8:12], "little") == binascii.crc32(raw[12:])
    rng = random.Random(7)
    for _ in range(300):
        mutated = bytearray(raw)
        for _ in range(rng.randint(1, 4)):
            mutated[rng.randrange(len(mutated))] ^= 1 << rng.randrange(8)
        path.write_bytes(bytes(mutated))
        os.chmod(path, 0o600)
        # A flipped bit is caught by the checksum (or, in the header, by the length/magic).
        assert _warm.read_entry(str(path)) in (None, data)
        assert (_warm.read_entry(str(path)) is None) == (_cache.load("probe") == {})
    path.write_bytes(raw)
    os.chmod(path, 0o620)
    assert _warm.read_entry(str(path)) is None  # group-writable: anyone in the group could feed it
    os.chmod(path, 0o600)
    path.write_bytes(raw + b"x")
    assert _warm.read_entry(str(path)) is None  # length mismatch
    os.unlink(path)
    os.symlink(tmp_path / "elsewhere", path)
    (tmp_path / "elsewhere").write_bytes(raw)
    assert _warm.read_entry(str(path)) is None  # the final component must not be a symlink
    os.unlink(path)
    os.mkfifo(path)
    assert _warm.read_entry(str(path)) is None  # a FIFO neither blocks nor is read


def test_stamps_agree_with_stamps_valid(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    target = lib / "libx.so"
    target.write_bytes(b"\x7fELF" + b"\0" * 60)
    stamps = _cache.decision_stamps([(str(lib), _cache.dir_stamp(str(lib))),
                                     ("/lb-no-such-dir", _cache.dir_stamp("/lb-no-such-dir"))],
                                    [str(target)])
    config = _cache.config_path()
    assert _warm.stamps_hold(stamps, config) is True is _cache.stamps_valid(stamps)
    os.chmod(target, 0o700)  # ctime and mode: the file judged is not this one any more
    assert _warm.stamps_hold(stamps, config) is False is _cache.stamps_valid(stamps)
    stamps = _cache.decision_stamps([(str(lib), _cache.dir_stamp(str(lib)))], [str(target)])
    (lib / "new").write_bytes(b"")  # the searched directory changed
    assert _warm.stamps_hold(stamps, config) is False is _cache.stamps_valid(stamps)
    assert _warm.stamps_hold([("@file", None)], config) is False  # malformed: never valid
    assert _warm.stamps_hold("nonsense", config) is False


def test_cwd_among_searched_dirs_matches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    here = tmp_path / "here"
    here.mkdir()
    os.symlink(here, tmp_path / "alias")
    dirs = (str(tmp_path / "alias"), "/lb-missing/..", "/usr/lib")
    monkeypatch.chdir(here)
    among = _cache._cwd_among(dirs)
    assert among == str(here.resolve())
    assert _warm.stamps_hold([("@cwd", (dirs, among))], None) is True
    assert _warm.stamps_hold([("@cwd", (dirs, None))], None) is False
    monkeypatch.chdir("/")
    assert _warm.stamps_hold([("@cwd", (dirs, None))], None) is (_cache._cwd_among(dirs) is None)


def test_unique_fd_paths_never_repeat() -> None:
    from libbroker import _loader

    names = {_warm.unique_fd_path(5) for _ in range(100)} | {_loader._unique_fd_path(5) for _ in range(100)}
    assert len(names) == 200
    assert all(os.path.normpath(n) == "/proc/self/fd/5" for n in names)
