"""Bad input in the search path: each gives the right verdict, with the file and the reason."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
from _host import forget_answers

import libbroker
from libbroker import IncompatibleLibraryError, LibraryNotFoundError
from libbroker._discovery import matches_link_name, names_in


def _only_candidate(name: str) -> libbroker.Candidate:
    cands = [c for c in libbroker.candidates(name) if c.origin == "override"]
    assert len(cands) == 1, cands
    return cands[0]


@pytest.fixture
def override(tmp_path, monkeypatch):
    directory = tmp_path / "override"
    directory.mkdir()
    os.chmod(directory, 0o755)
    monkeypatch.setenv("LIBBROKER_PATH", str(directory))
    return directory


def _assert_rejected(name: str, path: str, *words: str) -> None:
    cand = _only_candidate(name)
    assert not cand.accepted
    for word in words:
        assert word in cand.reason, cand.reason
    with pytest.raises(LibraryNotFoundError) as excinfo:
        libbroker.find(name)
    assert path in str(excinfo.value)


def test_link_name_patterns() -> None:
    assert matches_link_name("libz.so", "z")
    assert matches_link_name("libz.so.1.2.13", "z")
    assert not matches_link_name("libzstd.so.1", "z")
    assert not matches_link_name("libz.so.1.bak", "z")


def test_names_in_orders_by_the_numbers_in_file_names(tmp_path) -> None:
    # Ordering only (higher numbers first); what a version is comes from _versions.
    for name in ("libz.so", "libz.so.1", "libz.so.1.2.9", "libz.so.1.2.13", "libzstd.so.1.5.4"):
        (tmp_path / name).write_bytes(b"")
    names = names_in(str(tmp_path), "z", "linux")
    assert names[:2] == ["libz.so.1.2.13", "libz.so.1.2.9"]
    assert sorted(names) == ["libz.so", "libz.so.1", "libz.so.1.2.13", "libz.so.1.2.9"]


def test_text_file(override) -> None:
    path = override / "liblbx.so"
    path.write_text("hello, I am not a library\n")
    _assert_rejected("lbx", str(path), "ELF", "text file")


def test_truncated_elf(override, libz) -> None:
    path = override / "liblbx.so"
    path.write_bytes(open(os.path.realpath(libz), "rb").read(64))
    _assert_rejected("lbx", str(path), "truncated")


def test_wrong_machine(override, libz) -> None:
    data = bytearray(open(os.path.realpath(libz), "rb").read())
    data[18:20] = (183).to_bytes(2, "little")  # e_machine = EM_AARCH64
    path = override / "liblbx.so"
    path.write_bytes(bytes(data))
    _assert_rejected("lbx", str(path), "aarch64")
    with pytest.raises(IncompatibleLibraryError, match="aarch64"):
        libbroker.load(str(path))


def test_32_bit_class(override, libz) -> None:
    data = bytearray(open(os.path.realpath(libz), "rb").read())
    data[4] = 1  # EI_CLASS = ELFCLASS32
    path = override / "liblbx.so"
    path.write_bytes(bytes(data))
    _assert_rejected("lbx", str(path), "32")


def test_directory_named_like_library(override) -> None:
    (override / "liblbx.so").mkdir()
    _assert_rejected("lbx", str(override / "liblbx.so"), "directory")


def test_dangling_symlink(override) -> None:
    link = override / "liblbx.so"
    link.symlink_to(override / "gone.so.1")
    _assert_rejected("lbx", str(link), "dangling symlink")


def test_linker_script_pointing_nowhere(override) -> None:
    path = override / "liblbx.so"
    path.write_text("/* GNU ld script */\nGROUP ( /nonexistent/liblbx.so.7 )\n")
    _assert_rejected("lbx", str(path), "linker script")


def test_unreadable_file(monkeypatch, libz) -> None:
    import tempfile

    override = __import__("pathlib").Path(tempfile.mkdtemp(prefix="lbunread"))
    os.chmod(override, 0o755)  # reachable by 'nobody' below
    monkeypatch.setenv("LIBBROKER_PATH", str(override))
    path = override / "liblbx.so"
    shutil.copy(os.path.realpath(libz), path)
    os.chmod(path, 0)
    if os.geteuid() != 0:
        _assert_rejected("lbx", str(path), "permission")
        return
    # root reads anything: judge the file from a forked child that dropped to
    # 'nobody'. Everything the check needs is imported before the fork, since
    # nobody cannot read this interpreter's installation under /root.
    import packaging.specifiers  # noqa: F401
    import tomllib  # noqa: F401

    import libbroker._binary
    import libbroker._ldcache
    import libbroker._resolve

    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        try:
            os.close(read_end)
            os.setgid(65534)
            os.setuid(65534)
            cands = [c for c in libbroker.candidates("lbx") if c.origin == "override"]
            verdict = f"{cands[0].accepted}|{cands[0].reason}" if cands else "none|"
        except BaseException as exc:  # report, never run the parent's pytest in the child
            verdict = f"error|{type(exc).__name__}: {exc}"
        os.write(write_end, verdict.encode())
        os._exit(0)
    os.close(write_end)
    data = b""
    while chunk := os.read(read_end, 65536):
        data += chunk
    os.waitpid(pid, 0)
    accepted, _, reason = data.decode().partition("|")
    assert accepted == "False" and "permission" in reason, data


def test_only_in_current_directory(tmp_path, monkeypatch, libz) -> None:
    shutil.copy(os.path.realpath(libz), tmp_path / "liblbcwd.so.1")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(LibraryNotFoundError):
        libbroker.find("lbcwd")
    # Even when a search path names it: '.' is relative, the absolute form is the cwd.
    for value in (".", "", str(tmp_path)):
        monkeypatch.setenv("LIBBROKER_PATH", value)
        with pytest.raises(LibraryNotFoundError) as excinfo:
            libbroker.find("lbcwd")
        if value:
            assert "current directory" in str(excinfo.value) or "relative" in str(excinfo.value)


def test_only_in_world_writable_directory(tmp_path, monkeypatch, libz) -> None:
    directory = tmp_path / "open"
    directory.mkdir()
    os.chmod(directory, 0o777)
    shutil.copy(os.path.realpath(libz), directory / "liblbww.so.1")
    monkeypatch.setenv("LIBBROKER_PATH", str(directory))
    cand = _only_candidate("lbww")
    assert not cand.accepted and "world-writable" in cand.reason
    with pytest.raises(LibraryNotFoundError, match="world-writable"):
        libbroker.find("lbww")


def test_good_copy_accepted_interface_number_is_no_version(override, libz) -> None:
    # design.md 5.2: numbers in a file name are interface numbers (libtool), not
    # the product's version, except for zlib, whose file names carry it.
    shutil.copy(os.path.realpath(libz), override / "liblbgood.so.3.4.5")
    info = libbroker.find("lbgood")
    assert info.origin == "override" and info.version is None and info.version_source is None
    assert info.soname == "libz.so.1"  # the copy keeps zlib's SONAME


def test_config_pin_and_search_paths(tmp_path, monkeypatch, libdir_with) -> None:
    directory = libdir_with("libz.so.1", "liblbpin.so.1")
    config = tmp_path / "config.toml"
    config.write_text(f'search-paths = ["{directory}"]\n')
    monkeypatch.setenv("LIBBROKER_CONFIG", str(config))
    assert libbroker.find("lbpin").origin == "override"
    pinned = os.path.join(directory, "liblbpin.so.1")
    config.write_text(f'[libraries.z]\npath = "{pinned}"\n')
    info = libbroker.find("z")
    assert info.path == pinned and info.origin == "override"


def test_config_errors_are_spec_errors(tmp_path, monkeypatch) -> None:
    config = tmp_path / "config.toml"
    monkeypatch.setenv("LIBBROKER_CONFIG", str(config))
    config.write_text("[libraries.z]\nprefer = 'mars'\n")
    with pytest.raises(libbroker.SpecError, match="mars"):
        libbroker.find("z")
    config.write_text("search-paths = [\n")
    with pytest.raises(libbroker.SpecError, match=str(config)):
        libbroker.find("z")


def test_prefer_moves_a_group_first(tmp_path, monkeypatch) -> None:
    from libbroker._config import Config
    from libbroker._discovery import search

    def order(prefer: str | None) -> list[str]:
        config = Config(str(tmp_path / "config.toml"))
        if prefer:
            config.prefer["z"] = prefer
        kinds = []
        for place in search("z", config=config).searched:
            kind = "system" if place.startswith(("ld.so.cache", "default directory", "LD_LIBRARY_PATH")) else (
                "environment" if place.startswith("environment") else "provider")
            if kind not in kinds:
                kinds.append(kind)
        return kinds

    assert order(None) == ["provider", "environment", "system"]
    assert order("system") == ["system", "provider", "environment"]
    assert order("environment")[0] == "environment"


def test_soname_major_must_match_file_name(override, libz) -> None:
    # A zlib (SONAME libz.so.1) dressed up as major 2.
    shutil.copy(os.path.realpath(libz), override / "libz.so.2.0.0")
    cands = [c for c in libbroker.candidates("z") if c.origin == "override"]
    assert len(cands) == 1 and not cands[0].accepted
    assert "SONAME 'libz.so.1'" in cands[0].reason and "major version 2" in cands[0].reason


def test_world_writable_file_refused(override, libz) -> None:
    path = override / "liblbwwf.so.1"
    shutil.copy(os.path.realpath(libz), path)
    os.chmod(path, 0o666)
    _assert_rejected("lbwwf", str(path), "world-writable")


def test_conda_prefix_of_another_environment_not_searched(tmp_path, monkeypatch, libz) -> None:
    # design.md 5.1: CONDA_PREFIX counts only when it is the running interpreter's prefix.
    other = tmp_path / "otherenv"
    (other / "lib").mkdir(parents=True)
    shutil.copy(os.path.realpath(libz), other / "lib" / "liblbconda.so.1")
    monkeypatch.setenv("CONDA_PREFIX", str(other))
    from libbroker._discovery import environment_dirs

    assert str(other / "lib") not in environment_dirs()
    with pytest.raises(LibraryNotFoundError):
        libbroker.find("lbconda")
    monkeypatch.setenv("CONDA_PREFIX", sys.prefix)
    assert os.path.join(sys.prefix, "lib") in environment_dirs()


@pytest.mark.skipif(shutil.which("ldconfig") is None and not os.path.exists("/sbin/ldconfig"), reason="needs ldconfig")
def test_ld_cache_hwcaps_and_platform_entries_found(tmp_path, monkeypatch) -> None:
    # r08: libraries only reachable through glibc-hwcaps/ and legacy platform entries
    # of the cache; ld.so finds them, so must libbroker (and count them in its report).
    from libbroker import _ldcache

    levels = _ldcache.supported_hwcaps()
    if "x86-64-v2" not in levels:
        pytest.skip("needs an x86-64-v2 CPU")
    src = tmp_path / "f.c"
    src.write_text("int f(void){return 1;}\n")
    hw = tmp_path / "lib" / "glibc-hwcaps" / "x86-64-v2"
    plat = tmp_path / "ocl" / "lib" / "x86_64"
    for directory, lib in ((hw, "liblbhwonly.so.1"), (plat, "liblbocl.so.1")):
        directory.mkdir(parents=True)
        subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(directory / lib), str(src), f"-Wl,-soname,{lib}"],
                       check=True)
    conf = tmp_path / "ld.so.conf"
    conf.write_text(f"{tmp_path / 'lib'}\n{plat}\n")
    cache = tmp_path / "ld.so.cache"
    ldconfig = shutil.which("ldconfig") or "/sbin/ldconfig"
    subprocess.run([ldconfig, "-X", "-f", str(conf), "-C", str(cache)], check=True, capture_output=True)
    monkeypatch.setattr(_ldcache, "LD_SO_CACHE", str(cache))
    info = libbroker.find("lbhwonly")
    assert info.path == str(hw / "liblbhwonly.so.1")
    assert libbroker.find("lbocl").path == str(plat / "liblbocl.so.1")
    with pytest.raises(LibraryNotFoundError) as caught:
        libbroker.find("lbhwonly", ">=99")
    assert "(1 entries for 'lbhwonly')" in str(caught.value)


def test_directory_answers_are_given_again_for_one_second_only(tmp_path, monkeypatch, libz) -> None:
    """A search directory's place verdict and listing are given again without a system call
    for a second (`_discovery._RECHECK_SECONDS`, as `_api` gives verdicts again); after
    that, a directory made world-writable is refused and a new file is seen."""
    import time

    from libbroker import _api, _discovery

    directory = tmp_path / "libs"
    directory.mkdir()
    os.chmod(directory, 0o755)
    shutil.copy(os.path.realpath(libz), directory / "liblbwin.so.1")
    monkeypatch.setenv("LIBBROKER_PATH", str(directory))
    assert libbroker.find("lbwin").origin == "override"
    shutil.copy(os.path.realpath(libz), directory / "liblbwin2.so.1")
    os.chmod(directory, 0o777)
    time.sleep(_discovery._RECHECK_SECONDS + 0.1)
    assert _discovery.names_in(str(directory), "lbwin2", "linux") == ["liblbwin2.so.1"]
    _api._memo.clear()  # the find verdict's own second, and its stamps now differ
    with pytest.raises(LibraryNotFoundError) as caught:
        libbroker.find("lbwin")
    assert "writable" in str(caught.value)
    os.chmod(directory, 0o755)
    _discovery.forget_places()  # at once, without waiting
    _api._memo.clear()
    assert libbroker.find("lbwin").origin == "override"


def _ld_so_hwcaps_order() -> list[str] | None:
    """The oracle: the glibc-hwcaps subdirectories ld.so itself searches, in its priority
    order ("Subdirectories of glibc-hwcaps directories, in priority order" of ``ld.so --help``)."""
    interp = next((p for p in ("/lib64/ld-linux-x86-64.so.2", "/lib/ld-linux-aarch64.so.1") if os.path.exists(p)), None)
    if interp is None:
        return None
    out = subprocess.run([interp, "--help"], capture_output=True, text=True, check=False).stdout
    names: list[str] = []
    inside = False
    for line in out.splitlines():
        if line.startswith("Subdirectories of glibc-hwcaps"):
            inside = True
        elif inside and line.startswith("  "):
            name, _, state = line.strip().partition(" ")
            if "searched" in state:
                names.append(name)
        elif inside:
            break
    return names if inside else None


_HWCAPS_PROBE = """
import ctypes, json, sys, libbroker
out = {}
if sys.argv[1] == "ld.so":
    out["which"] = ctypes.CDLL("liblbhwc.so.1").which()
