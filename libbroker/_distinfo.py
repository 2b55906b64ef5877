"""Installed distributions read directly from their metadata directories.

What `_providers` needs of ``importlib.metadata`` is small: which ``*.dist-info``
(and ``*.egg-info``) directories each ``sys.path`` entry holds, in importlib's
order; the ``libbroker.providers`` lines of their ``entry_points.txt``; the
``Name`` and ``Version`` headers of METADATA; the paths of RECORD. Importing
``importlib.metadata`` costs pathlib, zipfile, email, csv and ``re`` (40 ms cold)
and parsing every METADATA with ``email`` 1 ms per distribution; reading the
files directly costs a directory listing and one small read per distribution.
docs/decisions/perf-search.md says what is mirrored; tests/test_distinfo.py
checks every reader against importlib.metadata on the installed distributions.

Scans are cached per ``sys.path`` directory, in the process and on disk
(`_cache` kind ``dists3``), keyed by the directory's `_cache.dir_stamp`; each
distribution's record by its ``entry_points.txt`` identity. A ``pip install`` into one directory re-reads
that directory alone. Only ``os`` and `_cache` are imported.
"""

from __future__ import annotations

import os
import stat
import sys
import time

from . import _cache

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

GROUP = "libbroker.providers"
_KIND = "dists3"  # 3: an unreadable entry_points.txt is recorded (a U+FFFD line), not as none
_MAX_TEXT = 4 << 20  # an entry_points.txt, METADATA head or RECORD bigger than this is not read
_INFO_SUFFIXES = (".dist-info", ".egg-info")

# directory -> (dir_stamp, records); a record is (normalized name, metadata directory,
# entry_points.txt identity or None, [(entry point name, value) of GROUP]). A distribution
# installed, removed or replaced changes the directory; an entry_points.txt created,
# replaced or edited in place changes its identity.
_memo: dict[str, tuple[object, list[Any]]] = {}
_disk: dict[Any, Any] | None = None
_dirty = False
_checked: dict[str, float] = {}  # directory -> when its records' identities were last checked
_RECHECK_SECONDS = _cache._RECHECK_SECONDS  # as `_api`: within a second, one search per process serves every table
_heads: dict[tuple[str, object], tuple[str | None, str | None, str | None]] = {}
_ep_problems: dict[str, tuple[object, str | None]] = {}  # entry_points.txt -> (identity, problem)


_SEPARATORS = str.maketrans("-.", "__")


def normalize(name: str) -> str:
    """importlib.metadata's ``Prepared.normalize``: runs of ``-_.`` become one ``_``, lower case
    (``re.sub(r"[-_.]+", "-", name).lower().replace("-", "_")`` without ``re``)."""
    out = name.lower().translate(_SEPARATORS)
    while "__" in out:
        out = out.replace("__", "_")
    return out


class MetadataError(ValueError):
    """A metadata file of a distribution exists but cannot be used: not a regular file,
    unreadable, over the size bound, or (RECORD) not UTF-8. The message names the file,
    what was found and the fix; callers turn it into the verdict of that distribution."""


# O_NONBLOCK: a FIFO (or a symlink to a terminal) named like a metadata file must not
# block the open; O_NOCTTY: opening a terminal must not make it ours.
_OPEN_FLAGS = os.O_RDONLY
for _flag in ("O_NONBLOCK", "O_NOCTTY", "O_CLOEXEC", "O_BINARY", "O_NOINHERIT"):
    _OPEN_FLAGS |= getattr(os, _flag, 0)


def _fix(path: str) -> str:
    dist = os.path.basename(os.path.dirname(path)).rpartition(".")[0].partition("-")[0] or path
    return f"reinstall {dist} with pip (pip install --force-reinstall {dist})"


