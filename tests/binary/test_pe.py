"""libbroker._binary._pe on real Windows binaries and mingw/lld-built fixtures.

Oracles: pefile (with its export caps lifted) and lief. Nothing here types the
expected exports or imports of a wheel's DLL or a fixture: every fact is
compared with what the oracles read from the same bytes. Small images built
here byte by byte (`_mini_pe`) check the corners real files rarely reach: old
VA-based delay-load tables, shared thunk arrays, huge virtual sections. Bad
input must raise InvalidBinaryError quickly (CPU time, not wall time: the test
machine is shared) and within bounded memory, whatever the corruption.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from libbroker._binary import InvalidBinaryError, _pe, read_binary

from ._wheels import wheel_binaries

pefile = pytest.importorskip("pefile")
lief = pytest.importorskip("lief")

FIXTURES = Path(__file__).parent / "fixtures" / "pe"
FIXTURE_FILES = sorted(FIXTURES.glob("*.dll")) + sorted(FIXTURES.glob("*.exe"))
MAKE_FIXTURES = Path(__file__).parent / "make_pe_fixtures.sh"

# Directories pefile parses for us: export, import, security, delay import.
_PEFILE_DIRS = [pefile.DIRECTORY_ENTRY[f"IMAGE_DIRECTORY_ENTRY_{d}"] for d in
                ("EXPORT", "IMPORT", "SECURITY", "DELAY_IMPORT")]  # fmt: skip


def _s(b: bytes) -> str:
    return b.decode("utf-8", "surrogateescape")


def _dedupe(names: list[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for n in names:
        if n.lower() not in seen:
            seen.add(n.lower())
            out.append(n)
    return out


def _pefile_facts(path: Path) -> dict[str, object]:
    # pefile stops at 8,192 exports and at 120 exports sharing an address by default.
    pe = pefile.PE(
        str(path),
        fast_load=True,
        max_symbol_exports=1 << 20,
        max_repeated_symbol=1 << 20,
    )
    pe.parse_data_directories(directories=_PEFILE_DIRS)
    exp = getattr(pe, "DIRECTORY_ENTRY_EXPORT", None)
    syms = exp.symbols if exp is not None else []

    def imports(entries: list[object]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for e in entries:
            names = [
                _s(i.name) if i.import_by_ordinal is False else f"#{i.ordinal}"
                for i in e.imports
            ]
            out.setdefault(
                next((k for k in out if k.lower() == _s(e.dll).lower()), _s(e.dll)), []
            ).extend(names)
        return out

    sec = pe.OPTIONAL_HEADER.DATA_DIRECTORY[
        pefile.DIRECTORY_ENTRY["IMAGE_DIRECTORY_ENTRY_SECURITY"]
    ]
    return {
        "machine": pe.FILE_HEADER.Machine,
        "bits": 64 if pe.OPTIONAL_HEADER.Magic == 0x20B else 32,
        "kind": "shared" if pe.FILE_HEADER.IMAGE_FILE_DLL else "executable",
        "soname": _s(exp.name) if exp is not None and exp.name else None,
        "exports": len(syms),
        "export_names": {_s(s.name) for s in syms if s.name is not None},
        "ordinal_only": sorted(s.ordinal for s in syms if s.name is None),
        "forwarders": {
            (_s(s.name) if s.name is not None else f"#{s.ordinal}"): _s(s.forwarder)
            for s in syms
            if s.forwarder
        },
        "needed": _dedupe(
            [_s(e.dll) for e in getattr(pe, "DIRECTORY_ENTRY_IMPORT", [])]
        ),
        "delay_needed": _dedupe(
            [_s(e.dll) for e in getattr(pe, "DIRECTORY_ENTRY_DELAY_IMPORT", [])]
        ),
        "imports": imports(getattr(pe, "DIRECTORY_ENTRY_IMPORT", [])),
        "delay_imports": imports(getattr(pe, "DIRECTORY_ENTRY_DELAY_IMPORT", [])),
        "dll_characteristics": pe.OPTIONAL_HEADER.DllCharacteristics,
        "subsystem_version": (
            pe.OPTIONAL_HEADER.MajorSubsystemVersion,
            pe.OPTIONAL_HEADER.MinorSubsystemVersion,
        ),
        "image_base": pe.OPTIONAL_HEADER.ImageBase,
        "authenticode": sec.VirtualAddress != 0 and sec.Size != 0,
        "dll_characteristics_flags": {
            name.removeprefix("IMAGE_DLLCHARACTERISTICS_")
            for name, bit in pefile.dll_characteristics
            if name.startswith("IMAGE_DLLCHARACTERISTICS_")
            and pe.OPTIONAL_HEADER.DllCharacteristics & bit
        },
        "clr": bool(
            pe.OPTIONAL_HEADER.DATA_DIRECTORY[14].VirtualAddress
            and pe.OPTIONAL_HEADER.DATA_DIRECTORY[14].Size
        ),
    }


def _ours(info: _pe.PEInfo) -> dict[str, object]:
    return {
        "machine": info.machine,
        "bits": info.bits,
        "kind": info.kind,
        "soname": info.soname,
        "exports": info.exports,
        "export_names": set(info.export_names),
        "ordinal_only": sorted(info.ordinal_only),
        "forwarders": info.forwarders,
        "needed": info.needed,
        "delay_needed": info.delay_needed,
        "imports": info.imports,
        "delay_imports": info.delay_imports,
        "dll_characteristics": info.dll_characteristics,
        "subsystem_version": info.subsystem_version,
        "image_base": info.image_base,
        "authenticode": info.authenticode,
        "dll_characteristics_flags": set(info.dll_characteristics_flags),
        "clr": info.clr,
    }


_LIEF_MACHINES = {
    "AMD64": "x86_64",
    "I386": "i386",
    "ARM64": "aarch64",
    "ARMNT": "arm",
    "ARM": "arm",
}


def _check_against_lief(path: Path, info: _pe.PEInfo) -> None:
    b = lief.PE.parse(str(path))
    assert b is not None
    assert (
        _LIEF_MACHINES.get(b.header.machine.name, b.header.machine.name)
        == info.machine_name
    )
    assert info.bits == (
        64 if b.optional_header.magic == lief.PE.PE_TYPE.PE32_PLUS else 32
    )
    assert [i.name for i in b.imports] == info.needed
    assert [d.name for d in b.delay_imports] == info.delay_needed
    assert b.optional_header.dll_characteristics == info.dll_characteristics
    assert b.optional_header.subsystem.name.lower() == info.subsystem
    assert b.has_signatures == info.authenticode
    if b.has_exports:
        exp = b.get_export()
        assert exp.name == (info.soname or "")
        assert len(exp.entries) == info.exports
        # lief reads an unnamed forwarder's target string as its name and does
        # not flag it as forwarded: those entries are compared by pefile only.
        unnamed_targets = {t for k, t in info.forwarders.items() if k.startswith("#")}
        assert {e.name for e in exp.entries if e.name} - unnamed_targets == set(
            info.export_names
        )
        fwd = {
            e.name: str(e.forward_information) for e in exp.entries if e.is_forwarded
        }
        assert fwd == {
            k: t for k, t in info.forwarders.items() if not k.startswith("#")
        }
    else:
        assert info.exports == 0


def _compare(path: Path) -> _pe.PEInfo:
    info = _pe.read(str(path))
    assert _ours(info) == _pefile_facts(path), path
    assert info.functions == info.export_names
    assert info.api_sets == [
        n
        for n in info.needed + info.delay_needed
        if n.lower().startswith(("api-ms-", "ext-ms-"))
    ]
    return info


# --- fixtures built by make_pe_fixtures.sh -----------------------------------


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda p: p.name)
def test_fixture_matches_pefile_and_lief(path: Path) -> None:
    info = _compare(path)
    _check_against_lief(path, info)


def test_fixtures_exercise_every_feature() -> None:
    """The fixtures hold what the comparisons above are meant to cover."""
    infos = {p.name: _pe.read(str(p)) for p in FIXTURE_FILES}
    assert {i.machine_name for i in infos.values()} >= {"x86_64", "i386", "aarch64"}
    assert {i.bits for i in infos.values()} == {32, 64}
    dlls = [i for i in infos.values() if i.kind == "shared"]
    assert all(i.forwarders and i.ordinal_only and i.api_sets for i in dlls)
    assert any(
        t.split(".", 1)[1].startswith("#") for i in dlls for t in i.forwarders.values()
    )
    assert any(
        k.startswith("#") for i in dlls for k in i.forwarders
    )  # an unnamed forwarder
    assert any(i.delay_needed for i in dlls)
    exe = infos["pe_fixture_x64.exe"]
    assert (
        exe.kind == "executable"
        and exe.soname is None
        and "pe_fixture_x64.dll" in exe.needed
    )


def test_dispatcher_and_inspect_dict() -> None:
    path = FIXTURES / "pe_fixture_x64.dll"
    info = read_binary(str(path))
    assert isinstance(info, _pe.PEInfo)
    d = info.inspect_dict()
    assert list(d) == ["format", "machine", "bits", "kind", "soname", "needed", "exports", "rpath",
                       "runpath", "min_os", "slices"]  # fmt: skip
    facts = _pefile_facts(path)
    assert (
        d["format"] == "PE"
        and d["rpath"] == []
        and d["runpath"] == []
        and d["min_os"] is None
    )
    assert (d["bits"], d["kind"], d["soname"], d["needed"], d["exports"]) == (
        facts["bits"], facts["kind"], facts["soname"], facts["needed"], facts["exports"],
    )  # fmt: skip
    assert json.loads(json.dumps(d)) == d
    assert (
        "DYNAMIC_BASE" in info.dll_characteristics_flags
        or not info.dll_characteristics & 0x40
    )


@pytest.mark.skipif(
    shutil.which("x86_64-w64-mingw32-gcc") is None, reason="mingw-w64 not installed"
)
def test_fixture_script_rebuilds(tmp_path: Path) -> None:
    """The committed script still builds fixtures the reader and pefile agree on."""
    proc = subprocess.run(
        ["sh", str(MAKE_FIXTURES), str(tmp_path)],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    built = sorted(tmp_path.glob("*.dll")) + sorted(tmp_path.glob("*.exe"))
    assert len(built) >= 3, proc.stdout
    for path in built:
        _compare(path)


# --- real wheels ---------------------------------------------------------------

WHEELS = [
    ("numpy", "win_amd64"),
    ("scipy-openblas32", "win_amd64"),
    ("scipy-openblas32", "win32"),
    ("scipy-openblas32", "win_arm64"),
    ("pyzmq", "win_amd64"),
    ("pywin32", "win_amd64"),  # real delay-load imports (win32api.pyd: POWRPROF.dll)
]


@pytest.mark.parametrize(
    ("dist", "platform"), WHEELS, ids=[f"{d}-{p}" for d, p in WHEELS]
)
def test_real_wheel_binaries_match_pefile_and_lief(dist: str, platform: str) -> None:
    files = wheel_binaries(dist, platform, (".dll", ".pyd"))
    assert files, f"no DLL or .pyd in the {dist} {platform} wheel"
    for path in files:
        start = time.process_time()
        info = _pe.read(str(path))
        elapsed = time.process_time() - start
        assert elapsed < 5, f"{path.name}: {elapsed:.1f}s"
        _compare(path)
        _check_against_lief(path, info)
        assert info.kind == "shared"
        assert (
            info.machine_name
            == {"win_amd64": "x86_64", "win32": "i386", "win_arm64": "aarch64"}[
                platform
            ]
        )


def test_real_delay_load_imports() -> None:
    """MSVC-built delay-load tables (pywin32), not only lld's, read as pefile reads them."""
    files = wheel_binaries("pywin32", "win_amd64", (".pyd", ".dll"))
    delayed = [p for p in files if _pe.read(str(p)).delay_needed]
    assert delayed, "no pywin32 module with delay-load imports any more"
    for path in delayed:
        info = _compare(path)
        assert all(info.delay_imports[dll] for dll in info.delay_needed)


