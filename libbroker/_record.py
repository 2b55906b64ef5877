"""RECORD integrity: a file found in a distribution must be the file pip installed.

A provider's library (or a library found through a spec's ``packages``) is about
to be loaded into the process on the strength of a wheel's metadata, so its bytes
are checked against the sha256 the wheel's RECORD lists. Hashing a 25 MB OpenBLAS
costs tens of milliseconds, so a successful check is cached on disk per file
identity: any rewrite of the file (reinstall, tampering, ``touch``) changes the
identity and forces a new hash.

Cold path: reads RECORD with `_distinfo`'s bounded, non-blocking reader and csv,
as importlib.metadata's ``files`` parses it.
"""

from __future__ import annotations

import base64
import hashlib
import os

from . import _cache, _distinfo
from ._errors import IncompatibleLibraryError

__all__ = ["verify_record"]

_CACHE_KIND = "record"
# PEP 427: RECORD hashes must be sha256 or stronger.
_WEAK = frozenset({"md5", "sha1", "sha224"})


def _identity(path: str) -> tuple[int, ...]:
    # `_cache.identity`: ctime too (unlike mtime, `touch -d` cannot set it back
    # after an edit), mode and owner (a chmod after the check is a new file).
    ident = _cache.identity(path)
    if ident is None:
        os.stat(path)  # raises the OSError that says why
        raise FileNotFoundError(path)
    return ident


