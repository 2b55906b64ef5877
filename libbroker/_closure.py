"""The dependency closure of a library, resolved the way the system loader would.

`resolve_closure(path)` follows every ``DT_NEEDED`` recursively, choosing for
each name the file glibc's ld.so would map (``elf/dl-load.c``,
``_dl_map_object``), in its order:

1. a copy already mapped in this process whose SONAME (or file name) matches:
   ld.so reuses it, whoever mapped it (``_master.loaded_objects()``);
2. a provider wheel that offers the library (libbroker maps it first, by
   absolute path, so the soname match binds the dependent to it);
3. the requester's ``DT_RPATH`` and then its loaders' (only when the requester
   has no ``DT_RUNPATH``), then the interpreter executable's;
4. ``LD_LIBRARY_PATH``;
5. the requester's ``DT_RUNPATH`` (never inherited);
6. ``/etc/ld.so.cache``, glibc-hwcaps subdirectories chosen for this CPU first;
7. the default directories.

``$ORIGIN``, ``$LIB`` and ``$PLATFORM`` (and their ``${...}`` forms) are
expanded. An empty or relative search-path entry would mean the current
directory: it is never used (the closure is mapped bottom-up by absolute path,
so ld.so never searches it either). A file of the wrong class or machine is
skipped as ld.so skips it; a file in an unsafe place is skipped and named.

On Windows and macOS the same `Closure` is filled by `_platforms.closure`
from the loader rules of `_platforms._windows` (the safe DLL search) and
`_platforms._macos` (dyld); everything below is the ELF path.

Every symbol version a file needs (``GLIBC_*``, ``GLIBCXX_*``, ``CXXABI_*``,
``OPENSSL_*``...) is checked against the version definitions of the copy that
will serve it, and the C library flavour (glibc or musl) must be the
interpreter's. The result is memoised per file identity and environment.
"""

from __future__ import annotations

import os
import sys

from ._cache import realpath as _cache_realpath  # given again for a second
from ._types import Dependency

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ._binary import BinaryInfo

_MAX_DEPTH = 32  # glibc has no limit; real closures are < 10 deep
_MAX_FILES = 1024  # bounds a crafted or cyclic closure
_MEMO_LIMIT = 512

# The C library and the dynamic loader: resolved (their version definitions
# are checked) but not listed in `.dependencies` (design.md 5.3).
_RUNTIME_PREFIXES = ("libc.so", "libc.musl-", "ld-linux", "ld64.so", "ld-musl-", "ld.so")


class Closure:
    """The verdict on a file's closure.

    `dependencies`: `list[Dependency]` in load order (dependencies before
    dependents, the file itself excluded, C library and loader excluded).
    `reason`: None when every file would load, else why not, naming the
    dependency; `fix`: what to do about that reason; `paths`: every file of
    the closure (for cache stamps); `searched`: every directory the search looked
    in before the copy it chose, for any member (RPATH/LD_LIBRARY_PATH/RUNPATH
    entries and their glibc-hwcaps subdirectories, ld.so.cache and default
    directories passed), and `inputs`: files it read to choose (ld.so.cache) -
    a file appearing in one of them changes the verdict (`_cache.decision_stamps`).
    """

    __slots__ = ("dependencies", "fix", "identities", "inputs", "notes", "path", "paths", "reason",
                 "searched")

    def __init__(self, path: str) -> None:
        self.path = path
        self.dependencies: list[Dependency] = []
        self.reason: str | None = None
        self.fix: str | None = None
        self.paths: list[str] = []
        self.searched: list[str] = []
        self.inputs: list[str] = []
        self.notes: list[str] = []  # entries and files skipped on the way, for reports
        self.identities: list[tuple[str, tuple[int, ...] | None]] = []  # for the memo

    @property
    def ok(self) -> bool:
        return self.reason is None

    def __repr__(self) -> str:
        verdict = "ok" if self.ok else f"rejected: {self.reason}"
        return f"<Closure {self.path!r} {len(self.dependencies)} dependencies, {verdict}>"


class _Node:
    """One file of the closure: its facts and the path it will be mapped from."""

    __slots__ = ("info", "origin", "path")

    def __init__(self, path: str, info: BinaryInfo, origin: str) -> None:
        self.path = path
        self.info = info
        self.origin = origin


