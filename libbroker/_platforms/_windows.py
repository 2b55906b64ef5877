"""Windows search policy: DLL names, search places, and the loader's dependency search.

libbroker loads a DLL with ``LoadLibraryExW(absolute path, NULL,
LOAD_LIBRARY_SEARCH_DLL_LOAD_DIR | LOAD_LIBRARY_SEARCH_DEFAULT_DIRS)``. Microsoft's
"Dynamic-link library search order" (the section on LOAD_LIBRARY_SEARCH flags)
says how each *dependency* named in an import table is then found, in order:

1. API sets (``api-ms-win-*``, ``ext-ms-win-*``): virtual names the loader maps
   through its schema; no file of that name is ever searched for.
2. The loaded-module list: a module with the same base name already in the
   process is used, whatever directory it came from.
3. KnownDLLs (``HKLM\\SYSTEM\\CurrentControlSet\\Control\\Session
   Manager\\KnownDLLs``): always the system directory's copy.
4. The directory of the DLL passed to LoadLibraryExW (LOAD_LIBRARY_SEARCH_DLL_LOAD_DIR).
   It is the *root's* directory for the whole closure, not the importer's.
5. The application directory (the running executable's directory).
6. Directories added with ``AddDllDirectory`` (``os.add_dll_directory``); Windows
   leaves their order unspecified, libbroker takes them in the order given.
7. The system directory (``System32``).

Never the current directory and never ``PATH``: the safe flags drop both. A
provider's copy (design 5.1: provider wheels first) is honoured because the
closure is loaded bottom-up by absolute path, so step 2 binds the dependency
to the judged copy; the model puts providers right after step 3.

A file of the right name built for another machine (a 32-bit DLL met by a
64-bit process) is passed over and the search goes on (STATUS_IMAGE_MACHINE_TYPE_MISMATCH
is not final; wine's loader does the same, and the tier checks it there).

Everything here is a pure function of the facts passed in (directories, the
KnownDLLs names, the loaded modules, a reader for a DLL's imports), except the
ones documented as reading the file system or the process; so the rules are
tested on Linux against fake directory trees (tests/platforms/test_windows_policy.py).
File names compare case-insensitively, as NTFS does. NTFS ACLs are not judged:
the place rules here are the path rules (absolute, not the current directory).
"""

from __future__ import annotations

import os
import sys

from .._errors import BrokerError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence
    from typing import Protocol

    class ImageFacts(Protocol):
        """What the closure needs of a PE file (libbroker._binary._pe.read gives it)."""

        needed: Sequence[str]
        delay_needed: Sequence[str]
        machine_name: str

# Origins (design 3.3) of the places below.
ENVIRONMENT = "environment"
SYSTEM = "system"

# How a dependency was resolved, in the loader's order (module docstring).
API_SET = "api-set"
LOADED = "loaded"
KNOWN_DLL = "known-dll"
PROVIDER = "provider"
LOAD_DIR = "dll-load-dir"
APPLICATION_DIR = "application-dir"
USER_DIR = "add_dll_directory"
SYSTEM_DIR = "system-dir"
MISSING = "missing"

# Windows' own architecture suffixes on DLL names (OpenSSL's libcrypto-3-x64.dll).
_ARCH_SUFFIX = {"AMD64": "-x64", "ARM64": "-arm64"}


# -- names -----------------------------------------------------------------


def is_api_set(dll_name: str) -> bool:
    """True for an API set contract name (``api-ms-win-crt-runtime-l1-1-0.dll``).

    The loader resolves ``api-`` and ``ext-`` names through its API set schema,
    never through a directory search (Microsoft, "Windows API sets").
    """
    lower = dll_name.lower()
    return lower.startswith(("api-ms-", "ext-ms-"))


def _abi_number(stem: str, name: str, machine: str | None) -> int | None:
    """N of ``lib<name>-<N>`` (or ``lib<name>-<N>-x64`` on AMD64), else None."""
    rest = stem[3 + len(name):]
    suffix = _ARCH_SUFFIX.get(machine or "", "")
    if suffix and rest.endswith(suffix):
        rest = rest[: -len(suffix)]
    if len(rest) >= 2 and rest[0] == "-" and rest[1:].isdigit():
        return int(rest[1:])
    return None


