"""docs/tutorial.md runs as written: every file it shows is written, every command
it shows is run (in order, in an empty directory), and the output it shows is
what the commands print, up to this machine's library path and version."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

TUTORIAL = Path(__file__).resolve().parent.parent / "docs" / "tutorial.md"
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux paths")

_FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.DOTALL | re.MULTILINE)
_FILE_MARK = re.compile(r"^(?:#|/\*)\s*([\w.]+\.\w+)\s*(?:\*/)?$")


def steps(text: str) -> list[tuple[str, str, str]]:
    """("file", name, content) and ("console", command, expected output) in order."""
    found: list[tuple[str, str, str]] = []
    for lang, body in _FENCE.findall(text):
        if lang == "console":
            command, expected = None, []
            for line in body.splitlines():
                if line.startswith("$ "):
                    if command is not None:
                        found.append(("console", command, "\n".join(expected)))
                    command, expected = line[2:], []
                else:
                    expected.append(line)
            if command is not None:
                found.append(("console", command, "\n".join(expected)))
            continue
        first = body.splitlines()[0] if body else ""
        mark = _FILE_MARK.match(first.strip())
        assert mark, f"a {lang} block without a '# FILE' first line: {first!r}"
        found.append(("file", mark.group(1), body))
    return found


def _normal(line: str) -> str:
    # This machine's zlib path and version for the tutorial's.
    line = re.sub(r"/\S*/libz\.so\.1", "LIBZ", line)
    return re.sub(r"\b\d+\.\d+\.\d+\b", "X.Y.Z", line).rstrip()


def _matches(expected: str, actual: str) -> bool:
    """Every expected line appears in the output, in order; '...' skips lines."""
    lines = [_normal(x) for x in actual.splitlines()]
    position = 0
    for want in expected.splitlines():
        if want.strip() == "...":
            continue
        want = _normal(want)
        while position < len(lines) and lines[position] != want:
            position += 1
        if position == len(lines):
            return False
        position += 1
    return True


def test_tutorial_runs_as_written(tmp_path: Path) -> None:
    pytest.importorskip("Cython")
    if not os.path.exists("/usr/include/zlib.h"):
        pytest.skip("zlib.h (zlib1g-dev) is not installed")
    bindir = os.path.dirname(sys.executable)
    env = {**os.environ, "PATH": bindir + os.pathsep + os.environ.get("PATH", "")}
    env.pop("PYTHONPATH", None)
    ran = 0
    for kind, name, content in steps(TUTORIAL.read_text(encoding="utf-8")):
        if kind == "file":
            (tmp_path / name).write_text(content, encoding="utf-8")
            continue
        done = subprocess.run(["bash", "-c", name], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=900)
        assert done.returncode == 0, f"$ {name}\n{done.stdout}\n{done.stderr}"
        assert _matches(content, done.stdout), (
            f"$ {name}\nthe tutorial shows:\n{content}\nbut it printed:\n{done.stdout}")
        ran += 1
    assert ran >= 6
    assert (tmp_path / "written.toml").read_text().count("zlibVersion") == 1


def test_the_matcher_can_fail() -> None:
    assert _matches("a\n...\nc", "a\nb\nc")
    assert not _matches("a\nc", "c\na")
    assert not _matches("907060870", "907060871")
    assert _matches("/lib/x86_64-linux-gnu/libz.so.1 (version 1.2.13)",
                    "/usr/lib/aarch64-linux-gnu/libz.so.1 (version 1.3.1)")
