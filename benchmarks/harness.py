"""Timing machinery shared by every benchmark: interleaving, child processes, records.

A *side* is one thing measured (a callable returning seconds, or a dict of figures
for child processes). Sides of one comparison run interleaved (A B C, C B A, ...)
so drifting clock speed and background load hit all of them alike; each figure is
the median of the samples.

Child processes time their own work with `perf_counter` ("in the child": the
interpreter's start-up and `site` excluded) and the parent times the whole process
("wall") beside it; the child also reports its RSS before and after the work and
which heavy modules the work imported.
"""

from __future__ import annotations

import ast
import os
import statistics
import subprocess
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

clock = time.perf_counter

# Modules a consumer's import should never pull (issue 11; design.md part 4).
HEAVY = ("pycparser", "tomllib", "packaging", "importlib.metadata", "re", "typing", "json",
         "pathlib", "dataclasses", "platformdirs")

_MARK = "@@BENCH "

# The child program: setup (untimed), the timed code, then one marked line of figures.
_PROGRAM = """\
import sys as _sys, time as _time
def _rss():
    with open('/proc/self/statm') as _f:
        return int(_f.read().split()[1]) * {page}
{setup}
_before = set(_sys.modules)
_r0 = _rss()
_t0 = _time.perf_counter()
{code}
_t1 = _time.perf_counter()
_r1 = _rss()
_new = sorted(m for m in set(_sys.modules) - _before)
_sys.__stdout__.write('\\n{mark}' + repr({{'t': _t1 - _t0, 'rss0': _r0, 'rss1': _r1, 'new': _new}}) + '\\n')
"""


class Settings:
    """Repeat counts and sweep sizes: full run, or --quick (tiny, for the test suite)."""

    def __init__(self, quick: bool) -> None:
        self.quick = quick
        self.repeats = 3 if quick else 21  # in-process repeats per side
        self.processes = 1 if quick else 20  # fresh interpreters per side and state
        self.sweep_processes = 1 if quick else 7  # per point of a sweep
        self.loop_processes = 2 if quick else 9  # C loop: processes whose medians are pooled
        self.c_calls = 1_000_000 if quick else 20_000_000
        self.callgrind_calls = (20_000,) if quick else (100_000, 300_000)
        self.cpdef_calls = 20_000 if quick else 300_000
        self.abi_calls = 3_000 if quick else 50_000
        self.find_calls = 300 if quick else 5_000
        self.find_library_calls = 1 if quick else 5
        self.consumers = (1, 3) if quick else (1, 10, 50)
        self.libraries = (1, 3) if quick else (1, 10, 50)
        self.spec_sizes = (10, 100) if quick else (10, 100, 1500, 5000)
        self.dir_files = (10, 100) if quick else (10, 100, 1000)
        self.distributions = (17, 50) if quick else (17, 500)
        self.spec_repeats = 1 if quick else 3


def interleave(sides: dict[str, Callable[[], float]], repeats: int,
               *, warmup: bool = True) -> dict[str, list[float]]:
    """Each side once to warm up (unless *warmup* is false), then *repeats* rounds,
    the order reversed every other round. Samples in seconds, per side."""
    names = list(sides)
    if warmup:
        for name in names:
            sides[name]()
    samples: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(repeats):
        for name in names if round_ % 2 == 0 else names[::-1]:
            samples[name].append(sides[name]())
    return samples


class Child:
    """One kind of fresh interpreter: `python [flags] -c PROGRAM` in *env* and *cwd*.

    Calling it runs one process and returns its figures: `t` (seconds in the child,
    around *code* only), `wall` (seconds of the whole process, from the parent),
    `rss0`/`rss1` (bytes resident before/after *code*), `new` (modules *code* imported).
    *before* runs in the parent before every process, untimed (emptying a cache,
    touching a directory); *warm* runs the same process once, untimed, first.
    """

    def __init__(self, code: str, env: dict[str, str], cwd: str, *, setup: str = "",
                 flags: Sequence[str] = (), before: Callable[[], None] | None = None,
                 warm: bool = False) -> None:
        program = _PROGRAM.format(setup=setup, code=code, mark=_MARK,
                                  page=os.sysconf("SC_PAGE_SIZE"))
        self.argv = [sys.executable, *flags, "-c", program]
        self.code = code
        self.env = env
        self.cwd = cwd
        self.before = before
        self.warm = warm

    def _once(self) -> dict:
        start = clock()
        proc = subprocess.run(self.argv, env=self.env, cwd=self.cwd, capture_output=True,
                              text=True, timeout=600, check=False)
        wall = clock() - start
        lines = [line for line in proc.stdout.splitlines() if line.startswith(_MARK)]
        if proc.returncode != 0 or not lines:
            raise RuntimeError(
                f"child {self.code!r} failed (exit {proc.returncode}): {proc.stderr[-2000:]}"
            )
        figures = ast.literal_eval(lines[-1][len(_MARK):])
        figures["wall"] = wall
        return figures

    def __call__(self) -> dict:
        if self.before is not None:
            self.before()
        if self.warm:
            self._once()
        return self._once()


