"""The compiled warm path (csrc/_libbroker_warm.c) against the Python rules it replays.

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

import _libbroker_warm as _warm
from libbroker import _cache

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


def test_a_path_stamped_both_ways_is_judged_both_ways(tmp_path: Path) -> None:
    """An lstat answers the stat of the same path only when it found no symlink: a link
    stamped as a place (itself) and as a file (its target) keeps both meanings."""
    lib = tmp_path / "lib"
    lib.mkdir()
    target = lib / "libx.so.1.0"
    target.write_bytes(b"\x7fELF" + b"\0" * 60)
    link = lib / "libx.so.1"
    os.symlink(target.name, link)
    for path in (str(link), str(target), str(lib)):
        stamps = [("@place", (path, _cache._place_stamp(path))), ("@file", (path, _cache.identity(path))),
                  (path, _cache.dir_stamp(path))]
        both = stamps[:2] if path != str(lib) else [stamps[0], stamps[2]]
        assert _warm.stamps_hold(both, None) is True is _cache.stamps_valid(both), path
        assert _warm.stamps_hold(both[::-1], None) is True is _cache.stamps_valid(both[::-1]), path
    stamps = [("@place", (str(link), _cache._place_stamp(str(link)))),
              ("@file", (str(link), _cache.identity(str(link))))]
    os.chmod(target, 0o700)  # the target changed, the link did not: the file stamp says so
    assert _cache.stamps_valid(stamps[:1]) is True is _warm.stamps_hold(stamps[:1], None)
    assert _warm.stamps_hold(stamps, None) is False is _cache.stamps_valid(stamps)
    assert _warm.stamps_hold(stamps[::-1], None) is False is _cache.stamps_valid(stamps[::-1])


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


def test_crc32_is_binascii_at_every_alignment() -> None:
    # Eight bytes a step, then the tail: every length modulo 8 and the empty input.
    rng = random.Random(11)
    for n in [*range(41), 1000, 3434, 65537]:
        data = rng.randbytes(n)
        assert _warm.crc32(data) == binascii.crc32(data), n
        assert _warm.crc32(data[1:]) == binascii.crc32(data[1:]), n  # an odd start address


def test_env_tag_is_the_crc_of_the_joined_fields() -> None:
    # The tag is computed field by field; it must equal the CRC of the bytes the writer
    # describes: each field as UTF-8 (surrogates passed through), "\x01" for None, a NUL after each.
    key = (None, "/x", "é\udcff", "", None, "a" * 300, None, "/usr", ("", "/a/b", "ü", "\udc80"))
    parts: list[bytes] = []
    for item in [*key[:8], *key[8]]:
        parts.append(b"\x01" if item is None else str(item).encode("utf-8", "surrogatepass"))
    joined = b"".join(p + bytes(1) for p in parts)
    assert _warm.env_tag(key) == f"{binascii.crc32(joined):08x}"
    assert _warm.env_tag(_warm.env_key()) == _warm.env_tag(_cache.env_key())


def test_unique_fd_paths_never_repeat() -> None:
    from libbroker import _loader

    names = {_warm.unique_fd_path(5) for _ in range(100)} | {_loader._unique_fd_path(5) for _ in range(100)}
    assert len(names) == 200
    assert all(os.path.normpath(n) == "/proc/self/fd/5" for n in names)


# -- replays that would bind other bytes than those judged (findings F1, F2) ---------------

FOO_SPEC = '[library]\nname = "foo"\nnames = ["foo"]\n[functions]\nrequired = ["int foo(void)"]\n'

CHILD = """
import ctypes, json, os, sys
for path, mode in {preload!r}:
    ctypes.CDLL(path, mode=mode)
import _libbroker_warm as w
from libbroker import _master
out = {{"replayed": 0}}
try:
    capsule = w.import_table("foo", {digest!r}, {request!r})
except Exception as exc:
    out["error"] = f"{{type(exc).__name__}}: {{exc}}"
else:
    out["replayed"] = len(w.warm_pending)
    out["foo"] = ctypes.CFUNCTYPE(ctypes.c_int)(_master.table_info(capsule)["slots"][0])()
