"""libbroker._binary._macho against two readers nobody here wrote: lief and macholib.

Inputs are real: dylibs and extension modules from macOS wheels on PyPI (numpy,
scipy-openblas32, pyzmq's universal2 build) and the fixtures that
``make_macho_fixtures.sh`` builds with clang + ld64.lld, llvm-lipo and zig.
Every expected value comes from an oracle, never from a constant typed here.
Bad input is derived from those files (truncations, patched fields) and from
a minimal image assembled below, and must raise `InvalidBinaryError` quickly
and with bounded memory.
"""

from __future__ import annotations

import struct
import time
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from libbroker._binary import InvalidBinaryError, _macho, read_binary

from ._wheels import wheel_binaries

lief = pytest.importorskip("lief")
macholib_MachO = pytest.importorskip("macholib.MachO")
mach_o = pytest.importorskip("macholib.mach_o")
SymbolTable = pytest.importorskip("macholib.SymbolTable").SymbolTable

FIXTURES = Path(__file__).parent / "fixtures" / "macho"
FIXTURE_FILES = sorted(p for p in FIXTURES.iterdir() if p.is_file())

WHEELS = [
    ("numpy", "macosx_11_0_arm64"),
    ("numpy", "macosx_14_0_arm64"),
    ("numpy", "macosx_10_9_x86_64"),
    ("scipy-openblas32", "macosx_11_0_arm64"),
    ("scipy-openblas32", "macosx_10_9_x86_64"),
    ("pyzmq", "macosx_10_15_universal2"),
]


# --- oracles ---------------------------------------------------------------


def _lief_slices(path: Path) -> list[dict[str, Any]]:
    fat = lief.MachO.parse(str(path))
    assert fat is not None, f"lief cannot parse {path}"
    T = lief.MachO.LoadCommand.TYPE
    out = []
    for b in fat:
        libs = [lib for lib in b.libraries if lib.command != T.ID_DYLIB]
        ids = [c for c in b.commands if c.command == T.ID_DYLIB]
        if b.has_build_version:
            min_os, platform = list(b.build_version.minos), str(b.build_version.platform)
            sdk = list(b.build_version.sdk)
        elif b.has_version_min:
            min_os, platform, sdk = list(b.version_min.version), None, list(b.version_min.sdk)
        else:
            min_os, platform, sdk = None, None, None
        if b.has_dyld_exports_trie:
            exports = [e.symbol.name for e in b.dyld_exports_trie.exports]
        elif b.has_dyld_info:
            exports = [e.symbol.name for e in b.dyld_info.exports]
        else:
            exports = None  # no trie: macholib's external defined symbols decide
        out.append({
            "machine": int(b.header.cpu_type) & 0xFFFFFFFF,
            "cpusubtype": int(b.header.cpu_subtype) & 0xFFFFFFFF,
            "filetype": int(b.header.file_type),
            "flags": int(b.header.flags),
            "soname": ids[0].name if ids else None,
            "current_version": ids[0].current_version if ids else None,
            "compatibility_version": ids[0].compatibility_version if ids else None,
            "needed": [lib.name for lib in libs],
            "weak_needed": [lib.name for lib in libs if lib.command == T.LOAD_WEAK_DYLIB],
            "reexported": [lib.name for lib in libs if lib.command == T.REEXPORT_DYLIB],
            "lazy_needed": [lib.name for lib in libs if lib.command == T.LAZY_LOAD_DYLIB],
            "upward_needed": [lib.name for lib in libs if lib.command == T.LOAD_UPWARD_DYLIB],
            "rpath": [r.path for r in b.rpaths],
            "min_os": min_os,
            "platform": platform,
            "sdk": sdk,
            "exports": exports,
            "code_signature": bool(b.has_code_signature),
            "uuid": bytes(b.uuid.uuid).hex().upper() if b.has_uuid else None,
        })  # fmt: skip
    return out


_DYLIB_CMDS = {
    mach_o.LC_LOAD_DYLIB, mach_o.LC_LOAD_WEAK_DYLIB, mach_o.LC_REEXPORT_DYLIB,
    mach_o.LC_LAZY_LOAD_DYLIB, mach_o.LC_LOAD_UPWARD_DYLIB,
}  # fmt: skip


