"""Reader of glibc's ``/etc/ld.so.cache``, parsed directly (no ``ldconfig -p``).

Two layouts exist (glibc's ``dl-cache.h``):

* old, ``"ld.so-1.7.0"``: a 16-byte header, ``nlibs`` entries of
  ``(int32 flags, uint32 key, uint32 value)``, string offsets relative to the
  end of that entry table. Since glibc 2.2 ``ldconfig -c compat`` writes a new
  format cache right after it, aligned to 8 bytes;
* new, ``"glibc-ld.so.cache1.1"``: a 48-byte header, ``nlibs`` entries of
  ``(int32 flags, uint32 key, uint32 value, uint32 osversion, uint64 hwcap)``,
  string offsets relative to the start of that header.

The cache is written by the host's ldconfig, so it is in native byte order.
When both layouts are present the new one wins, as in ld.so.

A search asks for one name: `entries_for_link` and `paths_for_soname` decode only
that name's entries (same filter and order as `entries_for_host`, which parses the
whole file once per process and identity, for listings).
"""

from __future__ import annotations

import os
import struct

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

_OLD_MAGIC = b"ld.so-1.7.0"
_NEW_MAGIC = b"glibc-ld.so.cache1.1"
_OLD_HEADER = 16
_OLD_ENTRY = 12
_NEW_HEADER = 48
_NEW_ENTRY = 24

FLAG_TYPE_MASK = 0x00FF
FLAG_ELF_LIBC6 = 0x0003
FLAG_REQUIRED_MASK = 0xFF00

# The ABI bits ldconfig records for a library (FLAG_*_LIB64 & co in
# dl-cache.h), keyed by (e_machine, ELF class); the bits ld.so of that ABI
# accepts (_DL_CACHE_DEFAULT_ID in the sysdeps' dl-cache.h).
_HOST_FLAGS = {
    (3, 32): 0x0003,  # i386
    (62, 64): 0x0303,  # x86-64
    (62, 32): 0x0803,  # x32
    (50, 64): 0x0203,  # ia64
    (2, 32): 0x0003,  # sparc
    (43, 64): 0x0103,  # sparc64
    (22, 32): 0x0003,  # s390
    (22, 64): 0x0403,  # s390x
    (20, 32): 0x0003,  # ppc
    (21, 64): 0x0503,  # ppc64 / ppc64le
    (183, 64): 0x0A03,  # aarch64
    (243, 64): 0x1003,  # riscv64 lp64d (the soft-float ABI is 0x0f03)
    (258, 64): 0x1203,  # loongarch64 lp64d
}
_EF_ARM_ABI_FLOAT_HARD = 0x400


# The system loader's cache; a module attribute so tests can point it at a cache
# written with `ldconfig -C FILE` (the real one needs root to change).
LD_SO_CACHE = "/etc/ld.so.cache"


def read_ld_cache(path: str | None = None) -> list[tuple[str, str, int]]:
    """Every ``(soname, path, flags)`` in the cache, in its order (ld.so takes
    the first match). [] for a missing, unreadable or corrupt file."""
    return [(key, value, flags) for key, value, flags, _ in _read(path or LD_SO_CACHE)]


def _read(path: str) -> list[tuple[str, str, int, int]]:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return []
    try:
        return _parse(data)
    except (struct.error, ValueError, IndexError):
        return []


def _string(data: bytes, offset: int) -> str:
    end = data.index(b"\0", offset)
    return data[offset:end].decode("utf-8", "surrogateescape")


def _parse(data: bytes) -> list[tuple[str, str, int, int]]:
    if data.startswith(_NEW_MAGIC):
        return _parse_new(data, 0)
    if not data.startswith(_OLD_MAGIC):
        return []
    (nlibs,) = struct.unpack_from("=I", data, 12)
    table_end = _OLD_HEADER + nlibs * _OLD_ENTRY
    if table_end > len(data):
        return []
    new_at = (table_end + 7) & ~7
    if data.startswith(_NEW_MAGIC, new_at):
        return _parse_new(data, new_at)
    entries = []
    for flags, key, value in struct.iter_unpack("=iII", data[_OLD_HEADER:table_end]):
        entries.append((_string(data, table_end + key), _string(data, table_end + value), flags, 0))
    return entries


