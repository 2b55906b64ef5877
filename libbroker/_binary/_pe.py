"""A pure-Python PE/COFF reader (Windows DLLs, .pyd, .exe) that never loads the file.

Reads what the Windows loader reads to bind a DLL: the DOS stub's `e_lfanew`,
the COFF file header, the optional header (PE32 or PE32+), the section table,
and through the data directories the export table (DLL name, named,
ordinal-only and forwarded exports), the import table and the delay-load
import table. The security directory is only looked at for its presence.

Hardened like the ELF reader: every read is bounded by the file size; every
RVA is mapped to a file offset through the validated section table (a read may
not run past its section); counts read from the file (sections, names,
functions, descriptors, thunks) are capped by what fits in the file; the bytes
scanned for strings have a budget proportional to the file size, so a
corrupt file costs at most a few passes over itself. Malformed input raises
`InvalidBinaryError` naming what was expected, what was found and where (file
offset or RVA).

The layout follows Microsoft's "PE Format" specification; pefile
(erocarrera/pefile) was read for how real files bend it (section sizes,
forwarders, old VA-based delay-load descriptors), and is the test oracle.
Kept free of ``re``, ``typing`` and ``dataclasses``: discovery imports it.
"""

from __future__ import annotations

import os
import struct
from bisect import bisect_right

from ._common import InvalidBinaryError, NotELF, open_binary

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import BinaryIO

# IMAGE_FILE_HEADER.Machine values (winnt.h) -> libbroker's machine names.
MACHINE_NAMES = {
    0x014C: "i386", 0x8664: "x86_64", 0xAA64: "aarch64", 0xA64E: "arm64ec",
    0x01C0: "arm", 0x01C2: "arm", 0x01C4: "arm", 0x0200: "ia64",
    0x5032: "riscv32", 0x5064: "riscv64", 0x6232: "loongarch32", 0x6264: "loongarch64",
}  # fmt: skip

SUBSYSTEM_NAMES = {
    0: "unknown", 1: "native", 2: "windows_gui", 3: "windows_cui", 5: "os2_cui",
    7: "posix_cui", 8: "native_windows", 9: "windows_ce_gui", 10: "efi_application",
    11: "efi_boot_service_driver", 12: "efi_runtime_driver", 13: "efi_rom", 14: "xbox",
    16: "windows_boot_application",
}  # fmt: skip

# IMAGE_OPTIONAL_HEADER.DllCharacteristics bits.
DLL_CHARACTERISTICS = (
    (0x0020, "HIGH_ENTROPY_VA"), (0x0040, "DYNAMIC_BASE"), (0x0080, "FORCE_INTEGRITY"),
    (0x0100, "NX_COMPAT"), (0x0200, "NO_ISOLATION"), (0x0400, "NO_SEH"), (0x0800, "NO_BIND"),
    (0x1000, "APPCONTAINER"), (0x2000, "WDM_DRIVER"), (0x4000, "GUARD_CF"),
    (0x8000, "TERMINAL_SERVER_AWARE"),
)  # fmt: skip

# API set contracts: virtual names the loader redirects through the API set
# schema (apisetschema.dll); no file by that name exists.
# Besides api-ms-win-* there are api-ms-onecoreuap-* and ext-ms-onecore-*
# contracts; the schema is keyed on "api-"/"ext-" names, so match the family.
API_SET_PREFIXES = ("api-ms-", "ext-ms-")

_IMAGE_FILE_DLL = 0x2000
_PE32, _PE32_PLUS = 0x10B, 0x20B
_DIR_EXPORT, _DIR_IMPORT, _DIR_SECURITY, _DIR_DELAY_IMPORT, _DIR_CLR = 0, 1, 4, 13, 14
_COFF_SIZE = 20
_SECTION_SIZE = 40
_IMPORT_DESC_SIZE = 20
_DELAY_DESC_SIZE = 32
_EXPORT_DIR_SIZE = 40