def matches_link_name(filename: str, name: str, machine: str | None = None) -> bool:
    """Is *filename* a DLL for link name *name* (design 5.3)?

    ``<name>.dll``, ``lib<name>.dll``, ``lib<name>-<N>.dll`` (N digits, the ABI
    number MinGW builds carry: ``libbz2-1.dll``), and on AMD64/ARM64 also
    ``lib<name>-<N>-x64.dll`` / ``-arm64.dll`` (OpenSSL's names). Case-insensitive;
    a name given whole (``zlib1.dll``) matches itself.
    """
    lower, want = filename.lower(), name.lower()
    if lower == want:
        return want.endswith(".dll")
    if not lower.endswith(".dll") or not want:
        return False
    stem = lower[:-4]
    if stem == want or stem == "lib" + want:
        return True
    return stem.startswith("lib" + want + "-") and _abi_number(stem, want, machine) is not None


def name_rank(filename: str, name: str, machine: str | None = None) -> tuple[int, int]:
    """Sort key inside one directory: ``<name>.dll``, ``lib<name>.dll``, then
    ``lib<name>-<N>.dll`` highest N first. Only for files that match *name*."""
    stem, want = filename.lower()[:-4], name.lower()
    if stem == want or filename.lower() == want:
        return (0, 0)
    if stem == "lib" + want:
        return (1, 0)
    return (2, -(_abi_number(stem, want, machine) or 0))


def library_files(directory: str, name: str, machine: str | None = None) -> list[str]:
    """Reads the directory: absolute paths of its files for link *name*, best first.

    An unreadable or missing directory gives []; entries are not stat'ed.
    """
    try:
        names = [n for n in os.listdir(directory) if matches_link_name(n, name, machine)]
    except OSError:
        return []
    names.sort(key=lambda n: (name_rank(n, name, machine), n.lower()))
    return [os.path.join(directory, n) for n in names]


def find_file(directory: str, filename: str) -> str | None:
    """Reads the directory: the entry named *filename* ignoring case (NTFS rules), or None.

    An exact match wins; the path returned is spelled as on disk.
    """
    exact = os.path.join(directory, filename)
    if os.path.isfile(exact):
        return exact
    try:
        entries = os.listdir(directory)
    except OSError:
        return None
    want = filename.lower()
    for entry in sorted(entries):
        if entry.lower() == want and os.path.isfile(os.path.join(directory, entry)):
            return os.path.join(directory, entry)
    return None


# -- places ----------------------------------------------------------------
# Paths in messages are quoted, not repr()'d: repr doubles every Windows backslash.


def same_place(a: str, b: str) -> bool:
    """Same directory after symlinks, compared the way Windows does (case-insensitively)."""
    return os.path.normcase(os.path.realpath(a)).lower() == os.path.normcase(os.path.realpath(b)).lower()


def place_refusal(directory: str, cwd: str | None) -> str | None:
    """Why *directory* may not supply DLLs, or None when it may.

    Refused: an empty entry (the loader's old meaning: the current directory), a
    relative one, and the current directory itself (design 3.5). A place under the
    current directory reached through an absolute location (a project's ``.venv``)
    stays allowed (design 5.1).
    """
    if not directory:
        return ("an empty search path entry means the current directory, which is never "
                "searched; remove the empty entry")
    if not os.path.isabs(directory):
        return (f"the search path entry '{directory}' is relative (it would resolve against the "
                "current directory); libbroker never searches relative paths; use an absolute path")
    if cwd is not None and same_place(directory, cwd):
        return (f"'{directory}' is the current directory, which is never searched (a DLL dropped "
                "there must not be picked up); name the directory through LIBBROKER_PATH from "
                "somewhere else, or load the file by its absolute path")
    return None


