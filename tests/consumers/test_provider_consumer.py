"""The provider story end to end: `libbroker wrap` a library the test compiles,
pip-install the wheel into a fresh virtual environment, build a Cython consumer
against the spec the provider ships, run it there; uninstall, and the import
fails with LibraryNotFoundError naming what was searched."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import venv
from pathlib import Path

import pytest

import libbroker
import libbroker._wrap

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc builds the test library")

LIB_C = """
const char *lbp_version(void) { return "lbp 3.1.4 (test build)"; }
int lbp_add(int a, int b) { return a + b; }
double lbp_scale(double x, double f) { return x * f; }
"""

SPEC = """
[library]
name = "lbp"
names = ["lbp"]
version = ">=3"
version-function = "lbp_version"

[functions]
required = ["int lbp_add(int a, int b)", "double lbp_scale(double x, double f)"]
optional = ["const char *lbp_version(void)"]
"""

CONSUMER = """
cimport libbroker_lbp as lbp
lbp.import_lbp()

def add(int a, int b):
    return lbp.lbp_add(a, b)

def scale(double x, double f):
    return lbp.lbp_scale(x, f)
"""


def _run(python: Path, code: str, pythonpath: list[str], cache: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(pythonpath), LIBBROKER_CACHE_DIR=str(cache))
    return subprocess.run(
        [str(python), "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env, timeout=300
    )


def test_wrap_install_consume_uninstall(tmp_path: Path) -> None:
    src = tmp_path / "lbp.c"
    src.write_text(LIB_C)
    lib = tmp_path / "build" / "liblbp.so.3"
    lib.parent.mkdir()
    subprocess.run(
        ["gcc", "-shared", "-fPIC", "-O2", "-Wl,-soname,liblbp.so.3", "-o", str(lib), str(src)], check=True
    )
    spec = tmp_path / "lbp.toml"
    spec.write_text(SPEC)
    wheel = libbroker._wrap.wrap(str(lib), name="lbp", version="3.1.4", out_dir=str(tmp_path / "dist"), spec=str(spec))

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel], check=True)

    # The consumer is built against the spec the provider ships, found from metadata.
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['platlib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    shipped = Path(site) / "libbroker_provider_lbp" / "lbp.toml"
    assert shipped.is_file()
    consumer_dir = tmp_path / "consumer"
    consumer_dir.mkdir()
    (consumer_dir / "lbp_consumer.pyx").write_text(CONSUMER)
    _build_pyx(consumer_dir, shipped)

    # libbroker and its dependencies come from this interpreter, by path: the
    # venv itself holds only the provider wheel.
    import packaging
    import platformdirs
    import pycparser

    roots = {str(Path(m.__file__).resolve().parent.parent) for m in (libbroker, packaging, platformdirs, pycparser)}
    pythonpath = [str(consumer_dir), *sorted(roots)]
    cache = tmp_path / "cache"
    code = """
        import sys, json
        import lbp_consumer, libbroker
        lib = [l for l in libbroker.loaded() if l.name == "lbp"][0]
        print(json.dumps({"add": lbp_consumer.add(2, 40), "scale": lbp_consumer.scale(1.5, 4.0),
                          "origin": lib.origin, "path": lib.path, "version": lib.version_text,
                          "imported": "libbroker_provider_lbp" in sys.modules}))
    """
    for attempt in ("cold", "warm"):  # the second run is served from the disk index
        out = _run(python, code, pythonpath, cache)
        assert out.returncode == 0, out.stderr
        data = json.loads(out.stdout)
        assert data["add"] == 42 and data["scale"] == 6.0
        assert data["origin"] == "provider:libbroker-provider-lbp", data
        assert data["path"].startswith(str(env_dir)) and data["version"] == "3.1.4"
        assert data["imported"] is False

    subprocess.run([str(python), "-m", "pip", "uninstall", "-y", "-q", "libbroker-provider-lbp"], check=True)
    out = _run(
        python,
        """
        import libbroker
        try:
            import lbp_consumer
        except ImportError as exc:
            print(type(exc.__cause__).__name__)
            print(exc.__cause__)
        """,
        pythonpath,
        cache,
    )
    assert out.returncode == 0, out.stderr
    kind, message = out.stdout.split("\n", 1)
    assert kind == "LibraryNotFoundError"
    assert "libbroker.providers" in message and "ld.so.cache" in message


def _build_pyx(workdir: Path, spec: Path) -> None:
    gen = workdir / "gen"
    libbroker.generate(libbroker.Spec.from_file(spec), str(gen))
    includes = [libbroker.get_include(), str(gen)]
    (workdir / "setup.py").write_text(
        "from setuptools import Extension, setup\nfrom Cython.Build import cythonize\n"
        f"setup(name='lbp_consumer', ext_modules=cythonize([Extension('lbp_consumer', ['lbp_consumer.pyx'], "
        f"include_dirs={includes!r})], include_path={includes!r}, language_level=3))\n"
    )
    subprocess.run(
        [sys.executable, "setup.py", "build_ext", "--inplace", "-q"],
        cwd=workdir, check=True, capture_output=True, timeout=600,
    )


PFX_C = """
int pfx_add(int a, int b) { return a + b; }
const char *pfx_version(void) { return "pfx 1.4.2"; }
"""


def test_manifest_symbol_prefix_applies_to_a_plain_spec(tmp_path: Path) -> None:
    """A provider whose symbols carry a prefix (as scipy-openblas's do) serves a
    generic spec that names the plain functions: the manifest's prefix is used."""
    src = tmp_path / "pfx.c"
    src.write_text(PFX_C)
    lib = tmp_path / "build" / "liblbpfx.so.1"
    lib.parent.mkdir()
    subprocess.run(["gcc", "-shared", "-fPIC", "-Wl,-soname,liblbpfx.so.1", "-o", str(lib), str(src)], check=True)
    shipped = tmp_path / "shipped.toml"
    shipped.write_text(
        '[library]\nname = "lbpfx"\nnames = ["lbpfx"]\nsymbol-prefix = "pfx_"\n'
        '[functions]\nrequired = ["int add(int a, int b)"]\n'
    )
    wheel = libbroker._wrap.wrap(str(lib), name="lbpfx", version="1.4.2", out_dir=str(tmp_path / "dist"), spec=str(shipped))
    site = tmp_path / "site"
    import zipfile

    with zipfile.ZipFile(wheel) as zf:  # what an installer does with a wheel
        zf.extractall(site)
    generic = (
        '[library]\nname = "lbpfx_generic"\nnames = ["lbpfx"]\nversion = ">=1.4"\n'
        'version-function = "version"\n'
        '[functions]\nrequired = ["int add(int a, int b)", "const char *version(void)"]\n'
    )
    code = f"""
        import ctypes, libbroker
        from libbroker import _master
        info = _master.table_info(libbroker.table({generic!r}))
        add = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_int)(info["slots"][0])
        print(add(20, 22), info["library_version"], info["library_path"])
    """
    import packaging
    import platformdirs
    import pycparser

    roots = {str(Path(m.__file__).resolve().parent.parent) for m in (libbroker, packaging, platformdirs, pycparser)}
    out = _run(Path(sys.executable), code, [str(site), *sorted(roots)], tmp_path / "cache")
    assert out.returncode == 0, out.stderr
    result, version, path = out.stdout.split()
    assert result == "42" and version == "1.4.2" and path.startswith(str(site))
