"""A pure-Python Mach-O reader (thin and fat/universal) that never loads the file.

Reads what dyld itself would use: the mach header, the load commands (install
name, dependencies, rpaths, minimum OS, UUID, code signature) and the exports
trie (LC_DYLD_INFO(_ONLY) ``export_off`` or LC_DYLD_EXPORTS_TRIE), falling
back to the symbol table's external defined symbols when there is no trie.
Layouts follow Apple's ``<mach-o/loader.h>``, ``<mach-o/fat.h>`` and
``<mach-o/nlist.h>``; the exports-trie grammar is dyld's (``MachOLoaded.cpp``).

Hardened like the ELF reader: every read is bounded by the file (or the fat
slice) size; ``ncmds``/``sizeofcmds`` are validated; each command's
``cmdsize`` is at least 8 and inside ``sizeofcmds``; strings lie inside their
command; ULEB128 numbers are at most 10 bytes; the trie walk keeps a visited
set and caps depth, name length, node count and the total bytes of names
(the symbol-table fallback too); fat headers cap
``nfat_arch`` and require slices inside the file, past the header and not
overlapping. Malformed input raises `InvalidBinaryError`, never anything else.

Kept free of ``re``, ``typing`` and ``dataclasses`` like ``_elf``.
"""

from __future__ import annotations

import itertools
import os
import struct

from ._common import InvalidBinaryError, NotELF, open_binary

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import BinaryIO

MH_MAGIC, MH_CIGAM, MH_MAGIC_64, MH_CIGAM_64 = 0xFEEDFACE, 0xCEFAEDFE, 0xFEEDFACF, 0xCFFAEDFE
FAT_MAGIC, FAT_MAGIC_64 = 0xCAFEBABE, 0xCAFEBABF

_ABI64 = 0x01000000  # CPU_ARCH_ABI64
_ABI64_32 = 0x02000000  # CPU_ARCH_ABI64_32 (arm64_32: 64-bit ISA, 32-bit pointers)
_CPU_NAMES = {
    7: "i386", 7 | _ABI64: "x86_64", 12: "arm", 12 | _ABI64: "arm64",
    12 | _ABI64_32: "arm64_32", 18: "ppc", 18 | _ABI64: "ppc64",
}  # fmt: skip
# (cputype, cpusubtype & ~CPU_SUBTYPE_MASK) -> a more precise name, as lipo/otool print it.
_SUBTYPE_NAMES = {
    (7 | _ABI64, 8): "x86_64h", (12 | _ABI64, 2): "arm64e",
    (12, 6): "armv6", (12, 9): "armv7", (12, 11): "armv7s", (12, 12): "armv7k",
}  # fmt: skip
_CPU_SUBTYPE_MASK = 0xFF000000  # capability bits (e.g. arm64e pointer-auth ABI version)

_FILETYPES = {
    1: "object", 2: "executable", 3: "fvmlib", 4: "core", 5: "preload", 6: "shared",
    7: "dylinker", 8: "bundle", 9: "stub", 10: "dsym", 11: "kext", 12: "fileset",
}  # fmt: skip

