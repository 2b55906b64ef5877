"""Resolution policy: every candidate checked without loading it, ranked, judged.

A candidate is accepted when it is a real shared library (not a linker script,
text file, directory or dangling symlink) for this interpreter's format,
machine, word size and byte order, needs no newer glibc than the host has, has
a version inside the specifier, and exports the required symbols.
"""

from __future__ import annotations

import os

from . import _cache
from ._discovery import Entry, Search, search_steps
from ._errors import BrokerError, LibraryNotFoundError, NoAcceptableLibraryError
from ._types import Candidate

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence
    from typing import Any

    from packaging.specifiers import SpecifierSet
    from packaging.version import Version

    from ._pep440 import Specifier

_FACTS_KIND = "elf2"  # 2: with the C-library flavour
_FACTS_LIMIT = 4096
_facts_memo: dict[tuple[object, ...], dict[str, Any]] = {}
_disk_facts: dict[Any, Any] | None = None  # the on-disk facts, read once per process
_pending: dict[tuple[object, ...], dict[str, Any]] = {}  # facts read since the last flush
_NONE = type(None)
_FACT_TYPES: dict[str, object] = {  # what _read_facts writes; anything else is re-read
    "error": (str, _NONE),
    "incompatible": (str, _NONE),
    "soname": (str, _NONE),
    "glibc": (tuple, list, _NONE),
    "elf_type": (str, _NONE),  # every field a verdict reads (review F1: field by field)
    "libc": (str, _NONE),
}


def binary_facts(real: str) -> dict[str, Any]:
    """The ELF facts a decision needs, cached per file identity (on disk too).

    New facts are written by `flush_facts()` once per search, not once per file.
    """
    global _disk_facts
    ident = _cache.identity(real)
    key = (real, ident)
    facts = _facts_memo.get(key)
    if facts is not None:
        return facts
    if _disk_facts is None:
        _disk_facts = _cache.load(_FACTS_KIND)
    stored: Any = _disk_facts.get(key) if _disk_facts is not None else None
    if not _cache.typed(stored, _FACT_TYPES):  # absent, corrupt or foreign
        stored = _read_facts(real)
        _pending[key] = stored
    _facts_memo[key] = stored
    return stored  # type: ignore[no-any-return]


def flush_facts() -> None:
    """Merge the facts read since the last flush into the on-disk cache (written behind:
    `_cache.update_many`, so fifty resolutions in one process write it about once)."""
    global _pending
    if not _pending:
        return
    pending, _pending = _pending, {}  # threads reading on add to the fresh dict
    _cache.update_many(_FACTS_KIND, list(pending.items()), limit=_FACTS_LIMIT)


def _read_facts(real: str) -> dict[str, Any]:
    from ._binary import check_compatible, host_binary
    from ._closure import read_facts

    # The closure's reader, memoised per identity: the closure check and the exported
    # functions read the same file, and a cold judgement parsed it twice.
    info = read_facts(real)
    if isinstance(info, str):
        return {"error": info}
    return {
        "error": None,
        "incompatible": check_compatible(info, host_binary()),
        "soname": info.soname,
        "machine": info.machine_name,
        "elf_class": info.elf_class,
        "glibc": info.glibc_required,
        "elf_type": info.elf_type,
        "libc": info.libc,
    }


def _version_if_mapped(real: str, name: str) -> str | None:
    """The version from the library itself when the process already maps it.

    An RTLD_NOLOAD probe never loads anything (`_versions.version_if_mapped`);
    a file not yet mapped has an unknown version until `load()` asks it.
    """
    from ._versions import version_if_mapped

    return version_if_mapped(real, name, probe_soname(name, os.path.basename(real)))


def probe_soname(name: str, soname: str | None) -> str | None:
    """*soname* when it names the same library as link *name* (or names none), else None.

    A file presented under another name (a renamed copy) is not called into on
    the strength of its SONAME alone: the built-in probe is then chosen by *name*.
    """
    from ._discovery import link_name_of

    if soname and link_name_of(os.path.basename(soname)) not in (name, None):
        return None
    return soname


