"""Would the system loader map this ELF file without dying? Checked before every dlopen.

glibc's loader trusts the file: a segment past the end of the file is mapped
and touched (SIGBUS), a dynamic entry pointing outside the mapped image is
dereferenced (SIGSEGV), a missing DT_RELAENT is a NULL dereference, a wrong
DT_SYMENT an assert (SIGABRT), a relocation outside the writable segments a
write to read-only memory, an init-array entry outside the code a jump into
nowhere, a cyclic hash chain an endless loop. `loader_refusal` reads what the
loader reads, from the bytes it would map (not from section headers), with
bounded reads, and names the first such fault. It is not a full verifier:
corrupt machine code in a constructor still crashes (docs/security.md).

Kept apart from `_elf` (the facts reader) so each stays readable in one sitting;
both read with the same bounds.
"""

from __future__ import annotations

import os
import struct

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Literal

_MAX_PHNUM = 4096
_MAX_STRSZ = 64 << 20  # the largest real .dynstr seen is a few MB
_MAX_SYMBOLS = 4_000_000
_MAX_RELOCS = 8_000_000
_MAX_TLS = 1 << 30

_PT_LOAD, _PT_DYNAMIC, _PT_TLS = 1, 2, 7
_PT_GNU_PROPERTY = 0x6474E553
# Segments that describe parts of the loaded image (PT_TLS is checked on its own: .tbss
# may reach past the image): DYNAMIC, INTERP, NOTE, PHDR, GNU_EH_FRAME, GNU_RELRO, GNU_PROPERTY.
_MAPPED_TYPES = (2, 3, 4, 6, 0x6474E550, 0x6474E552, _PT_GNU_PROPERTY)
_PF_X, _PF_W = 1, 2
_ADDR_TAGS = {
    3: "DT_PLTGOT", 4: "DT_HASH", 5: "DT_STRTAB", 6: "DT_SYMTAB", 7: "DT_RELA", 12: "DT_INIT",
    13: "DT_FINI", 17: "DT_REL", 23: "DT_JMPREL", 25: "DT_INIT_ARRAY", 26: "DT_FINI_ARRAY",
    32: "DT_PREINIT_ARRAY", 36: "DT_RELR", 0x6FFFFEF5: "DT_GNU_HASH", 0x6FFFFFF0: "DT_VERSYM",
    0x6FFFFFFC: "DT_VERDEF", 0x6FFFFFFE: "DT_VERNEED",
}
_VERSION_TAGS = (0x6FFFFFF0, 0x6FFFFFF9, 0x6FFFFFFA, 0x6FFFFFFB, 0x6FFFFFFC, 0x6FFFFFFD, 0x6FFFFFFE, 0x6FFFFFFF)
_STRING_TAGS = {1: "DT_NEEDED", 14: "DT_SONAME", 15: "DT_RPATH", 29: "DT_RUNPATH"}
# machine -> (RELATIVE type, IRELATIVE type); others: only the generic checks.
_RELATIVE = {62: (8, 37), 183: (1027, 1032), 3: (8, 42)}


class _Fault(Exception):
    pass


