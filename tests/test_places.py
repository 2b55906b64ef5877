"""libbroker._places: the place rules (design.md 5.1 "Safe places"), on real directories.

Each case builds the place with mkdir/chmod/chown/symlink and checks the verdict
and that the message names the offending component, its mode or owner, and a fix.
"""

from __future__ import annotations

import os
import pwd
import stat

import pytest

from libbroker import _places

ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="chown to another user needs root")


def _other_uid() -> int:
    """A real non-root user that is not us (nobody on Debian)."""
    for entry in pwd.getpwall():
        if entry.pw_uid not in (0, os.getuid()) and entry.pw_name in ("nobody", "daemon", "bin"):
            return entry.pw_uid
    pytest.skip("no second user account on this machine")


@pytest.fixture
def safe(tmp_path):
    """A private directory (mode 755, ours) with a library-like file in it (mode 644)."""
    base = tmp_path / "safe"
    base.mkdir()
    os.chmod(base, 0o755)
    lib = base / "libx.so.1"
    lib.write_bytes(b"\x7fELF")
    os.chmod(lib, 0o644)
    return base, str(lib)


def test_system_library_is_safe() -> None:
    libz = os.path.realpath("/lib/x86_64-linux-gnu/libz.so.1")
    if not os.path.exists(libz):
        pytest.skip("no system zlib")
    assert _places.unsafe_reason("/lib/x86_64-linux-gnu/libz.so.1") is None  # /lib is a symlink on usrmerge
    assert _places.unsafe_dir_reason("/usr/lib") is None


def test_private_file_is_safe(safe) -> None:
    assert _places.unsafe_reason(safe[1]) is None


def test_relative_and_empty_paths_are_refused() -> None:
    for path in ("", "libz.so.1", "./libz.so.1", "lib/libz.so.1"):
        reason = _places.unsafe_reason(path)
        assert reason and "absolute" in reason and "fix" in reason
    assert _places.relative_entry("") and _places.relative_entry(".") and _places.relative_entry("lib")
    assert not _places.relative_entry("/usr/lib")


@pytest.mark.parametrize("mode, word", [(0o666, "world-writable"), (0o664, "group-writable")])
def test_file_writable_by_others(safe, mode, word) -> None:
    os.chmod(safe[1], mode)
    reason = _places.unsafe_reason(safe[1])
    assert reason and word in reason and f"{mode:o}" in reason and "chmod go-w" in reason


@pytest.mark.parametrize("mode", [0o777, 0o775])
def test_directory_writable_by_others(safe, mode) -> None:
    os.chmod(safe[0], mode)
    reason = _places.unsafe_reason(safe[1])
    assert reason and str(safe[0]) in reason and f"{mode:o}" in reason
    assert _places.unsafe_dir_reason(str(safe[0]))


def test_safe_looking_directory_under_world_writable_parent(tmp_path) -> None:
    parent = tmp_path / "open"
    parent.mkdir()
    os.chmod(parent, 0o777)
    inner = parent / "lib"
    inner.mkdir()
    os.chmod(inner, 0o755)
    lib = inner / "libx.so.1"
    lib.write_bytes(b"x")
    reason = _places.unsafe_reason(str(lib))
    assert reason and repr(str(parent)) in reason and "world-writable" in reason


def test_sticky_world_writable_directory_on_the_way_is_allowed_for_our_entries(tmp_path) -> None:
    sticky = tmp_path / "sticky"
    sticky.mkdir()
    os.chmod(sticky, 0o1777)
    inner = sticky / "mine"
    inner.mkdir()
    os.chmod(inner, 0o755)
    lib = inner / "libx.so.1"
    lib.write_bytes(b"x")
    assert _places.unsafe_reason(str(lib)) is None
    # ...but a sticky world-writable directory is no search directory: anyone may add files.
    assert "world-writable" in (_places.unsafe_dir_reason(str(sticky)) or "")


@needs_root
def test_sticky_directory_entry_owned_by_another_user(tmp_path) -> None:
    sticky = tmp_path / "sticky"
    sticky.mkdir()
    os.chmod(sticky, 0o1777)
    theirs = sticky / "theirs"
    theirs.mkdir()
    os.chown(theirs, _other_uid(), -1)
    lib = theirs / "libx.so.1"
    lib.write_bytes(b"x")
    reason = _places.unsafe_reason(str(lib))
    assert reason and "owned by another user" in reason and "trusted-owners" in reason


