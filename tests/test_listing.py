"""libbroker._listing (`libbroker list`): opens only regular files, applies the place rules of
design.md 5.1 as `find` does, labels LD_LIBRARY_PATH entries, and shows product versions with
their source (checked against dpkg-query, not against libbroker)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import pytest
from _host import SYSLIB, dpkg, host, zlib_version

from libbroker import _listing

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="POSIX places, ELF files")


def run(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "libbroker", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, cwd="/", timeout=timeout)


def test_list_never_opens_a_fifo_or_device(tmp_path) -> None:
    """review F2: a FIFO named like a library in a searched directory must not block `list`."""
    os.chmod(tmp_path, 0o755)
    os.mkfifo(tmp_path / "libqq.so")
    os.symlink("/dev/zero", tmp_path / "libzz.so.1")
    shutil.copy2(os.path.realpath(os.path.join(SYSLIB, "libz.so.1")), tmp_path / "libfoo.so.1")
    r = run("list", "--json", env={"LD_LIBRARY_PATH": str(tmp_path)}, timeout=30)
    assert r.returncode == 0, r.stderr
    listed = {item["path"] for items in json.loads(r.stdout).values() for item in items}
    assert str(tmp_path / "libfoo.so.1") in listed
    assert str(tmp_path / "libqq.so") not in listed and str(tmp_path / "libzz.so.1") not in listed


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
def test_list_marks_what_find_refuses_and_labels_ld_library_path(tmp_path) -> None:
    """review F3: a library in a directory owned by another user is listed as refused, under
    LD_LIBRARY_PATH, with the reason `find --all` gives."""
    os.chmod(tmp_path, 0o755)
    mal = tmp_path / "mal"
    mal.mkdir()
    shutil.copy2(os.path.realpath(os.path.join(SYSLIB, "libz.so.1")), mal / "libfoo.so.1")
    os.chown(mal, 65534, 65534)
    os.chown(mal / "libfoo.so.1", 65534, 65534)
    env = {"LD_LIBRARY_PATH": str(mal)}
    groups = json.loads(run("list", "--json", env=env).stdout)
    assert not any(item["path"].startswith(str(mal)) for item in groups["system"])
    (item,) = [i for i in groups["LD_LIBRARY_PATH"] if i["name"] == "foo"]
    assert item["refused"].startswith("unsafe place:") and str(mal) in item["refused"]
    text = run("list", env=env).stdout
    line = next(line for line in text.splitlines() if str(mal / "libfoo.so.1") in line)
    assert "REFUSED: unsafe place" in line
    found = run("find", "foo", "--all", "--json", env=env)
    cands = json.loads(found.stdout)
    cands = cands if isinstance(cands, list) else cands.get("candidates", [])
    mine = [c for c in cands if c["path"] == str(mal / "libfoo.so.1")]
    assert mine and not mine[0]["accepted"] and "unsafe place" in mine[0]["reason"]


def test_list_versions_come_with_their_source() -> None:
    """review F3: the version column is the product version with its source, never the file
    name's interface numbers (libbz2.so.1.0.4 is bzip2 1.0.8)."""
    if dpkg("-S", "libbz2.so.1.0") is None:
        pytest.skip("no dpkg-owned libbz2")
    real, arch_package, expected = host("libbz2.so.1.0", "libbz2-1.0")
    text = run("list").stdout
    rows = [line.split("\t") for line in text.splitlines() if line.startswith("  bz2\t")]
    row = next(r for r in rows if os.path.realpath(r[2]) == real)
    # Asked the mapped copy itself (the CLI's interpreter may map it) or read from dpkg.
    assert row[1] in (f"{expected} (package:dpkg:{arch_package})", f"{expected} (library)"), row


# --- the cached listing: replayed only while every input is unchanged -----------------------
# The oracle for each change is a listing read afresh (an empty cache directory), plus the
# specific effect the change must have, so a cache that is wrong and a listing that is wrong
# in the same way both fail.


def _rows(groups: dict) -> dict:
    return {(origin, item["path"]): item for origin, items in groups.items() for item in items}


def _fresh(tmp_path, monkeypatch, tag: str) -> dict:
    """The listing read afresh: an empty cache directory of its own."""
    monkeypatch.setenv("LIBBROKER_CACHE_DIR", str(tmp_path / f"fresh-{tag}"))
    try:
        return _listing.listing()
    finally:
        monkeypatch.setenv("LIBBROKER_CACHE_DIR", str(tmp_path / "cache"))


def _no_recompute(monkeypatch, *parts: str) -> None:
    """Make reading *parts* afresh fail: what follows must come from the cache."""
    def refuse(_inputs: object) -> None:
        raise AssertionError("recomputed although the cache was valid")

    for part in parts:
        monkeypatch.setattr(_listing, f"_compute_{part}", refuse)