def _macholib_slices(path: Path) -> list[dict[str, Any]]:
    m = macholib_MachO.MachO(str(path))
    out = []
    for h in m.headers:
        def text(data: bytes) -> str:
            return data.split(b"\0", 1)[0].decode()

        cmds = h.commands
        ids = [text(d) for lc, _, d in cmds if lc.cmd == mach_o.LC_ID_DYLIB]
        out.append({
            "offset": h.offset,
            "size": h.size,
            "machine": h.header.cputype & 0xFFFFFFFF,
            "soname": ids[0] if ids else None,
            "needed": [text(d) for lc, _, d in cmds if lc.cmd in _DYLIB_CMDS],
            "rpath": [text(d) for lc, _, d in cmds if lc.cmd == mach_o.LC_RPATH],
            "extdefsyms": [name for _, name in getattr(SymbolTable(m, h), "extdefsyms", [])],
        })  # fmt: skip
    return out


def _version_list(text: str | None) -> list[int] | None:
    if text is None:
        return None
    parts = [int(p) for p in text.split(".")]
    return parts + [0] * (3 - len(parts))


def _compare(path: Path) -> _macho.MachOInfo:
    info = _macho.read(path)
    ours = info.slices or [info]
    by_lief, by_macholib = _lief_slices(path), _macholib_slices(path)
    assert len(ours) == len(by_lief) == len(by_macholib)
    if info.slices:  # the top level of a fat file describes its first slice
        assert (info.machine, info.soname, info.needed) == (ours[0].machine, ours[0].soname, ours[0].needed)
    for s, lf, ml in zip(ours, by_lief, by_macholib):
        assert s.format == "Mach-O"
        assert s.machine == lf["machine"] == ml["machine"]
        assert s.cpusubtype == lf["cpusubtype"]
        assert s.filetype == lf["filetype"]
        assert s.flags == lf["flags"]
        assert s.bits == (64 if s.machine & 0x01000000 else 32)
        assert s.soname == lf["soname"] == ml["soname"]
        assert s.needed == lf["needed"] == ml["needed"]
        assert s.weak_needed == lf["weak_needed"]
        assert s.reexported == lf["reexported"]
        assert s.lazy_needed == lf["lazy_needed"]
        assert s.upward_needed == lf["upward_needed"]
        assert s.rpath == lf["rpath"] == ml["rpath"]
        assert s.runpath == []
        assert _version_list(s.min_os) == lf["min_os"]
        if lf["platform"] is not None:
            assert lf["platform"].rsplit(".", 1)[-1].lower() == s.platform
        assert _version_list(s.sdk) == lf["sdk"]
        assert _version_list(s.current_version) == lf["current_version"]
        assert _version_list(s.compatibility_version) == lf["compatibility_version"]
        assert s.code_signature == lf["code_signature"]
        assert (s.uuid or "").replace("-", "") == (lf["uuid"] or "")
        if lf["exports"] is not None:
            assert s.exports == len(lf["exports"])
            assert s.functions == {n.removeprefix("_") for n in lf["exports"]}
        else:
            assert s.exports == len(ml["extdefsyms"])
            assert s.functions == {n.decode().removeprefix("_") for n in ml["extdefsyms"]}
        if info.slices:
            assert (s.offset, s.size) == (ml["offset"], ml["size"])
        d = s.inspect_dict()
        assert d["format"] == "Mach-O" and d["machine"] == s.machine_name and d["exports"] == s.exports
    return info


# --- real wheels -------------------------------------------------------------


@pytest.mark.parametrize(("dist", "platform"), WHEELS, ids=[f"{d}-{p}" for d, p in WHEELS])
def test_wheel_binaries_match_lief_and_macholib(dist: str, platform: str) -> None:
    binaries = wheel_binaries(dist, platform, (".dylib", ".so"))
    assert binaries, f"the {dist} wheel for {platform} holds no Mach-O binaries"
    for path in binaries:
        info = _compare(path)
        assert info.kind in ("shared", "bundle"), path
    if platform.endswith("universal2"):
        fat = [_macho.read(p) for p in binaries]
        assert any({s.machine_name for s in i.slices} == {"x86_64", "arm64"} for i in fat)


def test_wheel_dylib_dispatch_and_inspect_dict() -> None:
    (lib,) = [p for p in wheel_binaries("scipy-openblas32", "macosx_11_0_arm64") if p.suffix == ".dylib"]
    info = read_binary(str(lib))
    assert isinstance(info, _macho.MachOInfo)
    d = info.inspect_dict()
    assert sorted(d) == sorted(
        ["format", "machine", "bits", "kind", "soname", "needed", "exports", "rpath", "runpath", "min_os", "slices"]
    )
    assert d["machine"] == "arm64" and d["bits"] == 64 and d["slices"] == []
    # OpenBLAS's C interface is what a scipy-openblas32 spec would require.
    assert {"scipy_cblas_dgemm", "scipy_openblas_get_config"} <= info.functions


# --- fixtures built by make_macho_fixtures.sh --------------------------------


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=[p.name for p in FIXTURE_FILES])
def test_fixture_matches_lief_and_macholib(path: Path) -> None:
    _compare(path)