_LC_REQ_DYLD = 0x80000000
_LC_SEGMENT, _LC_SYMTAB, _LC_DYSYMTAB, _LC_SEGMENT_64 = 0x1, 0x2, 0xB, 0x19
_LC_LOAD_DYLIB, _LC_ID_DYLIB = 0xC, 0xD
_LC_LOAD_WEAK_DYLIB = 0x18 | _LC_REQ_DYLD
_LC_UUID = 0x1B
_LC_RPATH = 0x1C | _LC_REQ_DYLD
_LC_CODE_SIGNATURE = 0x1D
_LC_REEXPORT_DYLIB = 0x1F | _LC_REQ_DYLD
_LC_LAZY_LOAD_DYLIB = 0x20
_LC_DYLD_INFO, _LC_DYLD_INFO_ONLY = 0x22, 0x22 | _LC_REQ_DYLD
_LC_LOAD_UPWARD_DYLIB = 0x23 | _LC_REQ_DYLD
_LC_VERSION_MIN = {0x24: "macos", 0x25: "ios", 0x2F: "tvos", 0x30: "watchos"}
_LC_BUILD_VERSION = 0x32
_LC_DYLD_EXPORTS_TRIE = 0x33 | _LC_REQ_DYLD
# Dependency commands -> the MachOInfo list that also records the kind ("" for plain loads).
_DEP_KINDS = {
    _LC_LOAD_DYLIB: "", _LC_LOAD_WEAK_DYLIB: "weak_needed", _LC_REEXPORT_DYLIB: "reexported",
    _LC_LAZY_LOAD_DYLIB: "lazy_needed", _LC_LOAD_UPWARD_DYLIB: "upward_needed",
}  # fmt: skip
# Commands an image has at most once (as LLVM's MachOObjectFile checks): a second
# install name or symbol table is ambiguous, so it is an error, not "last wins".
_UNIQUE = {
    _LC_ID_DYLIB: "LC_ID_DYLIB", _LC_SYMTAB: "LC_SYMTAB", _LC_DYSYMTAB: "LC_DYSYMTAB",
    _LC_UUID: "LC_UUID", _LC_CODE_SIGNATURE: "LC_CODE_SIGNATURE",
    _LC_DYLD_INFO: "LC_DYLD_INFO", _LC_DYLD_INFO_ONLY: "LC_DYLD_INFO",
    _LC_DYLD_EXPORTS_TRIE: "LC_DYLD_EXPORTS_TRIE",
}  # fmt: skip

_PLATFORMS = {
    1: "macos", 2: "ios", 3: "tvos", 4: "watchos", 5: "bridgeos", 6: "maccatalyst",
    7: "iossimulator", 8: "tvossimulator", 9: "watchossimulator", 10: "driverkit",
    11: "visionos", 12: "visionossimulator",
}  # fmt: skip

_N_STAB, _N_TYPE, _N_EXT, _N_UNDF = 0xE0, 0x0E, 0x01, 0x0

# Caps on counts and sizes read from the file (real binaries are far below
# them), so a corrupt header cannot make us loop or allocate without bound.
_MAX_FAT_ARCH = 32  # lipo knows ~20 cputypes; Java class files share 0xCAFEBABE
_MAX_NCMDS = 65536
_MAX_SIZEOFCMDS = 16 << 20
_MAX_TRIE = 256 << 20
_MAX_TRIE_DEPTH = 512  # edges from the root; real tries are < 100 deep
_MAX_NAME = 16384  # bytes in one exported name (long Swift/C++ manglings fit)
# Bytes of names a trie (or a string table) may expand to, per byte of it
# (real tries: 0.5-2, as prefixes are shared), plus a floor: without it a 1 MB
# trie of long shared prefixes could make gigabytes of names.
_TRIE_EXPANSION, _TRIE_EXPANSION_FLOOR = 32, 4 << 20
_MAX_SYMBOLS = 4_000_000
_FIX_REINSTALL = "reinstall the library; the file was cut short or damaged"


