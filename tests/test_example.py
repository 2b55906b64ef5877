"""examples/zlib_crc builds from its own setup.py (headers generated at build
time, no link flags) and its self-check passes against Python's zlib."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "zlib_crc"


def test_example_builds_and_runs(tmp_path: Path) -> None:
    work = tmp_path / "zlib_crc"
    shutil.copytree(EXAMPLE, work, ignore=shutil.ignore_patterns("build", "*.so", "*.c"))
    subprocess.run(
        [sys.executable, "setup.py", "build_ext", "--inplace", "-q"],
        cwd=work, check=True, capture_output=True, timeout=600,
    )
    assert (work / "build" / "libbroker-headers" / "libbroker_zlib.pxd").is_file()
    env = dict(os.environ, PYTHONPATH=str(work), LIBBROKER_CACHE_DIR=str(tmp_path / "cache"))
    out = subprocess.run(
        [sys.executable, "-m", "zlib_crc"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "brokered from /" in out.stdout and "MISMATCH" not in out.stdout
