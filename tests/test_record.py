"""RECORD integrity checks, on distributions laid out in tmp_path as pip installs them.

The RECORD lines are written with hashlib/base64 here (the oracle), not with
libbroker's code.
"""

from __future__ import annotations

import base64
import hashlib
import os
import sys

import pytest

from libbroker import _record
from libbroker._errors import IncompatibleLibraryError
from libbroker._record import verify_record
from libbroker._resolve import fix_hint

ZLIB = "/usr/lib/x86_64-linux-gnu/libz.so.1"


def record_hash(data: bytes, algorithm: str = "sha256") -> str:
    digest = hashlib.new(algorithm, data).digest()
    return f"{algorithm}=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def make_dist(
    site: str, name: str, files: dict[str, bytes], *, version: str = "1.0", hashes: dict[str, str] | None = None
) -> None:
    """Install-like layout: the files plus <name>-<version>.dist-info with METADATA and RECORD."""
    dist_info = f"{name.replace('-', '_')}-{version}.dist-info"
    os.makedirs(os.path.join(site, dist_info), exist_ok=True)
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    rows = []
    for rel, data in files.items():
        path = os.path.join(site, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        digest = (hashes or {}).get(rel, record_hash(data))
        rows.append(f"{rel},{digest},{len(data) if digest else ''}")
    with open(os.path.join(site, dist_info, "METADATA"), "w") as f:
        f.write(metadata)
    rows.append(f"{dist_info}/METADATA,{record_hash(metadata.encode())},{len(metadata)}")
    rows.append(f"{dist_info}/RECORD,,")
    with open(os.path.join(site, dist_info, "RECORD"), "w") as f:
        f.write("\n".join(rows) + "\n")


@pytest.fixture
def site(tmp_path, monkeypatch) -> str:
    """A fresh site directory on sys.path and a private cache directory."""
    path = tmp_path / "site"
    path.mkdir()
    monkeypatch.syspath_prepend(str(path))
    monkeypatch.setenv("LIBBROKER_CACHE_DIR", str(tmp_path / "cache"))
    return str(path)


@pytest.fixture
def zlib_bytes() -> bytes:
    if not os.path.isfile(ZLIB):
        pytest.skip(f"{ZLIB} is absent")
    with open(ZLIB, "rb") as f:
        return f.read()


@pytest.fixture
def hash_calls(monkeypatch) -> list[str]:
    """Every path the module hashes, recorded around its own hash function."""
    calls: list[str] = []
    original = _record._hash_file

    def counting(path: str, algorithm: str) -> str:
        calls.append(path)
        return original(path, algorithm)

    monkeypatch.setattr(_record, "_hash_file", counting)
    return calls


def test_intact_file_passes_and_is_cached(site: str, zlib_bytes: bytes, hash_calls: list[str]) -> None:
    make_dist(site, "zprov", {"zprov/lib/libz.so.1": zlib_bytes})
    lib = os.path.join(site, "zprov/lib/libz.so.1")
    verify_record(lib, "zprov")
    assert hash_calls == [lib]
    verify_record(lib, "zprov")
    verify_record(lib, "ZProv")  # names compare normalised
    assert hash_calls == [lib]  # the warm path never rehashes an unchanged file
    # a new identity (same bytes, rewritten) must be hashed again
    os.unlink(lib)
    with open(lib, "wb") as f:
        f.write(zlib_bytes)
    verify_record(lib, "zprov")
    assert hash_calls == [lib, lib]


def test_cache_is_on_disk_and_dropped_on_change(site: str, zlib_bytes: bytes, hash_calls: list[str]) -> None:
    make_dist(site, "zprov", {"zprov/libz.so.1": zlib_bytes})
    lib = os.path.join(site, "zprov/libz.so.1")
    verify_record(lib, "zprov")
    assert os.listdir(os.environ["LIBBROKER_CACHE_DIR"])  # stored on disk, for the next process
    # Appending changes size and mtime: the cached verdict must not be reused.
    with open(lib, "ab") as f:
        f.write(b"\0")
    with pytest.raises(IncompatibleLibraryError, match="modified after installation"):
        verify_record(lib, "zprov")
    assert hash_calls == [lib, lib]


def test_modified_file_is_refused_with_both_hashes(site: str, zlib_bytes: bytes) -> None:
    make_dist(site, "zprov", {"zprov/libz.so.1": zlib_bytes})
    lib = os.path.join(site, "zprov/libz.so.1")
    tampered = bytearray(zlib_bytes)
    tampered[100] ^= 0xFF  # same size: only the hash can tell
    with open(lib, "r+b") as f:
        f.write(tampered)
    with pytest.raises(IncompatibleLibraryError) as err:
        verify_record(lib, "zprov")
    message = str(err.value)
    assert err.value.path == lib
    assert "the file was modified after installation: RECORD of 'zprov' says " in message
    assert record_hash(zlib_bytes) in message and record_hash(bytes(tampered)) in message
    assert message.endswith("fix: reinstall zprov (pip install --force-reinstall zprov)")


def test_symlink_is_checked_as_its_target(site: str, zlib_bytes: bytes) -> None:
    make_dist(site, "zprov", {"zprov/libz.so.1": zlib_bytes})
    link = os.path.join(site, "libz-link.so")
    os.symlink(os.path.join(site, "zprov/libz.so.1"), link)
    verify_record(link, "zprov")


def test_file_not_in_record(site: str, zlib_bytes: bytes) -> None:
    make_dist(site, "zprov", {"zprov/__init__.py": b""})
    stray = os.path.join(site, "zprov", "libz.so.1")
    with open(stray, "wb") as f:
        f.write(zlib_bytes)
    with pytest.raises(IncompatibleLibraryError, match="not listed in the RECORD of 'zprov'") as info:
        verify_record(stray, "zprov")
    assert fix_hint("z", None, [(stray, info.value.reason)]).startswith(
        "fix: reinstall the distribution named above with pip, not in editable mode")


@pytest.mark.parametrize("name", ["libz.so.1\nevil", "libz.so.1\revil", "libz.so.1\u2028evil"])
def test_file_name_with_a_line_break_is_not_called_unlisted(site: str, zlib_bytes: bytes, name: str) -> None:
    # Review F8: the RECORD lists the file (quoted by csv.writer, as pip writes it), but
    # importlib.metadata splits RECORD into lines before csv reads it, so the entry can
    # never be read back; "not listed ... editable install" was a wrong diagnosis.
    import csv
    import io
    from importlib import metadata

    make_dist(site, "zprov", {"zprov/__init__.py": b""})
    rel = f"zprov/{name}"
    with open(os.path.join(site, rel), "wb") as f:
        f.write(zlib_bytes)
    record = os.path.join(site, "zprov-1.0.dist-info", "RECORD")
    row = io.StringIO()
    csv.writer(row, lineterminator="\n").writerow([rel, record_hash(zlib_bytes), len(zlib_bytes)])
    with open(record, "a", newline="") as f:
        f.write(row.getvalue())
    files = metadata.distribution("zprov").files or []
    assert not any(str(entry) == rel for entry in files)  # the oracle: unreadable, not absent
    with pytest.raises(IncompatibleLibraryError) as info:
        verify_record(os.path.join(site, rel), "zprov")
    assert f"its file name {name!r} holds a line break" in info.value.reason
    assert "not listed" not in str(info.value) and "fix: use a build" in str(info.value)
    # The resolver's fix line (the last line of find's error) follows that reason.
    assert fix_hint("z", None, [(rel, info.value.reason)]) == (
        "fix: use a build of the library whose file name and soname are plain names")
    # find's error shows such a path quoted: one rejection, one line.
    from libbroker._errors import NoAcceptableLibraryError

    path = os.path.join(site, rel)
    message = str(NoAcceptableLibraryError("z", searched=["here"], rejected=[(path, info.value.reason)]))
    assert f"  {path!r}: its file name" in message and len(message.splitlines()) == 6


def test_record_without_hash(site: str, zlib_bytes: bytes) -> None:
    make_dist(site, "zprov", {"zprov/libz.so.1": zlib_bytes}, hashes={"zprov/libz.so.1": ""})
    with pytest.raises(IncompatibleLibraryError, match="without a hash"):
        verify_record(os.path.join(site, "zprov/libz.so.1"), "zprov")


def test_weak_hash_is_refused(site: str, zlib_bytes: bytes) -> None:
    rel = "zprov/libz.so.1"
    make_dist(site, "zprov", {rel: zlib_bytes}, hashes={rel: record_hash(zlib_bytes, "md5")})
    with pytest.raises(IncompatibleLibraryError, match="'md5'; expected sha256 or stronger"):
        verify_record(os.path.join(site, rel), "zprov")


def test_stronger_hash_is_accepted(site: str, zlib_bytes: bytes) -> None:
    rel = "zprov/libz.so.1"
    make_dist(site, "zprov", {rel: zlib_bytes}, hashes={rel: record_hash(zlib_bytes, "sha512")})
    verify_record(os.path.join(site, rel), "zprov")


def test_distribution_not_installed(site: str) -> None:
    with pytest.raises(IncompatibleLibraryError, match=r"'no-such-dist-xyz' is not installed.*pip install"):
        verify_record(ZLIB, "no-such-dist-xyz")


def test_file_missing(site: str) -> None:
    with pytest.raises(IncompatibleLibraryError, match="cannot read the file"):
        verify_record(os.path.join(site, "absent.so"), "zprov")


def test_second_copy_of_a_distribution_vouches_for_its_own_file(
    site: str, tmp_path, zlib_bytes: bytes, monkeypatch
) -> None:
    # Two copies of one distribution on sys.path (a venv with system site packages):
    # the file must be checked against the RECORD that lists it, not the first found.
    other = tmp_path / "other-site"
    other.mkdir()
    make_dist(site, "zprov", {"zprov/__init__.py": b""})
    make_dist(str(other), "zprov", {"zprov/libz.so.1": zlib_bytes})
    monkeypatch.syspath_prepend(str(other))
    sys.path.remove(site)
    sys.path.insert(0, site)  # the copy without the library comes first
    verify_record(str(other / "zprov/libz.so.1"), "zprov")


def test_unwritable_cache_is_not_fatal(site: str, zlib_bytes: bytes, tmp_path, monkeypatch) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("LIBBROKER_CACHE_DIR", str(blocker / "cache"))
    make_dist(site, "zprov", {"zprov/libz.so.1": zlib_bytes})
    verify_record(os.path.join(site, "zprov/libz.so.1"), "zprov")
    verify_record(os.path.join(site, "zprov/libz.so.1"), "zprov")


# --- RECORD files that cannot be read (review 2, F4/F5) -------------------------------------


def test_record_that_is_not_utf8_refuses_the_file_naming_byte_and_offset(site: str, zlib_bytes: bytes) -> None:
    make_dist(site, "zprov", {"zprov/libz.so.1": zlib_bytes})
    record = os.path.join(site, "zprov-1.0.dist-info", "RECORD")
    offset = os.path.getsize(record)
    with open(record, "ab") as f:
        f.write(b"\xff\xfe\x00garbage\n")
    with pytest.raises(IncompatibleLibraryError) as err:
        verify_record(os.path.join(site, "zprov/libz.so.1"), "zprov")
    message = str(err.value)
    assert err.value.path == record
    assert f"the RECORD of 'zprov' cannot be read: {record!r} is not UTF-8: byte 0xff at offset {offset}" in message
    assert "pip install --force-reinstall zprov" in message


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX FIFOs")
@pytest.mark.parametrize("name", ["RECORD", "METADATA"])
def test_fifo_record_or_metadata_does_not_block(site: str, zlib_bytes: bytes, tmp_path, name: str) -> None:
    import subprocess

    make_dist(site, "zprov", {"zprov/libz.so.1": zlib_bytes})
    # Another distribution's FIFO METADATA: the by-Name fallback reads every METADATA.
    os.makedirs(os.path.join(site, "other-1.0.dist-info"))
    os.mkfifo(os.path.join(site, "other-1.0.dist-info", "METADATA"))
    path = os.path.join(site, "zprov-1.0.dist-info", name)
    os.unlink(path)
    os.mkfifo(path)
    code = f"""
import sys
sys.path.insert(0, {site!r})
from libbroker._record import verify_record
from libbroker._errors import IncompatibleLibraryError
for dist in ("zprov", "Zprov_Other_Spelling"):
    try:
        verify_record({os.path.join(site, "zprov/libz.so.1")!r}, dist)
        print("accepted")
    except IncompatibleLibraryError as exc:
        print("refused:", exc)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "LIBBROKER_CACHE_DIR": str(tmp_path / "c2")})
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    if name == "RECORD":
        assert "RECORD' is not a regular file" in lines[0] and "reinstall zprov" in lines[0]
    else:  # METADATA is not needed to check a file against RECORD
        assert lines[0] == "accepted"
    assert "is not installed" in lines[1]
