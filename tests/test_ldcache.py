"""libbroker._ldcache against the real /etc/ld.so.cache and `ldconfig -p`."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from libbroker._binary import read_binary
from libbroker._ldcache import entries_for_host, host_flags, read_ld_cache

CACHE = "/etc/ld.so.cache"
LDCONFIG = shutil.which("ldconfig") or ("/sbin/ldconfig" if os.path.exists("/sbin/ldconfig") else None)

pytestmark = pytest.mark.skipif(
    not os.path.exists(CACHE) or LDCONFIG is None, reason="needs glibc's ld.so.cache and ldconfig"
)

def _ldconfig_p(cache: str = CACHE) -> list[tuple[str, str, str]]:
    out = subprocess.run([LDCONFIG, "-p", "-C", cache], capture_output=True, text=True, check=True).stdout
    rows = []
    for line in out.splitlines()[1:]:
        if "=>" not in line:
            continue
        left, path = line.split("=>", 1)
        key, _, flags = left.strip().partition(" (")
        rows.append((key, path.strip(), flags.rstrip(") ")))
    return rows


def test_matches_ldconfig() -> None:
    ours = read_ld_cache()
    theirs = _ldconfig_p()
    assert ours, "the cache is empty"
    assert [(k, p) for k, p, _ in ours] == [(k, p) for k, p, _ in theirs]
    # ldconfig -p spells the flags out (elf/cache.c print_entry).
    words = {0x0303: "libc6,x86-64", 0x0003: "libc6", 0x0A03: "libc6,AArch64", 0x0803: "libc6,x32"}
    for (_, _, flags), (_, _, printed) in zip(ours, theirs):
        if flags in words:
            assert printed.split(",")[:2] == words[flags].split(",")


@pytest.mark.parametrize("soname", ["libz.so.1", "libsqlite3.so.0"])
def test_real_entries_exist(soname: str) -> None:
    entries = [e for e in read_ld_cache() if e[0] == soname]
    if not entries:
        pytest.skip(f"{soname} not in the cache")
    for key, path, _ in entries:
        assert os.path.isfile(path)
        assert read_binary(path).soname == key


def test_entries_for_host() -> None:
    host = entries_for_host()
    assert host
    assert host_flags() == 0x0303  # this machine: x86-64 libc6
    all_entries = read_ld_cache()
    assert set(host) <= {(k, p) for k, p, _ in all_entries}
    assert {k for k, _ in host} >= {"libc.so.6", "libz.so.1"}
    for key, path in host:
        if os.path.isfile(path) and key.startswith("libz."):
            assert read_binary(path).elf_class == 64


@pytest.mark.parametrize("fmt", ["old", "compat", "new"])
def test_formats_written_by_ldconfig(tmp_path, fmt: str) -> None:
    # ldconfig writes the same directories' cache in each layout; every one
    # must read back as ldconfig -p prints it.
    libdir = tmp_path / "lib"
    libdir.mkdir()
    shutil.copyfile("/usr/lib/x86_64-linux-gnu/libz.so.1", libdir / "libz.so.1")
    conf = tmp_path / "ld.so.conf"
    conf.write_text(f"{libdir}\n")
    cache = tmp_path / f"{fmt}.cache"
    subprocess.run(
        [LDCONFIG, "-X", "-i", "-c", fmt, "-f", str(conf), "-C", str(cache)],
        check=True,
        capture_output=True,
    )
    with open(cache, "rb") as f:
        magic = f.read(20)
    assert magic.startswith(b"glibc-ld.so.cache1.1" if fmt == "new" else b"ld.so-1.7.0")
    ours = read_ld_cache(str(cache))
    assert [(k, p) for k, p, _ in ours] == [(k, p) for k, p, _ in _ldconfig_p(str(cache))]
    assert ("libz.so.1", str(libdir / "libz.so.1")) in entries_for_host(str(cache))


def test_old_format_part_of_compat_cache(tmp_path) -> None:
    # A compat cache whose new part is damaged falls back to the old table.
    conf = tmp_path / "ld.so.conf"
    conf.write_text("")
    cache = tmp_path / "compat.cache"
    subprocess.run(
        [LDCONFIG, "-X", "-i", "-c", "compat", "-f", str(conf), "-C", str(cache)], check=True, capture_output=True
    )
    data = bytearray(cache.read_bytes())
    new_at = data.index(b"glibc-ld.so.cache1.1")
    data[new_at] = ord("X")
    cache.write_bytes(bytes(data))
    ours = read_ld_cache(str(cache))
    assert ours
    assert [(k, p) for k, p, _ in ours] == [(k, p) for k, p, _ in _ldconfig_p(str(cache))]


def test_missing_and_corrupt(tmp_path) -> None:
    assert read_ld_cache(str(tmp_path / "nope")) == []
    assert entries_for_host(str(tmp_path / "nope")) == []
    bad = tmp_path / "bad.cache"
    bad.write_bytes(b"not a cache at all")
    assert read_ld_cache(str(bad)) == []
    with open(CACHE, "rb") as f:
        data = f.read()
    for cut in (10, 30, 60, len(data) // 2):
        bad.write_bytes(data[:cut])
        result = read_ld_cache(str(bad))
        assert isinstance(result, list)
    # A string offset past the end: nothing half-read is returned.
    bad.write_bytes(data[:48] + b"\x03\x03\x00\x00" + b"\xff\xff\xff\x7f" * 2 + data[60:])
    assert read_ld_cache(str(bad)) == []
    assert read_ld_cache(str(tmp_path)) == []  # a directory


def _ld_so_supported_hwcaps() -> list[str] | None:
    """The oracle: glibc-hwcaps subdirectories ld.so itself says it searches (`ld.so --help`)."""
    interp = next((p for p in ("/lib64/ld-linux-x86-64.so.2", "/lib/ld-linux-aarch64.so.1") if os.path.exists(p)), None)
    if interp is None:
        return None
    out = subprocess.run([interp, "--help"], capture_output=True, text=True, check=False).stdout
    names, inside = [], False
    for line in out.splitlines():
        if line.startswith("Subdirectories of glibc-hwcaps"):
            inside = True
            continue
        if inside:
            if not line.startswith("  "):
                break
            name, _, state = line.strip().partition(" ")
            if "supported" in state and "not supported" not in state:
                names.append(name.rstrip(":"))
    return names


def test_supported_hwcaps_match_ld_so() -> None:
    from libbroker._ldcache import supported_hwcaps

    theirs = _ld_so_supported_hwcaps()
    if theirs is None:
        pytest.skip("no ld.so --help on this machine")
    assert sorted(supported_hwcaps()) == sorted(theirs)


def test_hwcaps_and_platform_entries_kept(tmp_path) -> None:
    # r08: entries under glibc-hwcaps/<level>/ and legacy platform directories are what
    # ld.so uses; a cache written by `ldconfig -C FILE -f CONF` holds them.
    from libbroker._ldcache import supported_hwcaps

    src = tmp_path / "f.c"
    src.write_text("int f(void){return 1;}\n")
    levels = ["x86-64-v2", "x86-64-v3", "x86-64-v4"]
    lib = tmp_path / "lib"
    for sub in [*(f"glibc-hwcaps/{level}" for level in levels), ""]:
        (lib / sub).mkdir(parents=True, exist_ok=True)
        subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(lib / sub / "libhwonly.so.1"), str(src),
                        "-Wl,-soname,libhwonly.so.1"], check=True)
    platform_dir = tmp_path / "ocl" / "lib" / "x86_64"
    platform_dir.mkdir(parents=True)
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(platform_dir / "libocl.so.1"), str(src),
                    "-Wl,-soname,libocl.so.1"], check=True)
    conf = tmp_path / "ld.so.conf"
    conf.write_text(f"{lib}\n{platform_dir}\n")
    cache = tmp_path / "hw.cache"
    subprocess.run([LDCONFIG, "-X", "-f", str(conf), "-C", str(cache)], check=True, capture_output=True)
    listed = _ldconfig_p(str(cache))
    assert any("libhwonly.so.1" == k and "x86-64-v3" in p for k, p, _ in listed)
    ours = [(k, p) for k, p in entries_for_host(str(cache)) if k in ("libhwonly.so.1", "libocl.so.1")]
    assert ("libocl.so.1", str(platform_dir / "libocl.so.1")) in ours
    hw = [p for k, p in ours if k == "libhwonly.so.1"]
    supported = supported_hwcaps()
    expected = [str(lib / "glibc-hwcaps" / level / "libhwonly.so.1") for level in supported if level in levels]
    assert hw == [*expected, str(lib / "libhwonly.so.1")]  # best level first, baseline last


def test_targeted_lookups_match_the_full_parse() -> None:
    # entries_for_link / paths_for_soname decode only the entries asked for; on the
    # real cache they must give exactly the filtered full parse, in the same order.
    from libbroker import _ldcache
    from libbroker._discovery import matches_link_name

    full = _ldcache._entries_for_host(_ldcache.LD_SO_CACHE)
    sonames = sorted({k for k, _ in full})
    assert sonames
    for soname in sonames:
        assert _ldcache.paths_for_soname(soname) == [v for k, v in full if k == soname], soname
    links = {k[3:].partition(".so")[0] for k in sonames if k.startswith("lib")}
    for name in sorted(links):
        expected = [(k, v) for k, v in full if matches_link_name(k, name)]
        assert _ldcache.entries_for_link(name, lambda k, n=name: matches_link_name(k, n)) == expected
    for whole in sonames[:50]:  # a file name given whole matches itself (find("libz.so.1"))
        expected = [(k, v) for k, v in full if matches_link_name(k, whole)]
        assert _ldcache.entries_for_link(whole, lambda k, n=whole: matches_link_name(k, n)) == expected
    assert _ldcache.paths_for_soname("libsurely-absent.so.9") == []