class Place:
    """One directory of the search for a library: where, why, and any refusal."""

    __slots__ = ("directory", "label", "origin", "refusal")

    def __init__(self, directory: str, origin: str, label: str, refusal: str | None = None) -> None:
        self.directory = directory
        self.origin = origin
        self.label = label
        self.refusal = refusal

    def __repr__(self) -> str:
        extra = f", refused: {self.refusal}" if self.refusal else ""
        return f"Place({self.directory!r}, {self.origin}, {self.label}{extra})"


def prefix_dirs(prefix: str) -> list[str]:
    """DLL directories of one Python prefix: conda's ``Library\\bin``, ``DLLs``, the prefix."""
    return [os.path.join(prefix, "Library", "bin"), os.path.join(prefix, "DLLs"), prefix]


def search_places(
    *,
    prefix: str,
    base_prefix: str,
    application_dir: str | None,
    dll_directories: Sequence[str] = (),
    system_dir: str | None,
    conda_prefix: str | None = None,
    path_entries: Sequence[str] | None = None,
    cwd: str | None = None,
) -> list[Place]:
    """Places searched for a library after overrides and providers (design 3.5, steps 4-5).

    Order: the environment (``sys.prefix``'s ``Library\\bin``, ``DLLs`` and the
    prefix itself, then ``sys.base_prefix``'s, then ``CONDA_PREFIX``'s when it *is*
    the interpreter's prefix, the application directory, the ``os.add_dll_directory``
    directories), then the system directory. ``PATH`` is searched only when the
    caller passes *path_entries* (the configuration asked for it), after everything
    else, each entry judged by place_refusal. A directory is listed once.
    """
    places: list[Place] = []

    def add(directory: str | None, origin: str, label: str, refusal: str | None = None) -> None:
        if directory is None:
            return
        if directory and any(p.directory and same_place(p.directory, directory) for p in places):
            return
        places.append(Place(directory, origin, label, refusal or place_refusal(directory, cwd)))

    for directory in prefix_dirs(prefix):
        add(directory, ENVIRONMENT, "sys.prefix")
    if not same_place(base_prefix, prefix):
        for directory in prefix_dirs(base_prefix):
            add(directory, ENVIRONMENT, "sys.base_prefix")
    if conda_prefix:
        if same_place(conda_prefix, prefix) or same_place(conda_prefix, base_prefix):
            add(os.path.join(conda_prefix, "Library", "bin"), ENVIRONMENT, "CONDA_PREFIX")
        else:
            places.append(Place(conda_prefix, ENVIRONMENT, "CONDA_PREFIX", (
                f"CONDA_PREFIX '{conda_prefix}' is not this interpreter's prefix '{prefix}' "
                "(another environment is activated); run the environment's own python")))
    add(application_dir, ENVIRONMENT, "application directory")
    for directory in dll_directories:
        add(directory, ENVIRONMENT, "os.add_dll_directory")
    add(system_dir, SYSTEM, "system directory")
    for entry in path_entries or ():
        add(entry, SYSTEM, "PATH (enabled in the configuration)")
    return places


# -- dependencies ----------------------------------------------------------


class SearchContext:
    """The facts the loader's dependency search depends on (module docstring).

    *loaded* and *providers* map a lower-case DLL file name to an absolute path;
    *known_dlls* holds lower-case file names. *path_entries* is never searched
    (the safe flags ignore ``PATH``); it only lets a failure say "found in PATH".
    """

    __slots__ = ("application_dir", "dll_directories", "known_dlls", "loaded", "path_entries",
                 "providers", "system_dir")

    def __init__(
        self,
        *,
        application_dir: str | None,
        dll_directories: Sequence[str] = (),
        system_dir: str | None,
        known_dlls: Iterable[str] = (),
        loaded: Mapping[str, str] | None = None,
        providers: Mapping[str, str] | None = None,
        path_entries: Sequence[str] = (),
    ) -> None:
        self.application_dir = application_dir
        self.dll_directories = list(dll_directories)
        self.system_dir = system_dir
        self.known_dlls = frozenset(n.lower() for n in known_dlls)
        self.loaded = {k.lower(): v for k, v in (loaded or {}).items()}
        self.providers = {k.lower(): v for k, v in (providers or {}).items()}
        self.path_entries = list(path_entries)


