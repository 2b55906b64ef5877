"""What every binary reader shares: the error type.

Each format module (`_elf`, `_pe`, `_macho`) reads headers with bounded reads
and never loads the file; a malformed file raises `InvalidBinaryError` with
what was expected, what was found and where.
"""

from __future__ import annotations

from .._errors import IncompatibleLibraryError


class InvalidBinaryError(IncompatibleLibraryError):
    """The file is not a readable shared library of a known format (text,
    truncated, linker script, directory, unreadable, dangling symlink,
    unsupported class, corrupt headers)."""
