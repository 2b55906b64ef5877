"""Loading: one Library per file per process, thread-safe, never unloaded.

The same file reached through a symlink or a second path is the same file
(device, inode), so it gets the same Library object and handle.

The bytes checked are the bytes mapped (design.md 5.1, docs/security.md): the
file is opened once (O_NOFOLLOW on its real path, so a symlink swapped in
after resolution is refused), its identity is taken with fstat and compared
with what the resolver judged, the checks read that open file, and on Linux
the loader maps that same open file through /proc/self/fd/N; the link map is
then renamed to the checked path. Where /proc is unavailable, or the loader
cannot map it that way, the file is mapped by path and the mapping's device and
inode (from /proc/self/maps, else a second stat) must match the open file.
"""

import os
import stat

from . import _master, _warm
from ._errors import IncompatibleLibraryError
from ._locks import new_rlock
from ._types import Library

_lock = new_rlock()
_by_identity: dict[tuple[int, int], Library] = {}
_by_name: dict[str, list[Library]] = {}
_order: list[Library] = []
# Linux's per-process descriptor directory. Never on Windows: under wine "/proc/self/fd"
# names the host's directory, whose numbers are not this process's CRT descriptors (opening
# one read the pipe on stdin and hung). A NUL byte makes every isdir() below False.
_PROC_FD = "/proc/self/fd/" if os.name != "nt" else "\0"
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)


_adopted = [0]  # how many of _warm.warm_pending are Library objects here


def _adopt_warm() -> None:
    """Make a Library of every file the compiled warm path (csrc/_warm.c) mapped since
    the last call: it maps without importing this module, and leaves a record."""
    pending = _warm.warm_pending
    if _adopted[0] >= len(pending):
        return
    with _lock:
        for record in pending[_adopted[0]:]:
            key = tuple(record["identity"])
            if key in _by_identity:
                continue  # the loader handed back the copy already mapped: same file
            library = Library(
                record["name"],
                record["path"],
                record["handle"],
                (key[0], key[1]),
                soname=record["soname"],
                origin=record["origin"],
                version_text=record["version"],
                version_source=record["version_source"] if record["version"] else None,
            )
            _by_identity[library.identity] = library
            _order.append(library)
            _by_name.setdefault(library.name, []).append(library)
            if library.soname:
                _by_name.setdefault(library.soname, []).append(library)
        _adopted[0] = len(pending)


def adopted(identity: "tuple[int, ...]") -> "Library | None":
    """The Library of the file with (device, inode) *identity*, after taking in what the
    warm path mapped; None when libbroker has not loaded it."""
    _adopt_warm()
    return _by_identity.get((identity[0], identity[1]))


def _identity_of(st: os.stat_result) -> tuple[int, int, int, int, int, int, int]:
    # The same tuple as _cache.identity, from an fstat of the open file.
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_mode, st.st_uid)


def load_file(
    path: str,
    *,
    name: str | None = None,
    origin: str = "path",
    soname: str | None = None,
    version_text: str | None = None,
    judged: bool = False,
    identity: "tuple[int, ...] | None" = None,
) -> Library:
    """dlopen *path* (absolute) privately, or return the Library already made for that file.

    *identity*: the `_cache.identity` tuple of the file the resolver judged;
    a different file now (replaced, edited, chmod-ed) is refused with
    IncompatibleLibraryError "changed since it was checked". Unless *judged*,
    the file must lie in a safe place (`_places.unsafe_reason`) and its headers
    are checked on the open file first: glibc's dlopen of a truncated ELF maps
    pages past the end of the file and the process dies of SIGBUS, so a bad
    file must be refused before it gets there.
    Raises IncompatibleLibraryError (relative path, missing, unsafe place,
    changed, not a loadable shared library, dlopen failure).
    """
    if not isinstance(path, str) or not os.path.isabs(path):
        raise IncompatibleLibraryError(
            str(path),
            "is a relative path; libbroker loads only absolute paths",
            fix="pass an absolute path, or a link name such as 'z' to search for it",
        )
    try:
        st = os.stat(path)
    except OSError as exc:
        reason = "does not exist" if not os.path.lexists(path) else f"cannot be read: {exc.strerror}"
        if os.path.islink(path) and not os.path.exists(path):
            reason = f"is a dangling symlink to {os.readlink(path)!r}"
        raise IncompatibleLibraryError(path, reason) from exc
    key = (st.st_dev, st.st_ino)
    _adopt_warm()
    library = _by_identity.get(key)
    if library is not None and (identity is None or tuple(identity[:2]) == key):
        return library
    with _lock:
        library = _by_identity.get(key)
        if library is not None:
            return library
        if (identity is None or not judged) and os.name != "nt":
            # Unless the resolver judged this very identity (places included), judge the
            # place here: the file may have been replaced since (design.md 5.1); load(path)
            # passes the identity its closure was judged for, not a place verdict.
            from ._places import unsafe_reason

            place = unsafe_reason(path)
            if place:
                raise IncompatibleLibraryError(
                    path, f"is not in a safe place: {place}", fix=None
                )
        real = os.path.realpath(path)
        try:
            fd = os.open(real, _OPEN_FLAGS)
        except OSError as exc:
            raise IncompatibleLibraryError(
                path, f"changed while being loaded (cannot open {real!r}: {exc.strerror})"
            ) from exc
        try:
            return _load_open_file(path, real, fd, name, origin, soname, version_text, judged, identity)
        finally:
            os.close(fd)


