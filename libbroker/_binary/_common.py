"""What every binary reader shares: the error type.

Each format module (`_elf`, `_pe`, `_macho`) reads headers with bounded reads
and never loads the file; a malformed file raises `InvalidBinaryError` with
what was expected, what was found and where.
"""

from __future__ import annotations

import os
import stat

from .._errors import IncompatibleLibraryError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import BinaryIO


class InvalidBinaryError(IncompatibleLibraryError):
    """The file is not a readable shared library of a known format (text,
    truncated, linker script, directory, unreadable, dangling symlink,
    unsupported class, corrupt headers)."""


class NotELF:
    """The ELF reader's names answered by the PE and Mach-O results, so callers
    written for ELF (`check_compatible`, `_resolve`, `inspect`) get an answer for
    any format instead of an AttributeError: the word size and kind under their
    ELF names, and no glibc, C-library flavour or symbol versions."""

    __slots__ = ()
    bits: int
    kind: str
    glibc_required = None
    libc = None
    version_defs: frozenset[str] = frozenset()
    version_needs: dict[str, list[str]] = {}  # noqa: RUF012  (never written: read-only answer)

    @property
    def elf_class(self) -> int:
        """Same as ``bits``."""
        return self.bits

    @property
    def elf_type(self) -> str:
        """Same as ``kind``."""
        return self.kind


def open_binary(path: str, what: str = "shared library file") -> tuple[BinaryIO, int]:
    """The open file (unbuffered) and its size, for a reader; never blocks.

    O_NONBLOCK (POSIX): a FIFO named like a library cannot hang the open;
    O_BINARY (Windows): no newline translation. Only a regular file is
    returned; anything else raises `InvalidBinaryError` saying what was found,
    with the fix for that reason. *what* names the expected file in messages.
    """
    if os.path.isdir(path):  # Windows says "permission denied" for a directory
        raise InvalidBinaryError(path, f"expected a {what} but found a directory")
    flags = os.O_RDONLY
    for name in ("O_BINARY", "O_NONBLOCK", "O_CLOEXEC", "O_NOINHERIT"):
        flags |= getattr(os, name, 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError as exc:
        if os.path.islink(path):
            raise InvalidBinaryError(
                path,
                f"dangling symbolic link: it points to {os.readlink(path)!r}, which does not exist",
                fix="reinstall the package that owns the link or remove the link",
            ) from exc
        raise InvalidBinaryError(path, "no such file") from exc
    except PermissionError as exc:
        raise InvalidBinaryError(
            path,
            f"the file cannot be read: {exc.strerror}",
            fix="make the file readable (chmod a+r) for this user",
        ) from exc
    except OSError as exc:
        raise InvalidBinaryError(path, f"the file cannot be opened: {exc.strerror or exc}") from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise InvalidBinaryError(path, "expected a regular file but found a device, pipe or socket")
        if hasattr(os, "pread"):
            # A "regular" file whose reads fail (/proc/self/mem: EIO at offset 0) is
            # reported here, not as an OSError from the middle of a reader.
            os.pread(fd, 1, 0)
        return open(fd, "rb", buffering=0, closefd=True), st.st_size
    except BaseException as exc:
        os.close(fd)
        if isinstance(exc, OSError):
            raise InvalidBinaryError(path, f"the file cannot be examined: {exc.strerror or exc}") from exc
        raise