@needs_root
def test_file_and_directory_owned_by_another_user(safe) -> None:
    other = _other_uid()
    os.chown(safe[1], other, -1)
    reason = _places.unsafe_reason(safe[1])
    assert reason and "owned by another user" in reason and f"uid {other}" in reason
    os.chown(safe[1], 0, -1)
    os.chown(safe[0], other, -1)
    assert "owned by another user" in (_places.unsafe_reason(safe[1]) or "")
    # A trusted owner (config `trusted-owners`) makes the same place safe.
    assert _places.unsafe_reason(safe[1], trusted_uids=frozenset({0, os.getuid(), other})) is None


def test_symlink_in_safe_directory_into_world_writable_directory(safe, tmp_path) -> None:
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    os.chmod(open_dir, 0o777)
    target = open_dir / "libx.so.1.0"
    target.write_bytes(b"x")
    os.chmod(target, 0o644)
    link = safe[0] / "libx.so.2"
    os.symlink(target, link)
    reason = _places.unsafe_reason(str(link))
    assert reason and repr(str(open_dir)) in reason and "world-writable" in reason


def test_relative_symlink_chain_is_followed_component_by_component(safe, tmp_path) -> None:
    # safe/sub -> ../open (world-writable): the file is reached through the symlinked directory.
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    os.chmod(open_dir, 0o777)
    (open_dir / "libx.so.1").write_bytes(b"x")
    os.symlink("../open", safe[0] / "sub")
    reason = _places.unsafe_reason(str(safe[0] / "sub" / "libx.so.1"))
    assert reason and "world-writable" in reason


def test_symlink_loop_is_bounded(tmp_path) -> None:
    os.symlink("b", tmp_path / "a")
    os.symlink("a", tmp_path / "b")
    reason = _places.unsafe_reason(str(tmp_path / "a"))
    assert reason and ("symlinks" in reason or "cannot be inspected" in reason)


def test_missing_file_is_named(tmp_path) -> None:
    reason = _places.unsafe_reason(str(tmp_path / "nope" / "libx.so"))
    assert reason and "cannot be inspected" in reason


def test_trusted_uids_include_root_and_us() -> None:
    uids = _places.trusted_uids()
    assert 0 in uids and os.getuid() in uids


def test_search_directory_must_be_a_directory(safe) -> None:
    assert "not a directory" in (_places.unsafe_dir_reason(safe[1]) or "")
    assert stat.S_ISDIR(os.stat(safe[0]).st_mode) and _places.unsafe_dir_reason(str(safe[0])) is None


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="seteuid needs root")
def test_a_user_is_trusted_only_while_the_process_is_that_user(tmp_path) -> None:
    # review5 F5: a root process that searched for a while as another user (seteuid)
    # must not keep trusting that user's directories once it is root again.
    import subprocess
    import sys

    other = pwd.getpwnam("nobody").pw_uid
    os.chmod(tmp_path, 0o755)
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o755)
    os.chown(theirs, other, -1)
    code = f"""
import os
from libbroker import _discovery, _places
d = {str(theirs)!r}
os.seteuid({other})
as_them = (_discovery.place_refusal(d, None), {other} in _places.base_uids())
os.seteuid(0)
as_root = (_discovery.place_refusal(d, None), {other} in _places.base_uids())
print(as_them[0] is None, as_them[1], as_root[0] is None, as_root[1])
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="/")
    assert out.stdout.split() == ["True", "True", "False", "False"]


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="seteuid needs root")
def test_a_find_as_another_user_is_not_given_again_to_root(tmp_path, request) -> None:
    # review6 N2: find()'s one-second answer is keyed by who asks: root, back from a
    # seteuid to another user, does not get the answer that user's trust allowed.
    import shutil
    import subprocess
    import sys
    import tempfile

    other = pwd.getpwnam("nobody").pw_uid
    top = tempfile.mkdtemp(prefix="lb-n2-", dir="/tmp")  # pytest's own tree is root's 0700
    os.chmod(top, 0o755)
    theirs = os.path.join(top, "theirs")
    os.mkdir(theirs, 0o755)
    request.addfinalizer(lambda: shutil.rmtree(top, ignore_errors=True))
    code = f"""
import os, shutil, libbroker
system = libbroker.find("z")
shutil.copy(system.path, {theirs!r} + "/" + (system.soname or "libz.so.1"))
os.chown({theirs!r}, {other}, -1)
os.environ["LIBBROKER_PATH"] = {theirs!r}
os.seteuid({other})
as_them = libbroker.find("z").path
os.seteuid(0)
as_root = libbroker.find("z").path
print(as_them.startswith({theirs!r}), as_root.startswith({theirs!r}))
"""
    env = {**os.environ, "LIBBROKER_CACHE_DIR": str(tmp_path / "cache"),
           "LIBBROKER_CONFIG": str(tmp_path / "no-config.toml")}
    env.pop("LIBBROKER_PATH", None)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/",
                         env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "False"]
