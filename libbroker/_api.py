"""The Python API: find, candidates, load, loaded, get_include.

`find` answers from three layers: an in-process dict (microseconds), the
on-disk index (validated by directory mtimes and file identities, no ELF
parsing), and a full search. Only the last imports packaging or tomllib.
"""

import os
import sys
import time

from . import _cache
from ._errors import LibraryNotFoundError
from ._types import Candidate, Dependency, Library, LibraryInfo

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import ModuleType

_FIND_KIND = "find"
# In every find key: entries written before versions came only from `_versions` with
# their source (design.md 5.2) may hold a file name's interface numbers; never read them.
# 3: entries carry the judged identity of the file and of each dependency (design.md 5.1).
_VERSIONS_GENERATION = 3
_RECHECK_SECONDS = _cache._RECHECK_SECONDS  # one second, everywhere answers are given again
_NONE = type(None)
_FIELD_TYPES: dict[str, object] = {
    "name": str, "path": str, "origin": str, "soname": (str, _NONE), "version_text": (str, _NONE),
    "version_source": (str, _NONE), "dependencies": list,  # an entry without its closure is re-judged
}
_PENDING_FIELD = "version_pending"  # the version was not needed: asked when read (`LibraryInfo`)
_REAL_FIELD = "real"  # the judged file's resolved path, which a version asked later must name
_IDENTITY_FIELD = "identity"  # kept out of LibraryInfo's keyword arguments
_memo: dict[tuple[object, ...], tuple[float, LibraryInfo, list[object]]] = {}
_LOADER = f"{__package__}._loader"


