"""RECORD integrity: a file found in a distribution must be the file pip installed.

A provider's library (or a library found through a spec's ``packages``) is about
to be loaded into the process on the strength of a wheel's metadata, so its bytes
are checked against the sha256 the wheel's RECORD lists. Hashing a 25 MB OpenBLAS
costs tens of milliseconds, so a successful check is cached on disk per file
identity: any rewrite of the file (reinstall, tampering, ``touch``) changes the
identity and forces a new hash.

Cold path: uses importlib.metadata.
"""

from __future__ import annotations

import base64
import hashlib
import os

from . import _cache
from ._errors import IncompatibleLibraryError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from importlib.metadata import Distribution, PackagePath

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


def _normalise(name: str) -> str:
    return name.replace("_", "-").replace(".", "-").lower()


def _distributions(dist: str) -> list[Distribution]:
    from importlib import metadata

    # name= lets importlib look only at matching directories (normalised names on
    # 3.10+); the full scan covers older spellings of the directory name.
    from ._providers import search_path

    path = search_path()  # never the RECORD of a copy in the current directory
    found = list(metadata.distributions(name=dist, path=path))
    if found:
        return found
    wanted = _normalise(dist)
    for candidate in metadata.distributions(path=path):
        name = candidate.metadata["Name"]
        if name is not None and _normalise(name) == wanted:
            found.append(candidate)
    return found


def _record_entry(
    path: str, dists: list[Distribution]
) -> tuple[Distribution | None, PackagePath | None]:
    """The RECORD line listing *path*, searching every installed copy of the dist.

    Two copies of one distribution can be visible (a venv with system site
    packages, a --target directory); the one whose RECORD lists the file is the
    one that vouches for it.
    """
    base = os.path.basename(path)
    with_record: Distribution | None = None
    for dist in dists:
        files = dist.files
        if files is None:
            continue
        with_record = dist
        for entry in files:
            if entry.name != base:
                continue
            if os.path.realpath(str(dist.locate_file(entry))) == path:
                return dist, entry
    if with_record is not None:
        return with_record, None
    return (dists[0], None) if dists else (None, None)


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
    key = f"{_normalise(dist)}\0{real}"
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
    owner, entry = _record_entry(real, dists)
    assert owner is not None
    owner_name = owner.metadata["Name"] or dist
    if owner.files is None:
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
    if entry.hash is None or not entry.hash.value:
        raise IncompatibleLibraryError(
            path,
            f"the RECORD of {owner_name!r} lists the file without a hash, so it cannot be checked",
            fix=f"reinstall {owner_name} with pip (pip install --force-reinstall {owner_name})",
        )
    algorithm = entry.hash.mode.lower()
    if algorithm in _WEAK or algorithm not in hashlib.algorithms_available:
        raise IncompatibleLibraryError(
            path,
            f"the RECORD of {owner_name!r} hashes the file with {algorithm!r}; "
            "expected sha256 or stronger",
            fix=f"reinstall {owner_name} from a wheel built by a current tool",
        )
    actual = _hash_file(real, algorithm)
    expected = entry.hash.value.rstrip("=")
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
