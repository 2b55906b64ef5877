"""Cross-compiling test fixtures with zig cc (PyPI `ziglang`): Mach-O dylibs and PE DLLs built here.

zig ships the libc headers and link stubs of macOS (libSystem) and Windows (mingw-w64), so a
Linux host builds real binaries for other platforms in milliseconds once zig's cache is warm.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest

HAVE_ZIG = importlib.util.find_spec("ziglang") is not None
needs_zig = pytest.mark.skipif(not HAVE_ZIG, reason="needs zig cc (pip install ziglang, in the test extra)")


def zig_cc(*args: str, cwd: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run `python -m ziglang cc ARGS` (check=True); stderr is in the exception on failure."""
    env = dict(os.environ)
    # zig's cache in the user's cache dir; tests isolate HOME-derived dirs, so pin it.
    env.setdefault("ZIG_GLOBAL_CACHE_DIR", os.path.join(os.path.expanduser("~"), ".cache", "zig"))
    proc = subprocess.run(
        [sys.executable, "-m", "ziglang", "cc", *args],
        check=False, capture_output=True, text=True, cwd=cwd, env=env, timeout=300,
    )
    if proc.returncode != 0:
        raise AssertionError(f"zig cc {' '.join(args)} failed:\n{proc.stderr}")
    return proc


def build(source: str, out: str, target: str, *extra: str) -> str:
    """Compile C *source* text into the shared library *out* for zig *target*; return *out*."""
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    src = out + ".c"
    with open(src, "w") as f:
        f.write(source)
    zig_cc("-target", target, "-shared", "-O2", "-fno-sanitize=undefined", "-o", out, src, *extra)
    return out
