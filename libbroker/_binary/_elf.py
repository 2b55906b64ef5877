"""A pure-Python ELF reader that never loads the file.

Reads only what the loader itself would use: the ELF header, the program
headers and, through PT_DYNAMIC, the dynamic string and symbol tables and the
version-needed chain. Working from the dynamic segment (not the section
headers) keeps stripped libraries readable; section headers are only a
fallback for the symbol count. Each region is read with one seek/read, so a
25 MB library with 10,000 dynamic symbols costs a few hundred KB of I/O.

Modelled on pypa/packaging's ``_elffile.py``. Kept free of ``re``, ``typing``
and ``dataclasses``: discovery may import it on semi-warm paths.
"""

from __future__ import annotations

import os
import struct
import sys

from ._common import InvalidBinaryError, open_binary

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import BinaryIO




ELF_MAGIC = b"\x7fELF"

# e_machine values (elf.h) of the machines Python runs on.
MACHINE_NAMES = {
    2: "sparc", 3: "i386", 8: "mips", 20: "ppc", 21: "ppc64", 22: "s390", 40: "arm",
    43: "sparcv9", 50: "ia64", 62: "x86_64", 183: "aarch64", 243: "riscv", 258: "loongarch",
}  # fmt: skip

_ELF_TYPES = {0: "none", 1: "relocatable", 2: "executable", 3: "shared", 4: "core"}

_PT_LOAD, _PT_DYNAMIC = 1, 2
_DT_NEEDED, _DT_HASH, _DT_STRTAB, _DT_SYMTAB, _DT_STRSZ, _DT_SYMENT = 1, 4, 5, 6, 10, 11
_DT_SONAME, _DT_RPATH, _DT_RUNPATH = 14, 15, 29
_DT_FLAGS_1, _DT_GNU_HASH = 0x6FFFFFFB, 0x6FFFFEF5
_DT_VERNEED, _DT_VERNEEDNUM = 0x6FFFFFFE, 0x6FFFFFFF
_DT_VERDEF, _DT_VERDEFNUM = 0x6FFFFFFC, 0x6FFFFFFD
_DF_1_PIE = 0x08000000
_SHT_DYNSYM = 11
_STT_FUNC, _STT_GNU_IFUNC = 2, 10
_STB_GLOBAL, _STB_WEAK = 1, 2
_STV_DEFAULT, _STV_PROTECTED = 0, 3
# Caps on counts read from the file, so a corrupt header cannot make us loop
# or allocate without bound.
_MAX_PHNUM = 4096
_MAX_STRSZ = 64 << 20  # the same cap as _elfload (loader checks)
_MAX_SYMBOLS = 4_000_000
_MAX_VERNEED = 4096
_MAX_VERDEF = 65535

# DT_NEEDED names that tell which C library a binary was linked against.
_GLIBC_LIBC = "libc.so.6"
_MUSL_LIBCS = ("libc.so",)  # musl-gcc links "libc.so"; Alpine's is libc.musl-<arch>.so.1