_memo: dict[tuple[object, ...], Closure] = {}
_facts: dict[tuple[object, ...], BinaryInfo | str] = {}
_read_as: dict[str, tuple[int, ...] | None] = {}  # path -> identity its facts were last read for


def _identity(path: str) -> tuple[int, ...] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_mode, st.st_uid)


def read_facts(path: str) -> BinaryInfo | str:
    """The binary's headers, or the reason they cannot be read (memoised per identity)."""
    from ._binary import read_binary
    from ._errors import BrokerError

    key = (path, _identity(path))
    hit = _facts.get(key)
    if hit is not None:
        _read_as[path] = key[1]
        return hit
    try:
        result: BinaryInfo | str = read_binary(path)
    except BrokerError as exc:
        result = getattr(exc, "reason", None) or str(exc)
    if _identity(path) != key[1]:
        # Replaced while being read: these facts belong to no one identity (design.md 5.1).
        return "changed while it was being checked (replaced or edited); retry"
    _read_as[path] = key[1]
    if len(_facts) > 4 * _MEMO_LIMIT:
        _facts.clear()
    _facts[key] = result
    return result


def host_libc() -> str | None:
    """The interpreter's C library flavour: "glibc", "musl" or None (unknown)."""
    from ._binary import host_binary, host_glibc

    if host_glibc() is not None:
        return "glibc"
    from ._errors import BrokerError

    try:
        return host_binary().libc
    except BrokerError:  # an unreadable interpreter: no flavour check
        return None


def is_runtime(needed: str) -> bool:
    """True for the C library and the dynamic loader (never listed as dependencies)."""
    base = needed.rsplit("/", 1)[-1]
    return base.startswith(_RUNTIME_PREFIXES)


def place_problem(path: str) -> str | None:
    """Why *path* (a file to be mapped) is in an unsafe place, or None.

    Uses the trust rules of `_places` (design.md 5.1) when present.
    """
    try:
        from ._places import unsafe_reason
    except ImportError:
        return _world_writable(path)
    return unsafe_reason(path)


def _world_writable(path: str) -> str | None:
    # Fallback until `_places` lands: the file and its directory not world-writable.
    import stat

    for target in (_cache_realpath(path), os.path.dirname(_cache_realpath(path))):
        try:
            mode = os.stat(target).st_mode
        except OSError:
            return None
        if mode & stat.S_IWOTH and not (stat.S_ISDIR(mode) and mode & stat.S_ISVTX):
            return f"{target!r} is world-writable (mode {stat.S_IMODE(mode):o})"
    return None


class _Mapped:
    """SONAME or file name -> path of an object mapped in this process, as ld.so matches a
    DT_NEEDED name against what is loaded: the first object, in link-map order, whose file
    name or SONAME is the name. Facts are read lazily, only for the names asked and only
    up to the first match (a process maps dozens of objects; a closure needs a few)."""

    __slots__ = ("answers", "paths")

    def __init__(self) -> None:
        from . import _master

        self.answers: dict[str, str | None] = {}
        try:
            objects = _master.loaded_objects()
        except (AttributeError, MemoryError):  # an old master module, or no memory to list them
            objects = []
        self.paths = [path for path, _ in objects if path and os.path.isabs(path)]

    def get(self, needed: str) -> str | None:
        if needed in self.answers:
            return self.answers[needed]
        found: str | None = None
        for path in self.paths:
            if os.path.basename(path) == needed or _mapped_soname(path) == needed:
                found = path
                break
        self.answers[needed] = found
        return found


_sonames: dict[tuple[object, ...], str | None] = {}


def _mapped_soname(path: str) -> str | None:
    """The SONAME of the mapped object *path* (None: none, or unreadable), from its facts
    when they were read, else from its dynamic section alone (`_elf.read_soname`: the
    objects before libc in a process include libpython, whose full facts cost a
    millisecond), memoised per identity."""
    from ._binary import InvalidBinaryError
    from ._binary._elf import read_soname

    key = (path, _identity(path))
    facts = _facts.get(key)
    if facts is not None:
        return None if isinstance(facts, str) else facts.soname
    if key in _sonames:
        return _sonames[key]
    try:
        soname = read_soname(path)
    except InvalidBinaryError:
        soname = None
    if len(_sonames) > 4 * _MEMO_LIMIT:
        _sonames.clear()
    _sonames[key] = soname
    return soname


