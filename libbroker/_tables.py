"""`libbroker.table(spec)`: resolve, load, check, fill a table, hand out a capsule."""

from __future__ import annotations

import os

from . import _api, _cache, _loader, _registry
from ._errors import IncompatibleLibraryError, MissingSymbolError, SpecError
from ._types import Library

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

    from ._discovery import Entry
    from ._request import Request, Slot
    from ._resolve import Resolution
    from ._spec import Function, Spec
    from ._types import Candidate


def coerce_spec(spec: object) -> Spec:
    """A Spec from a Spec, a path to a TOML file, or TOML text."""
    from ._spec import Spec

    if isinstance(spec, Spec):
        return spec
    if isinstance(spec, os.PathLike):
        return Spec.from_file(os.fspath(spec))
    if isinstance(spec, str):
        if "\n" not in spec and "[" not in spec:
            return Spec.from_file(spec)
        return Spec.from_string(spec)
    raise SpecError(
        f"expected a Spec, a path to a spec file or TOML text, found {type(spec).__name__}"
    )


def table(spec: object) -> object:
    """The PyCapsule holding the function table for *spec* (one per library file and layout)."""
    parsed = coerce_spec(spec)
    # The consumer's path: a decision already on disk needs no search and no
    # ELF reading, only dlopen + dlsym.
    return _registry.capsule_for(parsed.spec_digest, lambda: build_table(parsed))


def symbols_for(spec: Spec | Request, entry: Entry | None = None) -> list[str]:
    """The symbols to look up: the spec's affixes, else the provider manifest's."""
    pre = spec.symbol_prefix or (entry and entry.prefix) or ""
    suf = spec.symbol_suffix or (entry and entry.suffix) or ""
    return [f"{pre}{fn.name}{suf}" for fn in spec.functions]


def _slots(spec: Spec | Request) -> Sequence[Function | Slot]:
    return spec.functions


def build_table(spec: Spec | Request) -> object:
    """Resolve, load and check the library for *spec*; register and remember its table."""
    from . import _master

    library, resolution = resolve_spec(spec)
    entry = chosen_entry(resolution)
    symbols = symbols_for(spec, entry)
    encoded = [s.encode() for s in symbols]
    addresses = _master.lookup_many(library.handle, encoded)
    missing = [
        sym for sym, fn, addr in zip(symbols, _slots(spec), addresses) if fn.required and not addr
    ]
    if missing:
        raise MissingSymbolError(library.path, missing, table=spec.name)
    capsule = _registry.register(library, spec.name, spec.layout_digest, spec.signatures, addresses)
    _remember(spec, library, resolution, encoded)
    return capsule


def chosen_entry(resolution: Resolution | None) -> Entry | None:
    """The search entry behind the chosen candidate (its provider affixes, if any)."""
    if resolution is None or resolution.chosen is None:
        return None
    return resolution.entries[resolution.candidates.index(resolution.chosen)]


def _remember(spec: Spec | Request, library: Library, resolution: Resolution | None, symbols: list[bytes]) -> None:
    """Write the warm-path index entry a consumer's next fresh import reads."""
    if resolution is None:
        return
    entry = {
        "format": _registry.ENTRY_FORMAT,
        # The config file's location: a function of environment variables the env key
        # pins; the compiled replay checks its stamp without recomputing the XDG rule.
        "config": _cache.config_path(),
        "env": _cache.env_key(),
        # Each file with the identity it was judged (and loaded) with: the warm path maps
        # only those (design.md 5.1), never a file that replaced one since.
        "stamps": _cache.decision_stamps(
            resolution.search.stamps, [library.path, *(d.path for d in library.dependencies)],
            {library.path: resolution.chosen._identity if resolution.chosen else None,
             **{d.path: d._identity for d in library.dependencies}},
            # A pip install that brings no provider leaves the verdict standing (re-stamped
            # by `_registry._from_disk`); a spec naming `packages` is judged afresh, as find's.
            refreshable=not spec.packages,
        ),
        "path": library.path,
        "link": library.name,
        "origin": library.origin,
        "soname": library.soname,
        "version": library.version_text,
        "version_source": library.version_source,
        "symbols": symbols,
        "required": [fn.required for fn in spec.functions],
        "signatures": list(spec.signatures),
        "layout": spec.layout_digest,
        "table": spec.name,
        # Each dependency's DT_NEEDED name with the copy judged for it, then the library's
        # own SONAME: a replay defers when another copy answers one of those names in the
        # process (the loader would bind to it; one copy per process counts every copy).
        "needed": [[d.needed, _cache.realpath(d.path)] for d in library.dependencies]
        + ([[library.soname, _cache.realpath(library.path)]] if library.soname else []),
        "request_crc": getattr(spec, "text_crc", None),
    }
    _cache.store(_registry.entry_kind(spec.spec_digest), entry)