class BinaryInfo:
    """Facts read from a binary's headers. ``functions`` holds the exported,
    defined FUNC/IFUNC dynamic symbols of global or weak binding and default
    or protected visibility: what ``dlsym`` can return."""

    __slots__ = (
        "_functions",
        "_lazy_functions",
        "byte_order",
        "elf_class",
        "elf_type",
        "flags",
        "format",
        "glibc_required",
        "machine",
        "machine_name",
        "needed",
        "path",
        "rpath",
        "runpath",
        "soname",
        "version_defs",
        "version_needs",
    )

    def __init__(self, path: str) -> None:
        self.path = path
        self.format = "elf"
        self.elf_class = 0
        self.byte_order = "little"
        self.machine = 0
        self.machine_name = ""
        self.flags = 0  # e_flags: ARM float ABI, MIPS ABI...
        self.elf_type = "none"
        self.soname: str | None = None
        self.needed: list[str] = []
        self.runpath: list[str] = []
        self.rpath: list[str] = []
        self._functions: frozenset[str] | None = frozenset()
        self._lazy_functions: Callable[[], frozenset[str]] | None = None
        self.glibc_required: tuple[int, int] | None = None
        self.version_needs: dict[str, list[str]] = {}
        # Symbol versions this file defines (DT_VERDEF), e.g. GLIBCXX_3.4.30.
        self.version_defs: frozenset[str] = frozenset()

    @property
    def functions(self) -> frozenset[str]:
        """The exported functions, decoded on first use: a closure check never asks for
        them and libc has thousands (every string offset was checked when the file was read)."""
        if self._functions is None:
            lazy, self._lazy_functions = self._lazy_functions, None
            self._functions = lazy() if lazy is not None else frozenset()
        return self._functions

    @functions.setter
    def functions(self, value: frozenset[str]) -> None:
        self._functions = value
        self._lazy_functions = None

    @property
    def bits(self) -> int:
        """Word size: 32 or 64 (the ELF class)."""
        return self.elf_class

    @property
    def kind(self) -> str:
        """"shared", "executable" (a PIE counts), "relocatable", "core" or "none"."""
        return self.elf_type

    @property
    def exports(self) -> int:
        """Number of exported, defined functions (what dlsym can return)."""
        return len(self.functions)

    @property
    def min_os(self) -> None:
        """Mach-O only; always None for ELF."""
        return None

    @property
    def slices(self) -> list[BinaryInfo]:
        """Fat Mach-O only; always [] for ELF."""
        return []

    @property
    def libc(self) -> str | None:
        """The C library it was linked against, from DT_NEEDED: "glibc", "musl" or None."""
        for name in self.needed:
            if name == _GLIBC_LIBC:
                return "glibc"
            if name in _MUSL_LIBCS or name.startswith("libc.musl-"):
                return "musl"
        return None

    def inspect_dict(self) -> dict[str, object]:
        """The format-independent keys of design.md 5.3 (without "loadable"/"reason")."""
        return {
            "format": "ELF",
            "machine": self.machine_name,
            "bits": self.bits,
            "kind": self.kind,
            "soname": self.soname,
            "needed": list(self.needed),
            "exports": self.exports,
            "rpath": list(self.rpath),
            "runpath": list(self.runpath),
            "min_os": None,
            "slices": [],
        }

    def __repr__(self) -> str:
        return (
            f"<BinaryInfo {self.path!r} {self.machine_name} {self.elf_class}-bit "
            f"{self.elf_type} soname={self.soname!r} functions={len(self.functions)}>"
        )


def _machine_name(machine: int, elf_class: int, byte_order: str) -> str:
    name = MACHINE_NAMES.get(machine)
    if name is None:
        return f"unknown-{machine}"
    if name == "ppc64" and byte_order == "little":
        return "ppc64le"
    if name == "s390" and elf_class == 64:
        return "s390x"
    if name in ("riscv", "loongarch"):
        return f"{name}{elf_class}"
    return name


# --- errors before parsing -------------------------------------------------


def _describe_start(head: bytes) -> str:
    """Say in words what a non-ELF file starts with."""
    if not head:
        return "an empty file"
    sample = head[:512]
    try:
        text = sample.decode("utf-8")
    except UnicodeDecodeError:
        # A multi-byte character cut at the end of the sample is still text.
        try:
            text = sample[:-3].decode("utf-8")
        except UnicodeDecodeError:
            text = None
    if text is not None and all(c.isprintable() or c in "\t\n\r\f\v" for c in text):
        first = text.strip().splitlines()[0][:60] if text.strip() else ""
        return f"a text file starting with {first!r}"
    return f"binary data starting with {head[:16]!r}"


def _strip_comments(text: str) -> str:
    out = []
    pos = 0
    while True:
        start = text.find("/*", pos)
        if start < 0:
            out.append(text[pos:])
            return "".join(out)
        out.append(text[pos:start])
        end = text.find("*/", start + 2)
        if end < 0:
            return "".join(out)
        out.append(" ")
        pos = end + 2