def _hash_file(path: str, algorithm: str) -> str:
    """urlsafe base64 (unpadded) digest of the file, as RECORD writes it."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return base64.urlsafe_b64encode(h.digest()).rstrip(b"=").decode("ascii")


def _distributions(dist: str) -> list[str]:
    """Metadata directories of every installed copy of *dist* on the search path, in order.

    Read with `_distinfo` (bounded, non-blocking reads, never importlib.metadata: a FIFO
    named METADATA or RECORD must not hang, a bad byte must not raise a bare error). By
    directory name first, as ``importlib.metadata.distributions(name=...)``; then by
    METADATA's Name, for older spellings of the directory name.
    """
    from ._providers import search_path

    path = search_path()  # never the RECORD of a copy in the current directory
    wanted = _distinfo.normalize(dist)
    records = [r for directory in path for r in _distinfo.distributions(directory)]
    _distinfo.flush()
    found = [str(r[1]) for r in records if r[0] == wanted]
    if found:
        return found
    for record in records:
        name = _distinfo.name_and_version(str(record[1]))[0]
        if name is not None and _distinfo.normalize(name) == wanted:
            found.append(str(record[1]))
    return found


class _Entry:
    """One RECORD row: path (as written), hash algorithm and urlsafe-base64 value (or None)."""

    __slots__ = ("algorithm", "path", "value")

    def __init__(self, row: list[str]) -> None:
        self.path = row[0]
        spec = row[1] if len(row) > 1 else ""
        # importlib.metadata's FileHash: "mode=value"; an empty field is no hash.
        self.algorithm, _, value = spec.partition("=")
        self.value: str | None = value if spec else None


def _rows(info_dir: str, name: str) -> list[_Entry] | None:
    """The rows of *info_dir*'s RECORD (csv, as importlib.metadata reads it), None without one.

    Raises IncompatibleLibraryError naming the file when RECORD is there but cannot be
    used (a FIFO or device, over the size bound, not UTF-8, not CSV).
    """
    import csv

    path = os.path.join(info_dir, "RECORD")
    try:
        data, _ = _distinfo.read_bounded(path)
        if data is None:
            return None
        text = _distinfo.decode_utf8(data, path)
        return [_Entry(row) for row in csv.reader(text.splitlines()) if row]
    except (_distinfo.MetadataError, csv.Error) as exc:
        raise IncompatibleLibraryError(
            path, f"the RECORD of {name!r} cannot be read: {exc}",
            fix=f"reinstall {name} with pip (pip install --force-reinstall {name})",
        ) from exc


def _record_entry(
    path: str, dists: list[str], name: str
) -> tuple[str | None, list[_Entry] | None, _Entry | None]:
    """The RECORD line listing *path*, searching every installed copy of the dist:
    (metadata directory, its RECORD rows, the row), or the first copy with a RECORD
    and no row.

    Two copies of one distribution can be visible (a venv with system site
    packages, a --target directory); the one whose RECORD lists the file is the
    one that vouches for it.
    """
    base = os.path.basename(path)
    with_record: tuple[str, list[_Entry]] | None = None
    for info_dir in dists:
        rows = _rows(info_dir, _distinfo.name_and_version(info_dir)[0] or name)
        if rows is None:
            continue
        if with_record is None:
            with_record = (info_dir, rows)
        for entry in rows:
            if _distinfo.posix_normal(entry.path).rpartition("/")[2] != base:
                continue
            if os.path.realpath(os.path.join(os.path.dirname(info_dir), entry.path)) == path:
                return info_dir, rows, entry
    if with_record is not None:
        return with_record[0], with_record[1], None
    return (dists[0], None, None) if dists else (None, None, None)


def verify_record(path: str, dist: str) -> None:
    """Check *path* against the RECORD of the installed distribution *dist*.

    Raises IncompatibleLibraryError when the file differs from what was
    installed, is not listed, or the RECORD has no usable hash for it.
    """
    real = os.path.realpath(path)
    try:
        ident = _identity(real)
    except OSError as exc:
        raise IncompatibleLibraryError(
            path, f"cannot read the file to check it against the RECORD of {dist!r}: {exc}"
        ) from exc
    key = f"{_distinfo.normalize(dist)}\0{real}"
    cache = _cache.load(_CACHE_KIND)
    if cache.get(key) == ident and isinstance(cache.get(key), tuple):
        return

    dists = _distributions(dist)
    if not dists:
        raise IncompatibleLibraryError(
            path,
            f"distribution {dist!r} is not installed, so no RECORD vouches for the file",
            fix=f"pip install {dist}",
        )
    owner, rows, entry = _record_entry(real, dists, dist)
    assert owner is not None
    owner_name = _distinfo.name_and_version(owner)[0] or dist
    if rows is None:
        raise IncompatibleLibraryError(
            path,
            f"distribution {owner_name!r} has no RECORD file, so its files cannot be checked",
            fix=f"reinstall {owner_name} with pip (pip install --force-reinstall {owner_name})",
        )
    base = os.path.basename(real)
    if entry is None and len(f"<{base}>".splitlines()) > 1:
        # Not "not listed": importlib.metadata reads RECORD with str.splitlines before
        # csv, so a name holding a line break can never be read back from any RECORD.
        raise IncompatibleLibraryError(
            path,
            f"its file name {base!r} holds a line break, which no RECORD entry can carry in a "
            f"form that can be read back, so the RECORD of {owner_name!r} cannot vouch for it",
            fix="use a build of the library with a plain file name and soname "
            "(libbroker wrap refuses such names)",
        )
    if entry is None:
        raise IncompatibleLibraryError(
            path,
            f"the file is not listed in the RECORD of {owner_name!r} "
            f"(an editable install, or a file added after installation)",
            fix=f"reinstall {owner_name} with pip, not in editable mode",
        )
    if not entry.value:
        raise IncompatibleLibraryError(
            path,
            f"the RECORD of {owner_name!r} lists the file without a hash, so it cannot be checked",
            fix=f"reinstall {owner_name} with pip (pip install --force-reinstall {owner_name})",
        )
    algorithm = entry.algorithm.lower()
    if algorithm in _WEAK or algorithm not in hashlib.algorithms_available:
        raise IncompatibleLibraryError(
            path,
            f"the RECORD of {owner_name!r} hashes the file with {algorithm!r}; "
            "expected sha256 or stronger",
            fix=f"reinstall {owner_name} from a wheel built by a current tool",
        )
    actual = _hash_file(real, algorithm)
    expected = entry.value.rstrip("=")
    if actual != expected:
        raise IncompatibleLibraryError(
            path,
            f"the file was modified after installation: RECORD of {owner_name!r} says "
            f"{algorithm}={expected}, the file has {algorithm}={actual}",
            fix=f"reinstall {owner_name} (pip install --force-reinstall {owner_name})",
        )
    # Re-read: keep only the verification of the latest state, bounded like other caches.
    cache = _cache.load(_CACHE_KIND)
    if len(cache) >= 512:
        cache.clear()
    cache[key] = ident
    _cache.store(_CACHE_KIND, cache)
