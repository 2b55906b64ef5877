"""`libbroker list`: every library file visible to libbroker, grouped by origin.

Listing opens nothing but regular files (a FIFO or device named lib*.so in a
searched directory such as /tmp would block an open forever), never loads
anything, and applies the place rules of design.md 5.1 to every file: one that
`find` would refuse is listed with ``"refused"`` (the reason), not as usable.

File names, magic numbers and places are the running platform's, as in
`_discovery.search`: ELF ``lib<name>.so*`` on Linux; PE ``*.dll`` in the
Windows places (`_windows.host_search_places`); Mach-O ``lib<name>*.dylib`` in
dyld's places (`_macos.search_directories`) on macOS.

On Linux the listing is cached on disk (`_cache`, kind "listing"), in two parts
that are recomputed separately: the files found by scanning (override,
environment, LD_LIBRARY_PATH and system groups) and the provider groups (which
any `pip install` may change). A part is replayed only while every input it
read is unchanged (`_Inputs`): every path it `lstat`ed on the way to each file
(what `os.path.realpath` and the place rules read; files and symlinks by inode
and ctime, directories by device, inode, mode and owner: `_place_stamp`), each
scanned directory's entries (`_cache.dir_stamp`), ld.so.cache, the config
file, the package databases versions come from, the providers' metadata, the
environment and interpreter (`_cache.env_key`). A version the library itself
states ("library") is asked afresh in every process, because it depends on
what that process maps. docs/decisions/perf-cli.md says why each input.
"""

from __future__ import annotations

import os
import stat
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from ._config import Config

Item = dict[str, "str | None"]
Groups = dict[str, list[Item]]
# (real path, soname) to ask a mapped library for its version with (`_probe`).
Probe = tuple[str, "str | None"]

# Magic numbers by platform: ELF, PE ("MZ"), Mach-O thin (both byte orders, 32/64) and fat.
_MAGICS = {
    "linux": (b"\x7fELF",),
    "win32": (b"MZ",),
    "darwin": (b"\xfe\xed\xfa\xce", b"\xce\xfa\xed\xfe", b"\xfe\xed\xfa\xcf",
               b"\xcf\xfa\xed\xfe", b"\xca\xfe\xba\xbe", b"\xca\xfe\xba\xbf"),
}

_CACHE_KIND = "listing"  # files listing-0 ... listing-7 (`_SLOTS`), one environment each
_FORMAT = 1  # the shape of a cached part; bump when it changes


def dll_link_name(filename: str) -> str | None:
    """The link name `_windows.matches_link_name` would match *filename* for, or None.

    ``zlib1.dll`` -> "zlib1", ``libbz2-1.dll`` -> "bz2", ``libcrypto-3-x64.dll`` -> "crypto".
    """
    lower = filename.lower()
    if not lower.endswith(".dll") or len(lower) == 4:
        return None
    stem = lower[:-4]
    if not stem.startswith("lib") or len(stem) == 3:
        return stem
    rest = stem[3:]
    for suffix in ("-x64", "-arm64"):
        if rest.endswith(suffix):
            rest = rest[: -len(suffix)]
            break
    head, dash, number = rest.rpartition("-")
    if dash and head and number.isdigit():
        return head
    return stem[3:]


def _namer(platform: str) -> Callable[[str], str | None]:
    if platform == "win32":
        return dll_link_name
    from ._discovery import link_name_of

    if platform == "darwin":
        from ._discovery import _macos_module

        macos = _macos_module()
        if macos is not None:
            namer: Callable[[str], str | None] = macos.link_name_of
            return namer
    return link_name_of


_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)


# ---------------------------------------------------------------------------
# What a listing read, and checking it is unchanged


