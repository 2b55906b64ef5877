"""Binary readers (ELF, PE/COFF, Mach-O) behind one interface; never loading.

`read_binary(path)` dispatches on the file's magic number to the format's
module (`_elf`, `_pe`, `_macho`). Every result carries the same attributes,
whatever the format (the names of design.md part 5.3's `inspect` keys):

- `format`: "ELF", "PE" or "Mach-O"
- `machine_name`: "x86_64", "aarch64"/"arm64", "i386", ...
- `bits`: 32 or 64
- `kind`: "shared", "executable", ... (a Mach-O fat file: its first slice's)
- `soname`: ELF SONAME, Mach-O install name (LC_ID_DYLIB), PE export-directory name
- `needed`: list[str], in the binary's order (ELF DT_NEEDED, Mach-O LC_LOAD_*DYLIB, PE imports)
- `exports`: int, exported functions (forwarders and ordinal-only exports counted)
- `rpath`, `runpath`: list[str] (Mach-O LC_RPATH in `rpath`)
- `min_os`: str or None (Mach-O only)
- `slices`: list of per-architecture results (fat Mach-O), else []
- `inspect_dict()`: those keys as a JSON-ready dict (without "loadable"/"reason")

Malformed input raises `InvalidBinaryError` (bounded reads, bounded time).
"""

from __future__ import annotations

from ._common import InvalidBinaryError, open_binary
from ._elf import (
    BinaryInfo,
    check_compatible,
    host_binary,
    host_glibc,
    is_linker_script,
    linker_script_targets,
)
from ._elf import read_binary as read_elf

# Mach-O: thin 32/64-bit in both byte orders, and fat (universal) headers.
_MACHO_MAGICS = (
    b"\xfe\xed\xfa\xce", b"\xce\xfa\xed\xfe", b"\xfe\xed\xfa\xcf", b"\xcf\xfa\xed\xfe",
    b"\xca\xfe\xba\xbe", b"\xca\xfe\xba\xbf",
)


def read_binary(path: str) -> BinaryInfo:
    """Read any supported binary's headers; `InvalidBinaryError` when unreadable.

    The format is chosen by the first bytes ("\\x7fELF", "MZ", the Mach-O
    magics); anything else goes to the ELF reader, whose errors name what the
    file looks like (text, linker script, empty).
    """
    try:
        f, _ = open_binary(path)
    except InvalidBinaryError:
        magic = b""  # the ELF reader reports the precise reason
    else:
        with f:
            magic = f.read(4)
    from importlib import import_module

    module = None
    try:
        if magic[:2] == b"MZ":
            module = import_module("._pe", __name__)
        elif magic in _MACHO_MAGICS:
            module = import_module("._macho", __name__)
    except ImportError:  # that reader is not built yet: the ELF reader names the file
        module = None
    if module is not None:
        return module.read(path)  # type: ignore[no-any-return]
    return read_elf(path)


__all__ = [
    "BinaryInfo",
    "InvalidBinaryError",
    "check_compatible",
    "host_binary",
    "host_glibc",
    "is_linker_script",
    "linker_script_targets",
    "read_binary",
    "read_elf",
]