def test_big_export_table_beyond_pefile_default() -> None:
    """OpenBLAS exports more names than pefile's default cap (8,192): we read them all."""
    (path,) = wheel_binaries("scipy-openblas32", "win_amd64", (".dll",))
    info = _pe.read(str(path))
    assert info.exports > 8192
    default = pefile.PE(str(path), fast_load=True)
    default.parse_data_directories(directories=_PEFILE_DIRS[:1])
    # Past its cap pefile lists the remaining named exports as ordinal-only.
    default_names = {
        s.name for s in default.DIRECTORY_ENTRY_EXPORT.symbols if s.name is not None
    }
    assert len(default_names) <= 8193 < len(info.export_names)
    assert info.export_names == _pefile_facts(path)["export_names"]


# --- bad input -----------------------------------------------------------------


def _headers(data: bytes) -> dict[str, int]:
    """Offsets of the header fields the corruption tests poke, found by walking the file."""
    lfanew = struct.unpack_from("<I", data, 0x3C)[0]
    coff = lfanew + 4
    nsec, opt_size = (
        struct.unpack_from("<H", data, coff + 2)[0],
        struct.unpack_from("<H", data, coff + 16)[0],
    )
    opt = coff + 20
    magic = struct.unpack_from("<H", data, opt)[0]
    dirs = opt + (112 if magic == 0x20B else 96)
    return {
        "lfanew": lfanew,
        "coff": coff,
        "nsec": nsec,
        "opt": opt,
        "opt_end": opt + opt_size,
        "dirs": dirs,
    }


