"""The on-disk cache: small marshal files under the user cache directory.

marshal, not json or pickle: it is the fastest loader in the standard library
and imports nothing (json pulls `re`). A corrupt, foreign or unwritable cache is
ignored, never fatal: the cache only ever saves work.

Trust (design.md 5.1, docs/security.md): the cache directory is used only when
it is owned by the current user (or root) and not writable by others, every
file read must be owned by us and not writable by others, reads are bounded
(`_MAX_BYTES` before `marshal.loads`), and a verdict read back is valid only
while every input it depended on is unchanged (`decision_stamps`).
"""

import _thread
import marshal
import os
import stat
import sys
import time


def _crc32(data: bytes) -> int:
    import _libbroker_warm

    return _libbroker_warm.crc32(data)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

_FORMAT = 2  # 2: stamps carry ctime, mode and owner; older files are simply not read
_MAGIC = b"LBc\x02"
_MAX_BYTES = 4 << 20  # a cache file is tens of KB; anything bigger is corrupt or foreign
_dir: "str | None" = None
_dir_checked: "dict[str, str | None]" = {}  # cache dir -> why it is unsafe (None: safe)
_warned: "set[str]" = set()


def _home() -> "str | None":
    """$HOME, else the password database's home; None unless absolute (never cwd-relative)."""
    home = os.environ.get("HOME")
    if not home:
        try:
            import pwd

            home = pwd.getpwuid(os.getuid()).pw_dir
        except (ImportError, KeyError, AttributeError):
            return None
    return home if home and os.path.isabs(home) else None


def _xdg(variable: str, fallback: str) -> "str | None":
    """The XDG base directory rule: the variable if absolute (relative ones are ignored, as
    the spec says), else ~/<fallback>; None without a home."""
    base = os.environ.get(variable, "").strip()
    if base and os.path.isabs(base):
        return base
    home = _home()
    return os.path.join(home, fallback) if home else None


def cache_dir() -> "str | None":
    """`platformdirs.user_cache_dir("libbroker")`, or $LIBBROKER_CACHE_DIR; None for no disk cache.

    None when there is no absolute home directory (a container uid without a
    passwd entry) or the override is relative: a cache relative to the current
    directory would let whoever owns that directory feed verdicts in.
    On Linux the XDG rule is applied here directly (the same rule platformdirs
    implements; tests/test_cache.py checks they agree) because importing
    platformdirs costs pathlib and `re` on the warm path.
    """
    global _dir
    override = os.environ.get("LIBBROKER_CACHE_DIR")
    if override:
        if os.path.isabs(override):
            return override
        _warn_once(
            override,
            f"libbroker uses no disk cache: LIBBROKER_CACHE_DIR={override!r} is not an absolute "
            "path (a cache relative to the current directory could be fed by whoever owns it); "
            "fix: set LIBBROKER_CACHE_DIR to an absolute directory you own, mode 700",
        )
        return None
    if _dir is None:
        if sys.platform.startswith("linux"):
            base = _xdg("XDG_CACHE_HOME", ".cache")
            if base is None:
                return None
            _dir = os.path.join(base, "libbroker")
        else:
            import platformdirs

            _dir = platformdirs.user_cache_dir("libbroker", appauthor=False)
    return _dir


def _warn_once(key: str, message: str) -> None:
    if key in _warned:
        return
    _warned.add(key)
    import warnings

    from ._errors import BrokerWarning

    warnings.warn(message, BrokerWarning, stacklevel=4)