_LD_SCRIPT_COMMANDS = (
    "GROUP", "INPUT", "OUTPUT_FORMAT", "OUTPUT_ARCH", "OUTPUT", "SEARCH_DIR", "TARGET",
    "INCLUDE", "ENTRY", "STARTUP",
)  # fmt: skip


def _script_text(data: bytes) -> str | None:
    if data.startswith(ELF_MAGIC) or b"\0" in data:
        return None
    # "replace": a read cut inside a multi-byte character is still text.
    return _strip_comments(data.decode("utf-8", "replace"))


def is_linker_script(path_or_bytes: str | os.PathLike[str] | bytes) -> bool:
    """True for a GNU ld script (``GROUP ( ... )``, ``INPUT(...)``...)."""
    if isinstance(path_or_bytes, (bytes, bytearray)):
        data = bytes(path_or_bytes[:4096])
    else:
        try:
            with open(path_or_bytes, "rb") as f:
                data = f.read(4096)
        except OSError:
            return False
    text = _script_text(data)
    if text is None:
        return False
    body = text.lstrip()
    for command in _LD_SCRIPT_COMMANDS:
        if body.startswith(command) and body[len(command) :].lstrip().startswith("("):
            return True
    return False


def _script_tokens(text: str) -> list[str]:
    tokens: list[str] = []
    cur: list[str] = []
    quoted = False
    for ch in text:
        if quoted:
            if ch == '"':
                quoted = False
            else:
                cur.append(ch)
        elif ch == '"':
            quoted = True
        elif ch in "(),;" or ch.isspace():
            if cur:
                tokens.append("".join(cur))
                cur = []
            if not ch.isspace() and ch != ",":
                tokens.append(ch)
        else:
            cur.append(ch)
    if cur:
        tokens.append("".join(cur))
    return tokens


def linker_script_targets(path: str | os.PathLike[str]) -> list[str]:
    """Files named by the GROUP/INPUT commands of a GNU ld script, in order,
    AS_NEEDED members included. [] when the file is no linker script."""
    try:
        with open(path, "rb") as f:
            data = f.read(65536)
    except OSError:
        return []
    text = _script_text(data)
    if text is None or not is_linker_script(data):
        return []
    targets: list[str] = []
    depth = 0
    collecting = False
    previous = ""
    for token in _script_tokens(text):
        if token == "(":
            if depth == 0 and previous in ("GROUP", "INPUT"):
                collecting = True
            depth += 1
        elif token == ")":
            depth = max(depth - 1, 0)
            if depth == 0:
                collecting = False
        elif collecting and token not in ("AS_NEEDED", ";"):
            targets.append(token)
        previous = token
    return targets


def _script_error(path: str) -> InvalidBinaryError:
    targets = linker_script_targets(path)
    named = ", ".join(
        repr(t) + (" (missing)" if os.path.isabs(t) and not os.path.exists(t) else "") for t in targets
    )
    libs = [t for t in targets if ".so" in os.path.basename(t)]
    return InvalidBinaryError(
        path,
        "expected an ELF shared library but found a GNU ld linker script (text that only the "
        f"static linker reads) naming {named or 'no file'}",
        fix=f"use {libs[0]!r}, the shared library it names" if libs else "point at a real shared library",
    )


# --- the reader ------------------------------------------------------------


