"""libbroker._doctor: real processes with real duplicate libraries."""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from libbroker._doctor import _loaded_paths, format_report, report, soname_stem

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIBZ = "/usr/lib/x86_64-linux-gnu/libz.so.1"

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="needs Linux /proc")


def _child_report(code: str, *args: str) -> dict:
    """Run ``code`` in a fresh interpreter, then print its report() as JSON."""
    script = code + "\nimport json, libbroker\nprint(json.dumps(libbroker.report()))\n"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.splitlines()[-1])


def _mapped(child_maps: str) -> set[str]:
    return {line.split(maxsplit=5)[5] for line in child_maps.splitlines() if len(line.split()) >= 6}


def test_numpy_and_scipy_openblas32_are_one_group() -> None:
    numpy = pytest.importorskip("numpy")
    scipy_openblas32 = pytest.importorskip("scipy_openblas32")
    ours = glob.glob(os.path.join(scipy_openblas32.get_lib_dir(), "*openblas*.so*"))
    numpy_libs = os.path.join(os.path.dirname(os.path.dirname(numpy.__file__)), "numpy.libs")
    vendored = glob.glob(os.path.join(numpy_libs, "*openblas*.so*"))
    if not ours or not vendored:
        pytest.skip("numpy does not vendor OpenBLAS here")
    result = _child_report(
        "import ctypes, sys, numpy, numpy.linalg\nctypes.CDLL(sys.argv[1])",
        ours[0],
    )
    expected = {os.path.realpath(ours[0]), os.path.realpath(vendored[0])}
    groups = [set(g) for g in result["duplicates"] if set(g) & expected]
    assert groups == [expected]
    assert len(result["warnings"]) == len(result["duplicates"])
    warning = next(w for w in result["warnings"] if os.path.realpath(ours[0]) in w)
    assert "openblas" in warning and "fix:" in warning

    by_path = {o["path"]: o for o in result["loaded"]}
    assert by_path[os.path.realpath(ours[0])]["distribution"] == "scipy-openblas32"
    assert by_path[os.path.realpath(vendored[0])]["distribution"] == "numpy"
    assert by_path[os.path.realpath(vendored[0])]["origin"] == "package"

    from numpy._core import _multiarray_umath
    from numpy.linalg import _umath_linalg

    for module in (_multiarray_umath, _umath_linalg):
        entry = by_path[os.path.realpath(module.__file__)]
        assert entry["origin"] == "python-extension"
        assert entry["distribution"] == "numpy"


def test_two_copies_of_libz(tmp_path) -> None:
    real = os.path.realpath(LIBZ)
    copy = tmp_path / os.path.basename(real)
    shutil.copyfile(real, copy)
    result = _child_report(
        "import ctypes, sys\na = ctypes.CDLL(sys.argv[1]); b = ctypes.CDLL(sys.argv[2])\n"
        "assert a.zlibVersion is not b.zlibVersion",
        LIBZ,
        str(copy),
    )
    paths = {o["path"] for o in result["loaded"]}
    assert {real, str(copy)} <= paths
    group = [g for g in result["duplicates"] if str(copy) in g]
    assert len(group) == 1 and set(group[0]) == {real, str(copy)}
    assert any("libz" in w and str(copy) in w for w in result["warnings"])
    for o in result["loaded"]:
        if o["path"] in (real, str(copy)):
            assert o["soname"] == "libz.so.1"
            assert o["origin"] == "system"


def test_single_copy_is_no_duplicate() -> None:
    result = _child_report(f"import ctypes\nctypes.CDLL({LIBZ!r})")
    assert not [g for g in result["duplicates"] if os.path.realpath(LIBZ) in g]


def test_report_shape_in_process() -> None:
    import zlib  # noqa: F401  (makes sure something known is mapped)

    result = report()
    assert {"libbroker_version", "python", "platform", "config", "loaded", "duplicates", "warnings"} <= set(result)
    import platform

    import libbroker

    assert result["libbroker_version"] == libbroker.__version__
    assert result["python"]["version"] == platform.python_version()
    assert result["platform"]["machine"] == platform.machine()
    assert result["platform"]["glibc"] == ".".join(platform.libc_ver()[1].split(".")[:2])
    assert isinstance(result["config"], dict)
    json.dumps(result)  # what `doctor --json` prints
    for o in result["loaded"]:
        assert os.path.isabs(o["path"]) and os.path.exists(o["path"])
        assert o["origin"] in ("libbroker", "python-extension", "package", "environment", "system")
    with open("/proc/self/maps") as f:
        mapped = {os.path.realpath(p) for p in _mapped(f.read())}
    assert {o["path"] for o in result["loaded"]} <= mapped
    assert os.path.realpath(LIBZ) in {o["path"] for o in result["loaded"]}
    text = format_report(result)
    assert "shared objects mapped in this process" in text
    assert os.path.realpath(LIBZ) in text


