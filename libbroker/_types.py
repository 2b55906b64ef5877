"""The result objects of the Python API: LibraryInfo, Candidate, Library.

Plain classes with __slots__ (no dataclasses: that module imports `re` and
`inspect`, and these objects sit on the warm path). `.version` turns the stored
version text into a `packaging.version.Version` only when asked.
"""

TYPE_CHECKING = False
if TYPE_CHECKING:
    from packaging.version import Version


# Versions come from `libbroker._versions` (design.md 5.2): the probes of
# well-known libraries and the file names that carry product versions live there.


def parse_version(text: str | None) -> "Version | None":
    """*text* as a `packaging.version.Version`: itself when it is PEP 440 (a provider's
    "0.3.28.0.2"), else its first dotted number (`_versions.parse_version_text`:
    "expat_2.5.0" -> 2.5.0); None when it has none."""
    if not text:
        return None
    from packaging.version import InvalidVersion, Version

    try:
        return Version(text.strip())
    except InvalidVersion:
        pass
    from ._versions import parse_version_text  # lazily: no `re`/`json` on the warm path

    found = parse_version_text(text)
    return Version(found) if found else None


class Dependency:
    """One library of a closure: `.needed` as written in the binary (DT_NEEDED),
    `.path` (absolute) of the copy that serves it, `.origin` (where it was found:
    "mapped", "provider:<dist>", "rpath", "runpath", "LD_LIBRARY_PATH",
    "ld.so.cache", "default", "path")."""

    __slots__ = ("_identity", "needed", "origin", "path")

    def __init__(self, needed: str, path: str, origin: str) -> None:
        self.needed = needed
        self.path = path
        self.origin = origin
        # `_cache.identity` of the file the closure was judged on: the loader maps it only
        # while it still has this identity (design.md 5.1, the bytes checked are mapped).
        self._identity: tuple[int, ...] | None = None

    def as_dict(self) -> dict[str, str]:
        return {"needed": self.needed, "path": self.path, "origin": self.origin}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Dependency):
            return NotImplemented
        return (self.needed, self.path, self.origin) == (other.needed, other.path, other.origin)

    def __hash__(self) -> int:
        return hash((self.needed, self.path, self.origin))

    def __repr__(self) -> str:
        return f"<Dependency {self.needed!r} {self.path!r} ({self.origin})>"


def _judged_version(real: str, identity: "tuple[int, ...] | None", name: str,
                    soname: str | None) -> "tuple[str, str] | None":
    """`_resolve.product_version` of the file judged at *real*, asked after the verdict: None
    (unknown) when *real* is no longer that file (*identity*, `_cache.identity`), since an
    upgrade that replaced or re-pointed it would answer for another file (review3 F1)."""
    from ._cache import identity as identity_of
    from ._resolve import product_version

    if identity is not None and identity_of(real) != identity:
        return None
    return product_version(real, name, soname)


def _realpath(path: str) -> str:
    from ._cache import realpath

    return realpath(path)


def _is_identity(value: object) -> bool:
    """True for a `_cache.identity` tuple (seven ints)."""
    return isinstance(value, tuple) and len(value) == 7 and all(type(x) is int for x in value)


def _dependencies(value: "list[Dependency] | list[tuple[object, ...]] | None") -> "list[Dependency]":
    # The disk cache stores plain (needed, path, origin, identity) tuples (marshal);
    # anything else is a corrupt or older entry: TypeError, which the cache reader
    # treats as "re-judge".
    result = []
    for d in value or ():
        if not isinstance(d, Dependency):
            if not (
                isinstance(d, (tuple, list)) and len(d) == 4 and all(isinstance(x, str) for x in d[:3])
                and _is_identity(d[3])
            ):
                raise TypeError(f"expected (needed, path, origin, identity), found {d!r}")
            dep = Dependency(d[0], d[1], d[2])  # type: ignore[arg-type]
            dep._identity = d[3]  # type: ignore[assignment]
            d = dep
        result.append(d)
    return result


class _Judged:
    """What `LibraryInfo` and `Candidate` share: the identity and resolved path of the file
    the verdict was given on, and its version, asked from the sources of design.md 5.2 on
    first access when the verdict did not need it (`find(name)` without a specifier)."""

    __slots__ = (
        "_identity",
        "_real",
        "_version_pending",
        "_version_source",
        "_version_text",
        "name",
        "path",
        "soname",
    )

    def __init__(self, name: str, path: str, soname: str | None, version_text: str | None) -> None:
        self.name = name
        self.path = path
        self.soname = soname
        self._version_text = version_text
        self._version_source: str | None = None
        # `_cache.identity` of the file judged (None: not judged here), and its resolved path
        # then: a version asked later is that file's (`_ask_version`).
        self._identity: tuple[int, ...] | None = None
        self._real: str | None = None
        # True: nobody asked for the version yet and no specifier needed it.
        self._version_pending = False

    def _forget_parsed(self) -> None:
        """Hook: the version text changed (LibraryInfo drops its parsed Version)."""

    def _ask_version(self) -> None:
        # `_judged_version` never raises: a library or database that misbehaves leaves the
        # version unknown (None), as it would have while judging.
        self._version_pending = False
        found = _judged_version(self._real or _realpath(self.path), self._identity, self.name,
                                self.soname)
        if found is not None:
            self._version_text, self._version_source = found
            self._forget_parsed()

    @property
    def version_text(self) -> str | None:
        """The version as the source states it ("1.2.13"), or None when unknown.

        Asked on first access when the verdict did not need it: the library itself when
        this process maps it, else the package database that owns the file, else the
        file name (design.md 5.2), for the file judged (unknown once it was replaced).
        """
        if self._version_pending:
            self._ask_version()
        return self._version_text

    @version_text.setter
    def version_text(self, text: str | None) -> None:
        self._version_pending = False
        self._version_text = text
        self._forget_parsed()

    @property
    def version_source(self) -> str | None:
        """Where `.version` came from (design.md 5.2: "library", "provider",
        "package:<manager>:<package>", "file-name"), None when unknown."""
        if self._version_pending:
            self._ask_version()
        return self._version_source

    @version_source.setter
    def version_source(self, source: str | None) -> None:
        self._version_source = source