def usable_dir() -> "str | None":
    """The cache directory if it is safe to read and write, else None (with one BrokerWarning).

    Safe: absolute, and (on POSIX) every directory from "/" owned by root or
    us and not writable by others (`_places.unsafe_dir_reason` with root and
    us only: `trusted-owners` is for libraries, not for our verdicts). A missing
    directory is created 0o700 below a safe parent.
    """
    directory = cache_dir()
    if directory is None:
        return None
    if directory in _dir_checked:
        reason = _dir_checked[directory]
    else:
        reason = None
        if os.name != "nt":
            from ._places import base_uids, unsafe_dir_reason

            if not os.path.isdir(directory):
                try:
                    os.makedirs(directory, mode=0o700, exist_ok=True)
                except OSError as exc:
                    _dir_checked[directory] = "cannot be created"
                    what = "is not a directory" if os.path.lexists(directory) else (
                        f"cannot be created ({exc.strerror})")
                    _warn_once(
                        directory,
                        f"libbroker uses no disk cache: {directory!r} {what}; fix: set "
                        "LIBBROKER_CACHE_DIR to a directory you own, mode 700",
                    )
                    return None
            reason = unsafe_dir_reason(directory, trusted_uids=base_uids())
            if reason is None and os.stat(directory).st_uid not in (os.getuid(), 0):
                reason = f"the cache directory {directory!r} is owned by another user"
        _dir_checked[directory] = reason
        if reason:
            _warn_once(directory, _cache_refusal(directory, reason))
    return None if reason else directory


def without_fix(reason: str) -> str:
    """A place-rule reason (`_places`) without its "; fix: ..." clause, which is written for
    library files; the config file and the cache give their own (one fix per message)."""
    head, sep, tail = reason.partition("; fix: ")
    if not sep:
        return reason
    where = tail.find(" (on the way to ")
    return head + (tail[where:] if where >= 0 else "")


def _cache_refusal(directory: str, reason: str) -> str:
    """The warning for an unsafe cache directory, with the one fix that applies: chmod the
    directory when it is ours and the problem is its own mode, else another directory
    (never a chmod of /tmp or of someone else's directory)."""
    fix = "set LIBBROKER_CACHE_DIR to a directory you own, mode 700 (e.g. mkdir -m 700 ~/.cache/libbroker)"
    try:
        st = os.stat(directory)
        own = st.st_uid == os.getuid() and not stat.S_ISVTX & st.st_mode
        if own and st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and repr(directory) in reason.split(" (")[0]:
            fix = f"chmod 700 {directory!r}, or {fix}"
    except OSError:
        pass
    return (
        f"libbroker ignores its disk cache {directory!r}: {without_fix(reason)}; entries there "
        f"could have been written by someone else; fix: {fix}"
    )


def _file(kind: str) -> "str | None":
    directory = usable_dir()
    if directory is None:
        return None
    return os.path.join(directory, f"{kind}-v{_FORMAT}.marshal")


def load(kind: str) -> "dict[Any, Any]":
    """The cached dict stored under *kind*, or {} when absent, unsafe, oversized or unreadable.

    Reads at most `_MAX_BYTES`; the file must be a regular file owned by us
    and not writable by others. Callers still check the shape of each entry
    (`valid_stamps` and their own field checks): a marshal file of the right
    type can hold anything.
    """
    path = _file(kind)
    if path is None:
        return {}
    data = _load_file(path)
    updates = _pending.get(path)
    if updates:
        _apply(data, updates)  # this process's updates not yet written
    return data


def _load_file(path: str) -> "dict[Any, Any]":
    try:
        # O_NONBLOCK: opening a FIFO planted there must not wait for a writer (review F6);
        # the S_ISREG check below then refuses it.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
                     | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return {}
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > _MAX_BYTES:
            return {}
        if os.name != "nt" and (
            st.st_uid not in (os.getuid(), 0) or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
        ):
            return {}
        raw = os.read(fd, _MAX_BYTES + 1)
        payload = _unwrap(raw) if len(raw) <= _MAX_BYTES else None
        if payload is None:
            return {}
        data = marshal.loads(payload)
    except (OSError, EOFError, ValueError, TypeError, MemoryError, RecursionError):
        return {}
    finally:
        os.close(fd)
    return data if isinstance(data, dict) else {}


