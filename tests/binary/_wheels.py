"""Real Windows/macOS binaries from PyPI wheels, for the binary readers' tests.

`wheel_binaries(dist, platform, suffixes)` downloads the newest binary wheel of
``dist`` for ``platform`` (CPython 3.11 tags: "win_amd64", "win32",
"win_arm64", "macosx_11_0_arm64", ...) with pip, unpacks it once into
``~/.cache/libbroker-test-wheels`` (``LIBBROKER_TEST_WHEELS`` overrides) and
returns the files ending in one of ``suffixes`` (default by platform: ".dll" and
".pyd" for Windows tags, ".dylib" and ".so" for macOS ones), sorted. When the index is
unreachable or has no such wheel the calling test is skipped with the reason,
never failed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

CACHE = Path(
    os.environ.get(
        "LIBBROKER_TEST_WHEELS", Path.home() / ".cache" / "libbroker-test-wheels"
    )
)


def _download(dist: str, platform: str) -> Path:
    dest = CACHE / f"{dist}-{platform}"
    wheels = sorted(dest.glob("*.whl")) if dest.is_dir() else []
    if wheels:
        return wheels[-1]
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
        "--platform", platform, "--python-version", "3.11", "--implementation", "cp",
        "--dest", str(dest), dist,
    ]  # fmt: skip
    try:
        proc = subprocess.run(
            cmd, check=False, capture_output=True, text=True, timeout=600
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"pip download {dist} for {platform} failed: {exc}")
    wheels = sorted(dest.glob("*.whl"))
    if proc.returncode != 0 or not wheels:
        errors = [line for line in proc.stderr.splitlines() if "is ignored" not in line]
        pytest.skip(
            f"no {dist} wheel for {platform} (index unreachable?): {' '.join(errors)[-400:]}"
        )
    return wheels[-1]


def default_suffixes(platform: str) -> tuple[str, ...]:
    """The binaries' suffixes of a platform tag: Mach-O for "macosx_*", else PE."""
    return (".dylib", ".so") if platform.startswith("macosx") else (".dll", ".pyd")


def wheel_binaries(
    dist: str, platform: str, suffixes: tuple[str, ...] | None = None
) -> list[Path]:
    """Files ending in one of ``suffixes`` inside the ``dist`` wheel for ``platform``, sorted.

    *suffixes* defaults to `default_suffixes(platform)`. Skips the calling test
    when the wheel cannot be had.
    """
    if suffixes is None:
        suffixes = default_suffixes(platform)
    wheel = _download(dist, platform)
    root = wheel.parent / "unpacked" / wheel.stem
    marker = root / ".complete"
    if not marker.exists():
        # Unpack to a temporary name first: an interrupted run never leaves half a tree.
        tmp = root.with_name(root.name + f".tmp{os.getpid()}")
        with zipfile.ZipFile(wheel) as zf:
            zf.extractall(tmp)
        root.parent.mkdir(parents=True, exist_ok=True)
        if root.exists():
            import shutil

            shutil.rmtree(root)
        tmp.rename(root)
        marker.touch()
    return sorted(
        p for p in root.rglob("*") if p.is_file() and p.name.lower().endswith(suffixes)
    )