def _parse_new(data: bytes, base: int) -> list[tuple[str, str, int, int]]:
    (nlibs,) = struct.unpack_from("=I", data, base + 20)
    start = base + _NEW_HEADER
    end = start + nlibs * _NEW_ENTRY
    if end > len(data):
        return []
    entries = []
    for flags, key, value, _, hwcap in struct.iter_unpack("=iIIIQ", data[start:end]):
        entries.append((_string(data, base + key), _string(data, base + value), flags, hwcap))
    return entries


def _layout(data: bytes) -> tuple[int, int, int, str] | None:
    """(string base, first entry, end of entries, entry format) of the layout ld.so reads
    (the new one when present, as `_parse`), None when neither magic is there."""
    if data.startswith(_NEW_MAGIC):
        base = 0
    elif data.startswith(_OLD_MAGIC):
        (nlibs,) = struct.unpack_from("=I", data, 12)
        table_end = _OLD_HEADER + nlibs * _OLD_ENTRY
        if table_end > len(data):
            return None
        base = (table_end + 7) & ~7
        if not data.startswith(_NEW_MAGIC, base):
            return table_end, _OLD_HEADER, table_end, "=iII"
    else:
        return None
    (nlibs,) = struct.unpack_from("=I", data, base + 20)
    start = base + _NEW_HEADER
    end = start + nlibs * _NEW_ENTRY
    if end > len(data):
        return None
    return base, start, end, "=iIIIQ"


_MAX_OCCURRENCES = 1 << 16  # more: not a real cache's string table; it is parsed whole