_links_memo: dict[tuple[object, ...], frozenset[str]] = {}


def _provided_links() -> frozenset[str]:
    """Link names some installed provider offers (one scan of the distributions per
    state of sys.path: installing or removing one changes its site directory's mtime)."""
    key_parts: list[object] = []
    for entry in sys.path:
        if entry and os.path.isabs(entry):
            try:
                key_parts.append((entry, os.stat(entry).st_mtime_ns))
            except OSError:
                key_parts.append((entry, None))
    key = tuple(key_parts)
    hit = _links_memo.get(key)
    if hit is not None:
        return hit
    from ._errors import BrokerError

    try:
        from ._providers import provider_names

        links = frozenset(provider_names())
    except (BrokerError, OSError, ValueError):  # a broken provider serves nothing here
        links = frozenset()
    _links_memo.clear()
    _links_memo[key] = links
    return links


def _lib_dir() -> str:
    """What ``$LIB`` expands to: Debian's multiarch directory, else lib64/lib."""
    triplet = getattr(sys.implementation, "_multiarch", "") or ""
    if triplet:
        return f"lib/{triplet}"
    return "lib64" if sys.maxsize > 2**32 else "lib"


def system_dirs() -> list[str]:
    """ld.so's built-in default directories (glibc's SYSTEM_DIRS for this layout)."""
    triplet = getattr(sys.implementation, "_multiarch", "") or ""
    if triplet:
        return [f"/lib/{triplet}", f"/usr/lib/{triplet}", "/lib", "/usr/lib"]
    if sys.maxsize > 2**32:
        return ["/lib64", "/usr/lib64", "/lib", "/usr/lib"]
    return ["/lib", "/usr/lib"]


def expand(entry: str, origin_dir: str) -> str:
    """Expand ``$ORIGIN``, ``$LIB``, ``$PLATFORM`` in one RPATH/RUNPATH entry."""
    platform = os.uname().machine if hasattr(os, "uname") else ""
    for token, value in (("ORIGIN", origin_dir), ("LIB", _lib_dir()), ("PLATFORM", platform)):
        entry = entry.replace("${" + token + "}", value).replace("$" + token, value)
    return entry


def ld_library_path_dirs(value: str | None = None) -> list[str]:
    """The directories ld.so reads from ``LD_LIBRARY_PATH`` (*value*, default the
    environment's), in order: split on ``:`` and ``;`` (glibc's ``fillin_rpath``
    separators), each entry's ``$ORIGIN`` (the executable's directory, as ld.so has it for
    this variable), ``$LIB`` and ``$PLATFORM`` expanded (review3 F3). Empty and relative
    entries are kept: the search refuses them by name (they mean the current directory)."""
    if value is None:
        value = os.environ.get("LD_LIBRARY_PATH")
    if not value:
        return []
    entries = value.replace(";", ":").split(":")
    if not any("$" in entry for entry in entries):
        return entries
    from ._cache import executable_dir

    origin = executable_dir()
    return [expand(entry, origin) if "$" in entry else entry for entry in entries]