def resolve_spec(spec: Spec | Request) -> tuple[Library, Resolution | None]:
    """The library serving *spec*: a loaded copy that satisfies it, else the best candidate.

    Candidates are judged without loading (format, machine, glibc, file-name or
    provider version, required symbols); with a version function the version is
    only known after loading, so each accepted candidate is loaded in rank order
    until one's version satisfies the specifier.
    """
    from ._discovery import Search
    from ._resolve import Resolution, each_candidate, fix_hint, flush_facts, parse_specifier

    specifier = parse_specifier(spec.version)
    # Judged before loading against the exported FUNCTIONS a binary lists; [variables]
    # (data symbols) are checked with dlsym after loading (build_table).
    required = [s for s, fn in zip(symbols_for(spec), _slots(spec))
                if fn.required and fn.kind == "function"]

    def required_for(entry: Entry) -> list[str]:
        if entry.prefix is None and entry.suffix is None:
            return required
        names = symbols_for(spec, entry)
        return [s for s, fn in zip(names, _slots(spec))
                if fn.required and fn.kind == "function"]

    for link in spec.names:
        for library in _loader.loaded_named(link):
            if _satisfies_loaded(spec, library, specifier, required):
                return library, None
    rejected: list[tuple[str, str]] = []
    lacking: list[Candidate] = []  # candidates rejected only for missing required symbols
    searched: list[str] = []
    version_failures = 0
    checked_mapped = False
    # The whole searches of the names tried before the one that serves: a file of an
    # earlier name appearing anywhere would be chosen instead (review5 F2).
    earlier: list[tuple[str, object]] = []
    unloaded: list[tuple[str, str]] = []  # accepted, but dlopen (or the loader checks) refused
    try:
        for link in spec.names:
            # Candidates judged one by one as the search reaches them: the first that loads
            # and passes ends the search there (places after it are never read nor stamped).
            resolution = Resolution(link, Search())
            resolution.search.stamps.extend(earlier)
            for cand, entry in each_candidate(
                resolution,
                None if spec.version_function else spec.version,
                packages=spec.packages,
                required=required_for,
                # The version comes from the library's own function after loading; the package
                # databases are asked only if it gives nothing (`_version_problem`).
                version_later=bool(spec.version_function),
            ):
                if not cand.accepted:
                    rejected.append((cand.path, cand.reason))
                    if cand.missing:
                        lacking.append(cand)
                    continue
                # The closure mapped bottom-up by absolute path (design.md 5.1).
                failures: list[tuple[str, str]] = []
                info = _api.info_of(cand)
                info.name = link
                if not checked_mapped:
                    # One copy per process counts every copy, whoever mapped it (design.md 5.1):
                    # the same rule as load(), so a consumer reuses a copy CPython's zlib already
                    # mapped, or loads its own beside it with a DuplicateLibraryWarning.
                    checked_mapped = True
                    mapped = _api._mapped_copy(link, None if spec.version_function else spec.version, info)
                    if mapped is not None and _satisfies_loaded(spec, mapped, specifier, required):
                        return mapped, None
                was_loaded = bool(_loader.loaded_named(link)) and any(
                    os.path.realpath(lib.path) == os.path.realpath(cand.path) for lib in _loader.loaded_named(link)
                )
                tried = _api._try_load(info, None, failures)
                if tried is None:
                    cand.accepted = False
                    cand.reason = failures[0][1] if failures else "failed to load"
                    rejected.extend(failures)
                    unloaded.extend(failures)
                    continue
                library = tried
                problem = _version_problem(spec, library, specifier, entry.prefix, entry.suffix)
                if problem is None:
                    resolution.chosen = cand
                    _api.warn_skipped(unloaded, library.path)
                    return library, resolution
                if not was_loaded:
                    _api.discard(library)  # loaded only to be rejected: unmapped again
                cand.accepted = False
                cand.reason = problem
                version_failures += 1
                rejected.append((cand.path, problem))
            searched.extend(resolution.search.searched)
            earlier = resolution.search.stamps
    finally:
        flush_facts()  # the ELF facts read by this resolution, once (as `resolve` does)
    from ._errors import LibraryNotFoundError, NoAcceptableLibraryError

    if lacking and len(lacking) == len(rejected):
        # Every copy is the library, just without some required functions: say
        # which, for the best-ranked copy (all of them, not just the first).
        best = lacking[0]
        raise MissingSymbolError(best.path, best.missing, table=spec.name)

    if version_failures and version_failures == len(rejected):
        path, reason = rejected[0]
        # The first copy is the error's own path; the others follow with theirs, then every
        # place searched, as every not-found error names them (review5 F8).
        others = "".join(f"; {p}: {r}" for p, r in rejected[1:])
        places = f" (searched: {'; '.join(searched)})" if searched else ""
        raise IncompatibleLibraryError(
            path,
            reason + others + places,
            fix=(
                f"check version-function in {spec.path or '<spec>'}: it must name a "
                "`const char *f(void)` the library exports"
                if "version function" in reason
                else f"install a version of {spec.names[0]!r} matching {spec.version!r}, or "
                f"relax [library] version in {spec.path or '<spec>'}"
            ),
        )
    cls = NoAcceptableLibraryError if rejected else LibraryNotFoundError
    raise cls(
        spec.names[0] if len(spec.names) == 1 else "/".join(spec.names),
        version=spec.version,
        searched=searched,
        rejected=rejected,
        # The fix line follows the reasons (a copy in the global scope: isolation), as find's does.
        hint=fix_hint(spec.names[0], spec.version, rejected) if rejected else None,
    )