def read_bounded(path: str, limit: int = _MAX_TEXT) -> tuple[bytes | None, Any]:
    """(bytes, identity) of the regular file *path*, read with one bounded, non-blocking open.

    Returns (None, None) when the file does not exist; the identity is `_cache.identity`'s
    tuple taken from the open file, so it matches what a later stat says. Raises
    `MetadataError` for anything else that is there but cannot be read: a FIFO, device,
    socket or directory (never read, never blocks), a file over *limit* bytes, an I/O error.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None, None
    except (OSError, ValueError) as exc:
        raise MetadataError(f"{path!r} cannot be examined: {getattr(exc, 'strerror', None) or exc}"
                            f" (fix: {_fix(path)})") from exc
    if not stat.S_ISREG(st.st_mode):  # not even opened: opening a device can act on it
        raise MetadataError(f"{path!r} is not a regular file (a FIFO, device, socket or "
                            f"directory) and is not read (fix: {_fix(path)})")
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        raise MetadataError(f"{path!r} cannot be opened: {exc.strerror or exc} "
                            f"(fix: {_fix(path)})") from exc
    try:
        st = os.fstat(fd)  # what was opened, not what was stat'ed a moment ago
        ident = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_mode, st.st_uid)
        if not stat.S_ISREG(st.st_mode):
            raise MetadataError(f"{path!r} is not a regular file (a FIFO, device, socket or "
                                f"directory) and is not read (fix: {_fix(path)})")
        chunks: list[bytes] = []
        total = 0
        while total <= limit and st.st_size <= limit:  # short reads of a regular file
            more = os.read(fd, limit + 1 - total)
            if not more:
                break
            chunks.append(more)
            total += len(more)
        if total > limit or st.st_size > limit:
            raise MetadataError(f"{path!r} is over {limit} bytes, more than any metadata file "
                                f"needs, and is not read (fix: {_fix(path)})")
    except OSError as exc:
        raise MetadataError(f"{path!r} cannot be read: {exc.strerror or exc} "
                            f"(fix: {_fix(path)})") from exc
    finally:
        os.close(fd)
    return b"".join(chunks), ident


# What each metadata file's specification says its encoding is (packaging.python.org,
# "Core metadata specifications", "Entry points specification", "Recording installed projects").
_SPECS = {
    "METADATA": "the core metadata specification",
    "PKG-INFO": "the core metadata specification",
    "entry_points.txt": "the entry points specification",
    "RECORD": "the recording installed projects specification",
}


def decode_utf8(data: bytes, path: str) -> str:
    """*data* as UTF-8; `MetadataError` naming *path*, the byte and its offset when it is not.

    The offset counts bytes from the start of the file (*data* is the whole file), as
    ``UnicodeDecodeError.start`` does; the message says which specification asks for UTF-8.
    """
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        spec = _SPECS.get(os.path.basename(path))
        expected = f"expected UTF-8, as {spec} requires" if spec else "expected UTF-8"
        raise MetadataError(
            f"{path!r} is not UTF-8: byte 0x{data[exc.start]:02x} at offset {exc.start} "
            f"({expected}; the file is damaged; fix: {_fix(path)}, or rebuild the wheel "
            f"with UTF-8 metadata if a fresh install has the same bytes)") from exc


def dist_label(info_dir: str) -> tuple[str, str | None]:
    """(name, version) as the metadata directory's name spells them (``foo_bar-1.0.dist-info``
    gives ("foo_bar", "1.0")): what names a distribution whose METADATA cannot be read."""
    stem = os.path.basename(info_dir).rpartition(".")[0]
    name, sep, version = stem.partition("-")
    return name or stem, (version.partition("-")[0] or None) if sep else None


def parse_entry_points(text: str, group: str = GROUP) -> list[tuple[str, str]]:
    """(name, value) of every entry point of *group* in an entry_points.txt text.

    importlib.metadata's ``Sectioned`` rules: lines stripped, blank and ``#`` lines
    skipped, ``[section]`` starts a section, ``name = value`` split at the first
    ``=`` and both sides stripped. A line without ``=`` (importlib raises on it)
    is skipped.
    """
    found: list[tuple[str, str]] = []
    section: str | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line.strip("[]")
            continue
        if section != group:
            continue
        name, sep, value = line.partition("=")
        if sep:
            found.append((name.strip(), value.strip()))
    return found


def _broken_link(path: str) -> str | None:
    """Why *path* is there but cannot be followed (a dangling symlink or a loop), else None:
    such a metadata file is damage to refuse by name, not an absent file (review4 R4-2)."""
    try:
        os.stat(path)
        return None
    except FileNotFoundError:
        pass
    except OSError as exc:
        if not os.path.islink(path):
            return None  # read_bounded reports what else went wrong
        return (f"{path!r} is a symbolic link that cannot be followed ({exc.strerror or exc}) "
                f"(fix: {_fix(path)})")
    if os.path.islink(path):
        return f"{path!r} is a dangling symbolic link to {os.readlink(path)!r} (fix: {_fix(path)})"
    return None


def _link_identity(path: str) -> object:
    """`_cache.identity`, or for a link that cannot be followed the link's own (so a record
    is re-examined when it is replaced, and is never mistaken for an absent file)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None  # no entry at all (most distributions): one system call
    except (OSError, ValueError):
        st = None
    if st is not None and not stat.S_ISLNK(st.st_mode):
        # Not a link: what stat would say (the same tuple as `_cache.identity`).
        return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_mode,
                st.st_uid)
    ident = _cache.identity(path)
    if ident is not None:
        return ident
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return ("link", st.st_dev, st.st_ino, st.st_mtime_ns, st.st_ctime_ns)