def _place_stamp(st: os.stat_result | None) -> tuple[int, ...] | None:
    """What an `lstat` result decides, or None for a missing path.

    A directory: device, inode, mode and owner (not its mtime: /tmp gaining a file must
    not void the listing; the scanned directories carry their own `dir_stamp`). Anything
    else: inode and ctime, which the kernel sets on every change to the inode (content,
    size, chmod, chown, rename over it gives another inode); its device is the directory's.
    """
    if st is None:
        return None
    if stat.S_ISDIR(st.st_mode):
        return (st.st_dev, st.st_ino, st.st_mode, st.st_uid)
    return (st.st_ino, st.st_ctime_ns)


# A file changed twice within one tick of the kernel's coarse clock keeps its ctime (the
# "racy git" problem): a part that read anything changed this recently is not cached.
_RACY_NS = 50_000_000


def _racy(places: dict[str, tuple[int, ...] | None], stamps: list[tuple[str, object]],
          started_ns: int) -> bool:
    """True when a recorded file or directory changed less than `_RACY_NS` before the part
    was read: a second change in the same clock tick would leave its stamp as recorded."""
    since = started_ns - _RACY_NS
    for want in places.values():
        if want is not None and len(want) == 2 and want[1] >= since:
            return True
    for _, stamp in stamps:
        # `_cache.dir_stamp` (inode, mtime, ctime, mode, owner); the config file's
        # `_cache.identity` (device, inode, size, mtime, ctime, mode, owner).
        if not isinstance(stamp, tuple):
            continue
        ctime = {5: 2, 7: 4}.get(len(stamp))
        if ctime is not None and isinstance(stamp[ctime], int) and stamp[ctime] >= since:
            return True
    return False


def _grouped_places(places: dict[str, tuple[int, ...] | None]) -> dict[str, dict[str, tuple[int, ...] | None]]:
    """{directory: {name: stamp}}: each directory written once in the cache file."""
    grouped: dict[str, dict[str, tuple[int, ...] | None]] = {}
    for path, want in places.items():
        head, _, tail = path.rpartition("/")
        grouped.setdefault(head, {})[tail] = want
    return grouped


def places_valid(grouped: object) -> bool:
    """True while every path of `_grouped_places` gives the same `_place_stamp`.

    One `lstat` per path; never raises (a corrupt or foreign entry is simply not valid).
    """
    if not isinstance(grouped, dict):
        return False
    lstat = os.lstat
    is_dir = stat.S_ISDIR
    try:
        for head, names in grouped.items():
            prefix = head + "/"
            for name, want in names.items():
                try:
                    st = lstat(prefix + name)
                except OSError:
                    if want is not None:
                        return False
                    continue
                if is_dir(st.st_mode):
                    if (st.st_dev, st.st_ino, st.st_mode, st.st_uid) != want:
                        return False
                elif (st.st_ino, st.st_ctime_ns) != want:
                    return False
    except (TypeError, ValueError, AttributeError):
        return False
    return True


