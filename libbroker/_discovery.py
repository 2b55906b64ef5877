"""Where libraries are looked for, in the order of design.md 3.5.

1. overrides: a pin in the config file, $LIBBROKER_PATH, the config's search-paths
2. (copies libbroker already loaded: handled by the resolver)
3. provider wheels and the spec's `packages`
4. the environment: sys.prefix, $CONDA_PREFIX
5. the system: $LD_LIBRARY_PATH, /etc/ld.so.cache (parsed, never `ldconfig`),
   the default directories

Never the current directory, never a relative path, never a world-writable
directory: such places are still listed, so the rejection can say why.

Steps 4 and 5 and the file names follow the running platform (`platform_of`):
Linux as above; Windows by `_platforms._windows` (``<name>.dll``,
``lib<name>.dll``, ``lib<name>-<N>.dll``; the prefix's ``Library\bin``, ``DLLs``,
the prefix, the application directory, ``os.add_dll_directory`` directories,
``System32``; ``PATH`` only with ``windows-path = true`` in the config file,
last; never the current directory); macOS by `_platforms._macos` when present
(``lib<name>.dylib``, ``lib<name>.<N>.dylib``; ``sys.prefix/lib``,
``DYLD_LIBRARY_PATH``, ``DYLD_FALLBACK_LIBRARY_PATH``, Homebrew, MacPorts).
"""

from __future__ import annotations

import os
import sys
from time import monotonic

from ._cache import _RECHECK_SECONDS as _RECHECK
from ._cache import dir_stamp, identity
from ._places import base_uids

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence
    from types import ModuleType

    from ._config import Config


class Entry:
    """A file named like the library, where it was found, and any objection to the place."""

    __slots__ = ("dist", "origin", "path", "prefix", "refusal", "suffix", "version")

    def __init__(self, path: str, origin: str, refusal: str | None = None) -> None:
        self.path = path
        self.origin = origin
        self.refusal = refusal
        self.version: str | None = None
        self.dist: str | None = None
        self.prefix: str | None = None
        self.suffix: str | None = None


class Search:
    """Everything one search saw: files in order, places described, stamps for the cache."""

    __slots__ = ("entries", "searched", "stamps")

    def __init__(self) -> None:
        self.entries: list[Entry] = []
        self.searched: list[str] = []
        self.stamps: list[tuple[str, object]] = []


def link_name_of(filename: str) -> str | None:
    """"z" for libz.so or libz.so.<digits>[.<digits>...]; None for anything else."""
    if not filename.startswith("lib") or ".so" not in filename:
        return None
    stem, _, rest = filename[3:].partition(".so")
    if rest and not (rest[0] == "." and all(p.isdigit() for p in rest[1:].split("."))):
        return None
    return stem or None


def matches_link_name(filename: str, name: str) -> bool:
    """lib<name>.so or lib<name>.so.<digits>[.<digits>...] (a file name given whole matches itself)."""
    return filename == name or link_name_of(filename) == name


def platform_of(platform: str | None = None) -> str:
    """"win32", "darwin" or "linux" (any other POSIX system follows the Linux rules)."""
    value = platform or sys.platform
    if value == "win32" or value == "darwin":
        return value
    return "linux"


def _windows_machine() -> str | None:
    """"AMD64"/"ARM64" (the names _windows' ``-x64``/``-arm64`` suffix table uses), else None."""
    import platform as _platform

    machine = _platform.machine().upper()
    return machine if machine in ("AMD64", "ARM64") else None


def _macos_module() -> ModuleType | None:
    try:
        from importlib import import_module

        return import_module("._platforms._macos", __package__)
    except ImportError:  # the macOS policy is not in this tree: Linux-style names
        return None