class _Image:
    """The file as the loader maps it: PT_LOAD segments over a bounded file reader."""

    def __init__(self, f: object, size: int, e: str, is64: bool) -> None:
        self.f = f
        self.size = size
        self.e = e
        self.is64 = is64
        self.word = 8 if is64 else 4
        self.loads: list[tuple[int, int, int, int, int]] = []  # vaddr, memsz, offset, filesz, flags

    def read(self, offset: int, length: int, what: str) -> bytes:
        if offset < 0 or length < 0 or offset + length > self.size:
            raise _Fault(f"the {what} (bytes {offset}..{offset + length}) lies past the end of the "
                         f"{self.size}-byte file")
        self.f.seek(offset)  # type: ignore[attr-defined]
        data: bytes = self.f.read(length)  # type: ignore[attr-defined]
        if len(data) != length:
            raise _Fault(f"short read of the {what}: the file changed while being checked")
        return data

    def file_offset(self, vaddr: int, length: int, what: str) -> int:
        """Where [vaddr, vaddr+length) comes from in the file; it must be file-backed."""
        for p_vaddr, _, p_offset, p_filesz, _ in self.loads:
            if p_vaddr <= vaddr and vaddr + length <= p_vaddr + p_filesz:
                return p_offset + vaddr - p_vaddr
        raise _Fault(f"the {what} at {vaddr:#x} (+{length} bytes) is not inside the file-backed "
                     f"part of a loadable segment")

    def room(self, vaddr: int) -> int:
        """File-backed bytes from *vaddr* to the end of its segment (0 when not file-backed)."""
        for p_vaddr, _, _, p_filesz, _ in self.loads:
            if p_vaddr <= vaddr < p_vaddr + p_filesz:
                return p_vaddr + p_filesz - vaddr
        return 0

    def mapped(self, vaddr: int, length: int, *, flag: int = 0) -> bool:
        for p_vaddr, p_memsz, _, _, flags in self.loads:
            if p_vaddr <= vaddr and vaddr + length <= p_vaddr + p_memsz:
                return not flag or bool(flags & flag)
        return False

    def code(self, vaddr: int) -> bool:
        """True when *vaddr* lies in the file-backed part of an executable segment (real code,
        not zero-filled memory)."""
        return any(p_vaddr <= vaddr < p_vaddr + p_filesz and flags & _PF_X
                   for p_vaddr, _, _, p_filesz, flags in self.loads)

    def at(self, vaddr: int, length: int, what: str) -> bytes:
        return self.read(self.file_offset(vaddr, length, what), length, what)


def loader_refusal(path: str) -> str | None:
    """Why the system loader would crash, hang or misbehave on the ELF file *path*, else None.

    Not an ELF file (or not one this check understands): None, the format
    readers decide. Bounded: reads at most the tables the loader reads, with
    caps (`_MAX_*`) on every count. Never raises for bad input.
    """
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            head = f.read(64)
            if head[:4] != b"\x7fELF" or len(head) < 52 or head[4] not in (1, 2) or head[5] not in (1, 2):
                return None
            image = _Image(f, size, "<" if head[5] == 1 else ">", head[4] == 2)
            _check(image, head)
    except _Fault as fault:
        return f"corrupt ELF file the system loader would crash on: {fault}"
    except (OSError, struct.error, ValueError, OverflowError, MemoryError) as exc:
        return f"corrupt ELF file or unreadable: {exc}"
    return None