class Resolution:
    """Where the loader takes one imported DLL from: *kind* (API_SET ... MISSING), *path*."""

    __slots__ = ("kind", "needed", "path", "searched")

    def __init__(self, needed: str, kind: str, path: str | None, searched: Sequence[str]) -> None:
        self.needed = needed
        self.kind = kind
        self.path = path
        self.searched = list(searched)

    def __repr__(self) -> str:
        return f"Resolution({self.needed!r}, {self.kind}, {self.path!r})"


def dependency_dirs(load_dir: str, context: SearchContext) -> list[tuple[str, str]]:
    """(kind, directory) the safe flags search, in order, for a dependency of a DLL
    loaded from *load_dir*: steps 4-7 of the module docstring."""
    dirs = [(LOAD_DIR, load_dir)]
    if context.application_dir:
        dirs.append((APPLICATION_DIR, context.application_dir))
    dirs += [(USER_DIR, d) for d in context.dll_directories]
    if context.system_dir:
        dirs.append((SYSTEM_DIR, context.system_dir))
    return dirs


def resolve_dependency(
    needed: str,
    load_dir: str,
    context: SearchContext,
    find: Callable[[str, str], str | None] = find_file,
    skip: Callable[[str], str | None] | None = None,
) -> Resolution:
    """Where ``LoadLibraryExW`` with the safe flags takes the import *needed* from.

    *load_dir* is the directory of the DLL libbroker loads (the closure's root).
    *find(directory, filename)* looks a file up (default: find_file, which reads
    the directory). *skip(path)* says why the loader would pass a found file over
    (another machine), or None; passed-over files are listed in ``searched``.
    Never the current directory, never ``PATH``.
    """
    lower = needed.lower()
    if is_api_set(lower):
        return Resolution(needed, API_SET, None, ["API set schema"])
    if lower in context.loaded:
        return Resolution(needed, LOADED, context.loaded[lower], ["loaded-module list"])
    searched: list[str] = ["loaded-module list"]
    if lower in context.known_dlls and context.system_dir:
        path = find(context.system_dir, needed)
        return Resolution(needed, KNOWN_DLL, path or os.path.join(context.system_dir, needed),
                          searched + ["KnownDLLs"])
    if lower in context.providers:
        path = context.providers[lower]
        why = skip(path) if skip is not None else None
        if why is None:
            return Resolution(needed, PROVIDER, path, searched + ["providers"])
        searched.append(f"providers: {path} passed over ({why})")
    for kind, directory in dependency_dirs(load_dir, context):
        searched.append(f"{kind}: {directory}")
        if not os.path.isabs(directory):
            continue  # AddDllDirectory refuses relative paths; so does libbroker
        path = find(directory, needed)
        if path is None:
            continue
        why = skip(path) if skip is not None else None
        if why is None:
            return Resolution(needed, kind, path, searched)
        searched[-1] += f" ({path} passed over: {why})"
    return Resolution(needed, MISSING, None, searched)


def missing_reason(resolution: Resolution, importer: str, context: SearchContext,
                   find: Callable[[str, str], str | None] = find_file) -> str:
    """The rejection text for a dependency the safe search does not find, with the fix."""
    text = (f"{importer} imports {resolution.needed}, which the safe DLL search "
            f"(LOAD_LIBRARY_SEARCH_DLL_LOAD_DIR | LOAD_LIBRARY_SEARCH_DEFAULT_DIRS) does not find; "
            f"searched: {'; '.join(resolution.searched)}")
    for entry in context.path_entries:
        if entry and os.path.isabs(entry) and find(entry, resolution.needed):
            return (text + f". It exists in the PATH entry '{entry}', which this search never reads: "
                    "put the DLL next to the library, or add that directory with "
                    "os.add_dll_directory or LIBBROKER_PATH")
    if any("passed over" in place for place in resolution.searched):
        return text + (". Fix: install a build for this machine next to the library, or add the "
                       "directory of one with os.add_dll_directory")
    return text + ". Fix: install the DLL next to the library or add its directory with os.add_dll_directory"