def _rva_to_off(data: bytes, rva: int) -> int:
    h = _headers(data)
    for i in range(h["nsec"]):
        vsize, va, rsize, rptr = struct.unpack_from(
            "<IIII", data, h["opt_end"] + 40 * i + 8
        )
        if va <= rva < va + max(vsize, rsize):
            return rva - va + rptr
    raise AssertionError(f"RVA {rva:#x} not in a section")


def _expect_invalid(path: Path, data: bytes, *words: str) -> InvalidBinaryError:
    path.write_bytes(data)
    start = time.process_time()
    with pytest.raises(InvalidBinaryError) as exc:
        _pe.read(str(path))
    assert time.process_time() - start < 2
    message = str(exc.value)
    assert str(path) in message
    for w in words:
        assert w in message, message
    return exc.value


def _boundaries(data: bytes) -> list[int]:
    h = _headers(data)
    cuts = {0, 1, 2, 0x3C, 0x40, h["lfanew"], h["lfanew"] + 2, h["coff"], h["opt"], h["opt"] + 2, h["dirs"],
            h["opt_end"]}  # fmt: skip
    end = 0
    for i in range(h["nsec"]):
        at = h["opt_end"] + 40 * i
        cuts |= {at, at + 20}
        _, _, rsize, rptr = struct.unpack_from("<IIII", data, at + 8)
        if rsize:
            cuts |= {rptr, rptr + 1, rptr + rsize // 2, rptr + rsize - 1}
            end = max(end, rptr + rsize)
    cuts.add(h["opt_end"] + 40 * h["nsec"])
    return sorted(c for c in cuts if c < end)


@pytest.mark.parametrize("name", ["pe_fixture_x64.dll", "pe_fixture_x86.dll", "pe_delay_x64.dll",
                                  "pe_fixture_arm64.dll"])  # fmt: skip
def test_truncated_at_every_header_and_section_boundary(
    tmp_path: Path, name: str
) -> None:
    data = (FIXTURES / name).read_bytes()
    cuts = _boundaries(data)
    assert len(cuts) > 15
    for cut in cuts:
        _expect_invalid(tmp_path / f"cut{cut}.dll", data[:cut])


def test_not_a_pe_image(tmp_path: Path) -> None:
    data = bytearray((FIXTURES / "pe_fixture_x64.dll").read_bytes())
    lfanew = _headers(bytes(data))["lfanew"]
    dos = bytearray(data)
    dos[lfanew : lfanew + 4] = b"NE\x05\x0a"
    _expect_invalid(tmp_path / "ne.exe", bytes(dos), "16-bit", "NE")
    far = bytearray(data)
    struct.pack_into("<I", far, 0x3C, 0x7FFFFFF0)
    _expect_invalid(tmp_path / "far.dll", bytes(far), "e_lfanew", "past the end")
    magic = bytearray(data)
    struct.pack_into("<H", magic, _headers(bytes(data))["opt"], 0x107)
    _expect_invalid(tmp_path / "rom.dll", bytes(magic), "0x10b", "0x107")


def _export_dir_offset(data: bytes) -> int:
    h = _headers(data)
    rva = struct.unpack_from("<I", data, h["dirs"])[0]
    return _rva_to_off(data, rva)


@pytest.mark.parametrize(("field", "value", "words"), [
    (24, 0x00FFFFFF, ("NumberOfNames", "16-bit")),         # huge NumberOfNames
    (20, 0xFFFFFFFF, ("NumberOfFunctions",)),             # huge NumberOfFunctions
    (20, 0x8000, ("AddressOfFunctions", "section ends")), # array past its section's end
    (28, 0x7FFF0000, ("AddressOfFunctions", "outside every section")),
    (32, 0x7FFF0000, ("AddressOfNames", "outside every section")),
    (12, 0x7FFF0000, ("DLL name", "outside every section")),
])  # fmt: skip
def test_corrupt_export_directory(
    tmp_path: Path, field: int, value: int, words: tuple[str, ...]
) -> None:
    data = bytearray((FIXTURES / "pe_fixture_x64.dll").read_bytes())
    at = _export_dir_offset(bytes(data))
    struct.pack_into("<I", data, at + field, value)
    _expect_invalid(tmp_path / "bad.dll", bytes(data), *words)


def test_directory_rva_outside_every_section(tmp_path: Path) -> None:
    for index, words in (
        (0, "export directory"),
        (1, "import directory"),
        (13, "delay-load import"),
    ):
        data = bytearray((FIXTURES / "pe_delay_x64.dll").read_bytes())
        struct.pack_into(
            "<I", data, _headers(bytes(data))["dirs"] + 8 * index, 0x7FFFFFF0
        )
        _expect_invalid(
            tmp_path / f"dir{index}.dll", bytes(data), words, "outside every section"
        )


# A minimal image built here: PE32+ (x86-64) or PE32 (i386), headers in the
# first 0x200 bytes, one section ".rdata" at RVA 0x1000 (file offset 0x200)
# holding `body`.
def _mini_pe(
    body: bytes,
    dirs: dict[int, tuple[int, int]],
    vsize: int | None = None,
    bits: int = 64,
) -> bytes:
    raw = body + bytes(-len(body) % 0x200)
    head = bytearray(0x200)
    head[:2] = b"MZ"
    struct.pack_into("<I", head, 0x3C, 0x40)
    head[0x40:0x44] = b"PE\0\0"
    opt_size, fixed = (240, 112) if bits == 64 else (224, 96)
    machine, flags = (0x8664, 0x2022) if bits == 64 else (0x14C, 0x2102)
    struct.pack_into("<HHIIIHH", head, 0x44, machine, 1, 0, 0, 0, opt_size, flags)
    opt = 0x58
    if bits == 64:
        struct.pack_into("<HxxxxxxxxxxxxxxxxxxxxxxQ", head, opt, 0x20B, 0x180000000)
    else:
        struct.pack_into("<H", head, opt, 0x10B)
        struct.pack_into("<I", head, opt + 28, 0x10000000)
    struct.pack_into("<II", head, opt + 32, 0x1000, 0x200)  # section and file alignment
    struct.pack_into("<I", head, opt + 56, 0x1000 + len(raw))  # SizeOfImage
    struct.pack_into("<I", head, opt + 60, 0x200)  # SizeOfHeaders
    struct.pack_into("<HH", head, opt + 68, 3, 0x160)
    struct.pack_into("<I", head, opt + fixed - 4, 16)
    for i, (rva, size) in dirs.items():
        struct.pack_into("<II", head, opt + fixed + 8 * i, rva, size)
    sec = (b".rdata", vsize or len(raw), 0x1000, len(raw), 0x200)
    struct.pack_into("<8sIIII", head, opt + opt_size, *sec)
    return bytes(head) + raw


def test_mini_pe_is_read_like_pefile(tmp_path: Path) -> None:
    """The builder below makes images pefile accepts: the corruption tests start from valid files."""
    body = bytearray(0x400)
    # import descriptor -> "a.dll", thunks [hint/name "f", ordinal 7]
    struct.pack_into("<IIIII", body, 0, 0x1100, 0, 0, 0x1080, 0x1100)
    body[0x80:0x86] = b"a.dll\0"
    struct.pack_into("<QQQ", body, 0x100, 0x1180, (1 << 63) | 7, 0)
    body[0x180:0x184] = b"\0\0f\0"
    path = tmp_path / "mini.dll"
    path.write_bytes(_mini_pe(bytes(body), {1: (0x1000, 40)}))
    info = _compare(path)
    assert info.imports == {"a.dll": ["f", "#7"]}


def test_import_table_without_terminator(tmp_path: Path) -> None:
    # Descriptors fill the section to its end, none all-zero; each names
    # "a.dll" (in the headers, RVA 0x180) with an empty thunk array (RVA 0x1F0).
    body = bytearray(b"\xff" * 0x2000)
    for i in range(0x2000 // 20):
        struct.pack_into("<IIIII", body, 20 * i, 0x1F0, 0, 0, 0x180, 0x1F0)
    image = bytearray(_mini_pe(bytes(body), {1: (0x1000, 20)}))
    image[0x180:0x186] = b"a.dll\0"
    _expect_invalid(tmp_path / "noterm.dll", bytes(image), "all-zero descriptor")


def test_looping_thunk_array(tmp_path: Path) -> None:
    # The thunk array never holds a zero: every entry points back at the
    # array itself as a hint/name entry, up to the end of its section.
    body = bytearray(0x4000)
    struct.pack_into("<IIIII", body, 0, 0x1100, 0, 0, 0x1080, 0x1100)
    body[0x80:0x86] = b"a.dll\0"
    for off in range(0x100, 0x4000, 8):
        struct.pack_into("<Q", body, off, 0x1100)
    _expect_invalid(
        tmp_path / "loop.dll", _mini_pe(bytes(body), {1: (0x1000, 40)}), "thunk"
    )


def test_overlapping_export_names_hit_the_scan_budget(tmp_path: Path) -> None:
    # 65,536 names pointing into one 8,000-byte name at 4,000 different places:
    # 400 MB of scanning if each were read in full. The scan budget (a few
    # times the file's size) stops it.
    n = 0x10000
    funcs, names, ords, name = (
        0x1000 + 40,
        0x1000 + 40 + 4 * n,
        0x1000 + 40 + 8 * n,
        0x1000 + 40 + 10 * n,
    )
    body = bytearray(40 + 10 * n + 8001)
    struct.pack_into(
        "<IIHHIIIIIII", body, 0, 0, 0, 0, 0, 0, 1, n, n, funcs, names, ords
    )
    struct.pack_into(f"<{n}I", body, 40, *([0x1000] * n))
    struct.pack_into(f"<{n}I", body, 40 + 4 * n, *(name + i % 4000 for i in range(n)))
    struct.pack_into(f"<{n}H", body, 40 + 8 * n, *range(n))
    body[40 + 10 * n : 40 + 10 * n + 8000] = b"x" * 8000
    _expect_invalid(
        tmp_path / "overlap.dll", _mini_pe(bytes(body), {0: (0x1000, 40)}), "budget"
    )


def test_unterminated_string_at_end_of_file(tmp_path: Path) -> None:
    body = bytearray(0x200)
    struct.pack_into("<IIIII", body, 0, 0, 0, 0, 0x11F8, 0x1100)
    body[0x1F8:] = b"abcdefgh"  # the DLL name runs into the end of the file
    _expect_invalid(
        tmp_path / "unterm.dll", _mini_pe(bytes(body), {1: (0x1000, 20)}), "terminator"
    )


def test_fifo_directory_missing_and_dangling(tmp_path: Path) -> None:
    with pytest.raises(InvalidBinaryError, match="directory"):
        _pe.read(str(tmp_path))
    with pytest.raises(InvalidBinaryError, match="no such file"):
        _pe.read(str(tmp_path / "absent.dll"))
    link = tmp_path / "dangling.dll"
    link.symlink_to(tmp_path / "gone.dll")
    with pytest.raises(InvalidBinaryError, match="dangling symbolic link"):
        _pe.read(str(link))
    with pytest.raises(InvalidBinaryError, match="MZ"):
        _pe.read(__file__)  # text, not a PE image
    if hasattr(os, "mkfifo"):
        fifo = tmp_path / "lib.dll"
        os.mkfifo(fifo)
        start = time.perf_counter()
        with pytest.raises(InvalidBinaryError):
            _pe.read(str(fifo))
        assert (
            time.perf_counter() - start < 10
        )  # wall clock: a blocking open would not use CPU


def test_module_stays_off_the_warm_path_imports() -> None:
    tree = ast.parse(Path(_pe.__file__).read_text())
    top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    names = {a.name.split(".")[0] for n in top for a in n.names} | {
        (n.module or "").split(".")[0] for n in top if isinstance(n, ast.ImportFrom)
    }
    assert not names & {
        "re",
        "typing",
        "dataclasses",
        "json",
        "pathlib",
        "packaging",
        "tomllib",
    }


def test_reads_in_a_fresh_interpreter_without_re() -> None:
    code = (
        "import sys; from libbroker._binary import _pe; "
        f"i = _pe.read({str(FIXTURES / 'pe_fixture_x86.dll')!r}); print(i.machine_name, i.bits)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stdout.split() == ["i386", "32"]


def test_many_descriptors_sharing_one_thunk_array_stay_bounded(tmp_path: Path) -> None:
    # 65,000 import descriptors, each naming a.dll with the same 1,000-entry
    # thunk array: 65 million imports if each were walked. The import budget
    # (what the file could hold) stops the walk quickly.
    n = 65000
    thunks = 0x1000 + 20 * (n + 1)
    names = thunks + 8 * 1001
    body = bytearray(20 * (n + 1) + 8 * 1001 + 16)
    for i in range(n):
        struct.pack_into("<IIIII", body, 20 * i, thunks, 0, 0, names + 2, thunks)
    struct.pack_into("<1000Q", body, thunks - 0x1000, *([names] * 1000))
    body[names - 0x1000 : names - 0x1000 + 8] = b"\0\0a.dll\0"
    _expect_invalid(
        tmp_path / "many.dll", _mini_pe(bytes(body), {1: (0x1000, 20)}), "imports"
    )


def _descriptors_without_thunks(tmp_path: Path, n: int) -> Path:
    body = bytearray(20 * (n + 1) + 16)
    name = 0x1000 + 20 * (n + 1)
    for i in range(n):
        struct.pack_into("<IIIII", body, 20 * i, 0, 0, 0, name, name + 8)
    body[-16:-10] = b"a.dll\0"
    path = tmp_path / f"empty{n}.dll"
    path.write_bytes(_mini_pe(bytes(body), {1: (0x1000, 20)}))
    return path


def _pe_lines_run(path: Path) -> int:
    """Lines of _pe.py executed by one read (a deterministic measure of the work done)."""
    import sys

    count = 0

    def local(frame, event, arg):
        nonlocal count
        count += event == "line"
        return local

    def calls(frame, event, arg):
        return local if frame.f_code.co_filename == _pe.__file__ else None

    sys.settrace(calls)
    try:
        _pe.read(str(path))
    finally:
        sys.settrace(None)
    return count


def test_many_descriptors_without_thunks_read_in_linear_work(tmp_path: Path) -> None:
    info = _pe.read(str(_descriptors_without_thunks(tmp_path, 65000)))
    # (pefile drops descriptors without imports; the loader still maps the DLL.)
    assert info.needed == ["a.dll"] and info.imports == {"a.dll": []}
    # Twice the descriptors, at most twice the work (lines executed, not seconds: the
    # wall time is measured in benchmarks/, never asserted in a test).
    small, large = (_pe_lines_run(_descriptors_without_thunks(tmp_path, n)) for n in (2000, 4000))
    assert large <= 2 * small + 200, (small, large)


def test_section_count_capped(tmp_path: Path) -> None:
    data = bytearray((FIXTURES / "pe_fixture_x64.dll").read_bytes())
    struct.pack_into("<H", data, _headers(bytes(data))["coff"] + 2, 0xFFFF)
    _expect_invalid(tmp_path / "sections.dll", bytes(data), "NumberOfSections 65535")


def test_cli_inspect_json_prints_the_pe_keys() -> None:
    """`libbroker inspect X.dll --json` through the real CLI (main's generic inspect)."""
    path = FIXTURES / "pe_fixture_x86.dll"
    proc = subprocess.run(
        [sys.executable, "-m", "libbroker", "inspect", str(path), "--json"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    facts = _pefile_facts(path)
    assert (
        data["format"] == "PE" and data["machine"] == "i386" and data["min_os"] is None
    )
    assert (data["bits"], data["soname"], data["needed"], data["exports"]) == (
        facts["bits"], facts["soname"], facts["needed"], facts["exports"],
    )  # fmt: skip
    assert data["rpath"] == [] == data["runpath"] and data["slices"] == []
    if sys.platform != "win32":
        assert data["loadable"] is False and data["reason"]


def test_old_va_based_delay_descriptor(tmp_path: Path) -> None:
    """Pre-VC7 delay-load descriptors (attributes 0) hold VAs, thunks included."""
    base = 0x10000000
    body = bytearray(0x400)
    # Attributes 0; DllName, module handle, IAT, INT as VAs.
    struct.pack_into("<IIIIIIII", body, 0, 0, base + 0x1080, base + 0x10F0, base + 0x1100,
                     base + 0x1140, 0, 0, 0)  # fmt: skip
    body[0x80:0x8B] = b"oldvc6.dll\0"
    struct.pack_into("<III", body, 0x140, base + 0x1180, 0x80000003, 0)
    body[0x180:0x188] = b"\0\0OldFn\0"
    path = tmp_path / "old.dll"
    path.write_bytes(_mini_pe(bytes(body), {13: (0x1000, 32)}, bits=32))
    info = _compare(path)
    assert info.bits == 32 and info.delay_imports == {"oldvc6.dll": ["OldFn", "#3"]}


def test_memory_stays_bounded() -> None:
    """A 16 MB OpenBLAS DLL with 10,000 exports reads in a few MB (the block cache caps at 16 MB)."""
    import tracemalloc

    (path,) = wheel_binaries("scipy-openblas32", "win_amd64", (".dll",))
    tracemalloc.start()
    try:
        info = _pe.read(str(path))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert info.exports > 8192
    assert peak < 24 * 2**20, f"peak {peak / 2**20:.1f} MiB"


def test_huge_virtual_section_reads_as_zero_fill(tmp_path: Path) -> None:
    # A 4 GB VirtualSize over 512 bytes of file: tables in the zero fill end at
    # once (an all-zero descriptor), without allocating the section.
    import tracemalloc

    body = bytearray(0x200)
    path = tmp_path / "virtual.dll"
    path.write_bytes(_mini_pe(bytes(body), {1: (0x10000, 20)}, vsize=0xFFFF0000))
    tracemalloc.start()
    try:
        info = _pe.read(str(path))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert info.needed == [] == _pefile_facts(path)["needed"]
    assert peak < 8 * 2**20


def test_long_mangled_export_name_read_whole(tmp_path: Path) -> None:
    # mingw auto-exports C++ template names that can pass 4 KiB (pefile keeps
    # 512 bytes, lief rejects the name): the bytes written are the name read.
    long = b"_Z" + b"N" * 20000
    body = bytearray(0x100) + long + b"\0" + b"\xc3" * 16
    code = 0x1000 + 0x100 + len(long) + 1
    struct.pack_into(
        "<IIHHIIIIIII", body, 0, 0, 0, 0, 0, 0x1070, 1, 1, 1, 0x1040, 0x1050, 0x1060
    )
    struct.pack_into(
        "<I", body, 0x40, code
    )  # outside the export directory: not a forwarder
    struct.pack_into("<I", body, 0x50, 0x1100)
    body[0x70:0x78] = b"long.dl\0"
    path = tmp_path / "long.dll"
    path.write_bytes(_mini_pe(bytes(body), {0: (0x1000, 0x40)}))
    info = _pe.read(str(path))
    assert (
        info.export_names == {long.decode()}
        and info.exports == 1
        and info.soname == "long.dl"
    )


def test_aliases_share_a_function_slot(tmp_path: Path) -> None:
    # Two names, one function: NumberOfNames > NumberOfFunctions is legal.
    body = bytearray(0x100)
    struct.pack_into(
        "<IIHHIIIIIII", body, 0, 0, 0, 0, 0, 0x1070, 1, 1, 2, 0x1040, 0x1050, 0x1060
    )
    struct.pack_into("<I", body, 0x40, 0x10F0)
    struct.pack_into("<II", body, 0x50, 0x1080, 0x1088)
    struct.pack_into("<HH", body, 0x60, 0, 0)
    body[0x70:0x78] = b"alias.d\0"
    body[0x80:0x90] = b"first\0\0\0second\0\0"
    body[0xF0] = 0xC3
    path = tmp_path / "alias.dll"
    path.write_bytes(_mini_pe(bytes(body), {0: (0x1000, 0x40)}))
    info = _compare(path)  # pefile counts both names, as we do
    assert info.export_names == {"first", "second"} and info.exports == 2