class Command:
    """A side that is a whole command (ldconfig -p, a CLI): `t` and `wall` both its wall time."""

    def __init__(self, argv: Sequence[str], env: dict[str, str], cwd: str) -> None:
        self.argv = list(argv)
        self.env = env
        self.cwd = cwd

    def __call__(self) -> dict:
        start = clock()
        proc = subprocess.run(self.argv, env=self.env, cwd=self.cwd, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, timeout=600, check=False)
        wall = clock() - start
        if proc.returncode != 0:
            raise RuntimeError(f"{self.argv!r} failed: {proc.stderr.decode(errors='replace')}")
        return {"t": wall, "wall": wall, "rss0": 0, "rss1": 0, "new": []}


_counter = iter(range(1 << 30))


def touch(directory: str) -> None:
    """Change *directory* as a `pip install` changes site-packages: a new entry appears."""
    with open(os.path.join(directory, f".bench-touch-{os.getpid()}-{next(_counter)}"), "w"):
        pass


def states(code: str, env: dict[str, str], cwd: str, *, cache_root: str, touched: str,
           name: str = "", tag: str = "", setup: str = "",
           flags: Sequence[str] = ()) -> dict[str, Child]:
    """*code* in three states, each with its own LIBBROKER_CACHE_DIR under *cache_root*:

    - warm: the same process ran just before (untimed), so the disk cache is current;
    - cold: an empty cache directory (a new one for every process);
    - invalidated: the cache was current, then *touched* (a directory on the search
      path) changed, as after any `pip install`.
    """
    prefix = f"{name} " if name else ""
    tag = tag or name or "x"
    envs = {state: dict(env) for state in ("warm", "cold", "invalidated")}
    for state, e in envs.items():
        e["LIBBROKER_CACHE_DIR"] = os.path.join(cache_root, f"{tag}-{state}")
        os.makedirs(e["LIBBROKER_CACHE_DIR"], exist_ok=True)

    def fresh_cache() -> None:
        path = os.path.join(cache_root, f"{tag}-cold-{next(_counter)}")
        os.makedirs(path)
        envs["cold"]["LIBBROKER_CACHE_DIR"] = path

    return {
        f"{prefix}warm": Child(code, envs["warm"], cwd, setup=setup, flags=flags, warm=True),
        f"{prefix}cold": Child(code, envs["cold"], cwd, setup=setup, flags=flags,
                               before=fresh_cache),
        f"{prefix}invalidated": Child(code, envs["invalidated"], cwd, setup=setup, flags=flags,
                                      before=lambda: touch(touched)),
    }


def run_children(children: dict[str, Callable[[], dict]],
                 processes: int) -> dict[str, list[dict]]:
    """Every child *processes* times, interleaved, after one untimed run each (which
    also leaves each state's cache as that state expects)."""
    for child in children.values():
        child()
    runs: dict[str, list[dict]] = {name: [] for name in children}
    names = list(children)
    for round_ in range(processes):
        for name in names if round_ % 2 == 0 else names[::-1]:
            runs[name].append(children[name]())
    return runs


def child_samples(runs: dict[str, list[dict]]) -> dict[str, list[float]]:
    """`NAME` (in the child) and `NAME [wall]` (whole process) sample lists."""
    samples: dict[str, list[float]] = {}
    for name, figures in runs.items():
        samples[name] = [f["t"] for f in figures]
        samples[f"{name} [wall]"] = [f["wall"] for f in figures]
    return samples


def heavy_imports(figures: list[dict]) -> list[str]:
    """The HEAVY modules (and libbroker's own) any of these processes imported in *code*."""
    seen: set[str] = set()
    for f in figures:
        seen.update(m for m in f["new"] if m in HEAVY or m.startswith("libbroker") or m == "_libbroker_warm")
    return sorted(seen)


def medians(samples: dict[str, list[float]]) -> dict[str, float]:
    return {name: statistics.median(values) for name, values in samples.items() if values}


def record(samples: dict[str, list[float]], unit: str, notes: str,
           ratios: dict[str, tuple[str, str]] | None = None, **extra: object) -> dict:
    """The JSON record of one comparison: raw samples, medians, named ratios of medians."""
    med = medians(samples)
    return {
        "unit": unit,
        "notes": notes,
        "samples": samples,
        "medians": med,
        "ratios": {label: med[a] / med[b] for label, (a, b) in (ratios or {}).items()},
        **extra,
    }


def target(measure: str, goal: str, value: float | None, held: bool | None,
           *, source: str, unit: str = "ratio", why: str = "") -> dict:
    """One target of issue 11 (or design.md part 4): held, missed, or not measured (None).
    *unit*: what *value* is ("ratio" or "s")."""
    return {"measure": measure, "target": goal, "value": value, "unit": unit, "held": held,
            "source": source, "why": why}


def fmt(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6), ("ns", 1e-9)):
        if abs(seconds) >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def speed_probe() -> float:
    """Milliseconds a fixed pure-Python loop takes here now (best of 3): how fast the machine
    is at the moment. A shared VM can run the same code 1.5x slower for minutes, which moves
    every absolute figure (the 100 ms and 0.5 s targets) while the ratios of one
    interleaved run move far less; the probe is recorded beside each benchmark so that
    runs can be compared."""
    best = float("inf")
    for _ in range(3):
        start = clock()
        total = 0
        for i in range(300_000):
            total += i
        best = min(best, clock() - start)
    return best * 1e3