class Closure:
    """A DLL's import closure as the loader would map it.

    *order*: Resolutions of the files to map, dependencies before dependents (the
    root last); API sets, KnownDLLs, loaded modules and system-directory DLLs are
    not followed further (the system's own). *problems*: one sentence per reason
    the root would not load. *notes*: delay-loaded imports that are missing (the
    load succeeds; the first call into them would fail).
    """

    __slots__ = ("notes", "order", "problems", "root")

    def __init__(self, root: str) -> None:
        self.root = root
        self.order: list[Resolution] = []
        self.problems: list[str] = []
        self.notes: list[str] = []

    @property
    def loadable(self) -> bool:
        return not self.problems


# What a PE reader raises for a file it cannot read: the OS's error, or
# InvalidBinaryError (an IncompatibleLibraryError, so a BrokerError) for bad bytes.
_READ_ERRORS = (OSError, ValueError, BrokerError)

_NOT_FOLLOWED = frozenset({API_SET, LOADED, KNOWN_DLL, SYSTEM_DIR, MISSING})


def closure(
    root: str,
    read: Callable[[str], ImageFacts],
    context: SearchContext,
    find: Callable[[str, str], str | None] = find_file,
    limit: int = 4096,
) -> Closure:
    """Resolve *root*'s imports transitively as LoadLibraryExW(root, safe flags) would.

    *read(path)* gives a file's facts (``needed``, ``delay_needed``, ``machine_name``);
    an exception from it (an unreadable or non-PE file) becomes a problem naming the
    file. A file built for another machine than the root is passed over, as the
    loader does. At most *limit* files are visited, so a pathological tree cannot
    run without bound.
    """
    result = Closure(root)
    load_dir = os.path.dirname(root)
    try:
        root_facts = read(root)
    except _READ_ERRORS as exc:  # the reader's own error, reported as a rejection
        result.problems.append(f"{root}: cannot be read as a DLL: {exc}")
        return result
    root_res = Resolution(os.path.basename(root), "root", root, [])
    # The root is in the loaded-module list by its base name once mapped: a cycle
    # back to it resolves to it.
    seen: dict[str, Resolution] = {root_res.needed.lower(): root_res}
    done: set[str] = {root.lower()}
    facts_cache: dict[str, ImageFacts | Exception] = {}

    def facts_of(path: str) -> ImageFacts:
        if path not in facts_cache:
            try:
                facts_cache[path] = read(path)
            except _READ_ERRORS as exc:
                facts_cache[path] = exc
        got = facts_cache[path]
        if isinstance(got, Exception):
            raise got
        return got

    def other_machine(path: str) -> str | None:
        try:
            machine = facts_of(path).machine_name
        except _READ_ERRORS:
            return None  # taken, then reported as unreadable
        if machine != root_facts.machine_name:
            return f"built for {machine}, not {root_facts.machine_name} like the library"
        return None

    def visit(path: str, facts: ImageFacts, depth: int) -> None:
        for needed, delayed in [(n, False) for n in facts.needed] + [(n, True) for n in facts.delay_needed]:
            lower = needed.lower()
            if lower in seen:
                continue
            if len(seen) >= limit or depth > 64:
                result.problems.append(f"{root}: the import closure exceeds {limit} DLLs or 64 levels")
                return
            res = resolve_dependency(needed, load_dir, context, find, other_machine)
            seen[lower] = res
            if res.kind == MISSING:
                target = result.notes if delayed else result.problems
                target.append(missing_reason(res, os.path.basename(path), context, find)
                              + (" (delay-loaded: the first call into it would fail)" if delayed else ""))
                continue
            if res.kind in _NOT_FOLLOWED or res.path is None:
                if res.kind != API_SET:
                    result.order.append(res)
                continue
            if res.path.lower() in done:  # the same file under another import name
                continue
            try:
                dep = facts_of(res.path)
            except _READ_ERRORS as exc:
                result.problems.append(f"{os.path.basename(path)} imports {needed}, found at "
                                       f"{res.path}, which cannot be read as a DLL: {exc}")
                continue
            done.add(res.path.lower())
            visit(res.path, dep, depth + 1)
            result.order.append(res)

    visit(root, root_facts, 0)
    result.order.append(root_res)
    return result