class _Resolver:
    """One closure resolution: state shared by the recursive walk."""

    def __init__(self, closure: Closure, use_providers: bool) -> None:
        self.closure = closure
        self.use_providers = use_providers
        self.mapped = _Mapped()
        self.chosen: dict[str, _Node] = {}  # needed name / soname -> node
        self.done: set[str] = set()  # real paths already walked
        self.searched_set: set[str] = set()  # closure.searched, for membership
        self.flavour = host_libc()
        self.ld_path = os.environ.get("LD_LIBRARY_PATH", "")
        self._hwcaps: list[str] | None = None  # read when a search directory needs them
        self._executable_rpath: list[str] | None = None
        from ._binary import host_binary
        from ._errors import BrokerError

        try:
            self.host: BinaryInfo | None = host_binary()
        except BrokerError:  # an unreadable interpreter: no class/machine filter
            self.host = None

    def hwcaps(self) -> list[str]:
        if self._hwcaps is None:
            from ._ldcache import supported_hwcaps

            self._hwcaps = supported_hwcaps()
        return self._hwcaps

    def cache_paths(self, needed: str) -> list[str]:
        from ._ldcache import paths_for_soname

        return paths_for_soname(needed)

    def fits(self, path: str) -> str | None:
        """Why ld.so would skip *path* (None when it would take it)."""
        info = read_facts(path)
        if isinstance(info, str):
            return info
        host = self.host
        if host is not None and (info.elf_class, info.machine) != (host.elf_class, host.machine):
            return f"{info.bits}-bit {info.machine_name}, not this interpreter's"
        return None

    def directories(self, requester: _Node, chain: list[_Node]) -> list[tuple[str, str]]:
        """(directory, origin label) in ld.so's order for a name *requester* needs."""
        dirs: list[tuple[str, str]] = []
        info = requester.info
        if not info.runpath:
            for node in [requester, *reversed(chain)]:
                if node.info.runpath:
                    continue
                here = os.path.dirname(node.path)
                dirs += [(expand(d, here), "rpath") for d in node.info.rpath]
            host = self.host
            if host is not None and not host.runpath:
                here = os.path.dirname(host.path)
                dirs += [(expand(d, here), "rpath") for d in host.rpath]
        dirs += [(d, "LD_LIBRARY_PATH") for d in ld_library_path_dirs(self.ld_path)]
        here = os.path.dirname(requester.path)
        dirs += [(expand(d, here), "runpath") for d in info.runpath]
        return dirs

    def provider_path(self, needed: str) -> tuple[str, str] | None:
        if not self.use_providers:
            return None
        from ._discovery import link_name_of

        link = link_name_of(needed)
        if link is None or link not in _provided_links():
            return None
        from ._errors import BrokerError

        try:
            from ._providers import provider_files

            files, _ = provider_files(link)
        except (BrokerError, OSError, ValueError):  # a broken provider is reported by find()
            return None
        for provided in files:
            info = read_facts(provided.path)
            soname = None if isinstance(info, str) else info.soname
            if os.path.basename(provided.path) == needed or soname == needed:
                return provided.path, provided.origin
        return None

    def locate(self, needed: str, requester: _Node, chain: list[_Node]) -> _Node | str:
        """The node that will serve *needed*, or why none will."""
        skipped: list[str] = []
        if "/" in needed:
            if not os.path.isabs(needed):
                return f"its DT_NEEDED entry {needed!r} is a relative path (resolved against the current directory)"
            candidates: list[tuple[str, str]] = [(needed, "path")]
        else:
            mapped = self.mapped.get(needed)
            if mapped is not None:
                info = read_facts(mapped)
                if not isinstance(info, str):
                    return _Node(mapped, info, "mapped")
            candidates = []
            provided = self.provider_path(needed)
            if provided is not None:
                candidates.append(provided)
            for directory, label in self.directories(requester, chain):
                if not directory or not os.path.isabs(directory):
                    skipped.append(f"{label} entry {directory!r} (empty or relative: never searched)")
                    continue
                # glibc >= 2.33 looks in each directory's glibc-hwcaps/<level>/ first.
                candidates += [
                    (os.path.join(directory, "glibc-hwcaps", level, needed), label) for level in self.hwcaps()
                ]
                candidates.append((os.path.join(directory, needed), label))
            candidates += [(p, "ld.so.cache") for p in self.cache_paths(needed)]
            candidates += [(os.path.join(d, needed), "default") for d in system_dirs()]
        for path, origin in candidates:
            if not os.path.exists(path):
                self.passed(path, origin)
                continue
            why = self.fits(path)
            if why is None:
                why = place_problem(path)
                if why is not None:
                    why = f"unsafe place: {why}"
            if why is not None:
                skipped.append(f"{path} ({why})")
                self.passed(path, origin)
                continue
            info = read_facts(path)
            assert not isinstance(info, str)
            if origin == "ld.so.cache":
                self.read_cache()
            return _Node(path, info, origin)
        self.closure.notes.extend(skipped)
        detail = f"; skipped: {'; '.join(skipped)}" if skipped else ""
        return f"cannot be found (searched the way ld.so would: RPATH/RUNPATH, LD_LIBRARY_PATH, ld.so.cache, default directories){detail}"

    def passed(self, path: str, origin: str) -> None:
        """Note the directory (and ld.so.cache) a candidate was looked for in: the verdict
        holds only while nothing appears there (a copy earlier on the search path)."""
        if origin.startswith("provider"):
            return  # providers: the sys.path directories, stamped by the search itself
        closure = self.closure
        directory = os.path.dirname(path)
        if directory not in self.searched_set:
            self.searched_set.add(directory)
            closure.searched.append(directory)
        if origin == "ld.so.cache":
            self.read_cache()

    def read_cache(self) -> None:
        """The choice depended on ld.so.cache's content (a candidate of it was reached)."""
        if not self.closure.inputs:
            from ._ldcache import LD_SO_CACHE

            self.closure.inputs.append(LD_SO_CACHE)

    def walk(self, node: _Node, chain: list[_Node]) -> bool:
        """Resolve *node*'s needs depth-first; append dependencies after theirs."""
        real = _cache_realpath(node.path)
        if real in self.done:
            return True
        self.done.add(real)
        if len(self.done) > _MAX_FILES or len(chain) > _MAX_DEPTH:
            return self.fail(
                f"the dependency closure is deeper than {_MAX_DEPTH} or larger than {_MAX_FILES} files "
                f"at {node.path!r}",
                "check the library's DT_NEEDED entries for a loop of renamed copies",
            )
        flavour = node.info.libc
        if flavour and self.flavour and flavour != self.flavour:
            who = "it is" if not chain else f"its dependency {node.path!r} is"
            return self.fail(
                f"{who} linked against {flavour} libc but this interpreter runs on {self.flavour}",
                f"use a build of the library made for {self.flavour}",
            )
        served: dict[str, _Node] = {}
        for needed in node.info.needed:
            dep = self.chosen.get(needed)
            if dep is None:
                found = self.locate(needed, node, chain)
                if isinstance(found, str):
                    who = "" if not chain else f" (needed by {node.path!r})"
                    return self.fail(
                        f"its dependency {needed!r}{who} {found}",
                        f"install the package that provides {needed}, or a provider wheel for it, "
                        "or use a build of the library that bundles it next to itself with $ORIGIN",
                    )
                dep = found
                self.chosen[needed] = dep
                if dep.info.soname:
                    self.chosen.setdefault(dep.info.soname, dep)
                if not self.walk(dep, [*chain, node]):
                    return False
                if not is_runtime(needed):
                    self.closure.dependencies.append(Dependency(needed, dep.path, dep.origin))
                self.closure.paths.append(dep.path)
            served[needed] = dep
        return self.check_versions(node, served)

    def check_versions(self, node: _Node, served: dict[str, _Node]) -> bool:
        for needed, versions in node.info.version_needs.items():
            dep = served.get(needed) or self.chosen.get(needed)
            if dep is None:
                continue  # a verneed for a file not in DT_NEEDED: ld.so ignores it too
            defined = dep.info.version_defs
            missing = [v for v in versions if v not in defined]
            if not missing:
                continue
            wanted = missing[0]
            family = wanted.split("_", 1)[0] + "_"
            newest = _newest(defined, family)
            has = f"defines up to {newest}" if newest else f"defines no {family}* version"
            who = "it needs" if node.path == self.closure.path else f"{node.path!r} needs"
            return self.fail(
                f"{who} {wanted} from {needed} but {dep.path!r} (the copy that would serve it) {has}",
                f"install a newer {needed}, or use a build of the library made for this system's {needed}",
            )
        return True

    def fail(self, reason: str, fix: str) -> bool:
        self.closure.reason = reason
        self.closure.fix = fix
        return False


