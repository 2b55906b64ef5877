"""macOS: how dyld finds a dylib, as pure functions of the facts passed in.

Sources of the rules (Apple's, not ours): the dyld(1) and dlopen(3) manual pages
of macOS 12 and later, and dyld's own source (``ProcessConfig``'s
``PathOverrides``: the default fallback list and the restricted-process mode).
In short, for an install name read from ``LC_LOAD_DYLIB`` or given to
``dlopen``:

1. ``DYLD_LIBRARY_PATH``: the leaf name in each directory, first;
2. the install name itself, after expanding ``@executable_path`` (the main
   program's directory), ``@loader_path`` (the directory of the image holding
   the load command) and ``@rpath`` (each ``LC_RPATH`` of the loading image, then
   of the image that loaded it, up to the main program; an ``LC_RPATH`` may use
   ``@loader_path``, which then means the image holding *that* ``LC_RPATH``);
3. ``DYLD_FALLBACK_LIBRARY_PATH``: the leaf name again, in each directory
   (default ``/usr/local/lib:/usr/lib``).

Since macOS 11 the system libraries (``/usr/lib/libz.1.dylib``,
``/System/Library/Frameworks/...``) exist only inside the dyld shared cache:
there is no file to read, dyld serves the path from the cache. libbroker
recognises them by name (a path under ``/usr/lib/`` or ``/System/``) and checks
them by loading (``dlopen`` of the install name).

Restricted processes (SIP-protected programs such as ``/usr/bin/python3``,
setuid programs, hardened-runtime programs without the
``allow-dyld-environment-variables`` entitlement) see no ``DYLD_*`` variable:
dyld removes them, and the fallback list is ``/usr/lib`` only.

libbroker is stricter than dyld in one way: an empty or relative entry (which
dyld would take relative to the current directory) is never used; such entries
are returned as refusals so the caller can say why.

Nothing here touches the file system except through the ``exists`` callable a
caller passes, so every rule is tested on any host.
"""

from __future__ import annotations

import posixpath

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

__all__ = [
    "DEFAULT_FALLBACK",
    "RESTRICTED_FALLBACK",
    "Resolution",
    "dependency_candidates",
    "dyld_paths",
    "is_sip_protected",
    "is_system_install_name",
    "link_name_of",
    "matches_link_name",
    "resolve_dependency",
    "rpath_directories",
    "search_directories",
    "shared_cache_candidates",
    "version_from_filename",
]

# dyld's default DYLD_FALLBACK_LIBRARY_PATH (dyld(1), macOS 12+; the "$HOME/lib"
# entry of older releases is gone), and the one restricted processes get.
DEFAULT_FALLBACK = ("/usr/local/lib", "/usr/lib")
RESTRICTED_FALLBACK = ("/usr/lib",)

# Where the operating system's own libraries live: in the dyld shared cache
# (macOS 11+), possibly without a file on disk. Also the wheel policy's
# allow-list for `libbroker wrap` (delocate's rule: what is under these is
# never bundled).
SYSTEM_PREFIXES = ("/usr/lib/", "/System/")

# Locations covered by System Integrity Protection (/System/Library/Sandbox/
# rootless.conf): programs there are restricted, so dyld ignores DYLD_*.
# /usr/local is the exception carved out for users.
_SIP_PREFIXES = ("/System/", "/usr/", "/bin/", "/sbin/")
_SIP_EXCEPTIONS = ("/usr/local/",)

# Package managers' library directories, in the order libbroker searches them:
# Homebrew's prefix for the interpreter's architecture first (/opt/homebrew on
# Apple silicon, /usr/local on Intel), then the other one (its libraries are
# rejected by the architecture check, with the reason), then MacPorts.
_HOMEBREW = {"arm64": ("/opt/homebrew/lib", "/usr/local/lib"), "x86_64": ("/usr/local/lib", "/opt/homebrew/lib")}
_MACPORTS = "/opt/local/lib"


# --- file names ---------------------------------------------------------------