# -- facts of the running process (read, not pure) -------------------------


def system_directory() -> str | None:
    """Reads the environment: ``%SystemRoot%\\System32`` on Windows, else None."""
    if sys.platform != "win32":
        return None
    root = os.environ.get("SystemRoot") or os.environ.get("windir")
    return os.path.join(root, "System32") if root else None


def application_directory() -> str | None:
    """Directory of the running executable: the loader's application directory.

    A venv's ``python.exe`` is a launcher that starts the base interpreter, whose
    directory is the real one: ``sys._base_executable`` names it.
    """
    exe = getattr(sys, "_base_executable", None) or sys.executable
    return os.path.dirname(os.path.abspath(exe)) if exe else None


def known_dlls() -> frozenset[str]:
    """Reads the registry: lower-case file names listed under KnownDLLs (empty off Windows)."""
    if sys.platform != "win32":
        return frozenset()
    import winreg

    names: set[str] = set()
    key_path = r"SYSTEM\CurrentControlSet\Control\Session Manager\KnownDLLs"
    try:
        with winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, key_path) as key:
            index = 0
            while index < 4096:  # bounded: a registry key is not an endless stream
                try:
                    _name, value, kind = winreg.EnumValue(key, index)
                except OSError:
                    break
                if (kind in (winreg.REG_SZ, winreg.REG_EXPAND_SZ) and isinstance(value, str)
                        and value.lower().endswith(".dll")):
                    names.add(value.lower())
                index += 1
    except OSError:
        pass
    return frozenset(names)


def added_dll_directories() -> list[str]:
    """Reads the interpreter's objects: paths of live ``os.add_dll_directory`` handles.

    Windows offers no way to list AddDllDirectory entries; ``os.add_dll_directory``
    returns a handle object, and a caller that drops it (as delvewheel's patch does)
    leaves the directory in force but invisible here. Such directories are not
    predicted; put them in LIBBROKER_PATH to make them part of libbroker's search.
    """
    handle_type = getattr(os, "_AddedDllDirectory", None)
    if handle_type is None:
        return []
    import gc

    paths: list[str] = []
    for obj in gc.get_objects():
        if isinstance(obj, handle_type):
            path = getattr(obj, "path", None)
            if isinstance(path, str) and path not in paths:
                paths.append(path)
    return paths


def host_search_places(*, use_path: bool = False) -> list[Place]:
    """Reads the process: search_places for the running interpreter.

    *use_path*: the configuration enabled ``PATH`` for the library search.
    """
    cwd: str | None
    try:
        cwd = os.getcwd()
    except OSError:
        cwd = None
    return search_places(
        prefix=sys.prefix,
        base_prefix=sys.base_prefix,
        application_dir=application_directory(),
        dll_directories=added_dll_directories(),
        system_dir=system_directory(),
        conda_prefix=os.environ.get("CONDA_PREFIX"),
        path_entries=os.environ.get("PATH", "").split(os.pathsep) if use_path else None,
        cwd=cwd,
    )


def host_context(providers: Mapping[str, str] | None = None) -> SearchContext:
    """Reads the process: the SearchContext of the running interpreter, with the
    modules it maps now (``_master.loaded_objects``) as the loaded-module list."""
    from .. import _master

    return SearchContext(
        application_dir=application_directory(),
        dll_directories=added_dll_directories(),
        system_dir=system_directory(),
        known_dlls=known_dlls(),
        loaded={os.path.basename(path): path for path, _base in _master.loaded_objects()},
        providers=providers,
        path_entries=os.environ.get("PATH", "").split(os.pathsep),
    )
