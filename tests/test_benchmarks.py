"""benchmarks/run.py --quick runs end to end and writes every comparison as numbers.

No timing assertions: figures depend on the machine and its load. What is checked is
that the runner builds its fixtures (gcc, Cython), runs every benchmark and sweep,
reports every target of issue 11 as held / missed / not measured, writes JSON whose
medians and ratios are what its raw samples say, and draws a PNG per sweep.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import statistics
import subprocess
import sys
from typing import Any

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNNER = os.path.join(ROOT, "benchmarks", "run.py")

COMPARISONS = ("find_process", "consumer_import", "memory", "list", "doctor_numpy", "find_warm",
               "c_loop", "cpdef_loop", "table_1500")
SWEEPS = {
    "consumers_one_table": ("consumers", ["warm", "cold", "invalidated", "linked"]),
    "distinct_libraries": ("libraries", ["warm", "cold", "invalidated", "linked"]),
    "spec_sizes": ("spec_sizes", ["generate", "compile table", "compile extern", "size table",
                                  "size extern"]),
    "search_dir_files": ("dir_files", ["warm", "cold", "invalidated"]),
    "distributions": ("distributions", ["warm", "cold", "invalidated"]),
}
# Sides measured in fresh children: each has an in-child and a whole-process figure.
CHILD_SIDES = {
    "find_process": ["libbroker.find warm", "libbroker.find cold", "libbroker.find invalidated",
                     "find_library", "changed part"],
    "consumer_import": ["consumer warm", "consumer cold", "consumer invalidated", "linked -lz",
                        "ctypes.CDLL"],
    "list": ["list warm", "list cold", "list invalidated"],
}
# Every row of issue 11's table (and the Benchmarks section's C-loop targets).
ISSUE_TARGETS = (
    "find cold (empty cache) vs find_library",
    "find after one sys.path directory changed",
    "consumer import, warm cache, vs linked -lz",
    "consumer import, empty cache, vs linked -lz",
    "50 consumers of 50 libraries, empty cache",
    "5,000-function consumer compile time vs plain externs",
    "5,000-function consumer .so size vs plain externs",
    "spec parsing + generate, 5,000 functions",
    "generate linear",
    "libbroker list",
    "doctor --import numpy over the import",
    "C loop: generated call / PLT call",
    "C loop: instructions per iteration",
)


def _missing_tools() -> list[str]:
    missing = [tool for tool in ("gcc", "ldconfig") if shutil.which(tool) is None]
    for module in ("Cython", "cffi", "scipy_openblas32", "setuptools", "numpy"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    return missing


def _has(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    missing = _missing_tools()
    if missing:
        pytest.skip(f"the benchmarks need {', '.join(missing)}")
    out = tmp_path_factory.mktemp("bench")
    argv = [sys.executable, RUNNER, "--quick", "--json", str(out / "quick.json"),
            "--plots-dir", str(out / "plots")]
    if _has("matplotlib"):
        argv.append("--plots")
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=1200, check=False)
    path = out / "quick.json"
    assert path.exists(), f"no JSON written; exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    data: dict[str, Any] = json.loads(path.read_text())
    data["_proc"] = proc
    return data


def test_runner_succeeds(report: dict[str, Any]) -> None:
    proc = report["_proc"]
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
    assert report["quick"] is True
    for name in (*COMPARISONS, *SWEEPS):
        assert name in proc.stdout
        assert "error" not in report["results"][name], report["results"][name].get("error")


def test_machine_is_described(report: dict[str, Any]) -> None:
    machine = report["machine"]
    assert machine["nproc"] == os.cpu_count()
    assert machine["python"] == sys.version.split()[0]
    assert isinstance(machine["cpu"], str)
    assert machine["gcc"].startswith("gcc")


@pytest.mark.parametrize("name", COMPARISONS)
def test_comparison_medians_and_ratios_follow_the_samples(report: dict[str, Any],
                                                          name: str) -> None:
    result = report["results"][name]
    assert result["samples"] and result["unit"] and result["notes"]
    for side, values in result["samples"].items():
        assert values and all(isinstance(v, float) and math.isfinite(v) for v in values), side
        assert result["medians"][side] == pytest.approx(statistics.median(values))
    for label, value in result["ratios"].items():
        assert isinstance(value, float) and math.isfinite(value) and value > 0, label


@pytest.mark.parametrize("name", sorted(CHILD_SIDES))
def test_children_report_in_child_time_beside_whole_process(report: dict[str, Any],
                                                           name: str) -> None:
    samples = report["results"][name]["samples"]
    for side in CHILD_SIDES[name]:
        inner, wall = samples[side], samples[f"{side} [wall]"]
        assert len(inner) == len(wall) == report["settings"]["processes"]
        # The whole process includes the interpreter's start-up the child excludes.
        assert all(0 < i < w for i, w in zip(inner, wall)), (side, inner, wall)


def test_consumer_comparison_records_imports(report: dict[str, Any]) -> None:
    imported = report["results"]["consumer_import"]["imported"]
    # The brokered consumer imports libbroker's warm-path module; the linked one nothing of it.
    assert "_libbroker_warm" in imported["consumer warm"]
    assert not any("libbroker" in m for m in imported["linked -lz"])


def test_find_warm_has_the_lru_cache_baseline(report: dict[str, Any]) -> None:
    medians = report["results"]["find_warm"]["medians"]
    assert set(medians) == {"find_library", "lru_cache(find_library)", "libbroker.find"}


def test_memory_is_measured(report: dict[str, Any]) -> None:
    medians = report["results"]["memory"]["medians"]
    # `import libbroker` is lazy; a first find imports the search modules: memory grows.
    assert medians["libbroker.find"] > medians["import libbroker"] >= 0
    assert medians["1500-slot consumer"] > 0


def test_c_loop_counts_instructions(report: dict[str, Any]) -> None:
    result = report["results"]["c_loop"]
    assert len(result["samples"]["brokered [process medians]"]) == \
        report["settings"]["loop_processes"]
    counts = result["instructions_per_call"]
    if shutil.which("valgrind") is None:
        assert "valgrind" in counts
    else:
        # A loop iteration is a handful of instructions: an add, a call, a return.
        assert all(3 <= counts[side] <= 100 for side in ("brokered", "direct")), counts


@pytest.mark.parametrize("name", sorted(SWEEPS))
def test_sweep_has_a_median_per_size(report: dict[str, Any], name: str) -> None:
    setting, labels = SWEEPS[name]
    result = report["results"][name]
    assert result["x"] == report["settings"][setting]
    assert sorted(result["series"]) == sorted(labels)
    for label in labels:
        values = result["series"][label]
        assert len(values) == len(result["x"])
        assert all(isinstance(v, float) and v > 0 for v in values), (label, values)
        for n, value in zip(result["x"], values):
            assert value == pytest.approx(statistics.median(result["samples"][label][str(n)]))


@pytest.mark.skipif(not _has("matplotlib"), reason="--plots needs matplotlib")
def test_a_plot_per_sweep(report: dict[str, Any]) -> None:
    plots = report["plots"]
    assert sorted(os.path.basename(p) for p in plots) == sorted(f"sweep_{n}.png" for n in SWEEPS)
    for path in plots:
        with open(path, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n", path


def test_every_issue_target_is_reported(report: dict[str, Any]) -> None:
    targets = report["targets"]
    for wanted in ISSUE_TARGETS:
        found = [t for t in targets if t["measure"].startswith(wanted)]
        assert found, f"target {wanted!r} not reported"
    for t in targets:
        assert t["held"] in (True, False, None), t
        # Not measured has no value and says why; measured has a finite value.
        if t["held"] is None:
            assert t["value"] is None and t["why"], t
        else:
            assert isinstance(t["value"], float) and math.isfinite(t["value"]), t
    # The printed table says held / MISSED / not measured for each.
    stdout = report["_proc"].stdout
    assert stdout.count("held") + stdout.count("MISSED") + stdout.count("not measured") >= \
        len(targets)


def test_summary_lists_every_target_of_every_run(report: dict[str, Any], tmp_path) -> None:
    path = tmp_path / "run.json"
    path.write_text(json.dumps({k: v for k, v in report.items() if k != "_proc"}))
    out = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "summarize.py"), str(path), str(path)],
                         capture_output=True, text=True, check=True, timeout=60).stdout
    for target in report["targets"]:
        row = next(line for line in out.splitlines() if line.startswith(f"| {target['measure']} |"))
        assert row.count("|") == 6  # measure, goal, two runs, all held
        assert row.rstrip(" |").endswith("yes" if target["held"] else "NO")
    for sweep in SWEEPS:
        assert f"**{sweep}**" in out