def library_version_text(handle: int, name: str, soname: str | None) -> str | None:
    """The version the loaded library reports (`_versions.library_version`, built-in probe), or None."""
    from ._versions import library_version

    return library_version(handle, name, probe_soname(name, soname))


def loader_refusal(real: str) -> str | None:
    """`_binary._elfload.loader_refusal` of *real*, remembered per identity (see `_loader`)."""
    from . import _cache
    from ._loader import _loader_refusal

    ident = _cache.identity(real)
    return _loader_refusal(real, ident) if ident is not None else None


def soname_mismatch(filename: str, soname: str | None) -> str | None:
    """Why a file's name and its SONAME disagree on the major version, or None.

    libfoo.so.2.0.1 whose SONAME is libfoo.so.1 was renamed or mislabelled: the
    dynamic linker would treat it as major 1. Only compared when both name the
    same library (a copy renamed on purpose keeps its own SONAME).
    """
    if not soname or ".so." not in filename or ".so." not in soname:
        return None
    stem, _, file_version = filename.partition(".so.")
    soname_stem, _, soname_version = soname.partition(".so.")
    if stem != soname_stem:
        return None
    file_major = file_version.split(".")[0]
    soname_major = soname_version.split(".")[0]
    if file_major.isdigit() and soname_major.isdigit() and file_major != soname_major:
        return (
            f"its file name {filename!r} says major version {file_major} but its SONAME "
            f"{soname!r} says {soname_major}"
        )
    return None


def exported_functions(real: str) -> frozenset[str]:
    """The functions *real* exports, from the facts `_closure` reads once per identity
    (the closure check reads the same file); InvalidBinaryError when unreadable."""
    from ._binary import InvalidBinaryError
    from ._closure import read_facts

    info = read_facts(real)
    if isinstance(info, str):
        raise InvalidBinaryError(real, info)
    return info.functions