def _fixture(name: str) -> Path:
    path = FIXTURES / name
    if not path.exists():
        pytest.fail(f"{path} is missing: run tests/binary/make_macho_fixtures.sh")
    return path


def test_fixtures_exercise_each_feature() -> None:
    """The oracle comparisons above only mean something if the fixtures hold the features."""
    lf = {p.name: _lief_slices(p) for p in FIXTURE_FILES}
    assert lf["libweak.dylib"][0]["weak_needed"] and len(lf["libweak.dylib"][0]["rpath"]) == 2
    assert lf["libreexport.dylib"][0]["reexported"]
    assert lf["liblazy.dylib"][0]["lazy_needed"]
    assert lf["libupward.dylib"][0]["upward_needed"]
    assert len(lf["libbase_fat.dylib"]) == 2
    assert lf["libzig.dylib"][0]["code_signature"]
    assert lf["base_i386.o"][0]["exports"] is None  # symbol-table fallback
    old = _macho.read(_fixture("libbase_x86_64.dylib"))
    assert old.platform == "macos" and old.min_os is not None  # from LC_VERSION_MIN_MACOSX
    assert not lief.MachO.parse(str(_fixture("libbase_x86_64.dylib"))).at(0).has_build_version
    kinds = {p.name: _macho.read(p).kind for p in FIXTURE_FILES}
    assert (kinds["plugin.bundle"], kinds["hello"], kinds["base_i386.o"]) == ("bundle", "executable", "object")
    i386 = _macho.read(_fixture("base_i386.o"))
    assert (i386.machine_name, i386.bits) == ("i386", 32)


def test_fat_top_level_is_first_slice() -> None:
    info = _macho.read(_fixture("libbase_fat.dylib"))
    first = info.slices[0]
    assert (info.machine_name, info.min_os, info.functions) == (first.machine_name, first.min_os, first.functions)
    assert [s["machine"] for s in info.inspect_dict()["slices"]] == [s.machine_name for s in info.slices]  # type: ignore[attr-defined]


# --- bad input ---------------------------------------------------------------