@pytest.fixture
def libdir(tmp_path, monkeypatch):
    """An LD_LIBRARY_PATH directory holding zlib as a distribution lays it out
    (libz.so.1 -> libz.so.1.2.13), and a warm listing cache."""
    lib = tmp_path / "lib"
    lib.mkdir()
    os.chmod(tmp_path, 0o755)
    os.chmod(lib, 0o755)
    shutil.copy2(os.path.realpath(os.path.join(SYSLIB, "libz.so.1")), lib / "libz.so.1.2.13")
    os.symlink("libz.so.1.2.13", lib / "libz.so.1")
    monkeypatch.setenv("LD_LIBRARY_PATH", str(lib))
    monkeypatch.setenv("LIBBROKER_CACHE_DIR", str(tmp_path / "cache"))
    _settle()
    _listing.listing()
    return lib


def _settle() -> None:
    """Let the kernel's clock tick past what was just written: a part that read a file
    changed within `_RACY_NS` is not cached (a second change in that tick would not show)."""
    time.sleep(2 * _listing._RACY_NS / 1e9)


def test_realpath_is_os_path_realpath(tmp_path) -> None:
    """`_Inputs.realpath` (which records what it read) answers as os.path.realpath does, for
    the system's library directory and for links relative, absolute, chained, dangling,
    looping, through '..' and through a file."""
    os.chmod(tmp_path, 0o755)
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "f").write_text("x")
    links = {"rel": "a", "abs": str(tmp_path / "a"), "chain": "rel/b/f", "dang": "nowhere/x",
             "loop1": "loop2", "loop2": "loop1", "up": "a/b/../b/f", "self": ".",
             "deep": "abs/b/../../chain"}
    for name, target in links.items():
        os.symlink(target, tmp_path / name)
    paths = [str(tmp_path / p) for p in (*links, "a/b/f/x", "a/./b//f", "rel/../a/b", "loop1/x",
                                          "chain/..", "deep", "dang/y")]
    machine = [os.path.join(d, n) for d in (SYSLIB, f"/lib/{os.path.basename(SYSLIB)}")
               for n in sorted(os.listdir(d))[:300]]
    shared = _listing._Inputs()  # one memo for all, as a listing uses it
    for path in paths + machine:
        assert _listing._Inputs().realpath(path) == os.path.realpath(path), path
        assert shared.realpath(path) == os.path.realpath(path), path


def test_file_swapped_while_read_is_not_cached(tmp_path) -> None:
    """The file opened must be the one resolved: a swap in between makes the part unstable."""
    os.chmod(tmp_path, 0o755)
    path = tmp_path / "libq.so.1"
    shutil.copy2(os.path.realpath(os.path.join(SYSLIB, "libz.so.1")), path)
    inputs = _listing._Inputs()
    real = inputs.realpath(str(path))
    assert inputs.is_library(str(path), real, (b"\x7fELF",)) and inputs.stable
    shutil.copy2(os.path.realpath(os.path.join(SYSLIB, "libz.so.1")), tmp_path / "new")
    os.replace(tmp_path / "new", path)
    assert inputs.is_library(str(path), real, (b"\x7fELF",))
    assert not inputs.stable


def test_warm_listing_is_replayed_and_equal_to_a_fresh_one(libdir, tmp_path, monkeypatch) -> None:
    _no_recompute(monkeypatch, "scanned", "providers")
    warm = _listing.listing()
    assert [i["path"] for i in warm["LD_LIBRARY_PATH"]] == [str(libdir / "libz.so.1")]
    assert warm["LD_LIBRARY_PATH"][0]["version"] == zlib_version()
    monkeypatch.undo()
    monkeypatch.setenv("LD_LIBRARY_PATH", str(libdir))
    assert warm == _fresh(tmp_path, monkeypatch, "equal")


def _chmod_file(lib) -> None:
    os.chmod(lib / "libz.so.1.2.13", 0o666)


def _chmod_dir(lib) -> None:
    os.chmod(lib, 0o777)


def _new_file(lib) -> None:
    shutil.copy2(lib / "libz.so.1.2.13", lib / "libnew.so.2")


def _text_in_place(lib) -> None:
    with open(lib / "libz.so.1.2.13", "r+b") as f:  # same inode: only its content changes
        f.write(b"/* GNU ld script */")


def _retarget(lib) -> None:
    shutil.copy2(lib / "libz.so.1.2.13", lib / "libz.so.1.2.99")
    os.symlink("libz.so.1.2.99", lib / "tmp-link")
    os.replace(lib / "tmp-link", lib / "libz.so.1")


def _remove(lib) -> None:
    os.unlink(lib / "libz.so.1")


