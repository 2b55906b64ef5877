"""The one error hierarchy of libbroker.

Every message says what was expected, what was found and where, and ends with
the fix where there is one. Kept free of heavy imports: this module is on the
warm import path of every consumer.
"""

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence


class BrokerError(Exception):
    """Base class of every error libbroker raises."""


class SpecError(BrokerError, ValueError):
    """A spec file (or spec text) is malformed or contradictory.

    ``str(err)`` starts with ``<path>:<line>: `` when those are known.
    """

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None) -> None:
        self.message = message
        self.path = path
        self.line = line
        where = path if path is not None else "<spec>"
        if line is not None:
            where = f"{where}:{line}"
        super().__init__(f"{where}: {message}")


class LibraryNotFoundError(BrokerError, LookupError):
    """No acceptable copy of a library was found.

    Lists every place searched and every candidate rejected, with its reason.
    """

    def __init__(
        self,
        name: str,
        *,
        version: str | None = None,
        searched: "Sequence[str]" = (),
        rejected: "Iterable[tuple[str, str]]" = (),
        hint: str | None = None,
    ) -> None:
        self.name = name
        self.version = version
        self.searched = list(searched)
        self.rejected = list(rejected)
        wanted = f"{name!r}" + (f" with version {version!r}" if version else "")
        lines = [f"no acceptable library {wanted} was found"]
        if self.searched:
            lines.append("searched:")
            lines.extend(f"  {place}" for place in self.searched)
        else:
            lines.append("searched: nowhere (no search location exists)")
        if self.rejected:
            lines.append("rejected:")
            # A file name with a line break or control character is shown quoted, so
            # each rejection stays on one line a user can read (review F8).
            lines.extend(f"  {path if path.isprintable() else repr(path)}: {reason}"
                         for path, reason in self.rejected)
        pinned = [place for place in self.searched if f"[libraries.{name}] pins " in place]
        if pinned:  # a pin is the only place searched: installing a copy cannot help
            hint = _pin_fix(name, version, pinned[0], self.rejected, hint)
        lines.append(
            hint
            or "fix: install the library, or point LIBBROKER_PATH (or the config file) at the "
            "directory that holds it"
        )
        # Not super(): NoAcceptableLibraryError also derives from IncompatibleLibraryError.
        BrokerError.__init__(self, "\n".join(lines))

    def __reduce__(self) -> "tuple[object, ...]":  # keep pickling (multiprocessing) working with keyword-only args
        return (_rebuild, (type(self), self.args, self.__dict__))


def _pin_fix(name: str, version: "str | None", place: str,
             rejected: "Sequence[tuple[str, str]]", hint: "str | None") -> str:
    """The fix line when a config pin was the only place searched, chosen by the reason.

    *place* is the searched line ``config file '<path>': [libraries.<name>] pins '<file>'``
    (libbroker._discovery). A dependency of the pinned file that is missing or too old is
    fixed where the given *hint* says; every other reason is about the pinned file itself.
    """
    config, sep, _ = place.partition(f": [libraries.{name}] pins ")
    where = config[len("config file "):] if sep and config.startswith("config file ") else "the config file"
    reasons = " ".join(reason for _, reason in rejected)
    if hint is not None and "its dependency" in reasons:
        return f"{hint}; or correct the pin ([libraries.{name}] path in {where})"
    if "outside the specifier" in reasons:
        wanted = f"a copy whose version matches {version!r}"
    else:
        wanted = "a usable copy of the library (the reason it was refused is above)"
    return (f"fix: correct the pin ([libraries.{name}] path in {where}) to name {wanted}, "
            "or remove it to search as usual")


class IncompatibleLibraryError(BrokerError):
    """A library file exists but cannot serve: wrong format, machine, word size,
    version, glibc symbol versions, or a file changed after installation."""

    def __init__(self, path: str, reason: str, *, fix: str | None = None) -> None:
        self.path = path
        self.reason = reason
        message = f"{path!r}: {reason}"
        if fix:
            message += f"; fix: {fix}"
        BrokerError.__init__(self, message)

    def __reduce__(self) -> "tuple[object, ...]":
        return (_rebuild, (type(self), self.args, self.__dict__))


class MissingSymbolError(BrokerError, LookupError):
    """Required symbols are absent from a library. Names all of them at once."""

    def __init__(self, path: str, missing: "Sequence[str]", *, table: str | None = None) -> None:
        self.path = path
        self.missing = list(missing)
        self.table = table
        what = f" required by table {table!r}" if table else ""
        names = ", ".join(repr(m) for m in self.missing)
        super().__init__(
            f"{path!r} does not export {len(self.missing)} symbol(s){what}: {names}; "
            "fix: use a build of the library that has them, adjust symbol-prefix/"
            "symbol-suffix, or move them to [functions] optional"
        )

    def __reduce__(self) -> "tuple[object, ...]":
        return (_rebuild, (type(self), self.args, self.__dict__))


def _rebuild(cls: type[BaseException], args: "tuple[object, ...]", state: "dict[str, object]") -> BaseException:
    err = cls.__new__(cls)
    Exception.__init__(err, *args)
    err.__dict__.update(state)
    return err


__all__ = [
    "BrokerError",
    "IncompatibleLibraryError",
    "LibraryNotFoundError",
    "MissingSymbolError",
    "SpecError",
]


class NoAcceptableLibraryError(LibraryNotFoundError, IncompatibleLibraryError):
    """Copies of the library were found, and every one was rejected.

    It is both "not found" (no usable copy) and "incompatible" (each copy seen
    fails a check: machine, word size, version, glibc symbol versions...), so
    either ``except`` clause catches it.
    """

    def __init__(self, name: str, **kwargs: object) -> None:
        LibraryNotFoundError.__init__(self, name, **kwargs)  # type: ignore[arg-type]
        first = self.rejected[0] if self.rejected else ("", "")
        self.path, self.reason = first


__all__.append("NoAcceptableLibraryError")


class BrokerWarning(UserWarning):
    """Something libbroker ignored or worked around (an unsafe config file or cache directory...)."""


class DuplicateLibraryWarning(BrokerWarning):
    """A second copy of a library was loaded next to one already mapped (names both files)."""


__all__ += ["BrokerWarning", "DuplicateLibraryWarning"]
