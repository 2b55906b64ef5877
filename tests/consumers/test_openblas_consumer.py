"""The real scipy-openblas32 wheel, found through `packages =` in a spec and
verified against its RECORD, serves ddot_, dgemm_ and cblas_ddot to a Cython
consumer; NumPy is the oracle."""

from __future__ import annotations

import json
import os
import sys

import pytest

from ._build import SPECS, build, run_python

np = pytest.importorskip("numpy")
pytest.importorskip("scipy_openblas32")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory):
    workdir = tmp_path_factory.mktemp("openblas")
    build(workdir, "cy_openblas", ["cy_openblas.pyx"], [SPECS / "openblas.toml"])
    return workdir


def test_blas_against_numpy(workdir) -> None:
    out = run_python(
        workdir,
        """
        import json, sys
        before = set(sys.modules)
        import cy_openblas
        assert "scipy_openblas32" not in sys.modules, "the provider's code was imported"
        import numpy as np
        import libbroker
        rng = np.random.default_rng(0)
        x, y = rng.standard_normal(1000), rng.standard_normal(1000)
        a = np.asfortranarray(rng.standard_normal((37, 23)))
        b = np.asfortranarray(rng.standard_normal((23, 41)))
        c = np.zeros((37, 41), order="F")
        cy_openblas.dgemm(a, b, c)
        lib = [l for l in libbroker.loaded() if l.name == "scipy_openblas"][0]
        found = libbroker.find("scipy_openblas")
        print(json.dumps({
            "ddot": [cy_openblas.ddot(x, y), float(np.dot(x, y))],
            "cblas": [cy_openblas.cblas_ddot(x, y), float(np.dot(x, y))],
            "gemm_err": float(np.max(np.abs(c - a @ b))),
            "config": cy_openblas.config(),
            "origin": lib.origin, "path": lib.path, "version": lib.version_text,
            "find_is_loaded": found is lib,
        }))
        """,
    )
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["ddot"][0] == pytest.approx(data["ddot"][1], rel=1e-12)
    assert data["cblas"][0] == pytest.approx(data["cblas"][1], rel=1e-12)
    assert data["gemm_err"] < 1e-12
    assert data["origin"] == "package:scipy-openblas32"
    assert data["path"].endswith("libscipy_openblas.so")
    assert data["config"].startswith("OpenBLAS ") and data["version"] in data["config"]
    assert data["find_is_loaded"]


def test_duplicates_reported_with_numpy(workdir) -> None:
    out = run_python(
        workdir,
        """
        import json
        import numpy
        import cy_openblas
        import libbroker
        print(json.dumps(libbroker.report()))
        """,
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    groups = [g for g in report["duplicates"] if any("scipy_openblas.so" in p for p in g)]
    assert len(groups) == 1, report["duplicates"]
    group = groups[0]
    assert any("numpy" in p and "openblas" in p for p in group), group
    assert report["warnings"]


def test_modified_file_refused(workdir, tmp_path) -> None:
    """A packages= file whose bytes differ from RECORD is refused with the reason.

    The installed wheel is left alone: a copy of the distribution is made in a
    private site directory and tampered with there.
    """
    import shutil
    from importlib.metadata import distribution

    dist = distribution("scipy-openblas32")
    site = tmp_path / "site"
    site.mkdir()
    root = dist.locate_file("")
    for entry in os.listdir(root):
        if entry == "scipy_openblas32" or (entry.startswith("scipy_openblas32-") and entry.endswith(".dist-info")):
            shutil.copytree(os.path.join(root, entry), site / entry, symlinks=True)
    lib = site / "scipy_openblas32" / "lib" / "libscipy_openblas.so"
    with open(lib, "ab") as f:
        f.write(b"\0")
    out = run_python(
        workdir,
        f"""
        import sys
        sys.path.insert(0, {str(site)!r})
        import libbroker
        try:
            libbroker.table({str(SPECS / "openblas.toml")!r})
        except libbroker.BrokerError as exc:
            print(type(exc).__name__, exc)
        """,
    )
    assert out.returncode == 0, out.stderr
    assert "modified after installation" in out.stdout, out.stdout
    assert str(lib) in out.stdout


def test_doctor_import_numpy_lists_extensions() -> None:
    import subprocess

    out = subprocess.run(
        [sys.executable, "-m", "libbroker", "doctor", "--import", "numpy", "--json"],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stderr
    loaded = json.loads(out.stdout)["loaded"]
    assert any("numpy" in item["path"] and "_multiarray_umath" in item["path"] for item in loaded)