class _Reader:
    """Bounded reads of one open file. Small reads (version tables are read 20 bytes at
    a time) are served from one window of `_WINDOW` bytes, so a library's headers cost a
    few system calls rather than hundreds."""

    __slots__ = ("f", "path", "size", "window", "window_at")

    def __init__(self, f: BinaryIO, path: str, size: int) -> None:
        self.f = f
        self.path = path
        self.size = size
        self.window = b""
        self.window_at = 0

    def read(self, offset: int, length: int, what: str) -> bytes:
        if offset < 0 or length < 0 or offset + length > self.size:
            raise InvalidBinaryError(
                self.path,
                f"truncated or corrupt ELF file: the {what} needs bytes {offset}..{offset + length} "
                f"but the file is {self.size} bytes long",
                fix="reinstall the library; the file was cut short or damaged",
            )
        start = offset - self.window_at
        if 0 <= start and start + length <= len(self.window):
            return self.window[start:start + length]
        self.f.seek(offset)
        if length < _WINDOW:
            data = self.f.read(min(_WINDOW, self.size - offset))
            if len(data) < length:  # the file shrank under us
                raise InvalidBinaryError(
                    self.path, f"truncated ELF file: short read of the {what} at offset {offset}"
                )
            self.window, self.window_at = data, offset
            return data[:length]
        data = self.f.read(length)
        if len(data) != length:  # the file shrank under us
            raise InvalidBinaryError(
                self.path, f"truncated ELF file: short read of the {what} at offset {offset}"
            )
        return data


_WINDOW = 16384
_NATIVE = "<" if sys.byteorder == "little" else ">"


def _open(path: str) -> tuple[BinaryIO, int]:
    return open_binary(path, "shared library file")


def _is_regular(mode: int) -> bool:
    return (mode & 0o170000) == 0o100000