def _ep_identity(info_dir: str) -> object:
    return _link_identity(os.path.join(info_dir, "entry_points.txt"))


_UNREADABLE = "\ufffd"  # the entry-point name of an entry_points.txt that cannot be read


def _record_of(info_dir: str) -> Any:
    """One distribution's record: its entry_points.txt identity (None: absent) and provider
    lines, read now with one open (identity from the open file, so they agree).

    An entry_points.txt that cannot be read (a FIFO, a directory, a device, over the bound)
    gives one line named U+FFFD, under the identity of what is there (so it is not
    re-examined until it changes): which libraries it provides cannot be known, so every
    search refuses the distribution by name (`_providers.provider_files`, with
    `metadata_problem`'s reason), as for an entry-point name that is not UTF-8 (review3 F5).
    """
    path = os.path.join(info_dir, "entry_points.txt")
    try:
        os.lstat(path)
    except FileNotFoundError:
        # No directory entry at all (most distributions): absent, and no dangling link
        # either. One system call instead of read_bounded's stat and _broken_link's two.
        return None, []
    except (OSError, ValueError):
        pass  # read_bounded and _broken_link say what it is
    try:
        data, ident = read_bounded(path)
    except MetadataError:
        return _link_identity(path), [(_UNREADABLE, "")]
    if data is None:
        if _broken_link(path) is not None:  # dangling: there, and unreadable
            return _link_identity(path), [(_UNREADABLE, "")]
        return None, []
    lines: list[tuple[str, str]] = []
    if GROUP.encode() in data:
        lines = parse_entry_points(data.decode("utf-8", "replace"))
    return ident, lines


def _scan(directory: str) -> list[Any]:
    """Every record of *directory*, read now, in `_scan_names`' order."""
    return [(key, info_dir, *_record_of(info_dir)) for key, info_dir in _scan_names(directory)]


def _valid_shape(value: object) -> bool:
    if not (isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], list)):
        return False
    for record in value[1]:
        if not (isinstance(record, tuple) and len(record) == 4 and isinstance(record[0], str)
                and isinstance(record[1], str) and isinstance(record[2], (tuple, type(None)))
                and isinstance(record[3], list)
                and all(isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], str)
                        and isinstance(p[1], str) for p in record[3])):
            return False
    return True