def _unwrap(raw: bytes) -> "bytes | None":
    """The payload of a cache file if its header and checksum hold, else None.

    marshal trusts a list/dict count and allocates it before reading the items:
    one flipped bit turned a 3 KB file into a 6 GB allocation. A CRC-32 over the
    payload (computed by `_libbroker_warm.crc32`, zlib's polynomial: binascii's shared library
    links libz, and libbroker must not map a libz of its own choosing into the process it
    judges) rejects any such
    corruption before `marshal.loads` sees it. It is no defence against a
    deliberate writer; that is what the owner and mode checks are for.
    """
    if len(raw) < 12 or raw[:4] != _MAGIC:
        return None
    size = int.from_bytes(raw[4:8], "little")
    payload = raw[12:]
    if size != len(payload) or int.from_bytes(raw[8:12], "little") != _crc32(payload):
        return None
    return payload


def _wrap(payload: bytes) -> bytes:
    return _MAGIC + len(payload).to_bytes(4, "little") + _crc32(payload).to_bytes(4, "little") + payload


def store(kind: str, data: "dict[Any, Any]") -> None:
    """Atomically replace the dict stored under *kind*; failures are ignored.

    Pending `update`s of that file are dropped: *data* replaces the whole file (callers
    build it from `load`, which includes them)."""
    path = _file(kind)
    if path is None:
        return
    _pending.pop(path, None)
    _store_file(path, data)


_made: "set[str]" = set()  # cache subdirectories this process made or found


def _write_all(fd: int, payload: bytes) -> None:
    try:
        view = memoryview(payload)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def _store_file(path: str, data: "dict[Any, Any]") -> None:
    # pid and thread: two writers in one process must not share a temporary file.
    tmp = f"{path}.{os.getpid()}.{_thread.get_ident()}.tmp"
    try:
        folder = os.path.dirname(path)
        if folder not in _made:  # once per process: fifty table entries, one directory
            os.makedirs(folder, mode=0o700, exist_ok=True)
            _made.add(folder)
        payload = _wrap(marshal.dumps(data))
        flags = os.O_WRONLY | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
        try:
            # A file that is not there yet is written in place: every reader checks the
            # length and CRC (`_unwrap`), so one that finds it half written sees a cold
            # cache, never a wrong one (the table entries of a first run: no rename each).
            fd = os.open(path, flags | os.O_EXCL, 0o600)
        except FileExistsError:
            fd = -1
        except FileNotFoundError:  # removed since (a cleared cache): made again
            os.makedirs(folder, mode=0o700, exist_ok=True)
            fd = os.open(path, flags | os.O_EXCL, 0o600)
        if fd >= 0:
            _write_all(fd, payload)
            return
        with open(os.open(tmp, flags | os.O_TRUNC, 0o600), "wb") as f:
            f.write(payload)
        # Unlink first: ext4 (auto_da_alloc) flushes the new file to disk when a rename
        # replaces an existing one, milliseconds each time. A reader in between finds
        # no file, which is a cold cache, never a wrong one.
        try:
            os.unlink(path)
        except OSError:
            pass
        os.replace(tmp, path)
    except (OSError, ValueError):
        try:
            os.unlink(tmp)
        except OSError:
            pass


# Write-behind for `update`: file -> [(key, value, limit)] not yet written. A process that
# judges fifty libraries writes each cache file about once, not fifty times (each write is
# a read, a marshal and a rename); `load` overlays them, `flush` (at exit, or on the next
# update after `_WRITE_EVERY`) writes them. Keyed by the file: tests and tools that switch
# LIBBROKER_CACHE_DIR mid-process never write one directory's entries into another.
_pending: "dict[str, list[tuple[object, object, int]]]" = {}
_last_write: "dict[str, float]" = {}
_WRITE_EVERY = 0.25  # seconds
_exit_hook = False