class _Inputs:
    """Everything one part of a listing read, so that a cached part is replayed only while
    it is all unchanged.

    ``places``: path -> `_place_stamp` of every path `lstat`ed (first observation kept);
    ``stamps``: `_cache.stamps_valid` entries (scanned directories, ld.so.cache, the
    config file, package databases, provider metadata); ``stable``: False when a file
    changed under the listing while it was read (then the part is not cached).
    """

    __slots__ = ("known", "places", "stable", "stamped", "stamps")

    def __init__(self) -> None:
        self.places: dict[str, tuple[int, ...] | None] = {}
        self.stamps: list[tuple[str, object]] = []
        self.known: dict[str, str] = {}  # resolved prefix + name -> its resolution
        self.stamped: set[str] = set()  # what `stamp_once` recorded
        self.stable = True

    def lstat(self, path: str) -> os.stat_result | None:
        try:
            st: os.stat_result | None = os.lstat(path)
        except (OSError, ValueError):
            st = None
        if path not in self.places:
            self.places[path] = _place_stamp(st)
        return st

    def stamp(self, path: str) -> None:
        """Record *path*'s `_cache.dir_stamp` (entries of a directory; a file's identity)."""
        from ._cache import dir_stamp

        self.stamps.append((path, dir_stamp(path)))

    def stamp_once(self, path: str) -> None:
        if path not in self.stamped:
            self.stamped.add(path)
            self.stamp(path)

    def realpath(self, path: str) -> str:
        """``os.path.realpath(path)``, recording every `lstat` the answer depends on.

        The same walk as posixpath's (non-strict: a missing component is kept as is, a
        symlink loop stops the walk), with resolved prefixes remembered across calls:
        a thousand files in one directory resolve the directory once.
        """
        if not path.startswith("/"):  # resolved against the cwd: never cached
            self.stable = False
            return os.path.realpath(path)
        self.lstat("/")  # the place rules judge the root too
        resolved, _ = self._join("/", path, {})
        return os.path.abspath(resolved)  # as posixpath.realpath ends (a loop leaves "x/")

    def _join(self, path: str, rest: str, seen: dict[str, str | None]) -> tuple[str, bool]:
        if rest.startswith("/"):
            rest, path = rest[1:], "/"
        while rest:
            name, _, rest = rest.partition("/")
            if not name or name == ".":
                continue
            if name == "..":
                path, tail = os.path.split(path)
                if tail == "..":
                    path = os.path.join(path, "..", "..")
                continue
            newpath = path + name if path.endswith("/") else path + "/" + name  # os.path.join
            done = self.known.get(newpath)
            if done is not None:
                path = done
                continue
            st = self.lstat(newpath)
            if st is None or not stat.S_ISLNK(st.st_mode):
                path = self.known[newpath] = newpath
                continue
            if newpath in seen:
                earlier = seen[newpath]
                if earlier is not None:
                    path = earlier
                    continue
                return os.path.join(newpath, rest), False  # a symlink loop
            seen[newpath] = None
            try:
                target = os.readlink(newpath)
            except OSError:
                self.stable = False  # it was a symlink a moment ago
                return os.path.join(newpath, rest), False
            path, ok = self._join(path, target, seen)
            if not ok:
                return os.path.join(path, rest), False
            seen[newpath] = self.known[newpath] = path
        return path, True

    def is_library(self, path: str, real: str, magics: tuple[bytes, ...]) -> bool:
        """True when *path* is a regular file starting with one of *magics*.

        stat first (never blocks) and skip anything but a regular file; then open
        O_NONBLOCK and check the open file again (it may have been swapped). The
        file opened must be the one `realpath` recorded, else the listing is unstable.
        """
        try:
            if not stat.S_ISREG(os.stat(path).st_mode):
                return False
            fd = os.open(path, _OPEN_FLAGS)
        except (OSError, ValueError):
            return False
        try:
            st = os.fstat(fd)
            if self.places.get(real) != _place_stamp(st):
                self.stable = False
            return stat.S_ISREG(st.st_mode) and os.read(fd, 4).startswith(magics)
        except OSError:
            return False
        finally:
            os.close(fd)


# ---------------------------------------------------------------------------
# Computing the groups


def _mark_refused(items: list[Item]) -> list[Item]:
    """Add "refused" (the place rule's reason) to each item `find` would refuse for its place."""
    if os.name == "nt":
        return items
    from ._places import trusted_uids, unsafe_reason

    trusted = trusted_uids()  # once: it reads the config file
    try:
        cwd: str | None = os.path.realpath(os.getcwd())
    except OSError:
        cwd = None
    for item in items:
        directory = os.path.dirname(str(item["path"]))
        if cwd is not None and os.path.realpath(directory) == cwd:
            # find never searches the current directory (the listing is stamped with the
            # cwd's part, "@cwd", so another cwd lists afresh).
            item["refused"] = (f"{directory!r} is the current directory, which is never "
                               "searched (a library dropped there must not be picked up)")
            continue
        reason = unsafe_reason(str(item["path"]), trusted_uids=trusted)
        if reason:
            item["refused"] = f"unsafe place: {reason}"
    return items