def distributions(directory: str) -> list[Any]:
    """The records of *directory* (see `_memo`), from the caches while they are current.

    A record whose metadata directory or entry_points.txt changed is re-read on
    its own; a directory whose stamp changed is listed again (records of the
    distributions still there are kept when their own stamps hold).
    """
    global _disk, _dirty
    stamp = _cache.dir_stamp(directory)
    hit = _memo.get(directory)
    if hit is None:
        if _disk is None:
            _disk = _cache.load(_KIND)
        stored = _disk.get(directory)
        hit = stored if _valid_shape(stored) else None
    now = time.monotonic()
    if hit is not None and hit[0] == stamp and now - _checked.get(directory, -1e9) < _RECHECK_SECONDS:
        return hit[1]
    _checked[directory] = now
    if hit is not None and hit[0] == stamp:
        records = hit[1]
        fresh = []
        changed = False
        for record in records:
            key, info_dir, rstamp, _ = record
            if _ep_identity(info_dir) != rstamp:
                changed = True
                new_stamp, lines = _record_of(info_dir)
                record = (key, info_dir, new_stamp, lines)
            fresh.append(record)
        if changed:
            _dirty = True
        _memo[directory] = (stamp, fresh)
        return fresh
    if hit is not None:
        # Listed again; unchanged distributions keep their records (no re-read).
        known = {r[1]: r for r in hit[1]}
        records = []
        for record in _scan_names(directory):
            key, info_dir = record
            old = known.get(info_dir)
            if old is not None and old[2] == _ep_identity(info_dir):
                records.append(old)
            else:
                new_stamp, lines = _record_of(info_dir)
                records.append((key, info_dir, new_stamp, lines))
    else:
        records = _scan(directory)
    _memo[directory] = (stamp, records)
    _dirty = True
    return records


def _scan_names(directory: str) -> list[tuple[str, str]]:
    """(normalized name, metadata directory) of one sys.path *directory*, in importlib.metadata's
    order (``FastPath``/``Lookup``: listing order grouped by normalized name, then eggs)."""
    try:
        children = os.listdir(directory)
    except OSError:
        return []
    base = os.path.basename(directory).lower()
    infos: dict[str, list[str]] = {}
    eggs: dict[str, list[str]] = {}
    for child in children:
        low = child.lower()
        if low.endswith(_INFO_SUFFIXES):
            infos.setdefault(normalize(low.rpartition(".")[0].partition("-")[0]), []).append(
                os.path.join(directory, child))
        elif base.endswith(".egg") and low == "egg-info":
            eggs.setdefault(base.rpartition(".")[0].partition("-")[0].replace("-", "_"), []).append(
                os.path.join(directory, "EGG-INFO"))
    return [(key, p) for group in (infos, eggs) for key, paths in group.items() for p in paths]


def flush() -> None:
    """Write the directory scans made since the last flush to the disk cache (once per search)."""
    global _dirty, _disk
    if not _dirty:
        return
    _dirty = False
    data = _cache.load(_KIND)
    if len(data) > 256:
        data = {}  # bounded: sys.path entries of processes long gone
    data.update(_memo)
    _disk = data
    _cache.store(_KIND, data)


def search_path() -> list[str]:
    """sys.path without the entries that mean the current directory (design.md 5.1).

    `python -c` and the REPL put '' first, `python -m` the cwd itself: a wheel
    unpacked in a project directory must not become a provider. Relative
    entries and the cwd (by real path) are dropped.
    """
    try:
        here = os.stat(".")
    except OSError:
        here = None
    # Given again for a second while sys.path and the cwd are the same (`_RECHECK_SECONDS`).
    key = (tuple(sys.path), None if here is None else (here.st_dev, here.st_ino))
    now = time.monotonic()
    hit = _search_paths.get(key)
    if hit is not None and now - hit[0] < _RECHECK_SECONDS:
        return list(hit[1])
    kept = _search_path_now()
    if len(_search_paths) > 64:
        _search_paths.clear()
    _search_paths[key] = (now, tuple(kept))
    return kept