def judge(
    entry: Entry,
    name: str,
    specifier: SpecifierSet | Specifier | None,
    required: Sequence[str] | Callable[[Entry], Sequence[str]],
    rank: int,
    defer_unknown: bool = False,
    version_later: bool = False,
) -> Candidate:
    """The verdict on one file and its dependency closure; never raises for a bad file.

    With *defer_unknown*, a file whose version is unknown without loading it is
    accepted so that `load()` can ask the library and check the specifier.
    Without a specifier the version is not needed for the verdict: the candidate asks
    its sources when `.version` is first read. With *version_later* (and no specifier),
    the caller asks the library itself once it is loaded (a spec's `version-function`)
    and falls back to `product_version` only if that gives nothing.
    """
    path = entry.path
    cand = Candidate(name, path, entry.origin, rank=rank, version_text=entry.version)
    if entry.refusal:
        cand.reason = entry.refusal
        return cand
    try:
        st = os.lstat(path)
    except OSError as exc:
        cand.reason = f"cannot be read: {exc.strerror}"
        return cand
    if os.path.islink(path) and not os.path.exists(path):
        cand.reason = f"dangling symlink to {os.readlink(path)!r}"
        return cand
    if os.path.isdir(path):
        cand.reason = "is a directory, not a shared library"
        return cand
    del st
    real = _cache.realpath(path)
    judged = _cache.identity(real)  # every check below must see this very file (design.md 5.1)
    if not os.access(real, os.R_OK):
        cand.reason = "is not readable by this user (permission denied)"
        return cand
    if os.name != "nt":
        from ._places import unsafe_reason

        place = unsafe_reason(path)  # the file, every directory and symlink target from "/"
        if place:
            cand.reason = f"unsafe place: {place}"
            return cand
    facts = binary_facts(real)
    if facts.get("error"):
        cand.reason = facts["error"]
        return cand
    if facts.get("elf_type", "shared") != "shared":
        cand.reason = f"is {'an' if facts['elf_type'][:1] in 'aeiou' else 'a'} {facts['elf_type']} binary, not a shared library"
        return cand
    if facts.get("incompatible"):
        cand.reason = facts["incompatible"]
        return cand
    refusal = loader_refusal(real)
    if refusal:  # accepted means loadable: what would kill the process in dlopen is refused here
        cand.reason = refusal
        return cand
    cand.soname = facts.get("soname")
    mismatch = soname_mismatch(os.path.basename(real), cand.soname)
    if mismatch:
        cand.reason = mismatch
        return cand
    if facts.get("libc") and facts["libc"] != _host_libc():
        cand.reason = (
            f"it is linked against {facts['libc']} libc but this interpreter runs on {_host_libc()}"
        )
        cand.fix = f"use a build of the library made for {_host_libc()}"
        return cand
    if cand.version_text is None and specifier is None:
        # No specifier: the verdict does not depend on the version, so its sources
        # (a package database may mean reading thousands of files) are asked when
        # `.version` is first read, not here (of this very file: `_real`, `_identity`).
        # *version_later*: the caller asks the library once it is loaded.
        cand._version_pending = not version_later
        cand._real = real
    elif cand.version_text is None:
        found = product_version(real, name, cand.soname)
        if found is not None:
            cand.version_text, cand.version_source = found
    elif entry.origin.startswith("provider:") or entry.dist:
        cand.version_source = "provider"
    if specifier is not None:
        version = checked_version(cand.version_text, specifier)
        if version is None and not defer_unknown:
            cand.reason = (
                f"its version is unknown (no provider metadata, no package database entry, not "
                f"mapped to ask it) so the specifier {str(specifier)!r} cannot be checked"
            )
            cand.fix = "load() asks the library itself; or pin this file in the config file"
            return cand
        if version is not None and not specifier.contains(version, prereleases=True):
            cand.reason = (
                f"version {str(version)!r} (from {cand.version_source or 'unknown'}) is outside "
                f"the specifier {str(specifier)!r}"
            )
            cand.fix = f"install a version matching {str(specifier)!r}, or relax the specifier"
            return cand
    if callable(required):
        # Per-file symbol names: a provider's manifest may set the prefix/suffix.
        required = required(entry)
    if required:
        try:
            exported = exported_functions(real)
        except BrokerError as exc:
            cand.reason = str(exc)
            return cand
        missing = [s for s in required if s not in exported]
        if missing:
            cand.missing = missing
            shown = ", ".join(repr(s) for s in missing[:10])
            more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
            cand.reason = f"does not export required symbol(s) {shown}{more}"
            return cand
    if entry.dist and entry.origin.startswith(("provider:", "package:")):
        from ._record import verify_record

        try:
            verify_record(real, entry.dist)
        except BrokerError as exc:
            cand.reason = getattr(exc, "reason", str(exc))
            return cand
    from ._closure import resolve_closure

    closure = resolve_closure(real)
    if not closure.ok:
        cand.reason = closure.reason or "its dependency closure cannot be loaded"
        cand.fix = closure.fix
        return cand
    if judged is None or _cache.identity(real) != judged:
        # Replaced (an upgrade, a `mv` over it) while it was being checked: what was
        # checked is no longer there, so nothing here may be said about the new file.
        cand.reason = "changed while it was being checked (replaced or edited); it is not used"
        cand.fix = "retry once the library's package has finished installing"
        return cand
    cand.dependencies = list(closure.dependencies)
    cand._identity = judged
    cand.accepted = True
    return cand


def _host_libc() -> str | None:
    from ._closure import host_libc

    return host_libc()


def product_version(real: str, name: str, soname: str | None = None,
                    handle: int | None = None) -> tuple[str, str] | None:
    """(version text, `.version_source`) of the file *real* (resolved), or None (design.md 5.2).

    `_versions.best_version`: the library itself (*handle* when loaded, else a
    NOLOAD probe when this process already maps it), the package database that
    owns the file, and the file name only for libraries whose file names carry
    the product version (zlib). Interface numbers (libtool's libbz2.so.1.0.4,
    libgmp.so.10.4.1) are never versions. *soname* defaults to the file's name.
    """
    from ._versions import best_version

    return best_version(real, name, probe_soname(name, soname or os.path.basename(real)), handle)