def _satisfies_loaded(spec: Spec | Request, library: Library, specifier, required: list[str]) -> bool:  # type: ignore[no-untyped-def]
    from . import _master

    if required and not all(_master.lookup_many(library.handle, [s.encode() for s in required])):
        return False
    return _version_problem(spec, library, specifier) is None


def _version_problem(  # type: ignore[no-untyped-def]
    spec: Spec | Request, library: Library, specifier, prefix: str | None = None, suffix: str | None = None
) -> str | None:
    """None when the loaded library's version fits; else why not.

    With a spec's ``version-function`` the library is asked through
    `_versions.library_version` (the same parser and checks as every other
    version, design.md 5.2) and its answer becomes ``.version`` with source
    "library"; else the version the library was loaded with stands.
    """
    if spec.version_function:
        from ._versions import library_version

        fn = spec.version_function
        pre = spec.symbol_prefix or prefix or ""
        suf = spec.symbol_suffix or suffix or ""
        symbol = f"{pre}{fn}{suf}"
        problems: list[str] = []
        text = library_version(library.handle, library.name, library.soname, fn, pre, suf,
                               problems=problems)
        if text is not None:
            library._set_version_text(text, "library")
        else:
            if library.version_text is None:
                found = _late_version(library)  # what judge would have found before loading
                if found is not None:
                    library._set_version_text(*found)
            if symbol not in library and fn not in library:
                return f"does not export the version function {symbol!r} named by version-function"
            if specifier is not None:
                return _version_function_problem(symbol, problems, str(specifier))
    if specifier is None:
        return None
    from ._resolve import checked_version

    # A plain release against a plain specifier is compared without packaging (_pep440):
    # a consumer's cold import must not import it.
    version = checked_version(library.version_text, specifier)
    if version is None:
        return f"its version is unknown, so the specifier {str(specifier)!r} cannot be checked"
    if not specifier.contains(version, prereleases=True):
        return (f"version {library.version_text!r} (from {library.version_source or 'unknown'}) "
                f"is outside the specifier {str(specifier)!r}")
    return None


def _late_version(library: Library) -> tuple[str, str] | None:
    """The version `_resolve.judge` skipped (version_later): package databases, file name."""
    from ._resolve import product_version

    return product_version(_cache.realpath(library.path), library.name, library.soname, library.handle)


def _version_function_problem(symbol: str, problems: list[str], specifier: str) -> str:
    """Why the spec's version function gave no version (the `_versions` step's own words)."""
    why = problems[0] if problems else ""
    if not why:
        told = f"returned NULL (or only a dependency of the library defines {symbol!r})"
    elif "no dotted version number" in why:
        told = f"gave text in which no token parses as a version ({why})"
    else:
        told = f"is not a const char *(void): {why}"
    return f"the version function {symbol!r} {told}, so the specifier {specifier!r} cannot be checked"