def update(kind: str, key: object, value: object, *, limit: int = 512) -> None:
    """Read-modify-write one entry (last writer wins; entries are independent).

    The first update of a file is written at once; later ones within `_WRITE_EVERY`
    are written together by the next update after it, or at interpreter exit.
    """
    update_many(kind, [(key, value)], limit=limit)


def update_many(kind: str, items: "list[tuple[object, object]]", *, limit: int = 512) -> None:
    """`update` of several entries at once (written together)."""
    global _exit_hook
    path = _file(kind)
    if path is None or not items:
        return
    _pending.setdefault(path, []).extend((key, value, limit) for key, value in items)
    now = time.monotonic()
    if now - _last_write.get(path, -1e9) >= _WRITE_EVERY:
        _flush_file(path, kind)
        _last_write[path] = now
    elif not _exit_hook:
        import atexit

        atexit.register(flush)
        _exit_hook = True


def _apply(data: "dict[Any, Any]", updates: "list[tuple[object, object, int]]") -> None:
    for key, value, limit in updates:
        if len(data) >= limit and key not in data:
            data.clear()  # bounded: a cache that grows forever is worse than a cold lookup
        data[key] = value


def _flush_file(path: str, kind: str) -> None:
    updates = _pending.pop(path, None)
    if not updates:
        return
    data = _load_file(path)
    _apply(data, updates)
    _store_file(path, data)


def flush() -> None:
    """Write every pending `update` (registered with atexit on the first deferred one)."""
    for path in list(_pending):
        _flush_file(path, "")


def typed(value: object, types: "dict[str, object]") -> bool:
    """True when *value* is a dict whose every key of *types* holds an instance of its type(s).

    For the shape checks of entries read back from disk: marshal restores any
    value, and a wrong-typed field must make the entry ignored (and rewritten),
    never raise TypeError in every later process.
    """
    if not isinstance(value, dict):
        return False
    for key, kind in types.items():
        if not isinstance(value.get(key), kind):  # type: ignore[arg-type]
            return False
    return True


def identity(path: str) -> "tuple[int, int, int, int, int, int, int] | None":
    """(device, inode, size, mtime_ns, ctime_ns, mode, uid) of the file behind *path*, or None.

    ctime and mode catch `chmod` (which changes no mtime) and an edit whose
    mtime was restored; one `os.stat`.
    """
    try:
        st = os.stat(path)
    except (OSError, ValueError, TypeError):
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_mode, st.st_uid)


def _place_stamp(path: str) -> "tuple[int, int, int, int] | None":
    """(device, inode, mode, uid) of the entry itself (not following a symlink), or None.

    What a place verdict depends on; mtime is left out on purpose so that
    /tmp or a home directory gaining unrelated files does not void every verdict.
    """
    try:
        st = os.lstat(path)
    except (OSError, ValueError, TypeError):
        return None
    return (st.st_dev, st.st_ino, st.st_mode, st.st_uid)


_ENV_NAMES = ("LIBBROKER_PATH", "LD_LIBRARY_PATH", "CONDA_PREFIX", "LIBBROKER_CONFIG", "HOME",
              "XDG_CONFIG_HOME", "XDG_CACHE_HOME")
_ENV_RAW = tuple(n.encode() for n in _ENV_NAMES)
_env_memo: "list[Any]" = [None, None, None, None]  # raw values, sys.path copy, sys.prefix, key


def env_key() -> "tuple[Any, ...]":
    """The interpreter and environment a cached decision depends on (design.md 5.1).

    On POSIX CPython the variables are read from `os.environ`'s own bytes dict and the
    key is rebuilt only when one of them, `sys.path` or `sys.prefix` changed (the warm
    `find` calls this on every call; `os.environ.get` costs half a microsecond a name).
    """
    data = getattr(os.environ, "_data", None)
    if os.name == "nt" or type(data) is not dict:
        return _env_key()
    a, b, c, d, e, f, g = _ENV_RAW
    raw = (data.get(a), data.get(b), data.get(c), data.get(d), data.get(e), data.get(f), data.get(g))
    memo = _env_memo
    if memo[0] == raw and memo[1] == sys.path and memo[2] == sys.prefix:
        return memo[3]  # type: ignore[no-any-return]
    key = _env_key()
    _env_memo[:] = [raw, list(sys.path), sys.prefix, key]
    return key