def names_in(directory: str, name: str, platform: str) -> list[str]:
    """File names in *directory* for link *name* under *platform*'s naming, best first.

    Raises OSError when the directory cannot be listed.
    """
    if platform == "win32" or platform == "darwin":
        entries = listing(directory)
    if platform == "win32":
        from ._platforms import _windows

        machine = _windows_machine()
        names = [n for n in entries if _windows.matches_link_name(n, name, machine)]
        names.sort(key=lambda n: (_windows.name_rank(n, name, machine), n.lower()))
        return names
    macos = _macos_module() if platform == "darwin" else None
    if macos is not None:
        names = sorted(n for n in entries if macos.matches_link_name(n, name))
        # Higher numbers first (libz.1.2.13.dylib before libz.1.dylib), unversioned last.
        names.sort(key=lambda n: _dylib_key(n, name), reverse=True)
        return names
    key, stamp, entries = _listed(directory)
    hit = _listings.get(key)
    if hit is not None and hit[0] == stamp and (hit[2] is not None or hit[3] not in (None, name)):
        # Asked for another name before: an index per listing (fifty libraries, one
        # listing of /usr/lib). The same name twice is merged /usr, not a second search.
        present, index = _link_names(directory)
        names = sorted({*index.get(name, ()), *((name,) if name in present else ())})
    else:
        if hit is not None and hit[0] == stamp:
            _listings[key] = (stamp, entries, hit[2], name)
        stem = f"lib{name}.so"  # every match starts so: the full test runs on a few names only
        names = sorted(n for n in entries if (n == name or n.startswith(stem)) and matches_link_name(n, name))
    # Higher versions first within one directory; the unversioned dev symlink last.
    names.sort(key=_version_key, reverse=True)
    return names


# (device, inode) of a directory -> (its other stamps, its entries, (the entries as a set,
# link name -> entries) built when a second name is searched, the last name searched)
_Index = tuple[frozenset[str], dict[str, list[str]]]
_listings: dict[tuple[int, int], tuple[object, list[str], _Index | None, str | None]] = {}


# directory -> (when, its dir_stamp, the (device, inode) and stamp it was listed with): a
# search directory's facts given again for a second (`_RECHECK_SECONDS`), without a stat.
_seen: dict[str, tuple[float, object, tuple[int, int] | None, object]] = {}


def _seen_recently(directory: str) -> tuple[float, object, tuple[int, int] | None, object] | None:
    hit = _seen.get(directory)
    if hit is not None and monotonic() - hit[0] < _RECHECK_SECONDS:
        return hit
    return None


def _searched_dir_stamp(directory: str) -> object:
    """`dir_stamp(directory)`, given again for a second."""
    hit = _seen_recently(directory)
    if hit is not None:
        return hit[1]
    stamp = dir_stamp(directory)
    if len(_seen) > 1024:
        _seen.clear()
    _seen[directory] = (monotonic(), stamp, None, None)
    return stamp


def _listed(directory: str) -> tuple[tuple[int, int], object, list[str]]:
    hit = _seen_recently(directory)
    if hit is not None and hit[2] is not None:
        listed = _listings.get(hit[2])
        if listed is not None and listed[0] == hit[3]:
            return hit[2], hit[3], listed[1]
    key, stamp, entries = _listed_now(directory)
    if hit is not None:
        _seen[directory] = (hit[0], hit[1], key, stamp)
    return key, stamp, entries


def _listed_now(directory: str) -> tuple[tuple[int, int], object, list[str]]:
    st = os.stat(directory)
    key = (st.st_dev, st.st_ino)
    stamp = (st.st_mtime_ns, st.st_ctime_ns, st.st_mode, st.st_uid)
    hit = _listings.get(key)
    if hit is not None and hit[0] == stamp:
        return key, stamp, hit[1]
    entries = os.listdir(directory)
    try:
        after = os.stat(directory)
    except OSError:
        return key, stamp, entries
    if (after.st_dev, after.st_ino) == key and (
        after.st_mtime_ns, after.st_ctime_ns, after.st_mode, after.st_uid) == stamp:
        if len(_listings) > 1024:  # not changed while being listed
            _listings.clear()
        _listings[key] = (stamp, entries, None, None)
    return key, stamp, entries


