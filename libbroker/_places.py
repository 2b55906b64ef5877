"""Place rules: may a file or search directory supply code to this process?

design.md 5.1 "Safe places": a file libbroker maps, and every directory on the
way to it from "/", must be writable only by root, the current user or an owner
the config file trusts (`trusted-owners`). Symlinks are followed component by
component, so the directories holding every symlink *target* are judged too,
not only the final real path. A world-writable directory with the sticky bit
(/tmp) is a safe step only because its entries can then be replaced by their
owners alone; so the entry below it must itself be owned by a trusted user,
which the rule "every component owned by a trusted user" already demands.

Pure decisions from `os.lstat` results: nothing is cached here across calls
(callers cache verdicts together with the stamps that make them valid, see
`_cache.decision_stamps`). Only `os` and `stat` are imported: this module is
reached from the warm path of a consumer import (`_loader`).

Windows has no POSIX owners or mode bits; there every rule but "absolute and
not relative to the current directory" is out of scope (docs/security.md).
"""

import os
import stat

from ._errors import BrokerError

_MAX_SYMLINKS = 40  # what the Linux kernel allows when resolving one path (ELOOP)
_base_uids: "tuple[tuple[int, int], frozenset[int]] | None" = None  # ((uid, euid), the answer)


def base_uids() -> "frozenset[int]":
    """root and the current (effective and real) user: the owners trusted without configuration."""
    global _base_uids
    if not hasattr(os, "geteuid"):  # pragma: no cover - Windows
        return frozenset()
    # Keyed by the ids asked now: a process that ran as another user for a while
    # (seteuid) trusts that user only while it is that user (review5 F5).
    ids = (os.getuid(), os.geteuid())
    if _base_uids is None or _base_uids[0] != ids:
        _base_uids = (ids, frozenset({0, *ids}))
    return _base_uids[1]


def trusted_uids() -> "frozenset[int]":
    """root, the current user, plus the config file's `trusted-owners` (user names or uids).

    The config file is itself judged with `base_uids()` only: a config file
    cannot extend trust to the people who could have written it.
    """
    extra: frozenset[int] = frozenset()
    try:
        from ._config import load_config

        extra = load_config().trusted_uids
    except BrokerError:  # a broken config is reported by find(); here it trusts no one extra
        extra = frozenset()
    return base_uids() | extra


def relative_entry(entry: str) -> bool:
    """True for '' and relative entries of a search-path list: they mean the current directory."""
    return not entry or not os.path.isabs(entry)


def _owner(uid: int) -> str:
    try:
        import pwd

        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except (ImportError, KeyError):
        return f"uid {uid}"


def _describe(path: str, st: os.stat_result) -> str:
    return f"{path!r} (mode {stat.S_IMODE(st.st_mode):o}, owner {_owner(st.st_uid)})"


def _component_reason(
    path: str, st: os.stat_result, trusted: "frozenset[int]", *, final_dir: bool, what: str
) -> "str | None":
    """Why one component fails, or None. *final_dir*: the searched directory itself."""
    if st.st_uid not in trusted:
        return (
            f"{what} {_describe(path, st)} is owned by another user, who could replace what "
            f"libbroker maps; fix: have root or the current user own it, or name that owner "
            f"in the config file's trusted-owners"
        )
    if stat.S_ISLNK(st.st_mode):
        return None  # a symlink's own mode bits mean nothing; its target is walked next
    writable = st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    if not writable:
        return None
    if stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_ISVTX and not final_dir:
        # /tmp: others may add entries but not replace ours; the entry below is checked next.
        return None
    kind = "world-writable" if st.st_mode & stat.S_IWOTH else "group-writable"
    fix = f"chmod go-w {path!r}" if stat.S_ISDIR(st.st_mode) or what == "the file" else "move it"
    return (
        f"{what} {_describe(path, st)} is {kind}, so someone other than root or you could plant "
        f"or replace code there; fix: {fix}, or move the library to a directory only root or "
        f"you can write"
    )


def _lstat(path: str, trace: "list[tuple[str, object]] | None") -> os.stat_result:
    """`os.lstat`, noted in *trace* as (path, (device, inode, mode, owner) or None)."""
    try:
        st = os.lstat(path)
    except OSError:
        if trace is not None:
            trace.append((path, None))
        raise
    if trace is not None:
        trace.append((path, (st.st_dev, st.st_ino, st.st_mode, st.st_uid)))
    return st