def _env_key() -> "tuple[Any, ...]":
    env = os.environ
    return (
        env.get("LIBBROKER_PATH"),
        env.get("LD_LIBRARY_PATH"),
        env.get("CONDA_PREFIX"),
        env.get("LIBBROKER_CONFIG"),
        env.get("HOME"),
        env.get("XDG_CONFIG_HOME"),
        env.get("XDG_CACHE_HOME"),
        sys.prefix,
        tuple(sys.path),
    )


def _current_dir() -> "str | None":
    try:
        return os.path.realpath(os.getcwd())
    except OSError:
        return None


def searched_dirs(search_stamps: "list[Any]") -> "list[str]":
    """The directories a search read: the places listed and the sys.path directories
    whose distributions were scanned ("@site")."""
    dirs = [path for path, _ in search_stamps if isinstance(path, str) and not path.startswith("@")]
    dirs += [stamp[0] for path, stamp in search_stamps
             if path == "@site" and isinstance(stamp, tuple) and len(stamp) == 2]
    return dirs


def _cwd_among(dirs: object) -> "str | None":
    """The current directory if it is one of *dirs* (by real path), else None.

    A directory whose (device, inode) differs from the cwd's cannot have its real
    path: only a match (or a failed stat) pays for `os.path.realpath`.
    """
    if not isinstance(dirs, tuple) or not dirs:
        return None
    try:
        here = os.stat(".")
    except OSError:
        here = None
    # Given again for a second while the cwd is the same directory (as `_api` gives a
    # verdict again): fifty tables judged in one burst share the same searched directories.
    key = (dirs, None if here is None else (here.st_dev, here.st_ino))
    now = time.monotonic()
    hit = _cwd_answers.get(key)
    if hit is not None and now - hit[0] < _RECHECK_SECONDS:
        return hit[1]
    found = _cwd_among_now(dirs, here)
    if len(_cwd_answers) > 256:
        _cwd_answers.clear()
    _cwd_answers[key] = (now, found)
    return found


_cwd_answers: "dict[tuple[Any, ...], tuple[float, str | None]]" = {}
_RECHECK_SECONDS = 1.0


def _cwd_among_now(dirs: "tuple[Any, ...]", here: "os.stat_result | None") -> "str | None":
    cwd: str | None | bool = False  # False: not computed yet
    for d in dirs:
        if not isinstance(d, str) or not os.path.isabs(d):
            continue
        if here is not None:
            try:
                st = os.stat(d)
            except OSError:
                st = None
            if st is not None and (st.st_ino, st.st_dev) != (here.st_ino, here.st_dev):
                continue
        if cwd is False:
            cwd = _current_dir()
            if cwd is None:
                return None
        if os.path.realpath(d) == cwd:
            return cwd
    return None


def cacheable(search_stamps: "list[Any]") -> bool:
    """False when the verdict depended on the current directory (it was one of the places searched).

    Such a directory was refused because it was the cwd; in another cwd it
    would be searched. `decision_stamps` records which searched directory was
    the cwd (none, usually), so a verdict is replayed only in a process whose
    cwd plays the same part: the same answer a fresh search gives there.
    """
    return _cwd_among(tuple(searched_dirs(search_stamps))) is None


def _ancestors(path: str) -> "list[str]":
    """'/', '/a', '/a/b' for '/a/b/c': every directory from the root to *path*'s parent."""
    parts = [p for p in path.split("/") if p]
    return ["/"] + ["/" + "/".join(parts[:i]) for i in range(1, len(parts))]


