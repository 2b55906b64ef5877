"""Provider wheels and a spec's ``packages``, found from metadata without importing.

The provider tests install a wheel built by `wrap` into a fresh venv and query it
from that venv's interpreter; the package tests use the real scipy-openblas32
wheel. Broken providers are laid out in tmp_path as pip would install them.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
import venv
from importlib import metadata

import pytest
from _host import forget_answers

import libbroker
from libbroker import LibraryNotFoundError
from libbroker._providers import ProvidedFile, package_files, provider_files, provider_names

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(libbroker.__file__)))


LBT_C = r"""
#include <string.h>
int lbt_add(int a, int b) { return a + b; }
const char *lbt_version(void) { return "lbt 2.5.1"; }
size_t lbt_len(const char *s) { return strlen(s); }
"""


def build_lbt(directory: str) -> str:
    """Compile liblbt.so.2.5.1 (soname liblbt.so.2) in *directory*."""
    src = os.path.join(directory, "lbt.c")
    with open(src, "w") as f:
        f.write(LBT_C)
    out = os.path.join(directory, "liblbt.so.2.5.1")
    subprocess.run(["gcc", "-shared", "-fPIC", "-Wl,-soname,liblbt.so.2", "-o", out, src], check=True)
    return out


def run_python(python: str, code: str, cache_dir: str) -> dict:
    """Run *code* in *python* with this libbroker importable; it prints one JSON value."""
    env = dict(os.environ, PYTHONPATH=ROOT, LIBBROKER_CACHE_DIR=cache_dir)
    proc = subprocess.run(
        [python, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


QUERY = """
import json, sys
from libbroker._providers import provider_files, provider_names
from libbroker._record import verify_record
from libbroker._errors import IncompatibleLibraryError
files, searched = provider_files({name!r})
verified = []
for f in files:
    try:
        verify_record(f.path, f.dist)
        verified.append(None)
    except IncompatibleLibraryError as exc:
        verified.append(str(exc))