def _scan(directory: str, seen: set[str], platform: str = "linux",
          inputs: _Inputs | None = None) -> list[Item]:
    inputs = inputs if inputs is not None else _Inputs()
    found: list[Item] = []
    namer = _namer(platform)
    magics = _MAGICS[platform]
    inputs.stamp(directory)  # before reading it: a change while listing voids the part
    real_dir = inputs.realpath(directory)
    if real_dir in seen:  # /lib -> /usr/lib on merged-/usr systems
        return found
    seen.add(real_dir)
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return found
    prefix = directory if directory.endswith("/") else directory + "/"
    for filename in names:
        name = namer(filename)
        if name is None:
            continue
        path = prefix + filename  # os.path.join
        if path in seen:
            continue
        real = inputs.realpath(path)
        if not inputs.is_library(path, real, magics):  # linker scripts are not libraries
            continue
        if real in seen:  # libz.so and libz.so.1.2.13 behind libz.so.1: one library
            continue
        seen.update((path, real))
        found.append({"name": name, "path": path})
    return found


def _provider_groups(inputs: _Inputs) -> Groups:
    """The "provider:<dist>" groups: each provider's files for each link name it declares."""
    groups: Groups = {}
    try:
        from ._providers import provider_files, provider_names
    except ImportError:  # pragma: no cover
        return groups
    read: list[str] = []
    for link in sorted(provider_names()):
        for provided in provider_files(link, read)[0]:
            inputs.realpath(provided.path)
            groups.setdefault(provided.origin, []).append(
                {"name": link, "path": provided.path, "version": provided.version})
    for path in read:
        inputs.stamp_once(path)
    return groups


def _provider_search_stamps(inputs: _Inputs) -> None:
    """What the set of provider distributions depends on: the entries of every sys.path
    directory searched (`_providers.search_path`), and which sys.path entry is the current
    directory (never searched for providers, so its churn does not matter)."""
    from ._cache import _cwd_among
    from ._providers import search_path

    for entry in search_path():
        inputs.stamp(entry)
    entries = tuple(e for e in sys.path if isinstance(e, str) and os.path.isabs(e))
    inputs.stamps.append(("@cwd", (entries, _cwd_among(entries))))


def _scanned_groups(plat: str, config: Config, inputs: _Inputs) -> Groups:
    """The override, environment, LD_LIBRARY_PATH and system groups (or the platform's)."""
    from ._discovery import (
        default_dirs,
        environment_dirs,
        ld_cache_entries,
        link_name_of,
        platform_places,
        split_path_list,
    )

    seen: set[str] = set()
    groups: Groups = {}
    overrides: list[Item] = [{"name": n, "path": p} for n, p in sorted(config.pins.items())]
    for item in overrides:
        inputs.realpath(str(item["path"]))
    for directory in split_path_list(os.environ.get("LIBBROKER_PATH")) + config.search_paths:
        if os.path.isabs(directory):
            overrides += _scan(directory, seen, plat, inputs)
    groups["override"] = overrides
    if plat != "linux":
        try:
            cwd: str | None = os.path.realpath(os.getcwd())
        except OSError:
            cwd = None
        places = platform_places(plat, config, cwd)
        for origin in ("environment", "system"):
            groups[origin] = [item for d, o, _label, refusal in places
                              if o == origin and d and not refusal
                              for item in _scan(d, seen, plat, inputs)]
        return groups
    conda = os.environ.get("CONDA_PREFIX")
    if conda and os.path.isabs(conda):  # searched only when it is sys.prefix (by file identity)
        inputs.realpath(conda)
        inputs.realpath(sys.prefix)
    groups["environment"] = [item for d in environment_dirs() for item in _scan(d, seen, inputs=inputs)]
    # Its own group: LD_LIBRARY_PATH is whoever set it, not the system's libraries.
    ld_library_path: list[Item] = []
    from ._closure import ld_library_path_dirs  # ld.so's reading: ":" and ";", $LIB...

    for directory in ld_library_path_dirs():
        if os.path.isabs(directory):
            ld_library_path += _scan(directory, seen, inputs=inputs)
    if ld_library_path:
        groups["LD_LIBRARY_PATH"] = ld_library_path
    from ._ldcache import LD_SO_CACHE

    inputs.stamp(LD_SO_CACHE)
    system: list[Item] = []
    for soname, path in ld_cache_entries():
        name = link_name_of(soname)
        if not name or path in seen:
            continue
        real = inputs.realpath(path)
        if real not in seen:
            seen.update((path, real))
            system.append({"name": name, "path": path})
    for directory in default_dirs():
        system += _scan(directory, seen, inputs=inputs)
    groups["system"] = system
    return groups