def read_binary(path: str | os.PathLike[str]) -> BinaryInfo:
    """Read the headers of the ELF file at ``path`` (symlinks followed).

    Raises InvalidBinaryError when the file is not a usable ELF binary.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise InvalidBinaryError(path, "expected a shared library file but found a directory")
    return _read(path, soname_only=False)


def read_soname(path: str | os.PathLike[str]) -> str | None:
    """The DT_SONAME of the ELF file at ``path`` (None when it has none), reading the
    headers, the dynamic section and that one string only: a few KB where `read_binary`
    reads the whole string and symbol tables (megabytes for libpython).

    Raises InvalidBinaryError as `read_binary` does.
    """
    return _read(os.fspath(path), soname_only=True).soname


def _read(path: str, soname_only: bool) -> BinaryInfo:
    f, size = _open(path)
    with f:
        try:
            head = f.read(64)
        except OSError as exc:
            raise InvalidBinaryError(path, f"the file cannot be read: {exc.strerror}") from exc
        if not head.startswith(ELF_MAGIC):
            head += f.read(4032)
            if is_linker_script(head):
                raise _script_error(path)
            raise InvalidBinaryError(
                path,
                f"expected an ELF file (starting with {ELF_MAGIC!r}) but found "
                f"{_describe_start(head)}",
            )
        try:
            return _parse(_Reader(f, path, size), head, soname_only)
        except struct.error as exc:
            raise InvalidBinaryError(path, f"corrupt ELF file: {exc}") from exc
        except OSError as exc:
            raise InvalidBinaryError(path, f"the file cannot be read: {exc.strerror}") from exc


def _parse(r: _Reader, head: bytes, soname_only: bool = False) -> BinaryInfo:
    info = BinaryInfo(r.path)
    if len(head) < 16:
        r.read(0, 16, "ELF identification")  # raises with the size
    ei_class, ei_data = head[4], head[5]
    if ei_class not in (1, 2):
        raise InvalidBinaryError(
            r.path, f"unsupported ELF class byte {ei_class} (expected 1 for 32-bit or 2 for 64-bit)"
        )
    if ei_data not in (1, 2):
        raise InvalidBinaryError(
            r.path, f"unsupported ELF data byte {ei_data} (expected 1 little-endian or 2 big-endian)"
        )
    is64 = ei_class == 2
    e = "<" if ei_data == 1 else ">"
    info.elf_class = 64 if is64 else 32
    info.byte_order = "little" if ei_data == 1 else "big"
    ehsize = 64 if is64 else 52
    if len(head) < ehsize:
        r.read(0, ehsize, "ELF header")
    if is64:
        e_type, e_machine, _, _, e_phoff, e_shoff, e_flags, _, e_phentsize, e_phnum, \
            e_shentsize, e_shnum, _ = struct.unpack_from(e + "HHIQQQIHHHHHH", head, 16)
    else:
        e_type, e_machine, _, _, e_phoff, e_shoff, e_flags, _, e_phentsize, e_phnum, \
            e_shentsize, e_shnum, _ = struct.unpack_from(e + "HHIIIIIHHHHHH", head, 16)
    info.machine = e_machine
    info.machine_name = _machine_name(e_machine, info.elf_class, info.byte_order)
    info.flags = e_flags
    info.elf_type = _ELF_TYPES.get(e_type, f"unknown-{e_type}")

    ph_fmt = e + ("IIQQQQQQ" if is64 else "IIIIIIII")
    if e_phnum > _MAX_PHNUM or (e_phnum and e_phentsize < struct.calcsize(ph_fmt)):
        raise InvalidBinaryError(r.path, f"corrupt ELF file: {e_phnum} program headers of {e_phentsize} bytes")
    phdata = r.read(e_phoff, e_phnum * e_phentsize, "program header table") if e_phnum else b""
    loads: list[tuple[int, int, int]] = []  # (vaddr, filesz, offset)
    dynamic: tuple[int, int] | None = None
    for i in range(e_phnum):
        fields = struct.unpack_from(ph_fmt, phdata, i * e_phentsize)
        if is64:
            p_type, _, p_offset, p_vaddr, _, p_filesz, _, _ = fields
        else:
            p_type, p_offset, p_vaddr, _, p_filesz, _, _, _ = fields
        if p_type == _PT_LOAD:
            loads.append((p_vaddr, p_filesz, p_offset))
        elif p_type == _PT_DYNAMIC:
            dynamic = (p_offset, p_filesz)
    if dynamic is None:
        return info  # a static executable or an object file: no dynamic facts
    _parse_dynamic(r, info, e, is64, loads, dynamic, (e_shoff, e_shentsize, e_shnum), soname_only)
    return info


def _parse_dynamic(
    r: _Reader,
    info: BinaryInfo,
    e: str,
    is64: bool,
    loads: list[tuple[int, int, int]],
    dynamic: tuple[int, int],
    sections: tuple[int, int, int],
    soname_only: bool = False,
) -> None:
    dyn_fmt = e + ("qQ" if is64 else "iI")
    dyn_size = 16 if is64 else 8
    raw = r.read(dynamic[0], dynamic[1] - dynamic[1] % dyn_size, "dynamic section")
    tags: dict[int, int] = {}
    ordered: list[tuple[int, int]] = []
    for tag, val in struct.iter_unpack(dyn_fmt, raw):
        if tag == 0:  # DT_NULL ends the table
            break
        if tag in (_DT_NEEDED, _DT_RPATH, _DT_RUNPATH):
            ordered.append((tag, val))
        else:
            tags.setdefault(tag, val)

    def offset_of(vaddr: int, what: str) -> int:
        for p_vaddr, p_filesz, p_offset in loads:
            if p_vaddr <= vaddr < p_vaddr + p_filesz:
                return p_offset + vaddr - p_vaddr
        raise InvalidBinaryError(
            r.path, f"corrupt ELF file: the {what} address {vaddr:#x} lies in no loadable segment"
        )

    if _DT_STRTAB not in tags:
        return
    strsz = tags.get(_DT_STRSZ, 0)
    if strsz > _MAX_STRSZ:  # a sparse file can be "big enough" for any size: bound the allocation
        raise InvalidBinaryError(
            r.path, f"corrupt ELF file: DT_STRSZ is {strsz} bytes (a real string table is under {_MAX_STRSZ})"
        )
    if soname_only:
        if _DT_SONAME in tags:
            at = tags[_DT_SONAME]
            if at >= strsz:
                raise InvalidBinaryError(
                    r.path, f"corrupt ELF file: string offset {at} outside the string table")
            chunk = r.read(offset_of(tags[_DT_STRTAB], "string table") + at,
                           min(strsz - at, 4096), "SONAME string")
            end = chunk.find(b"\0")
            if end < 0:
                raise InvalidBinaryError(r.path, "corrupt ELF file: the SONAME string has no end")
            info.soname = chunk[:end].decode("utf-8", "surrogateescape")
        return
    strtab = r.read(offset_of(tags[_DT_STRTAB], "string table"), strsz, "dynamic string table")

    def string(off: int) -> str:
        end = strtab.find(b"\0", off)
        if end < 0 or off >= len(strtab):
            raise InvalidBinaryError(r.path, f"corrupt ELF file: string offset {off} outside the string table")
        return strtab[off:end].decode("utf-8", "surrogateescape")

    if _DT_SONAME in tags:
        info.soname = string(tags[_DT_SONAME])
    for tag, val in ordered:
        if tag == _DT_NEEDED:
            info.needed.append(string(val))
        else:
            dirs = [d for d in string(val).split(":") if d]
            (info.runpath if tag == _DT_RUNPATH else info.rpath).extend(dirs)
    flags_1 = tags.get(_DT_FLAGS_1, 0)
    if info.elf_type == "shared" and flags_1 & _DF_1_PIE:
        info.elf_type = "executable"  # a PIE: glibc refuses to dlopen it

    if _DT_SYMTAB in tags:
        count = _symbol_count(r, e, is64, tags, offset_of, sections)
        sym_size = tags.get(_DT_SYMENT, 24 if is64 else 16)
        if count and sym_size >= (24 if is64 else 16):
            data = r.read(offset_of(tags[_DT_SYMTAB], "symbol table"), count * sym_size, "dynamic symbol table")
            _defer_functions(info, data, e, is64, sym_size, strtab, string)
    if _DT_VERNEED in tags:
        _parse_verneed(r, info, e, offset_of(tags[_DT_VERNEED], "version-needed table"),
                       tags.get(_DT_VERNEEDNUM, _MAX_VERNEED), string)
    if _DT_VERDEF in tags:
        info.version_defs = _parse_verdef(r, e, offset_of(tags[_DT_VERDEF], "version-definition table"),
                                          tags.get(_DT_VERDEFNUM, _MAX_VERDEF), string)


def _parse_verdef(r: _Reader, e: str, offset: int, count: int, string: Callable[[int], str]) -> frozenset[str]:
    """Names of the versions a library defines: the first Verdaux of each Verdef."""
    names = set()
    for _ in range(min(count, _MAX_VERDEF)):
        _, _, _, vd_cnt, _, vd_aux, vd_next = struct.unpack(e + "HHHHIII", r.read(offset, 20, "version definition"))
        if vd_cnt:
            (vda_name,) = struct.unpack(e + "I", r.read(offset + vd_aux, 4, "version definition name"))
            names.add(string(vda_name))
        if not vd_next:
            break
        offset += vd_next
    return frozenset(names)


def _defer_functions(
    info: BinaryInfo, data: bytes, e: str, is64: bool, sym_size: int, strtab: bytes,
    string: Callable[[int], str],
) -> None:
    """Set *info*'s functions to be decoded on first use, once every symbol's name offset
    is known to lie before the string table's last NUL (then no name can fail to decode);
    otherwise decode now, so a corrupt table is refused when the file is read, as before."""
    if e == _NATIVE and sym_size % 4 == 0 and len(data) % sym_size == 0:
        # st_name is the first word of every entry: a strided view, max() in C.
        last = max(memoryview(data).cast("I")[:: sym_size // 4], default=0)
    else:
        fmt = e + ("I" + f"{sym_size - 4}x")
        last = max((t[0] for t in struct.iter_unpack(fmt, data)), default=0)
    if last > strtab.rfind(b"\0"):
        info.functions = _functions(data, e, is64, sym_size, string)
        return
    info._functions = None
    info._lazy_functions = lambda: _functions(data, e, is64, sym_size, string)


def _functions(data: bytes, e: str, is64: bool, sym_size: int, string: Callable[[int], str]) -> frozenset[str]:
    if is64:
        fmt = e + "IBBH" + f"{sym_size - 8}x"
    else:
        fmt = e + "I8xBBH" + (f"{sym_size - 16}x" if sym_size > 16 else "")
    names = set()
    wanted_types = (_STT_FUNC, _STT_GNU_IFUNC)
    for name, st_info, st_other, shndx in struct.iter_unpack(fmt, data):
        if (
            shndx != 0
            and name
            and (st_info & 0xF) in wanted_types
            and (st_info >> 4) in (_STB_GLOBAL, _STB_WEAK)
            and (st_other & 3) in (_STV_DEFAULT, _STV_PROTECTED)
        ):
            names.add(string(name))
    return frozenset(names)


def _symbol_count(
    r: _Reader, e: str, is64: bool, tags: dict[int, int], offset_of: Callable[[int, str], int],
    sections: tuple[int, int, int],
) -> int:
    """Number of dynamic symbols. ELF stores no count in the dynamic segment:
    DT_HASH has it as nchain; DT_GNU_HASH only implies it through its chains."""
    if _DT_HASH in tags:
        nchain = struct.unpack(e + "I", r.read(offset_of(tags[_DT_HASH], "hash table") + 4, 4, "hash table"))[0]
        return min(int(nchain), _MAX_SYMBOLS)
    if _DT_GNU_HASH in tags:
        base = offset_of(tags[_DT_GNU_HASH], "GNU hash table")
        nbuckets, symoffset, bloom_size, _ = struct.unpack(e + "IIII", r.read(base, 16, "GNU hash table"))
        buckets_at = base + 16 + bloom_size * (8 if is64 else 4)
        buckets = struct.unpack(f"{e}{nbuckets}I", r.read(buckets_at, 4 * nbuckets, "GNU hash buckets"))
        last = max(buckets, default=0)
        if last < symoffset:
            return int(symoffset)
        # Walk the last bucket's chain to its end bit: that is the last symbol.
        # Read in blocks; a chain with no end bit stops at the end of the file.
        at = buckets_at + 4 * nbuckets + 4 * (last - symoffset)
        while last < _MAX_SYMBOLS:
            n = max(1, min(1024, (r.size - at) // 4))
            for word in struct.unpack(f"{e}{n}I", r.read(at, 4 * n, "GNU hash chain")):
                last += 1
                if word & 1:
                    return last
            at += 4 * n
        return _MAX_SYMBOLS
    e_shoff, e_shentsize, e_shnum = sections
    if not e_shoff or not e_shnum or e_shnum > 65535:
        return 0
    fmt = e + ("IIQQQQIIQQ" if is64 else "IIIIIIIIII")
    table = r.read(e_shoff, e_shnum * e_shentsize, "section header table")
    for i in range(e_shnum):
        sh = struct.unpack_from(fmt, table, i * e_shentsize)
        if sh[1] == _SHT_DYNSYM and sh[9]:
            return min(int(sh[5] // sh[9]), _MAX_SYMBOLS)
    return 0


def _parse_verneed(
    r: _Reader, info: BinaryInfo, e: str, offset: int, count: int, string: Callable[[int], str]
) -> None:
    newest: tuple[int, int] | None = None
    budget = _MAX_VERNEED  # total entries: corrupt next-offsets cannot make us crawl
    for _ in range(min(count, _MAX_VERNEED)):
        _, vn_cnt, vn_file, vn_aux, vn_next = struct.unpack(e + "HHIII", r.read(offset, 16, "version-needed entry"))
        names = info.version_needs.setdefault(string(vn_file), [])
        aux = offset + vn_aux
        for _ in range(vn_cnt):
            budget -= 1
            if budget < 0:
                raise InvalidBinaryError(r.path, "corrupt ELF file: the version-needed table does not end")
            _, _, _, vna_name, vna_next = struct.unpack(e + "IHHII", r.read(aux, 16, "version-needed auxiliary entry"))
            name = string(vna_name)
            names.append(name)
            version = _glibc_version(name)
            if version is not None and (newest is None or version > newest):
                newest = version
            if not vna_next:
                break
            aux += vna_next
        if not vn_next:
            break
        offset += vn_next
    info.glibc_required = newest


def _glibc_version(name: str) -> tuple[int, int] | None:
    if not name.startswith("GLIBC_"):
        return None  # GLIBC_PRIVATE, GLIBCXX_*, OPENSSL_* ...
    parts = name[6:].split(".")
    if len(parts) < 2 or not all(p.isdigit() for p in parts):
        return None
    return int(parts[0]), int(parts[1])


# --- the host --------------------------------------------------------------

_host: BinaryInfo | None = None


def host_binary() -> BinaryInfo:
    """Facts of the running interpreter's own executable (cached)."""
    global _host
    if _host is None:
        exe = ""
        if os.name != "nt":  # under wine, /proc/self/exe is wine's own ELF preloader
            try:
                # The real file, not the magic link: callers print host.path.
                exe = os.path.realpath("/proc/self/exe")
            except OSError:
                exe = ""
        # The dispatching reader: on Windows the interpreter is a PE file, on macOS Mach-O.
        from . import read_binary as read_any

        for candidate in (exe, sys.executable):
            if not candidate:
                continue
            try:
                _host = _running_slice(read_any(candidate))
                break
            except InvalidBinaryError:
                continue
        else:
            raise InvalidBinaryError(
                sys.executable or "/proc/self/exe",
                "cannot read the running interpreter's executable to learn its machine and word size",
            )
    return _host