def _newest(defined: frozenset[str], family: str) -> str | None:
    best: tuple[tuple[int, ...], str] | None = None
    for name in defined:
        if not name.startswith(family):
            continue
        parts = name[len(family):].split(".")
        if all(p.isdigit() for p in parts):
            key = tuple(int(p) for p in parts)
            if best is None or key > best[0]:
                best = (key, name)
    return best[1] if best else None


def resolve_closure(path: str, *, use_providers: bool = True) -> Closure:
    """The closure of the shared library at *path* (absolute), judged without loading.

    Never raises for a bad file or dependency: `Closure.reason` says why.
    Memoised per file identity, `LD_LIBRARY_PATH` and the set of mapped objects.
    """
    from . import _master

    real = _cache_realpath(path)
    try:
        mapped_key = tuple(p for p, _ in _master.loaded_objects())
    except (AttributeError, MemoryError):
        mapped_key = ()
    key = (real, _identity(real), os.environ.get("LD_LIBRARY_PATH"), mapped_key, use_providers)
    hit = _memo.get(key)
    if hit is not None and all(_identity(p) == ident for p, ident in hit.identities):
        _note_searched(hit)
        return hit  # and no file of the closure changed since (one stat each)
    closure = Closure(real)
    info = read_facts(real)
    if isinstance(info, str):
        closure.reason = info
        closure.fix = "use a real shared library file"
    elif sys.platform == "win32" or sys.platform == "darwin":
        # The loader's own rules: the safe DLL search, or dyld's (_platforms).
        from ._platforms._closures import platform_closure

        platform_closure(closure, info, sys.platform, use_providers=use_providers)
    else:
        resolver = _Resolver(closure, use_providers)
        root = _Node(real, info, "path")
        from ._binary import check_compatible

        if resolver.host is not None:
            # Machine, class, byte order, glibc: the file itself first, as ld.so would.
            incompatible = check_compatible(info, resolver.host)
            if incompatible:
                closure.reason = incompatible
                closure.fix = "install a build of the library for this interpreter's machine and word size"
                _memo[key] = closure
                return closure
        # The file itself serves a dependency that needs it back (a cycle): ld.so
        # matches it by SONAME, it is not a dependency of its own.
        for alias in (info.soname, os.path.basename(path), os.path.basename(real)):
            if alias:
                resolver.chosen.setdefault(alias, root)
        resolver.walk(root, [])
        if not closure.ok:
            closure.dependencies = []
    closure.identities = [(p, _identity(p)) for p in closure.paths]
    if closure.ok and sys.platform != "win32" and sys.platform != "darwin":
        # Each dependency carries the identity its facts were judged on; one replaced
        # since (an upgrade racing us) voids the verdict: the loader maps only that identity.
        judged = dict(closure.identities)
        for dep in closure.dependencies:
            ident = judged.get(dep.path)
            if ident is None or _read_as.get(dep.path) != ident:
                closure.reason = f"its dependency {dep.path!r} changed while it was being checked; retry"
                closure.fix = "retry once the library's package has finished installing"
                closure.dependencies = []
                return closure
            dep._identity = ident
    if len(_memo) > _MEMO_LIMIT:
        _memo.clear()
    _memo[key] = closure
    _note_searched(closure)
    return closure


# The closure last resolved for each file (real path): what `_cache.decision_stamps`
# stamps besides the closure's files, without every caller passing it along.
_last: dict[str, Closure] = {}


def _note_searched(closure: Closure) -> None:
    if len(_last) > _MEMO_LIMIT:
        _last.clear()
    _last[closure.path] = closure


def searched_for(path: str) -> tuple[list[str], list[str]]:
    """(directories, input files) the last closure resolution of *path* looked in before
    the copies it chose (`Closure.searched`, `Closure.inputs`); empty when this process
    resolved no closure for *path*."""
    closure = _last.get(_cache_realpath(path))
    if closure is None:
        return [], []
    return list(closure.searched), list(closure.inputs)


def reused_for(path: str) -> set[str]:
    """The dependencies of *path*'s last closure that are copies this process already
    mapped (origin "mapped"): ld.so reuses them wherever they lie, so no place rule judged them."""
    closure = _last.get(_cache_realpath(path))
    if closure is None:
        return set()
    return {d.path for d in closure.dependencies if d.origin == "mapped"}


__all__ = [
    "Closure", "host_libc", "is_runtime", "place_problem", "resolve_closure", "reused_for", "searched_for",
    "system_dirs",
]
