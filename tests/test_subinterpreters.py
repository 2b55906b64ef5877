"""Subinterpreters get a clear ImportError; the main interpreter keeps working (design.md 5.1).

Each case runs in a fresh interpreter, so which interpreter imports first is under test.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

try:
    import _xxsubinterpreters  # noqa: F401  (Python 3.8-3.12)
except ImportError:  # pragma: no cover
    pytest.skip("no _xxsubinterpreters on this Python", allow_module_level=True)

SUB = '''
try:
    import libbroker
    libbroker.load("z")
    print("SUB-OK")
except ImportError as e:
    print("SUB-REFUSED", e)
'''


def _run(code: str, tmp_path) -> str:
    env = dict(os.environ, LIBBROKER_CACHE_DIR=str(tmp_path / "cache"),
               LIBBROKER_CONFIG=str(tmp_path / "none.toml"))
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True,
                       text=True, timeout=120, check=False)
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.mark.parametrize("sub_first", [True, False])
def test_subinterpreter_refused_main_keeps_working(tmp_path, sub_first) -> None:
    sub = f"_xxsubinterpreters.run_string(_xxsubinterpreters.create(), {SUB!r})"
    main = "import libbroker; print('MAIN', libbroker.load('z').path)"
    order = [sub, main] if sub_first else [main, sub]
    out = _run("import _xxsubinterpreters\n" + "\n".join(order) + "\n" + main, tmp_path)
    assert "SUB-REFUSED libbroker serves the main interpreter only" in out
    assert out.count("MAIN /") == 2 and "SUB-OK" not in out


def test_consumer_extension_in_subinterpreter_is_refused(tmp_path) -> None:
    """The compiled module itself, imported first from a subinterpreter, is refused the same way."""
    sub = "import libbroker._master"
    out = _run(f"""
        import _xxsubinterpreters as s
        try:
            s.run_string(s.create(), {sub!r})
        except Exception as e:
            print("SUB-REFUSED", e)
        import libbroker
        from libbroker import _master
        print("MAIN", libbroker.load("z").path)
    """, tmp_path)
    assert "main interpreter only" in out and "MAIN /" in out