def listing(directory: str) -> list[str]:
    """`os.listdir(directory)`, once per process while the directory is unchanged (same
    device, inode, mtime, ctime, mode and owner), shared by every name searched and by
    both names of one directory (merged /usr: /lib/x86_64-linux-gnu is
    /usr/lib/x86_64-linux-gnu, the same inode). Do not modify the list.

    Raises OSError when the directory cannot be listed.
    """
    return _listed(directory)[2]


def _link_names(directory: str) -> _Index:
    """(every entry, link name -> entries named for it) of *directory*, built once per listing."""
    key, stamp, entries = _listed(directory)
    hit = _listings.get(key)
    if hit is not None and hit[0] == stamp and hit[2] is not None:
        return hit[2]
    index: dict[str, list[str]] = {}
    for entry in entries:
        link = link_name_of(entry)
        if link is not None:
            index.setdefault(link, []).append(entry)
    built = (frozenset(entries), index)
    if hit is not None and hit[0] == stamp:
        _listings[key] = (stamp, entries, built, hit[3])
    return built


def _dylib_key(filename: str, name: str) -> tuple[int, ...]:
    middle = filename[len("lib") + len(name):-len(".dylib")].lstrip(".")
    parts = tuple(int(p) for p in middle.split(".") if p.isdigit())
    return (int(len(parts) > 0), *parts)


def multiarch() -> str:
    return getattr(sys.implementation, "_multiarch", "") or ""


def default_dirs() -> list[str]:
    triplet = multiarch()
    dirs = []
    if triplet:
        dirs += [f"/lib/{triplet}", f"/usr/lib/{triplet}"]
    if sys.maxsize > 2**32:
        dirs += ["/lib64", "/usr/lib64"]
    dirs += ["/lib", "/usr/lib", "/usr/local/lib"]
    return dirs


def environment_dirs() -> list[str]:
    prefixes = [sys.prefix]
    # design.md 5.1: CONDA_PREFIX only when it is this interpreter's own prefix. An
    # activated environment of another interpreter would put a second, other-built
    # copy of a library next to the one this interpreter's extensions use.
    conda = os.environ.get("CONDA_PREFIX")
    if conda and os.path.isabs(conda) and _same_dir(conda, sys.prefix) and conda not in prefixes:
        prefixes.append(conda)
    if sys.base_prefix != sys.prefix:
        prefixes.append(sys.base_prefix)
    dirs: list[str] = []
    for prefix in prefixes:
        for sub in ("lib", "lib64") if os.name != "nt" else ("Library/bin", "DLLs"):
            d = os.path.join(prefix, sub)
            if d not in dirs:
                dirs.append(d)
    return dirs