def link_name_of(filename: str) -> str | None:
    """"z" for ``libz.dylib`` or ``libz.<digits>[.<digits>...].dylib``; None otherwise.

    A name containing a directory is judged by its last component, so an
    install name (``@rpath/libfoo.1.dylib``) gives its link name too.
    """
    base = posixpath.basename(filename)
    if not base.startswith("lib") or not base.endswith(".dylib"):
        return None
    stem = base[3 : -len(".dylib")]
    # The version part is the longest run of ".<digits>" groups at the end.
    parts = stem.split(".")
    while len(parts) > 1 and parts[-1].isdigit() and parts[-1].isascii():
        parts.pop()
    name = ".".join(parts)
    return name or None


def matches_link_name(filename: str, name: str) -> bool:
    """True when *filename* is ``lib<name>.dylib`` or ``lib<name>.<N...>.dylib``.

    Checked against *name* itself, so a name with dots (``python3.12``) matches
    ``libpython3.12.dylib``, which `link_name_of` alone would read as
    ``python3`` version 12.
    """
    if filename == name:
        return True
    base = posixpath.basename(filename)
    head = f"lib{name}"
    if not name or not base.startswith(head) or not base.endswith(".dylib"):
        return False
    middle = base[len(head) : -len(".dylib")]
    return middle == "" or (middle[0] == "." and all(p.isdigit() and p.isascii() for p in middle[1:].split(".")))


def version_from_filename(filename: str) -> str | None:
    """``libz.1.2.13.dylib`` -> "1.2.13"; None for a bare major (``libz.1.dylib``).

    As on Linux, one number is an ABI major, not a product version; the caller
    decides whether this library's file names carry its product version at all.
    """
    name = link_name_of(filename)
    if name is None:
        return None
    stem = posixpath.basename(filename)[3 + len(name) : -len(".dylib")]
    numbers = stem.lstrip(".").split(".")
    if len(numbers) >= 2 and all(n.isdigit() for n in numbers):
        return ".".join(numbers)
    return None


def is_system_install_name(path: str) -> bool:
    """True for ``/usr/lib/...`` and ``/System/...``: the OS's own libraries.

    These may live only in the dyld shared cache (macOS 11+): recognised by
    name, checked by loading. ``/usr/local/lib`` is not a system location.
    """
    return path.startswith(SYSTEM_PREFIXES)


def shared_cache_candidates(name: str) -> list[str]:
    """Install names to try by loading for link name *name* when ``/usr/lib`` has no file.

    ``lib<name>.dylib`` is the unversioned alias the shared cache keeps for each
    public library (``/usr/lib/libz.dylib``, ``/usr/lib/libsqlite3.dylib``); a
    ``dlopen`` of it either maps the cached image or fails, which is the check.
    """
    if not name or "/" in name or name.startswith("."):
        return []
    return [f"/usr/lib/lib{name}.dylib"]


# --- the environment dyld honours -------------------------------------------------


def is_sip_protected(executable: str) -> bool:
    """True when *executable* lies in a SIP-protected location (``/usr/bin/python3``).

    dyld purges ``DYLD_*`` from such a process (and the kernel from any
    process started through a protected program such as ``/bin/sh``), so those
    variables never steer its loads.
    """
    path = posixpath.normpath(executable)
    if path.startswith(_SIP_EXCEPTIONS):
        return False
    return path.startswith(_SIP_PREFIXES)


def _split(value: str | None) -> tuple[list[str], list[str]]:
    """(absolute entries, refused entries) of a colon-separated list."""
    used: list[str] = []
    refused: list[str] = []
    if value is None:
        return used, refused
    for entry in value.split(":"):
        if entry.startswith("/"):
            if entry not in used:
                used.append(entry)
        else:
            refused.append(entry)  # "" or relative: dyld would use the current directory
    return used, refused


def dyld_paths(env: Mapping[str, str], *, restricted: bool) -> dict[str, list[str]]:
    """The search lists dyld uses in a process with environment *env*.

    Returns ``{"DYLD_LIBRARY_PATH": [...], "DYLD_FALLBACK_LIBRARY_PATH": [...],
    "refused": [...]}``: absolute directories in order, and the entries
    libbroker refuses (empty or relative ones, prefixed with the variable's
    name). *restricted*: the process is restricted (SIP, setuid, hardened
    runtime): ``DYLD_*`` are ignored and the fallback is ``/usr/lib`` only.
    An empty ``DYLD_FALLBACK_LIBRARY_PATH`` counts as unset, as in dyld.
    """
    if restricted:
        return {"DYLD_LIBRARY_PATH": [], "DYLD_FALLBACK_LIBRARY_PATH": list(RESTRICTED_FALLBACK), "refused": []}
    first, refused_first = _split(env.get("DYLD_LIBRARY_PATH") or None)
    fallback_value = env.get("DYLD_FALLBACK_LIBRARY_PATH") or None
    fallback, refused_fallback = _split(fallback_value)
    if fallback_value is None:
        fallback = list(DEFAULT_FALLBACK)
    refused = [f"DYLD_LIBRARY_PATH entry {e!r}" for e in refused_first]
    refused += [f"DYLD_FALLBACK_LIBRARY_PATH entry {e!r}" for e in refused_fallback]
    return {"DYLD_LIBRARY_PATH": first, "DYLD_FALLBACK_LIBRARY_PATH": fallback, "refused": refused}


