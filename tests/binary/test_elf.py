"""libbroker._binary on real system libraries, checked against readelf."""

from __future__ import annotations

import os
import pickle
import platform
import random
import shutil
import struct
import subprocess
import sys

import pytest

from libbroker._binary import (
    BinaryInfo,
    InvalidBinaryError,
    check_compatible,
    host_binary,
    host_glibc,
    is_linker_script,
    linker_script_targets,
    read_binary,
)
from libbroker._errors import IncompatibleLibraryError

LIBDIR = "/usr/lib/x86_64-linux-gnu"
LIBZ = os.path.join(LIBDIR, "libz.so.1")
LIBM_SCRIPT = os.path.join(LIBDIR, "libm.so")

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or not os.path.exists(LIBZ), reason="needs Debian x86-64 libraries"
)

needs_readelf = pytest.mark.skipif(shutil.which("readelf") is None, reason="readelf not installed")

# (library, a function it must export, the soname's expected prefix)
REAL_LIBS = [
    ("libz.so.1", "crc32"),
    ("libsqlite3.so.0", "sqlite3_open"),
    ("libcrypto.so.3", "EVP_DigestInit_ex"),
    ("libm.so.6", "cos"),
]


def _readelf(*args: str) -> str:
    return subprocess.run(["readelf", "-W", *args], check=True, capture_output=True, text=True).stdout