class MachOInfo(NotELF):
    """Facts read from one Mach-O image (or, for a fat file, its first slice
    with every slice in ``slices``).

    Common attributes (as for every reader in `libbroker._binary`): ``format``
    ("Mach-O"), ``machine`` (cputype int), ``machine_name`` ("x86_64", "arm64",
    "arm64e", "i386"...), ``bits`` (32/64), ``kind`` ("shared" for MH_DYLIB,
    "bundle", "executable"...), ``soname`` (LC_ID_DYLIB install name or None),
    ``needed`` (every LC_LOAD_DYLIB, LC_LOAD_WEAK_DYLIB, LC_REEXPORT_DYLIB,
    LC_LAZY_LOAD_DYLIB and LC_LOAD_UPWARD_DYLIB name, in load-command order),
    ``exports`` (int: exports-trie terminals, else external defined symbols),
    ``rpath`` (LC_RPATH list), ``runpath`` (always []), ``min_os`` ("11.0";
    LC_BUILD_VERSION, else LC_VERSION_MIN_*; None if neither), ``slices``.

    Mach-O specifics: ``weak_needed``, ``reexported``, ``lazy_needed``,
    ``upward_needed`` (subsets of ``needed``), ``current_version`` and
    ``compatibility_version`` ("a.b.c" of LC_ID_DYLIB), ``platform`` ("macos",
    "ios"...), ``sdk`` ("14.2"), ``code_signature`` (LC_CODE_SIGNATURE
    present), ``uuid`` (canonical text or None), ``functions`` (frozenset of
    exported names without the leading underscore of the C ABI; data symbols
    too, as the trie does not tell code from data), ``cpusubtype``,
    ``filetype`` (MH_* int), ``byte_order``, ``offset``/``size`` (of the slice
    in the file, bytes).
    """

    __slots__ = (
        "bits",
        "byte_order",
        "code_signature",
        "compatibility_version",
        "cpusubtype",
        "current_version",
        "exports",
        "filetype",
        "flags",
        "format",
        "functions",
        "kind",
        "lazy_needed",
        "machine",
        "machine_name",
        "min_os",
        "needed",
        "offset",
        "path",
        "platform",
        "reexported",
        "rpath",
        "runpath",
        "sdk",
        "size",
        "slices",
        "soname",
        "upward_needed",
        "uuid",
        "weak_needed",
    )  # fmt: skip

    def __init__(self, path: str) -> None:
        self.path = path
        self.format = "Mach-O"
        self.machine = 0
        self.machine_name = ""
        self.cpusubtype = 0
        self.bits = 0
        self.byte_order = "little"
        self.filetype = 0
        self.flags = 0  # mach header flags (MH_TWOLEVEL, MH_PIE...)
        self.kind = ""
        self.soname: str | None = None
        self.needed: list[str] = []
        self.weak_needed: list[str] = []
        self.reexported: list[str] = []
        self.lazy_needed: list[str] = []
        self.upward_needed: list[str] = []
        self.current_version: str | None = None
        self.compatibility_version: str | None = None
        self.exports = 0
        self.functions: frozenset[str] = frozenset()
        self.rpath: list[str] = []
        self.runpath: list[str] = []
        self.min_os: str | None = None
        self.platform: str | None = None
        self.sdk: str | None = None
        self.code_signature = False
        self.uuid: str | None = None
        self.slices: list[MachOInfo] = []
        self.offset = 0
        self.size = 0

    def inspect_dict(self) -> dict[str, object]:
        """The design 5.3 ``inspect --json`` keys (without loadable/reason), plus
        ``kind`` as the ELF reader gives it."""
        return {
            "format": self.format,
            "machine": self.machine_name,
            "bits": self.bits,
            "kind": self.kind,
            "soname": self.soname,
            "needed": list(self.needed),
            "exports": self.exports,
            "rpath": list(self.rpath),
            "runpath": list(self.runpath),
            "min_os": self.min_os,
            "slices": [s.inspect_dict() for s in self.slices],
        }

    def __repr__(self) -> str:
        archs = "+".join(s.machine_name for s in self.slices) or self.machine_name
        return (
            f"<MachOInfo {self.path!r} {archs} {self.kind} soname={self.soname!r} "
            f"exports={self.exports} min_os={self.min_os!r}>"
        )


def _version(v: int) -> str:
    """Decode a packed xxxx.yy.zz version (loader.h) to "a.b.c"."""
    return f"{v >> 16}.{(v >> 8) & 0xFF}.{v & 0xFF}"