def _load_open_file(
    path: str,
    real: str,
    fd: int,
    name: str | None,
    origin: str,
    soname: str | None,
    version_text: str | None,
    judged: bool,
    identity: "tuple[int, ...] | None",
) -> Library:

    fst = os.fstat(fd)
    ident = _identity_of(fst)
    if not stat.S_ISREG(fst.st_mode):
        raise IncompatibleLibraryError(path, "is not a regular file")
    problem = _open_file_problem(fst)
    if problem:
        raise IncompatibleLibraryError(path, f"is not in a safe place: {problem}")
    if identity is not None and tuple(identity) != ident:
        raise IncompatibleLibraryError(
            path,
            "changed since it was checked (device, inode, size, times, mode or owner differ); "
            "it is not loaded",
            fix="retry: libbroker checks the new file afresh",
        )
    key = (fst.st_dev, fst.st_ino)
    library = _by_identity.get(key)
    if library is not None:
        return library
    readable = _unique_fd_path(fd) if os.path.isdir(_PROC_FD) else real
    # A file judged with this very identity passed these checks in the resolver
    # (accepted means loadable); anything else is checked here, on the open file.
    refusal = None if judged and identity is not None else _loader_refusal(readable, ident)
    if refusal:
        raise IncompatibleLibraryError(path, refusal, fix="reinstall the library; the file is damaged")
    if not judged or identity is None:
        # Read the open file itself where possible: a file swapped by path after
        # our open is not the file we check.
        soname, version_text = _precheck(path, readable, real, soname, version_text, ident)
    handle = _map_open_file(path, real, fd, fst)
    version_source: str | None = None
    if version_text is None and not judged:
        # Nobody judged its version (load(path)): the sources of design.md 5.2, never
        # the numbers in the file name (libffi.so.8.1.2 is libffi 3.4.4).
        from ._resolve import product_version

        found = product_version(real, name or _link_name(real), soname, handle)
        if found is not None:
            version_text, version_source = found
    library = Library(
        name or _link_name(real),
        path,
        handle,
        key,
        soname=soname,
        origin=origin,
        version_text=version_text,
        version_source=version_source,
    )
    _by_identity[key] = library
    _order.append(library)
    _by_name.setdefault(library.name, []).append(library)
    if soname:
        _by_name.setdefault(soname, []).append(library)
    return library


def _open_file_problem(fst: os.stat_result) -> str | None:
    """The place rule for the file itself, judged on the open file (not on whatever the path
    names now): owned by a trusted user and writable by no one else."""
    if os.name == "nt":
        return None
    from ._places import trusted_uids

    if fst.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"the file opened is writable by others (mode {stat.S_IMODE(fst.st_mode):o}); fix: chmod go-w"
    if fst.st_uid not in trusted_uids():
        return f"the file opened is owned by uid {fst.st_uid}, not by root or you"
    return None


def _map_open_file(path: str, real: str, fd: int, fst: os.stat_result) -> int:
    """dlopen the open file *fd* (already checked); its handle. IncompatibleLibraryError on failure."""
    handle = 0
    error: OSError | None = None
    if os.path.isdir(_PROC_FD):
        try:
            handle = _master.dlopen(_unique_fd_path(fd))
        except OSError as exc:
            error = exc  # e.g. a $ORIGIN dependency: origin is /proc/self/fd; retry by path
    if not handle:
        try:
            handle = _master.dlopen(real)
        except OSError as exc:
            raise IncompatibleLibraryError(path, _diagnose(real, error or exc)) from exc
        if not _mapped_is(handle, fst):
            raise IncompatibleLibraryError(
                path,
                "was replaced between its checks and dlopen; the replacement was mapped and is "
                "not used (its constructors may have run)",
            )
    else:
        _master.set_link_name(handle, real, _PROC_FD)
    return handle


def dlopen_checked(path: str, *, identity: "tuple[int, ...] | None" = None) -> int:
    """A raw handle of *path* mapped the way `load_file` maps (no Library is registered).

    For mapping a judged closure bottom-up and for probes: the file is opened
    once, must still have *identity* (when given), must pass the loader checks
    (`_binary._elfload`), and that open file is what gets mapped. Raises
    OSError(0, reason, path) like `_master.dlopen`, so callers keep one handler.
    """
    real = os.path.realpath(path)
    try:
        fd = os.open(real, _OPEN_FLAGS)
    except OSError as exc:
        raise OSError(0, f"cannot open {real!r}: {exc.strerror}", path) from exc
    try:
        fst = os.fstat(fd)
        ident = _identity_of(fst)
        if identity is not None and tuple(identity) != ident:
            raise OSError(0, "the file changed since it was checked; it is not loaded", path)
        if not stat.S_ISREG(fst.st_mode):
            raise OSError(0, "not a regular file", path)
        problem = _open_file_problem(fst)
        if problem:
            raise OSError(0, f"not in a safe place: {problem}", path)
        refusal = _loader_refusal(_unique_fd_path(fd) if os.path.isdir(_PROC_FD) else real, ident)
        if refusal:
            raise OSError(0, f"refused before dlopen: {refusal}", path)
        with _lock:
            try:
                return _map_open_file(path, real, fd, fst)
            except IncompatibleLibraryError as exc:
                raise OSError(0, exc.reason, path) from exc
    finally:
        os.close(fd)


