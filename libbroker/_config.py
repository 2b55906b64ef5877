"""The user configuration file: overrides for distributors and users.

Location: ``platformdirs.user_config_dir("libbroker")/config.toml``, or the file
named by $LIBBROKER_CONFIG; none at all without an absolute home directory.
The file is read only when it is owned by the current user or root and
neither it nor any directory above it is writable by others; otherwise it is
ignored with a `BrokerWarning` (a file others can write could pin their
library). Its size and TOML nesting are bounded. Format (docs/configuration.md)::

    search-paths = ["/opt/mylibs/lib"]   # searched right after LIBBROKER_PATH

    trusted-owners = ["softadm"]         # extra owners of library places (docs/security.md)

    isolation = "deepbind"               # RTLD_DEEPBIND when a global copy would interpose

    windows-path = true                  # Windows: search PATH too, last (default false)

    [libraries.z]                        # keyed by link name
    path = "/opt/zlib/lib/libz.so.1"     # pin: this file, nothing else
    prefer = "system"                    # or "environment", "provider", "package"
"""

from __future__ import annotations

import os
import stat
import sys

from ._cache import config_path, config_stamp
from ._errors import SpecError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

PREFER_CHOICES = ("provider", "package", "environment", "system")
MAX_TOML_BYTES = 1 << 20  # a config file or manifest is a few hundred bytes
# (path, identity) -> the parsed config and the place trace of its walk (`_places.place_trace`):
# reused only while every entry of that trace is unchanged (a directory on the way that became
# writable by others makes a fresh read refuse the file, review F10).
_parsed: dict[tuple[str | None, object], tuple[Config, list[tuple[str, object]]]] = {}
_warned: set[tuple[str | None, object]] = set()


class Config:
    """The parsed config file. `ignored` is the reason an existing file was not used."""

    __slots__ = (
        "exists", "ignored", "isolation", "path", "pins", "prefer", "search_paths", "trusted_uids",
        "windows_path",
    )

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.exists = False
        self.search_paths: list[str] = []
        self.pins: dict[str, str] = {}
        self.prefer: dict[str, str] = {}
        self.trusted_uids: frozenset[int] = frozenset()
        self.ignored: str | None = None
        # design.md 5.1: "private" refuses a library whose exports a global-scope copy
        # defines; "deepbind" loads it with RTLD_DEEPBIND instead.
        self.isolation = "private"
        # Windows: PATH is searched for libraries (last, after the system directory)
        # only when the user asks; the loader's safe flags never read it.
        self.windows_path = False


CONFIG_FIX = ("make it a file you own that no one else can write (chown, chmod 600) in a directory "
              "only root or you can write, or set LIBBROKER_CONFIG to such a file")


def load_config() -> Config:
    stamp = config_stamp()
    cached = _parsed.get(stamp)
    if cached is not None and _places_hold(cached[1]):
        return cached[0]
    path = stamp[0]
    trace: list[tuple[str, object]] = []
    if path is None or stamp[1] is None:
        config = Config(path)
    else:
        _require_regular(path)
        reason = _unsafe_config(path, trace)
        if reason is None:
            config = _parse(path)
        else:
            config = Config(path)
            config.ignored = reason
            if stamp not in _warned:
                _warned.add(stamp)
                import warnings

                from ._cache import without_fix
                from ._errors import BrokerWarning

                # Its own fix: trusted-owners and "move the library" never apply to the config file.
                warnings.warn(
                    f"libbroker ignores the config file {path!r}: {without_fix(reason)}; fix: "
                    f"{CONFIG_FIX}",
                    BrokerWarning,
                    stacklevel=_caller_level(),
                )
    _parsed.clear()
    _parsed[stamp] = (config, trace)
    return config


def _caller_level() -> int:
    """The `warnings.warn` stacklevel naming the first frame outside libbroker: the config is
    read from many depths (find, a table import, a place check), and a warning attributed to
    a libbroker line tells the user nothing about which of their calls read it."""
    package = os.path.dirname(os.path.abspath(__file__)) + os.sep
    frame = sys._getframe(1)  # load_config
    level = 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package):
        frame = frame.f_back  # type: ignore[assignment]
        level += 1
    return level


def _places_hold(trace: list[tuple[str, object]]) -> bool:
    """True while every entry the config file's place walk inspected is unchanged."""
    from ._cache import _place_stamp

    return all(_place_stamp(entry) == stamp for entry, stamp in trace)