CHANGES = {
    # change -> what the listing must show at once for libz.so.1 (None: not listed)
    "chmod file": (_chmod_file, "refused"),
    "chmod directory": (_chmod_dir, "refused"),
    "new file": (_new_file, "new"),
    "content rewritten in place": (_text_in_place, None),
    "symlink retargeted": (_retarget, "1.2.99"),
    "file removed": (_remove, None),
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_listing_shows_each_change_at_once(libdir, tmp_path, monkeypatch, change: str) -> None:
    mutate, effect = CHANGES[change]
    mutate(libdir)
    _no_recompute(monkeypatch, "providers")  # a library directory is not a provider input
    after = _listing.listing()
    monkeypatch.undo()
    monkeypatch.setenv("LD_LIBRARY_PATH", str(libdir))
    assert after == _fresh(tmp_path, monkeypatch, "after")
    mine = {i["path"]: i for i in after.get("LD_LIBRARY_PATH", [])}
    item = mine.get(str(libdir / "libz.so.1"))
    if effect is None:
        assert item is None
    elif effect == "refused":
        assert item is not None and item["refused"].startswith("unsafe place:")
    elif effect == "new":
        assert str(libdir / "libnew.so.2") in mine
    else:
        assert item is not None and item["version"] == effect
        assert item["version_source"] == "file-name"


def test_symlink_target_elsewhere_is_watched(libdir, tmp_path, monkeypatch) -> None:
    """A listed link into another directory: a chmod there shows at once."""
    other = tmp_path / "other"
    other.mkdir()
    os.chmod(other, 0o755)
    shutil.copy2(libdir / "libz.so.1.2.13", other / "libfar.so.3.0")
    os.symlink(other / "libfar.so.3.0", libdir / "libfar.so.3")
    first = _rows(_listing.listing())[("LD_LIBRARY_PATH", str(libdir / "libfar.so.3"))]
    assert "refused" not in first
    os.chmod(other, 0o775)  # group-writable, in a directory the scan never lists
    after = _listing.listing()
    item = _rows(after)[("LD_LIBRARY_PATH", str(libdir / "libfar.so.3"))]
    assert str(other) in item["refused"]
    assert after == _fresh(tmp_path, monkeypatch, "far")


def test_config_pin_and_environment_change_show_at_once(libdir, tmp_path, monkeypatch) -> None:
    config = tmp_path / "config.toml"
    monkeypatch.setenv("LIBBROKER_CONFIG", str(config))
    _listing.listing()
    config.write_text(f'[libraries.lbpinned]\npath = "{libdir / "libz.so.1.2.13"}"\n')
    os.chmod(config, 0o600)
    pinned = _listing.listing()["override"]
    assert [(i["name"], i["path"]) for i in pinned] == [("lbpinned", str(libdir / "libz.so.1.2.13"))]
    monkeypatch.setenv("LD_LIBRARY_PATH", str(tmp_path))
    assert "LD_LIBRARY_PATH" not in _listing.listing()


def test_provider_installed_shows_at_once_and_scan_is_kept(libdir, tmp_path, monkeypatch) -> None:
    """Installing a provider (a sys.path directory gains a distribution) redoes the provider
    part only; the scanned part is replayed."""
    site = tmp_path / "site"
    site.mkdir()
    os.chmod(site, 0o755)
    monkeypatch.syspath_prepend(str(site))
    _settle()
    _listing.listing()
    dist_info = site / "lbfake_provider-1.0.dist-info"
    package = site / "lbfakeprov"
    (package / "lib").mkdir(parents=True)
    shutil.copy2(libdir / "libz.so.1.2.13", package / "lib" / "libz.so.1")
    (package / "libbroker-provider.toml").write_text(
        '[[library]]\nname = "z"\nfile = "lib/libz.so.1"\nversion = "9.9.9"\n')
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: lbfake-provider\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text("[libbroker.providers]\nz = lbfakeprov\n")
    (dist_info / "RECORD").write_text(
        "lbfakeprov/libbroker-provider.toml,,\nlbfakeprov/lib/libz.so.1,,\n"
        f"{dist_info.name}/METADATA,,\n{dist_info.name}/RECORD,,\n")
    _no_recompute(monkeypatch, "scanned")
    groups = _listing.listing()
    [item] = groups["provider:lbfake-provider"]
    assert item["version"] == "9.9.9" and item["version_source"] == "provider"
    assert item["path"] == str(package / "lib" / "libz.so.1")


def test_corrupt_or_foreign_cache_is_ignored(libdir, tmp_path, monkeypatch) -> None:
    cache = tmp_path / "cache"
    [name] = [n for n in os.listdir(cache) if n.startswith("listing-")]
    from libbroker import _cache

    slot = name[: -len(f"-v{_cache._FORMAT}.marshal")]
    data = _cache.load(slot)
    data["scanned"]["groups"] = [("system", [("z", 1, None, None, None, None)])]
    data["providers"] = {"places": "x"}
    _cache.store(slot, data)
    assert _listing.listing() == _fresh(tmp_path, monkeypatch, "corrupt")
    (cache / name).write_bytes(b"garbage")
    assert _listing.listing() == _fresh(tmp_path, monkeypatch, "garbage")


def test_part_read_just_after_a_change_is_not_cached(tmp_path, monkeypatch) -> None:
    """A file changed in the same clock tick as the listing read it could change again
    unseen: that part is read afresh next time (then cached once the tick has passed)."""
    lib = tmp_path / "lib"
    lib.mkdir()
    os.chmod(tmp_path, 0o755)
    os.chmod(lib, 0o755)
    shutil.copy2(os.path.realpath(os.path.join(SYSLIB, "libz.so.1")), lib / "libz.so.1")
    monkeypatch.setenv("LD_LIBRARY_PATH", str(lib))
    _listing.listing()
    with monkeypatch.context() as m:
        _no_recompute(m, "providers")
        with pytest.raises(AssertionError, match="recomputed"):
            _no_recompute(m, "scanned")
            _listing.listing()
    _settle()
    _listing.listing()
    _no_recompute(monkeypatch, "scanned", "providers")
    assert ("LD_LIBRARY_PATH", str(lib / "libz.so.1")) in _rows(_listing.listing())


def test_places_valid_refuses_what_it_cannot_check() -> None:
    assert not _listing.places_valid(None)
    assert not _listing.places_valid({"/": {"": "not a stamp"}})
    assert _listing.places_valid({"": {"lb-surely-absent": None}})
    st = os.lstat("/etc/passwd")
    assert _listing.places_valid({"/etc": {"passwd": (st.st_ino, st.st_ctime_ns)}})
    assert not _listing.places_valid({"/etc": {"passwd": (st.st_ino, st.st_ctime_ns + 1)}})


def test_libraries_in_the_current_directory_are_listed_as_refused(tmp_path, monkeypatch) -> None:
    # find never searches the cwd (review F15): list says so instead of showing them usable.
    import shutil

    from libbroker import _listing

    lib = tmp_path / "lib"
    lib.mkdir()
    shutil.copy(os.path.realpath("/lib/x86_64-linux-gnu/libz.so.1"), lib / "libz.so.1")
    monkeypatch.setenv("LIBBROKER_PATH", str(lib))
    monkeypatch.setenv("LIBBROKER_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(lib)
    rows = [item for group in _listing.listing().values() for item in group
            if os.path.dirname(str(item["path"])) == str(lib)]
    assert rows and all("is the current directory" in str(item.get("refused")) for item in rows)
    monkeypatch.chdir(tmp_path)
    rows = [item for group in _listing.listing().values() for item in group
            if os.path.dirname(str(item["path"])) == str(lib)]
    assert rows and not any("current directory" in str(item.get("refused", "")) for item in rows)


def test_a_conda_record_edited_in_place_is_listed_again(tmp_path, monkeypatch) -> None:
    """review4 R4-4 for `list`: a conda record rewritten in place (no directory changes)
    gives the version it now states, as a fresh listing does."""
    import json

    prefix = tmp_path / "env"
    lib = prefix / "lib"
    lib.mkdir(parents=True)
    (prefix / "conda-meta").mkdir()
    os.chmod(tmp_path, 0o755)
    real = lib / "libz.so.1.2.13"
    shutil.copy2(os.path.realpath(os.path.join(SYSLIB, "libz.so.1")), real)
    record = prefix / "conda-meta" / "zlib-1.2.13-0.json"
    record.write_text(json.dumps({"name": "zlib", "version": "1.2.13", "files": ["lib/libz.so.1.2.13"]}))
    monkeypatch.setenv("LD_LIBRARY_PATH", str(lib))
    monkeypatch.setenv("LIBBROKER_CACHE_DIR", str(tmp_path / "cache"))
    _settle()
    rows = _rows(_listing.listing())
    [item] = [v for (_, path), v in rows.items() if path == str(real)]
    assert item["version"] == "1.2.13"
    with open(record, "r+") as f:
        f.write(json.dumps({"name": "zlib", "version": "9.9.9", "files": ["lib/libz.so.1.2.13"]}))
        f.truncate()
    _settle()
    from libbroker import _pkgdb

    _pkgdb._memo.clear()
    [item] = [v for (_, path), v in _rows(_listing.listing()).items() if path == str(real)]
    assert item["version"] == "9.9.9"