def visible_libraries(platform: str | None = None) -> Groups:
    """Library files by origin group ("override", "provider:<dist>", "environment",
    "LD_LIBRARY_PATH", "system"), each ``{"name", "path"[, "version"][, "refused"]}``.

    *platform* ("linux", "win32", "darwin"; default the running one) chooses names,
    magic numbers and places (module docstring). Read afresh (never cached); `listing`
    adds versions and the cache.
    """
    from ._config import load_config
    from ._discovery import platform_of

    plat = platform_of(platform)
    inputs = _Inputs()
    scanned = _scanned_groups(plat, load_config(), inputs)
    groups = {"override": scanned.pop("override")}
    groups.update(_provider_groups(inputs))
    groups.update(scanned)
    for items in groups.values():
        _mark_refused(items)
    return groups


# ---------------------------------------------------------------------------
# Versions (design.md 5.2)


def _stored_version(item: Item, real: str, inputs: _Inputs) -> None:
    """Set the item's version and source from every source but the library itself: the
    provider manifest, the package database owning *real*, or a product-numbered name.

    The "library" source (the mapped copy's own answer) is `_live_versions`' to add.
    """
    if item.get("version"):  # a provider manifest states it
        item["version_source"] = "provider"
        return
    from ._versions import file_name_version, package_version

    _database_stamps(real, inputs)
    found = package_version(real)
    if found is None:
        by_name = file_name_version(real, str(item["name"]))
        found = (by_name, "file-name") if by_name else None
    item["version"], item["version_source"] = found if found else (None, None)


def _database_stamps(real: str, inputs: _Inputs) -> None:
    """What `_pkgdb.package_version(real)` reads, stamped before it is read: the nearest
    conda-meta above the file (six levels), a Homebrew keg's receipt, the dpkg, pacman and
    apk databases."""
    from ._pkgdb import APK_INSTALLED, DPKG_ADMIN_DIR, PACMAN_LOCAL_DIR

    for path in (os.path.join(DPKG_ADMIN_DIR, "status"), os.path.join(DPKG_ADMIN_DIR, "info"),
                 PACMAN_LOCAL_DIR, APK_INSTALLED):
        inputs.stamp_once(path)
    head = os.path.dirname(real)
    if f"@conda-above:{head}" in inputs.stamped:
        return _cellar_stamp(real, inputs)
    inputs.stamped.add(f"@conda-above:{head}")
    for _ in range(6):
        meta = os.path.join(head, "conda-meta")
        inputs.stamp_once(meta)
        if os.path.isdir(meta):
            # Each record too, as `_pkgdb` stamps its index: an edit in place, a chmod or a
            # chown of a record changes no directory.
            try:
                records = sorted(n for n in os.listdir(meta) if n.endswith(".json"))
            except OSError:
                records = []
            for name in records:
                inputs.stamp_once(os.path.join(meta, name))
        parent = os.path.dirname(head)
        if parent == head:
            break
        head = parent
    _cellar_stamp(real, inputs)