def _os_version(v: int) -> str:
    """Like `_version` but "11.0" when the patch level is zero (how Apple prints OS versions)."""
    major, minor, patch = v >> 16, (v >> 8) & 0xFF, v & 0xFF
    return f"{major}.{minor}.{patch}" if patch else f"{major}.{minor}"


class _Reader:
    """Bounded reads of one slice: offsets are relative to ``base``."""

    __slots__ = ("base", "f", "label", "path", "size")

    def __init__(self, f: BinaryIO, path: str, base: int, size: int, label: str = "") -> None:
        self.f = f
        self.path = path
        self.base = base
        self.size = size
        self.label = label  # "the arm64 slice at file offset 16384" inside a fat file

    def fail(self, what: str, fix: str | None = _FIX_REINSTALL) -> InvalidBinaryError:
        where = f" ({self.label})" if self.label else ""
        return InvalidBinaryError(self.path, f"corrupt Mach-O file{where}: {what}", fix=fix)

    def read(self, offset: int, length: int, what: str) -> bytes:
        if offset < 0 or length < 0 or offset + length > self.size:
            raise self.fail(
                f"expected the {what} at bytes {offset}..{offset + length} but the "
                f"{'slice' if self.label else 'file'} is {self.size} bytes long"
            )
        self.f.seek(self.base + offset)
        data = self.f.read(length)
        if len(data) != length:  # the file shrank under us
            raise self.fail(f"short read of the {what} at offset {offset}")
        return data


