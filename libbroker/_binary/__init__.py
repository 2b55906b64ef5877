"""Binary readers (ELF, PE/COFF, Mach-O) behind one interface; never loading.

`read_binary(path)` dispatches on the file's magic number. Each format lives in
its own module; `InvalidBinaryError` is the one error they raise.
"""

from __future__ import annotations

from ._common import InvalidBinaryError
from ._elf import (
    BinaryInfo,
    check_compatible,
    host_binary,
    host_glibc,
    is_linker_script,
    linker_script_targets,
    read_binary,
)

__all__ = [
    "BinaryInfo",
    "InvalidBinaryError",
    "check_compatible",
    "host_binary",
    "host_glibc",
    "is_linker_script",
    "linker_script_targets",
    "read_binary",
]