def _check(image: _Image, head: bytes) -> None:
    e, is64 = image.e, image.is64
    if is64:
        (e_type, e_machine, _, _, e_phoff, _, _, _, e_phentsize, e_phnum, _, _, _) = struct.unpack_from(
            e + "HHIQQQIHHHHHH", head, 16)
        ph_fmt, ph_size = e + "IIQQQQQQ", 56
    else:
        (e_type, e_machine, _, _, e_phoff, _, _, _, e_phentsize, e_phnum, _, _, _) = struct.unpack_from(
            e + "HHIIIIIHHHHHH", head, 16)
        ph_fmt, ph_size = e + "IIIIIIII", 32
    if e_type != 3 or not _host_machine(e_machine, is64):
        return  # not a shared object for this host: refused elsewhere with a better message
    if e_phentsize != ph_size:
        raise _Fault(f"program headers are {e_phentsize} bytes, expected {ph_size}")
    if not 0 < e_phnum <= _MAX_PHNUM:
        raise _Fault(f"{e_phnum} program headers (expected 1..{_MAX_PHNUM})")
    phdata = image.read(e_phoff, e_phnum * ph_size, "program header table")
    others: list[tuple[int, int, int, int, int, int]] = []
    for i in range(e_phnum):
        fields = struct.unpack_from(ph_fmt, phdata, i * ph_size)
        if is64:
            p_type, p_flags, p_offset, p_vaddr, _, p_filesz, p_memsz, p_align = fields
        else:
            p_type, p_offset, p_vaddr, _, p_filesz, p_memsz, p_flags, p_align = fields
        if p_type == _PT_LOAD:
            _check_load(image, i, p_offset, p_vaddr, p_filesz, p_memsz, p_align)
            image.loads.append((p_vaddr, p_memsz, p_offset, p_filesz, p_flags))
        else:
            others.append((p_type, p_offset, p_vaddr, p_filesz, p_memsz, p_align))
    if not image.loads:
        raise _Fault("no loadable segment")
    for prev, nxt in zip(image.loads, image.loads[1:]):
        if nxt[0] < prev[0] + prev[1]:
            raise _Fault(f"loadable segments at {prev[0]:#x} and {nxt[0]:#x} overlap or are out of order")
        if nxt[3] and prev[3] and nxt[2] < prev[2] + prev[3]:
            # the same file bytes mapped twice: e.g. the code segment pointed at the ELF header
            raise _Fault(f"loadable segments at {prev[0]:#x} and {nxt[0]:#x} map overlapping file bytes")
    dynamic = None
    for p_type, _, p_vaddr, p_filesz, p_memsz, p_align in others:
        if p_type == _PT_DYNAMIC:
            dynamic = (p_vaddr, p_filesz)
        elif p_type == _PT_TLS and p_memsz:
            if p_filesz > p_memsz or p_memsz > _MAX_TLS or (p_align & (p_align - 1)):
                raise _Fault(f"bad TLS segment: {p_filesz} bytes in {p_memsz}, alignment {p_align}")
            image.file_offset(p_vaddr, p_filesz, "TLS initialisation image")
        elif p_type == _PT_GNU_PROPERTY and p_filesz:  # glibc reads it from the mapped image
            image.file_offset(p_vaddr, p_filesz, "program property note")
        if p_type == 0x6474E552:  # GNU_RELRO: glibc mprotects whole pages, gaps included
            inside = _pages_mapped(image, p_vaddr, p_memsz)
        else:
            inside = not p_memsz or image.mapped(p_vaddr, p_memsz)
        if p_type in _MAPPED_TYPES and (p_filesz > p_memsz or not inside):
            # e.g. a PT_GNU_RELRO reaching past the image: glibc's mprotect would make
            # other libraries' data read-only
            raise _Fault(f"program header of type {p_type:#x} ({p_filesz} file / {p_memsz} memory bytes "
                         f"at {p_vaddr:#x}) is not inside the loadable segments")
    if dynamic is None:
        raise _Fault("no dynamic segment (PT_DYNAMIC)")
    _check_dynamic(image, e_machine, *dynamic)