def _readelf_dynamic(path: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in _readelf("-d", path).splitlines():
        if "(" in line and "[" in line:
            tag = line.split("(", 1)[1].split(")", 1)[0]
            found.setdefault(tag, []).append(line.rsplit("[", 1)[1].rstrip("]"))
    return found


def _readelf_version_needs(path: str) -> dict[str, list[str]]:
    needs: dict[str, list[str]] = {}
    current = None
    in_section = False
    for line in _readelf("-V", path).splitlines():
        if line.startswith("Version needs section"):
            in_section = True
            continue
        if line.startswith("Version") and "section" in line:
            in_section = False
        if not in_section:
            continue
        if "File:" in line:
            current = needs.setdefault(line.split("File:")[1].split()[0], [])
        elif "Name:" in line and current is not None:
            current.append(line.split("Name:")[1].split()[0])
    return needs


def _readelf_functions(path: str) -> set[str]:
    names = set()
    for line in _readelf("--dyn-syms", path).splitlines():
        fields = line.split()
        if len(fields) < 8 or not fields[0].rstrip(":").isdigit():
            continue
        _, _, _, typ, bind, vis, ndx, name = fields[:8]
        if typ in ("FUNC", "IFUNC") and bind in ("GLOBAL", "WEAK") and vis in ("DEFAULT", "PROTECTED") and ndx != "UND":
            names.add(name.split("@")[0])
    return names


def _copy(tmp_path, name: str = "libx.so.1", src: str = LIBZ) -> str:
    dst = os.path.join(tmp_path, name)
    shutil.copyfile(src, dst)
    return dst


def _patch(path: str, offset: int, data: bytes) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


@needs_readelf
@pytest.mark.parametrize("name,function", REAL_LIBS)
def test_real_library_matches_readelf(name: str, function: str) -> None:
    path = os.path.join(LIBDIR, name)
    if not os.path.exists(path):
        pytest.skip(f"{path} not installed")
    info = read_binary(path)
    dynamic = _readelf_dynamic(path)
    assert info.format == "elf"
    assert info.elf_type == "shared"
    assert info.soname == dynamic["SONAME"][0]
    assert info.needed == dynamic.get("NEEDED", [])
    assert info.runpath == [d for v in dynamic.get("RUNPATH", []) for d in v.split(":")]
    assert info.machine == host_binary().machine
    assert info.machine_name == platform.machine()
    assert info.elf_class == struct.calcsize("P") * 8
    assert info.byte_order == sys.byteorder
    assert function in info.functions
    assert info.functions == _readelf_functions(path)
    needs = _readelf_version_needs(path)
    assert {k: sorted(v) for k, v in info.version_needs.items()} == {k: sorted(v) for k, v in needs.items()}
    glibc = [
        tuple(int(x) for x in v[6:].split(".")[:2])
        for names in needs.values()
        for v in names
        if v.startswith("GLIBC_2")
    ]
    assert info.glibc_required == max(glibc)
    assert check_compatible(info, host_binary()) is None


def test_functions_are_callable_names() -> None:
    # The oracle here is the library itself: what ctypes resolves, we list.
    import ctypes

    lib = ctypes.CDLL(LIBZ)
    info = read_binary(LIBZ)
    for name in sorted(info.functions):
        assert getattr(lib, name) is not None
    with pytest.raises(AttributeError):
        _ = lib.definitely_not_in_zlib
    assert "definitely_not_in_zlib" not in info.functions


def test_binary_info_has_slots() -> None:
    info = read_binary(LIBZ)
    assert isinstance(info, BinaryInfo)
    assert not hasattr(info, "__dict__")
    assert "libz.so.1" in repr(info)


def test_text_file(tmp_path) -> None:
    path = tmp_path / "libx.so"
    path.write_text("this is not a library\n")
    with pytest.raises(InvalidBinaryError) as exc:
        read_binary(str(path))
    assert isinstance(exc.value, IncompatibleLibraryError)
    assert exc.value.path == str(path)
    assert "text file" in exc.value.reason and "this is not a library" in exc.value.reason


def test_binary_garbage_and_empty_file(tmp_path) -> None:
    path = tmp_path / "libx.so"
    path.write_bytes(b"MZ\x90\x00" + bytes(range(60)))
    with pytest.raises(InvalidBinaryError, match=r"binary data starting with b'MZ"):
        read_binary(str(path))
    path.write_bytes(b"")
    with pytest.raises(InvalidBinaryError, match="empty file"):
        read_binary(str(path))


def test_truncated_elf(tmp_path) -> None:
    path = tmp_path / "libx.so"
    with open(LIBZ, "rb") as f:
        path.write_bytes(f.read(64))
    with pytest.raises(InvalidBinaryError) as exc:
        read_binary(str(path))
    assert "truncated" in exc.value.reason
    assert "64 bytes long" in exc.value.reason
    assert "program header" in exc.value.reason


def test_truncated_inside_symbol_table(tmp_path) -> None:
    path = _copy(tmp_path)
    os.truncate(path, 4096)
    with pytest.raises(InvalidBinaryError, match="truncated"):
        read_binary(path)


def test_foreign_machine(tmp_path) -> None:
    path = _copy(tmp_path)
    _patch(path, 18, struct.pack("<H", 183))
    info = read_binary(path)
    assert info.machine == 183 and info.machine_name == "aarch64"
    reason = check_compatible(info, host_binary())
    assert reason == "ELF machine 'aarch64' (183) but this interpreter is 'x86_64' (62)"


def test_32_bit_class(tmp_path) -> None:
    path = _copy(tmp_path)
    _patch(path, 4, b"\x01")
    info = read_binary(path)
    assert info.elf_class == 32
    assert check_compatible(info, host_binary()) == "32-bit ELF but this interpreter is 64-bit"


def test_unsupported_class_byte(tmp_path) -> None:
    path = _copy(tmp_path)
    _patch(path, 4, b"\x07")
    with pytest.raises(InvalidBinaryError, match="unsupported ELF class byte 7"):
        read_binary(path)


def test_big_endian_mismatch(tmp_path) -> None:
    path = _copy(tmp_path)
    _patch(path, 5, b"\x02")
    try:
        info = read_binary(path)
    except InvalidBinaryError:
        return  # byte-swapped offsets may point outside the file: also a fine answer
    assert info.byte_order == "big"
    assert "big-endian ELF" in check_compatible(info, host_binary())


def test_directory(tmp_path) -> None:
    path = tmp_path / "libx.so"
    path.mkdir()
    with pytest.raises(InvalidBinaryError, match="found a directory"):
        read_binary(str(path))


def test_dangling_symlink(tmp_path) -> None:
    path = tmp_path / "libx.so.1"
    path.symlink_to(tmp_path / "libx.so.1.2.3")
    with pytest.raises(InvalidBinaryError) as exc:
        read_binary(str(path))
    assert "dangling symbolic link" in exc.value.reason
    assert "libx.so.1.2.3" in exc.value.reason


def test_symlink_to_library_is_followed(tmp_path) -> None:
    path = tmp_path / "libx.so"
    path.symlink_to(LIBZ)
    assert read_binary(str(path)).soname == read_binary(LIBZ).soname


def test_fifo_does_not_hang(tmp_path) -> None:
    path = tmp_path / "libx.so"
    os.mkfifo(path)
    with pytest.raises(InvalidBinaryError, match="pipe"):
        read_binary(str(path))


def test_open_fails(tmp_path) -> None:
    # A path through a regular file: open() fails with ENOTDIR, even for root.
    path = os.path.join(_copy(tmp_path), "libx.so")
    with pytest.raises(InvalidBinaryError, match="cannot be opened: Not a directory"):
        read_binary(path)


def test_unreadable_file(tmp_path) -> None:
    path = _copy(tmp_path)
    os.chmod(path, 0)
    if os.geteuid() != 0:
        with pytest.raises(InvalidBinaryError, match="cannot be read"):
            read_binary(path)
        return
    # root reads anything: drop to nobody in a child so open() really gets EACCES.
    # Imports happen first: the interpreter's own files may be unreadable to nobody.
    code = (
        "import os, sys\n"
        "from libbroker._binary import read_binary, InvalidBinaryError\n"
        "os.setgid(65534); os.setuid(65534)\n"
        "try:\n    read_binary(sys.argv[1])\nexcept InvalidBinaryError as e:\n    print(e.reason)\n"
    )
    os.chmod(tmp_path, 0o755)
    parent = os.path.dirname(tmp_path)
    modes = []
    while parent != "/":  # pytest's base dir is 0700: let nobody reach the file
        modes.append((parent, os.stat(parent).st_mode & 0o7777))
        os.chmod(parent, modes[-1][1] | 0o111)
        parent = os.path.dirname(parent)
    try:
        out = subprocess.run(
            [sys.executable, "-c", code, path],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
    finally:
        for p, mode in modes:
            os.chmod(p, mode)
    assert out.returncode == 0, out.stderr
    assert "cannot be read: Permission denied" in out.stdout


def test_linker_script_libm() -> None:
    if not os.path.exists(LIBM_SCRIPT):
        pytest.skip("no libm.so linker script")
    assert is_linker_script(LIBM_SCRIPT)
    with open(LIBM_SCRIPT, "rb") as f:
        assert is_linker_script(f.read())
    targets = linker_script_targets(LIBM_SCRIPT)
    assert os.path.samefile(targets[0], os.path.join(LIBDIR, "libm.so.6"))
    assert all(os.path.isabs(t) for t in targets)
    assert not is_linker_script(LIBZ)
    assert linker_script_targets(LIBZ) == []
    with pytest.raises(InvalidBinaryError) as exc:
        read_binary(LIBM_SCRIPT)
    assert "GNU ld linker script" in exc.value.reason
    assert repr(targets[0]) in exc.value.reason
    assert "(missing)" not in exc.value.reason
    assert repr(targets[0]) in str(exc.value)  # the fix names the real library


def test_linker_script_pointing_nowhere(tmp_path) -> None:
    path = tmp_path / "libx.so"
    path.write_text('/* GNU ld script */\nOUTPUT_FORMAT(elf64-x86-64)\nINPUT ( /nonexistent/libx.so.1 "sp ace.so" -lfoo )\n')
    assert is_linker_script(str(path))
    assert linker_script_targets(str(path)) == ["/nonexistent/libx.so.1", "sp ace.so", "-lfoo"]
    with pytest.raises(InvalidBinaryError) as exc:
        read_binary(str(path))
    assert "'/nonexistent/libx.so.1' (missing)" in exc.value.reason


def test_plain_text_is_not_a_linker_script(tmp_path) -> None:
    path = tmp_path / "libx.so"
    path.write_text("GROUPS of people\n")
    assert not is_linker_script(str(path))
    assert not is_linker_script(b"\x7fELF\x02\x01\x01")


def test_glibc_too_new(tmp_path) -> None:
    path = _copy(tmp_path)
    with open(path, "rb") as f:
        data = f.read()
    original = read_binary(path).glibc_required
    old = b"GLIBC_%d.%d\0" % original
    assert old in data
    _patch(path, data.index(old), b"GLIBC_9.99\0")
    info = read_binary(path)
    assert info.glibc_required == (9, 99)
    libc, version = platform.libc_ver()
    assert libc == "glibc"
    assert host_glibc() == tuple(int(x) for x in version.split(".")[:2])
    assert check_compatible(info, host_binary()) == f"needs GLIBC_9.99 but this system has glibc {version}"
    assert check_compatible(info, host_binary(), glibc=(10, 0)) is None


def test_host_binary() -> None:
    host = host_binary()
    assert host is host_binary()  # cached
    assert host.machine_name == platform.machine()
    assert host.elf_class == struct.calcsize("P") * 8
    assert host.byte_order == sys.byteorder
    assert os.path.samefile(host.path, "/proc/self/exe")


def test_error_pickles(tmp_path) -> None:
    path = tmp_path / "libx.so"
    path.write_text("hello\n")
    with pytest.raises(InvalidBinaryError) as exc:
        read_binary(str(path))
    again = pickle.loads(pickle.dumps(exc.value))
    assert type(again) is InvalidBinaryError and str(again) == str(exc.value)


def test_corrupt_copies_never_crash(tmp_path) -> None:
    with open(LIBZ, "rb") as f:
        data = f.read()
    rng = random.Random(1234)
    path = tmp_path / "libx.so"
    for _ in range(300):
        mutated = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            pos = rng.randrange(0, 4096)  # headers, dynamic tables, hash tables
            mutated[pos] = rng.randrange(256)
        path.write_bytes(bytes(mutated[: rng.choice([len(mutated), rng.randrange(16, len(mutated))])]))
        try:
            read_binary(str(path))
        except InvalidBinaryError:
            pass


def test_no_heavy_imports() -> None:
    code = (
        "import sys, libbroker; before = set(sys.modules)\n"
        "import libbroker._binary\n"
        "print(sorted({'re', 'typing', 'dataclasses'} & (set(sys.modules) - before)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_large_openblas_reads_only_its_dynamic_tables(monkeypatch) -> None:
    """A 20+ MB library is judged from its headers and dynamic tables, not its code: the
    bytes the reader asks for stay within the sizes readelf gives for those sections (a
    deterministic measure; the wall time is measured in benchmarks/, never asserted)."""
    scipy_openblas32 = pytest.importorskip("scipy_openblas32")
    from libbroker._binary import _elf

    lib_dir = scipy_openblas32.get_lib_dir()
    path = next(os.path.join(lib_dir, n) for n in os.listdir(lib_dir) if ".so" in n)
    asked: list[int] = []
    real_read = _elf._Reader.read

    def counting(self, offset: int, length: int, what: str) -> bytes:
        asked.append(length)
        return real_read(self, offset, length, what)

    monkeypatch.setattr(_elf._Reader, "read", counting)
    info = read_binary(path)
    assert "scipy_openblas_get_config" in info.functions
    assert len(info.functions) > 1000
    sections = subprocess.run(["readelf", "-SW", path], capture_output=True, text=True,
                              check=True).stdout
    needed = 0
    for line in sections.splitlines():
        fields = line.replace("[ ", "[").split()
        if len(fields) > 5 and fields[2] in ("GNU_HASH", "HASH", "DYNSYM", "VERSYM", "VERNEED",
                                             "VERDEF", "DYNAMIC") or fields[1:2] == [".dynstr"]:
            needed += int(fields[5], 16)
    size = os.path.getsize(path)
    assert needed and size > 20 * needed  # the code is most of the file
    assert sum(asked) <= needed + (64 << 10), (sum(asked), needed, size)  # + headers


def _readelf_verdefs(path: str) -> set[str]:
    """Version definition names, as binutils' readelf -V prints them (the oracle)."""
    out = subprocess.run(["readelf", "-V", "-W", path], capture_output=True, text=True, check=True).stdout
    names, inside = set(), False
    for line in out.splitlines():
        if line.startswith("Version definition section"):
            inside = True
            continue
        if inside and (line.startswith(("Version needs section", "Version symbols section"))):
            break
        if inside and "Name:" in line:
            names.add(line.split("Name:", 1)[1].split()[0])
    return names


@pytest.mark.skipif(shutil.which("readelf") is None, reason="needs binutils' readelf")
@pytest.mark.parametrize("soname", ["libc.so.6", "libstdc++.so.6", "libz.so.1", "libcrypto.so.3", "libgcc_s.so.1"])
def test_version_defs_match_readelf(soname: str) -> None:
    path = os.path.join(LIBDIR, soname)
    if not os.path.exists(path):
        pytest.skip(f"{soname} is not installed")
    info = read_binary(path)
    assert set(info.version_defs) == _readelf_verdefs(path)
    if soname == "libstdc++.so.6":
        assert "GLIBCXX_3.4.21" in info.version_defs and "CXXABI_1.3" in info.version_defs


def test_common_attributes_and_inspect_dict() -> None:
    info = read_binary(LIBZ)
    assert info.bits == 64 and info.kind == "shared" and info.libc == "glibc"
    assert info.exports == len(info.functions) > 50
    data = info.inspect_dict()
    assert data["format"] == "ELF" and data["machine"] == "x86_64" and data["soname"] == "libz.so.1"
    assert data["needed"] == ["libc.so.6"] and data["rpath"] == [] and data["runpath"] == []
    assert data["min_os"] is None and data["slices"] == []
    exe = read_binary(os.path.realpath(sys.executable))
    assert exe.kind == "executable"


@pytest.mark.skipif(shutil.which("musl-gcc") is None, reason="needs musl-gcc (musl-tools)")
def test_musl_flavour(tmp_path) -> None:
    src = tmp_path / "m.c"
    src.write_text("int m(void){return 1;}\n")
    out = tmp_path / "libm1.so"
    subprocess.run(["musl-gcc", "-shared", "-fPIC", "-o", str(out), str(src)], check=True)
    assert read_binary(str(out)).libc == "musl"


@pytest.mark.skipif(not os.path.exists("/proc/self/mem"), reason="Linux /proc")
def test_regular_file_whose_reads_fail_is_reported(tmp_path) -> None:
    # /proc/self/mem is a "regular file" of size 0 whose read at offset 0 fails with EIO.
    with pytest.raises(InvalidBinaryError, match="cannot be examined: Input/output error"):
        read_binary("/proc/self/mem")


@needs_readelf
def test_read_soname_matches_readelf_on_every_mapped_object(tmp_path) -> None:
    """`_elf.read_soname` (the dynamic section and one string only) gives readelf's SONAME
    for every object this process maps (libpython, libc, extension modules...), and
    refuses what read_binary refuses."""
    from libbroker import _master
    from libbroker._binary._elf import read_soname

    paths = {p for p, _ in _master.loaded_objects() if os.path.isabs(p)}
    assert len(paths) >= 3
    for path in sorted(paths):
        expected = _readelf_dynamic(path).get("SONAME", [None])[0]
        assert read_soname(path) == expected, path
    (tmp_path / "notelf.so").write_text("GROUP ( libc.so.6 )\n")
    with pytest.raises(InvalidBinaryError):
        read_soname(str(tmp_path / "notelf.so"))
    real = os.path.realpath(LIBZ)
    cut = tmp_path / "libcut.so"
    cut.write_bytes(open(real, "rb").read()[:200])  # headers only: the dynamic section is gone
    with pytest.raises(InvalidBinaryError):
        read_soname(str(cut))
