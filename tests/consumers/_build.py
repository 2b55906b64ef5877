"""Build consumer extensions the way their authors would: generate the headers,
then setuptools + Cython in a temporary directory, with no link flags."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import libbroker

HERE = Path(__file__).parent
SPECS = HERE.parent / "specs"

SETUP = """
import sys
from setuptools import Extension, setup
from Cython.Build import cythonize

exts = [Extension({name!r}, {sources!r}, include_dirs={includes!r})]
setup(name={name!r}, ext_modules=cythonize(exts, language_level=3, include_path={includes!r}))
"""


def build(
    workdir: Path,
    name: str,
    sources: list[str],
    specs: list[Path],
    extra_files: dict[str, str] | None = None,
) -> Path:
    """Generate headers for *specs* into workdir/gen, copy *sources*, build in place."""
    workdir.mkdir(parents=True, exist_ok=True)
    gen = workdir / "gen"
    for spec in specs:
        libbroker.generate(libbroker.Spec.from_file(spec), str(gen))
    for source in sources:
        shutil.copy(HERE / source, workdir / source)
    for filename, text in (extra_files or {}).items():
        (workdir / filename).write_text(textwrap.dedent(text))
    (workdir / "setup.py").write_text(
        SETUP.format(name=name, sources=sources, includes=[libbroker.get_include(), str(gen)])
    )
    subprocess.run(
        [sys.executable, "setup.py", "build_ext", "--inplace", "-q"],
        cwd=workdir,
        check=True,
        capture_output=True,
        timeout=600,
    )
    built = [p for p in workdir.iterdir() if p.name.startswith(name + ".") and p.suffix == ".so"]
    assert built, f"no extension {name} was built in {workdir}"
    return built[0]


def run_python(workdir: Path, code: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run *code* in a fresh interpreter that can import the built consumer."""
    full_env = {**os.environ, **(env or {})}
    full_env["PYTHONPATH"] = os.pathsep.join([str(workdir), full_env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=workdir,
        capture_output=True,
        text=True,
        env=full_env,
        timeout=300,
    )


def needed_entries(path: Path) -> list[str]:
    """DT_NEEDED of a built consumer, as readelf (not our own reader) reports them."""
    out = subprocess.run(["readelf", "-dW", str(path)], capture_output=True, text=True, check=True)
    return [
        line.split("[", 1)[1].rstrip("]").strip()
        for line in out.stdout.splitlines()
        if "(NEEDED)" in line
    ]