def get_include() -> str:
    """The directory holding libbroker.h (add it to a consumer's include path)."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "include")


def _loader_in_use() -> "ModuleType | None":
    """libbroker._loader if anything was loaded yet (else no copy can exist)."""
    return sys.modules.get(_LOADER)


def _loaded_copy(name: str, version: str | None) -> Library | None:
    loader = _loader_in_use()
    copies: list[Library] = loader.loaded_named(name) if loader is not None else []
    if not copies:
        return None
    if version is None:
        return copies[0]
    from ._resolve import checked_version, parse_specifier

    specifier = parse_specifier(version)
    for library in copies:
        seen = checked_version(library.version_text, specifier)
        if seen is not None and specifier is not None and specifier.contains(seen, prereleases=True):
            return library
    return None


def find(name: str, version: str | None = None, *, packages: "Sequence[str]" = ()) -> LibraryInfo:
    """Locate library *name* (a link name such as "z"), never loading it.

    Order (design.md 3.5): overrides, then a copy libbroker already loaded that
    satisfies *version* (one copy per process), then providers, packages, the
    environment and the system.
    """
    if not isinstance(name, str) or not name or os.sep in name or name != name.strip():
        _check_name(name, "find")  # raises; the test above keeps the warm path to one check
    try:
        info = _find(name, version, packages)
    except LibraryNotFoundError as exc:
        # A copy found through a spec's `packages` is not on the default search
        # path, but once loaded it is the process's copy. Not past a config pin
        # (review F9): the pin is the only place searched, and its fix is the answer.
        pinned = f"[libraries.{name}] pins "
        copy = None if any(pinned in place for place in exc.searched) else _loaded_copy(name, version)
        if copy is None:
            raise
        return copy
    loader = _loader_in_use()
    if loader is not None and loader._by_name and info.origin != "override":
        copy = _loaded_copy(name, version)
        if copy is not None:
            return copy
    if not info._version_pending and info.version_text is None:
        # Its version is knowable without loading once something mapped it (a pending
        # version asks the mapped copy first anyway, when it is read).
        from ._resolve import _version_if_mapped

        # The judged file only (review4 R4-7): after an upgrade the path names another one.
        real = info._real or os.path.realpath(info.path)
        same = info._identity is None or _cache.identity(real) == info._identity
        text = _version_if_mapped(real, name) if same else None
        if text:
            judged = info._identity
            info = LibraryInfo(
                name, info.path, soname=info.soname, origin=info.origin, version_text=text,
                version_source="library", dependencies=info.dependencies,
            )
            info._identity = judged  # the verdict's file: load() maps only that one
            info._real = real
    return info


_ids = (lambda: (os.getuid(), os.geteuid())) if hasattr(os, "geteuid") else (lambda: None)


def _find(name: str, version: str | None, packages: "Sequence[str]") -> LibraryInfo:
    # Who asks is part of the question: root and the current user are trusted by the place
    # rules, and a process may change its user (seteuid) between two finds (review6 N2).
    # (The ids themselves, not `_places.base_uids()`: a function-level import costs more
    # than the whole warm find.)
    key = (name, version, tuple(packages), _cache.env_key(), _VERSIONS_GENERATION, _ids())
    now = time.monotonic()
    hit = _memo.get(key)
    if hit is not None:
        checked, info, stamps = hit
        if now - checked < _RECHECK_SECONDS or _cache.stamps_valid(stamps):
            if now - checked >= _RECHECK_SECONDS:
                _memo[key] = (now, info, stamps)
            return info
    disk = _cache.load(_FIND_KIND).get(key)
    if disk is not None:
        try:
            stamps, fields = disk
            fields = dict(fields)  # the entry may be this process's own pending update (`_cache`)
            ident = fields.pop(_IDENTITY_FIELD, None)
            pending = fields.pop(_PENDING_FIELD, False)
            real = fields.pop(_REAL_FIELD, None)
            if (_is_identity(ident) and type(pending) is bool and isinstance(real, (str, _NONE))
                    and _cache.typed(fields, _FIELD_TYPES)):
                valid = _cache.stamps_valid(stamps)
                if not valid and not packages:
                    # Only a sys.path directory changed (a pip install) and the same
                    # providers are there: the verdict stands (`_cache.refreshed`).
                    from ._distinfo import provider_snapshot

                    fresh = _cache.refreshed(stamps, provider_snapshot)
                    if fresh is not None:
                        stamps, valid = fresh, True
                        _cache.update(_FIND_KIND, key, (stamps, {
                            **fields, _IDENTITY_FIELD: ident, _PENDING_FIELD: pending,
                            _REAL_FIELD: real}))
                if valid:
                    info = LibraryInfo(**fields)
                    info._identity = ident
                    info._version_pending = pending and info._version_text is None
                    info._real = real
                    _memo[key] = (now, info, stamps)
                    return info
        except (TypeError, ValueError, AttributeError, KeyError):
            pass  # an entry of another shape (corrupt or foreign cache): resolve afresh
    from ._resolve import resolve

    resolution = resolve(name, version, packages=packages)
    chosen = resolution.chosen
    if chosen is None:
        raise resolution.error(version)
    info = info_of(chosen)
    stamps = _closure_stamps(resolution.search.stamps, chosen, chosen.dependencies)
    _memo[key] = (now, info, stamps)
    fields = {
        "name": info.name,
        "path": info.path,
        "soname": info.soname,
        "origin": info.origin,
        "version_text": info._version_text,
        "version_source": info._version_source,
        "dependencies": [(d.needed, d.path, d.origin, d._identity) for d in info.dependencies],
        _IDENTITY_FIELD: info._identity,
        _PENDING_FIELD: info._version_pending,
        _REAL_FIELD: info._real,
    }
    _cache.update(_FIND_KIND, key, (stamps, fields))
    return info


def _forget(path: str) -> None:
    """Drop the in-process verdicts naming *path* (its file was replaced since)."""
    for key in [k for k, (_, info, _) in _memo.items() if info.path == path]:
        _memo.pop(key, None)


def info_of(cand: Candidate) -> LibraryInfo:
    """The LibraryInfo of an accepted candidate (its closure and version source kept)."""
    info = LibraryInfo(
        cand.name,
        os.path.abspath(cand.path),
        soname=cand.soname,
        origin=cand.origin,
        version_text=cand._version_text,
        version_source=cand._version_source,
        dependencies=cand.dependencies,
    )
    info._identity = cand._identity
    info._version_pending = cand._version_pending
    info._real = cand._real
    return info


def _is_identity(value: object) -> bool:
    return isinstance(value, tuple) and len(value) == 7 and all(type(x) is int for x in value)


def _closure_stamps(
    search_stamps: "Sequence[object]", chosen: "Candidate | LibraryInfo", dependencies: "list[Dependency]"
) -> "list[object]":
    """Cache stamps covering the chosen file and every file of its closure (`_cache`), each
    with the identity it had when judged (a file replaced since voids the entry)."""
    judged = {chosen.path: chosen._identity, **{d.path: d._identity for d in dependencies}}
    return _cache.decision_stamps(
        list(search_stamps), [chosen.path, *(d.path for d in dependencies)], judged,
        refreshable=True,
    )


def candidates(
    name: str, version: str | None = None, *, packages: "Sequence[str]" = ()
) -> list[Candidate]:
    """Every file seen for *name*, in rank order, each `.accepted` or with its `.reason`.

    A copy already mapped in this process that `load()` would reuse instead of
    the first accepted file (design.md 5.1, one copy per process) comes first,
    accepted, with its true origin, so the list says what `load()` will do.
    """
    from ._resolve import resolve

    _check_name(name, "candidates")
    found = resolve(name, version, packages=packages, stop_at_first=False).candidates
    first = next((c for c in found if c.accepted), None)
    if first is None or first.origin == "override":
        return found
    mapped = _mapped_reusable(name, version, os.path.realpath(first.path))
    if mapped is None:
        return found
    path, text = mapped
    cand = Candidate(name, path, _origin_of(os.path.realpath(path)), accepted=True, version_text=text)
    cand.version_source = "library" if text else None
    for rank, other in enumerate(found, start=1):
        other.rank = rank
    return [cand, *(c for c in found if os.path.realpath(c.path) != os.path.realpath(path))]


def _mapped_reusable(name: str, version: str | None, chosen_real: str) -> "tuple[str, str | None] | None":
    """(path, version text) of a mapped copy of *name* other than *chosen_real* that
    satisfies *version*, else None. Never loads anything (RTLD_NOLOAD probes)."""
    from . import _master
    from ._resolve import library_version_text

    for path in _mapped_named(name):
        if os.path.realpath(path) == chosen_real:
            return None
        handle = _master.noload(path)
        if not handle:
            continue
        text = library_version_text(handle, name, os.path.basename(path))
        _dlclose(handle)
        if _specifier_problem(version, text) is None:
            return path, text
    return None


def _check_name(name: object, what: str) -> str:
    if not isinstance(name, str) or not name or name != name.strip() or "\0" in name or (
        what != "load" and os.sep in name
    ):
        from ._errors import SpecError

        raise SpecError(
            f"expected a library link name such as 'z' (for libz.so.1), found {name!r}",
            path=f"{what}() argument",
        )
    return name


def load(name_or_path: str | os.PathLike[str] | bytes, version: str | None = None) -> Library:
    """Load a library privately (RTLD_LOCAL) by link name or absolute path.

    Loads once per file: the same object comes back for the same file. By
    name, loading follows the verdict (design.md 5.1): a copy already mapped
    in the process that satisfies *version* is reused; otherwise each accepted
    candidate is tried in rank order, its closure mapped bottom-up by absolute
    path, and a candidate that fails to load or reports a version outside
    *version* is unloaded again and the next one tried. Raises
    `NoAcceptableLibraryError` listing every rejection and failure,
    `LibraryNotFoundError` when no copy exists, `IncompatibleLibraryError` for
    a path that cannot load or when a copy in the global symbol scope would
    take over the new copy's internal calls.
    """
    from . import _loader

    if isinstance(name_or_path, (bytes, os.PathLike)):
        name_or_path = os.fsdecode(name_or_path)
    name_or_path = _check_name(name_or_path, "load")
    if os.sep in name_or_path or (os.altsep and os.altsep in name_or_path):
        dependencies: list[Dependency] = []
        judged: tuple[int, ...] | None = None
        if os.path.isabs(name_or_path):
            dependencies, judged = _prepare_path(name_or_path)
        # The file whose closure was judged, or a refusal before dlopen (design.md 5.1).
        library = _loader.load_file(name_or_path, identity=judged)
        if not library.dependencies:
            library.dependencies = dependencies
        _refine_version(library)
        if version is not None:
            _check_loaded_version(library, version)
        return library
    name = name_or_path
    copy = _loaded_copy(name, version)
    if copy is not None and not _overridden_elsewhere(name, version, copy):
        return copy
    return _load_by_name(name, version)


def _overridden_elsewhere(name: str, version: str | None, copy: Library) -> bool:
    """True when an override (LIBBROKER_PATH or a config pin) names another file than
    the *copy* libbroker already loaded: design.md 5.1 loads the override as a second
    copy, with a DuplicateLibraryWarning, rather than serving the first one.

    Costs nothing unless an override source exists (the variable is set or a config
    file is present); then it is the warm `find`, which is memoised.
    """
    if not os.environ.get("LIBBROKER_PATH"):
        config = _cache.config_path()
        if config is None or not os.path.exists(config):
            return False
    try:
        info = _find(name, version, ())
    except LibraryNotFoundError:
        return False
    return info.origin == "override" and os.path.realpath(info.path) != os.path.realpath(copy.path)


def _prepare_path(path: str) -> "tuple[list[Dependency], tuple[int, ...] | None]":
    """For `load(path)`: judge the file's closure and map it bottom-up by path, so
    ld.so never searches for a dependency (design.md 5.1). Files the loader must
    refuse for their own sake (unsafe place, not a library...) are left to it.
    Returns the closure and the identity of the file it was judged for (None
    when nothing was judged here)."""
    from . import _closure, _loader
    from ._closure import read_facts, resolve_closure
    from ._errors import IncompatibleLibraryError

    real = os.path.realpath(path)
    facts = read_facts(real)
    if isinstance(facts, str) or facts.kind != "shared" or _loader.loaded_named(os.path.basename(path)):
        return [], None
    closure = resolve_closure(real)  # the file's own machine/word size/glibc first, then its closure
    judged = _closure._read_as.get(real)  # the identity whose headers the closure was read from
    if not closure.ok:
        raise IncompatibleLibraryError(path, closure.reason or "its closure cannot be loaded", fix=closure.fix)
    for dep in closure.dependencies:
        try:
            _loader.dlopen_checked(dep.path, identity=dep._identity)  # the judged file, mapped by fd
        except OSError as exc:
            raise IncompatibleLibraryError(
                path, f"its dependency {dep.path!r} failed to load: {_dlopen_text(exc)}",
                fix="retry: libbroker checks the new file afresh" if _changed(exc) else None,
            ) from exc
    conflict = _interposition(real)
    if conflict is not None and not _deepbind(real):
        raise IncompatibleLibraryError(path, conflict)
    return list(closure.dependencies), judged


def _changed(exc: OSError) -> bool:
    """True when the loader refused a file because it is not the one judged (`_loader`)."""
    return "changed since it was checked" in _dlopen_text(exc)


def _load_by_name(name: str, version: str | None) -> Library:
    from ._errors import IncompatibleLibraryError, NoAcceptableLibraryError

    failures: list[tuple[str, str]] = []
    tried: set[str] = set()
    first: LibraryInfo | None = None
    if version is None:
        # The fast path: the cached verdict. With a version, a better-ranked copy whose
        # version is known only once loaded must be asked first, so every candidate is.
        try:
            first = find(name, version)
        except LibraryNotFoundError:
            first = None
    if isinstance(first, Library):
        if version is not None:
            _check_loaded_version(first, version)
        return first
    if first is not None:
        mapped = _mapped_copy(name, version, first)
        if mapped is not None:
            return mapped
        tried.add(os.path.realpath(first.path))
        library = _try_load(first, version, failures)
        if library is not None:
            return library
        if failures and "changed since it was checked" in failures[-1][1]:
            # The cached verdict was about a file since replaced: judge the new one afresh.
            failures.pop()
            tried.discard(os.path.realpath(first.path))
            _forget(first.path)
    # Every candidate, those of unknown version too (the library is asked).
    from ._resolve import resolve

    resolution = resolve(name, version, stop_at_first=False, defer_unknown=True)
    rejected: list[tuple[str, str]] = []
    for cand in resolution.candidates:
        if not cand.accepted:
            rejected.append((cand.path, cand.reason))
            continue
        if os.path.realpath(cand.path) in tried:
            continue
        tried.add(os.path.realpath(cand.path))
        info = info_of(cand)
        if first is None:
            mapped = _mapped_copy(name, version, info)
            if mapped is not None:
                return mapped
            first = info
        library = _try_load(info, version, failures)
        if library is not None:
            warn_skipped(failures, library.path)
            return library
    rejected += failures
    if not rejected:
        raise resolution.error(version)
    error = NoAcceptableLibraryError(
        name, version=version, searched=resolution.search.searched, rejected=rejected,
        hint=_resolve_fix_hint(name, version, rejected),
    )
    if failures and isinstance(failures[0][1], str) and failures[0][1].startswith("refused:"):
        raise IncompatibleLibraryError(failures[0][0], failures[0][1][len("refused: "):]) from error
    raise error


def warn_skipped(failures: "list[tuple[str, str]]", used: str) -> None:
    """A BrokerWarning for each better-ranked file that was accepted but did not load (a
    dlopen error, a version only the library tells), when *used* serves instead: a user who
    put a copy first (LIBBROKER_PATH, a pin) learns why it is not the one in use (review5 F7)."""
    if not failures:
        return
    import warnings

    from ._errors import BrokerWarning

    for path, reason in failures:
        warnings.warn(f"libbroker: {path!r} was accepted but not used: {reason}; using {used!r} "
                      f"instead", BrokerWarning, stacklevel=3)


def _resolve_fix_hint(name: str, version: str | None, rejected: "list[tuple[str, str]]") -> str:
    from ._resolve import fix_hint

    return fix_hint(name, version, rejected)


def _dlopen_text(exc: OSError) -> str:
    # _master raises OSError(0, dlerror text, path): never show "[Errno 0]".
    return exc.strerror or (exc.args[1] if len(exc.args) > 1 else "") or "dlopen failed without a message"


def _dlclose(handle: int) -> None:
    from . import _master

    _master.dlclose(handle)


def _specifier_problem(version: str | None, text: str | None) -> str | None:
    if version is None:
        return None
    from ._resolve import checked_version, parse_specifier

    specifier = parse_specifier(version)
    if specifier is None:
        return None
    parsed = checked_version(text, specifier)
    if parsed is None:
        return f"its version is unknown (the library does not say), so the specifier {version!r} cannot be checked"
    if not specifier.contains(parsed, prereleases=True):
        return f"version {str(parsed)!r} (from the library itself) is outside the specifier {version!r}"
    return None


def _try_load(info: LibraryInfo, version: str | None, failures: "list[tuple[str, str]]") -> Library | None:
    """Map *info*'s closure bottom-up, then the file; None (and a failure noted) when it
    fails or its own version is outside *version*. What it mapped is unmapped again."""
    from . import _loader, _master
    from ._errors import IncompatibleLibraryError
    from ._resolve import library_version_text

    real = os.path.realpath(info.path)
    opened: list[int] = []

    def undo() -> None:
        for handle in reversed(opened):
            _dlclose(handle)

    for dep in info.dependencies:
        # Every one by its path, "mapped" ones too: a cached verdict may come from a
        # process where they were mapped, and ld.so must not search for them here.
        try:
            opened.append(_loader.dlopen_checked(dep.path, identity=dep._identity))  # the judged file, by fd
        except OSError as exc:
            undo()
            failures.append((info.path, f"its dependency {dep.path!r} failed to load: {_dlopen_text(exc)}"))
            return None
    conflict = _interposition(real)
    if conflict is not None and not _deepbind(real):
        undo()
        failures.append((info.path, "refused: " + conflict))
        return None
    was_mapped = bool(_master.noload(real))
    try:
        # The judged file only (design.md 5.1): one replaced since is refused before dlopen.
        probe = _loader.dlopen_checked(real, identity=info._identity)
    except OSError as exc:
        undo()
        failures.append((info.path, f"failed to load: {_dlopen_text(exc)}"))
        return None
    opened.append(probe)
    # A version nobody needed yet (`LibraryInfo._version_pending`) is not read here: the
    # loaded library is asked first, and the other sources only when a specifier needs them
    # or `.version` is read.
    pending = info._version_pending
    text, source = info._version_text, info._version_source
    if not info.origin.startswith("provider:"):
        asked = library_version_text(probe, info.name, info.soname)
        if asked:
            text, source, pending = asked, "library", False
    if pending:
        # A loaded Library's version is fixed now, from the file just mapped (the judged
        # identity): asked later, an upgrade of the path would answer for another file.
        text, source, pending = info.version_text, info.version_source, False
    problem = _specifier_problem(version, text)
    if problem is not None:
        if was_mapped:
            opened.pop()  # mapped before us: only our own reference is dropped
            _dlclose(probe)
        undo()
        failures.append((info.path, problem))
        return None
    try:
        library = _loader.load_file(
            info.path, name=info.name, origin=info.origin, soname=info.soname,
            version_text=text, judged=True, identity=info._identity,
        )
    except IncompatibleLibraryError as exc:
        undo()
        failures.append((info.path, f"failed to load: {exc.reason}"))
        return None
    if text and library.version_text != text:
        library._set_version_text(text, source)
    elif library.version_source is None and library.version_text:
        library.version_source = source
    if not library.dependencies:
        library.dependencies = list(info.dependencies)
    _dlclose(probe)  # load_file holds its own reference; the dependencies stay mapped with it
    return library


def discard(library: Library) -> None:
    """Forget and unmap a library loaded only to be rejected (nothing else holds it).

    Safe because it is called right after loading, before any table or caller
    got its handle; its dependencies stay mapped only while something needs them.
    """
    from . import _loader

    with _loader._lock:
        for table in (_loader._by_identity,):
            for key in [k for k, v in table.items() if v is library]:
                del table[key]
        for libs in _loader._by_name.values():
            while library in libs:
                libs.remove(library)
        while library in _loader._order:
            _loader._order.remove(library)
    _dlclose(library.handle)


# (`_master.loaded_objects_version()`, link name -> absolute paths of the mapped objects of
# that link name, in mapping order): fifty tables built in a row index the objects once.
_mapped_index: "tuple[int, dict[str, list[str]]] | None" = None
_link_of_path: "dict[str, str | None]" = {}  # mapped path -> its link name (a pure function of the name)


def _mapped_named(name: str) -> "list[str]":
    """The absolute paths of the objects mapped in the process whose file name has link
    name *name* (`_discovery.link_name_of`), in `_master.loaded_objects()` order."""
    global _mapped_index
    from . import _master
    from ._discovery import link_name_of

    version = _master.loaded_objects_version()
    index = _mapped_index
    if index is None or index[0] != version:
        by_name: dict[str, list[str]] = {}
        for path, _ in _master.loaded_objects():
            link = _link_of_path.get(path, "")
            if link == "":  # a path not seen before (each table maps one more object)
                link = link_name_of(os.path.basename(path)) if os.path.isabs(path) else None
                if len(_link_of_path) > 4096:
                    _link_of_path.clear()
                _link_of_path[path] = link
            if link is not None:
                by_name.setdefault(link, []).append(path)
        # Indexed from a list read after the version: an object mapped in between moves
        # the version again, so the next call indexes again (never a list without it).
        index = _mapped_index = (version, by_name)
    return index[1].get(name, [])


def _mapped_copy(name: str, version: str | None, chosen: LibraryInfo) -> Library | None:
    """A copy of *name* already mapped by anyone, reused when it satisfies *version*.

    design.md 5.1 "One copy per process counts every copy": a mapped copy other
    than *chosen* is reused (by its path, so no second copy is mapped) unless
    *chosen* is an override; when it does not satisfy *version*, the second copy
    is loaded with a DuplicateLibraryWarning naming both files.
    """
    from . import _loader, _master
    from ._resolve import library_version_text

    real = os.path.realpath(chosen.path)
    for path in _mapped_named(name):
        other = os.path.realpath(path)
        if other == real:
            return None  # the chosen file itself is mapped: load_file reuses it
        handle = _master.noload(other)
        if not handle:
            continue
        text = library_version_text(handle, name, os.path.basename(path))
        _dlclose(handle)  # the NOLOAD probe took a reference
        if chosen.origin != "override" and _specifier_problem(version, text) is None:
            library = _loader.load_file(path, name=name, origin=_origin_of(other), version_text=text)
            if text:
                library._set_version_text(text, "library")
            return library
        import warnings

        from ._errors import DuplicateLibraryWarning

        why = "an override names another file" if chosen.origin == "override" else (
            f"it does not satisfy {version!r} (version {text!r})"
        )
        warnings.warn(
            f"a second copy of {name!r} is loaded: {chosen.path!r}, while {path!r} is already "
            f"mapped in this process ({why})",
            DuplicateLibraryWarning,
            stacklevel=4,
        )
        return None
    return None


def _origin_of(path: str) -> str:
    """Where a file mapped by someone else lives: "environment", "system" or "path"."""
    from ._discovery import environment_dirs

    directory = os.path.dirname(path)
    if sys.platform == "win32":  # the Windows places (_platforms._windows), compared as NTFS does
        from ._platforms import _windows

        for place in _windows.host_search_places():
            if place.directory and _windows.same_place(place.directory, directory):
                return place.origin
        return "path"
    if any(directory == os.path.realpath(d) for d in environment_dirs()):
        return "environment"
    from ._closure import system_dirs

    if any(directory == os.path.realpath(d) for d in system_dirs()) or directory.startswith(("/usr/", "/lib")):
        return "system"
    return "path"


def _interposition(real: str) -> str | None:
    """Why loading *real* privately is refused: a copy in the global symbol scope
    defines functions it exports, so its own internal calls would bind there
    (design.md 5.1). None when no such copy exists."""
    from . import _master
    from ._closure import read_facts

    facts = read_facts(real)
    if isinstance(facts, str) or not facts.functions:
        return None
    hits: list[tuple[str, int]] = _master.global_symbols(sorted(facts.functions), 3)
    if not hits:
        return None
    owner = _owner_of(hits[0][1])
    if owner is not None and os.path.realpath(owner) == real:
        return None
    names = ", ".join(s for s, _ in hits)
    return (
        f"{owner or 'another object'!r} in the global symbol scope (loaded RTLD_GLOBAL or by the "
        f"executable) already defines {names}, which {real!r} exports: the private copy's "
        "internal calls would bind to that copy; set isolation = \"deepbind\" in the config file "
        "to load it with RTLD_DEEPBIND, or use the copy already loaded"
    )


def _deepbind(real: str) -> bool:
    """With config `isolation = "deepbind"`, map *real* with RTLD_DEEPBIND first (True).

    The flags of the first mapping decide how the object's own references bind:
    with RTLD_DEEPBIND its own definitions come before the global scope. The
    loader's later dlopen of the same file returns this same object.
    """
    if _isolation() != "deepbind":
        return False
    from _ctypes import dlopen as c_dlopen

    rtld_now, rtld_deepbind = 0x2, 0x8  # <dlfcn.h> on glibc
    try:
        c_dlopen(real, rtld_now | rtld_deepbind)
    except OSError:
        return False  # the loader's own dlopen reports the failure
    return True


def _isolation() -> str | None:
    from ._config import load_config
    from ._errors import BrokerError

    try:
        return getattr(load_config(), "isolation", None)
    except BrokerError:  # a broken config is reported by find(); the safe default applies
        return None


def _owner_of(address: int) -> str | None:
    from . import _master

    best: tuple[int, str] | None = None
    for path, base in _master.loaded_objects():
        if base <= address and (best is None or base > best[0]):
            best = (base, path)
    return best[1] if best else None


def _refine_version(library: Library) -> None:
    """Ask the loaded library its own version (design.md 5.2 source "library")."""
    if library.origin.startswith("provider:"):
        return  # the manifest states the version
    from ._resolve import library_version_text

    text = library_version_text(library.handle, library.name, library.soname)
    if text:
        library._set_version_text(text, "library")


def _check_loaded_version(library: Library, version: str) -> None:
    from ._errors import IncompatibleLibraryError
    from ._resolve import checked_version, parse_specifier

    specifier = parse_specifier(version)
    if specifier is None:
        return
    seen = checked_version(library.version_text, specifier)
    if seen is None or not specifier.contains(seen, prereleases=True):
        raise IncompatibleLibraryError(
            library.path,
            f"version {library.version_text!r} is outside the specifier {version!r}",
            fix=f"install a version matching {version!r}, or relax the specifier",
        )


def loaded() -> list[Library]:
    """What libbroker loaded in this process."""
    from . import _loader

    return _loader.loaded()