def _pages_mapped(image: _Image, vaddr: int, size: int) -> bool:
    """True when the pages glibc would mprotect for [vaddr, vaddr+size) all belong to the image."""
    page = os.sysconf("SC_PAGESIZE") if hasattr(os, "sysconf") else 4096
    start, end = vaddr - vaddr % page, (vaddr + size) - (vaddr + size) % page
    spans = sorted((v - v % page, -(-(v + m) // page) * page) for v, m, _, _, _ in image.loads)
    at = start
    for low, high in spans:
        if low <= at < high:
            at = high
        if at >= end:
            return True
    return at >= end


def _host_machine(machine: int, is64: bool) -> bool:
    """True when the file is for this interpreter's machine and word size (else no opinion)."""
    from ._elf import host_binary

    try:
        host = host_binary()
    except Exception:  # noqa: BLE001 - no host facts: judge everything
        return True
    return bool(host.machine == machine and host.elf_class == (64 if is64 else 32))


def _check_load(image: _Image, i: int, offset: int, vaddr: int, filesz: int, memsz: int, align: int) -> None:
    where = f"loadable segment {i}"
    if offset + filesz > image.size:
        raise _Fault(f"{where} needs file bytes {offset}..{offset + filesz} but the file is "
                     f"{image.size} bytes long (truncated; dlopen would die of SIGBUS)")
    if filesz > memsz:
        raise _Fault(f"{where} has {filesz} file bytes but only {memsz} memory bytes")
    if align > 1 and (align & (align - 1) or (vaddr - offset) % align):
        raise _Fault(f"{where} has alignment {align:#x} that does not fit offset {offset:#x} / "
                     f"address {vaddr:#x}")


def _check_dynamic(image: _Image, machine: int, vaddr: int, filesz: int) -> None:
    e, is64, word = image.e, image.is64, image.word
    entry = 2 * word
    raw = image.at(vaddr, filesz - filesz % entry, "dynamic section")
    tags: dict[int, int] = {}
    strings: list[tuple[int, int]] = []
    ended = False
    for tag, value in struct.iter_unpack(e + ("qQ" if is64 else "iI"), raw):
        if tag == 0:
            ended = True
            break
        if tag in _STRING_TAGS:
            strings.append((tag, value))
        tags.setdefault(tag, value)
    if not ended:
        raise _Fault("the dynamic section has no DT_NULL terminator inside its segment")
    for tag, name in _ADDR_TAGS.items():
        if tag in tags and not image.mapped(tags[tag], 1):
            raise _Fault(f"{name} points to {tags[tag]:#x}, outside every loadable segment")
    if 5 not in tags or 6 not in tags:
        raise _Fault("no dynamic string or symbol table (DT_STRTAB/DT_SYMTAB)")
    if (0x6FFFFFFE in tags or 0x6FFFFFFC in tags) and 0x6FFFFFF0 not in tags:
        raise _Fault("version tables without DT_VERSYM (every linker writes both; glibc crashes without it)")
    unknown = [t for t in tags if 0x6FFFFFF0 <= t <= 0x6FFFFFFF and t not in _VERSION_TAGS]
    if unknown:  # glibc files these in its version-tag slots by number
        raise _Fault(f"unknown dynamic tag {unknown[0]:#x} in the version-tag range")
    for table, size_tag, name in ((7, 8, "DT_RELA without DT_RELASZ"), (17, 18, "DT_REL without DT_RELSZ"),
                                  (23, 2, "DT_JMPREL without DT_PLTRELSZ"), (36, 35, "DT_RELR without DT_RELRSZ"),
                                  (5, 10, "DT_STRTAB without DT_STRSZ")):
        if table in tags and size_tag not in tags:  # glibc reads the size through a NULL pointer
            raise _Fault(name)
        if tags.get(size_tag) and table not in tags and table != 5:
            # relocations announced but their table gone: the GOT would keep unrelocated
            # addresses and the first call through it jumps into nowhere
            raise _Fault(f"{name.split(' without ')[1]} without {name.split(' without ')[0]}")
    strsz = tags.get(10, 0)
    if strsz > _MAX_STRSZ:
        raise _Fault(f"DT_STRSZ is {strsz} bytes (limit {_MAX_STRSZ})")
    strtab = image.at(tags[5], strsz, "dynamic string table")
    for tag, value in strings:
        if value >= strsz or strtab.find(b"\0", value) < 0:
            raise _Fault(f"{_STRING_TAGS[tag]} string offset {value} is outside the string table")
    syment = 24 if is64 else 16
    if tags.get(11, syment) != syment:
        raise _Fault(f"DT_SYMENT is {tags[11]}, expected {syment} (glibc asserts on it)")
    for table, entsize_tag, want, name in ((7, 9, 24 if is64 else 12, "DT_RELAENT"),
                                           (17, 19, 16 if is64 else 8, "DT_RELENT"),
                                           (36, 37, word, "DT_RELRENT")):
        if table in tags and tags.get(entsize_tag) != want:
            raise _Fault(f"{name} is {tags.get(entsize_tag)}, expected {want}")
    if 23 in tags and tags.get(20) not in (7, 17):
        raise _Fault(f"DT_PLTREL is {tags.get(20)}, expected DT_RELA (7) or DT_REL (17)")
    nsyms = _symbol_count(image, tags)
    symtab = image.at(tags[6], nsyms * syment, "dynamic symbol table") if nsyms else b""
    _check_symbols(image, symtab, nsyms, strsz)
    needed = {_cstring(strtab, value) for tag, value in strings if tag == 1}
    _check_versions(image, tags, nsyms, strtab, needed)
    _check_relocations(image, machine, tags, nsyms)


def _symbol_count(image: _Image, tags: dict[int, int]) -> int:
    """Symbols the loader may index, from the hash table it would use (GNU first, as glibc)."""
    e, word = image.e, image.word
    if 0x6FFFFEF5 in tags:
        base = tags[0x6FFFFEF5]
        nbuckets, symoffset, bloom, _ = struct.unpack(e + "IIII", image.at(base, 16, "GNU hash header"))
        if nbuckets > _MAX_SYMBOLS or bloom > _MAX_SYMBOLS or symoffset > _MAX_SYMBOLS:
            raise _Fault(f"GNU hash table header is corrupt ({nbuckets} buckets, {bloom} bloom words)")
        image.at(base + 16, bloom * word, "GNU hash bloom filter")
        buckets_at = base + 16 + bloom * word
        buckets = struct.unpack(f"{e}{nbuckets}I", image.at(buckets_at, 4 * nbuckets, "GNU hash buckets"))
        chains_at = buckets_at + 4 * nbuckets
        last = max(buckets, default=0)
        if any(b and b < symoffset for b in buckets):
            raise _Fault("a GNU hash bucket points below the first hashed symbol")
        if last < symoffset:
            return int(symoffset)
        at, index = chains_at + 4 * (last - symoffset), last
        while index < _MAX_SYMBOLS:
            block = max(1, min(1024, image.room(at) // 4))
            for value in struct.unpack(f"{e}{block}I", image.at(at, 4 * block, "GNU hash chain")):
                index += 1
                if value & 1:
                    return index
            at += 4 * block
        raise _Fault("a GNU hash chain does not end")
    if 4 in tags:
        base = tags[4]
        nbucket, nchain = struct.unpack(e + "II", image.at(base, 8, "hash table header"))
        if nbucket > _MAX_SYMBOLS or nchain > _MAX_SYMBOLS:
            raise _Fault(f"hash table header is corrupt ({nbucket} buckets, {nchain} chains)")
        values = struct.unpack(f"{e}{nbucket + nchain}I", image.at(base + 8, 4 * (nbucket + nchain), "hash table"))
        if any(v >= nchain for v in values):
            raise _Fault("a hash table entry points past the symbol table")
        chain, seen = values[nbucket:], bytearray(nchain)
        for start in values[:nbucket]:  # every chain ends (STN_UNDEF) and no symbol is on two
            i = start
            while i:
                if seen[i]:
                    raise _Fault("the hash table's chains loop (the loader would never return)")
                seen[i] = 1
                i = chain[i]
        return int(nchain)
    return 0


def _check_symbols(image: _Image, symtab: bytes, nsyms: int, strsz: int) -> None:
    e = image.e
    fmt = e + ("IBBHQQ" if image.is64 else "IIIBBH")
    for i, fields in enumerate(struct.iter_unpack(fmt, symtab)):
        if image.is64:
            name, info, other, shndx, value, _ = fields
        else:
            name, value, _, info, other, shndx = fields
        if i and shndx == 0 and other & 3:
            # an undefined reference that is hidden/internal/protected: no linker writes one,
            # and glibc's lookup of it ends in a crash
            raise _Fault(f"undefined symbol {i} has visibility {other & 3}, expected default")
        if name and name >= strsz:
            raise _Fault(f"symbol {i} names string offset {name}, outside the string table")
        defined_function = shndx not in (0, 0xFFF1) and info & 0xF in (2, 10) and value
        if defined_function and not image.code(value):
            raise _Fault(f"function symbol {i} at {value:#x} is not in an executable segment")


def _cstring(strtab: bytes, offset: int) -> bytes:
    end = strtab.find(b"\0", offset)
    return strtab[offset:end] if end >= 0 else strtab[offset:]


def _walk_version_table(
    image: _Image, offset: int, count: int, need: bool, strtab: bytes, needed: set[bytes] | None = None
) -> int:
    """Walk Verneed (need) or Verdef records as glibc does; the highest version index found."""
    e, high, budget = image.e, 0, 65536
    strsz = len(strtab)
    del count  # glibc ignores DT_VERNEEDNUM/DT_VERDEFNUM and follows the next-offsets to 0
    for _ in range(65536):
        rec = image.at(offset, 16 if need else 20, "version record")
        if need:
            version, cnt, file_, aux, nxt = struct.unpack(e + "HHIII", rec)
            if file_ >= strsz:
                raise _Fault("a version-needed record names a file outside the string table")
            if needed is not None and _cstring(strtab, file_) not in needed:
                # glibc asserts that the file is one of the object's dependencies
                raise _Fault(f"a version-needed record names {_cstring(strtab, file_)!r}, which is not "
                             f"a DT_NEEDED entry")
        else:
            version, _, ndx, cnt, _, aux, nxt = struct.unpack(e + "HHHHIII", rec)
            high = max(high, ndx & 0x7FFF)
        if version != 1:
            raise _Fault(f"version record of revision {version} (expected 1)")
        at = offset + aux
        for _ in range(cnt if not need else 65536):  # glibc follows vna_next to 0, ignoring vn_cnt
            budget -= 1
            if budget < 0:
                raise _Fault("the version tables do not end")
            if need:
                _, _, other, name, anext = struct.unpack(e + "IHHII", image.at(at, 16, "version-needed entry"))
                high = max(high, other & 0x7FFF)
            else:
                name, anext = struct.unpack(e + "II", image.at(at, 8, "version-definition name"))
            if name >= strsz:
                raise _Fault("a version name lies outside the string table")
            if not anext:
                break
            at += anext
        if not nxt:
            break
        offset += nxt
    return high


def _check_versions(
    image: _Image, tags: dict[int, int], nsyms: int, strtab: bytes, needed: set[bytes]
) -> None:
    high = 1
    if 0x6FFFFFFE in tags:
        high = max(high, _walk_version_table(
            image, tags[0x6FFFFFFE], tags.get(0x6FFFFFFF, 0), True, strtab, needed))
    if 0x6FFFFFFC in tags:
        high = max(high, _walk_version_table(image, tags[0x6FFFFFFC], tags.get(0x6FFFFFFD, 0), False, strtab))
    if 0x6FFFFFF0 in tags and nsyms:
        versym = struct.unpack(f"{image.e}{nsyms}H", image.at(tags[0x6FFFFFF0], 2 * nsyms, "symbol versions"))
        worst = max(v & 0x7FFF for v in versym)
        if worst > high:
            raise _Fault(f"a symbol has version index {worst}, but only {high} versions are defined")


def _relocations(image: _Image, tags: dict[int, int]) -> list[tuple[int, int, int | None]]:
    """(offset, info, addend or None) of every REL/RELA/JMPREL entry, bounded."""
    e, is64 = image.e, image.is64
    out: list[tuple[int, int, int | None]] = []
    tables = [(7, 8, True), (17, 18, False)]
    if 23 in tags:
        tables.append((23, 2, tags.get(20) == 7))
    for addr_tag, size_tag, rela in tables:
        if addr_tag not in tags:
            continue
        size = tags.get(size_tag, 0)
        entsize = (24 if is64 else 12) if rela else (16 if is64 else 8)
        if size // entsize + len(out) > _MAX_RELOCS:
            raise _Fault(f"{size // entsize} relocations (limit {_MAX_RELOCS})")
        data = image.at(tags[addr_tag], size - size % entsize, "relocation table")
        fmt = e + ("QQq" if is64 else "IIi") if rela else e + ("QQ" if is64 else "II")
        for fields in struct.iter_unpack(fmt, data):
            out.append((fields[0], fields[1], fields[2] if rela else None))
    return out


def _check_relocations(image: _Image, machine: int, tags: dict[int, int], nsyms: int) -> None:
    word, is64 = image.word, image.is64
    order: Literal["little", "big"] = "little" if image.e == "<" else "big"
    textrel = 22 in tags or bool(tags.get(30, 0) & 4)
    need = 0 if textrel else _PF_W  # without DT_TEXTREL the loader writes only to writable segments
    relative, irelative = _RELATIVE.get(machine, (-1, -1))
    arrays = []
    for array_tag, size_tag, name in ((25, 27, "DT_INIT_ARRAY"), (26, 28, "DT_FINI_ARRAY")):
        if array_tag not in tags:
            continue
        if size_tag not in tags:  # glibc reads the size entry through a NULL pointer
            raise _Fault(f"{name} without its size entry")
        start, size = tags[array_tag], tags[size_tag]
        if size % word or size > _MAX_RELOCS * word or not image.mapped(start, max(size, 1)):
            raise _Fault(f"{name} at {start:#x} of {size} bytes is outside the image")
        arrays.append((start, size))
    extra: set[int] = set()
    for count_tag, table_tag, size_tag, entsize, name in (
        (0x6FFFFFF9, 7, 8, 24 if is64 else 12, "DT_RELACOUNT"),
        (0x6FFFFFFA, 17, 18, 16 if is64 else 8, "DT_RELCOUNT"),
    ):
        # glibc treats the first COUNT entries as relative relocations and asserts so.
        count = tags.get(count_tag, 0)
        if not count or table_tag not in tags:
            continue
        if count > tags.get(size_tag, 0) // entsize:
            raise _Fault(f"{name} is {count}, more than the table holds")
        head = image.at(tags[table_tag], count * entsize, "relative relocations")
        fmt = image.e + ("QQq" if is64 else "IIi") if entsize in (24, 12) else image.e + ("QQ" if is64 else "II")
        for fields in struct.iter_unpack(fmt, head):
            rtype = fields[1] & 0xFFFFFFFF if is64 else fields[1] & 0xFF
            if rtype != relative and relative != -1:
                raise _Fault(f"{name} says the first {count} relocations are relative, but one is type {rtype}")
    targets: dict[int, int | None] = {}  # relocated slot -> the address it will hold (None: a symbol)
    for offset, info, addend in _relocations(image, tags):
        rtype, sym = (info & 0xFFFFFFFF, info >> 32) if is64 else (info & 0xFF, info >> 8)
        if rtype == 0:
            continue
        if not image.mapped(offset, word, flag=need):
            raise _Fault(f"a relocation writes to {offset:#x}, outside the writable segments")
        if sym >= nsyms and sym not in extra:
            # Beyond the hashed symbols (or no hash table): the entry the loader
            # reads must still be inside the image with a name in the string table.
            syment = 24 if is64 else 16
            name = struct.unpack(image.e + "I", image.at(tags[6] + sym * syment, syment, "relocation symbol")[:4])[0]
            if name >= tags.get(10, 0):
                raise _Fault(f"relocation symbol {sym} names string offset {name}, outside the string table")
            extra.add(sym)
        if rtype in (relative, irelative):
            value: int = addend if addend is not None else int.from_bytes(
                image.at(offset, word, "relocated word"), order)
            if rtype == irelative and not image.code(value):
                raise _Fault(f"an IFUNC resolver at {value:#x} is not in an executable segment")
            targets[offset] = value if rtype == relative else None
        else:
            targets[offset] = None
    if 36 in tags:
        for slot in _relr_slots(image, tags, need):
            if any(start <= slot < start + size for start, size in arrays):
                targets[slot] = int.from_bytes(image.at(slot, word, "relocated word"), order)
    for start, size in arrays:
        for slot in range(start, start + size, word):
            if slot not in targets:
                raise _Fault(f"the init/fini array entry at {slot:#x} is never relocated; the "
                             f"loader would call an unrelocated address")
            target = targets[slot]
            if target is not None and not image.code(target):
                raise _Fault(f"the init/fini array entry at {slot:#x} calls {target:#x}, outside the code")

    for tag, name in ((12, "DT_INIT"), (13, "DT_FINI")):
        if tag in tags and not image.code(tags[tag]):  # 0 too: glibc calls it
            raise _Fault(f"{name} at {tags[tag]:#x} is not in an executable segment")


def _relr_slots(image: _Image, tags: dict[int, int], need: int) -> list[int]:
    """Every address a DT_RELR table relocates (checked writable), bounded by its size."""
    word = image.word
    size = tags.get(35, 0)
    data = image.at(tags[36], size - size % word, "RELR table")
    slots: list[int] = []
    base = 0
    for (entry,) in struct.iter_unpack(image.e + ("Q" if image.is64 else "I"), data):
        if not entry & 1:
            slots.append(entry)
            base = entry + word
        else:
            bits, at = entry >> 1, base
            while bits:
                if bits & 1:
                    slots.append(at)
                bits >>= 1
                at += word
            base += (8 * word - 1) * word
        if len(slots) > _MAX_RELOCS:
            raise _Fault(f"more than {_MAX_RELOCS} RELR relocations")
    for slot in slots:
        if not image.mapped(slot, word, flag=need):
            raise _Fault(f"a RELR relocation writes to {slot:#x}, outside the writable segments")
    return slots