def decision_stamps(
    search_stamps: "list[Any]",
    closure_paths: "list[str] | str",
    judged: "dict[str, Any] | None" = None,
    *,
    refreshable: bool = False,
) -> "list[Any]":
    """Everything a verdict depends on (design.md 5.1), to be checked by `stamps_valid`.

    *search_stamps*: (directory, `dir_stamp`) of every place searched.
    *closure_paths*: the chosen file and every file of its closure. For each:
    the full `identity` of the file behind it and of its real parent directory,
    the place stamp (device, inode, mode, owner) of every directory and symlink
    from "/" to it, as given and as resolved, plus the config file and the
    current directory's absence from the searched places.
    *judged*: path -> the identity each file had when it was checked; recorded
    instead of a fresh stat, so a file replaced between its checks and this call
    voids the verdict rather than being stamped as the judged file.
    *refreshable*: keep the search's "@site" and "@providers" stamps, so that `refreshed`
    can re-stamp the verdict after a sys.path directory changed (`find` uses it); without
    it a sys.path directory is a plain directory stamp, as before.

    The "@place" stamps are the trace of the place walk itself (`_places.place_trace`):
    every directory from "/", every link of a symlink chain and every directory on the
    way to each link's target (review F8, F11). A file that walk refuses now gets a
    stamp that never holds: its verdict is not replayed (except a copy the closure
    reused because this process had mapped it: no place rule judged that one). The config file's own walk
    (root and us trusted, as `_config` reads it) is stamped too (review F10), and so is
    every directory the closure search looked in before the copies it chose, as plain
    directory stamps, and ld.so.cache when it was read (`_closure.searched_for`, F9).
    """
    if isinstance(closure_paths, str):
        closure_paths = [closure_paths]
    if refreshable:
        stamps = list(search_stamps)
    else:
        # The shape every reader knows (the master's warm path among them): a sys.path
        # directory is a plain directory stamp and the providers seen are not recorded.
        stamps = [(s[1][0], s[1][1]) if s[0] == "@site" else s
                  for s in search_stamps if s[0] != "@providers"]
    config, config_ident = config_stamp()
    stamps.append(("@config", config_ident))
    dirs = tuple(searched_dirs(search_stamps))
    stamps.append(("@cwd", (dirs, _cwd_among(dirs))))
    from ._places import base_uids, place_trace

    seen: set[str] = set()

    def places(trace: "list[tuple[str, object]]") -> None:
        for entry, stamp in trace:
            if entry not in seen:  # the first observation: what the walk judged
                seen.add(entry)
                stamps.append(("@place", (entry, stamp)))

    if config is not None and config_ident is not None and os.name != "nt":
        places(place_trace(config, trusted_uids=base_uids())[1])
    closure = sys.modules.get(__name__.rpartition(".")[0] + "._closure")
    reused = closure.reused_for(closure_paths[0]) if closure is not None and closure_paths else set()
    for given in closure_paths:
        real = realpath(given)
        ident = judged.get(given) if judged else None
        judged_ident = ident if ident is not None else identity(real)
        stamps.append(("@file", (real, judged_ident)))
        if given != real:
            # What the given path resolves to now: a link of the chain removed and recreated
            # (its inode reused, so its "@place" stamp alike) to point elsewhere is caught
            # here. "@input", not "@file": the "@file" stamps are the files the replay maps.
            stamps.append(("@input", (given, judged_ident)))
        parent = os.path.dirname(real)
        stamps.append(("@dir", (parent, identity(parent))))
        reason, trace = place_trace(given)
        if reason is not None and os.name != "nt" and given not in reused:
            # Unsafe now, though judged safe (changed in between): never replayed.
            stamps.append(("@place", (given, _NEVER)))
        places(trace)
        places([(entry, _place_stamp(entry)) for entry in [*_ancestors(real), real]])
    if closure is not None and closure_paths:
        stamps.extend(_closure_searched(closure, closure_paths[0], {s[0] for s in stamps}))
    return stamps