_search_paths: dict[tuple[object, ...], tuple[float, tuple[str, ...]]] = {}


def _search_path_now() -> list[str]:
    cwd: str | None
    try:
        cwd = os.path.realpath(os.getcwd())
        here = os.stat(cwd)
    except OSError:
        cwd = None
    kept = []
    for entry in sys.path:
        if not isinstance(entry, str) or not entry or not os.path.isabs(entry):
            continue
        if cwd is not None:
            try:
                st = os.stat(entry)
                other = (st.st_dev, st.st_ino) != (here.st_dev, here.st_ino)
            except OSError:
                other = False  # realpath decides, as it always did
            # Another (device, inode) cannot have the cwd's real path: no realpath then.
            if not other and os.path.realpath(entry) == cwd:
                continue
        kept.append(entry)
    return kept


def provider_snapshot() -> tuple[tuple[str, str, str], ...]:
    """Every provider entry point on the search path: (metadata directory, name, value),
    in order. What the provider part of any search (and of any closure) saw."""
    return tuple(provider_entry_points(search_path()))


def provider_entry_points(path: list[str]) -> list[tuple[str, str, str]]:
    """(metadata directory, entry point name, value) of every ``libbroker.providers`` entry
    point on *path*; a distribution shadowed by an earlier one of the same normalized name
    is skipped, as importlib.metadata's ``distributions()`` consumers do."""
    seen: set[str] = set()
    found: list[tuple[str, str, str]] = []
    for directory in path:
        for key, info_dir, _, lines in distributions(directory):
            if key in seen:
                continue
            seen.add(key)
            for name, value in lines:
                found.append((info_dir, name, value))
    flush()
    return found


def find_distribution(name: str, path: list[str]) -> str | None:
    """The metadata directory of distribution *name* (first on *path*), as
    ``importlib.metadata.Distribution.discover(name=...)`` finds it; None when absent."""
    wanted = normalize(name)
    for directory in path:
        for key, info_dir, _, _ in distributions(directory):
            if key == wanted:
                flush()
                return str(info_dir)
    flush()
    return None


def _head(info_dir: str) -> tuple[str | None, str | None, str | None]:
    """(Name, Version, problem) of METADATA (or PKG-INFO), memoised per file identity.

    problem: why the file cannot be used (`read_bounded`'s reasons, or not UTF-8); Name and
    Version are then read from what could be read, bad bytes replaced, for labels only.
    """
    for filename in ("METADATA", "PKG-INFO"):
        path = os.path.join(info_dir, filename)
        ident = _cache.identity(path)
        if ident is None:
            broken = _broken_link(path)
            if broken is not None:
                return None, None, broken
            continue
        hit = _heads.get((path, ident))
        if hit is not None:
            return hit
        problem: str | None = None
        try:
            data, _ = read_bounded(path)
        except MetadataError as exc:
            data, problem = b"", str(exc)
        if data is None:
            continue  # removed since the stat
        try:
            text = decode_utf8(data, path)
        except MetadataError as exc:
            problem = str(exc)
            text = data.decode("utf-8", "replace")
        name: str | None = None
        version: str | None = None
        for line in text.splitlines():
            if not line.strip():
                break
            if line[:1] in " \t":
                continue  # a folded continuation line of another header
            key, sep, value = line.partition(":")
            if not sep:
                continue
            key = key.strip().lower()
            if key == "name" and name is None:
                name = value.strip()
            elif key == "version" and version is None:
                version = value.strip()
        _heads[(path, ident)] = (name, version, problem)
        return name, version, problem
    return None, None, None


