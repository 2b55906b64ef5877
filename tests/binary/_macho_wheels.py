"""Real binaries from PyPI wheels, for testing the binary readers against oracles.

`wheel_binaries(dist, platform, suffixes)` downloads the newest binary wheel of
``dist`` for ``platform`` (CPython 3.11) with pip, unpacks it once into
``~/.cache/libbroker-test-wheels`` and lists the files ending in one of
``suffixes``. The test is skipped (not failed) when the index is unreachable
or has no such wheel. Same shape as the PE tests' ``_wheels.py``; the two are
meant to be folded into one module.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

CACHE = Path(os.environ.get("LIBBROKER_TEST_WHEELS", Path.home() / ".cache" / "libbroker-test-wheels"))


def _download(dist: str, platform: str) -> Path:
    dest = CACHE / f"{dist}-{platform}"
    wheels = sorted(dest.glob("*.whl")) if dest.is_dir() else []
    if not wheels:
        dest.mkdir(parents=True, exist_ok=True)
        cmd = [
            sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
            "--only-binary=:all:", "--platform", platform, "--python-version", "3.11",
            "--implementation", "cp", "--dest", str(dest), dist,
        ]  # fmt: skip
        try:
            proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=600)
        except (OSError, subprocess.TimeoutExpired) as exc:
            pytest.skip(f"pip download {dist} for {platform} failed: {exc}")
        wheels = sorted(dest.glob("*.whl"))
        if proc.returncode != 0 or not wheels:
            pytest.skip(f"no {dist} wheel for {platform} (index unreachable?): {proc.stderr[-500:]}")
    return wheels[-1]


def wheel_binaries(dist: str, platform: str, suffixes: tuple[str, ...] = (".dylib", ".so")) -> list[Path]:
    """Binaries (by suffix, sorted) inside the ``dist`` wheel for ``platform``; skips if unavailable."""
    wheel = _download(dist, platform)
    root = wheel.parent / "unpacked" / wheel.stem
    marker = root / ".complete"
    if not marker.exists():
        with zipfile.ZipFile(wheel) as zf:
            zf.extractall(root)
        marker.touch()
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name.endswith(suffixes))
