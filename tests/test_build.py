"""Build-system integration (libbroker.build, `libbroker config`, libbroker.pc) and
the meson-python example (examples/meson_zlib), each built for real and checked
against Python's zlib."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import pytest

import libbroker
from libbroker import _cli, _versions

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "tests" / "specs"
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ELF consumers")


def test_config_flags(capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli.main(["config", "--includedir"]) == 0
    includedir = capsys.readouterr().out.strip()
    assert includedir == libbroker.get_include()
    assert (Path(includedir) / "libbroker.h").is_file()
    assert _cli.main(["config", "--cflags"]) == 0
    assert capsys.readouterr().out.strip() == f"-I{includedir}"
    assert _cli.main(["config", "--pkgconfig"]) == 0
    pcdir = capsys.readouterr().out.strip()
    # Review F7: --json on every reporting command (design 3.4): all three at once.
    assert _cli.main(["config", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "cflags": f"-I{includedir}", "includedir": includedir, "pkgconfig": pcdir}


def test_pkg_config_file(capsys: pytest.CaptureFixture[str]) -> None:
    if shutil.which("pkg-config") is None:
        pytest.skip("pkg-config is not installed")
    assert _cli.main(["config", "--pkgconfig"]) == 0
    pcdir = capsys.readouterr().out.strip()
    out = subprocess.run(["pkg-config", "--cflags", "libbroker"], capture_output=True, text=True,
                         env={**os.environ, "PKG_CONFIG_PATH": pcdir}, check=True).stdout
    flag = out.split()[0]
    assert flag.startswith("-I")
    assert os.path.samefile(flag[2:], libbroker.get_include())


def test_setuptools_helper_generates_into_the_build_dir_once(tmp_path: Path) -> None:
    pytest.importorskip("Cython")
    shutil.copy(SPECS / "zlib.toml", tmp_path)
    (tmp_path / "crcmod.pyx").write_text(
        "cimport libbroker_zlib as zlib\nzlib.import_zlib()\n"
        "def crc(bytes b):\n    return zlib.crc32(0, b, len(b))\n")
    (tmp_path / "setup.py").write_text(
        "from setuptools import Extension, setup\nfrom libbroker.build import build_ext\n"
        "setup(name='crcmod', ext_modules=[Extension('crcmod', ['crcmod.pyx'])],\n"
        "      cmdclass={'build_ext': build_ext})\n")
    command = [sys.executable, "setup.py", "build_ext", "--inplace", "--build-temp", "bt",
               "--libbroker-specs", "zlib.toml"]
    subprocess.run(command, cwd=tmp_path, check=True, capture_output=True, timeout=600)
    header = tmp_path / "bt" / "libbroker-generated" / "libbroker_zlib.h"
    assert header.is_file() and not (tmp_path / "libbroker_zlib.h").exists()
    stamps = {p: p.stat().st_mtime_ns for p in (header, tmp_path / "crcmod.c")}
    subprocess.run(command, cwd=tmp_path, check=True, capture_output=True, timeout=600)
    # Unchanged spec: the header keeps its mtime, so Cython does not run again.
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    out = subprocess.run([sys.executable, "-c", "import crcmod; print(crcmod.crc(b'libbroker'))"],
                         cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    assert int(out) == zlib.crc32(b"libbroker")


def test_meson_python_example_builds_and_runs(tmp_path: Path) -> None:
    for module in ("mesonpy", "Cython"):
        pytest.importorskip(module)
    if shutil.which("meson", path=os.path.dirname(sys.executable)) is None and shutil.which(
        "meson"
    ) is None:
        pytest.skip("meson is not installed")
    source = tmp_path / "meson_zlib"
    shutil.copytree(ROOT / "examples" / "meson_zlib", source)
    env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]}
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "-w",
         str(tmp_path / "dist"), str(source)],
        capture_output=True, text=True, timeout=900, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    [wheel] = (tmp_path / "dist").glob("meson_zlib-*.whl")
    target = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(target)
    [ext] = target.glob("meson_zlib*.so")
    needed = subprocess.run(["readelf", "-dW", str(ext)], capture_output=True, text=True,
                            check=True).stdout
    assert "libz" not in needed  # no link flags: zlib comes through the table
    data = os.urandom(10000)
    out = subprocess.run(
        [sys.executable, "-c",
         "import sys, meson_zlib; d = sys.stdin.buffer.read(); "
         "print(meson_zlib.crc32(d), meson_zlib.adler32(d), meson_zlib.crc32(b''))"],
        input=data, cwd=target, capture_output=True, check=True, timeout=120).stdout.split()
    assert [int(x) for x in out] == [zlib.crc32(data), zlib.adler32(data), 0]


def test_find_sees_what_a_spec_packages_reaches(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("scipy_openblas32")
    assert _cli.main(["find", "scipy_openblas"]) == 1  # not on any default path
    capsys.readouterr()
    assert _cli.main(["find", "scipy_openblas", "--package", "scipy-openblas32", "--json"]) == 0
    import json

    data = json.loads(capsys.readouterr().out)
    assert data["origin"] == "package:scipy-openblas32"
    assert os.path.basename(data["path"]) == "libscipy_openblas.so"


def test_list_is_sorted_with_versions_and_sees_packages(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    assert _cli.main(["list", "--json"]) == 0
    groups = json.loads(capsys.readouterr().out)
    for items in groups.values():
        keys = [(i["name"], i["path"]) for i in items]
        assert keys == sorted(keys)
        for item in items:  # design.md 5.2: a version always with its source
            assert (item["version"] is None) == (item["version_source"] is None), item
            if item["version_source"] == "file-name":  # only names that carry the product's
                real = os.path.realpath(item["path"])
                assert _versions.file_name_version(real, item["name"]) == item["version"], item
    system = {i["name"]: i for i in groups["system"]}
    if "z" in system:  # Python's zlib module reports the same library's answer
        import zlib

        if os.path.realpath(system["z"]["path"]) in _mapped_files():
            assert system["z"]["version"] == zlib.ZLIB_RUNTIME_VERSION
    if "bz2" in system:  # libbz2.so.1.0.4: never 1.0.4 (bzip2 1.0.8)
        assert system["bz2"]["version"] != os.path.realpath(system["bz2"]["path"]).partition(".so.")[2]
    pytest.importorskip("scipy_openblas32")
    assert _cli.main(["list", "--json", "--package", "scipy-openblas32"]) == 0
    groups = json.loads(capsys.readouterr().out)
    assert [i["name"] for i in groups["package:scipy-openblas32"]] == ["scipy_openblas"]


def _mapped_files() -> set[str]:
    from libbroker import _master

    return {os.path.realpath(p) for p, _ in _master.loaded_objects() if p}


def test_a_pin_to_a_missing_file_says_to_fix_the_pin(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "config.toml"
    libbroker.load("z")  # a copy libbroker loaded (earlier tests do) must not hide a broken pin
    config.write_text(f'[libraries.z]\npath = "{tmp_path / "gone" / "libz.so.1"}"\n')
    monkeypatch.setenv("LIBBROKER_CONFIG", str(config))
    with pytest.raises(libbroker.LibraryNotFoundError) as info:
        libbroker.find("z")
    # Review F9: installing the library cannot help while the pin wins; the fix names
    # the pin and the config file that holds it, and is the error's only fix line.
    message = str(info.value)
    assert message.splitlines()[-1] == (
        f"fix: correct the pin ([libraries.z] path in {str(config)!r}) to name a usable copy "
        "of the library (the reason it was refused is above), or remove it to search as usual")
    assert "No such file or directory" in message and message.count("fix:") == 1


def test_a_pin_fix_is_chosen_by_the_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "config.toml"
    monkeypatch.setenv("LIBBROKER_CONFIG", str(config))
    system = libbroker.find("z").path
    config.write_text(f'[libraries.z]\npath = "{system}"\n')
    with pytest.raises(libbroker.LibraryNotFoundError) as info:
        libbroker.find("z", ">=999")
    assert str(info.value).splitlines()[-1] == (
        f"fix: correct the pin ([libraries.z] path in {str(config)!r}) to name a copy whose "
        "version matches '>=999', or remove it to search as usual")
    # A pinned file whose dependency is missing: that dependency is the first fix.
    lib = tmp_path / "lib"
    lib.mkdir(mode=0o755)
    os.chmod(tmp_path, 0o755)
    for name, source, extra in (("libpdep.so.1", "int dep(void) { return 1; }\n", []),
                                ("libpinned.so.1", "int dep(void); int f(void) { return dep(); }\n",
                                 [str(lib / "libpdep.so.1")])):
        (lib / "x.c").write_text(source)
        subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(lib / name), str(lib / "x.c"),
                        f"-Wl,-soname,{name}", *extra], check=True)
    (lib / "libpdep.so.1").unlink()
    config.write_text(f'[libraries.pinned]\npath = "{lib / "libpinned.so.1"}"\n')
    with pytest.raises(libbroker.LibraryNotFoundError) as info:
        libbroker.find("pinned")
    last = str(info.value).splitlines()[-1]
    assert "libpdep.so.1" in str(info.value)
    assert last.startswith("fix: install the package that provides the missing dependency")
    assert last.endswith(f"; or correct the pin ([libraries.pinned] path in {str(config)!r})")