def rejected_stamps(path: str, real: str) -> "list[Any]":
    """What the refusal of the file at *path* (resolved: *real*) rests on, as stamps: a file
    ranked before the chosen one, refused for what it is, its place or its closure, would
    be chosen once any of these changes (review5 F3, review6 N1, N3, N4):

    - its identity ("@input"), or for a name that resolves to nothing (a dangling link)
      the directory its target would appear in;
    - the place walk of *path* ("@place": a `chmod go-w` of a directory on the way);
    - the directories its closure search looked in and the files it read (a missing
      dependency installed later), when this process resolved its closure.
    """
    stamps: list[Any] = []
    ident = identity(path)
    if ident is not None:
        stamps.append(("@input", (path, ident)))
    else:
        target_dir = os.path.dirname(real)
        stamps.append((target_dir, dir_stamp(target_dir)))
    if os.name != "nt":
        from ._places import place_trace

        stamps.extend(("@place", (entry, stamp)) for entry, stamp in place_trace(path)[1])
    closure = sys.modules.get(__name__.rpartition(".")[0] + "._closure")
    if closure is not None:
        stamps.extend(_closure_searched(closure, path, set()))
    return stamps


_NEVER = "unsafe when stamped"  # a "@place" stamp no (device, inode, mode, owner) tuple equals


def _closure_searched(closure: "Any", path: str, known: "set[object]") -> "list[Any]":
    """Plain directory stamps of the directories the closure search of *path* looked in
    before the copies it chose, and "@input" stamps of the files it read to choose
    (*closure*: the `_closure` module, imported only if this process resolved a closure)."""
    directories, inputs = closure.searched_for(path)
    stamps: list[Any] = [(d, dir_stamp(d)) for d in directories if d not in known]
    stamps += [("@input", (f, identity(f))) for f in inputs]
    return stamps


def executable_dir() -> str:
    """The running executable's directory, resolved (what ld.so expands ``$ORIGIN`` to in
    ``LD_LIBRARY_PATH``); "" when neither /proc/self/exe nor sys.executable says."""
    try:
        return os.path.dirname(os.path.realpath("/proc/self/exe")) if os.path.exists(
            "/proc/self/exe") else os.path.dirname(os.path.realpath(sys.executable or ""))
    except OSError:
        return ""


def stamps_valid(stamps: object) -> bool:
    """True while every input recorded by `decision_stamps` is unchanged.

    Never raises: an entry of the wrong shape (corrupt or foreign cache) is
    simply not valid.
    """
    if not isinstance(stamps, list):
        return False
    try:
        for path, stamp in stamps:
            if path == "@config":
                # A config "file" that is a FIFO or device is refused when read; never replay
                # a verdict past that refusal.
                if stamp != config_stamp()[1] or (stamp is not None and not stat.S_ISREG(stamp[5])):
                    return False
            elif path == "@file" or path == "@dir" or path == "@input":
                real, ident = stamp
                if ident is None or identity(real) != ident:
                    return False
            elif path == "@place":
                entry, ident = stamp
                if _place_stamp(entry) != ident:
                    return False
            elif path == "@site":
                entry, ident = stamp
                if dir_stamp(entry) != ident:
                    return False
            elif path == "@providers":
                pass  # what the provider scan saw: compared by `refreshed`, never here
            elif path == "@cwd":
                dirs, among = stamp
                if _cwd_among(dirs) != among:
                    return False
            elif path == "@origin":
                # $ORIGIN in LD_LIBRARY_PATH is the executable's directory (review4 R4-6):
                # another program with the same environment text searched elsewhere.
                if executable_dir() != stamp:
                    return False
            elif not isinstance(path, str) or dir_stamp(path) != stamp:
                return False
    except (TypeError, ValueError):
        return False
    return True