def _require_regular(path: str) -> None:
    """SpecError unless the config file is a regular file (stat only: a FIFO is never opened)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return  # gone since config_stamp: read as absent by the caller's next call
    if not stat.S_ISREG(mode):
        # The fix names what the user can do (review4 R4-3): LIBBROKER_CONFIG only when set.
        fix = ("set LIBBROKER_CONFIG to a regular file, or unset it" if os.environ.get("LIBBROKER_CONFIG")
               else f"remove {path!r} or replace it with a regular TOML file (or set LIBBROKER_CONFIG "
                    "to one)")
        raise SpecError(
            f"the libbroker config file is {_file_kind(mode)}, expected a regular TOML file; fix: {fix}",
            path=path,
        )


def _unsafe_config(path: str, trace: list[tuple[str, object]] | None = None) -> str | None:
    """Why the config file may not be trusted: place rules with root and the current user only.

    *trace*, when given, receives what the walk inspected (`_places.place_trace`)."""
    if os.name == "nt":  # pragma: no cover - no POSIX owners
        return None
    from ._places import base_uids, place_trace

    reason, inspected = place_trace(path, trusted_uids=base_uids())
    if trace is not None:
        trace.extend(inspected)
    return reason


def _file_kind(mode: int) -> str:
    """What a non-regular file is, for messages ("a FIFO (named pipe)", "a character device")."""
    for test, kind in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "not a regular file"


def load_toml(path: str, what: str) -> dict[Any, Any]:
    """Parse a small TOML file (config, provider manifest) with bounded size and nesting.

    Raises SpecError naming *path* for unreadable, oversized, non-UTF-8, invalid
    or too deeply nested input (tomllib recurses per nesting level; the
    RecursionError it would raise is turned into a clear message).
    """
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib

    try:
        # O_NONBLOCK: a FIFO must not block the open until a writer appears (review F2);
        # anything but a regular file is refused on the open file, before one byte is read.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise SpecError(f"cannot read the {what}: {exc}", path=path) from exc
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = _file_kind(mode)
            raise SpecError(
                f"the {what} is {kind}, expected a regular TOML file; fix: point it at a "
                "regular file (or remove the setting that names this path)",
                path=path,
            )
        with open(fd, "rb", closefd=False) as f:
            raw = f.read(MAX_TOML_BYTES + 1)
    except OSError as exc:
        raise SpecError(f"cannot read the {what}: {exc}", path=path) from exc
    finally:
        os.close(fd)
    if len(raw) > MAX_TOML_BYTES:
        raise SpecError(
            f"the {what} is larger than {MAX_TOML_BYTES} bytes; expected a small TOML file",
            path=path,
        )
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise SpecError(
            f"the {what} is not UTF-8 text (TOML requires UTF-8): {exc}", path=path
        ) from exc
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"invalid TOML in the {what}: {exc}", path=path) from exc
    except (RecursionError, MemoryError):
        raise SpecError(
            f"the {what} nests arrays or tables too deeply to parse; expected a flat file "
            f"of a few levels",
            path=path,
        ) from None


def _refuse_nul(value: object, path: str, where: str) -> None:
    """A NUL character (TOML ``\u0000``) in any key or string: no path, user name or
    library name can hold one, and the OS would refuse it later with a bare ValueError
    (review5 F13)."""
    if isinstance(value, str):
        if "\0" in value:
            raise SpecError(f"{where or 'a value'} contains a NUL character (\\u0000), which no "
                            f"path or name can hold: {value!r}; fix: remove it", path=path)
    elif isinstance(value, dict):
        for key, item in value.items():
            _refuse_nul(key, path, f"the key {where + '.' if where else ''}{key!r}")
            _refuse_nul(item, path, f"{where + '.' if where else ''}{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _refuse_nul(item, path, f"{where}[{i}]")


def _parse(path: str) -> Config:
    config = Config(path)
    data = load_toml(path, "libbroker config file")
    _refuse_nul(data, path, "")
    config.exists = True
    known = {"search-paths", "libraries", "trusted-owners", "isolation", "windows-path"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise SpecError(
            f"unknown key(s) {unknown!r} in the libbroker config file; expected only "
            f"{sorted(known)!r}",
            path=path,
        )
    paths = data.get("search-paths", [])
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        raise SpecError(
            f"'search-paths' must be a list of directory strings, found {paths!r}", path=path
        )
    config.search_paths = [os.path.expanduser(p) for p in paths]
    for entry in config.search_paths:
        if not os.path.isabs(entry):
            raise SpecError(
                f"'search-paths' entry {entry!r} is not absolute; a relative entry would mean "
                f"the current directory, which libbroker never searches",
                path=path,
            )
    config.trusted_uids = _trusted_owners(data.get("trusted-owners", []), path)
    isolation = data.get("isolation", "private")
    if isolation not in ("private", "deepbind"):
        raise SpecError(
            f"'isolation' must be \"private\" or \"deepbind\", found {isolation!r}", path=path
        )
    config.isolation = isolation
    windows_path = data.get("windows-path", False)
    if not isinstance(windows_path, bool):
        raise SpecError(
            f"'windows-path' must be true or false, found {windows_path!r}", path=path
        )
    config.windows_path = windows_path
    libraries = data.get("libraries", {})
    if not isinstance(libraries, dict):
        raise SpecError(f"[libraries] must be a table, found {libraries!r}", path=path)
    for name, entry in libraries.items():
        if not isinstance(entry, dict):
            raise SpecError(f"[libraries.{name}] must be a table, found {entry!r}", path=path)
        extra = sorted(set(entry) - {"path", "prefer"})
        if extra:
            raise SpecError(
                f"unknown key(s) {extra!r} in [libraries.{name}]; expected 'path' or 'prefer'",
                path=path,
            )
        if "path" in entry:
            pin = entry["path"]
            if not isinstance(pin, str) or not os.path.isabs(os.path.expanduser(pin)):
                raise SpecError(
                    f"[libraries.{name}] path must be an absolute file path, found {pin!r}",
                    path=path,
                )
            config.pins[name] = os.path.expanduser(pin)
        if "prefer" in entry:
            prefer = entry["prefer"]
            if prefer not in PREFER_CHOICES:
                raise SpecError(
                    f"[libraries.{name}] prefer must be one of {list(PREFER_CHOICES)!r}, "
                    f"found {prefer!r}",
                    path=path,
                )
            config.prefer[name] = prefer
    return config


def _trusted_owners(owners: object, path: str) -> frozenset[int]:
    """`trusted-owners`: user names or uids whose files and directories count as safe places."""
    if not isinstance(owners, list) or not all(isinstance(o, (str, int)) for o in owners):
        raise SpecError(
            f"'trusted-owners' must be a list of user names or uids, found {owners!r}", path=path
        )
    uids: set[int] = set()
    for owner in owners:
        if isinstance(owner, int) and not isinstance(owner, bool) and owner >= 0:
            uids.add(owner)
            continue
        try:
            import pwd

            uids.add(pwd.getpwnam(str(owner)).pw_uid)
        except (ImportError, KeyError):
            raise SpecError(
                f"'trusted-owners' names {owner!r}, which is not a user on this system; "
                f"fix: give an existing user name or a uid",
                path=path,
            ) from None
    return frozenset(uids)


def config_summary() -> dict[str, object]:
    """The configuration in force, for `doctor` and `report()`."""
    summary: dict[str, object] = {
        "LIBBROKER_PATH": os.environ.get("LIBBROKER_PATH", ""),
        "config_file": config_path(),
    }
    try:
        config = load_config()
    except SpecError as exc:
        summary.update(config_exists=True, config_error=str(exc))
        return summary
    summary.update(
        config_exists=config.exists or bool(config.ignored),  # an ignored file exists too
        search_paths=list(config.search_paths),
        pins=dict(config.pins),
        prefer=dict(config.prefer),
        trusted_owners=sorted(config.trusted_uids),
    )
    if config.ignored:
        # Owned or writable by others (docs/security.md), with the config file's own fix (the
        # place rule's is written for a library file), as the BrokerWarning says it.
        from ._cache import without_fix

        summary["config_ignored"] = (
            f"{without_fix(config.ignored)}; fix: {CONFIG_FIX}")
    from ._cache import cache_dir, usable_dir

    summary["cache_dir"] = cache_dir()
    if cache_dir() is not None and usable_dir() is None:
        summary["cache_ignored"] = True  # unsafe directory: see the BrokerWarning
    return summary