def search_directories(
    *,
    env: Mapping[str, str],
    restricted: bool,
    sys_prefix: str,
    conda_prefix: str | None,
    machine: str,
) -> list[tuple[str, str, str]]:
    """Directories searched for a link name on macOS, in order: ``(dir, origin, how)``.

    *origin* is ``"environment"`` (``sys.prefix/lib``, conda's prefix only when
    it is the running interpreter's prefix: design.md 5.1) or ``"system"``
    (``DYLD_LIBRARY_PATH``, ``DYLD_FALLBACK_LIBRARY_PATH`` or its default,
    Homebrew, MacPorts). *machine* is the interpreter's architecture
    (``"arm64"`` or ``"x86_64"``), which decides Homebrew's order. Each
    directory appears once, at its first place. Files only in the shared cache
    are not found here: see `shared_cache_candidates`.
    """
    out: list[tuple[str, str, str]] = []
    seen: set[str] = set()

    def add(directory: str, origin: str, how: str) -> None:
        key = posixpath.normpath(directory)
        if directory.startswith("/") and key not in seen:
            seen.add(key)
            out.append((key, origin, how))

    add(posixpath.join(sys_prefix, "lib"), "environment", "sys.prefix")
    if conda_prefix and posixpath.normpath(conda_prefix) == posixpath.normpath(sys_prefix):
        add(posixpath.join(conda_prefix, "lib"), "environment", "CONDA_PREFIX")
    paths = dyld_paths(env, restricted=restricted)
    for directory in paths["DYLD_LIBRARY_PATH"]:
        add(directory, "system", "DYLD_LIBRARY_PATH")
    for directory in paths["DYLD_FALLBACK_LIBRARY_PATH"]:
        add(directory, "system", "DYLD_FALLBACK_LIBRARY_PATH")
    for directory in _HOMEBREW.get(machine, _HOMEBREW["arm64"]):
        add(directory, "system", "Homebrew")
    add(_MACPORTS, "system", "MacPorts")
    return out


# --- @rpath, @loader_path, @executable_path --------------------------------------


def _expand_at(path: str, *, loader_dir: str, executable_dir: str) -> str | None:
    """Expand a leading ``@loader_path``/``@executable_path``; None for anything else relative."""
    for token, base in (("@loader_path", loader_dir), ("@executable_path", executable_dir)):
        if path == token or path.startswith(token + "/"):
            return posixpath.normpath(base + path[len(token) :])
    if path.startswith("/"):
        return posixpath.normpath(path)
    return None


def rpath_directories(
    chain: Sequence[tuple[str, Sequence[str]]], *, executable: str
) -> tuple[list[tuple[str, str]], list[str]]:
    """The directories ``@rpath`` stands for, in dyld's order.

    *chain* is ``[(image path, its LC_RPATH entries), ...]`` starting with the
    image whose load command is being resolved, then the image that loaded it,
    and so on up to the main program. Returns ``([(directory, how), ...],
    refused)``: *how* names the ``LC_RPATH`` and its image; refused are
    entries dyld would take relative to the current directory (or with an
    unknown ``@`` token), which libbroker never uses.
    """
    executable_dir = posixpath.dirname(executable)
    dirs: list[tuple[str, str]] = []
    refused: list[str] = []
    for image, rpaths in chain:
        for rpath in rpaths:
            expanded = _expand_at(rpath, loader_dir=posixpath.dirname(image), executable_dir=executable_dir)
            if expanded is None:
                refused.append(f"LC_RPATH {rpath!r} of {image} (relative: never searched)")
            elif all(d != expanded for d, _ in dirs):
                dirs.append((expanded, f"LC_RPATH {rpath!r} of {image}"))
    return dirs, refused