def _running_slice(info: BinaryInfo) -> BinaryInfo:
    """Of a universal (fat) Mach-O interpreter, the slice of the machine it runs as."""
    slices = getattr(info, "slices", None) or []
    if slices:
        import platform

        running = platform.machine()
        for one in slices:
            if one.machine_name == running:
                return one  # type: ignore[no-any-return]
    return info


def _matching_slice(info: BinaryInfo, host: BinaryInfo) -> BinaryInfo:
    """Of a universal (fat) Mach-O file, the slice dyld would pick for *host*'s machine."""
    for one in getattr(info, "slices", None) or []:
        if one.machine == host.machine and one.elf_class == host.elf_class:
            return one  # type: ignore[no-any-return]
    return info


def host_glibc() -> tuple[int, int] | None:
    """The running C library's glibc version, None when not glibc (musl...)."""
    try:
        text = os.confstr("CS_GNU_LIBC_VERSION")
    except (AttributeError, ValueError, OSError):
        return None
    if not text or not text.startswith("glibc "):
        return None
    parts = text[6:].split(".")
    try:
        return int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        return None


def check_compatible(
    info: BinaryInfo, host: BinaryInfo, glibc: tuple[int, int] | None | bool = True
) -> str | None:
    """Why ``info`` cannot load into ``host``'s process, or None if it can.

    ``glibc`` is the system's glibc version; True (the default) asks
    ``host_glibc()``.
    """
    info = _matching_slice(info, host)
    if info.format != host.format:
        return f"{info.format.upper()} file but this interpreter is {host.format.upper()}"
    # Format-neutral (PE and Mach-O readers give the same attributes): the format's own name.
    fmt = "ELF" if info.format.lower() == "elf" else info.format
    if info.elf_class != host.elf_class:
        return f"{info.elf_class}-bit {fmt} but this interpreter is {host.elf_class}-bit"
    if info.byte_order != host.byte_order:
        return f"{info.byte_order}-endian {fmt} but this interpreter is {host.byte_order}-endian"
    if info.machine != host.machine:
        return (
            f"{fmt} machine {info.machine_name!r} ({info.machine}) but this interpreter is "
            f"{host.machine_name!r} ({host.machine})"
        )
    if info.glibc_required is not None:
        system = host_glibc() if glibc is True else glibc
        need = f"GLIBC_{info.glibc_required[0]}.{info.glibc_required[1]}"
        if system is None or system is False:
            return f"needs {need} but this system has no glibc"
        if info.glibc_required > system:
            return f"needs {need} but this system has glibc {system[0]}.{system[1]}"
    return None


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