def refreshed(stamps: object, snapshot: "Callable[[], object]") -> "list[Any] | None":
    """*stamps* with fresh "@site" stamps when they alone fail and the provider entry
    points seen now (*snapshot*, `_discovery.provider_snapshot`) are those recorded
    ("@providers"); else None. A `pip install` changes its site directory, but a verdict
    depends on that directory only through the providers found there: a distribution
    that provides nothing leaves the verdict as true as it was (issue 11). Manifests
    and RECORDs stay "@input" stamps, checked as always.
    """
    if not isinstance(stamps, list):
        return None
    fresh: list[Any] = []
    recorded: object = None
    stale = False
    try:
        for item in stamps:
            path, stamp = item
            if path == "@site":
                entry, ident = stamp
                now = dir_stamp(entry)
                if now != ident:
                    stale = True
                    item = ("@site", (entry, now))
            elif path == "@providers":
                recorded = stamp
            elif not stamps_valid([item]):
                return None
            fresh.append(item)
    except (TypeError, ValueError):
        return None
    if not stale or recorded is None or snapshot() != recorded:
        return None
    return fresh


def dir_stamp(path: str) -> object:
    """A search directory's (inode, mtime, ctime, mode, owner), or -1 when it does not exist.

    ctime, mode and owner catch `chmod`/`chown`, which change no mtime.
    """
    try:
        st = os.stat(path)
    except (OSError, ValueError, TypeError):
        return -1
    return (st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_mode, st.st_uid)


_config_paths: "dict[tuple[str | None, str | None], str | None]" = {}

# path -> (when, os.path.realpath(path)): given again for a second (`_RECHECK_SECONDS`, as
# verdicts are). One judgement resolves the same library path a dozen times (the resolver,
# the closure, the stamps, the table entry), each an lstat per component. The loader keeps
# its own exact realpath: what it maps is the file it opens, fstat-ed against the judged
# identity (design.md 5.1), so an answer a second old can refuse a swapped file, never map it.
_real_answers: "dict[str, tuple[float, str]]" = {}


def realpath(path: str) -> str:
    """`os.path.realpath(path)`, given again for a second (see `_real_answers`)."""
    now = time.monotonic()
    hit = _real_answers.get(path)
    if hit is not None and now - hit[0] < _RECHECK_SECONDS:
        return hit[1]
    real = os.path.realpath(path)
    if len(_real_answers) > 4096:
        _real_answers.clear()
    _real_answers[path] = (now, real)
    return real


# The config file's location lives here, not in _config, so that validating a
# cached decision (which depends on the file) imports nothing more.
def config_path() -> "str | None":
    """$LIBBROKER_CONFIG, else `platformdirs.user_config_dir("libbroker")/config.toml`.

    None when there is no absolute location (no home, or a relative override):
    a config file relative to the current directory would let a project
    directory pin an attacker's library.
    """
    override = os.environ.get("LIBBROKER_CONFIG")
    if override:
        return override if os.path.isabs(override) else None
    if sys.platform.startswith("linux"):
        # A pure function of two variables (and the password database without HOME):
        # remembered per their values, as a search asks it for every place it checks.
        key = (os.environ.get("XDG_CONFIG_HOME"), os.environ.get("HOME"))
        if key[1] and key in _config_paths:
            return _config_paths[key]
        # Same XDG rule as platformdirs.user_config_dir (checked by the tests),
        # without importing it on the warm path.
        base = _xdg("XDG_CONFIG_HOME", ".config")
        found = os.path.join(base, "libbroker", "config.toml") if base else None
        if key[1]:
            if len(_config_paths) > 16:
                _config_paths.clear()
            _config_paths[key] = found
        return found
    import platformdirs

    return os.path.join(platformdirs.user_config_dir("libbroker", appauthor=False), "config.toml")


def config_stamp() -> "tuple[str | None, tuple[Any, ...] | None]":
    """The config file's path and identity (None when absent): a cached decision depends on both."""
    path = config_path()
    if path is None:
        return (None, None)
    return (path, identity(path))