def name_and_version(info_dir: str) -> tuple[str | None, str | None]:
    """METADATA's (or PKG-INFO's) first ``Name`` and ``Version`` headers; None when absent.

    The header block ends at the first blank line, as the email parser reads it;
    names compare case-insensitively, values are stripped. Memoised per file identity.
    A file that is not UTF-8 gives its headers with bad bytes replaced (`metadata_problem`
    says why such a distribution must not be used).
    """
    name, version, _ = _head(info_dir)
    return name, version


def metadata_problem(info_dir: str, *, entry_points: bool = True) -> tuple[str, str] | None:
    """(path, why) of the first of the distribution's METADATA (or PKG-INFO) and, with
    *entry_points*, its entry_points.txt that cannot be used, else None; *why* covers
    every such file. Reasons: not UTF-8 (the core metadata and entry points
    specifications require it; importlib.metadata raises UnicodeDecodeError on both),
    not a regular file, unreadable or over the size bound. Each names the file, the byte
    and its offset, and the fix. Absent files are no problem here.
    Memoised per file identity: one read per file while it is unchanged.
    """
    problems: list[tuple[str, str]] = []
    head = _head(info_dir)[2]
    if head is not None:
        name = "METADATA" if os.path.lexists(os.path.join(info_dir, "METADATA")) else "PKG-INFO"
        problems.append((os.path.join(info_dir, name), head))
    if entry_points:
        path = os.path.join(info_dir, "entry_points.txt")
        ident = _link_identity(path)
        if ident is not None:
            hit = _ep_problems.get(path)
            if hit is None or hit[0] != ident:
                problem: str | None = _broken_link(path)
                try:
                    data, _ = read_bounded(path) if problem is None else (None, None)
                    if data is not None:
                        decode_utf8(data, path)
                except MetadataError as exc:
                    problem = str(exc)
                if len(_ep_problems) > 4096:
                    _ep_problems.clear()
                hit = _ep_problems[path] = (ident, problem)
            if hit[1] is not None:
                problems.append((path, hit[1]))
    if not problems:
        return None
    return problems[0][0], "; and ".join(why for _, why in problems)


def _first_field(line: str) -> str:
    """The first field of a RECORD (CSV) line: quoted with ``""`` escapes, or up to the first comma."""
    if not line.startswith('"'):
        return line.partition(",")[0]
    out: list[str] = []
    i = 1
    while i < len(line):
        char = line[i]
        if char == '"':
            if line[i + 1:i + 2] == '"':
                out.append('"')
                i += 2
                continue
            break
        out.append(char)
        i += 1
    return "".join(out)


def posix_normal(path: str) -> str:
    """*path* as ``PurePosixPath(path).as_posix()`` spells it: empty and ``.`` parts dropped."""
    lead = "/" if path.startswith("/") else ""
    parts = [p for p in path.split("/") if p and p != "."]
    return lead + "/".join(parts) if parts or lead else "."


def record_paths(info_dir: str) -> list[str] | None:
    """The paths RECORD lists (its first column, as importlib.metadata's ``files``), relative
    to the directory holding *info_dir*; None when there is no RECORD.

    Raises `MetadataError` when RECORD is there but unusable (`read_bounded`) or not UTF-8
    (importlib.metadata would raise a bare UnicodeDecodeError).
    """
    path = os.path.join(info_dir, "RECORD")
    data, _ = read_bounded(path)
    if data is None:
        broken = _broken_link(path)  # a dangling link: there, and unusable (review4 R4-2)
        if broken is not None:
            raise MetadataError(broken)
        return None
    return [posix_normal(_first_field(line)) for line in decode_utf8(data, path).splitlines() if line]


__all__ = [
    "GROUP", "MetadataError", "decode_utf8", "dist_label", "distributions", "find_distribution", "flush",
    "metadata_problem", "name_and_version", "normalize", "parse_entry_points", "posix_normal", "provider_entry_points", "provider_snapshot",
    "read_bounded", "record_paths", "search_path",
]
