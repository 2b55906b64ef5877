"""fork() while threads are inside libbroker: every lock is usable in the child (design.md 5.1).

Runs in a child interpreter so a deadlock shows up as a timeout, not a hung suite.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork() on this platform")

SPEC = (
    '[library]\nname = "zlib"\nnames = ["z"]\n[functions]\n'
    'required = ["unsigned long crc32(unsigned long, const unsigned char *, unsigned int)"]\n'
)

SCRIPT = textwrap.dedent(f"""
    import os, sys, threading, time
    import libbroker

    SPEC = {SPEC!r}
    stop = False
    inside = threading.Barrier(33)

    def busy(k):
        i = 0
        inside.wait()
        while not stop:
            i += 1
            # a new spec each time: parse + build under the locks of _runtime and _cdecl
            libbroker.table(SPEC.replace('"zlib"', f'"t{{k}}_{{i}}"'))
            libbroker.load("z")

    # Warm up first: a thread still inside its first `import` of a module at fork
    # time holds CPython's per-module import lock, which the child cannot take
    # (CPython's, not libbroker's; Python 3.11 does not renew those locks).
    libbroker.table(SPEC.replace('"zlib"', '"warm"'))
    libbroker.load("z")
    threads = [threading.Thread(target=busy, args=(k,), daemon=True) for k in range(32)]
    for t in threads:
        t.start()
    inside.wait()
    time.sleep(0.2)
    hung = 0
    for n in range(int(sys.argv[1])):
        pid = os.fork()
        if pid == 0:
            import faulthandler
            faulthandler.dump_traceback_later(15, exit=True)  # where a hung child is stuck
            libbroker.table(SPEC.replace('"zlib"', f'"child{{n}}"'))
            libbroker.load("z")
            libbroker.find("z")
            os._exit(0)
        deadline = time.time() + 20
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                assert os.waitstatus_to_exitcode(status) == 0, status
                break
            if time.time() > deadline:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
                hung += 1
                break
            time.sleep(0.02)
    stop = True
    print("hung", hung)
""")


def test_fork_while_32_threads_are_inside_table(tmp_path) -> None:
    env = dict(os.environ, LIBBROKER_CACHE_DIR=str(tmp_path / "cache"),
               LIBBROKER_CONFIG=str(tmp_path / "none.toml"))
    r = subprocess.run([sys.executable, "-c", SCRIPT, "8"], env=env, capture_output=True, text=True,
                       timeout=400, check=False)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split() == ["hung", "0"], r.stdout + r.stderr[-6000:]


def test_every_libbroker_lock_is_made_by_locks() -> None:
    """A lock made any other way would not be renewed in the child."""
    import libbroker

    package = os.path.dirname(libbroker.__file__)
    offenders = []
    for name in sorted(os.listdir(package)):
        if not name.endswith(".py") or name == "_locks.py":
            continue
        with open(os.path.join(package, name), encoding="utf-8") as f:
            text = f.read()
        for needle in ("threading.Lock(", "threading.RLock(", "_thread.RLock(", "allocate_lock(", "_thread.LockType("):
            if needle in text:
                offenders.append(f"{name}: {needle}")
    assert not offenders, offenders


def test_locks_are_renewed_in_the_child() -> None:
    from libbroker import _locks

    box = _locks.new_rlock()
    box.lock.acquire()  # held "by another thread" at fork time
    pid = os.fork()
    if pid == 0:
        ok = box.lock.acquire(timeout=2)
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    box.lock.release()
    assert os.waitstatus_to_exitcode(status) == 0