def test_loaded_paths_match_proc_maps() -> None:
    # Whichever source _loaded_paths used, every ELF mapped must be listed.
    paths = {os.path.realpath(p) for p in _loaded_paths()}
    with open("/proc/self/maps") as f:
        mapped = _mapped(f.read())
    exe = os.path.realpath("/proc/self/exe")
    elf = set()
    for p in mapped:
        if p.startswith("/") and os.path.isfile(p) and os.path.realpath(p) != exe:
            with open(p, "rb") as obj:
                if obj.read(4) == b"\x7fELF":
                    elf.add(os.path.realpath(p))
    assert elf == paths


def test_libbroker_origin(tmp_path) -> None:
    copy = tmp_path / "libz.so.1"
    shutil.copyfile(os.path.realpath(LIBZ), copy)
    try:
        result = _child_report("import sys, libbroker\nlibbroker.load(sys.argv[1])", str(copy))
    except AssertionError as exc:
        if "NotImplementedError" in str(exc) or "ImportError" in str(exc):
            pytest.skip("libbroker.load is not available yet")
        raise
    entry = next(o for o in result["loaded"] if o["path"] == str(copy))
    assert entry["origin"] == "libbroker"


def test_format_report_mentions_duplicates() -> None:
    fake = {
        "libbroker_version": "0",
        "python": {"version": "3", "executable": "/x/python"},
        "platform": {"system": "linux", "machine": "x86_64", "elf_class": 64, "glibc": "2.36"},
        "config": {"LIBBROKER_PATH": "", "config_file": "/c.toml", "config_exists": False},
        "loaded": [{"path": "/a/libz.so.1", "origin": "system", "soname": "libz.so.1"}],
        "duplicates": [["/a/libz.so.1", "/b/libz.so.1"]],
        "warnings": ["2 copies of libz are loaded"],
    }
    text = format_report(fake)
    assert "/c.toml (does not exist)" in text
    assert "warning: 2 copies of libz are loaded" in text
    assert "glibc 2.36" in text


@pytest.mark.parametrize(
    "name,stem",
    [
        ("libz.so.1", "libz"),
        ("libz.so.1.2.13", "libz"),
        ("libz-a1b2c3d4.so.1", "libz"),
        ("/x/numpy.libs/libgfortran-040039e1-0352e75f.so.5.0.0", "libgfortran"),
        ("libscipy_openblas64_-32a4b2a6.so", "libscipy_openblas64_"),
        ("libpython3.11.so.1.0", "libpython3.11"),
        ("libssl.so", "libssl"),
        ("libfoo-bar.so.2", "libfoo-bar"),
        ("libsomething.sox", "libsomething.sox"),
    ],
)
def test_soname_stem(name: str, stem: str) -> None:
    assert soname_stem(name) == stem


def test_doctor_shows_closure_of_libbroker_libraries() -> None:
    import libbroker

    try:
        libbroker_path = libbroker.find("png16").path
    except libbroker.LibraryNotFoundError:
        pytest.skip("libpng16 is not installed")
    result = _child_report("import libbroker\nlibbroker.load('png16')")
    (png,) = [o for o in result["loaded"] if o["path"] == os.path.realpath(libbroker_path)]
    assert png["origin"] == "libbroker"
    needed = [d["needed"] for d in png["dependencies"]]
    assert "libz.so.1" in needed
    readelf = subprocess.run(["readelf", "-d", libbroker_path], capture_output=True, text=True, check=True).stdout
    for name in needed:
        assert f"[{name}]" in readelf  # each one a DT_NEEDED of libpng or of its dependencies
    assert "needs libz.so.1" in format_report(result)


# -- "tables": which extension module imported which table (issue 12) ---------------------

CONSUMER_C = r"""
#include "libbroker_zlib.h"
static PyObject *crc(PyObject *self, PyObject *arg) {
    (void)self; (void)arg;
    return PyLong_FromUnsignedLong(libbroker_zlib->crc32(0, (const Bytef *)"abc", 3));
}
static PyMethodDef methods[] = {{"crc", crc, METH_NOARGS, NULL}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, "single_phase", NULL, -1, methods,
                                 NULL, NULL, NULL, NULL};
PyMODINIT_FUNC PyInit_single_phase(void) {
    if (libbroker_import_zlib() < 0) return NULL;
    return PyModule_Create(&def);
}
"""