def read(path: str | os.PathLike[str]) -> MachOInfo:
    """Read the Mach-O file (thin or fat) at ``path``, symlinks followed.

    Returns a `MachOInfo`; for a fat file it describes the first slice and
    carries every slice (including the first) in ``slices``. Raises
    `InvalidBinaryError` naming what was expected, what was found and the
    offset when the file is not a readable Mach-O image.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise InvalidBinaryError(path, "expected a shared library file but found a directory")
    f, size = open_binary(path, "Mach-O file")
    with f:
        try:
            head = f.read(8)
            if len(head) < 4:
                raise InvalidBinaryError(
                    path,
                    f"expected a Mach-O file but found {len(head)} byte(s)",
                    fix=_FIX_REINSTALL,
                )
            (magic,) = struct.unpack(">I", head[:4])
            if magic in (FAT_MAGIC, FAT_MAGIC_64):
                return _read_fat(f, path, size, magic == FAT_MAGIC_64)
            return _read_thin(_Reader(f, path, 0, size))
        except struct.error as exc:  # a bug guard: every unpack is on a length-checked buffer
            raise InvalidBinaryError(path, f"corrupt Mach-O file: {exc}") from exc
        except OSError as exc:
            raise InvalidBinaryError(path, f"the file cannot be read: {exc.strerror}") from exc


def _read_fat(f: BinaryIO, path: str, size: int, is64: bool) -> MachOInfo:
    r = _Reader(f, path, 0, size)
    (nfat,) = struct.unpack(">I", r.read(4, 4, "fat header"))
    if nfat == 0 or nfat > _MAX_FAT_ARCH:
        raise InvalidBinaryError(
            path,
            f"expected a fat (universal) Mach-O header with 1..{_MAX_FAT_ARCH} architectures "
            f"but found nfat_arch={nfat} at offset 4 (a Java class file starts with the same "
            "magic 0xCAFEBABE)",
            fix=_FIX_REINSTALL,
        )
    entsize = 32 if is64 else 20
    table = r.read(8, nfat * entsize, f"fat header's {nfat} architecture entries")
    header_end = 8 + nfat * entsize
    arches: list[tuple[int, int, int, int]] = []  # (offset, size, cputype, index)
    for i in range(nfat):
        if is64:
            cputype, _, offset, length, _, _ = struct.unpack_from(">iiQQII", table, i * entsize)
        else:
            cputype, _, offset, length, _ = struct.unpack_from(">iiIII", table, i * entsize)
        where = f"fat architecture {i} (entry at offset {8 + i * entsize})"
        if offset < header_end or offset + length > size or length == 0:
            raise InvalidBinaryError(
                path,
                f"corrupt fat Mach-O file: {where} claims bytes {offset}..{offset + length}; "
                f"expected a non-empty slice after the header ({header_end} bytes) and inside "
                f"the file ({size} bytes)",
                fix=_FIX_REINSTALL,
            )
        arches.append((offset, length, cputype & 0xFFFFFFFF, i))
    ordered = sorted(arches)
    for (a_off, a_len, _, a_i), (b_off, _, _, b_i) in itertools.pairwise(ordered):
        if b_off < a_off + a_len:
            raise InvalidBinaryError(
                path,
                f"corrupt fat Mach-O file: slices {a_i} (bytes {a_off}..{a_off + a_len}) and "
                f"{b_i} (from byte {b_off}) overlap; expected disjoint slices",
                fix=_FIX_REINSTALL,
            )
    slices = [
        _read_thin(_Reader(f, path, offset, length, f"in the {_CPU_NAMES.get(cputype, hex(cputype))} "
                                                    f"slice at file offset {offset}"))
        for offset, length, cputype, _ in arches
    ]  # fmt: skip
    top = MachOInfo(path)
    for name in MachOInfo.__slots__:
        value = getattr(slices[0], name)
        setattr(top, name, list(value) if isinstance(value, list) else value)
    top.slices = slices
    return top


def _read_thin(r: _Reader) -> MachOInfo:
    info = MachOInfo(r.path)
    info.offset, info.size = r.base, r.size
    (magic,) = struct.unpack(">I", r.read(0, 4, "Mach-O magic"))
    if magic in (MH_MAGIC, MH_MAGIC_64):
        e = ">"
    elif magic in (MH_CIGAM, MH_CIGAM_64):
        e = "<"
    else:
        head = r.read(0, min(8, r.size), "magic")
        archive = head == b"!<arch>\n"
        raise r.fail(
            f"expected a thin Mach-O magic (0xFEEDFACE/0xFEEDFACF, either byte order) at offset 0 "
            f"but found {'a static archive' if archive else repr(head[:4])}",
            fix="use the dynamic library (.dylib), not the static archive (.a)" if archive else _FIX_REINSTALL,
        )
    is64 = magic in (MH_MAGIC_64, MH_CIGAM_64)
    hsize = 32 if is64 else 28
    cputype, cpusubtype, filetype, ncmds, sizeofcmds, info.flags = struct.unpack(
        e + "iiIIII", r.read(4, 24, "mach header")
    )
    info.byte_order = "big" if e == ">" else "little"
    info.bits = 64 if is64 else 32
    info.machine = cputype & 0xFFFFFFFF
    info.cpusubtype = cpusubtype & 0xFFFFFFFF
    base_name = _CPU_NAMES.get(info.machine, f"unknown-{info.machine:#x}")
    info.machine_name = _SUBTYPE_NAMES.get(
        (info.machine, info.cpusubtype & ~_CPU_SUBTYPE_MASK & 0xFFFFFFFF), base_name
    )
    info.filetype = filetype
    info.kind = _FILETYPES.get(filetype, f"unknown-{filetype}")
    if ncmds > _MAX_NCMDS or sizeofcmds > _MAX_SIZEOFCMDS or ncmds * 8 > sizeofcmds:
        raise r.fail(
            f"mach header at offset 0 has ncmds={ncmds} and sizeofcmds={sizeofcmds}; expected "
            f"at least 8 bytes per command, at most {_MAX_NCMDS} commands and "
            f"{_MAX_SIZEOFCMDS} bytes"
        )
    cmds = r.read(hsize, sizeofcmds, f"{ncmds} load commands")
    _parse_commands(r, info, e, is64, hsize, ncmds, cmds)
    return info


def _parse_commands(
    r: _Reader, info: MachOInfo, e: str, is64: bool, hsize: int, ncmds: int, cmds: bytes
) -> None:
    pos = 0
    trie: tuple[int, int] | None = None
    symtab: tuple[int, int, int, int] | None = None
    extdef: tuple[int, int] | None = None
    min_os: tuple[int, int] | None = None  # (packed version, source rank: build version wins)
    seen: set[str] = set()
    for index in range(ncmds):
        where = f"load command {index} at offset {hsize + pos}"
        if pos + 8 > len(cmds):
            raise r.fail(f"{where} lies past the end of the load commands (sizeofcmds={len(cmds)})")
        cmd, cmdsize = struct.unpack_from(e + "II", cmds, pos)
        if cmdsize < 8 or pos + cmdsize > len(cmds):
            raise r.fail(
                f"{where} has cmdsize={cmdsize}; expected at least 8 and at most the "
                f"{len(cmds) - pos} bytes left in sizeofcmds"
            )
        body = cmds[pos : pos + cmdsize]
        pos += cmdsize
        unique = _UNIQUE.get(cmd)
        if unique is not None:
            if unique in seen:
                raise r.fail(f"{where} is a second {unique}; expected at most one")
            seen.add(unique)

        def need(n: int, name: str, body: bytes = body, where: str = where) -> None:
            if len(body) < n:
                raise r.fail(f"{where} ({name}) is {len(body)} bytes; expected at least {n}")

        def string(off_at: int, fixed: int, name: str, body: bytes = body, where: str = where) -> str:
            need(fixed, name)
            (off,) = struct.unpack_from(e + "I", body, off_at)
            end = body.find(b"\0", off) if fixed <= off < len(body) else -2
            if end == -2:
                raise r.fail(
                    f"{where} ({name}) puts its string at offset {off}; expected it inside the "
                    f"command, between {fixed} and {len(body)}"
                )
            return body[off : end if end >= 0 else len(body)].decode("utf-8", "surrogateescape")

        if cmd in _DEP_KINDS:
            name = string(8, 24, "dylib command")
            info.needed.append(name)
            kind = _DEP_KINDS[cmd]
            if kind:
                getattr(info, kind).append(name)
        elif cmd == _LC_ID_DYLIB:
            info.soname = string(8, 24, "LC_ID_DYLIB")
            _, current, compat = struct.unpack_from(e + "III", body, 12)
            info.current_version, info.compatibility_version = _version(current), _version(compat)
        elif cmd == _LC_RPATH:
            info.rpath.append(string(8, 12, "LC_RPATH"))
        elif cmd == _LC_BUILD_VERSION:
            need(24, "LC_BUILD_VERSION")
            platform, minos, sdk = struct.unpack_from(e + "III", body, 8)
            # A "zippered" binary has one per platform (macos, then maccatalyst):
            # the first is what lief and otool report, and what a wheel tag uses.
            if min_os is None or min_os[1] == 0:
                info.platform = _PLATFORMS.get(platform, f"unknown-{platform}")
                info.sdk = _os_version(sdk)
                min_os = (minos, 1)
        elif cmd in _LC_VERSION_MIN:
            need(16, "LC_VERSION_MIN")
            version, sdk = struct.unpack_from(e + "II", body, 8)
            if min_os is None:
                info.platform = _LC_VERSION_MIN[cmd]
                info.sdk = _os_version(sdk)
                min_os = (version, 0)
        elif cmd == _LC_UUID:
            need(24, "LC_UUID")
            h = body[8:24].hex().upper()
            info.uuid = f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
        elif cmd == _LC_CODE_SIGNATURE:
            info.code_signature = True
        elif cmd in (_LC_DYLD_INFO, _LC_DYLD_INFO_ONLY):
            need(48, "LC_DYLD_INFO")
            trie = struct.unpack_from(e + "II", body, 40)
        elif cmd == _LC_DYLD_EXPORTS_TRIE:
            need(16, "LC_DYLD_EXPORTS_TRIE")
            trie = struct.unpack_from(e + "II", body, 8)
        elif cmd in (_LC_SEGMENT, _LC_SEGMENT_64):
            # A segment's file range past the end means the file was cut short
            # (dyld would refuse to map it); checking it catches truncation in
            # the data we do not otherwise read.
            if cmd == _LC_SEGMENT_64:
                need(72, "LC_SEGMENT_64")
                fileoff, filesize = struct.unpack_from(e + "QQ", body, 40)
            else:
                need(56, "LC_SEGMENT")
                fileoff, filesize = struct.unpack_from(e + "II", body, 32)
            if fileoff + filesize > r.size:
                segname = body[8:24].split(b"\0", 1)[0].decode("ascii", "replace")
                raise r.fail(
                    f"truncated: segment {segname!r} ({where}) needs bytes {fileoff}.."
                    f"{fileoff + filesize} but the {'slice' if r.label else 'file'} is "
                    f"{r.size} bytes long"
                )
        elif cmd == _LC_SYMTAB:
            need(24, "LC_SYMTAB")
            symtab = struct.unpack_from(e + "IIII", body, 8)
        elif cmd == _LC_DYSYMTAB:
            need(80, "LC_DYSYMTAB")
            extdef = struct.unpack_from(e + "II", body, 16)  # iextdefsym, nextdefsym
    if min_os is not None:
        info.min_os = _os_version(min_os[0])
    if trie is not None:
        names = _walk_trie(r, *trie)
    elif symtab is not None:
        names = _external_symbols(r, e, is64, symtab, extdef)
    else:
        names = []
    info.exports = len(names)
    info.functions = frozenset(n.removeprefix("_") for n in names)


def _uleb(r: _Reader, data: bytes, pos: int, what: str) -> tuple[int, int]:
    """Decode one ULEB128 at ``pos``; returns (value, next position). At most 10 bytes (64 bits)."""
    value = shift = 0
    for i in range(pos, min(pos + 10, len(data))):
        byte = data[i]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, i + 1
        shift += 7
    raise r.fail(f"unterminated or over-long ULEB128 in the {what} at trie offset {pos}")


def _walk_trie(r: _Reader, offset: int, size: int) -> list[str]:
    """Every terminal of the exports trie at ``offset`` (slice-relative), as full names.

    A node reached twice (a loop or shared subtree, which dyld never writes),
    a path deeper than `_MAX_TRIE_DEPTH`, a name longer than `_MAX_NAME` bytes
    or names adding up to more than `_TRIE_EXPANSION` bytes per trie byte is
    corruption: the walk stops with `InvalidBinaryError`.
    """
    if size == 0:
        return []
    if size > _MAX_TRIE:
        raise r.fail(f"the exports trie claims {size} bytes; expected at most {_MAX_TRIE}")
    data = r.read(offset, size, "exports trie")
    names: list[str] = []
    visited: set[int] = set()
    stack: list[tuple[int, bytes, int]] = [(0, b"", 0)]  # (node offset, prefix, depth)
    budget = _TRIE_EXPANSION * size + _TRIE_EXPANSION_FLOOR
    while stack:
        node, prefix, depth = stack.pop()
        if node in visited:
            raise r.fail(f"the exports trie reaches node {node} twice (a loop); expected a tree")
        visited.add(node)
        if node >= size:
            raise r.fail(f"an exports-trie edge points to offset {node}, past the trie's {size} bytes")
        # One-byte ULEB128s are the common case; inlining them halves the walk's time.
        terminal_size = data[node]
        if terminal_size < 0x80:
            pos = node + 1
        else:
            terminal_size, pos = _uleb(r, data, node, "exports trie")
        # The terminal's payload (flags, address or re-export ordinal) is not a
        # fact we report: skipping it by its size is what dyld does too.
        children_at = pos + terminal_size
        if children_at >= size:
            raise r.fail(f"the exports-trie node at {node} runs past the trie's {size} bytes")
        if terminal_size:
            names.append(prefix.decode("utf-8", "surrogateescape"))
            if len(names) > _MAX_SYMBOLS:
                raise r.fail(f"the exports trie holds more than {_MAX_SYMBOLS} symbols")
        pos = children_at + 1
        for _ in range(data[children_at]):
            end = data.find(b"\0", pos)
            if end < 0:
                raise r.fail(f"an exports-trie edge label at {pos} is not NUL-terminated")
            label = data[pos:end]
            pos = end + 1
            # The child offset's ULEB128, decoded inline: a call per edge doubles the walk's time.
            child = shift = 0
            while True:
                if pos >= size or shift > 63:
                    raise r.fail(f"unterminated or over-long ULEB128 at exports-trie offset {pos}")
                byte = data[pos]
                pos += 1
                child |= (byte & 0x7F) << shift
                if byte < 0x80:
                    break
                shift += 7
            if depth >= _MAX_TRIE_DEPTH or len(prefix) + len(label) > _MAX_NAME:
                raise r.fail(
                    f"the exports trie nests deeper than {_MAX_TRIE_DEPTH} edges or builds a name "
                    f"longer than {_MAX_NAME} bytes at node {node}"
                )
            budget -= len(prefix) + len(label)
            if budget < 0:
                raise r.fail(
                    f"the {size}-byte exports trie expands to more than "
                    f"{_TRIE_EXPANSION * size + _TRIE_EXPANSION_FLOOR} bytes of names"
                )
            stack.append((child, prefix + label, depth + 1))
    return names


def _external_symbols(
    r: _Reader,
    e: str,
    is64: bool,
    symtab: tuple[int, int, int, int],
    extdef: tuple[int, int] | None,
) -> list[str]:
    """Names of external defined symbols of LC_SYMTAB (the LC_DYSYMTAB range when valid)."""
    symoff, nsyms, stroff, strsize = symtab
    entsize = 16 if is64 else 12
    if nsyms > _MAX_SYMBOLS:
        raise r.fail(f"LC_SYMTAB claims {nsyms} symbols; expected at most {_MAX_SYMBOLS}")
    first, count = 0, nsyms
    if extdef is not None and extdef[0] + extdef[1] <= nsyms:
        first, count = extdef
    raw = r.read(symoff + first * entsize, count * entsize, "symbol table")
    strings = r.read(stroff, strsize, "string table")
    fmt = e + ("IBBHQ" if is64 else "IBBHI")
    names = []
    # Symbols may share (or overlap in) the string table; without a budget,
    # many symbols pointing into one long unterminated run would each copy it.
    budget = _TRIE_EXPANSION * strsize + _TRIE_EXPANSION_FLOOR
    for strx, ntype, _, _, _ in struct.iter_unpack(fmt, raw):
        if ntype & _N_STAB or not ntype & _N_EXT or ntype & _N_TYPE == _N_UNDF:
            continue
        if strx >= strsize:
            raise r.fail(f"a symbol's name offset {strx} lies outside the {strsize}-byte string table")
        end = strings.find(b"\0", strx, strx + _MAX_NAME + 1)
        if end < 0:
            end = min(strsize, strx + _MAX_NAME + 1)
            if end - strx > _MAX_NAME:
                raise r.fail(f"the symbol name at string-table offset {strx} is longer than {_MAX_NAME} bytes")
        budget -= end - strx
        if budget < 0:
            raise r.fail(f"the symbol names add up to more than {_TRIE_EXPANSION} times the string table")
        names.append(strings[strx:end].decode("utf-8", "surrogateescape"))
    return names


__all__ = ["MachOInfo", "read"]