print(json.dumps({{
    "files": [{{s: getattr(f, s) for s in f.__slots__}} for f in files],
    "searched": searched,
    "verified": verified,
    "names": provider_names(),
    "imported": sorted(m for m in sys.modules if m.startswith("libbroker_provider")),
    "prefix": sys.prefix,
}}))
"""


class Venv:
    def __init__(self, root: str, wheel: str, cache: str) -> None:
        self.root = root
        self.wheel = wheel
        self.cache = cache
        self.python = os.path.join(root, "bin", "python")

    def pip(self, *args: str) -> None:
        subprocess.run([self.python, "-m", "pip", "--disable-pip-version-check", "-q", *args], check=True)

    def query(self, name: str = "lbt") -> dict:
        return run_python(self.python, QUERY.format(name=name), self.cache)


@pytest.fixture(scope="module")
def provider_venv(tmp_path_factory: pytest.TempPathFactory) -> Venv:
    if shutil.which("gcc") is None:
        pytest.skip("gcc is needed to build the test library")
    from libbroker._wrap import wrap

    base = tmp_path_factory.mktemp("provider")
    lib = build_lbt(str(base))
    wheel = wrap(lib, name="lbt", version="2.5.1", out_dir=str(base / "dist"))
    env = Venv(str(base / "venv"), wheel, str(base / "cache"))
    venv.EnvBuilder(with_pip=True, symlinks=True).create(env.root)
    env.pip("install", "--no-deps", "--no-index", wheel)
    return env


def test_provider_found_in_venv_without_import(provider_venv: Venv) -> None:
    result = provider_venv.query()
    [found] = result["files"]
    site = os.path.realpath(provider_venv.root)
    assert found["path"] == os.path.realpath(found["path"])
    assert found["path"].startswith(site + os.sep)
    assert found["path"].endswith(os.path.join("site-packages", "libbroker_provider_lbt", "lib", "liblbt.so.2"))
    assert found["dist"] == "libbroker-provider-lbt"
    assert found["origin"] == "provider:libbroker-provider-lbt"
    assert (found["version"], found["soname"]) == ("2.5.1", "liblbt.so.2")
    assert (found["symbol_prefix"], found["symbol_suffix"], found["specs"]) == (None, None, [])
    manifest = os.path.join(os.path.dirname(os.path.dirname(found["path"])), "libbroker-provider.toml")
    assert result["searched"] == [f"provider 'libbroker-provider-lbt' 2.5.1 ({manifest})"]
    assert result["verified"] == [None]
    assert result["names"] == {"lbt": ["libbroker-provider-lbt"]}
    assert result["imported"] == []  # the provider's package was never imported
    # The file is the library that was wrapped: ctypes (a loader nobody here wrote)
    # agrees. In a child process: a later test rewrites this file, which must never
    # be mapped in the test runner.
    loaded = run_python(
        provider_venv.python,
        f"""
        import ctypes, json
        lib = ctypes.CDLL({found["path"]!r})
        lib.lbt_version.restype = ctypes.c_char_p
        print(json.dumps([lib.lbt_add(2, 3), lib.lbt_version().decode()]))
        """,
        provider_venv.cache,
    )
    assert loaded == [5, "lbt 2.5.1"]


def test_other_names_find_nothing_in_venv(provider_venv: Venv) -> None:
    result = provider_venv.query("z")
    assert result["files"] == []
    assert result["searched"] == ["provider entry points (group 'libbroker.providers'): none named 'z'"]


def test_tampered_provider_is_refused(provider_venv: Venv) -> None:
    path = provider_venv.query()["files"][0]["path"]  # verified and cached by now
    with open(path, "rb") as f:
        original = f.read()
    try:
        with open(path, "ab") as f:
            f.write(b"\0")
        result = provider_venv.query()
        [reason] = result["verified"]
        assert "the file was modified after installation: RECORD of 'libbroker-provider-lbt' says sha256=" in reason
        actual = base64.urlsafe_b64encode(hashlib.sha256(original + b"\0").digest()).rstrip(b"=").decode()
        assert f"the file has sha256={actual}" in reason
        assert "fix: reinstall libbroker-provider-lbt" in reason
    finally:
        with open(path, "wb") as f:
            f.write(original)
    assert provider_venv.query()["verified"] == [None]


def test_same_size_edit_with_restored_mtime_is_refused(provider_venv: Venv) -> None:
    """The RECORD verdict is cached per full identity: ctime moves even when mtime is put back."""
    path = provider_venv.query()["files"][0]["path"]
    assert provider_venv.query()["verified"] == [None]  # verified and cached
    load = """
        import json, libbroker
        try:
            lib = libbroker.load("lbt")
            print(json.dumps([lib.origin, lib.path]))
        except libbroker.BrokerError as e:
            print(json.dumps(["refused", str(e)]))
        """
    assert run_python(provider_venv.python, load, provider_venv.cache)[0] == "provider:libbroker-provider-lbt"
    st = os.stat(path)
    with open(path, "rb") as f:
        original = f.read()
    edited = bytearray(original)
    at = original.index(b"lbt 2.5.1")
    edited[at : at + 9] = b"lbt 6.6.6"  # same size, still a valid library
    try:
        with open(path, "r+b") as f:
            f.write(edited)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
        assert os.stat(path).st_mtime_ns == st.st_mtime_ns and os.stat(path).st_size == st.st_size
        [reason] = provider_venv.query()["verified"]
        assert reason and "the file was modified after installation" in reason
        # the whole path too: the find cache written above must not serve the edited file
        outcome = run_python(provider_venv.python, load, provider_venv.cache)
        assert outcome[0] != "provider:libbroker-provider-lbt", outcome
    finally:
        with open(path, "wb") as f:
            f.write(original)
    assert provider_venv.query()["verified"] == [None]


@pytest.mark.parametrize("how", ["in-place", "rename"])
def test_manifest_change_voids_the_cached_find(provider_venv: Venv, how: str) -> None:
    """review F4: find() served a cached verdict after the provider manifest changed while
    load() re-resolved; a manifest edit (in place, or replaced by rename as pip does) voids it."""
    [first] = provider_venv.query()["files"]
    package = first["path"].split("/libbroker_provider_lbt/")[0] + "/libbroker_provider_lbt"
    manifest = os.path.join(package, "libbroker-provider.toml")
    both = """
        import json, libbroker
        info, lib = libbroker.find("lbt"), libbroker.load("lbt")
        print(json.dumps([info.version_text, info.version_source, lib.version_text]))
        """
    # (The test venv has no `packaging`: no specifier here, the versions are compared.)
    assert run_python(provider_venv.python, both, provider_venv.cache) == ["2.5.1", "provider", "2.5.1"]
    with open(manifest) as f:
        original = f.read()
    assert 'version = "2.5.1"' in original
    edited = original.replace('version = "2.5.1"', 'version = "0.5"')
    try:
        if how == "rename":
            with open(manifest + ".new", "w") as f:
                f.write(edited)
            os.rename(manifest + ".new", manifest)
        else:
            with open(manifest, "w") as f:
                f.write(edited)
        # find (cached before the edit) and load (re-resolved) agree on the manifest's new word.
        assert run_python(provider_venv.python, both, provider_venv.cache) == ["0.5", "provider", "0.5"]
    finally:
        with open(manifest, "w") as f:
            f.write(original)


def test_uninstalled_provider_is_gone(provider_venv: Venv) -> None:
    provider_venv.pip("uninstall", "-y", "libbroker-provider-lbt")
    try:
        result = provider_venv.query()
        assert result["files"] == [] and result["names"] == {}
        assert result["searched"] == ["provider entry points (group 'libbroker.providers'): none named 'lbt'"]
    finally:
        provider_venv.pip("install", "--no-deps", "--no-index", provider_venv.wheel)
    assert len(provider_venv.query()["files"]) == 1


# --- providers with broken metadata, laid out by hand -------------------------------


def install_fake(site, name: str, files: dict[str, str], entry_points: str) -> None:
    dist_info = site / f"{name.replace('-', '_')}-1.0.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text(entry_points)
    rows = [f"{dist_info.name}/METADATA,,", f"{dist_info.name}/entry_points.txt,,", f"{dist_info.name}/RECORD,,"]
    for rel, text in files.items():
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_text(text)
        rows.append(f"{rel},,")
    (dist_info / "RECORD").write_text("\n".join(rows) + "\n")


@pytest.fixture
def site(tmp_path, monkeypatch):
    path = tmp_path / "site"
    path.mkdir()
    monkeypatch.syspath_prepend(str(path))
    return path


MANIFEST = "brokenprov/libbroker-provider.toml"
EP = "[libbroker.providers]\nbrk = brokenprov\n"


@pytest.mark.parametrize(
    ("manifest", "reason"),
    [
        ('[[library]]\nname = "brk"\nfile = "../../../etc/passwd"\n', "points outside the package directory"),
        ('[[library]]\nname = "brk"\nfile = "/etc/passwd"\n', "must be relative to the package directory"),
        ('[[library]]\nname = "brk"\nfile = "lib/libbrk.so.1"\n', "'lib/libbrk.so.1' does not exist"),
        ('[[library]]\nname = "other"\nfile = "x"\n', "no [[library]] entry has name = 'brk'"),
        ('[[library]]\nname = "brk"\nfile = "lib/real.so"\nversion = 1\n', "library[0].version must be a string"),
        ("[[library]\n", "unreadable manifest"),
        ('library = "x"\n', "expected [[library]] tables"),
    ],
)
def test_broken_manifest_is_skipped_with_its_reason(site, manifest: str, reason: str) -> None:
    install_fake(site, "broken-prov", {MANIFEST: manifest, "brokenprov/lib/real.so": "x"}, EP)
    files, searched = provider_files("brk")
    assert files == []
    [line] = searched
    assert line.startswith(f"provider 'broken-prov' 1.0 ({site / MANIFEST}): ")
    assert reason in line and line.endswith("(ignored)")


def test_manifest_not_in_record_is_skipped(site) -> None:
    install_fake(site, "broken-prov", {"brokenprov/__init__.py": ""}, EP)
    (site / MANIFEST).write_text('[[library]]\nname = "brk"\nfile = "__init__.py"\n')
    files, searched = provider_files("brk")
    assert files == []
    assert searched == [
        "provider 'broken-prov' 1.0: brokenprov/libbroker-provider.toml is not listed in its RECORD "
        "(ignored; fix: reinstall broken-prov with pip, not in editable mode)"
    ]


def test_entry_point_value_must_be_a_package(site) -> None:
    install_fake(site, "broken-prov", {}, "[libbroker.providers]\nbrk = 1brokenprov\nbrk2 = not a name\n")
    files, searched = provider_files("brk")
    assert files == []
    assert searched == [
        "provider 'broken-prov' 1.0: entry point 'brk' = '1brokenprov' is not a package name "
        "(ignored; fix: the provider's entry point value must name the package holding "
        "libbroker-provider.toml)"
    ]
    files, searched = provider_files("brk2")
    assert files == [] and "'not a name' is not a package name" in searched[0]


def test_manifest_fields_and_attribute_suffix(site) -> None:
    # A `package:attr` value names the package before the colon; one manifest may
    # list several libraries; specs resolve inside the package.
    manifest = (
        '[[library]]\nname = "brk"\nfile = "lib/libbrk.so.1"\nversion = "3.0"\nsoname = "libbrk.so.1"\n'
        'symbol-prefix = "p_"\nsymbol-suffix = "64_"\nspecs = ["brk.toml"]\n'
        '[[library]]\nname = "brk2"\nfile = "lib/libbrk2.so"\n'
    )
    files_on_disk = {MANIFEST: manifest, "brokenprov/lib/libbrk.so.1": "x", "brokenprov/lib/libbrk2.so": "y",
                     "brokenprov/brk.toml": ""}
    install_fake(site, "broken-prov", files_on_disk, "[libbroker.providers]\nbrk = brokenprov:anything\n")
    files, searched = provider_files("brk")
    package = os.path.realpath(site / "brokenprov")
    assert files == [
        ProvidedFile(
            os.path.join(package, "lib", "libbrk.so.1"), "broken-prov", "provider:broken-prov",
            version="3.0", soname="libbrk.so.1", symbol_prefix="p_", symbol_suffix="64_",
            specs=[os.path.join(package, "brk.toml")],
        )
    ]
    assert searched == [f"provider 'broken-prov' 1.0 ({os.path.join(package, 'libbroker-provider.toml')})"]
    assert provider_names().get("brk") == ["broken-prov"]


# --- packages = [...] ------------------------------------------------------------------


def test_package_link_name_patterns(site) -> None:
    names = ["libfoo.so", "libfoo.so.1", "libfoo.so.1.2.3", "libfoo-abc123.so", "libfoobar.so", "foo.so",
             "libfoo.so.x", "libfoo.a", "libbar.so.2"]
    install_fake(site, "foo-pkg", {f"foo_pkg/lib/{n}": n for n in names}, "")
    files, searched = package_files(["foo-pkg", "absent-pkg-xyz"], ["foo", "bar"])
    lib = os.path.realpath(site / "foo_pkg" / "lib")
    assert [f.path for f in files] == [os.path.join(lib, n) for n in sorted(
        ["libfoo.so", "libfoo.so.1", "libfoo.so.1.2.3", "libbar.so.2"])]
    assert {(f.dist, f.origin, f.version, f.soname) for f in files} == {("foo-pkg", "package:foo-pkg", None, None)}
    assert searched == [
        "package 'foo-pkg' 1.0: 4 file(s) for 'foo', 'bar' in its RECORD",
        "package 'absent-pkg-xyz': not installed (fix: pip install absent-pkg-xyz)",
    ]
    assert package_files(["foo-pkg"], ["baz"]) == ([], ["package 'foo-pkg' 1.0: no file for 'baz' in its RECORD"])


def test_package_entries_are_distribution_names_never_paths(site) -> None:
    # Review F6: a path (or a requirement) given as a package used to be looked up as a
    # name, found nowhere and dropped without a word. Names match normalised (PEP 503).
    install_fake(site, "foo-pkg", {"foo_pkg/lib/libfoo.so.1": "libfoo.so.1"}, "")
    outside = site.parent / "att"
    outside.mkdir()
    (outside / "libfoo.so.1").write_bytes(b"not searched")
    entries = ["Foo_Pkg", str(outside), "../att", "foo-pkg>=1", "foo pkg"]
    files, searched = package_files(entries, ["foo"])
    assert [f.path for f in files] == [os.path.realpath(site / "foo_pkg" / "lib" / "libfoo.so.1")]
    assert searched[0] == "package 'foo-pkg' 1.0: 1 file(s) for 'foo' in its RECORD"
    assert searched[1].startswith(f"package {str(outside)!r}: ignored, a path, not a distribution name")
    assert searched[2].startswith("package '../att': ignored, a path, not a distribution name")
    assert "fix: write only the name 'foo-pkg'" in searched[3]
    assert searched[4].startswith("package 'foo pkg': ignored, not a distribution name")
    assert all("fix:" in line for line in searched[1:])


SCIPY_OPENBLAS = """
import json, sys
from libbroker._providers import package_files
from libbroker._record import verify_record
files, searched = package_files(["scipy-openblas32"], ["scipy_openblas"])
for f in files:
    verify_record(f.path, f.dist)
    verify_record(f.path, f.dist)