# Caps. Ordinals are 16-bit, so no export table holds more than 65536
# functions or names. A DLL name longer than 1 KiB is corrupt data. Symbol
# names get 64 KiB: MSVC hashes decorated names past 4 KiB, but mingw's
# auto-exported C++ templates can be longer; the scan budget, not this cap,
# bounds the total work.
_MAX_EXPORTS = 0x10000
_MAX_DLL_NAME = 1024
_MAX_SYMBOL_NAME = 0x10000
_MAX_DESCRIPTORS = 0x10000
# The PE specification says the Windows loader stops at 96 sections; pefile
# allows 2,048. Allow as many as pefile.
_MAX_SECTIONS = 2048
_BLOCK = 0x10000
_MAX_CACHED_BLOCKS = 256  # 16 MiB of file kept in memory at most


class PEInfo(NotELF):
    """Facts read from a PE image's headers; never loads the file.

    Common attributes (see `libbroker._binary`): `format` ("PE"), `machine`
    (IMAGE_FILE_HEADER.Machine, int), `machine_name` ("x86_64", "i386",
    "aarch64", "arm", ...; "unknown-0x...." otherwise), `bits` (32 for PE32,
    64 for PE32+, from the optional header's magic), `kind` ("shared" when
    IMAGE_FILE_DLL is set, else "executable"), `soname` (the export
    directory's DLL name, or None), `needed` (import-table DLL names in file
    order, duplicates dropped case-insensitively), `exports` (int: named +
    ordinal-only entries, forwarders included, as pefile counts them), `rpath`
    and `runpath` ([]: Windows has none), `min_os` (None), `slices` ([]).

    PE specifics: `delay_needed` (delay-load import DLL names, in order),
    `export_names` and `functions` (frozenset of exported names; PE does not
    tell code from data, so every name GetProcAddress can find),
    `ordinal_only` (sorted list of ordinals exported without a name),
    `forwarders` (dict: export name, or "#<ordinal>" for an unnamed one, ->
    target "DLL.func" or "DLL.#ord" as written), `api_sets` (the needed and
    delay-needed names that are API-set contracts, virtual, not files),
    `imports` / `delay_imports` (dict: DLL name -> imported names, "#<ord>"
    for by-ordinal imports), `dll_characteristics` (int) and
    `dll_characteristics_flags` (tuple of names such as "DYNAMIC_BASE",
    "NX_COMPAT", "HIGH_ENTROPY_VA", "GUARD_CF"), `authenticode` (bool:
    the security directory is present and non-empty), `clr` (bool: a .NET
    assembly), `subsystem` ("windows_gui", "windows_cui", ...),
    `subsystem_version` ((major, minor)), `image_base` (int).
    """

    __slots__ = (
        "api_sets",
        "authenticode",
        "bits",
        "characteristics",
        "clr",
        "delay_imports",
        "delay_needed",
        "dll_characteristics",
        "dll_characteristics_flags",
        "export_names",
        "exports",
        "forwarders",
        "functions",
        "image_base",
        "imports",
        "kind",
        "machine",
        "machine_name",
        "needed",
        "ordinal_only",
        "path",
        "soname",
        "subsystem",
        "subsystem_version",
    )  # fmt: skip

    format = "PE"
    byte_order = "little"
    rpath: list[str] = []  # noqa: RUF012 - class-level constants, never mutated
    runpath: list[str] = []  # noqa: RUF012
    min_os = None
    slices: list[PEInfo] = []  # noqa: RUF012

    def __init__(self, path: str) -> None:
        self.path = path
        self.machine = 0
        self.machine_name = ""
        self.bits = 0
        self.kind = "executable"
        self.characteristics = 0
        self.soname: str | None = None
        self.needed: list[str] = []
        self.delay_needed: list[str] = []
        self.exports = 0
        self.export_names: frozenset[str] = frozenset()
        self.functions: frozenset[str] = frozenset()
        self.ordinal_only: list[int] = []
        self.forwarders: dict[str, str] = {}
        self.api_sets: list[str] = []
        self.imports: dict[str, list[str]] = {}
        self.delay_imports: dict[str, list[str]] = {}
        self.dll_characteristics = 0
        self.dll_characteristics_flags: tuple[str, ...] = ()
        self.authenticode = False
        self.clr = False
        self.subsystem = "unknown"
        self.subsystem_version = (0, 0)
        self.image_base = 0

    def inspect_dict(self) -> dict[str, object]:
        """The `inspect --json` keys of design.md 5.3 (plus "kind"), without loadable/reason."""
        return {
            "format": self.format,
            "machine": self.machine_name,
            "bits": self.bits,
            "kind": self.kind,
            "soname": self.soname,
            "needed": list(self.needed),
            "exports": self.exports,
            "rpath": [],
            "runpath": [],
            "min_os": None,
            "slices": [],
        }

    def __repr__(self) -> str:
        return (
            f"<PEInfo {self.path!r} {self.machine_name} {self.bits}-bit {self.kind} "
            f"soname={self.soname!r} exports={self.exports}>"
        )


