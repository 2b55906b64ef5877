"""Tests of the compiled master module on real system libraries.

Oracles: Python's zlib and sqlite3, ctypes (its own dlopen error text), readelf
symbol values and /proc/self/maps.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import threading
import zlib
from pathlib import Path

import pytest

from libbroker import _master

LIBDIR = Path("/usr/lib/x86_64-linux-gnu")
LIBZ = LIBDIR / "libz.so.1"
LIBSQLITE = LIBDIR / "libsqlite3.so.0"
LIBCRYPTO = LIBDIR / "libcrypto.so.3"

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux loader")

CRC32 = ctypes.CFUNCTYPE(ctypes.c_ulong, ctypes.c_ulong, ctypes.c_char_p, ctypes.c_uint)


def need(path: Path) -> str:
    if not path.exists():
        pytest.skip(f"{path} is not installed")
    return str(path)


@pytest.fixture
def libz_copy(tmp_path: Path) -> str:
    """A libz the process has certainly not mapped yet (a new file identity)."""
    copy = tmp_path / "libzcopy.so.1"
    shutil.copyfile(need(LIBZ), copy)
    return str(copy)


def mapped_files() -> dict[str, set[int]]:
    """realpath -> start addresses of its offset-0 mappings, from /proc/self/maps."""
    result: dict[str, set[int]] = {}
    for line in Path("/proc/self/maps").read_text().splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and fields[5].startswith("/") and int(fields[2], 16) == 0:
            start = int(fields[0].split("-")[0], 16)
            result.setdefault(os.path.realpath(fields[5]), set()).add(start)
    return result


def exported_functions(path: str) -> dict[str, int]:
    """Default-version defined functions -> st_value, from readelf."""
    try:
        out = subprocess.run(
            ["readelf", "--dyn-syms", "-W", path], check=True, capture_output=True, text=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("readelf is not available")
    functions: dict[str, int] = {}
    for line in out.splitlines():
        fields = line.split()
        # Num: Value Size Type Bind Vis Ndx Name
        if len(fields) < 8 or fields[3] != "FUNC" or fields[6] == "UND":
            continue
        if fields[4] not in ("GLOBAL", "WEAK") or fields[5] != "DEFAULT":
            continue
        name = fields[7]
        if "@" in name and "@@" not in name:
            continue  # a non-default version: dlsym answers with the default one
        functions[name.split("@", 1)[0]] = int(fields[1], 16)
    return functions


def test_constants_match_header() -> None:
    header = (Path(__file__).parent.parent / "include" / "libbroker.h").read_text()
    assert f"#define LIBBROKER_ABI_MAJOR {_master.ABI_MAJOR}\n" in header
    assert f"#define LIBBROKER_ABI_MINOR {_master.ABI_MINOR}\n" in header
    assert f"#define LIBBROKER_TABLE_MAGIC 0x{_master.TABLE_MAGIC:08X}u" in header
    assert _master.TABLE_MAGIC.to_bytes(4, "little") == b"LBRK"


def test_dlsym_crc32_matches_zlib() -> None:
    handle = _master.dlopen(need(LIBZ))
    assert handle != 0
    assert _master.dlopen(str(LIBZ)) == handle
    address = _master.dlsym(handle, "crc32")
    assert address != 0
    assert _master.dlsym(handle, b"crc32") == address
    crc32 = CRC32(address)
    rng = random.Random(1234)
    for size in (0, 1, 7, 4096, 100_003):
        data = rng.randbytes(size)
        assert crc32(0, data, len(data)) == zlib.crc32(data)


def test_dlsym_absent_and_bad_input() -> None:
    handle = _master.dlopen(need(LIBZ))
    assert _master.dlsym(handle, "no_such_function_in_zlib") == 0
    with pytest.raises(ValueError, match="handle is 0"):
        _master.dlsym(0, "crc32")  # would be RTLD_DEFAULT: a global lookup
    with pytest.raises(ValueError, match="NUL"):
        _master.dlsym(handle, "crc32\0junk")
    with pytest.raises(TypeError):
        _master.dlsym(handle, 42)
    with pytest.raises(OverflowError):
        _master.dlsym(-1, "crc32")


def test_noload_and_loaded_objects(libz_copy: str) -> None:
    assert _master.noload(libz_copy) == 0
    assert all(not os.path.samefile(path, libz_copy) for path, _ in _master.loaded_objects())
    handle = _master.dlopen(libz_copy)
    assert _master.noload(libz_copy) == handle
    bases = [base for path, base in _master.loaded_objects() if path == libz_copy]
    assert len(bases) == 1
    assert bases[0] in mapped_files()[os.path.realpath(libz_copy)]
    # Its own copy of the code, not the libz the process already had.
    crc_copy = _master.dlsym(handle, "crc32")
    assert crc_copy != _master.dlsym(_master.dlopen(str(LIBZ)), "crc32")
    assert bases[0] <= crc_copy < bases[0] + os.path.getsize(libz_copy) + (1 << 20)


def test_loaded_objects_follow_dlopen_dlclose_and_renames(tmp_path: Path) -> None:
    # The list is read again when the loader's generation moves (dlpi_adds/dlpi_subs) and
    # when libbroker renames an object: each answer still agrees with /proc/self/maps.
    copy = str(tmp_path / "libzgen.so.1")
    shutil.copy2(need(LIBZ), copy)

    def listed() -> list[str]:
        objects = _master.loaded_objects()
        maps = mapped_files()
        assert all(base in maps[os.path.realpath(path)] for path, base in objects)
        return [path for path, _ in objects]

    before = listed()
    assert copy not in before and listed() == before
    handle = _master.dlopen(copy)
    assert copy in listed()
    _master.dlclose(handle)
    assert copy not in listed()
    from libbroker import _loader

    library = _loader.load_file(copy)  # mapped as /proc/self/fd/N, then renamed
    names = listed()
    assert copy in names and not any(n.startswith("/proc/self/fd/") for n in names)
    assert library.path == copy


def test_loaded_objects_agree_with_proc_maps() -> None:
    _master.dlopen(need(LIBZ))
    objects = _master.loaded_objects()
    maps = mapped_files()
    assert objects
    for path, base in objects:
        assert os.path.isabs(path), path
        assert base in maps[os.path.realpath(path)], (path, hex(base))
    libz = os.path.realpath(LIBZ)
    assert any(os.path.realpath(path) == libz for path, _ in objects)


@pytest.mark.parametrize("kind", ["missing", "text", "truncated", "directory"])
def test_dlopen_failure_gives_dlerror_text(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "libbad.so"
    if kind == "text":
        path.write_text("GROUP ( /lib/libc.so.6 )\n")
    elif kind == "truncated":
        path.write_bytes(Path(need(LIBZ)).read_bytes()[:200])
    elif kind == "directory":
        path.mkdir()
    with pytest.raises(OSError) as ours:
        _master.dlopen(str(path))
    with pytest.raises(OSError) as theirs:
        ctypes.CDLL(str(path))  # ctypes raises OSError(dlerror())
    assert ours.value.errno == 0
    assert ours.value.filename == str(path)
    assert ours.value.strerror == str(theirs.value)
    assert str(path) in ours.value.strerror
    assert _master.noload(str(path)) == 0


def test_dlopen_rejects_paths_c_cannot_take() -> None:
    with pytest.raises(ValueError, match="empty"):
        _master.dlopen("")  # dlopen("") is the main program
    with pytest.raises(ValueError, match="NUL"):
        _master.dlopen(str(LIBZ) + "\0.txt")
    with pytest.raises(TypeError):
        _master.dlopen(None)


RTLD_LOCAL_SCRIPT = r"""
import ctypes, json, os, sys
from libbroker import _master
path = sys.argv[1]
real = os.path.realpath(path)
report = {"sqlite3_imported": "sqlite3" in sys.modules or "_sqlite3" in sys.modules,
          "mapped_before": any(os.path.realpath(p) == real for p, _ in _master.loaded_objects()),
          "noload_before": _master.noload(path)}