print(json.dumps({
    "files": [[f.path, f.dist, f.origin, f.version] for f in files],
    "searched": searched,
    "imported": sorted(m for m in sys.modules if m.startswith("scipy_openblas")),
}))
"""


def test_scipy_openblas32_package(tmp_path) -> None:
    spec = importlib.util.find_spec("scipy_openblas32")  # top level: located, not executed
    if spec is None or spec.submodule_search_locations is None:
        pytest.skip("scipy-openblas32 is not installed (pip install scipy-openblas32)")
    # Checked in a child process: other tests import scipy_openblas32 in this one.
    result = run_python(sys.executable, SCIPY_OPENBLAS, str(tmp_path / "cache"))
    expected = os.path.realpath(os.path.join(spec.submodule_search_locations[0], "lib", "libscipy_openblas.so"))
    assert os.path.isfile(expected)
    from importlib.metadata import version

    assert result["files"] == [[expected, "scipy-openblas32", "package:scipy-openblas32", None]]
    assert result["searched"] == [
        f"package 'scipy-openblas32' {version('scipy-openblas32')}: 1 file(s) for 'scipy_openblas' in its RECORD"
    ]
    assert result["imported"] == []
    assert os.listdir(tmp_path / "cache")  # the verification was cached


@pytest.mark.parametrize("kind", ["package", "provider"])
def test_record_and_manifest_reads_are_stamped(site, kind) -> None:
    """review F4: every RECORD and manifest a search read is among the stamps a cached verdict is
    checked against, so rewriting one (as a reinstall does, by rename) voids the verdict."""
    from libbroker import _cache, _config, _discovery

    if kind == "package":
        install_fake(site, "foo-pkg", {"foo_pkg/lib/libfoo.so.1": "x"}, "")
        record = site / "foo_pkg-1.0.dist-info" / "RECORD"
        result = _discovery.search("foo", config=_config.Config(None), packages=["foo-pkg"])
    else:
        install_fake(site, "brk-prov", {MANIFEST: '[[library]]\nname = "brk"\nfile = "lib/libbrk.so.1"\n',
                                        "brokenprov/lib/libbrk.so.1": "x"}, EP)
        record = site / "brokenprov" / "libbroker-provider.toml"
        result = _discovery.search("brk", config=_config.Config(None))
    inputs = [stamp[0] for kind_, stamp in result.stamps if kind_ == "@input"]
    assert os.path.realpath(record) in inputs
    stamps = _cache.decision_stamps(list(result.stamps), [])
    assert _cache.stamps_valid(stamps)
    text = record.read_text()
    record.with_suffix(".new").write_text(text)  # same bytes, a new file (pip's rename)
    os.rename(record.with_suffix(".new"), record)
    assert not _cache.stamps_valid(stamps)


def test_record_that_is_not_utf8_skips_the_provider_with_its_reason(site) -> None:
    install_fake(site, "broken-prov", {MANIFEST: '[[library]]\nname = "brk"\nfile = "lib/real.so"\n',
                                       "brokenprov/lib/real.so": "x"}, EP)
    record = site / "broken_prov-1.0.dist-info" / "RECORD"
    offset = record.stat().st_size
    with open(record, "ab") as f:
        f.write(b"\xff\xfe\x00garbage\n")
    files, searched = provider_files("brk")
    assert files == []
    [line] = searched
    assert line.startswith("provider 'broken-prov' 1.0: its metadata cannot be read: ")
    assert f"{str(record)!r} is not UTF-8: byte 0xff at offset {offset}" in line
    assert "reinstall broken_prov with pip" in line and line.endswith("(ignored)")
    files, searched = package_files(["broken-prov"], ["real"])
    assert files == [] and "is not UTF-8: byte 0xff" in searched[0]
    # candidates() (and so find --all) list it too: the RECORD, rejected, with the reason.
    [refused] = [c for c in libbroker.candidates("brk") if c.path == str(record)]
    assert not refused.accepted and refused.origin == "provider:broken-prov"
    assert f"is not UTF-8: byte 0xff at offset {offset}" in refused.reason
    assert "as the recording installed projects specification requires" in refused.reason


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX FIFOs")
def test_fifo_record_skips_the_provider_without_blocking(site, tmp_path) -> None:
    install_fake(site, "broken-prov", {MANIFEST: '[[library]]\nname = "brk"\nfile = "lib/real.so"\n',
                                       "brokenprov/lib/real.so": "x"}, EP)
    record = site / "broken_prov-1.0.dist-info" / "RECORD"
    record.unlink()
    os.mkfifo(record)
    code = f"""
