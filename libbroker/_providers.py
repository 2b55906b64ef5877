"""Libraries shipped in wheels: provider entry points and a spec's ``packages``.

Everything here is read from installed metadata (entry_points.txt, RECORD and
the provider's ``libbroker-provider.toml``); no code of a provider or package is
ever imported, so a broken or hostile distribution cannot run anything just by
being searched. The resulting files still go through RECORD verification
(libbroker._record) before they are loaded.

Distributions are read directly (`_distinfo`: directory listings, entry_points.txt,
METADATA's Name and Version, RECORD), never through importlib.metadata; only a
provider's manifest needs tomllib. `re` and packaging are imported only for
other platforms' file names and for the message about an invalid distribution name.
"""

from __future__ import annotations

import os
import sys

from . import _distinfo

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

__all__ = [
    "GROUP",
    "MANIFEST",
    "ProvidedFile",
    "distribution_name_problem",
    "package_files",
    "provider_files",
    "provider_names",
]

GROUP = "libbroker.providers"
MANIFEST = "libbroker-provider.toml"


class ProvidedFile:
    """A library file a distribution ships, with what its metadata says about it."""

    __slots__ = (
        "dist",
        "origin",
        "path",
        "soname",
        "specs",
        "symbol_prefix",
        "symbol_suffix",
        "version",
    )

    def __init__(
        self,
        path: str,
        dist: str,
        origin: str,
        *,
        version: str | None = None,
        soname: str | None = None,
        symbol_prefix: str | None = None,
        symbol_suffix: str | None = None,
        specs: list[str] | None = None,
    ) -> None:
        self.path = path
        self.dist = dist
        self.origin = origin
        self.version = version
        self.soname = soname
        self.symbol_prefix = symbol_prefix
        self.symbol_suffix = symbol_suffix
        self.specs = specs if specs is not None else []

    def __repr__(self) -> str:
        return (
            f"ProvidedFile(path={self.path!r}, dist={self.dist!r}, origin={self.origin!r}, "
            f"version={self.version!r}, soname={self.soname!r})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ProvidedFile):
            return NotImplemented
        return all(getattr(self, a) == getattr(other, a) for a in self.__slots__)

    __hash__ = None  # type: ignore[assignment]  # mutable, like a dataclass with eq


class _Dist:
    """An installed distribution: its metadata directory, Name and Version (read lazily)."""

    __slots__ = ("_head", "path")

    def __init__(self, path: str) -> None:
        self.path = path  # the .dist-info (or .egg-info) directory
        self._head: tuple[str | None, str | None] | None = None

    def _read(self) -> tuple[str | None, str | None]:
        if self._head is None:
            self._head = _distinfo.name_and_version(self.path)
        return self._head

    @property
    def name(self) -> str | None:
        return self._read()[0]

    @property
    def version(self) -> str | None:
        return self._read()[1]

    def files(self) -> list[str] | None:
        """RECORD's paths (relative to `base`); None without a RECORD. An .egg-info
        directory has none: its file lists are read by importlib.metadata."""
        listed = _distinfo.record_paths(self.path)
        if listed is None and self.path.lower().endswith("egg-info"):
            return _egg_files(self.path)
        return listed

    @property
    def base(self) -> str:
        return os.path.dirname(self.path)


def _egg_files(info_dir: str) -> list[str] | None:
    # Legacy (setuptools) metadata: installed-files.txt / SOURCES.txt, as importlib reads them.
    # Each is first read here, bounded and non-blocking (`_distinfo.MetadataError` for a FIFO,
    # a device or bad UTF-8), since importlib's own read would block or raise a bare error.
    for name in ("installed-files.txt", "SOURCES.txt"):
        path = os.path.join(info_dir, name)
        data, _ = _distinfo.read_bounded(path)
        if data is not None:
            _distinfo.decode_utf8(data, path)
    import pathlib
    from importlib import metadata

    files = metadata.PathDistribution(pathlib.Path(info_dir)).files
    return None if files is None else [f.as_posix() for f in files]


def _dist_name(dist: _Dist) -> str:
    return dist.name or "<unnamed>"


def _damaged_name(dist: _Dist) -> tuple[str, str]:
    """(name, label) of a distribution whose metadata cannot be read: Name and Version from
    METADATA when that file is sound, else as its directory spells them (a damaged METADATA
    can carry any name; the reason names the file by its full path)."""
    if _distinfo.metadata_problem(dist.path, entry_points=False) is None and dist.name:
        return dist.name, f"{dist.name!r} {dist.version}"
    name, version = _distinfo.dist_label(dist.path)
    return name, f"{name!r} {version}"


# (path of the refused metadata file, origin, reason) of a distribution refused for its metadata
Refusal = tuple[str, str, str]


def _valid_name(name: str) -> bool:
    """PEP 508's name rule (``^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$``, case-insensitive)."""
    if not name or not name.isascii():
        return False
    if not (name[0].isalnum() and name[-1].isalnum()):
        return False
    return all(c.isalnum() or c in "._-" for c in name)


def distribution_name_problem(name: str) -> str | None:
    """Why ``name`` is not a distribution name (PEP 508, as pip installs it), or None.

    A spec's ``packages`` and ``--package`` name distributions whose RECORD is
    searched; a path, a requirement with a version or extras, or a typo'd name
    with spaces would otherwise be looked up, found nowhere and silently skipped.
    Checked with packaging's PEP 508 parser (names compare normalised, PEP 503).
    """
    expected = ("expected a distribution name as pip installs it (PEP 508: letters, digits, "
                "'-', '_' and '.', starting and ending with a letter or digit), e.g. "
                "\"scipy-openblas32\"")
    fix = ("fix: name the installed distribution that ships the library (`pip show` names "
           "it), or put the directory holding the library in LIBBROKER_PATH")
    if any(c in name for c in "/\\") or name in (".", ".."):
        return f"a path, not a distribution name; {expected}; {fix}"
    if _valid_name(name):
        return None  # what packaging's Requirement(name).name == name says, without importing it
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        requirement = Requirement(name)
    except InvalidRequirement:
        requirement = None
    if requirement is None:
        return f"not a distribution name; {expected}; {fix}"
    if requirement.name != name:
        return (f"a requirement, not a distribution name; {expected}; fix: write only the "
                f"name {requirement.name!r} (a version the library must have goes in a spec's "
                "[library] version)")
    return None


def _provider_entry_points() -> Iterator[tuple[_Dist, str, str]]:
    """(distribution, entry point name, value) for every provider entry point.

    Walks distributions (`_distinfo`, importlib.metadata's order) so each entry
    point comes with its distribution, and so a distribution shadowed by an
    earlier copy on sys.path is skipped, as importlib itself does. Cached per
    sys.path directory and per distribution (`_distinfo.distributions`).
    """
    dists: dict[str, _Dist] = {}
    for info_dir, name, value in _distinfo.provider_entry_points(search_path()):
        dist = dists.get(info_dir)
        if dist is None:
            dist = dists[info_dir] = _Dist(info_dir)
        if dist.name is None and _distinfo.metadata_problem(dist.path) is None:
            continue  # no Name header: importlib.metadata's consumers skip it too
        yield dist, name, value  # (a damaged METADATA may hide Name: refused by provider_files)


def search_path() -> list[str]:
    """sys.path without the entries that mean the current directory (`_distinfo.search_path`)."""
    return _distinfo.search_path()


def _place_problem(path: str, what: str) -> str | None:
    """Why a provider's manifest or library may not be used from where it lies, else None."""
    if os.name == "nt":
        return None
    from ._places import unsafe_reason

    reason = unsafe_reason(path)
    return f"{what} is not in a safe place: {reason}" if reason else None


def provider_names() -> dict[str, list[str]]:
    """Link name -> names of the distributions that provide it, for ``libbroker list``."""
    names: dict[str, list[str]] = {}
    for dist, ep_name, _ in _provider_entry_points():
        names.setdefault(ep_name, []).append(_dist_name(dist))
    return {k: sorted(v) for k, v in sorted(names.items())}


class _ManifestError(Exception):
    pass


def _load_toml(path: str) -> dict[str, object]:
    """The manifest, bounded in size and nesting (`_config.load_toml`)."""
    from ._config import load_toml
    from ._errors import SpecError

    try:
        return load_toml(path, "provider manifest")
    except SpecError as exc:
        raise _ManifestError(f"unreadable manifest: {exc.message}") from None


def _inside(base: str, relative: object, what: str) -> str:
    """Absolute real path of *relative* under *base*; refuses escapes."""
    if not isinstance(relative, str) or not relative:
        raise _ManifestError(f"{what} must be a non-empty string, found {relative!r}")
    if os.path.isabs(relative) or relative.startswith(("/", "\\")):
        raise _ManifestError(f"{what} must be relative to the package directory, found {relative!r}")
    real = os.path.realpath(os.path.join(base, relative))
    if os.path.commonpath([real, base]) != base:
        raise _ManifestError(f"{what} {relative!r} points outside the package directory {base!r}")
    return real


def _optional_str(entry: dict[str, object], key: str, where: str) -> str | None:
    value = entry.get(key)
    if value is not None and not isinstance(value, str):
        raise _ManifestError(f"{where}.{key} must be a string, found {value!r}")
    return value


def _manifest_files(manifest: str, link_name: str, dist: str) -> list[ProvidedFile]:
    """The [[library]] entries of *manifest* named *link_name*, as ProvidedFiles."""
    problem = _place_problem(manifest, "the manifest")
    if problem:
        raise _ManifestError(problem)
    data = _load_toml(manifest)
    libraries = data.get("library")
    if not isinstance(libraries, list) or not all(isinstance(x, dict) for x in libraries):
        raise _ManifestError(f"expected [[library]] tables, found library = {libraries!r}")
    base = os.path.realpath(os.path.dirname(manifest))
    found: list[ProvidedFile] = []
    for index, entry in enumerate(libraries):
        where = f"library[{index}]"
        name = entry.get("name")
        if not isinstance(name, str):
            raise _ManifestError(f"{where}.name must be a string, found {name!r}")
        if name != link_name:
            continue
        path = _inside(base, entry.get("file"), f"{where}.file")
        if not os.path.isfile(path):
            there = os.path.lexists(path)
            raise _ManifestError(
                f"{where}.file {entry['file']!r} "
                + (f"is not a regular file (a directory, FIFO, device or dangling link) ({path})"
                   if there else f"does not exist ({path})"))
        problem = _place_problem(path, f"{where}.file {path!r}")
        if problem:
            raise _ManifestError(problem)
        specs_value = entry.get("specs", [])
        if not isinstance(specs_value, list):
            raise _ManifestError(f"{where}.specs must be a list of strings, found {specs_value!r}")
        specs = [_inside(base, s, f"{where}.specs[{i}]") for i, s in enumerate(specs_value)]
        found.append(
            ProvidedFile(
                path,
                dist,
                f"provider:{dist}",
                version=_optional_str(entry, "version", where),
                soname=_optional_str(entry, "soname", where),
                symbol_prefix=_optional_str(entry, "symbol-prefix", where),
                symbol_suffix=_optional_str(entry, "symbol-suffix", where),
                specs=specs,
            )
        )
    if not found:
        raise _ManifestError(f"no [[library]] entry has name = {link_name!r}")
    return found


def _locate_manifest(dist: _Dist, package: str) -> str | None:
    """Absolute path of ``<package>/libbroker-provider.toml`` from RECORD, or None.

    RECORD, not importlib.util.find_spec: finding a dotted name imports its
    parents, and provider code must never run during discovery.
    """
    files = dist.files()
    if not files:
        return None
    wanted = package.replace(".", "/") + "/" + MANIFEST
    for entry in files:
        if entry == wanted:
            return os.path.realpath(os.path.join(dist.base, entry))
    return None


def _is_package_name(value: str) -> bool:
    """A dotted Python identifier path (``[A-Za-z_]\\w*(\\.[A-Za-z_]\\w*)*``, ASCII letters)."""
    for part in value.split("."):
        if not part or not (part[0].isascii() and (part[0].isalpha() or part[0] == "_")):
            return False
        if not all(c.isalnum() or c == "_" for c in part):
            return False
    return True


def provider_files(
    link_name: str, inputs: list[str] | None = None, refused: list[Refusal] | None = None
) -> tuple[list[ProvidedFile], list[str]]:
    """Files that provider distributions declare for *link_name*, and where we looked.

    A provider whose metadata is broken is not fatal (one bad wheel must not hide
    every other copy of a library): it is skipped, and the second list says why.
    A METADATA or entry_points.txt that is not UTF-8 (`_distinfo.metadata_problem`)
    refuses the provider named by its metadata directory; when the bad byte is inside
    an entry point's name, which library it provides cannot be known, and it is
    listed in every search.
    *inputs*, when given, receives the absolute path of every manifest, RECORD,
    METADATA and entry_points.txt read: a cached verdict depends on them (design.md
    5.1; `_cache` "@input" stamps). *refused*, when given, receives a `Refusal` for
    each provider refused for its metadata (METADATA, entry_points.txt or RECORD), so
    that ``candidates()`` and ``find --all`` list it, rejected, with the reason.
    """
    files: list[ProvidedFile] = []
    searched: list[str] = []
    seen: set[str] = set()
    for dist, ep_name, value in _provider_entry_points():
        # U+FFFD: `_distinfo` parsed a damaged entry_points.txt with bad bytes replaced.
        if ep_name != link_name and "\ufffd" not in ep_name:
            continue
        problem = _distinfo.metadata_problem(dist.path)
        if inputs is not None and (ep_name == link_name or problem is not None):
            inputs.extend(os.path.realpath(os.path.join(dist.path, f))
                          for f in ("METADATA", "entry_points.txt"))
        if problem is not None:
            if dist.path not in seen:
                seen.add(dist.path)
                name, shown = _damaged_name(dist)
                # Which libraries it provides cannot be known when its entry points cannot be
                # read: it may not be a provider at all (review4 R4-8).
                unreadable = ep_name == _distinfo._UNREADABLE and not value  # no group read at all
                what = "distribution" if unreadable else "provider"
                reason = f"the metadata of {what} {shown} cannot be read: {problem[1]}"
                searched.append(f"{what} {shown}: its metadata cannot be read: {problem[1]} (ignored)")
                if refused is not None:
                    refused.append((problem[0], f"provider:{name}", reason))
            continue
        if ep_name != link_name:
            continue  # a real U+FFFD in a valid UTF-8 name
        dist_name = _dist_name(dist)
        label = f"provider {dist_name!r} {dist.version}"
        package = value.partition(":")[0].strip()
        if not _is_package_name(package):
            searched.append(
                f"{label}: entry point {ep_name!r} = {value!r} is not a package name "
                "(ignored; fix: the provider's entry point value must name the package "
                f"holding {MANIFEST})"
            )
            continue
        if inputs is not None:  # also when RECORD is unreadable: the verdict depends on it
            inputs.append(os.path.realpath(os.path.join(dist.path, "RECORD")))
        try:
            manifest = _locate_manifest(dist, package)
        except _distinfo.MetadataError as exc:
            searched.append(f"{label}: its metadata cannot be read: {exc} (ignored)")
            if refused is not None:
                refused.append((os.path.join(dist.path, "RECORD"), f"provider:{dist_name}",
                                f"the metadata of provider {dist_name!r} {dist.version} cannot be read: {exc}"))
            continue
        if inputs is not None and manifest is not None:
            inputs.append(manifest)
        if manifest is None:
            searched.append(
                f"{label}: {package.replace('.', '/')}/{MANIFEST} is not listed in its RECORD "
                f"(ignored; fix: reinstall {dist_name} with pip, not in editable mode)"
            )
            continue
        try:
            found = _manifest_files(manifest, link_name, dist_name)
        except _ManifestError as exc:
            searched.append(f"{label} ({manifest}): {exc} (ignored)")
            continue
        searched.append(f"{label} ({manifest})")
        files.extend(found)
    if not searched:
        searched.append(f"provider entry points (group {GROUP!r}): none named {link_name!r}")
    return files, searched


def _library_matcher(link_names: list[str]) -> Callable[[str], bool]:
    """A test of a file name against *link_names* under this platform's naming:
    ``lib<name>.so[.N...]`` (by hand: no `re` on Linux), ``lib<name>[.N...].dylib``,
    ``[lib]<name>[-N].dll`` (case-insensitive)."""
    if sys.platform == "darwin" or sys.platform == "win32":
        import re

        names = "|".join(re.escape(n) for n in link_names)
        if sys.platform == "darwin":
            return re.compile(rf"lib(?:{names})(?:\.\d+)*\.dylib").fullmatch  # type: ignore[return-value]
        return re.compile(rf"(?:lib)?(?:{names})(?:-\d+)?\.dll", re.IGNORECASE).fullmatch  # type: ignore[return-value]

    def matches(filename: str) -> bool:
        if not filename.startswith("lib"):
            return False
        for name in link_names:
            stem = "lib" + name + ".so"
            if filename.startswith(stem):
                tail = filename[len(stem):]
                if not tail or (tail[0] == "." and all(p.isdigit() and p.isascii() for p in tail[1:].split("."))):
                    return True
        return False

    return matches


def package_files(
    packages: list[str], link_names: list[str], inputs: list[str] | None = None,
    refused: list[Refusal] | None = None,
) -> tuple[list[ProvidedFile], list[str]]:
    """Shared libraries named like *link_names* among the RECORD-listed files of *packages*.

    *inputs*, when given, receives each RECORD and METADATA read (a cached verdict depends
    on them); *refused* a `Refusal` for each package whose METADATA or RECORD cannot be
    read (as `provider_files`)."""
    files: list[ProvidedFile] = []
    searched: list[str] = []
    if not link_names:
        return files, searched
    matches_name = _library_matcher(link_names)
    shown = ", ".join(repr(n) for n in link_names)
    for package in packages:
        problem = distribution_name_problem(package)
        if problem is not None:
            searched.append(f"package {package!r}: ignored, {problem}")
            continue
        info_dir = _distinfo.find_distribution(package, search_path())
        if info_dir is None:
            searched.append(f"package {package!r}: not installed (fix: pip install {package})")
            continue
        dist = _Dist(info_dir)
        dist_name = _dist_name(dist)
        label = f"package {dist_name!r} {dist.version}"
        if inputs is not None:
            inputs.extend(os.path.realpath(os.path.join(info_dir, f)) for f in ("RECORD", "METADATA"))
        # Only METADATA and RECORD of a package are read (its entry points are not used).
        damaged = _distinfo.metadata_problem(info_dir, entry_points=False)
        if damaged is not None:
            name, shown = _damaged_name(dist)
            searched.append(f"package {shown}: its metadata cannot be read: {damaged[1]}")
            if refused is not None:
                refused.append((damaged[0], f"package:{name}",
                                f"the metadata of package {shown} cannot be read: {damaged[1]}"))
            continue
        try:
            listed = dist.files()
        except _distinfo.MetadataError as exc:
            searched.append(f"{label}: its metadata cannot be read: {exc}")
            if refused is not None:
                refused.append((os.path.join(info_dir, "RECORD"), f"package:{dist_name}",
                                f"the metadata of {label} cannot be read: {exc}"))
            continue
        if listed is None:
            searched.append(
                f"{label}: has no RECORD, its files cannot be listed "
                f"(fix: reinstall {dist_name} with pip)"
            )
            continue
        matches = sorted(
            {
                os.path.realpath(os.path.join(dist.base, entry))
                for entry in listed
                if matches_name(entry.rpartition("/")[2])
            }
        )
        matches = [m for m in matches if os.path.isfile(m)]
        if matches:
            searched.append(f"{label}: {len(matches)} file(s) for {shown} in its RECORD")
        else:
            searched.append(f"{label}: no file for {shown} in its RECORD")
        files.extend(ProvidedFile(m, dist_name, f"package:{dist_name}") for m in matches)
    return files, searched