else:
    found = libbroker.find("lbhwc")
    out["find"] = [found.path, found.origin]
    out["all"] = [[c.path, c.origin, c.accepted] for c in libbroker.candidates("lbhwc")]
    lib = libbroker.load("lbhwc")
    out["which"] = ctypes.CFUNCTYPE(ctypes.c_int)(lib.address("which"))()
    out["load"] = [lib.path, lib.origin]
out["maps"] = sorted({l.split()[-1] for l in open("/proc/self/maps") if "liblbhwc" in l})
print(json.dumps(out))
"""


@pytest.mark.skipif(shutil.which("gcc") is None or not sys.platform.startswith("linux"), reason="needs gcc, Linux")
def test_ld_library_path_hwcaps_copies_in_ld_so_order(tmp_path) -> None:
    # F13: a copy in $LD_LIBRARY_PATH/glibc-hwcaps/<level>/ is what ld.so maps, so it is
    # what find() names and load() maps, origin "system". Copies in every level ld.so
    # searches and in the entry itself; each round removes the copy ld.so chose, so each
    # position of the order is checked against ld.so (a separate process per side).
    import json

    from libbroker._ldcache import supported_hwcaps

    levels = _ld_so_hwcaps_order()
    if not levels:
        pytest.skip("ld.so searches no glibc-hwcaps subdirectory on this machine")
    assert supported_hwcaps() == levels  # the same names in the same order as ld.so
    entry = tmp_path / "ldlp"
    places = [entry / "glibc-hwcaps" / level for level in levels] + [entry]
    for index, place in enumerate(places):
        place.mkdir(parents=True, exist_ok=True)
        src = tmp_path / f"which{index}.c"
        src.write_text(f"int which(void){{return {index};}}\n")
        subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(place / "liblbhwc.so.1"), str(src),
                        "-Wl,-soname,liblbhwc.so.1"], check=True)
    env = dict(os.environ, LD_LIBRARY_PATH=str(entry))

    def probe(side: str) -> dict:
        run = subprocess.run([sys.executable, "-c", _HWCAPS_PROBE, side], capture_output=True, text=True,
                             env=env, check=False, timeout=120)
        assert run.returncode == 0, run.stderr
        return json.loads(run.stdout)

    for index, place in enumerate(places):
        expected = str(place / "liblbhwc.so.1")
        ld_so, ours = probe("ld.so"), probe("libbroker")
        assert ld_so == {"which": index, "maps": [expected]}
        assert ours["find"] == [expected, "system"]
        assert ours["load"] == [expected, "system"] and ours["which"] == index
        assert ours["maps"] == [expected]  # one copy: the one find named
        assert [c[0] for c in ours["all"]] == [str(p / "liblbhwc.so.1") for p in places[index:]]
        (place / "liblbhwc.so.1").unlink()


@pytest.mark.skipif(shutil.which("gcc") is None or not sys.platform.startswith("linux"), reason="needs gcc, Linux")
def test_ld_library_path_hwcaps_subdirectory_follows_the_place_rules(tmp_path, monkeypatch) -> None:
    from libbroker import _api
    from libbroker._ldcache import supported_hwcaps

    levels = supported_hwcaps()
    if not levels:
        pytest.skip("this CPU supports no glibc-hwcaps level")
    entry = tmp_path / "ldlp"
    hw = entry / "glibc-hwcaps" / levels[0]
    for place, value in ((hw, 1), (entry, 2)):
        place.mkdir(parents=True, exist_ok=True)
        src = tmp_path / f"v{value}.c"
        src.write_text(f"int which(void){{return {value};}}\n")
        subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(place / "liblbhwp.so.1"), str(src),
                        "-Wl,-soname,liblbhwp.so.1"], check=True)
    os.chmod(hw, 0o777)  # anyone could swap the library: refused, listed with the reason
    monkeypatch.setenv("LD_LIBRARY_PATH", str(entry))
    cands = libbroker.candidates("lbhwp")
    assert [c.path for c in cands[:2]] == [str(hw / "liblbhwp.so.1"), str(entry / "liblbhwp.so.1")]
    assert not cands[0].accepted and "unsafe place" in cands[0].reason, cands[0].reason
    assert cands[1].accepted and cands[1].origin == "system"
    assert libbroker.find("lbhwp").path == str(entry / "liblbhwp.so.1")
    os.chmod(hw, 0o755)
    _api._memo.clear()  # the in-process memo is trusted for a second (`_api._RECHECK_SECONDS`)
    forget_answers()  # and the directory answers of that second
    assert libbroker.find("lbhwp").path == str(hw / "liblbhwp.so.1")
    # A level directory absent at the first search and created later voids the cached verdict
    # (its absence is stamped; glibc-hwcaps/ itself and the entry keep their mtimes).
    (hw / "liblbhwp.so.1").rename(tmp_path / "kept.so")
    hw.rmdir()
    _api._memo.clear()
    forget_answers()  # and the directory answers of that second
    assert libbroker.find("lbhwp").path == str(entry / "liblbhwp.so.1")
    hw.mkdir()
    (tmp_path / "kept.so").rename(hw / "liblbhwp.so.1")
    _api._memo.clear()
    forget_answers()  # and the directory answers of that second
    assert libbroker.find("lbhwp").path == str(hw / "liblbhwp.so.1")


@pytest.mark.skipif(shutil.which("ldd") is None or not sys.platform.startswith("linux"), reason="needs ldd, Linux")
@pytest.mark.parametrize("form", ["$LIB", "${LIB}", "semicolon"])
def test_ld_library_path_is_read_as_ld_so_reads_it(tmp_path, monkeypatch, form: str) -> None:
    """review3 F3: $LIB and ';' in LD_LIBRARY_PATH mean to find() and the closure what they mean
    to ld.so; ldd (the real ld.so) names the copy of liblzma libxml2 would get. ($ORIGIN, the
    executable's directory: the test below.)"""
    import json

    from libbroker._closure import _lib_dir

    xml2 = "/usr/lib/x86_64-linux-gnu/libxml2.so.2"
    lzma = "/usr/lib/x86_64-linux-gnu/liblzma.so.5"
    if not (os.path.exists(xml2) and os.path.exists(lzma)):
        pytest.skip("needs Debian's libxml2 and liblzma")
    os.chmod(tmp_path, 0o755)
    target = tmp_path / _lib_dir()
    target.mkdir(parents=True)
    shutil.copy(os.path.realpath(lzma), target / "liblzma.so.5")
    value = {"$LIB": f"{tmp_path}/$LIB", "${LIB}": f"{tmp_path}/${{LIB}}",
             "semicolon": f"/nonexistent;{target}"}[form]
    monkeypatch.setenv("LD_LIBRARY_PATH", value)
    env = dict(os.environ)
    ldd = subprocess.run(["ldd", xml2], capture_output=True, text=True, env=env, check=True).stdout
    [line] = [ln for ln in ldd.splitlines() if "liblzma.so.5" in ln]
    chosen = line.split("=>")[1].split("(")[0].strip()
    assert os.path.realpath(chosen) == os.path.realpath(target / "liblzma.so.5")  # the oracle
    # A fresh process: one that maps a liblzma already (Python's lzma) reuses it, as ld.so would.
    code = ("import json, os, libbroker\n"
            "print(json.dumps([os.path.realpath(libbroker.find('lzma').path), "
            "[os.path.realpath(d.path) for d in libbroker.find('xml2').dependencies if 'lzma' in d.path]]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    found, deps = json.loads(out.stdout)
    assert found == os.path.realpath(chosen) and deps == [os.path.realpath(chosen)]


def test_ld_library_path_origin_is_the_executables_directory() -> None:
    from libbroker._closure import ld_library_path_dirs

    here = os.path.dirname(os.path.realpath("/proc/self/exe"))
    assert ld_library_path_dirs("$ORIGIN/x:${ORIGIN}/y;/z") == [f"{here}/x", f"{here}/y", "/z"]
    assert ld_library_path_dirs("/a::/b") == ["/a", "", "/b"]  # the empty entry: refused later


def test_the_closure_inputs_are_read_afresh_by_every_search(tmp_path, monkeypatch) -> None:
    # Every search stamps the sys.path directories and the providers seen ("@site",
    # "@providers") as it reads them now: the closure reads the providers afresh, so an
    # answer a second old could stamp a verdict with a state it was not made on (review6 N6).
    from libbroker import _discovery
    from libbroker._config import Config

    site = tmp_path / "site"
    site.mkdir(mode=0o755)
    os.chmod(tmp_path, 0o755)
    monkeypatch.setattr(sys, "path", [str(site), *sys.path])
    _discovery.forget_places()

    def site_stamp() -> object:
        stamps = _discovery.search("z", config=Config(None)).stamps
        return [s for key, s in stamps if key == "@site" and s[0] == str(site)]

    first = site_stamp()
    (site / "newdist-1.0.dist-info").mkdir()
    assert site_stamp() != first  # the same second: read afresh
