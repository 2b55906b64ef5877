"""The cookbook (docs/cookbook.md): nine real libraries, each a spec written by
`libbroker spec` from the library's real header, a Cython consumer built with
libbroker.build.build_ext (no link flags), and an oracle nobody here wrote."""

from __future__ import annotations

import importlib.util
import inspect
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cookbook import render  # tests/ is on sys.path (rootdir conftest)
from cookbook._oracles import dpkg_upstream_version

import libbroker
from libbroker import _cli
from libbroker._headerspec import find_preprocessor

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ELF consumers")

COOKBOOK = Path(__file__).parent / "cookbook"
LIBS = list(render.LIBRARIES)
SETUP = """
from setuptools import Extension, setup
from libbroker.build import build_ext

libs = {libs!r}
setup(name="cookbook", ext_modules=[Extension(f"cb_{{l}}", [f"cb_{{l}}.pyx"]) for l in libs],
      cmdclass={{"build_ext": build_ext.with_specs(*[f"{{l}}.toml" for l in libs])}})
"""


def _link(lib: str) -> str:
    args = shlex.split((COOKBOOK / lib / "command.txt").read_text())
    return args[args.index("--link") + 1]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """All nine consumers, compiled once (two parallel jobs) in one setup.py run."""
    workdir = tmp_path_factory.mktemp("cookbook")
    for lib in LIBS:
        shutil.copy(COOKBOOK / lib / f"cb_{lib}.pyx", workdir)
        shutil.copy(COOKBOOK / lib / f"{lib}.toml", workdir)
    (workdir / "setup.py").write_text(SETUP.format(libs=LIBS))
    done = subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace", "-j", "2"],
                          cwd=workdir, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return workdir


@pytest.mark.parametrize("lib", LIBS)
def test_consumer_matches_oracle(lib: str, built: Path, tmp_path: Path) -> None:
    try:
        info = libbroker.find(_link(lib))
    except libbroker.LibraryNotFoundError:
        pytest.skip(f"lib{_link(lib)} is not installed")
    readelf = subprocess.run(["readelf", "-dW", str(next(built.glob(f"cb_{lib}.*.so")))],
                             capture_output=True, text=True, check=True).stdout
    assert info.soname not in readelf  # no DT_NEEDED on the brokered library
    sys.path.insert(0, str(built))
    try:
        module = __import__(f"cb_{lib}")
    finally:
        sys.path.remove(str(built))
    spec = importlib.util.spec_from_file_location(f"oracle_{lib}", COOKBOOK / lib / "oracle.py")
    assert spec is not None and spec.loader is not None
    oracle = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(oracle)
    kwargs = {}
    if "library_version" in inspect.signature(oracle.check).parameters:
        kwargs["library_version"] = dpkg_upstream_version(info.path)
    oracle.check(module, tmp_path, **kwargs)


@pytest.mark.parametrize("lib", LIBS)
def test_spec_is_what_libbroker_spec_writes(lib: str, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    if find_preprocessor() is None:
        pytest.skip("no C preprocessor")
    args = shlex.split((COOKBOOK / lib / "command.txt").read_text())
    header = args[0]
    if not any(Path(d, header).is_file() for d in ("/usr/include", "/usr/include/x86_64-linux-gnu",
                                                     "/usr/include/libpng")):
        pytest.skip(f"{header} is not installed (see .ci/apt-packages.txt)")
    out = tmp_path / f"{lib}.toml"
    assert _cli.main(["spec", *args, "-o", str(out), "--check"]) == 0, capsys.readouterr().err
    assert out.read_text() == (COOKBOOK / lib / f"{lib}.toml").read_text()


def test_cookbook_doc_is_current() -> None:
    text = render.DOC.read_text(encoding="utf-8") if render.DOC.exists() else ""
    assert text == render.render(), "docs/cookbook.md is stale: run python tests/cookbook/render.py"