class LibraryInfo(_Judged):
    """A located library file (never loaded by `find`).

    `.dependencies` is the closure in load order (dependencies first, without
    the C library and the dynamic loader); `.version_source` says where
    `.version` came from (design.md 5.2), None when unknown.
    """

    __slots__ = ("_version", "dependencies", "origin")

    def __init__(
        self,
        name: str,
        path: str,
        *,
        soname: str | None = None,
        origin: str = "path",
        version_text: str | None = None,
        version_source: str | None = None,
        dependencies: "list[Dependency] | list[tuple[object, ...]] | None" = None,
    ) -> None:
        super().__init__(name, path, soname, version_text)
        self.origin = origin
        self._version: object = _UNSET
        self._version_source = version_source if version_text else None
        self.dependencies = _dependencies(dependencies)

    def _set_version_text(self, text: str | None, source: str | None = "library") -> None:
        """Replace the version (e.g. with what the library itself reports)."""
        self._version_text = text
        self._version_source = source if text else None
        self._version_pending = False
        self._version = _UNSET

    def _forget_parsed(self) -> None:
        self._version = _UNSET

    @property
    def version(self) -> "Version | None":
        """The library's version, a `packaging.version.Version`, or None when unknown."""
        if self._version_pending:
            self._ask_version()
        if self._version is _UNSET:
            self._version = parse_version(self._version_text)
        return self._version  # type: ignore[return-value]

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "path": self.path,
            "version": self.version_text,
            "soname": self.soname,
            "origin": self.origin,
            "version_source": self.version_source,
            "dependencies": [d.as_dict() for d in self.dependencies],
        }

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self.name!r} {self.path!r} version={self.version_text!r} "
            f"origin={self.origin!r}>"
        )


class _Unset:
    __slots__ = ()


_UNSET = _Unset()


class Candidate(_Judged):
    """A file seen while searching for a library, with the verdict on it."""

    __slots__ = ("accepted", "dependencies", "fix", "missing", "origin", "rank", "reason")

    def __init__(
        self,
        name: str,
        path: str,
        origin: str,
        *,
        accepted: bool = False,
        reason: str = "",
        soname: str | None = None,
        version_text: str | None = None,
        rank: int = 0,
    ) -> None:
        super().__init__(name, path, soname, version_text)
        self.origin = origin
        self.accepted = accepted
        self.reason = reason
        self.rank = rank
        self.missing: list[str] = []  # required symbols it lacks, when that is the reason
        self.dependencies: list[Dependency] = []  # the judged closure, load order
        self.fix: str | None = None  # the fix line for this rejection's reason

    @property
    def version(self) -> "Version | None":
        return parse_version(self.version_text)

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "path": self.path,
            "origin": self.origin,
            "accepted": self.accepted,
            "reason": self.reason,
            "soname": self.soname,
            "version": self.version_text,
            "version_source": self.version_source,
            "dependencies": [d.as_dict() for d in self.dependencies],
        }

    def __repr__(self) -> str:
        verdict = "accepted" if self.accepted else f"rejected: {self.reason}"
        return f"<Candidate {self.path!r} ({self.origin}) {verdict}>"


class Library(LibraryInfo):
    """A library libbroker loaded (privately, RTLD_LOCAL). One object per file per process."""

    __slots__ = ("handle", "identity")

    def __init__(
        self,
        name: str,
        path: str,
        handle: int,
        identity: tuple[int, int],
        *,
        soname: str | None = None,
        origin: str = "path",
        version_text: str | None = None,
        version_source: str | None = None,
        dependencies: "list[Dependency] | None" = None,
    ) -> None:
        super().__init__(
            name, path, soname=soname, origin=origin, version_text=version_text,
            version_source=version_source, dependencies=dependencies,
        )
        self.handle = handle
        self.identity = identity

    def address(self, symbol: str) -> int:
        """The address of an exported *symbol*; MissingSymbolError when absent."""
        from . import _master

        address = _master.dlsym(self.handle, symbol)
        if not address:
            from ._errors import MissingSymbolError

            raise MissingSymbolError(self.path, [symbol])
        return address

    def __contains__(self, symbol: object) -> bool:
        if not isinstance(symbol, str):
            return False
        from . import _master

        return bool(_master.dlsym(self.handle, symbol))

    def as_dict(self) -> dict[str, object]:
        data = super().as_dict()
        data["handle"] = self.handle
        return data