def dependency_candidates(
    install_name: str,
    *,
    chain: Sequence[tuple[str, Sequence[str]]],
    executable: str,
    env: Mapping[str, str],
    restricted: bool,
) -> tuple[list[tuple[str, str]], list[str]]:
    """Every path dyld would try for *install_name*, in order: ``([(path, how)], refused)``.

    *chain*: see `rpath_directories` (its first image is the one whose
    ``LC_LOAD_DYLIB`` names *install_name*: ``@loader_path`` is its directory).
    *executable*: the main program (``sys.executable``'s real path).
    *restricted*: see `dyld_paths`. A bare leaf name (no ``/``) is looked up in
    the ``DYLD_*`` lists only: dyld would also try the current directory,
    which libbroker never does (it is listed in refused).
    """
    paths = dyld_paths(env, restricted=restricted)
    refused = list(paths["refused"])
    leaf = posixpath.basename(install_name)
    out: list[tuple[str, str]] = []

    def add(path: str, how: str) -> None:
        if all(p != path for p, _ in out):
            out.append((path, how))

    for directory in paths["DYLD_LIBRARY_PATH"]:
        add(posixpath.join(directory, leaf), f"DYLD_LIBRARY_PATH {directory}")
    loader = chain[0][0] if chain else executable
    if install_name.startswith("@rpath/"):
        dirs, rpath_refused = rpath_directories(chain, executable=executable)
        refused += rpath_refused
        rest = install_name[len("@rpath/") :]
        for directory, how in dirs:
            add(posixpath.normpath(posixpath.join(directory, rest)), f"@rpath: {how}")
    elif "/" in install_name:
        expanded = _expand_at(
            install_name, loader_dir=posixpath.dirname(loader), executable_dir=posixpath.dirname(executable)
        )
        if expanded is None:
            refused.append(f"install name {install_name!r} (relative: never searched)")
        elif install_name.startswith("@loader_path"):
            add(expanded, f"@loader_path = {posixpath.dirname(loader)}")
        elif install_name.startswith("@executable_path"):
            add(expanded, f"@executable_path = {posixpath.dirname(executable)}")
        else:
            add(expanded, "install name")
    else:
        refused.append(f"{install_name!r} in the current directory (never searched)")
    for directory in paths["DYLD_FALLBACK_LIBRARY_PATH"]:
        add(posixpath.join(directory, leaf), f"DYLD_FALLBACK_LIBRARY_PATH {directory}")
    return out, refused


class Resolution:
    """Where one install name resolves: ``.path`` (or None), ``.how``, ``.tried``, ``.refused``.

    ``.shared_cache`` is True when no file was found but the name is a system
    install name, which dyld serves from its shared cache: the caller confirms
    it by loading ``.path`` (the install name itself).
    """

    __slots__ = ("how", "install_name", "path", "refused", "shared_cache", "tried")

    def __init__(self, install_name: str) -> None:
        self.install_name = install_name
        self.path: str | None = None
        self.how = ""
        self.shared_cache = False
        self.tried: list[str] = []
        self.refused: list[str] = []

    def __repr__(self) -> str:
        return f"<Resolution {self.install_name!r} -> {self.path!r} ({self.how})>"


def resolve_dependency(
    install_name: str,
    *,
    chain: Sequence[tuple[str, Sequence[str]]],
    executable: str,
    env: Mapping[str, str],
    restricted: bool,
    exists: Callable[[str], bool],
) -> Resolution:
    """The first path of `dependency_candidates` for which *exists* is true.

    When none exists and the install name is a system one (``/usr/lib/...``,
    ``/System/...``), the result is the install name with ``.shared_cache``
    set: dyld serves it from the shared cache, and only loading can tell
    whether it is really there.
    """
    result = Resolution(install_name)
    candidates, result.refused = dependency_candidates(
        install_name, chain=chain, executable=executable, env=env, restricted=restricted
    )
    for path, how in candidates:
        result.tried.append(path)
        if exists(path):
            result.path, result.how = path, how
            return result
    if is_system_install_name(install_name):
        result.path, result.how, result.shared_cache = install_name, "dyld shared cache", True
    return result