import json, sys
sys.path.insert(0, {str(site)!r})
from libbroker._providers import package_files, provider_files
print(json.dumps([provider_files("brk"), package_files(["broken-prov"], ["real"])]))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "LIBBROKER_CACHE_DIR": str(tmp_path / "c")})
    assert done.returncode == 0, done.stderr
    (files, searched), (pfiles, psearched) = json.loads(done.stdout)
    assert files == [] and pfiles == []
    assert "RECORD' is not a regular file" in searched[0] and searched[0].endswith("(ignored)")
    assert "RECORD' is not a regular file" in psearched[0]


# --- metadata that is not UTF-8 (METADATA, entry_points.txt) -----------------------------

LBU_C = "int lbu_which(void) { return WHICH; }\n"


@pytest.fixture(scope="module")
def lbu_wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Two real provider wheels for link name 'lbu' (`wrap`), installed by pip into two
    directories: {"bad": site, "good": site}. Tests copy them before damaging one."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc is needed to build the test library")
    from libbroker._wrap import wrap

    base = tmp_path_factory.mktemp("lbu")
    sites = {}
    for which, kind in enumerate(("bad", "good")):
        src = base / f"{kind}.c"
        src.write_text(LBU_C.replace("WHICH", str(which)))
        lib = base / kind / "liblbu.so.1"
        lib.parent.mkdir()
        subprocess.run(["gcc", "-shared", "-fPIC", "-Wl,-soname,liblbu.so.1", "-o", str(lib), str(src)], check=True)
        wheel = wrap(str(lib), name="lbu", version="1.0", out_dir=str(base / "dist"), dist_name=f"lbu-{kind}")
        sites[kind] = str(base / f"{kind}-site")
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps",
                        "--no-index", "--target", sites[kind], wheel], check=True)
    return sites