@pytest.fixture(scope="module")
def consumers(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A multi-phase (Cython) and a single-phase (C) consumer of the zlib table."""
    pytest.importorskip("Cython")
    workdir = tmp_path_factory.mktemp("doctor-consumers")
    shutil.copy(os.path.join(ROOT, "tests", "specs", "zlib.toml"), workdir)
    (workdir / "multi_phase.pyx").write_text(
        "cimport libbroker_zlib as zlib\nzlib.import_zlib()\n"
        "def crc():\n    return zlib.crc32(0, b'abc', 3)\n")
    (workdir / "single_phase.c").write_text(CONSUMER_C)
    (workdir / "setup.py").write_text(
        "from setuptools import Extension, setup\nfrom libbroker.build import build_ext\n"
        "setup(name='dc', ext_modules=[Extension('multi_phase', ['multi_phase.pyx']),\n"
        "      Extension('single_phase', ['single_phase.c'])],\n"
        "      cmdclass={'build_ext': build_ext.with_specs('zlib.toml')})\n")
    done = subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"],
                          cwd=workdir, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return str(workdir)


def _doctor_json(cwd: str, *modules: str) -> tuple[int, dict]:
    # The console script, run in the consumers' directory: --import finds them there
    # as `python -m` would.
    script = os.path.join(os.path.dirname(sys.executable), "libbroker")
    args = [script, "doctor", "--json"] + [a for m in modules for a in ("--import", m)]
    out = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": ""})
    return out.returncode, json.loads(out.stdout)


def test_doctor_names_the_consumers_of_each_table(consumers: str) -> None:
    code, data = _doctor_json(consumers, "multi_phase", "single_phase")
    assert code == 0, data.get("warnings")
    [table] = [t for t in data["tables"] if t["name"] == "zlib"]
    assert table["consumers"] == ["multi_phase", "single_phase"]
    assert os.path.realpath(table["library"]) in {o["path"] for o in data["loaded"]}
    assert data["imports"] == [{"module": "multi_phase", "ok": True, "error": None},
                               {"module": "single_phase", "ok": True, "error": None}]
    text = format_report(data)
    assert "imported by multi_phase, single_phase" in text


def test_failed_import_is_in_the_json(consumers: str) -> None:
    code, data = _doctor_json(consumers, "multi_phase", "no_such_module_here")
    assert code == 1
    assert data["imports"][1]["module"] == "no_such_module_here"
    assert not data["imports"][1]["ok"] and "ModuleNotFoundError" in data["imports"][1]["error"]
    assert any("no_such_module_here" in w for w in data["warnings"])


def test_doctor_leaves_out_what_its_own_imports_mapped(consumers: str) -> None:
    # Whatever doctor's own code maps while it works (here _decimal's extension,
    # imported from inside the report) is not the user's process: left out.
    script = (
        "import sys, libbroker._doctor as d\n"
        "real = d._site_dirs\n"
        "def site_dirs():\n"
        "    import _decimal\n"
        "    return real()\n"
        "d._site_dirs = site_dirs\n"
        "from libbroker._cli import main\n"
        "sys.exit(main(['doctor', '--json', '--import', 'multi_phase']))\n")
    out = subprocess.run([sys.executable, "-c", script], cwd=consumers, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert "_decimal" not in " ".join(o["path"] for o in data["loaded"])
    assert any("multi_phase" in o["path"] for o in data["loaded"])
    # In-process, without a baseline, the same import is reported.
    in_process = _child_report("import _decimal")
    assert any("/_decimal." in o["path"] for o in in_process["loaded"])


def test_import_table_records_an_explicit_module_name() -> None:
    # What a generated import passes (or a Python caller): the module's name.
    code = (
        "import libbroker\n"
        "from libbroker import _runtime\n"
        "from libbroker._codegen import embedded_text\n"
        f"spec = libbroker.Spec.from_file({os.path.join(ROOT, 'tests', 'specs', 'zlib.toml')!r})\n"
        "for module in ('pkg.first', 'pkg.second', 'pkg.first'):\n"
        "    _runtime.import_table('zlib', spec.spec_digest, embedded_text(spec), module)\n"
    )
    data = _child_report(code)
    [table] = data["tables"]
    assert table["name"] == "zlib" and table["consumers"] == ["pkg.first", "pkg.second"]
    # The same file as one of the mapped objects (listed by real path, or as loaded).
    assert os.path.realpath(table["library"]) in {os.path.realpath(o["path"]) for o in data["loaded"]} | {
        o.get("loaded_as") for o in data["loaded"]}


# --- per-file facts and RECORD owners, cached by what they were read from ------------------


def _readelf_soname(path: str) -> str | None:
    """SONAME as binutils' readelf prints it (the oracle)."""
    out = subprocess.run(["readelf", "-d", path], capture_output=True, text=True, check=False).stdout
    for line in out.splitlines():
        if "(SONAME)" in line:
            return line.split("[", 1)[1].rstrip("]")
    return None


@pytest.mark.skipif(shutil.which("readelf") is None, reason="binutils' readelf is the oracle")
def test_object_facts_are_cached_by_identity(tmp_path, monkeypatch) -> None:
    from libbroker import _doctor

    os.chmod(tmp_path, 0o755)
    lib = tmp_path / "libfacts.so.1"
    shutil.copy2(os.path.realpath(LIBZ), lib)
    time.sleep(2 * _doctor._RACY_NS / 1e9)  # a file changed within a clock tick is not cached
    first = _doctor.object_facts([str(lib)])[str(lib)]
    assert first[0] == _readelf_soname(str(lib)) == "libz.so.1" and first[1] is None

    def refuse(real: str) -> object:
        raise AssertionError(f"{real} read again although unchanged")

    with monkeypatch.context() as m:
        m.setattr(_doctor, "_read_facts", refuse)
        assert _doctor.object_facts([str(lib)])[str(lib)] == first
    # Replaced in place by another library (same path, same inode): read again at once.
    other = os.path.realpath(os.path.join(os.path.dirname(LIBZ), "libbz2.so.1.0"))
    if not os.path.exists(other):
        pytest.skip("no libbz2 to overwrite with")
    with open(other, "rb") as src, open(lib, "r+b") as dst:
        dst.write(src.read())
        dst.truncate()
    again = _doctor.object_facts([str(lib)])[str(lib)]
    assert again[0] == _readelf_soname(str(lib)) != first[0]
    lib.write_text("not a library")
    assert _doctor.object_facts([str(lib)])[str(lib)][1] is not None  # unreadable, said why


def test_record_owners_follow_the_record(tmp_path, monkeypatch) -> None:
    from libbroker import _doctor

    site = tmp_path / "site-packages"
    (site / "ownpkg").mkdir(parents=True)
    lib = site / "ownpkg" / "libown.so.1"
    lib.write_bytes(b"x")
    info = site / "own_pkg-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: Own-Pkg\nVersion: 1.0\n")
    (info / "RECORD").write_text("ownpkg/libown.so.1,,\n")
    wanted = {str(lib)}
    time.sleep(2 * _doctor._RACY_NS / 1e9)  # a file changed within a clock tick is not cached
    assert _doctor._record_owners([str(site)], wanted) == {str(lib): "Own-Pkg"}
    with monkeypatch.context() as m:
        m.setattr(_doctor, "_read_record_owners", None)  # replayed: nothing is read
        assert _doctor._record_owners([str(site)], wanted) == {str(lib): "Own-Pkg"}
    (info / "RECORD").write_text("ownpkg/other.py,,\n")  # edited in place
    assert _doctor._record_owners([str(site)], wanted) == {}
    other = site / "second-2.0.dist-info"  # a new distribution claims it
    other.mkdir()
    (other / "METADATA").write_text("Metadata-Version: 2.1\nName: second\nVersion: 2.0\n")
    (other / "RECORD").write_text("ownpkg/libown.so.1,,\n")
    assert _doctor._record_owners([str(site)], wanted) == {str(lib): "second"}


def test_an_ignored_config_file_exists_and_gets_its_own_fix(tmp_path, monkeypatch) -> None:
    """review3 F6: doctor says an ignored config file exists (ignored), and its reason ends with
    the config file's fix, not the one for a library file."""
    import warnings

    from libbroker._config import config_summary

    config = tmp_path / "config.toml"
    config.write_text('search-paths = ["/opt"]\n')
    os.chmod(config, 0o666)
    monkeypatch.setenv("LIBBROKER_CONFIG", str(config))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        summary = config_summary()
    assert summary["config_exists"] is True
    reason = str(summary["config_ignored"])
    assert "world-writable" in reason and "move the library" not in reason
    assert reason.endswith("or set LIBBROKER_CONFIG to such a file")
    text = format_report({"config": summary, "loaded": [], "duplicates": [], "warnings": []})
    assert f"{config} (exists, ignored: see config_ignored)" in text
