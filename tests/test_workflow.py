"""The GitHub Actions workflow that runs the suite on real runners (.github/workflows/wheels.yml).

Oracles: check-jsonschema's vendored GitHub workflow schema (`--builtin-schema
vendor.github-workflows`), ruamel.yaml (check-jsonschema's own YAML parser) for the matrix,
and cibuildwheel itself (`--print-build-identifiers`, offline) for what each matrix entry
would build with the workflow's environment.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / ".github" / "workflows" / "wheels.yml"


def check_jsonschema(path: Path) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("check-jsonschema") or os.path.join(os.path.dirname(sys.executable), "check-jsonschema")
    if not os.path.exists(exe):
        pytest.skip("check-jsonschema is not installed (it is in the test extra)")
    return subprocess.run(
        [exe, "--builtin-schema", "vendor.github-workflows", str(path)],
        capture_output=True, text=True, timeout=120, check=False,
    )


def load() -> dict:  # type: ignore[type-arg]
    from ruamel.yaml import YAML

    return YAML(typ="safe").load(WORKFLOW.read_text())  # type: ignore[no-any-return]


def test_workflow_matches_the_schema() -> None:
    result = check_jsonschema(WORKFLOW)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok" in result.stdout


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("    runs-on: ${{ matrix.os }}\n", ""),  # a job without runs-on
        ("timeout-minutes: 90", "timeout-minutes: ninety"),
        ("  workflow_dispatch:\n", "  workflow_dispatch:\n  on_a_whim:\n"),  # no such event
    ],
)
def test_the_schema_check_can_fail(tmp_path: Path, old: str, new: str) -> None:
    text = WORKFLOW.read_text()
    assert old in text
    broken = tmp_path / "broken.yml"
    broken.write_text(text.replace(old, new, 1))
    result = check_jsonschema(broken)
    assert result.returncode == 1, result.stdout


def test_matrix_covers_the_four_runners() -> None:
    job = load()["jobs"]["build_and_test"]
    entries = {(e["os"], e["arch"]) for e in job["strategy"]["matrix"]["include"]}
    assert entries == {("ubuntu-latest", "x86_64"), ("macos-13", "x86_64"), ("macos-14", "arm64"),
                       ("windows-latest", "AMD64")}
    assert job["runs-on"] == "${{ matrix.os }}"
    assert job["strategy"]["fail-fast"] is False  # one platform's failure hides no other's


def test_cibuildwheel_runs_the_suite_on_each_wheel() -> None:
    steps = load()["jobs"]["build_and_test"]["steps"]
    [build] = [s for s in steps if "cibuildwheel --output-dir" in s.get("run", "")]
    env = build["env"]
    assert env["CIBW_TEST_EXTRAS"] == "test"
    assert env["CIBW_TEST_COMMAND"].startswith("python -m pytest {project}/tests")
    assert env["CIBW_ARCHS"] == "${{ matrix.arch }}"
    [install] = [s for s in steps if "pip install cibuildwheel" in s.get("run", "")]
    assert "cibuildwheel==" in install["run"]  # pinned: the same builder on every run


@pytest.mark.parametrize(
    ("platform", "arch", "suffix"),
    [("linux", "x86_64", "manylinux_x86_64"), ("macos", "x86_64", "macosx_x86_64"),
     ("macos", "arm64", "macosx_arm64"), ("windows", "AMD64", "win_amd64")],
)
def test_each_matrix_entry_builds_every_supported_python(platform: str, arch: str, suffix: str) -> None:
    exe = shutil.which("cibuildwheel") or os.path.join(os.path.dirname(sys.executable), "cibuildwheel")
    if not os.path.exists(exe):
        pytest.skip("cibuildwheel is not installed (it is in the test extra)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIBW_")}
    step_env = next(s for s in load()["jobs"]["build_and_test"]["steps"] if "env" in s)["env"]
    env.update({k: v for k, v in step_env.items() if k in ("CIBW_BUILD", "CIBW_SKIP")}, CIBW_ARCHS=arch)
    out = subprocess.run(
        [exe, "--print-build-identifiers", "--platform", platform, str(ROOT)],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )
    assert out.returncode == 0, out.stderr
    identifiers = set(out.stdout.split())
    wanted = {f"cp3{minor}-{suffix}" for minor in (10, 11, 12, 13)}
    assert identifiers == wanted