def fix_hint(name: str, version: str | None, rejected: list[tuple[str, str]]) -> str:
    """The fix line chosen by the reasons of the rejections (not always "install it")."""
    reasons = " ".join(reason for _, reason in rejected)
    if "outside the specifier" in reasons:
        unknown = " (some have an unknown version)" if "version is unknown" in reasons else ""
        return (
            f"fix: install a version of {name!r} matching {version!r} (the copies found have other "
            f"versions{unknown}), or relax the specifier"
        )
    if "version is unknown" in reasons:
        # Its own reason: nothing says the copies found have another version (review F1).
        return (
            f"fix: the version of the copies found is unknown without loading them: call "
            f"load({name!r}, {version!r}) (it asks the library), pin the file in the config file, "
            "or install a copy from a package manager or provider wheel that states its version"
        )
    if "its dependency" in reasons and "cannot be found" in reasons:
        return (
            "fix: install the package that provides the missing dependency named above (or a "
            "provider wheel for it), or point LIBBROKER_PATH at a directory holding both"
        )
    if "needs " in reasons and " defines " in reasons:
        return "fix: install a newer copy of the dependency named above, or a build of the library made for this system"
    if "linked against" in reasons:
        return "fix: use a build of the library made for this system's C library"
    if "-bit" in reasons or "machine" in reasons:
        return "fix: install a build of the library for this interpreter's machine and word size"
    if "dangling symlink" in reasons:
        return "fix: repair or remove the dangling symlink named above, or reinstall the package that owns it"
    if "failed to load" in reasons or "dlopen" in reasons:
        return "fix: see the loader's message above; install the library's missing pieces or another build"
    if "in the global symbol scope" in reasons:  # _api._interposition (design.md 5.1)
        return ('fix: set isolation = "deepbind" in the config file (the private copy then binds '
                "its own calls to itself), or use the copy already loaded")
    if "holds a line break" in reasons:
        return "fix: use a build of the library whose file name and soname are plain names"
    if "RECORD" in reasons:  # libbroker._record: the wheel's files no longer match what pip installed
        return ("fix: reinstall the distribution named above with pip, not in editable mode "
                "(pip install --force-reinstall DIST)")
    return (
        "fix: install the library, or point LIBBROKER_PATH (or the config file) at the "
        "directory that holds it"
    )


def parse_specifier(version: str | None) -> SpecifierSet | Specifier | None:
    """The specifier set *version* (PEP 440), None for none. Plain clauses over release
    numbers are checked by `_pep440` (no packaging import); the rest by packaging."""
    if version is None or str(version).strip() == "":
        return None
    from ._pep440 import parse

    plain = parse(str(version))
    if plain is not None:
        return plain
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    try:
        return SpecifierSet(str(version))
    except InvalidSpecifier as exc:
        from ._errors import SpecError

        raise SpecError(
            f"version specifier {version!r} does not parse as PEP 440 (e.g. '>=1.2.11'): {exc}",
            path="<version argument>",
        ) from exc


def checked_version(text: str | None, specifier: object) -> str | Version | None:
    """*text* as the specifier will compare it: the normalized plain release ("1.02" ->
    "1.2") for a `_pep440.Specifier` when the text is one, else `_types.parse_version`
    (a packaging Version, or None when the text holds no version)."""
    from ._pep440 import Specifier, release

    if isinstance(specifier, Specifier):
        numbers = release(text)
        if numbers is not None:
            return ".".join(str(n) for n in numbers)
    from ._types import parse_version

    return parse_version(text)