def _expect_invalid(
    tmp_path: Path, data: bytes, name: str = "bad.dylib", max_memory: int = 8 << 20
) -> InvalidBinaryError:
    """The file must fail with InvalidBinaryError fast and without big allocations."""
    path = tmp_path / name
    path.write_bytes(data)
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(InvalidBinaryError) as err:
            _macho.read(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - start < 5
    assert peak < max(max_memory, 4 * len(data))
    assert str(path) in str(err.value)
    return err.value


def _thin_layout(data: bytes) -> tuple[int, list[int]]:
    """(header size, load-command start offsets) of a little-endian thin image."""
    (magic,) = struct.unpack_from("<I", data)
    hsize = 32 if magic == _macho.MH_MAGIC_64 else 28
    (ncmds,) = struct.unpack_from("<I", data, 16)
    starts, pos = [], hsize
    for _ in range(ncmds):
        starts.append(pos)
        pos += struct.unpack_from("<I", data, pos + 4)[0]
    return hsize, starts


@pytest.mark.parametrize("name", ["libbase.dylib", "libzig.dylib", "libbase_fat.dylib", "base_i386.o"])
def test_truncated_at_every_boundary(tmp_path: Path, name: str) -> None:
    data = _fixture(name).read_bytes()
    info = _macho.read(_fixture(name))
    cuts = set(range(64)) | {len(data) - 1}
    for s in info.slices or [info]:
        sdata = data[s.offset : s.offset + s.size]
        hsize, starts = _thin_layout(sdata)
        end_cmds = hsize + struct.unpack_from("<I", sdata, 20)[0]
        cuts |= {s.offset + c for c in range(hsize - 4, end_cmds + 2)}
        cuts |= {s.offset + s.size - 1, s.offset + s.size // 2}
        cuts |= {s.offset + st + d for st in starts for d in (-1, 0, 1, 8)}
    for cut in sorted(c for c in cuts if 0 <= c < len(data)):
        path = tmp_path / "cut.dylib"
        path.write_bytes(data[:cut])
        with pytest.raises(InvalidBinaryError):
            _macho.read(path)


def test_load_commands_past_the_end(tmp_path: Path) -> None:
    data = bytearray(_fixture("libbase.dylib").read_bytes())
    ncmds, _sizeofcmds = struct.unpack_from("<II", data, 16)
    more = bytearray(data)
    struct.pack_into("<I", more, 16, ncmds + 1)  # one more command than sizeofcmds holds
    assert "past the end of the load commands" in str(_expect_invalid(tmp_path, bytes(more)))
    huge = bytearray(data)
    struct.pack_into("<I", huge, 20, 0xFFFFFF00)  # sizeofcmds beyond any cap
    assert "sizeofcmds" in str(_expect_invalid(tmp_path, bytes(huge)))
    past = bytearray(data)
    struct.pack_into("<I", past, 20, len(data))  # within the cap but past the end of the file
    assert f"{len(data)} bytes long" in str(_expect_invalid(tmp_path, bytes(past)))


@pytest.mark.parametrize("cmdsize", [0, 4, 7, 0xFFFFFFF0])
def test_bad_cmdsize(tmp_path: Path, cmdsize: int) -> None:
    data = bytearray(_fixture("libbase.dylib").read_bytes())
    _, starts = _thin_layout(bytes(data))
    struct.pack_into("<I", data, starts[2] + 4, cmdsize)
    err = _expect_invalid(tmp_path, bytes(data))
    assert f"cmdsize={cmdsize}" in str(err) and "load command 2" in str(err)


def test_string_offset_outside_its_command(tmp_path: Path) -> None:
    data = bytearray(_fixture("libbase.dylib").read_bytes())
    _, starts = _thin_layout(bytes(data))
    for st in starts:
        if struct.unpack_from("<I", data, st)[0] == 0xD:  # LC_ID_DYLIB
            struct.pack_into("<I", data, st + 8, 0xFFFF)
    assert "inside the command" in str(_expect_invalid(tmp_path, bytes(data)))


def _image_with_trie(trie: bytes) -> bytes:
    """A minimal MH_DYLIB: a __LINKEDIT segment holding the given trie, and LC_DYLD_EXPORTS_TRIE."""
    hsize, segsize, triesize = 32, 72, 16
    start = hsize + segsize + triesize
    header = struct.pack("<IiiIIIII", _macho.MH_MAGIC_64, 0x0100000C, 0, 6, 2, segsize + triesize, 0, 0)
    seg = struct.pack(
        "<II16sQQQQiiII", 0x19, segsize, b"__LINKEDIT", 0, 0x4000, start, len(trie), 1, 1, 0, 0
    )
    cmd = struct.pack("<IIII", 0x80000033, triesize, start, len(trie))
    return header + seg + cmd + trie


def test_minimal_trie_image_reads(tmp_path: Path) -> None:
    # root: no terminal, one edge "_f" -> node at 6; node 6: terminal (flags 0, address 0x10), no children
    trie = bytes([0, 1]) + b"_f\0" + bytes([6]) + bytes([2, 0, 0x10, 0])
    path = tmp_path / "ok.dylib"
    path.write_bytes(_image_with_trie(trie))
    info = _macho.read(path)
    assert (info.exports, info.functions, info.kind) == (1, frozenset({"f"}), "shared")
    # lief agrees with the hand-assembled image, so the bad variants below differ only in their defect
    (lf,) = _lief_slices(path)
    assert lf["exports"] == ["_f"]


def test_looping_exports_trie_ends(tmp_path: Path) -> None:
    trie = bytes([0, 1]) + b"a\0" + bytes([0])  # the root's only edge leads back to the root
    assert "twice" in str(_expect_invalid(tmp_path, _image_with_trie(trie)))


def test_deep_exports_trie_is_capped(tmp_path: Path) -> None:
    depth = 2000
    trie = bytearray()
    for i in range(depth):  # node i: no terminal, one edge "x" to node i+1 (6 bytes each)
        trie += bytes([0, 1]) + b"x\0" + bytes([(i + 1) * 6 & 0x7F | 0x80, (i + 1) * 6 >> 7])
    trie += bytes([0, 0])
    assert "deeper" in str(_expect_invalid(tmp_path, _image_with_trie(bytes(trie))))


@pytest.mark.parametrize(
    "trie",
    [
        bytes([0x80] * 12 + [0]),  # an over-long ULEB128
        bytes([0, 1]) + b"abc",  # an edge label without NUL
        bytes([0, 1]) + b"a\0" + bytes([0x7F]),  # an edge past the end
        bytes([0x7F, 0]),  # a terminal larger than the trie
    ],
)
def test_corrupt_exports_trie(tmp_path: Path, trie: bytes) -> None:
    _expect_invalid(tmp_path, _image_with_trie(trie))


def _fat(data: bytes) -> tuple[bytearray, int]:
    fat = bytearray(data)
    (nfat,) = struct.unpack_from(">I", fat, 4)
    return fat, nfat


def test_fat_overlapping_slices(tmp_path: Path) -> None:
    fat, _ = _fat(_fixture("libbase_fat.dylib").read_bytes())
    first_offset = struct.unpack_from(">I", fat, 8 + 8)[0]
    struct.pack_into(">I", fat, 8 + 20 + 8, first_offset + 16)  # slice 1 starts inside slice 0
    assert "overlap" in str(_expect_invalid(tmp_path, bytes(fat)))


def test_fat_slice_past_the_end(tmp_path: Path) -> None:
    fat, _ = _fat(_fixture("libbase_fat.dylib").read_bytes())
    struct.pack_into(">I", fat, 8 + 20 + 12, 0x7FFFFFFF)  # slice 1's size
    assert "inside the file" in str(_expect_invalid(tmp_path, bytes(fat)))
    fat2, _ = _fat(_fixture("libbase_fat.dylib").read_bytes())
    struct.pack_into(">I", fat2, 8 + 8, 4)  # slice 0 inside the fat header itself
    assert "after the header" in str(_expect_invalid(tmp_path, bytes(fat2)))


@pytest.mark.parametrize("nfat", [0, 33, 0xFFFFFFFF])
def test_fat_bad_nfat_arch(tmp_path: Path, nfat: int) -> None:
    fat, _ = _fat(_fixture("libbase_fat.dylib").read_bytes())
    struct.pack_into(">I", fat, 4, nfat)
    assert f"nfat_arch={nfat}" in str(_expect_invalid(tmp_path, bytes(fat)))


def test_java_class_file_is_not_fat_macho(tmp_path: Path) -> None:
    # a Java 17 class file header (major 61): same 0xCAFEBABE magic
    err = read_binary_invalid(tmp_path, b"\xca\xfe\xba\xbe\x00\x00\x00\x3d" + bytes(64))
    assert "Java" in str(err) or "nfat_arch" in str(err) or "fat" in str(err)


def read_binary_invalid(tmp_path: Path, data: bytes) -> InvalidBinaryError:
    path = tmp_path / "x.class"
    path.write_bytes(data)
    with pytest.raises(InvalidBinaryError) as err:
        read_binary(str(path))
    return err.value


def test_static_archive_in_fat_slice(tmp_path: Path) -> None:
    fat, _ = _fat(_fixture("libbase_fat.dylib").read_bytes())
    off = struct.unpack_from(">I", fat, 8 + 8)[0]
    fat[off : off + 8] = b"!<arch>\n"
    assert "static archive" in str(_expect_invalid(tmp_path, bytes(fat)))


def test_bad_symbol_table(tmp_path: Path) -> None:
    data = bytearray(_fixture("base_i386.o").read_bytes())
    _, starts = _thin_layout(bytes(data))
    for st in starts:
        if struct.unpack_from("<I", data, st)[0] == 0x2:  # LC_SYMTAB: claim 4 billion symbols
            struct.pack_into("<I", data, st + 12, 0xFFFFFFFF)
    assert "symbols" in str(_expect_invalid(tmp_path, bytes(data), "bad.o"))


def test_not_macho_and_empty(tmp_path: Path) -> None:
    _expect_invalid(tmp_path, b"")
    _expect_invalid(tmp_path, b"\xcf\xfa")
    assert "thin Mach-O magic" in str(_expect_invalid(tmp_path, b"hello world, not Mach-O"))
    with pytest.raises(InvalidBinaryError, match="directory"):
        _macho.read(tmp_path)
    with pytest.raises(InvalidBinaryError, match="no such file"):
        _macho.read(tmp_path / "missing.dylib")


# --- paths the real files above do not take -------------------------------------

_TRIE_CMDS = (0x22, 0x80000022, 0x80000033)  # LC_DYLD_INFO, LC_DYLD_INFO_ONLY, LC_DYLD_EXPORTS_TRIE


def _hide_exports_trie(data: bytearray, slice_offsets: list[int]) -> None:
    """Turn every trie-bearing command into an unknown one, so the symbol table must answer."""
    for base in slice_offsets:
        magic = bytes(data[base : base + 4])
        e = "<" if magic in (b"\xcf\xfa\xed\xfe", b"\xce\xfa\xed\xfe") else ">"
        pos = base + (32 if magic in (b"\xcf\xfa\xed\xfe", b"\xfe\xed\xfa\xcf") else 28)
        for _ in range(struct.unpack_from(e + "I", data, base + 16)[0]):
            cmd, size = struct.unpack_from(e + "II", data, pos)
            if cmd in _TRIE_CMDS:
                struct.pack_into(e + "I", data, pos, 0x7FFFFF00)
            pos += size


@pytest.mark.parametrize(
    ("dist", "platform"), [("scipy-openblas32", "macosx_11_0_arm64"), ("pyzmq", "macosx_10_15_universal2")]
)
def test_symbol_table_fallback_on_real_binaries(tmp_path: Path, dist: str, platform: str) -> None:
    for path in wheel_binaries(dist, platform):
        by_macholib = _macholib_slices(path)
        data = bytearray(path.read_bytes())
        _hide_exports_trie(data, [s["offset"] for s in by_macholib])
        patched = tmp_path / path.name
        patched.write_bytes(data)
        info = _macho.read(patched)
        for s, ml in zip(info.slices or [info], by_macholib, strict=True):
            assert ml["extdefsyms"], path  # the fallback has something to find
            assert s.exports == len(ml["extdefsyms"])
            assert s.functions == {n.decode().removeprefix("_") for n in ml["extdefsyms"]}


def test_fat64_header_reads_like_fat32(tmp_path: Path) -> None:
    fat32 = _fixture("libbase_fat.dylib").read_bytes()
    (nfat,) = struct.unpack_from(">I", fat32, 4)
    fat64 = bytearray(fat32)
    fat64[:8] = struct.pack(">II", _macho.FAT_MAGIC_64, nfat)
    for i in range(nfat):
        cputype, subtype, offset, size, align = struct.unpack_from(">iiIII", fat32, 8 + 20 * i)
        struct.pack_into(">iiQQII", fat64, 8 + 32 * i, cputype, subtype, offset, size, align, 0)
    path = tmp_path / "fat64.dylib"
    path.write_bytes(fat64)
    a, b = _macho.read(_fixture("libbase_fat.dylib")), _macho.read(path)
    assert b.inspect_dict() == a.inspect_dict()
    assert [(s.offset, s.size, s.functions) for s in b.slices] == [(s.offset, s.size, s.functions) for s in a.slices]


def _lc_str(e: str, cmd: int, fixed: bytes, text: str) -> bytes:
    """A load command with an lc_str right after its fixed part, padded to 8 bytes."""
    name = text.encode() + b"\0"
    size = (8 + 4 + len(fixed) + len(name) + 7) // 8 * 8
    return (struct.pack(e + "III", cmd, size, 12 + len(fixed)) + fixed + name).ljust(size, b"\0")


def _synthetic_image(e: str, versions: list[bytes] | None = None) -> bytes:
    """A 64-bit dylib in byte order ``e`` with an install name, a dependency, an rpath,
    ``versions`` (default: LC_VERSION_MIN_MACOSX 10.5) and a one-symbol exports trie."""
    trie = bytes([0, 1]) + b"_be_func\0" + bytes([12]) + bytes([2, 0, 0x10, 0])
    if versions is None:
        versions = [struct.pack(e + "IIII", 0x24, 16, 0x000A0500, 0x000A0600)]  # macOS 10.5, SDK 10.6
    cmds = [
        _lc_str(e, 0xD, struct.pack(e + "III", 2, 0x10203, 0x10000), "@rpath/libsynth.dylib"),
        _lc_str(e, 0xC, struct.pack(e + "III", 2, 0x10000, 0x10000), "/usr/lib/libSystem.B.dylib"),
        _lc_str(e, 0x8000001C, b"", "@loader_path/../lib"),
        *versions,
    ]
    seg_size, trie_cmd_size = 72, 16
    sizeofcmds = sum(map(len, cmds)) + seg_size + trie_cmd_size
    start = 32 + sizeofcmds
    cmds.append(struct.pack(e + "II16sQQQQiiII", 0x19, seg_size, b"__LINKEDIT", 0, 0x4000, start, len(trie), 1, 1, 0, 0))
    cmds.append(struct.pack(e + "IIII", 0x80000033, trie_cmd_size, start, len(trie)))
    header = struct.pack(e + "IiiIIIII", _macho.MH_MAGIC_64, 0x01000012, 0, 6, len(cmds), sizeofcmds, 0, 0)
    return header + b"".join(cmds) + trie


def test_big_endian_image_matches_its_little_endian_twin(tmp_path: Path) -> None:
    results = []
    for e in "<>":
        path = tmp_path / f"synth{'le' if e == '<' else 'be'}.dylib"
        path.write_bytes(_synthetic_image(e))
        info = _macho.read(path)
        (ml,) = _macholib_slices(path)  # macholib reads both byte orders
        assert (info.soname, info.needed, info.rpath) == (ml["soname"], ml["needed"], ml["rpath"])
        assert info.byte_order == ("little" if e == "<" else "big")
        results.append((info.inspect_dict(), info.functions, info.current_version, info.platform, info.sdk))
    assert results[0] == results[1]
    assert results[0][0]["machine"] == "ppc64" and results[0][0]["min_os"] == "10.5"


def test_exports_trie_past_the_end(tmp_path: Path) -> None:
    image = bytearray(_image_with_trie(bytes([0, 0])))
    struct.pack_into("<I", image, len(image) - 2 - 4, 0x0FFFFFFF)  # LC_DYLD_EXPORTS_TRIE datasize
    err = _expect_invalid(tmp_path, bytes(image))
    assert "exports trie" in str(err) and f"{len(image)} bytes long" in str(err)


def test_read_binary_dispatches_fixtures_to_the_macho_reader() -> None:
    for path in FIXTURE_FILES:
        info = read_binary(str(path))
        assert isinstance(info, _macho.MachOInfo) and info.format == "Mach-O", path
    fat = read_binary(str(_fixture("libbase_fat.dylib")))
    assert "x86_64+arm64" in repr(fat) or "arm64+x86_64" in repr(fat)


def _lipo() -> str:
    import shutil

    for name in ("llvm-lipo", "llvm-lipo-14", "llvm-lipo-15", "llvm-lipo-16", "llvm-lipo-17", "llvm-lipo-18"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("llvm-lipo is not installed (Debian package llvm, see .ci/apt-packages.txt)")


def _lipo_archs(path: Path) -> list[str]:
    import subprocess

    out = subprocess.run([_lipo(), "-archs", str(path)], capture_output=True, text=True, check=True)
    return out.stdout.split()


@pytest.mark.parametrize(
    ("name", "subtype"),
    [("libbase.dylib", None), ("libbase.dylib", 0x80000002), ("libbase_x86_64.dylib", 8), ("base_i386.o", None)],
)
def test_machine_names_match_llvm_lipo(tmp_path: Path, name: str, subtype: int | None) -> None:
    """arm64e and x86_64h are cpusubtypes; llvm-lipo names them (lief and macholib give numbers)."""
    data = bytearray(_fixture(name).read_bytes())
    if subtype is not None:
        struct.pack_into("<I", data, 8, subtype)  # cpusubtype (capability bits included for arm64e)
    path = tmp_path / name
    path.write_bytes(data)
    assert [_macho.read(path).machine_name] == _lipo_archs(path)


def test_fat_machine_names_match_llvm_lipo() -> None:
    path = _fixture("libbase_fat.dylib")
    assert [s.machine_name for s in _macho.read(path).slices] == _lipo_archs(path)


def test_universal2_wheel_machine_names_match_llvm_lipo() -> None:
    _lipo()  # skips first when llvm-lipo is missing, before any download
    for path in wheel_binaries("pyzmq", "macosx_10_15_universal2"):
        assert [s.machine_name for s in _macho.read(path).slices] == _lipo_archs(path)


def test_zippered_build_versions_report_the_first(tmp_path: Path) -> None:
    """macOS + Mac Catalyst ("zippered") images carry two LC_BUILD_VERSION commands."""
    versions = [
        struct.pack("<IIIIII", 0x32, 24, 1, 0x000B0000, 0x000E0000, 0),  # macos 11.0, SDK 14.0
        struct.pack("<IIIIII", 0x32, 24, 6, 0x000E0000, 0x00110000, 0),  # maccatalyst 14.0, SDK 17.0
    ]
    path = tmp_path / "zippered.dylib"
    path.write_bytes(_synthetic_image("<", versions))
    _compare(path)
    assert _macho.read(path).platform == "macos"


def test_duplicate_unique_commands(tmp_path: Path) -> None:
    data = bytearray(_fixture("libbase.dylib").read_bytes())
    _, starts = _thin_layout(bytes(data))
    (load,) = [st for st in starts if struct.unpack_from("<I", data, st)[0] == 0xC]  # LC_LOAD_DYLIB
    struct.pack_into("<I", data, load, 0xD)  # a second LC_ID_DYLIB
    assert "second LC_ID_DYLIB" in str(_expect_invalid(tmp_path, bytes(data)))


def _uleb3(value: int) -> bytes:
    """``value`` (< 2**21) as a ULEB128 padded to three bytes, so node offsets are easy to lay out."""
    return bytes([value & 0x7F | 0x80, value >> 7 & 0x7F | 0x80, value >> 14])


def test_exports_trie_name_explosion_is_capped(tmp_path: Path) -> None:
    """A long shared edge fanned out 255 x 255 ways: 65,025 names of 16 KB (1 GB) from a ~1 MB trie."""
    fan = 255
    long_edge = b"A" * 16000
    # layout: root | node X (fan children) | fan level-1 nodes (fan children each) | fan*fan leaves
    leaf = bytes([2, 0, 0, 0])  # terminal (flags 0, address 0), no children
    level1_size = 2 + fan * (2 + 3)  # count byte, terminal-size byte, fan x (label "a\0" + 3-byte ULEB)
    x_at = 2 + len(long_edge) + 1 + 3
    root = bytes([0, 1]) + long_edge + b"\0" + _uleb3(x_at)
    x_size = 2 + fan * (2 + 3)
    l1_at = x_at + x_size
    leaves_at = l1_at + fan * level1_size

    def edges(targets: list[int]) -> bytes:
        out = bytes([0, len(targets)])
        for t in targets:
            out += b"a\0" + _uleb3(t)
        return out

    x = edges([l1_at + i * level1_size for i in range(fan)])
    level1 = b"".join(edges([leaves_at + (i * fan + j) * len(leaf) for j in range(fan)]) for i in range(fan))
    trie = root + x + level1 + leaf * (fan * fan)
    assert len(root) == x_at and len(x) == x_size and len(level1) == fan * level1_size
    err = _expect_invalid(tmp_path, _image_with_trie(trie), max_memory=40 * len(trie) + (8 << 20))
    assert "bytes of names" in str(err)


@pytest.mark.parametrize(
    ("strings", "message"),
    [
        (b"A" * 400_000, "longer than"),  # one unterminated run: every name too long
        ((b"A" * 15_999 + b"\0") * 25, "add up to more than"),  # names fit, but 100,000 x ~8 KB of them
    ],
)
def test_symbol_names_overlapping_long_strings_are_capped(tmp_path: Path, strings: bytes, message: str) -> None:
    """100,000 external symbols at successive offsets of a 400 KB string table."""
    nsyms, strsize = 100_000, len(strings)
    symoff = 32 + 24
    stroff = symoff + nsyms * 16
    header = struct.pack("<IiiIIIII", _macho.MH_MAGIC_64, 0x0100000C, 0, 1, 1, 24, 0, 0)
    symtab = struct.pack("<IIIIII", 0x2, 24, symoff, nsyms, stroff, strsize)
    nlists = b"".join(struct.pack("<IBBHQ", i, 0x0F, 1, 0, 0) for i in range(nsyms))  # N_SECT | N_EXT
    data = header + symtab + nlists + strings
    err = _expect_invalid(tmp_path, data, "bad.o", max_memory=40 * strsize + (8 << 20))
    assert message in str(err)


def test_callers_written_for_elf_get_answers_not_attribute_errors(tmp_path: Path) -> None:
    """A macOS .so/.dylib met on a Linux search path: discovery's fact reader and
    the compatibility check must reject it with a reason, not crash."""
    from libbroker import _resolve
    from libbroker._binary import check_compatible, host_binary

    for path in FIXTURE_FILES:
        info = read_binary(str(path))
        assert isinstance(info, _macho.MachOInfo)
        assert (info.elf_class, info.elf_type, info.glibc_required) == (info.bits, info.kind, None)
        assert (info.libc, info.version_needs, info.version_defs) == (None, {}, frozenset())
        host = host_binary()
        if host.format != info.format:
            assert check_compatible(info, host)  # a reason, e.g. "MACH-O file but this interpreter is ELF"
        facts = _resolve._read_facts(str(path))
        assert facts["machine"] == info.machine_name and facts["soname"] == info.soname


def test_fixture_script_remakes_equivalent_files(tmp_path: Path) -> None:
    """make_macho_fixtures.sh still works with the installed toolchain, and what it makes
    agrees with the oracles and with the committed copies (same features, same facts)."""
    import os
    import shutil
    import subprocess
    import sys

    if not (shutil.which("clang") and (shutil.which("ld64.lld") or shutil.which("ld64.lld-14"))):
        pytest.skip("clang and ld64.lld are not installed (see .ci/apt-packages.txt)")
    _lipo()
    pytest.importorskip("ziglang")
    script = Path(__file__).parent / "make_macho_fixtures.sh"
    env = {**os.environ, "MACHO_FIXTURES_OUT": str(tmp_path), "PYTHON": sys.executable}
    subprocess.run(["sh", str(script)], env=env, check=True, capture_output=True, timeout=600)
    made = sorted(p.name for p in tmp_path.iterdir())
    assert made == [p.name for p in FIXTURE_FILES]
    for name in made:
        fresh = _compare(tmp_path / name)
        committed = _macho.read(FIXTURES / name)
        for a, b in zip(fresh.slices or [fresh], committed.slices or [committed], strict=True):
            assert (a.machine_name, a.kind, a.soname, a.needed, a.rpath, a.min_os, a.functions) == (
                b.machine_name, b.kind, b.soname, b.needed, b.rpath, b.min_os, b.functions
            )