def _select(
    data: bytes, needles: tuple[bytes, ...], keep: Callable[[str], bool]
) -> list[tuple[str, str, int, int, int]] | None:
    """(soname, path, flags, hwcap, index) of the entries whose soname passes *keep*, in
    cache order, decoding only candidates' strings. *keep* must accept only strings
    starting with one of *needles*.

    Every offset where a needle occurs is collected (ldconfig merges string tails, so
    a key often points into its own path string: still at the needle), then the entry
    table is walked comparing numbers; a candidate's soname is decoded and tested in
    full. None when a needle occurs too often (the caller parses the whole cache).
    """
    layout = _layout(data)
    if layout is None:
        return []  # what _parse says of a file without either magic
    strbase, start, end, fmt = layout
    starts: set[int] = set()
    for needle in needles:
        at = data.find(needle) if needle else -1
        while at >= 0:
            starts.add(at - strbase)
            if len(starts) > _MAX_OCCURRENCES:
                return None
            at = data.find(needle, at + 1)
    if not starts:
        return []
    # Every entry's key (the second 32-bit field of both layouts, in the host's byte order
    # as the whole file is) read as one column by memoryview, rather than unpacking each
    # of thousands of entries; only the entries whose key is one of those offsets are.
    size = struct.calcsize(fmt)
    table = data[start:end]
    keys = memoryview(table).cast("I")[1::size // 4].tolist()
    found: list[tuple[str, str, int, int, int]] = []
    for index in [i for i, key in enumerate(keys) if key in starts]:
        fields = struct.unpack_from(fmt, table, index * size)
        soname = _string(data, strbase + fields[1])
        if keep(soname):
            hwcap = fields[4] if len(fields) == 5 else 0
            found.append((soname, _string(data, strbase + fields[2]), fields[0], hwcap, index))
    return found


def host_flags() -> int | None:
    """The cache flags of this interpreter's ABI, None when unknown."""
    from ._binary import host_binary

    host = host_binary()
    if host.machine == 40:  # 32-bit ARM: the float ABI decides
        return 0x0903 if host.flags & _EF_ARM_ABI_FLOAT_HARD else 0x0B03
    return _HOST_FLAGS.get((host.machine, host.elf_class))


# DL_CACHE_HWCAP_EXTENSION (dl-cache.h): the entry lives in a glibc-hwcaps
# subdirectory; its low 32 bits index the subdirectory names.
_HWCAP_EXTENSION = 1 << 62

# x86-64 micro-architecture levels (the psABI; glibc's
# sysdeps/x86/get-isa-level.h), as /proc/cpuinfo names the CPU flags.
_X86_64_LEVELS = (
    ("x86-64-v2", {"cx16", "lahf_lm", "popcnt", "sse4_1", "sse4_2", "ssse3"}),
    ("x86-64-v3", {"avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave"}),
    ("x86-64-v4", {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"}),
)
_hwcaps_memo: list[str] | None = None


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo", "rb") as f:
            text = f.read(1 << 20).decode("ascii", "replace")
    except OSError:
        return set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return set(value.split())
    return set()


def supported_hwcaps() -> list[str]:
    """The glibc-hwcaps subdirectory names this CPU can run, best first.

    Mirrors ld.so's choice (``ld.so --help`` lists the same names with
    "supported"): on x86-64 each psABI level needs all flags of the levels
    below it. Other architectures' names are not judged: none is chosen,
    so the baseline build is used, which is always safe.
    """
    global _hwcaps_memo
    if _hwcaps_memo is None:
        chosen: list[str] = []
        # os.uname, not platform.machine(): the platform module imports `re` (8 ms cold).
        machine = os.uname().machine if hasattr(os, "uname") else ""
        if machine in ("x86_64", "AMD64"):
            flags = _cpu_flags()
            have: set[str] = set()
            for name, needs in _X86_64_LEVELS:
                have |= needs
                if not have <= flags:
                    break
                chosen.insert(0, name)
        _hwcaps_memo = chosen
    return list(_hwcaps_memo)


def hwcaps_subdir(path: str) -> str | None:
    """"x86-64-v3" for /usr/lib/glibc-hwcaps/x86-64-v3/libfoo.so.1, else None."""
    parts = path.split("/")
    if len(parts) >= 3 and parts[-3] == "glibc-hwcaps":
        return parts[-2]
    return None


_host_memo: dict[str, tuple[object, list[tuple[str, str]], dict[str, list[str]]]] = {}
_DISK_KIND = "ldcache1"


def _identity(path: str) -> tuple[int, ...] | None:
    from ._cache import identity

    return identity(path)


def entries_for_host(path: str | None = None) -> list[tuple[str, str]]:
    """`_entries_for_host`, parsed once per process and per identity of the cache file
    (and kept on disk under that identity, with this host's ABI flags and hwcaps levels)."""
    return list(_host_entries(path or LD_SO_CACHE)[0])


def paths_by_soname(path: str | None = None) -> dict[str, list[str]]:
    """soname -> its paths in `entries_for_host` order (the same memo; do not modify)."""
    return _host_entries(path or LD_SO_CACHE)[1]


def _host_entries(path: str) -> tuple[list[tuple[str, str]], dict[str, list[str]]]:
    from . import _cache

    ident = _identity(path)
    hit = _host_memo.get(path)
    if hit is not None and ident is not None and hit[0] == ident:
        return hit[1], hit[2]
    entries: list[tuple[str, str]] | None = None
    key = None
    if ident is not None:
        key = (path, ident, _wanted_flags(), tuple(supported_hwcaps()))
        stored = _cache.load(_DISK_KIND).get(key)
        if isinstance(stored, list) and all(
            isinstance(e, tuple) and len(e) == 2 and isinstance(e[0], str) and isinstance(e[1], str)
            for e in stored
        ):
            entries = stored
    if entries is None:
        entries = _entries_for_host(path)
        if key is not None and _identity(path) == ident:  # not replaced while being read
            _cache.store(_DISK_KIND, {key: entries})  # one entry: the cache file has one identity
    by_soname: dict[str, list[str]] = {}
    for soname, value in entries:
        by_soname.setdefault(soname, []).append(value)
    if ident is not None:
        _host_memo[path] = (ident, entries, by_soname)
    return entries, by_soname


def _wanted_flags() -> int | None:
    from ._errors import BrokerError

    try:
        return host_flags()
    except BrokerError:  # an unreadable interpreter: keep every libc6 ELF entry
        return None


def _entries_for_host(path: str) -> list[tuple[str, str]]:
    """``(soname, path)`` pairs this interpreter's ld.so would consider, best first.

    Entries of another ABI (an i386 libz in a multilib cache) are dropped.
    glibc-hwcaps entries (x86-64-v3...) are kept when this CPU supports that
    subdirectory, and then come before the baseline entry of the same soname,
    the best level first, as ld.so chooses; those for a CPU this machine is
    not are dropped (loading one would die on an illegal instruction).
    Legacy platform-directory entries (a hwcap mask without the extension bit,
    e.g. ``lib/x86_64/``) are kept in cache order, as ld.so uses them.
    """
    rows = ((k, v, f, h, i) for i, (k, v, f, h) in enumerate(_read(path)))
    return _rank(rows)


def _rank(rows: Iterable[tuple[str, str, int, int, int]]) -> list[tuple[str, str]]:
    """`_entries_for_host`'s filter and order over (soname, path, flags, hwcap, cache index)
    rows; a subset of one soname's rows keeps the order it has among all of them."""
    wanted = _wanted_flags()
    supported: list[str] | None = None  # /proc/cpuinfo is slow to read: only when an entry needs it
    ranked: list[tuple[int, int, int, str, str]] = []
    first_seen: dict[str, int] = {}
    for key, value, flags, hwcap, index in rows:
        if wanted is not None:
            if flags != wanted:
                continue
        elif flags & FLAG_TYPE_MASK != FLAG_ELF_LIBC6:
            continue
        if not os.path.isabs(value):
            continue
        subdir = hwcaps_subdir(value)
        if hwcap & _HWCAP_EXTENSION or subdir is not None:
            if supported is None:
                supported = supported_hwcaps()
            if subdir not in supported:
                continue
            priority = supported.index(subdir)
        else:
            # Legacy and plain entries: after every hwcaps build (whose priorities are
            # below len(supported) <= len(_X86_64_LEVELS)); only the order is used.
            priority = len(_X86_64_LEVELS)
        group = first_seen.setdefault(key, index)
        ranked.append((group, priority, index, key, value))
    ranked.sort()
    return [(key, value) for _, _, _, key, value in ranked]


_bytes_memo: dict[str, tuple[object, bytes]] = {}
_select_memo: dict[tuple[str, bytes], tuple[object, list[tuple[str, str]]]] = {}


def _cache_bytes(path: str) -> tuple[object, bytes]:
    """(identity, contents) of the cache file, read once per process and identity."""
    ident = _identity(path)
    hit = _bytes_memo.get(path)
    if hit is not None and ident is not None and hit[0] == ident:
        return hit
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        data = b""
    if ident is not None and _identity(path) == ident:
        _bytes_memo[path] = (ident, data)
    return ident, data


def _matching(
    path: str | None, needles: tuple[str, ...], keep: Callable[[str], bool], tag: str
) -> list[tuple[str, str]]:
    path = path or LD_SO_CACHE
    full = _host_memo.get(path)
    ident, data = _cache_bytes(path)
    if full is not None and full[0] == ident:  # the whole cache is parsed already
        return [(k, v) for k, v in full[1] if keep(k)]
    key = (path, tag.encode("utf-8", "surrogateescape"))
    hit = _select_memo.get(key)
    if hit is not None and ident is not None and hit[0] == ident:
        return hit[1]
    try:
        rows = _select(data, tuple(n.encode("utf-8", "surrogateescape") for n in needles), keep)
    except (struct.error, ValueError, IndexError):
        rows = []
    result = _rank(rows) if rows is not None else [(k, v) for k, v in entries_for_host(path) if keep(k)]
    if ident is not None:
        if len(_select_memo) > 4096:
            _select_memo.clear()
        _select_memo[key] = (ident, result)
    return result


def entries_for_link(name: str, matches: Callable[[str], bool], path: str | None = None) -> list[tuple[str, str]]:
    """The `entries_for_host` entries whose soname is one of link *name*'s (``lib<name>.so``
    prefix, or *name* itself given whole, and *matches*), in the same order, without
    parsing the whole cache."""
    # A name given whole matches only a string that is exactly it: "z\0", not every "z".
    return _matching(path, (f"lib{name}.so", name + "\0"), matches, "link\0" + name)


def paths_for_soname(soname: str, path: str | None = None) -> list[str]:
    """The `entries_for_host` paths of exactly *soname*, in the same order."""
    return [v for _, v in _matching(path, (soname + "\0",), soname.__eq__, "soname\0" + soname)]


__all__ = [
    "entries_for_host", "entries_for_link", "host_flags", "hwcaps_subdir", "paths_by_soname",
    "paths_for_soname", "read_ld_cache", "supported_hwcaps",
]