class Resolution:
    __slots__ = ("candidates", "chosen", "entries", "name", "search")

    def __init__(self, name: str, search: Search) -> None:
        self.name = name
        self.search = search
        self.candidates: list[Candidate] = []
        self.entries: list[Entry] = []
        self.chosen: Candidate | None = None

    def error(self, version: str | None) -> LibraryNotFoundError:
        rejected = [(c.path, c.reason) for c in self.candidates if not c.accepted]
        cls = NoAcceptableLibraryError if rejected else LibraryNotFoundError
        return cls(
            self.name, version=version, searched=self.search.searched, rejected=rejected,
            hint=fix_hint(self.name, version, rejected) if rejected else None,
        )


def resolve(
    name: str,
    version: str | None = None,
    *,
    packages: Sequence[str] = (),
    required: Sequence[str] | Callable[[Entry], Sequence[str]] = (),
    stop_at_first: bool = True,
    defer_unknown: bool = False,
    version_later: bool = False,
) -> Resolution:
    """Search and judge; `chosen` is the first accepted candidate in rank order.

    *stop_at_first*: the search stops at the place that gave it (`search_steps`), so
    `search.searched`/`search.stamps` cover that much; otherwise every place and every
    candidate. *version_later*: see `judge`."""
    resolution = Resolution(name, Search())
    for cand, _ in each_candidate(
        resolution, version, packages=packages, required=required,
        defer_unknown=defer_unknown, version_later=version_later,
    ):
        if cand.accepted and resolution.chosen is None:
            resolution.chosen = cand
            if stop_at_first:
                break
    flush_facts()
    return resolution


def each_candidate(
    resolution: Resolution,
    version: str | None = None,
    *,
    packages: Sequence[str] = (),
    required: Sequence[str] | Callable[[Entry], Sequence[str]] = (),
    defer_unknown: bool = False,
    version_later: bool = False,
) -> Iterator[tuple[Candidate, Entry]]:
    """(candidate, its entry) for each distinct file named like *resolution*'s library, in
    rank order, judged when reached. The search goes one place further only when the
    files found so far are all judged (`search_steps`): a caller that stops early reads
    no further place, and `resolution.search` says what was searched and stamped.

    *resolution* (empty, its `search` empty) gains each candidate before it is yielded.
    A file found again under another name is not a new candidate (the dynamic linker's
    SONAME-named path is kept).
    """
    from ._config import load_config

    name = resolution.name
    specifier = parse_specifier(version)
    seen: dict[str, int] = {}
    done = 0
    for found in search_steps(name, config=load_config(), packages=packages,
                              into=resolution.search):
        while done < len(found.entries):
            entry = found.entries[done]
            done += 1
            real = _cache.realpath(entry.path)
            index = seen.get(real)
            if index is not None and not (resolution.entries[index].refusal is not None
                                          and entry.refusal is None):
                # The same file under another name (libz.so -> libz.so.1.2.13): keep the
                # soname-named path, which is what the dynamic linker itself would use,
                # when that name is in a place that may supply it (review5 F4). A file
                # first reached through a refused place (a link planted there) is judged
                # again from this one, which may supply it (review5 F6).
                cand = resolution.candidates[index]
                if (
                    cand.accepted
                    and entry.refusal is None
                    and cand.soname
                    and os.path.basename(entry.path) == cand.soname
                    and os.path.basename(cand.path) != cand.soname
                ):
                    cand.path = entry.path
                    resolution.entries[index].path = entry.path
                continue
            seen[real] = len(resolution.candidates)
            cand = judge(
                entry, name, specifier, required, rank=len(resolution.candidates),
                defer_unknown=defer_unknown, version_later=version_later,
            )
            if not cand.accepted and entry.refusal is None:
                # A file refused for what it is ranks before the chosen one: rewritten in
                # place, its place made safe, its missing dependency installed, it may be
                # chosen, so what its refusal rests on is an input of the verdict.
                resolution.search.stamps.extend(_cache.rejected_stamps(entry.path, real))
            if cand.accepted and cand.soname:
                sibling = os.path.join(os.path.dirname(entry.path), cand.soname)
                if os.path.basename(entry.path) != cand.soname and _cache.realpath(sibling) == real:
                    cand.path = sibling
            resolution.candidates.append(cand)
            resolution.entries.append(entry)
            yield cand, entry
