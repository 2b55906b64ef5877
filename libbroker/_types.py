"""The result objects of the Python API: LibraryInfo, Candidate, Library.

Plain classes with __slots__ (no dataclasses: that module imports `re` and
`inspect`, and these objects sit on the warm path). `.version` turns the stored
version text into a `packaging.version.Version` only when asked.
"""

TYPE_CHECKING = False
if TYPE_CHECKING:
    from packaging.version import Version


# Libraries that report their own version through a `const char *f(void)`.
KNOWN_VERSION_FUNCTIONS = {
    "z": "zlibVersion",
    "sqlite3": "sqlite3_libversion",
    "openblas": "openblas_get_config",
    "scipy_openblas": "scipy_openblas_get_config",
}
# Libraries whose file names carry libtool numbers, not the product version
# (libsqlite3.so.0.8.6 is SQLite 3.x): the file name would lie.
LIBTOOL_NUMBERED = frozenset({"sqlite3"})


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


class LibraryInfo:
    """A located library file (never loaded by `find`)."""

    __slots__ = ("name", "path", "soname", "origin", "version_text", "_version")

    def __init__(
        self,
        name: str,
        path: str,
        *,
        soname: str | None = None,
        origin: str = "path",
        version_text: str | None = None,
    ) -> None:
        self.name = name
        self.path = path
        self.soname = soname
        self.origin = origin
        self.version_text = version_text
        self._version: object = _UNSET

    def _set_version_text(self, text: str | None) -> None:
        """Replace the version (e.g. with what the library itself reports)."""
        self.version_text = text
        self._version = _UNSET

    @property
    def version(self) -> "Version | None":
        """The library's version, a `packaging.version.Version`, or None when unknown."""
        if self._version is _UNSET:
            self._version = parse_version(self.version_text)
        return self._version  # type: ignore[return-value]

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "path": self.path,
            "version": self.version_text,
            "soname": self.soname,
            "origin": self.origin,
        }

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self.name!r} {self.path!r} version={self.version_text!r} "
            f"origin={self.origin!r}>"
        )


class _Unset:
    __slots__ = ()


_UNSET = _Unset()


class Candidate:
    """A file seen while searching for a library, with the verdict on it."""

    __slots__ = (
        "name", "path", "origin", "accepted", "reason", "soname", "version_text", "rank", "missing",
    )

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
        self.name = name
        self.path = path
        self.origin = origin
        self.accepted = accepted
        self.reason = reason
        self.soname = soname
        self.version_text = version_text
        self.rank = rank
        self.missing: list[str] = []  # required symbols it lacks, when that is the reason

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
    ) -> None:
        super().__init__(name, path, soname=soname, origin=origin, version_text=version_text)
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