def _damage(path, how: str) -> None:
    data = path.read_bytes()
    if how == "name":  # inside the value of a header / the name of an entry point
        data = data.replace(b"lbu", b"l\xffu", 1)
    elif how == "continuation":  # a lead byte followed by ASCII, in the last "lbu" (a value)
        at = data.rindex(b"lbu")
        data = data[:at] + b"l\xc3u" + data[at + 3:]
    elif how == "truncated":  # a sequence cut off at the end of the file
        data += b"\n[console_scripts]\nx = y:main  # \xe2\x82"
    elif how == "surrogate":  # UTF-8 of a lone surrogate, which UTF-8 forbids
        data += b"\n[console_scripts]\nx = y:main  # \xed\xa0\x80\n"
    path.write_bytes(data)


def _oracle_offset(info_dir, filename: str) -> int:
    """Where importlib.metadata (the oracle) fails on the file: UnicodeDecodeError.start."""
    import pathlib

    dist = metadata.PathDistribution(pathlib.Path(info_dir))
    with pytest.raises(UnicodeDecodeError) as caught:
        if filename == "METADATA":
            dist.metadata  # noqa: B018
        else:
            dist.entry_points  # noqa: B018
    return caught.value.start


@pytest.mark.parametrize(("filename", "how"), [
    ("METADATA", "name"), ("METADATA", "continuation"), ("METADATA", "truncated"),
    ("entry_points.txt", "name"), ("entry_points.txt", "continuation"),
    ("entry_points.txt", "truncated"), ("entry_points.txt", "surrogate"),
])
def test_metadata_that_is_not_utf8_refuses_the_provider_by_name(lbu_wheels, tmp_path, monkeypatch,
                                                                 filename: str, how: str) -> None:
    bad_site, good_site = (shutil.copytree(lbu_wheels[k], tmp_path / k) for k in ("bad", "good"))
    monkeypatch.syspath_prepend(str(good_site))
    monkeypatch.syspath_prepend(str(bad_site))  # the damaged provider comes first
    info = bad_site / "lbu_bad-1.0.dist-info"
    damaged = info / filename
    if filename == "METADATA" and how == "truncated":
        damaged.write_bytes(damaged.read_bytes() + b"\n\xe2\x82")  # cut off in the description
    else:
        _damage(damaged, how)
    offset = _oracle_offset(info, filename)
    byte = damaged.read_bytes()[offset]
    spec = "core metadata" if filename == "METADATA" else "entry points"

    def check(reason: str) -> None:
        assert f"{str(damaged)!r} is not UTF-8: byte 0x{byte:02x} at offset {offset}" in reason, reason
        assert f"expected UTF-8, as the {spec} specification requires" in reason
        assert "fix: reinstall lbu_bad with pip" in reason and "rebuild the wheel" in reason

    cands = libbroker.candidates("lbu")
    [refused] = [c for c in cands if c.path == str(damaged)]
    assert not refused.accepted and refused.origin.startswith("provider:lbu")
    assert "provider 'lbu" in refused.reason  # by name (METADATA's, or its directory's)
    check(refused.reason)
    # The other provider is not hidden: it is what find() gives.
    good = os.path.realpath(good_site / "libbroker_provider_lbu" / "lib" / "liblbu.so.1")
    chosen = libbroker.find("lbu")
    assert (chosen.path, chosen.origin) == (good, "provider:lbu-good")
    with pytest.raises(LibraryNotFoundError) as caught:
        libbroker.find("lbu", ">=99")
    check(str(caught.value))
    # A bad byte in an entry point's name: which library it provides cannot be known, so
    # every search lists it; elsewhere, only searches for the names it provides.
    other = [c for c in libbroker.candidates("lbunone") if c.path == str(damaged)]
    assert len(other) == (1 if (filename, how) == ("entry_points.txt", "name") else 0)
    # The command line says the same (a child process: the search path is PYTHONPATH).
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(bad_site), str(good_site), ROOT]))
    out = subprocess.run([sys.executable, "-m", "libbroker", "find", "lbu", "--all"], env=env,
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    [line] = [x for x in out.stdout.splitlines() if x.startswith(str(damaged))]
    assert "\trejected: " in line
    check(line)


def test_repaired_entry_points_void_the_cached_refusal(lbu_wheels, tmp_path, monkeypatch) -> None:
    # The bad byte is outside the provider section, so the entry points a search sees are
    # the same before and after: only the entry_points.txt stamp can tell the verdicts apart.
    from libbroker import _api

    bad_site, good_site = (shutil.copytree(lbu_wheels[k], tmp_path / k) for k in ("bad", "good"))
    monkeypatch.syspath_prepend(str(good_site))
    monkeypatch.syspath_prepend(str(bad_site))
    bad = os.path.realpath(bad_site / "libbroker_provider_lbu" / "lib" / "liblbu.so.1")
    good = os.path.realpath(good_site / "libbroker_provider_lbu" / "lib" / "liblbu.so.1")
    assert libbroker.find("lbu").path == bad
    entry_points = bad_site / "lbu_bad-1.0.dist-info" / "entry_points.txt"
    original = entry_points.read_bytes()
    _damage(entry_points, "surrogate")
    _api._memo.clear()  # the in-process memo is trusted for a second; the disk verdict is not
    forget_answers()  # and the directory answers of that second
    assert libbroker.find("lbu").path == good
    entry_points.write_bytes(original)
    _api._memo.clear()
    forget_answers()  # and the directory answers of that second
    assert libbroker.find("lbu").path == bad


def test_package_with_metadata_that_is_not_utf8_is_refused(lbu_wheels, tmp_path, monkeypatch) -> None:
    site = shutil.copytree(lbu_wheels["bad"], tmp_path / "bad")
    monkeypatch.syspath_prepend(str(site))
    damaged = site / "lbu_bad-1.0.dist-info" / "METADATA"
    _damage(damaged, "name")
    offset = _oracle_offset(damaged.parent, "METADATA")
    files, searched = package_files(["lbu-bad"], ["lbu"])
    assert files == []
    [line] = searched
    assert line.startswith("package 'lbu_bad' 1.0: its metadata cannot be read: ")
    assert f"is not UTF-8: byte 0xff at offset {offset}" in line
    cands = libbroker.candidates("lbu", packages=["lbu-bad"])
    # Refused once (the provider step comes before the packages step and names the same file).
    [refused] = [c for c in cands if c.path == str(damaged)]
    assert not refused.accepted and refused.origin == "provider:lbu_bad"
    assert f"byte 0xff at offset {offset}" in refused.reason