def _cellar_stamp(real: str, inputs: _Inputs) -> None:
    parts = real.split("/")
    if "Cellar" in parts:
        at = len(parts) - 1 - parts[::-1].index("Cellar")
        if at + 3 < len(parts):
            inputs.stamp_once("/".join(parts[: at + 3]) + "/INSTALL_RECEIPT.json")


def _probe(name: str, real: str) -> Probe | None:
    """(real path, soname) to ask the library with when it is mapped, as
    `_resolve.product_version` asks it; None when no built-in probe knows it (then the
    library is never asked: `_versions.library_version` would answer None)."""
    from ._resolve import probe_soname
    from ._versions import probe_for

    soname = probe_soname(name, os.path.basename(real))
    return (real, soname) if probe_for(name, soname) is not None else None


def _live_versions(groups: Groups, probes: dict[str, Probe]) -> None:
    """Ask the library itself for the version of each listed file this process maps
    (design.md 5.2: "library" comes first), as `_resolve.product_version` does: the
    same RTLD_NOLOAD question (`_versions.version_if_mapped`), for each file a built-in
    probe knows (*probes*: listed path -> `_probe`); the others would answer None.
    """
    if not probes:
        return
    from ._versions import version_if_mapped

    for items in groups.values():
        for item in items:
            probe = probes.get(str(item["path"]))
            if probe is None or item.get("version_source") == "provider":
                continue
            real, soname = probe
            own = version_if_mapped(real, str(item["name"]), soname)
            if own:
                item["version"], item["version_source"] = own, "library"


# ---------------------------------------------------------------------------
# The cached listing: per environment one cache file (of `_SLOTS`), holding the key and
# the two parts. A part: its groups as item tuples (`_ITEM_KEYS` + the `_probe`),
# `_grouped_places`, and `_cache.stamps_valid` stamps.

_ITEM_KEYS = ("name", "path", "version", "version_source", "refused")
_SLOTS = 8


def _file_facts(item: Item, inputs: _Inputs, probes: dict[str, Probe]) -> None:
    """Versions from every source but the library (`_stored_version`), and the `_probe`
    `_live_versions` needs, for one listed item."""
    path = str(item["path"])
    real = inputs.realpath(path)
    _stored_version(item, real, inputs)
    probe = _probe(str(item["name"]), real)
    if probe is not None:
        probes[path] = probe


def _part(compute: Callable[[_Inputs], Groups]) -> tuple[Groups, dict[str, Probe], dict[str, Any] | None]:
    """(groups with stored versions and refusals, `_live_versions`' probes, the cache entry
    or None when a file changed while it was read)."""
    import time

    started = time.time_ns()
    inputs = _Inputs()
    groups = compute(inputs)
    probes: dict[str, Probe] = {}
    stored: list[tuple[str, list[tuple[Any, ...]]]] = []
    for origin, items in groups.items():
        _mark_refused(items)
        rows = []
        for item in items:
            _file_facts(item, inputs, probes)
            rows.append((*(item.get(k) for k in _ITEM_KEYS), probes.get(str(item["path"]))))
        stored.append((origin, rows))
    inputs.stamp("/etc/passwd")  # owner names in refusal messages
    places = _grouped_places(inputs.places)
    from ._cache import stamps_valid

    # Kept only if nothing changed while it was read: checked again now, after the last read.
    if not (inputs.stable and places_valid(places) and stamps_valid(inputs.stamps)) or _racy(
            inputs.places, inputs.stamps, started):
        return groups, probes, None
    return groups, probes, {"groups": stored, "places": places, "stamps": inputs.stamps}