class _Section:
    __slots__ = ("extent", "name", "raw_ptr", "raw_size", "va")

    def __init__(
        self, name: str, va: int, extent: int, raw_ptr: int, raw_size: int
    ) -> None:
        self.name = name
        self.va = va
        self.extent = extent  # bytes of address space the section covers
        self.raw_ptr = raw_ptr
        self.raw_size = raw_size  # bytes backed by the file; the rest reads as zeros


class _Image:
    """Bounded, cached reads of one open file, by offset and by RVA."""

    def __init__(self, f: BinaryIO, size: int, path: str) -> None:
        self.f = f
        self.size = size
        self.path = path
        self.blocks: dict[int, bytes] = {}
        self.sections: list[_Section] = []  # sorted by address, one per address
        self.section_vas: list[int] = []
        self.strings: dict[tuple[int, int], str] = {}  # (rva, cap) -> string, read once
        self.header_size = 0
        # Bytes we may still scan looking for string terminators: overlapping
        # or unterminated strings cannot make the reader quadratic.
        self.scan_budget = 4 * size + (1 << 20)

    def error(
        self,
        what: str,
        found: str,
        where: str,
        fix: str = "the file is truncated or corrupt: reinstall the package that owns it or rebuild it",
    ) -> InvalidBinaryError:
        return InvalidBinaryError(
            self.path,
            f"not a valid PE image: expected {what}, found {found} ({where})",
            fix=fix,
        )

    def _block(self, index: int) -> bytes:
        data = self.blocks.get(index)
        if data is None:
            if len(self.blocks) >= _MAX_CACHED_BLOCKS:
                self.blocks.clear()
            self.f.seek(index * _BLOCK)
            data = self.f.read(_BLOCK)
            self.blocks[index] = data
        return data

    def read(self, offset: int, n: int, what: str) -> bytes:
        """`n` bytes at file `offset`; an error naming `what` if the file is shorter."""
        if offset < 0 or offset + n > self.size:
            raise self.error(
                f"{what} ({n} bytes at offset {offset:#x})",
                f"a file of {self.size} bytes",
                "past the end of the file",
            )
        first, last = (
            offset // _BLOCK,
            (offset + n - 1) // _BLOCK if n else offset // _BLOCK,
        )
        if first == last:
            start = offset - first * _BLOCK
            data = self._block(first)[start : start + n]
        elif n > 4 * _BLOCK:  # big arrays: one read, not cached
            self.f.seek(offset)
            data = self.f.read(n)
        else:
            data = b"".join(self._block(i) for i in range(first, last + 1))
            start = offset - first * _BLOCK
            data = data[start : start + n]
        if len(data) != n:  # the file shrank while we read it
            raise self.error(
                f"{what} at offset {offset:#x}",
                "a shorter file",
                "read came back short",
            )
        return data

    def locate(self, rva: int, what: str) -> tuple[int, int, int]:
        """(file offset, bytes backed by the file, bytes of address space) from `rva` on."""
        i = bisect_right(self.section_vas, rva) - 1
        if i >= 0 and rva < self.sections[i].va + self.sections[i].extent:
            s = self.sections[i]
            delta = rva - s.va
            return s.raw_ptr + delta, max(0, s.raw_size - delta), s.extent - delta
        if 0 <= rva < self.header_size:
            return rva, self.header_size - rva, self.header_size - rva
        raise self.error(
            f"{what} at an address inside a section",
            f"RVA {rva:#x}",
            "outside every section: "
            + ", ".join(
                f"{s.name or '?'} {s.va:#x}-{s.va + s.extent:#x}"
                for s in self.sections[:12]
            ),
        )

    def read_rva(self, rva: int, n: int, what: str) -> bytes:
        """`n` bytes at `rva`, zero-filled where the section has no file data."""
        offset, backed, extent = self.locate(rva, what)
        if n > extent:
            raise self.error(
                f"{what} ({n} bytes at RVA {rva:#x}) inside one section",
                f"only {extent} bytes before the section ends",
                f"file offset {offset:#x}",
            )
        if n <= backed:
            return self.read(offset, n, what)
        head = (
            self.read(offset, backed, what) if backed else b""
        )  # (offset may be past EOF)
        return head + bytes(n - backed)

    def _remember(self, key: tuple[int, int], parts: list[bytes]) -> str:
        text = b"".join(parts).decode("utf-8", "surrogateescape")
        self.strings[key] = text  # distinct strings: bounded by the scan budget
        return text

    def string(self, rva: int, cap: int, what: str) -> str:
        """The NUL-terminated string at `rva`, at most `cap` bytes (UTF-8, undecodable
        bytes kept as surrogate escapes so the exact bytes can be rebuilt)."""
        key = (rva, cap)
        known = self.strings.get(key)
        if known is not None:
            return known
        offset, backed, extent = self.locate(rva, what)
        avail = min(cap, extent, backed)
        parts: list[bytes] = []
        got = 0
        while got < avail:
            start = offset + got
            index = start // _BLOCK
            block = self._block(index)
            lo = start - index * _BLOCK
            hi = min(len(block), lo + avail - got)
            if hi <= lo:  # the file shrank under us
                break
            end = block.find(b"\0", lo, hi)
            self.scan_budget -= (end + 1 if end >= 0 else hi) - lo
            if self.scan_budget < 0:
                raise self.error(
                    f"{what} within a scan budget proportional to the file size",
                    "strings that overlap or never end",
                    f"RVA {rva:#x}",
                )
            if end >= 0:
                parts.append(block[lo:end])
                return self._remember(key, parts)
            parts.append(block[lo:hi])
            got += hi - lo
        if got == backed < min(cap, extent):
            # The file's data ends inside the section; the zero fill ends the string.
            return self._remember(key, parts)
        raise self.error(
            f"{what}: a NUL-terminated string of at most {min(cap, extent)} bytes",
            f"{got} bytes without a terminator",
            f"RVA {rva:#x}, file offset {offset:#x}",
        )