handle = _master.dlopen(path)
address = _master.dlsym(handle, "sqlite3_libversion")
report["found"] = address != 0
report["noload_after"] = _master.noload(path) == handle
report["global_sees_it"] = hasattr(ctypes.CDLL(None), "sqlite3_libversion")
report["version"] = _master.call_version_function(address).decode()
ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)  # control: what RTLD_GLOBAL would have done
report["global_sees_it_after_rtld_global"] = hasattr(ctypes.CDLL(None), "sqlite3_libversion")
import sqlite3
report["oracle_version"] = sqlite3.sqlite_version
print(json.dumps(report))
"""


def test_rtld_local_in_fresh_process() -> None:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run(
        [sys.executable, "-c", RTLD_LOCAL_SCRIPT, need(LIBSQLITE)],
        check=True, capture_output=True, text=True, env=env,
    ).stdout
    report = json.loads(out)
    assert report["sqlite3_imported"] is False
    assert report["mapped_before"] is False
    assert report["noload_before"] == 0
    assert report["found"] is True
    assert report["noload_after"] is True
    assert report["global_sees_it"] is False
    assert report["global_sees_it_after_rtld_global"] is True
    assert report["version"] == report["oracle_version"]


def test_call_version_function() -> None:
    handle = _master.dlopen(need(LIBZ))
    assert _master.call_version_function(_master.dlsym(handle, "zlibVersion")) == (
        zlib.ZLIB_RUNTIME_VERSION.encode()
    )
    with pytest.raises(ValueError):
        _master.call_version_function(0)


def test_call_version_function_null_and_long_text() -> None:
    text = ctypes.create_string_buffer(b"v" * 10_000)
    results = {"null": None, "long": ctypes.addressof(text)}
    for kind, value in results.items():
        callback = ctypes.CFUNCTYPE(ctypes.c_void_p)(lambda value=value: value)
        got = _master.call_version_function(ctypes.cast(callback, ctypes.c_void_p).value)
        assert got == (None if kind == "null" else b"v" * 4096)


def layout_digest(signatures: list[str]) -> int:
    text = f"{_master.ABI_MAJOR}\n" + "\n".join(signatures)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")


class Header(ctypes.Structure):
    """libbroker_table_header as include/libbroker.h lays it out."""

    _fields_ = [
        ("magic", ctypes.c_uint32),
        ("abi_major", ctypes.c_uint16),
        ("abi_minor", ctypes.c_uint16),
        ("header_size", ctypes.c_uint32),
        ("slot_count", ctypes.c_uint32),
        ("layout_digest", ctypes.c_uint64),
        ("name", ctypes.c_char_p),
        ("library_path", ctypes.c_char_p),
        ("library_version", ctypes.c_char_p),
        ("slot_signatures", ctypes.POINTER(ctypes.c_char_p)),
    ]


def test_make_table_round_trip() -> None:
    handle = _master.dlopen(need(LIBZ))
    signatures = [
        "crc32: unsigned long (unsigned long, const unsigned char *, unsigned int)",
        "adler32: unsigned long (unsigned long, const unsigned char *, unsigned int)",
        "deflateNotThere: int (void)",
        "zlibVersion: const char *(void)",
    ]
    names = [s.split(":")[0].encode() for s in signatures]
    addresses = _master.lookup_many(handle, names)
    assert addresses[2] == 0 and all(addresses[i] for i in (0, 1, 3))
    digest = layout_digest(signatures)
    version = zlib.ZLIB_RUNTIME_VERSION
    capsule = _master.make_table("zlib", digest, str(LIBZ), version, signatures, addresses)

    get_name = ctypes.pythonapi.PyCapsule_GetName
    get_name.restype, get_name.argtypes = ctypes.c_char_p, [ctypes.py_object]
    assert get_name(capsule) == b"libbroker.table.zlib"
    get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
    get_pointer.restype, get_pointer.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    address = _master.table_address(capsule)
    assert get_pointer(capsule, b"libbroker.table.zlib") == address

    assert _master.table_info(capsule) == {
        "magic": _master.TABLE_MAGIC,
        "abi_major": _master.ABI_MAJOR,
        "abi_minor": _master.ABI_MINOR,
        "header_size": ctypes.sizeof(Header),
        "slot_count": 4,
        "layout_digest": digest,
        "name": "zlib",
        "library_path": str(LIBZ),
        "library_version": version,
        "signatures": signatures,
        "slots": addresses,
    }
    # Read the raw memory as a C consumer would, independently of table_info.
    header = Header.from_address(address)
    assert (header.magic, header.slot_count, header.layout_digest) == (
        _master.TABLE_MAGIC, 4, digest)
    assert header.library_path == str(LIBZ).encode()
    assert [header.slot_signatures[i].decode() for i in range(4)] == signatures
    slots = (ctypes.c_void_p * 4).from_address(address + header.header_size)
    assert [slot or 0 for slot in slots] == addresses
    data = os.urandom(1000)
    assert CRC32(slots[0])(0, data, len(data)) == zlib.crc32(data)

    again = _master.make_table("zlib", digest, str(LIBZ), version, signatures, addresses)
    assert _master.table_address(again) != address  # a new block; sharing is _tables' job


def test_make_table_empty() -> None:
    capsule = _master.make_table("empty", 0, "/x", "", [], [])
    info = _master.table_info(capsule)
    assert (info["slot_count"], info["signatures"], info["slots"]) == (0, [], [])


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        (("zlib", 0, "/x", "", ["a: int (void)"], []), ValueError, "1 signatures but 0"),
        (("", 0, "/x", "", [], []), ValueError, "identifier"),
        (("1zlib", 0, "/x", "", [], []), ValueError, "identifier"),
        (("z-lib", 0, "/x", "", [], []), ValueError, "identifier"),
        (("zlïb", 0, "/x", "", [], []), ValueError, "identifier"),
        (("z" * 112, 0, "/x", "", [], []), ValueError, "at most 111"),
        (("zlib", -1, "/x", "", [], []), ValueError, "64-bit"),
        (("zlib", 1 << 64, "/x", "", [], []), ValueError, "64-bit"),
        (("zlib", 0, "/x", "", ["a\0b"], [0]), ValueError, "NUL"),
        (("zlib", 0, "/x\0y", "", [], []), ValueError, "NUL"),
        (("zlib", 0, "/x", "", ["a: int (void)"], [-5]), ValueError, "slot 0"),
        (("zlib", 0, "/x", "", ["a: int (void)"], ["0x10"]), ValueError, "slot 0"),
        ((b"zlib", 0, "/x", "", [], []), TypeError, "str"),
        (("zlib", 0, "/x", "", [7], [0]), TypeError, "slot 0 must be str or bytes"),
        (("zlib", 0, "/x", "", ["a: int (void)", b"b\0"], [0, 0]), ValueError, "slot 1"),
    ],
)
def test_make_table_validates(args: tuple, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        _master.make_table(*args)


def test_make_table_takes_str_and_bytes_signatures_alike() -> None:
    # str signatures are read as UTF-8 in place by build_table; bytes as they are.
    sigs = ["a: int (void)", b"b: void (int)", "c: const char *(void)"]
    capsule = _master.make_table("mixed", 7, "/x", "1.0", sigs, [1, 2, 3])
    info = _master.table_info(capsule)
    assert info["signatures"] == ["a: int (void)", "b: void (int)", "c: const char *(void)"]


def test_table_functions_refuse_other_objects() -> None:
    import datetime  # noqa: F401  (its C API capsule: a capsule that is not a table)

    with pytest.raises(TypeError, match="not a libbroker table"):
        _master.table_address(sys.modules["datetime"].datetime_CAPI)
    with pytest.raises(TypeError):
        _master.table_info(object())


def test_lookup_many_matches_dlsym_and_readelf() -> None:
    path = need(LIBCRYPTO)
    functions = exported_functions(path)
    assert len(functions) > 1500
    names = [name.encode() for name in functions]
    handle = _master.dlopen(path)
    found = _master.lookup_many(handle, names)
    assert found == [_master.dlsym(handle, name) for name in names]
    bases = [b for p, b in _master.loaded_objects() if os.path.samefile(p, path)]
    assert len(bases) == 1
    assert found == [bases[0] + value for value in functions.values()]


def test_lookup_many_inputs() -> None:
    handle = _master.dlopen(need(LIBZ))
    assert _master.lookup_many(handle, []) == []
    crc = _master.dlsym(handle, "crc32")
    assert _master.lookup_many(handle, ("crc32", b"crc32", b"nope")) == [crc, crc, 0]
    assert _master.lookup_many(handle, iter([b"crc32"])) == [crc]
    with pytest.raises(ValueError, match="NUL"):
        _master.lookup_many(handle, [b"crc32", b"crc32\0x"])
    with pytest.raises(TypeError):
        _master.lookup_many(handle, [b"crc32", 3])
    with pytest.raises(ValueError):
        _master.lookup_many(0, [b"crc32"])


def test_32_threads_at_once(tmp_path: Path) -> None:
    path = need(LIBCRYPTO)
    names = [name.encode() for name in exported_functions(path)][:2000]
    copy = tmp_path / "libzthreads.so.1"  # first loaded by the threads themselves
    shutil.copyfile(need(LIBZ), copy)
    barrier = threading.Barrier(32)
    results: list[object] = [None] * 32

    def work(index: int) -> None:
        barrier.wait()
        try:
            if index % 4 == 3:
                # Each thread must get its own dlerror text, not a neighbour's.
                missing = str(tmp_path / f"missing{index}.so")
                try:
                    _master.dlopen(missing)
                except OSError as exc:
                    results[index] = ("error", missing in exc.strerror, exc.filename == missing)
                return
            zhandle = _master.dlopen(str(copy))
            handle = _master.dlopen(path)
            results[index] = (
                "ok", zhandle, handle, _master.lookup_many(handle, names),
                _master.dlsym(zhandle, "crc32"), len(_master.loaded_objects()) > 0,
            )
        except BaseException as exc:  # reported below, in the main thread
            results[index] = exc

    threads = [threading.Thread(target=work, args=(i,)) for i in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    errors = [r for r in results if isinstance(r, tuple) and r[0] == "error"]
    oks = [r for r in results if isinstance(r, tuple) and r[0] == "ok"]
    assert errors == [("error", True, True)] * 8, results
    assert len(oks) == 24, results
    assert all(r == oks[0] for r in oks)
    handle = _master.dlopen(path)
    assert oks[0][3] == _master.lookup_many(handle, names)
    assert oks[0][4] == _master.dlsym(_master.noload(str(copy)), "crc32") != 0