def _walk(path: str, trusted: "frozenset[int]", *, want_dir: bool,
          trace: "list[tuple[str, object]] | None" = None) -> "str | None":
    if os.name == "nt":  # pragma: no cover - no POSIX ownership
        return None if os.path.isabs(path) else f"{path!r} is not an absolute path"
    if not isinstance(path, str) or not path.startswith("/"):
        return (
            f"{path!r} is not an absolute path; a relative path means the current directory, "
            f"which libbroker never loads from; fix: give an absolute path"
        )
    pending = [p for p in path.split("/") if p]
    current = "/"
    links = 0
    try:
        st = _lstat("/", trace)
    except OSError as exc:  # pragma: no cover
        return f"cannot inspect '/': {exc.strerror}"
    reason = _component_reason("/", st, trusted, final_dir=want_dir and not pending, what="the directory")
    if reason:
        return reason
    while pending:
        part = pending.pop(0)
        if part == ".":
            continue
        if part == "..":
            current = os.path.dirname(current) or "/"
            continue
        step = os.path.join(current, part)
        try:
            st = _lstat(step, trace)
        except OSError as exc:
            return f"{step!r} on the way to {path!r} cannot be inspected: {exc.strerror}"
        last = not pending
        if stat.S_ISLNK(st.st_mode):
            reason = _component_reason(step, st, trusted, final_dir=False, what="the symlink")
            if reason:
                return f"{reason} (on the way to {path!r})"
            links += 1
            if links > _MAX_SYMLINKS:
                return f"{path!r} goes through more than {_MAX_SYMLINKS} symlinks (a loop?)"
            try:
                target = os.readlink(step)
            except OSError as exc:
                return f"the symlink {step!r} cannot be read: {exc.strerror}"
            pending[:0] = [p for p in target.split("/") if p]
            if target.startswith("/"):
                current = "/"
                try:
                    st = _lstat("/", trace)
                except OSError:  # pragma: no cover
                    return "cannot inspect '/'"
            continue
        is_dir = stat.S_ISDIR(st.st_mode)
        if not last and not is_dir:
            return f"{step!r} on the way to {path!r} is not a directory"
        what = "the directory" if is_dir else "the file"
        reason = _component_reason(step, st, trusted, final_dir=last and want_dir, what=what)
        if reason:
            return reason if step == path else f"{reason} (on the way to {path!r})"
        current = step
    if want_dir and not stat.S_ISDIR(st.st_mode):
        return f"{path!r} is not a directory"
    return None


def unsafe_reason(path: str, *, trusted_uids: "frozenset[int] | None" = None) -> "str | None":
    """None when the file at absolute *path* lies in a safe place, else why not (with the fix).

    Walks every component from "/" with `os.lstat`, following symlinks one
    component at a time (their targets' directories are judged too). Each
    directory and the file must be owned by a trusted uid (*trusted_uids*,
    default `trusted_uids()`), and not group- or world-writable; a sticky
    world-writable directory (/tmp) is allowed on the way because the entry
    below it must be owned by a trusted uid anyway. Never raises for bad input.
    """
    return _walk(path, trusted_uids if trusted_uids is not None else _trusted_default(), want_dir=False)


def unsafe_dir_reason(directory: str, *, trusted_uids: "frozenset[int] | None" = None,
                      trace: "list[tuple[str, object]] | None" = None) -> "str | None":
    """The same rules for a search directory; the directory itself may not be sticky-writable.

    *trace*, when given, receives (path, (device, inode, mode, owner) or None) of every
    entry inspected: the verdict holds while they are unchanged (a symlink cannot be
    rewritten in place) and the trusted owners are the same.
    """
    return _walk(
        directory, trusted_uids if trusted_uids is not None else _trusted_default(), want_dir=True,
        trace=trace,
    )


def place_trace(path: str, *, trusted_uids: "frozenset[int] | None" = None
                ) -> "tuple[str | None, list[tuple[str, object]]]":
    """(`unsafe_reason(path)`, the trace of that walk) for a file at absolute *path*.

    The trace lists (path, (device, inode, mode, owner) or None) of every entry the
    walk `lstat`ed, in order: each directory from "/", every symlink of a chain, and
    every directory on the way to each symlink's target (a walk that stops at an
    unsafe component lists what it inspected up to there). The verdict holds while
    every entry gives the same tuple (a symlink cannot be rewritten in place, so a
    repointed link is a new inode) and the trusted owners are the same;
    `_cache.decision_stamps` records it as "@place" stamps.
    """
    trace: list[tuple[str, object]] = []
    reason = _walk(path, trusted_uids if trusted_uids is not None else _trusted_default(),
                   want_dir=False, trace=trace)
    return reason, trace


def _trusted_default() -> "frozenset[int]":
    return trusted_uids()