def _replay(entry: object) -> tuple[Groups, dict[str, Probe]] | None:
    """A cached part's groups and probes if its shape is right and every input is unchanged."""
    from ._cache import stamps_valid

    if not isinstance(entry, dict) or not isinstance(entry.get("groups"), list):
        return None
    if not stamps_valid(entry.get("stamps")) or not places_valid(entry.get("places")):
        return None
    groups: Groups = {}
    probes: dict[str, Probe] = {}
    try:
        for origin, rows in entry["groups"]:
            items = groups[origin] = []
            for name, path, version, source, refused, probe in rows:
                if not (isinstance(name, str) and isinstance(path, str)
                        and (version is None or isinstance(version, str))
                        and (source is None or isinstance(source, str))
                        and (refused is None or isinstance(refused, str))):
                    return None
                item: Item = {"name": name, "path": path, "version": version,
                              "version_source": source}
                if refused is not None:
                    item["refused"] = refused
                items.append(item)
                if probe is not None:
                    real, soname = probe
                    if not isinstance(real, str) or not (soname is None or isinstance(soname, str)):
                        return None
                    probes[path] = (real, soname)
    except (TypeError, ValueError):  # not a pair, not a 6-tuple
        return None
    return groups, probes


def _cache_key() -> tuple[Any, ...]:
    from ._cache import env_key

    uids = (os.getuid(), os.geteuid()) if hasattr(os, "geteuid") else ()
    return (_FORMAT, sys.platform, sys.executable, sys.implementation.cache_tag, uids, env_key())


def listing() -> Groups:
    """What `libbroker list` prints (without ``--package``): `visible_libraries` with each
    file's ``"version"`` and ``"version_source"`` (design.md 5.2).

    On Linux, each of the two parts (scanned groups, provider groups) comes from the disk
    cache while all its inputs are unchanged (module docstring), else is read afresh and
    stored. Other platforms read everything afresh.
    """
    if not sys.platform.startswith("linux"):
        return _uncached()
    # Not binascii: its shared library links libz, and libbroker must not map a libz
    # of its own choosing into the process it judges (one copy per process).
    import _libbroker_warm

    from . import _cache

    key = _cache_key()
    kind = f"{_CACHE_KIND}-{_libbroker_warm.crc32(repr(key).encode('utf-8', 'surrogateescape')) % _SLOTS}"
    cached = _cache.load(kind)
    if cached.get("key") != key:
        cached = {"key": key}
    probes: dict[str, Probe] = {}
    results: dict[str, Groups] = {}
    changed = False
    for name, compute in (("scanned", _compute_scanned), ("providers", _compute_providers)):
        replayed = _replay(cached.get(name))
        if replayed is None:
            groups, found, entry = _part(compute)
            cached[name] = entry
            changed = True
        else:
            groups, found = replayed
        results[name] = groups
        probes.update(found)
    if changed:
        _cache.store(kind, cached)
    scanned = results["scanned"]
    listed = {"override": scanned.pop("override", [])}
    listed.update(results["providers"])
    listed.update(scanned)
    _live_versions(listed, probes)
    return listed


def _compute_scanned(inputs: _Inputs) -> Groups:
    from ._config import load_config

    inputs.stamps.append(("@config", _config_identity()))
    config = load_config()
    from ._cache import config_path

    path = config_path()
    if path:
        inputs.realpath(path)  # whether it is used depends on the directories above it
    return _scanned_groups("linux", config, inputs)


def _config_identity() -> object:
    from ._cache import config_stamp

    return config_stamp()[1]


def _compute_providers(inputs: _Inputs) -> Groups:
    inputs.stamps.append(("@config", _config_identity()))  # trusted-owners judge providers' files
    _provider_search_stamps(inputs)
    return _provider_groups(inputs)


def _uncached() -> Groups:
    groups = visible_libraries()
    inputs = _Inputs()
    probes: dict[str, Probe] = {}
    for items in groups.values():
        for item in items:
            _file_facts(item, inputs, probes)
    _live_versions(groups, probes)
    return groups
