"""Loading: one Library per file per process, thread-safe, never unloaded.

The same file reached through a symlink or a second path is the same file
(device, inode), so it gets the same Library object and handle.
"""

import os
# _thread, not threading: threading pulls functools and collections (about 2 ms
# in a fresh process) onto a consumer's import path; the lock is the same C type.
import _thread

from ._errors import IncompatibleLibraryError
from ._types import Library

_lock = _thread.RLock()
_by_identity: dict[tuple[int, int], Library] = {}
_by_name: dict[str, list[Library]] = {}
_order: list[Library] = []


def load_file(
    path: str,
    *,
    name: str | None = None,
    origin: str = "path",
    soname: str | None = None,
    version_text: str | None = None,
    judged: bool = False,
) -> Library:
    """dlopen *path* (absolute) privately, or return the Library already made for that file.

    Unless the resolver already *judged* the file, its headers are read first:
    glibc's dlopen of a truncated ELF maps pages past the end of the file and the
    process dies of SIGBUS, so a bad file must be refused before it gets there.
    """
    if not os.path.isabs(path):
        raise IncompatibleLibraryError(
            path,
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
    library = _by_identity.get(key)
    if library is not None:
        return library
    with _lock:
        library = _by_identity.get(key)
        if library is not None:
            return library
        from . import _master

        real = os.path.realpath(path)
        if not judged:
            soname, version_text = _precheck(path, real, soname, version_text)
        try:
            handle = _master.dlopen(real)
        except OSError as exc:
            raise IncompatibleLibraryError(path, _diagnose(real, exc)) from exc
        library = Library(
            name or _link_name(real),
            path,
            handle,
            key,
            soname=soname,
            origin=origin,
            version_text=version_text,
        )
        _by_identity[key] = library
        _order.append(library)
        _by_name.setdefault(library.name, []).append(library)
        if soname:
            _by_name.setdefault(soname, []).append(library)
        return library


def _precheck(
    path: str, real: str, soname: str | None, version_text: str | None
) -> tuple[str | None, str | None]:
    """Refuse what dlopen must not see; fill in SONAME and file-name version."""
    from ._discovery import version_from_filename
    from ._resolve import binary_facts, flush_facts, soname_mismatch

    facts = binary_facts(real)
    flush_facts()
    reason = facts.get("error") or facts.get("incompatible")
    if not reason and facts.get("elf_type", "shared") != "shared":
        reason = f"is an ELF {facts['elf_type']}, not a shared library"
    if not reason:
        reason = soname_mismatch(os.path.basename(real), facts.get("soname"))
    if reason:
        raise IncompatibleLibraryError(path, reason)
    return (
        soname or facts.get("soname"),
        version_text or version_from_filename(real),
    )


def _diagnose(real: str, exc: OSError) -> str:
    """Turn a dlopen failure into the reason a reader of the binary would give."""
    text = exc.strerror or str(exc)
    try:
        from ._binary import check_compatible, host_binary, read_binary

        info = read_binary(real)
        reason = check_compatible(info, host_binary())
        if reason:
            return f"{reason} (dlopen: {text})"
    except Exception as inner:  # the binary reader's own verdict is the better message
        reason = getattr(inner, "reason", None) or str(inner)
        return f"{reason} (dlopen: {text})"
    return f"dlopen failed: {text}"


def _link_name(path: str) -> str:
    from ._discovery import link_name_of

    base = os.path.basename(path)
    return link_name_of(base) or base


def loaded() -> list[Library]:
    """Every library libbroker loaded in this process, in load order."""
    return list(_order)


def loaded_named(name: str) -> list[Library]:
    return list(_by_name.get(name, ()))