def read(path: str | os.PathLike[str]) -> PEInfo:
    """Read a PE image (DLL, .pyd, .exe) without loading it.

    Returns a `PEInfo`. Raises `InvalidBinaryError` for a file that is not a
    PE image or whose headers or tables are truncated, out of bounds or
    inconsistent; the message says what was expected, what was found and at
    which offset/RVA. Reads are bounded by the file's size.
    """
    path = os.fspath(path)
    f, size = _open(path)
    try:
        return _parse(_Image(f, size, path))
    except OSError as e:
        raise InvalidBinaryError(
            path, f"the file cannot be read: {e.strerror or e}"
        ) from None
    finally:
        f.close()


def _open(path: str) -> tuple[BinaryIO, int]:
    return open_binary(path, "DLL file")


def _parse(image: _Image) -> PEInfo:
    info = PEInfo(image.path)
    dos = image.read(0, 64, "a DOS header ('MZ' and e_lfanew)")
    if dos[:2] != b"MZ":
        raise image.error("the 'MZ' DOS signature", repr(dos[:2]), "offset 0",
                          fix="point at a Windows DLL (a PE image)")  # fmt: skip
    (lfanew,) = struct.unpack_from("<I", dos, 0x3C)
    sig = (
        image.read(lfanew, 4, "the 'PE\\0\\0' signature at e_lfanew")
        if lfanew + 4 <= image.size
        else b""
    )
    if sig != b"PE\0\0":
        # Say what the file is, in the ELF reader's words for unknown data.
        if sig[:2] in (b"NE", b"LE", b"LX"):
            found = f"a 16-bit/VxD {sig[:2].decode()} executable"
        else:
            found = f"binary data starting with {dos[:16]!r}" + (
                f" and {sig!r} there"
                if sig
                else f", e_lfanew past the end ({image.size} bytes)"
            )
        raise image.error("'PE\\0\\0' at e_lfanew", found + " (a DOS program, or not an executable)",
                          f"offset {lfanew:#x}",
                          fix="point at a 32- or 64-bit Windows DLL (a PE image)")  # fmt: skip
    coff_at = lfanew + 4
    coff = image.read(coff_at, _COFF_SIZE, "the COFF file header")
    machine, nsections, _, _, _, opt_size, characteristics = struct.unpack(
        "<HHIIIHH", coff
    )
    info.machine = machine
    info.machine_name = MACHINE_NAMES.get(machine, f"unknown-{machine:#06x}")
    info.characteristics = characteristics
    info.kind = "shared" if characteristics & _IMAGE_FILE_DLL else "executable"

    opt_at = coff_at + _COFF_SIZE
    if opt_size < 2:
        raise image.error("an optional header (an image, not an object file)",
                          f"SizeOfOptionalHeader {opt_size}", f"offset {coff_at + 16:#x}")  # fmt: skip
    opt = image.read(opt_at, opt_size, "the optional header")
    (magic,) = struct.unpack_from("<H", opt, 0)
    if magic == _PE32:
        info.bits, fixed = 32, 96
        (info.image_base,) = (
            struct.unpack_from("<I", opt, 28) if opt_size >= 32 else (0,)
        )
    elif magic == _PE32_PLUS:
        info.bits, fixed = 64, 112
        (info.image_base,) = (
            struct.unpack_from("<Q", opt, 24) if opt_size >= 32 else (0,)
        )
    else:
        raise image.error("optional header magic 0x10b (PE32) or 0x20b (PE32+)",
                          f"{magic:#x}", f"offset {opt_at:#x}")  # fmt: skip
    if opt_size < fixed:
        raise image.error(f"a PE{'32+' if info.bits == 64 else '32'} optional header of at least {fixed} bytes",
                          f"SizeOfOptionalHeader {opt_size}", f"offset {coff_at + 16:#x}")  # fmt: skip
    section_align, file_align = struct.unpack_from("<II", opt, 32)
    major_ss, minor_ss = struct.unpack_from("<HH", opt, 48)
    (header_size,) = struct.unpack_from("<I", opt, 60)
    subsystem, dll_chars = struct.unpack_from("<HH", opt, 68)
    (ndirs,) = struct.unpack_from("<I", opt, fixed - 4)
    info.subsystem = SUBSYSTEM_NAMES.get(subsystem, f"unknown-{subsystem}")
    info.subsystem_version = (major_ss, minor_ss)
    info.dll_characteristics = dll_chars
    info.dll_characteristics_flags = tuple(
        name for bit, name in DLL_CHARACTERISTICS if dll_chars & bit
    )
    # Directories past NumberOfRvaAndSizes, or past the header's declared size, are absent.
    ndirs = min(ndirs, 16, (opt_size - fixed) // 8)
    dirs = [struct.unpack_from("<II", opt, fixed + 8 * i) for i in range(ndirs)] + [
        (0, 0)
    ] * (16 - ndirs)

    _read_sections(
        image, opt_at + opt_size, nsections, section_align, file_align, header_size
    )

    sec_off, sec_size = dirs[_DIR_SECURITY]  # a file offset, not an RVA
    info.authenticode = sec_off != 0 and sec_size != 0
    info.clr = dirs[_DIR_CLR][0] != 0 and dirs[_DIR_CLR][1] != 0
    if dirs[_DIR_EXPORT][0]:
        _read_exports(image, info, *dirs[_DIR_EXPORT])
    if dirs[_DIR_IMPORT][0]:
        info.needed, info.imports = _read_imports(
            image, info, dirs[_DIR_IMPORT][0], delay=False
        )
    if dirs[_DIR_DELAY_IMPORT][0]:
        info.delay_needed, info.delay_imports = _read_imports(
            image, info, dirs[_DIR_DELAY_IMPORT][0], delay=True
        )
    info.api_sets = [
        n
        for n in info.needed + info.delay_needed
        if n.lower().startswith(API_SET_PREFIXES)
    ]
    return info


def _read_sections(
    image: _Image,
    at: int,
    count: int,
    section_align: int,
    file_align: int,
    header_size: int,
) -> None:
    if not 0 < count <= _MAX_SECTIONS:
        raise image.error(
            f"between 1 and {_MAX_SECTIONS} sections",
            f"NumberOfSections {count}",
            f"COFF header at offset {at:#x}",
        )
    table = image.read(
        at, count * _SECTION_SIZE, f"the section table ({count} entries)"
    )
    raw: list[tuple[str, int, int, int, int]] = []
    for i in range(count):
        name_b, vsize, va, raw_size, raw_ptr = struct.unpack_from(
            "<8sIIII", table, i * _SECTION_SIZE
        )
        name = name_b.rstrip(b"\0").decode("latin-1")
        if raw_size == 0:
            raw_ptr = 0  # uninitialized data (.bss): nothing in the file
        elif file_align >= 0x200:
            raw_ptr &= ~0x1FF  # the loader rounds PointerToRawData down to 512
        if raw_ptr + raw_size > image.size:
            # The loader refuses such an image too: the file was cut short.
            raise image.error(f"section {name!r}'s data ({raw_size} bytes at offset {raw_ptr:#x}) inside the file",
                              f"a file of {image.size} bytes (truncated?)",
                              f"section header {i} at offset {at + i * _SECTION_SIZE:#x}")  # fmt: skip
        raw.append((name, va, vsize, raw_ptr, raw_size))
    # One section per address (the first in table order, as pefile looks
    # them up), sorted so an RVA is found by bisection.
    by_va: dict[int, tuple[str, int, int, int, int]] = {}
    for entry in raw:
        by_va.setdefault(entry[1], entry)
    vas = sorted(by_va)
    for k, va in enumerate(vas):
        name, _, vsize, raw_ptr, raw_size = by_va[va]
        # VirtualSize 0 means SizeOfRawData (old linkers); a section never
        # overlaps the next one's addresses (as pefile's contains_rva).
        extent = max(vsize, raw_size) if vsize else raw_size
        if k + 1 < len(vas) and va + extent > vas[k + 1]:
            extent = vas[k + 1] - va
        image.sections.append(
            _Section(name, va, extent, raw_ptr, min(raw_size, extent))
        )
    image.section_vas = vas
    first_va = vas[0] if vas else 0
    # Headers are mapped at RVA 0 up to SizeOfHeaders (and never into the first section).
    image.header_size = max(0, min(header_size, first_va, image.size))


def _read_exports(image: _Image, info: PEInfo, dir_rva: int, dir_size: int) -> None:
    hdr = image.read_rva(dir_rva, _EXPORT_DIR_SIZE, "the export directory")
    (_, _, _, _, name_rva, base, nfuncs, nnames, funcs_rva, names_rva, ords_rva) = (
        struct.unpack("<IIHHIIIIIII", hdr)
    )
    if name_rva:
        info.soname = image.string(
            name_rva, _MAX_DLL_NAME, "the export directory's DLL name"
        )
    for count, label in ((nfuncs, "NumberOfFunctions"), (nnames, "NumberOfNames")):
        if count > _MAX_EXPORTS:
            raise image.error(f"{label} of at most {_MAX_EXPORTS} (ordinals are 16-bit)",
                              str(count), f"export directory at RVA {dir_rva:#x}")  # fmt: skip
    # (More names than functions is legal: aliases share a function slot.)
    # read_rva refuses arrays that run past their section: counts past the end fail here.
    funcs = (
        struct.unpack(
            f"<{nfuncs}I", image.read_rva(funcs_rva, 4 * nfuncs, "AddressOfFunctions")
        )
        if nfuncs
        else ()
    )
    names = (
        struct.unpack(
            f"<{nnames}I", image.read_rva(names_rva, 4 * nnames, "AddressOfNames")
        )
        if nnames
        else ()
    )
    ords = (
        struct.unpack(
            f"<{nnames}H", image.read_rva(ords_rva, 2 * nnames, "AddressOfNameOrdinals")
        )
        if nnames
        else ()
    )

    def forwarder(address: int) -> str | None:
        # An address inside the export directory is a "DLL.func" string, not code.
        if dir_rva <= address < dir_rva + dir_size:
            return image.string(
                address, _MAX_SYMBOL_NAME + _MAX_DLL_NAME, "a forwarder string"
            )
        return None

    count = 0
    export_names: set[str] = set()
    named: set[int] = set()
    forwarders: dict[str, str] = {}
    for i in range(nnames):
        index = ords[i]
        if index >= nfuncs:
            raise image.error(f"a name ordinal below NumberOfFunctions ({nfuncs})", str(index),
                              f"AddressOfNameOrdinals[{i}] at RVA {ords_rva + 2 * i:#x}")  # fmt: skip
        address = funcs[index]
        if address == 0:
            continue  # an unused slot: GetProcAddress finds nothing there
        name = image.string(names[i], _MAX_SYMBOL_NAME, f"export name {i}")
        named.add(index)
        export_names.add(name)
        count += 1
        target = forwarder(address)
        if target is not None:
            forwarders[name] = target
    ordinal_only = []
    for index in range(nfuncs):
        if index in named or funcs[index] == 0:
            continue
        ordinal = base + index
        ordinal_only.append(ordinal)
        count += 1
        target = forwarder(funcs[index])
        if target is not None:
            forwarders[f"#{ordinal}"] = target
    info.exports = count
    info.export_names = info.functions = frozenset(export_names)
    info.ordinal_only = ordinal_only
    info.forwarders = forwarders


def _read_imports(
    image: _Image, info: PEInfo, dir_rva: int, delay: bool
) -> tuple[list[str], dict[str, list[str]]]:
    table = "delay-load import" if delay else "import"
    size = _DELAY_DESC_SIZE if delay else _IMPORT_DESC_SIZE
    _, _, extent = image.locate(dir_rva, f"the {table} directory")
    limit = min(extent // size, _MAX_DESCRIPTORS)
    needed: list[str] = []
    seen: dict[str, str] = {}  # lower-case name -> the name first seen
    imports: dict[str, list[str]] = {}
    # Symbols read across all descriptors are capped by what the file could hold.
    budget = [image.size // (info.bits // 8) + 1]
    walked: dict[tuple[int, bool], list[str]] = {}  # thunk array -> names: read once
    chunk, chunk_start, step = b"", 0, 16
    for i in range(limit + 1):
        if i == limit:
            raise image.error(f"an all-zero descriptor ending the {table} table",
                              f"{limit} descriptors without one", f"RVA {dir_rva:#x}")  # fmt: skip
        if i - chunk_start >= len(chunk) // size:
            # Descriptors are read in slices that grow: one read for most tables.
            chunk_start, n = i, min(step, limit - i)
            chunk = image.read_rva(
                dir_rva + i * size, n * size, f"{table} descriptor {i}"
            )
            step = min(step * 4, 4096)
        at = (i - chunk_start) * size
        if delay:
            attrs, name_rva, _, iat, int_rva = struct.unpack_from("<IIIII", chunk, at)
            # Pre-VC7 descriptors (attribute bit 0 clear) hold virtual
            # addresses, not RVAs, down to the thunks' hint/name pointers.
            va_based = attrs & 1 == 0
            if va_based:
                name_rva, iat, int_rva = (
                    _va_to_rva(info, v) for v in (name_rva, iat, int_rva)
                )
            thunks = int_rva or iat
        else:
            original, _, _, name_rva, first_thunk = struct.unpack_from(
                "<IIIII", chunk, at
            )
            if first_thunk == 0:
                break  # the loader's end of table (Name and FirstThunk both needed)
            thunks = original or first_thunk
            va_based = False
        if name_rva == 0:
            break
        dll = image.string(
            name_rva, _MAX_DLL_NAME, f"{table} descriptor {i}'s DLL name"
        )
        symbols = walked.get((thunks, va_based))
        if symbols is None:
            what = f"{dll!r}'s {table} names"
            symbols = (
                _read_thunks(image, info, thunks, what, budget, va_based)
                if thunks
                else []
            )
            walked[thunks, va_based] = symbols
        else:
            budget[0] -= len(symbols)  # a shared array still costs its entries
            if budget[0] < 0:
                raise image.error(f"no more {table}s than the file can hold",
                                  "descriptors sharing thunk arrays", f"descriptor {i}")  # fmt: skip
        first = seen.setdefault(dll.lower(), dll)
        if first != dll or first in imports:  # the same DLL again: one entry
            imports[first].extend(symbols)
            continue
        needed.append(dll)
        imports[dll] = list(symbols)
    return needed, imports


def _va_to_rva(info: PEInfo, value: int) -> int:
    return value - info.image_base if value >= info.image_base else value


def _read_thunks(
    image: _Image,
    info: PEInfo,
    rva: int,
    what: str,
    budget: list[int],
    va_based: bool = False,
) -> list[str]:
    width = info.bits // 8
    ordinal_flag = 1 << (info.bits - 1)
    fmt = "<Q" if width == 8 else "<I"
    _, _, extent = image.locate(rva, what)
    count = extent // width
    names: list[str] = []
    # Read the thunk array in slices; it ends at a zero entry within its section.
    # Slices start small (most arrays are short) and grow: many descriptors
    # sharing one long array cost what the array costs, not 4096 entries each.
    done, step = 0, 64
    while done < count:
        n = min(count - done, step)
        step = min(step * 2, 4096)
        data = image.read_rva(rva + done * width, n * width, what)
        for j in range(n):
            (thunk,) = struct.unpack_from(fmt, data, j * width)
            if thunk == 0:
                return names
            budget[0] -= 1
            if budget[0] < 0:
                raise image.error(f"{what}: no more imports than the file can hold",
                                  "a thunk chain that does not end", f"RVA {rva:#x}")  # fmt: skip
            if thunk & ordinal_flag:
                names.append(f"#{thunk & 0xFFFF}")
            else:
                # Hint/name entry: a 16-bit hint, then the name.
                # (an old VA-based delay-load table holds addresses, not RVAs)
                entry = (_va_to_rva(info, thunk) if va_based else thunk) & 0x7FFFFFFF
                names.append(image.string(entry + 2, _MAX_SYMBOL_NAME, what))
        done += n
    raise image.error(f"{what}: a zero entry ending the thunk array", f"{count} entries without one",
                      f"RVA {rva:#x}")  # fmt: skip