def _same_dir(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def split_path_list(value: str | None) -> list[str]:
    if not value:
        return []
    return value.split(os.pathsep)


_place_memo: dict[str, tuple[object, list[tuple[str, object]], str | None]] = {}
# (directory, cwd) -> (when, refusal): the whole answer of `place_refusal`, given again
# without a system call for a second, as `_api` gives a verdict again (`_api._RECHECK_SECONDS`):
# the fifty tables of one import burst search the same dozen directories.
_answers: dict[tuple[str, str | None, frozenset[int]], tuple[float, str | None]] = {}
_RECHECK_SECONDS = _RECHECK  # `_cache._RECHECK_SECONDS`: one second everywhere


def forget_places() -> None:
    """Drop every answer given again for a second (docs/security.md): place verdicts,
    directory stamps and listings here, and `_cache`'s and `_distinfo`'s (the cwd, the real
    paths, the config file's location, sys.path without the cwd). For tests that chmod a
    directory or add a file, then search again at once; a process that must see a change
    at once."""
    from . import _cache, _distinfo

    _place_memo.clear()
    _answers.clear()
    _seen.clear()
    _cache._cwd_answers.clear()
    _cache._real_answers.clear()
    _cache._config_paths.clear()
    _distinfo._search_paths.clear()


def _is_cwd(directory: str, cwd: str) -> bool:
    """realpath(directory) == cwd; a directory of another (device, inode) is not it, so
    only a match pays for the realpath."""
    try:
        st, here = os.stat(directory), os.stat(cwd)
    except OSError:
        return os.path.realpath(directory) == cwd
    if (st.st_dev, st.st_ino) != (here.st_dev, here.st_ino):
        return False
    return os.path.realpath(directory) == cwd


def place_refusal(directory: str, cwd: str | None) -> str | None:
    """Why a search directory may not supply libraries, or None when it may.

    The place rules' verdict (`_places.unsafe_dir_reason`) is remembered with every
    entry it inspected and the config file's stamp (trusted owners): it is replayed
    while each of those entries has the same device, inode, mode and owner. The whole
    answer is given again without a system call within a second of the last check
    (`forget_places` drops them).
    """
    now = monotonic()
    # Who is asking is part of the question: root and the current user are trusted, and
    # a process may change its user (seteuid) between two searches (review5 F5).
    key = (directory, cwd, base_uids())
    answer = _answers.get(key)
    if answer is not None and now - answer[0] < _RECHECK_SECONDS:
        return answer[1]
    refusal = _place_refusal(directory, cwd)
    if len(_answers) > 1024:
        _answers.clear()
    _answers[key] = (now, refusal)
    return refusal


def _place_refusal(directory: str, cwd: str | None) -> str | None:
    if not directory:
        return "an empty search path entry means the current directory, which is never searched"
    if not os.path.isabs(directory):
        return f"the search path entry {directory!r} is relative; libbroker never searches relative paths"
    if cwd is not None and _is_cwd(directory, cwd):
        return (
            f"{directory!r} is the current directory, which is never searched "
            "(a library dropped there must not be picked up)"
        )
    if os.name == "nt" or not os.path.isdir(directory):
        return None
    from ._cache import _place_stamp, config_stamp
    from ._places import unsafe_dir_reason

    config = (config_stamp(), base_uids())  # the trusted owners: the config's, root, the user
    hit = _place_memo.get(directory)
    if hit is not None and hit[0] == config and all(_place_stamp(p) == st for p, st in hit[1]):
        reason = hit[2]
    else:
        trace: list[tuple[str, object]] = []
        reason = unsafe_dir_reason(directory, trace=trace)  # every directory from "/", owners, symlink targets
        if len(_place_memo) > 1024:
            _place_memo.clear()
        _place_memo[directory] = (config, trace, reason)
    return f"unsafe place: {reason}" if reason else None


def _current_dir() -> str | None:
    try:
        return os.path.realpath(os.getcwd())
    except OSError:
        return None


def refusal_for(directory: str, cwd: str | None, platform: str) -> str | None:
    """place_refusal under *platform*'s rules (Windows: the path rules of `_windows`)."""
    if platform == "win32":
        from ._platforms import _windows

        return _windows.place_refusal(directory, cwd)
    return place_refusal(directory, cwd)


def scan_dir(
    directory: str,
    name: str,
    origin: str,
    search: Search,
    cwd: str | None,
    label: str,
    platform: str = "linux",
    refusal: str | None = None,
) -> None:
    """Append *directory*'s files for *name* to *search*; *refusal* (already judged) or the place rules."""
    search.stamps.append((directory, _searched_dir_stamp(directory)))
    refusal = refusal or refusal_for(directory, cwd, platform)
    target = directory if os.path.isabs(directory) else os.path.join(cwd or "/", directory or ".")
    try:
        names = names_in(target, name, platform)
    except OSError:
        search.searched.append(f"{label}: {directory!r} (not a readable directory)")
        return
    search.searched.append(f"{label}: {directory!r}" + (f" (refused: {refusal})" if refusal else ""))
    for filename in names:
        search.entries.append(Entry(os.path.join(target, filename), origin, refusal))


def _version_key(filename: str) -> tuple[int, ...]:
    # Ordering only: the numbers after ".so." (two or more; a bare major ranks with the
    # unversioned name) are libtool interface numbers, never shown as a version
    # (design.md 5.2: versions come from `_versions`).
    tail = filename.partition(".so.")[2]
    parts = tail.split(".") if tail else []
    if len(parts) < 2 or not all(p.isdigit() for p in parts):
        return (0,)
    return (1, *(int(p) for p in parts))


def ld_cache_entries() -> list[tuple[str, str]]:
    from ._ldcache import entries_for_host

    return entries_for_host()


def search(
    name: str,
    *,
    config: Config,
    packages: Sequence[str] = (),
    use_providers: bool = True,
    platform: str | None = None,
) -> Search:
    """Every file named like library *name*, in search order (duplicates kept; the resolver dedupes).

    *platform* ("linux", "win32", "darwin"; default: the running one) chooses the
    file names and the environment and system places (module docstring).
    """
    result = Search()
    for _ in search_steps(name, config=config, packages=packages, use_providers=use_providers,
                          platform=platform, into=result):
        pass
    return result


def search_steps(
    name: str,
    *,
    config: Config,
    packages: Sequence[str] = (),
    use_providers: bool = True,
    platform: str | None = None,
    into: Search | None = None,
) -> Iterator[Search]:
    """`search`, one place at a time: the same `Search` is yielded each time it has grown
    by one override directory, one group, or one part of the system group (each
    ``LD_LIBRARY_PATH`` entry, ld.so.cache, each default directory).

    A resolver that stops at the first accepted file stops here too: places after it
    cannot change which file is first, so they are neither read nor stamped (a verdict
    depends on what was searched before its file, and on nothing after it). *into*: the
    `Search` to fill (a new one by default).
    """
    result = Search() if into is None else into
    plat = platform_of(platform)
    cwd = _current_dir()
    _closure_inputs(result, use_providers)
    pin = config.pins.get(name)
    if pin is not None:
        result.searched.append(f"config file {config.path!r}: [libraries.{name}] pins {pin!r}")
        # The pin's directory goes through the same rules as a search directory
        # (never the current directory, safe from "/"); a verdict on it depends on the cwd.
        pin_dir = os.path.dirname(pin)
        result.stamps.append((pin_dir, dir_stamp(pin_dir)))
        result.entries.append(Entry(pin, "override", refusal_for(pin_dir, cwd, plat)))
        yield result
        return

    for directory in split_path_list(os.environ.get("LIBBROKER_PATH")):
        scan_dir(directory, name, "override", result, cwd, "LIBBROKER_PATH", plat)
        yield result
    for directory in config.search_paths:
        scan_dir(directory, name, "override", result, cwd, f"config file {config.path!r} search-paths", plat)
        yield result

    groups: dict[str, Callable[[], Iterator[None]]] = {
        "provider": lambda: _once(_providers, name, result, use_providers),
        "package": lambda: _once(_packages, name, packages, result),
        "environment": lambda: _once(_environment, name, result, cwd),
        "system": lambda: _system(name, result, cwd),
    }
    if plat != "linux":
        places = platform_places(plat, config, cwd)
        groups["environment"] = lambda: _scan_places(name, result, cwd, plat, places, "environment")
        groups["system"] = lambda: _scan_places(name, result, cwd, plat, places, "system")
    order = ["provider", "package", "environment", "system"]
    preferred = config.prefer.get(name)
    if preferred in order:
        order.remove(preferred)
        order.insert(0, preferred)
    for group in order:
        for _ in groups[group]():
            yield result


def _closure_inputs(result: Search, use_providers: bool) -> None:
    """Stamp what every verdict depends on, whichever place gives the file: its closure is
    resolved as ld.so would, with provider wheels first (`_closure`), so the provider
    entry points and the sys.path directories are inputs ("@site", "@providers"), and so
    is the executable's directory when ``LD_LIBRARY_PATH`` says ``$ORIGIN`` ("@origin",
    review4 R4-6). A search that stops early still records them (review5 F11, F12)."""
    if "ORIGIN" in os.environ.get("LD_LIBRARY_PATH", ""):
        # The same text means another directory in another program.
        from ._cache import executable_dir

        result.stamps.append(("@origin", executable_dir()))
    if use_providers:
        # Read afresh by every search: the closure reads the providers afresh too, so a
        # second-old answer here could stamp a verdict with a state it was not made on
        # (review6 N6).
        _site_stamps(result)
        result.stamps.append(("@providers", provider_snapshot()))


def _once(step: Callable[..., None], *args: object) -> Iterator[None]:
    step(*args)
    yield None


def platform_places(platform: str, config: Config, cwd: str | None) -> list[tuple[str, str, str, str | None]]:
    """Reads the process: (directory, origin, label, refusal) of steps 4-5 on Windows or macOS.

    Windows: `_windows.host_search_places` (``PATH`` only with the config's
    ``windows-path = true``). macOS: `_macos.search_directories` with the
    interpreter's environment (dyld's own lists; a restricted interpreter sees
    no ``DYLD_*``); its refused entries (empty, relative) are listed as refused.
    """
    if platform == "win32":
        from ._platforms import _windows

        return [(p.directory, p.origin, p.label, p.refusal)
                for p in _windows.host_search_places(use_path=config.windows_path)]
    macos = _macos_module()
    if macos is None:
        none: str | None = None
        return [(d, "environment", "environment", none) for d in environment_dirs()] + [
            (d, "system", "default directory", none) for d in default_dirs()]
    import platform as _platform

    restricted = bool(macos.is_sip_protected(sys.executable))
    out: list[tuple[str, str, str, str | None]] = [
        (d, origin, how, None) for d, origin, how in macos.search_directories(
            env=os.environ, restricted=restricted, sys_prefix=sys.prefix,
            conda_prefix=os.environ.get("CONDA_PREFIX"), machine=_platform.machine())]
    for entry in macos.dyld_paths(os.environ, restricted=restricted)["refused"]:
        out.append(("", "system", entry, (f"{entry} is empty or relative: dyld would read it from "
                    "the current directory, which libbroker never searches")))
    return out


def _scan_places(name: str, result: Search, cwd: str | None, platform: str,
                 places: list[tuple[str, str, str, str | None]], origin: str) -> Iterator[None]:
    for directory, place_origin, label, refusal in places:
        if place_origin != origin:
            continue
        if not directory:  # an empty or relative entry: listed with its refusal, never read
            result.searched.append(f"{label} (refused: {refusal})")
            yield None
            continue
        scan_dir(directory, name, origin, result, cwd, label, platform, refusal)
        yield None


def _site_stamps(result: Search) -> None:
    # Installing or removing a distribution changes its site directory's mtime ("@site":
    # such a change alone is re-judged by `_cache.refreshed` from the providers seen).
    for entry in sys.path:
        if entry and os.path.isabs(entry) and os.path.isdir(entry):
            result.stamps.append(("@site", (entry, dir_stamp(entry))))


def provider_snapshot() -> tuple[tuple[str, str, str], ...]:
    """`_distinfo.provider_snapshot`: the provider entry points a search sees."""
    from ._distinfo import provider_snapshot as snapshot

    return snapshot()


def _providers(name: str, result: Search, enabled: bool) -> None:
    if not enabled:
        return
    # "@site" and "@providers" are stamped by every search (`_closure_inputs`).
    try:
        from ._providers import provider_files
    except ImportError:  # pragma: no cover - module always ships
        return
    inputs: list[str] = []
    refused: list[tuple[str, str, str]] = []
    files, searched = provider_files(name, inputs, refused)
    result.searched.extend(searched)
    # A provider refused for its metadata is a rejected candidate (its damaged file, the reason).
    result.entries.extend(Entry(path, origin, reason) for path, origin, reason in refused)
    for path in inputs:  # a manifest or RECORD changed (in place or by rename) voids the verdict
        result.stamps.append(("@input", (path, identity(path))))
    for provided in files:
        entry = Entry(provided.path, provided.origin)
        entry.version = provided.version
        entry.dist = provided.dist
        entry.prefix = provided.symbol_prefix
        entry.suffix = provided.symbol_suffix
        result.entries.append(entry)


def _packages(name: str, packages: Sequence[str], result: Search) -> None:
    if not packages:
        return
    from ._providers import package_files

    inputs: list[str] = []
    refused: list[tuple[str, str, str]] = []
    files, searched = package_files(list(packages), [name], inputs, refused)
    result.searched.extend(searched)
    result.entries.extend(Entry(path, origin, reason) for path, origin, reason in refused)
    for path in inputs:  # a reinstall rewrites RECORD: the verdict is judged afresh
        result.stamps.append(("@input", (path, identity(path))))
    for provided in files:
        entry = Entry(provided.path, provided.origin)
        entry.version = provided.version
        entry.dist = provided.dist
        result.entries.append(entry)


def _environment(name: str, result: Search, cwd: str | None) -> None:
    for directory in environment_dirs():
        scan_dir(directory, name, "environment", result, cwd, "environment")


def _hwcaps_dirs(directory: str, name: str, result: Search, cwd: str | None) -> None:
    """Scan *directory*'s ``glibc-hwcaps/<level>/`` subdirectories, as ld.so (glibc >= 2.33)
    tries them before the directory itself: the levels this CPU runs, best first
    (`_ldcache.supported_hwcaps`, the list `_closure` uses; ``ld.so --help`` prints it).
    Each goes through the place rules like any search directory. An absent one is only
    stamped (creating it voids a cached verdict) and not listed: three lines per entry
    for directories that almost never exist would bury the report."""
    if not sys.platform.startswith("linux") or not directory or not os.path.isabs(directory):
        return  # an empty or relative entry is refused by scan_dir itself, never read
    from ._ldcache import supported_hwcaps

    for level in supported_hwcaps():
        sub = os.path.join(directory, "glibc-hwcaps", level)
        if os.path.isdir(sub):
            scan_dir(sub, name, "system", result, cwd, f"LD_LIBRARY_PATH glibc-hwcaps {level}")
        else:
            result.stamps.append((sub, dir_stamp(sub)))


def _system(name: str, result: Search, cwd: str | None) -> Iterator[None]:
    from ._closure import ld_library_path_dirs  # ld.so's reading: ":" and ";", $LIB...

    for directory in ld_library_path_dirs():
        _hwcaps_dirs(directory, name, result, cwd)
        scan_dir(directory, name, "system", result, cwd, "LD_LIBRARY_PATH")
        yield None
    if sys.platform.startswith("linux"):
        from . import _ldcache

        cache = _ldcache.LD_SO_CACHE
        result.stamps.append((cache, dir_stamp(cache)))
        # Only this name's entries are decoded (`_ldcache.entries_for_link`): same order.
        hits = [path for _, path in _ldcache.entries_for_link(name, lambda k: matches_link_name(k, name))]
        result.searched.append(f"ld.so.cache: {cache!r} ({len(hits)} entries for {name!r})")
        for path in hits:
            directory = os.path.dirname(path)
            if not any(key == directory for key, _ in result.stamps):
                # The entry's directory is a place searched like any other: a verdict from
                # it records that it was not the cwd ("@cwd", review5 F10) and its stamp.
                result.stamps.append((directory, _searched_dir_stamp(directory)))
            result.entries.append(Entry(path, "system", place_refusal(directory, cwd)))
        yield None
    for directory in default_dirs():
        scan_dir(directory, name, "system", result, cwd, "default directory")
        yield None
