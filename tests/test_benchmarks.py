"""benchmarks/run.py --quick runs end to end and reports every comparison as a number.

No timing assertions: the figures depend on the machine. What is checked is that
the runner builds its fixtures, runs every comparison of design.md part 4, and
writes JSON a reader (or CI) can rely on.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import statistics
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNNER = os.path.join(ROOT, "benchmarks", "run.py")
COMPARISONS = {
    "c_loop": ("brokered / direct", ["brokered", "direct", "no_noexcept_nogil"]),
    "cpdef_loop": ("brokered / direct", ["brokered", "direct", "ctypes", "cffi_abi"]),
    "find_warm": ("find_library / libbroker_find", ["find_library", "libbroker_find"]),
    "find_fresh_process": ("find_library / libbroker_find", ["find_library", "libbroker_find"]),
    "table_1500": (
        "lookup_many+make_table / raw_dlsym",
        ["raw_dlsym", "lookup_many+make_table", "table(spec)"],
    ),
    "consumer_import": ("consumer / ctypes_CDLL", ["consumer", "ctypes_CDLL", "scipy_openblas32"]),
    "generate_1500": ("cli / budget", ["cli", "in_process"]),
}


def _missing_tools() -> list[str]:
    missing = [tool for tool in ("gcc",) if shutil.which(tool) is None]
    for module in ("Cython", "cffi", "scipy_openblas32", "setuptools"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    return missing


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    missing = _missing_tools()
    if missing:
        pytest.skip(f"the benchmarks need {', '.join(missing)}")
    out = tmp_path_factory.mktemp("bench") / "quick.json"
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(
        [sys.executable, RUNNER, "--quick", "--json", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert out.exists(), f"no JSON written; exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    data = json.loads(out.read_text())
    data["_proc"] = proc
    return data


def test_runner_succeeds(report: dict) -> None:
    proc = report["_proc"]
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
    assert report["quick"] is True
    # The printed table names every comparison it measured.
    for name in COMPARISONS:
        assert name in proc.stdout


def test_machine_is_described(report: dict) -> None:
    machine = report["machine"]
    assert machine["nproc"] == os.cpu_count()
    assert machine["python"] == sys.version.split()[0]
    assert isinstance(machine["cpu"], str)


@pytest.mark.parametrize("name", sorted(COMPARISONS))
def test_comparison_has_numeric_ratios(report: dict, name: str) -> None:
    ratio_of, sides = COMPARISONS[name]
    result = report["comparisons"][name]
    assert "error" not in result, result.get("error")
    assert result["ratio_of"] == ratio_of
    ratio = result["ratio"]
    assert isinstance(ratio, float) and math.isfinite(ratio) and ratio > 0
    assert isinstance(result["held"], bool)
    assert isinstance(result["target"], str) and result["target"]
    for side in sides:
        values = result["samples"][side]
        assert values and all(isinstance(v, float) and v > 0 for v in values), side
        assert result["medians"][side] == pytest.approx(statistics.median(values))
    # The headline ratio is exactly the quotient of the medians it names.
    top, bottom = (part.strip() for part in ratio_of.split(" / "))
    assert ratio == pytest.approx(result["medians"][top] / result["medians"][bottom])
    for label, value in result["extra_ratios"].items():
        assert isinstance(value, float) and math.isfinite(value), label


def test_sides_are_interleaved_equally(report: dict) -> None:
    # Interleaving gives each side of a comparison the same number of samples.
    for name in COMPARISONS:
        samples = report["comparisons"][name]["samples"]
        counts = {len(v) for side, v in samples.items() if side != "budget"}
        assert len(counts) == 1, (name, counts)
