"""libbroker._resolve: verdicts, true versions and the fix line chosen by the reason."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import libbroker
from libbroker import LibraryNotFoundError, NoAcceptableLibraryError

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ELF host")


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIBBROKER_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("LIBBROKER_CONFIG", str(tmp_path / "no-config.toml"))
    monkeypatch.delenv("LIBBROKER_PATH", raising=False)
    os.chmod(tmp_path, 0o755)


def _dpkg_version(package: str) -> str | None:
    out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True, check=False)
    return out.stdout or None if out.returncode == 0 else None


def _upstream(debian_version: str) -> str:
    # "1.0.8-5+b1" -> "1.0.8"; "7.88.1-10+deb12u5" -> "7.88.1" (epoch and revision dropped)
    version = debian_version.split(":", 1)[-1].rsplit("-", 1)[0]
    match = re.match(r"\d+(\.\d+)*", version)
    assert match
    return match.group(0)


# r11: interface numbers in file names are never versions; versions come from true sources.
@pytest.mark.parametrize(
    ("link", "package", "interface"),
    [
        ("bz2", "libbz2-1.0", "1.0.4"),
        ("curl", "libcurl4", "4.8.0"),
        ("expat", "libexpat1", "1.8.10"),
        ("ffi", "libffi8", "8.1.2"),
        ("png16", "libpng16-16", "16.39.0"),
        ("uuid", "libuuid1", "1.3.0"),
        ("gmp", "libgmp10", "10.4.1"),
        ("tiff", "libtiff6", "6.0.0"),
    ],
)
def test_versions_are_product_versions(link: str, package: str, interface: str) -> None:
    deb = _dpkg_version(package)
    if deb is None:
        pytest.skip(f"{package} is not installed (.ci/apt-packages.txt installs it)")
    info = libbroker.find(link)
    assert info.version_text != interface
    if info.version is not None:
        assert info.version_source in ("library", "provider") or info.version_source.startswith("package:")
        assert str(info.version) == _upstream(deb) or info.version_source == "library"
    # A specifier the product version satisfies is accepted (bz2 1.0.8 >= 1.0.6).
    upstream = _upstream(deb)
    accepted = libbroker.find(link, f">={upstream}") if info.version is not None else None
    if accepted is not None:
        assert accepted.path == info.path


def test_version_outside_specifier_gets_a_version_fix_not_install() -> None:
    with pytest.raises(NoAcceptableLibraryError) as caught:
        libbroker.find("z", ">=999")
    text = str(caught.value)
    assert "outside the specifier" in text
    assert "fix: install a version of 'z' matching '>=999'" in text


def test_dangling_symlink_fix_names_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "liblbdangle.so.1").symlink_to(tmp_path / "nowhere.so")
    monkeypatch.setenv("LIBBROKER_PATH", str(tmp_path))
    with pytest.raises(LibraryNotFoundError) as caught:
        libbroker.find("lbdangle")
    assert "dangling symlink" in str(caught.value)
    assert "fix: repair or remove the dangling symlink" in str(caught.value)


def test_missing_dependency_fix_says_which(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "d.c"
    src.write_text("int d(void){return 1;}\n")
    (tmp_path / "deps").mkdir()
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(tmp_path / "deps" / "liblbgone.so.1"), str(src),
                    "-Wl,-soname,liblbgone.so.1"], check=True)
    (tmp_path / "lib").mkdir()
    user = tmp_path / "n.c"
    user.write_text("int d(void); int n(void){return d();}\n")  # a reference, or --as-needed drops it
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(tmp_path / "lib" / "liblbneeds.so.1"), str(user),
                    "-Wl,-soname,liblbneeds.so.1", f"-L{tmp_path / 'deps'}", "-l:liblbgone.so.1"], check=True)
    monkeypatch.setenv("LIBBROKER_PATH", str(tmp_path / "lib"))
    with pytest.raises(NoAcceptableLibraryError) as caught:
        libbroker.load("lbneeds")
    text = str(caught.value)
    assert "liblbgone.so.1" in text and "cannot be found" in text
    assert "fix: install the package that provides the missing dependency" in text
    assert "[Errno" not in text


def test_dlopen_failure_cause_never_errno_0(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A file that passes every check without loading but fails in dlopen: an
    # undefined symbol under RTLD_NOW. The cause is dlerror's text.
    src = tmp_path / "u.c"
    src.write_text("int nowhere_defined_xyz(void); int f(void){return nowhere_defined_xyz();}\n")
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(tmp_path / "liblbundef.so.1"), str(src),
                    "-Wl,-soname,liblbundef.so.1"], check=True)
    monkeypatch.setenv("LIBBROKER_PATH", str(tmp_path))
    with pytest.raises(libbroker.BrokerError) as caught:
        libbroker.load("lbundef")
    text = str(caught.value)
    assert "nowhere_defined_xyz" in text and "[Errno 0]" not in text


def test_unknown_version_gets_its_own_fix_line(tmp_path, monkeypatch) -> None:
    """review F1: when the only copy's version is unknown, the fix line says so; it never claims
    the copies found "have other versions"."""
    lib = tmp_path / "lib"
    lib.mkdir()
    os.chmod(tmp_path, 0o755)
    os.chmod(lib, 0o755)
    src = tmp_path / "foo.c"
    src.write_text("int foo_fn(void) { return 1; }\n")
    subprocess.run(["gcc", "-shared", "-fPIC", "-Wl,-soname,libfoo.so.1", "-o", str(lib / "libfoo.so.1"),
                    str(src)], check=True)
    monkeypatch.setenv("LIBBROKER_PATH", str(lib))
    with pytest.raises(NoAcceptableLibraryError) as info:
        libbroker.find("foo", ">=1")
    text = str(info.value)
    assert "its version is unknown" in text
    fix = [line for line in text.splitlines() if line.startswith("fix:")]
    assert fix and "unknown" in fix[-1] and "other versions" not in fix[-1], text


def _copy_of_libz(directory: Path) -> Path:
    import ctypes.util

    # The real zlib under its SONAME, copied into a directory LIBBROKER_PATH names.
    found = libbroker.find("z")
    directory.mkdir(mode=0o755, exist_ok=True)
    target = directory / (found.soname or "libz.so.1")
    target.write_bytes(Path(found.path).read_bytes())
    assert ctypes.util.find_library("z")  # the system copy the search did not need to read
    return target


def test_search_stops_at_the_place_that_answers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A file accepted from LIBBROKER_PATH ends the search: no provider scan, no ld.so.cache,
    # no default directory is read or stamped (they cannot change which file is first).
    from libbroker._resolve import resolve

    copy = _copy_of_libz(tmp_path / "override")
    monkeypatch.setenv("LIBBROKER_PATH", str(copy.parent))
    first = resolve("z")
    assert first.chosen is not None and first.chosen.path == str(copy)
    assert [s for s in first.search.searched] == [f"LIBBROKER_PATH: {str(copy.parent)!r}"]
    # The directories stamped: the override alone (the sys.path directories and providers
    # are stamped by every search, as the closure reads them: "@site", "@providers").
    stamped = {key for key, _ in first.search.stamps if not key.startswith("@")}
    assert stamped == {str(copy.parent)}
    # Every place is still searched when all candidates are asked for.
    everything = resolve("z", stop_at_first=False)
    assert any(s.startswith("ld.so.cache:") for s in everything.search.searched)
    assert any(key == "/etc/ld.so.cache" for key, _ in everything.search.stamps)
    assert len(everything.candidates) > 1


def test_search_goes_on_past_a_refused_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A rejected override (a text file named like the library) does not end the search:
    # the next places are read, and the system copy is chosen.
    from libbroker._resolve import resolve

    bad = tmp_path / "override"
    bad.mkdir(mode=0o755)
    (bad / "libz.so.1").write_text("not a library\n")
    monkeypatch.setenv("LIBBROKER_PATH", str(bad))
    resolution = resolve("z")
    assert resolution.chosen is not None
    assert os.path.dirname(resolution.chosen.path) != str(bad)
    assert not resolution.candidates[0].accepted
    assert any(s.startswith("ld.so.cache:") for s in resolution.search.searched)


def test_not_found_names_every_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Nothing accepted: the search went everywhere, and the error says so.
    with pytest.raises(LibraryNotFoundError) as caught:
        libbroker.find("lbnosuchlibrary")
    text = str(caught.value)
    assert "ld.so.cache" in text and "default directory" in text


def test_a_later_place_changing_keeps_the_verdict(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The verdict of a file found in LIBBROKER_PATH stamps only that directory: a change
    # in a later place (an LD_LIBRARY_PATH directory gaining a file) leaves it current,
    # and the next process replays it without judging (the find cache).
    copy = _copy_of_libz(tmp_path / "override")
    later = tmp_path / "ldpath"
    later.mkdir(mode=0o755)
    env = {**os.environ, "LIBBROKER_PATH": str(copy.parent), "LD_LIBRARY_PATH": str(later)}
    code = ("import libbroker, libbroker._resolve as r\n"
            "calls = []\n"
            "real = r.judge\n"
            "r.judge = lambda *a, **k: calls.append(1) or real(*a, **k)\n"
            "print(libbroker.find('z').path, len(calls))\n")

    def run() -> list[str]:
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                             check=True)
        return out.stdout.split()

    assert run() == [str(copy), "1"]
    (later / "unrelated.txt").write_text("a change in a place after the answer\n")
    assert run() == [str(copy), "0"]  # replayed: nothing judged again
    (copy.parent / "README").write_text("the place that answered changed\n")
    assert run() == [str(copy), "1"]  # judged afresh


def test_a_search_that_stops_early_still_stamps_the_closure_inputs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # review5 F11, F12: the closure of the chosen file is resolved with provider wheels
    # first and LD_LIBRARY_PATH's $ORIGIN expanded, whichever place gave the file: the
    # sys.path directories, the providers seen and the executable's directory are inputs.
    from libbroker._resolve import resolve

    copy = _copy_of_libz(tmp_path / "override")
    monkeypatch.setenv("LIBBROKER_PATH", str(copy.parent))
    monkeypatch.setenv("LD_LIBRARY_PATH", "$ORIGIN/../lib")
    resolution = resolve("z")
    assert resolution.chosen is not None and resolution.chosen.path == str(copy)
    kinds = [key for key, _ in resolution.search.stamps]
    assert "@origin" in kinds and "@providers" in kinds and "@site" in kinds
    assert "/etc/ld.so.cache" not in kinds  # the search itself still stopped at the override


def test_a_verdict_from_ld_so_cache_is_not_replayed_from_its_own_directory(tmp_path: Path) -> None:
    # review5 F10: the directory of an ld.so.cache entry is a searched place; a verdict
    # taken from it records that it was not the cwd, so a process whose cwd it is judges
    # afresh (and refuses it, as the current directory is never searched).
    env = {**os.environ, "LIBBROKER_CACHE_DIR": str(tmp_path / "cache"),
           "LIBBROKER_CONFIG": str(tmp_path / "no-config.toml")}
    env.pop("LIBBROKER_PATH", None)
    env.pop("LD_LIBRARY_PATH", None)
    code = "import libbroker\ntry:\n    print(libbroker.find('z').path)\nexcept libbroker.BrokerError as e:\n    print('refused', type(e).__name__)\n"
    first = subprocess.run([sys.executable, "-c", code], env=env, cwd="/", capture_output=True,
                           text=True, check=True).stdout.strip()
    assert first.startswith("/"), first
    home = os.path.dirname(os.path.realpath(first))
    again = subprocess.run([sys.executable, "-c", code], env=env, cwd=home, capture_output=True,
                           text=True, check=True).stdout.strip()
    fresh_env = {**env, "LIBBROKER_CACHE_DIR": str(tmp_path / "fresh")}
    fresh = subprocess.run([sys.executable, "-c", code], env=fresh_env, cwd=home, capture_output=True,
                           text=True, check=True).stdout.strip()
    assert again == fresh  # the cache agrees with the rules
    assert not (again.startswith("/") and os.path.dirname(os.path.realpath(again)) == home)


def _libz_bytes() -> bytes:
    return Path(libbroker.find("z").path).read_bytes()


def test_a_link_planted_in_a_refused_place_does_not_hide_the_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # review5 F6: anyone who can write a refused place (world-writable) could plant a link
    # to the system libz there; the system copy, reached later from a safe place, is still
    # judged on its own and chosen.
    system = os.path.realpath(libbroker.find("z").path)
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    (shared / "libz.so.1").symlink_to(system)
    monkeypatch.setenv("LD_LIBRARY_PATH", str(shared))
    from libbroker._resolve import resolve

    resolution = resolve("z")
    assert resolution.chosen is not None
    assert os.path.dirname(resolution.chosen.path) != str(shared)
    assert "unsafe place" in (resolution.candidates[0].reason or "")


def test_the_soname_name_is_not_taken_from_a_refused_place(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # review5 F4: a second name of the chosen file (its SONAME name) in a refused place
    # does not become the path reported and loaded.
    safe = tmp_path / "safe"
    safe.mkdir(mode=0o755)
    (safe / "libz.so.1.2.13").write_bytes(_libz_bytes())
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    (shared / "libz.so.1").symlink_to(safe / "libz.so.1.2.13")
    monkeypatch.setenv("LIBBROKER_PATH", f"{safe}:{shared}")
    from libbroker._resolve import resolve

    resolution = resolve("z", stop_at_first=False)
    assert resolution.chosen is not None and resolution.chosen.path == str(safe / "libz.so.1.2.13")


def test_a_refused_file_rewritten_in_place_voids_the_verdict(tmp_path: Path) -> None:
    # review5 F3: a file refused for what it is (here text) ranks before the chosen copy;
    # rewritten in place into a library (same inode, directory untouched), the next
    # process chooses it, cache or not.
    first = tmp_path / "first"
    second = tmp_path / "second"
    for d in (first, second):
        d.mkdir(mode=0o755)
    (first / "libz.so.1").write_text("not a library\n")
    (second / "libz.so.1").write_bytes(_libz_bytes())
    env = {**os.environ, "LIBBROKER_PATH": f"{first}:{second}",
           "LIBBROKER_CACHE_DIR": str(tmp_path / "cache"),
           "LIBBROKER_CONFIG": str(tmp_path / "no-config.toml")}
    code = "import libbroker; print(libbroker.find('z').path)"

    def chosen() -> str:
        return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                              text=True, check=True, cwd="/").stdout.strip()

    assert chosen() == str(second / "libz.so.1")
    assert chosen() == str(second / "libz.so.1")  # replayed
    before = os.stat(first)
    with open(first / "libz.so.1", "r+b") as f:  # the same inode, rewritten
        f.write(_libz_bytes())
    after = os.stat(first)
    assert (before.st_mtime_ns, before.st_ctime_ns) == (after.st_mtime_ns, after.st_ctime_ns)
    assert chosen() == str(first / "libz.so.1")


def test_an_accepted_copy_that_fails_to_load_is_named_when_another_serves(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # review5 F7: an override that passes every check but fails in dlopen (an undefined
    # symbol under RTLD_NOW) is skipped for the next copy, with a warning that says so.
    src = tmp_path / "bad.c"
    src.write_text("unsigned long lb_missing_fn(void);\n"
                   "unsigned long crc32(unsigned long c, const unsigned char *b, unsigned n)"
                   " { return lb_missing_fn(); }\n")
    over = tmp_path / "over"
    over.mkdir(mode=0o755)
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(over / "libz.so.1"), str(src),
                    "-Wl,-soname,libz.so.1"], check=True)
    monkeypatch.setenv("LIBBROKER_PATH", str(over))
    with pytest.warns(libbroker.BrokerWarning, match="was accepted but not used.*lb_missing_fn") as caught:
        library = libbroker.load("z")
    assert os.path.dirname(library.path) != str(over)
    assert str(over / "libz.so.1") in str(caught[0].message) and library.path in str(caught[0].message)


def _find_in_child(env: dict[str, str], name: str) -> str:
    code = f"import libbroker; print(libbroker.find({name!r}).path)"
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True, cwd="/").stdout.strip()


def _two_places(tmp_path: Path) -> tuple[Path, Path, dict[str, str]]:
    first, second = tmp_path / "first", tmp_path / "second"
    for d in (first, second):
        d.mkdir(mode=0o755)
    env = {**os.environ, "LIBBROKER_PATH": f"{first}:{second}",
           "LIBBROKER_CACHE_DIR": str(tmp_path / "cache"),
           "LIBBROKER_CONFIG": str(tmp_path / "no-config.toml")}
    return first, second, env


def test_a_dangling_link_ranked_first_is_judged_again_once_its_target_appears(tmp_path: Path) -> None:
    # review6 N1: a dangling link has no identity; the directory its target would appear
    # in is what its refusal rests on.
    first, second, env = _two_places(tmp_path)
    (first / "real").mkdir(mode=0o755)
    (first / "libz.so.1").symlink_to(first / "real" / "libz.so.1.2.13")
    (second / "libz.so.1").write_bytes(_libz_bytes())
    assert _find_in_child(env, "z") == str(second / "libz.so.1")
    assert _find_in_child(env, "z") == str(second / "libz.so.1")
    (first / "real" / "libz.so.1.2.13").write_bytes(_libz_bytes())
    assert _find_in_child(env, "z") == str(first / "libz.so.1")


def test_a_file_refused_for_its_place_is_judged_again_once_the_place_is_safe(tmp_path: Path) -> None:
    # review6 N4: the refusal's fix (chmod go-w of the target's directory) is noticed.
    first, second, env = _two_places(tmp_path)
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    (shared / "libz.so.1.2.13").write_bytes(_libz_bytes())
    (first / "libz.so.1").symlink_to(shared / "libz.so.1.2.13")
    (second / "libz.so.1").write_bytes(_libz_bytes())
    assert _find_in_child(env, "z") == str(second / "libz.so.1")
    os.chmod(shared, 0o755)
    assert _find_in_child(env, "z") == str(first / "libz.so.1")


def test_a_file_refused_for_a_missing_dependency_is_judged_again_once_it_appears(tmp_path: Path) -> None:
    # review6 N3: the directories its closure search looked in are inputs of the verdict.
    first, second, env = _two_places(tmp_path)
    deps = first / "deps"
    deps.mkdir(mode=0o755)
    src = tmp_path / "d.c"
    src.write_text("int lbn3dep(void) { return 1; }\n")
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(tmp_path / "liblbn3dep.so.1"), str(src),
                    "-Wl,-soname,liblbn3dep.so.1"], check=True)
    user = tmp_path / "n.c"
    user.write_text("int lbn3dep(void); int lbn3(void) { return lbn3dep(); }\n")
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(first / "liblbn3.so.1"), str(user),
                    "-Wl,-soname,liblbn3.so.1", f"-L{tmp_path}", "-l:liblbn3dep.so.1",
                    "-Wl,--enable-new-dtags,-rpath,$ORIGIN/deps"], check=True)
    alone = tmp_path / "alone.c"
    alone.write_text("int lbn3(void) { return 2; }\n")
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(second / "liblbn3.so.1"), str(alone),
                    "-Wl,-soname,liblbn3.so.1"], check=True)
    assert _find_in_child(env, "lbn3") == str(second / "liblbn3.so.1")
    assert _find_in_child(env, "lbn3") == str(second / "liblbn3.so.1")
    os.rename(tmp_path / "liblbn3dep.so.1", deps / "liblbn3dep.so.1")
    assert _find_in_child(env, "lbn3") == str(first / "liblbn3.so.1")