_LOADABLE_KIND = "loadable"
_loadable: dict[tuple[int, ...], str | None] = {}
_loadable_disk: "dict[object, object] | None" = None


def _loader_refusal(readable: str, ident: tuple[int, ...]) -> str | None:
    """`_binary._elfload.loader_refusal` of the open file, remembered per full identity.

    Run before every dlopen, judged or not: a verdict cached on disk names a
    file by identity, and this check is what keeps a damaged file from killing
    the process inside the loader. The answer is kept on disk per identity
    (device, inode, size, times, mode, owner), so a warm import pays one lookup.
    """
    if ident in _loadable:
        return _loadable[ident]
    from . import _cache

    global _loadable_disk
    if _loadable_disk is None:
        _loadable_disk = _cache.load(_LOADABLE_KIND)  # once per process
    known = _loadable_disk.get(ident, False)
    reason: str | None
    if known is None or isinstance(known, str):
        reason = known
    else:
        from ._binary._elfload import loader_refusal

        reason = loader_refusal(readable)
        _cache.update(_LOADABLE_KIND, ident, reason, limit=4096)
    _loadable[ident] = reason
    return reason


def _unique_fd_path(fd: int) -> str:
    """/proc/self/fd/N under a name the loader has never seen (`_warm.unique_fd_path`:
    one serial per process, shared with the compiled warm path)."""
    return _warm.unique_fd_path(fd)


def _mapped_is(handle: int, fst: os.stat_result) -> bool:
    """True when the object behind *handle* was mapped from the file *fst* describes."""
    info = _master.link_map(handle)
    if info is not None:
        address = info[1] or info[0]
        try:
            with open("/proc/self/maps", "rb") as maps:
                for line in maps:
                    fields = line.split()
                    if len(fields) < 6:
                        continue
                    low, _, high = fields[0].partition(b"-")
                    if int(low, 16) <= address < int(high, 16):
                        major, _, minor = fields[3].partition(b":")
                        device = os.makedev(int(major, 16), int(minor, 16))
                        return (device, int(fields[4])) == (fst.st_dev, fst.st_ino)
        except (OSError, ValueError):
            pass
    return info is None or not os.path.isdir(_PROC_FD)


def _precheck(
    path: str,
    readable: str,
    real: str,
    soname: str | None,
    version_text: str | None,
    ident: tuple[int, ...],
) -> tuple[str | None, str | None]:
    """Refuse what dlopen must not see; fill in the SONAME (the version is asked after mapping).

    *readable* names the open file (/proc/self/fd/N) or its real path; facts
    already cached for exactly this identity are reused.
    """
    from . import _cache
    from ._resolve import _read_facts, binary_facts, flush_facts, soname_mismatch

    if _cache.identity(real) == ident:
        facts = binary_facts(real)
        flush_facts()
        if _cache.identity(real) != ident:  # replaced while read: read the open file
            facts = _read_facts(readable)
    else:
        facts = _read_facts(readable)
    reason = facts.get("error") or facts.get("incompatible")
    if not reason and facts.get("elf_type", "shared") != "shared":
        reason = f"is {'an' if facts['elf_type'][:1] in 'aeiou' else 'a'} {facts['elf_type']} binary, not a shared library"
    if not reason:
        reason = soname_mismatch(os.path.basename(real), facts.get("soname"))
    if reason:
        raise IncompatibleLibraryError(path, reason)
    return soname or facts.get("soname"), version_text


def _diagnose(real: str, exc: OSError) -> str:
    """Turn a dlopen failure into the reason a reader of the binary would give."""
    text = exc.strerror or str(exc)
    try:
        from ._binary import check_compatible, host_binary, read_binary

        info = read_binary(real)
        reason = check_compatible(info, host_binary())
        if reason:
            return f"{reason} (dlopen: {text})"
    except Exception as inner:  # noqa: BLE001 - the binary reader's own verdict is the better message
        reason = getattr(inner, "reason", None) or str(inner)
        return f"{reason} (dlopen: {text})"
    return f"dlopen failed: {text}"


def _link_name(path: str) -> str:
    from ._discovery import link_name_of

    base = os.path.basename(path)
    return link_name_of(base) or base


def loaded() -> list[Library]:
    """Every library libbroker loaded in this process, in load order."""
    _adopt_warm()
    return list(_order)


def loaded_named(name: str) -> list[Library]:
    _adopt_warm()
    return list(_by_name.get(name, ()))


_adopt_warm()