print(json.dumps(out))
"""


def _gcc(*args: str) -> None:
    import subprocess

    subprocess.run(["gcc", "-shared", "-fPIC", *args], check=True, capture_output=True, timeout=120)


@pytest.fixture
def foo_tree(tmp_path: Path) -> dict[str, str]:
    """libfoo.so (foo() = 40 + bar()) NEEDED libbar.so, RUNPATH $ORIGIN/../second where
    bar() = 2; another libbar.so (bar() = 1) in other/, not on any search path."""
    os.chmod(tmp_path, 0o755)
    for name, value in (("second", 2), ("other", 1)):
        (tmp_path / name).mkdir(mode=0o755)
        src = tmp_path / f"bar{value}.c"
        src.write_text(f"int bar(void) {{ return {value}; }}\n")
        _gcc("-o", str(tmp_path / name / "libbar.so"), "-Wl,-soname,libbar.so", str(src))
    (tmp_path / "lib").mkdir(mode=0o755)
    (tmp_path / "foo.c").write_text("int bar(void);\nint foo(void) { return 40 + bar(); }\n")
    _gcc("-o", str(tmp_path / "lib" / "libfoo.so"), str(tmp_path / "foo.c"), "-Wl,-soname,libfoo.so",
         f"-L{tmp_path / 'second'}", "-lbar", "-Wl,--enable-new-dtags,-rpath,$ORIGIN/../second")
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    return {"root": str(tmp_path), "LIBBROKER_PATH": str(tmp_path / "lib"), "LIBBROKER_CACHE_DIR": str(cache),
            "LIBBROKER_CONFIG": str(tmp_path / "none.toml")}


def _child(tree: dict[str, str], preload: list[tuple[str, int]], cache: str | None = None) -> dict:
    import json
    import subprocess

    from libbroker import Spec, _request

    spec = Spec.from_string(FOO_SPEC)
    request = _request.render(spec)
    env = {**os.environ, **{k: v for k, v in tree.items() if k != "root"}}
    if cache:
        env["LIBBROKER_CACHE_DIR"] = cache
    out = subprocess.run([sys.executable, "-c", CHILD.format(preload=preload, request=request, digest=spec.spec_digest)],
                         capture_output=True, text=True, env=env, timeout=120, cwd=tree["root"])
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_dependency_answered_by_another_copy_is_not_replayed(foo_tree: dict[str, str], tmp_path: Path) -> None:
    assert _child(foo_tree, []) == {"replayed": 0, "foo": 42}  # judged cold: RUNPATH's libbar
    assert _child(foo_tree, []) == {"replayed": 1, "foo": 42}  # replayed in C
    other = [(os.path.join(foo_tree["root"], "other", "libbar.so"), os.RTLD_LOCAL)]
    # Another libbar.so already answers the DT_NEEDED name: the loader would bind libfoo to
    # it, so the replay defers and the result is what a fresh evaluation gives there.
    replayed = _child(foo_tree, other)
    fresh = _child(foo_tree, other, cache=str(tmp_path / "fresh-cache"))
    assert replayed["replayed"] == 0
    assert {k: v for k, v in replayed.items() if k != "replayed"} == {k: v for k, v in fresh.items() if k != "replayed"}


def test_a_copy_in_the_global_scope_is_not_replayed(foo_tree: dict[str, str], tmp_path: Path) -> None:
    import shutil

    assert _child(foo_tree, []) == {"replayed": 0, "foo": 42}
    assert _child(foo_tree, [])["replayed"] == 1
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o755)
    shutil.copy(os.path.join(foo_tree["LIBBROKER_PATH"], "libfoo.so"), elsewhere / "libfoo.so")
    shutil.copy(os.path.join(foo_tree["root"], "second", "libbar.so"), elsewhere / "libbar.so")
    glob = [(str(elsewhere / "libbar.so"), os.RTLD_GLOBAL), (str(elsewhere / "libfoo.so"), os.RTLD_GLOBAL)]
    replayed = _child(foo_tree, glob)
    fresh = _child(foo_tree, glob, cache=str(tmp_path / "fresh-cache"))
    assert replayed["replayed"] == 0
    assert "error" in fresh and "global symbol scope" in fresh["error"]  # the rule (design.md 5.1)
    assert replayed.get("error") == fresh["error"]


def test_a_header_edited_by_hand_is_judged_afresh(foo_tree: dict[str, str]) -> None:
    import json
    import subprocess

    from libbroker import Spec, _request

    original = Spec.from_string(FOO_SPEC)
    assert _child(foo_tree, []) == {"replayed": 0, "foo": 42}
    assert _child(foo_tree, [])["replayed"] == 1
    # The same digest, another requirement (as if the embedded request were edited): the
    # cached verdict was judged for the other text, so neither replay serves it.
    edited = _request.render(Spec.from_string(FOO_SPEC.replace('names = ["foo"]', 'names = ["foo"]\nversion = ">=99"')))
    edited = "\n".join(f"digest\t{original.spec_digest}" if line.startswith("digest\t") else line
                       for line in edited.split("\n"))
    env = {**os.environ, **{k: v for k, v in foo_tree.items() if k != "root"}}
    code = CHILD.format(preload=[], request=edited, digest=original.spec_digest)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120,
                         cwd=foo_tree["root"])
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["replayed"] == 0 and "99" in result.get("error", ""), result
