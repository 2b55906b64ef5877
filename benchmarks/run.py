"""libbroker benchmarks: every comparison of design.md part 4, side by side, as ratios.

    python benchmarks/run.py [--quick] [--json OUT] [--keep]

Each comparison runs its sides interleaved (A B, B A, A B, ...) so drifting clock
speed and background load hit both alike, and reports the median of the repeats.
Fresh-process figures come from many child interpreters, started alternately.
The fixtures (a tiny C library, specs, headers, Cython extensions) are built in
a temporary directory; LIBBROKER_CACHE_DIR points there, so the user's cache is
never touched. See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import fixtures

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_JSON = os.path.join(HERE, "results", "latest.json")
clock = time.perf_counter


class Settings:
    def __init__(self, quick: bool) -> None:
        self.quick = quick
        self.repeats = 3 if quick else 21  # in-process repeats per side
        self.processes = 3 if quick else 60  # fresh interpreters per side
        self.c_calls = 2_000_000 if quick else 20_000_000
        self.cpdef_calls = 30_000 if quick else 300_000
        self.abi_calls = 5_000 if quick else 50_000  # ctypes/cffi are ~10x slower per call
        self.find_calls = 500 if quick else 5_000
        self.find_library_calls = 1 if quick else 5
        self.generate_repeats = 1 if quick else 5


def interleave(sides: dict[str, Callable[[], float]], repeats: int) -> dict[str, list[float]]:
    """Run every side once to warm up, then *repeats* rounds, reversing the order each round."""
    names = list(sides)
    for name in names:
        sides[name]()
    samples: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(repeats):
        for name in names if round_ % 2 == 0 else names[::-1]:
            samples[name].append(sides[name]())
    return samples


def comparison(
    samples: dict[str, list[float]],
    numerator: str,
    denominator: str,
    target: str,
    unit: str,
    *,
    higher_is_better: bool = False,
    limit: float,
    extra: dict[str, tuple[str, str]] | None = None,
    notes: str = "",
) -> dict:
    """The JSON record: medians, raw samples, the target ratio and any extra ratios."""
    medians = {name: statistics.median(values) for name, values in samples.items()}
    ratio = medians[numerator] / medians[denominator]
    held = ratio >= limit if higher_is_better else ratio <= limit
    return {
        "ratio": ratio,
        "ratio_of": f"{numerator} / {denominator}",
        "target": target,
        "held": held,
        "unit": unit,
        "medians": medians,
        "extra_ratios": {
            label: medians[a] / medians[b] for label, (a, b) in (extra or {}).items()
        },
        "samples": samples,
        "notes": notes,
    }


# -- in-process comparisons ----------------------------------------------------------


def bench_c_loop(s: Settings) -> dict:
    import bench_brokered
    import bench_direct
    import bench_noexc

    n = s.c_calls

    def timed(fn: Callable[[int], int], calls: int = n) -> Callable[[], float]:
        def run() -> float:
            start = clock()
            fn(calls)
            return (clock() - start) / calls

        return run

    # The `except *` pointer acquires the GIL per call: far slower, so fewer calls.
    samples = interleave(
        {
            "brokered": timed(bench_brokered.c_loop),
            "direct": timed(bench_direct.c_loop),
            "no_noexcept_nogil": timed(bench_noexc.c_loop, max(n // 20, 1000)),
            "no_noexcept_gil": timed(bench_noexc.c_loop_gil, max(n // 4, 1000)),
        },
        s.repeats,
    )
    return comparison(
        samples, "brokered", "direct", "<= 0.85", "s/call", limit=0.85,
        extra={
            "no_noexcept_nogil / direct": ("no_noexcept_nogil", "direct"),
            "no_noexcept_gil / direct": ("no_noexcept_gil", "direct"),
        },
        notes=f"nogil C loop of acc = bench_add(acc, 1), {n} calls per sample; "
        "no_noexcept_*: hand-written pointer type without noexcept (Cython: except *)",
    )


def _python_loop(fn: Callable[[int, int], int], calls: int) -> Callable[[], float]:
    def run() -> float:
        start = clock()
        for i in range(calls):
            fn(i, 1)
        return (clock() - start) / calls

    return run


def bench_cpdef(s: Settings, fx: fixtures.Fixtures) -> dict:
    import ctypes

    import bench_brokered
    import bench_direct
    import cffi

    path = os.path.join(fx.lib, "libbenchadd.so")
    cfunc = ctypes.CDLL(path).bench_add
    cfunc.argtypes = [ctypes.c_int, ctypes.c_int]
    cfunc.restype = ctypes.c_int
    ffi = cffi.FFI()
    ffi.cdef("int bench_add(int a, int b);")
    fflib = ffi.dlopen(path)
    samples = interleave(
        {
            "brokered": _python_loop(bench_brokered.add, s.cpdef_calls),
            "direct": _python_loop(bench_direct.add, s.cpdef_calls),
            "ctypes": _python_loop(cfunc, s.abi_calls),
            "cffi_abi": _python_loop(fflib.bench_add, s.abi_calls),
        },
        s.repeats,
    )
    return comparison(
        samples, "brokered", "direct", "<= 1.05", "s/call", limit=1.05,
        extra={"ctypes / direct": ("ctypes", "direct"), "cffi_abi / direct": ("cffi_abi", "direct")},
        notes="Python for-loop calling f(i, 1): cpdef int add(a, b) noexcept over each call",
    )


def bench_find_warm(s: Settings) -> dict:
    import ctypes.util

    import libbroker

    def broker() -> float:
        start = clock()
        for _ in range(s.find_calls):
            libbroker.find("z")
        return (clock() - start) / s.find_calls

    def find_library() -> float:
        start = clock()
        for _ in range(s.find_library_calls):
            ctypes.util.find_library("z")
        return (clock() - start) / s.find_library_calls

    samples = interleave({"find_library": find_library, "libbroker_find": broker}, s.repeats)
    return comparison(
        samples, "find_library", "libbroker_find", ">= 100", "s/call",
        higher_is_better=True, limit=100.0,
        notes="ratio is a speed-up: ctypes.util.find_library time / libbroker.find time",
    )


def bench_table(s: Settings, fx: fixtures.Fixtures) -> dict:
    import bench_dlsym

    import libbroker
    from libbroker import _master, _runtime

    spec = libbroker.Spec.from_file(fx.openblas_spec)
    capsule = libbroker.table(spec)  # resolves, loads and writes the disk index entry
    library = _runtime.table_library[_master.table_address(capsule)]
    handle = library.handle
    symbols = [f"scipy_{name}".encode() for name in fx.openblas_symbols]
    bench_dlsym.prepare(symbols)
    if bench_dlsym.run(handle) != len(symbols):
        raise RuntimeError(f"raw dlsym found fewer than {len(symbols)} symbols in {library.path!r}")
    signatures = list(spec.signatures)

    def raw() -> float:
        start = clock()
        bench_dlsym.run(handle)
        return clock() - start

    def build() -> float:
        start = clock()
        addresses = _master.lookup_many(handle, symbols)
        _master.make_table(spec.name, spec.layout_digest, library.path, "", signatures, addresses)
        return clock() - start

    def forget() -> None:
        # Drop this table from the in-process registries so the next call builds
        # it again; the library stays loaded and the disk cache stays warm.
        _runtime.by_spec.pop(spec.spec_digest, None)
        for key in [k for k in _runtime.by_layout if k[2] == spec.name]:
            del _runtime.by_layout[key]

    def api() -> float:
        forget()
        start = clock()
        libbroker.table(spec)
        return clock() - start

    def runtime() -> float:
        forget()
        start = clock()
        _runtime.import_table(spec.name, spec.spec_digest, spec.text)
        return clock() - start

    samples = interleave(
        {"raw_dlsym": raw, "lookup_many+make_table": build, "table(spec)": api,
         "import_table": runtime},
        s.repeats * 2,
    )
    return comparison(
        samples, "lookup_many+make_table", "raw_dlsym", "<= 2", "s/table", limit=2.0,
        extra={
            "table(spec) / raw_dlsym": ("table(spec)", "raw_dlsym"),
            "import_table (consumer warm path) / raw_dlsym": ("import_table", "raw_dlsym"),
        },
        notes=f"{len(symbols)} scipy_* functions of {library.path}; table(spec) and "
        "import_table with the library loaded and the disk cache warm, registries cleared",
    )


# -- fresh processes -----------------------------------------------------------------


def _child_wall(argv: list[str], env: dict[str, str], cwd: str) -> Callable[[], float]:
    def run() -> float:
        start = clock()
        proc = subprocess.run(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
        elapsed = clock() - start
        if proc.returncode != 0:
            raise RuntimeError(f"{argv!r} failed: {proc.stderr.decode(errors='replace')[-2000:]}")
        return elapsed

    return run


def _child_timed(code: str, env: dict[str, str], cwd: str) -> Callable[[], float]:
    """The child times *code* itself with perf_counter and prints the seconds."""
    program = f"import time\n_t = time.perf_counter()\n{code}\nprint(time.perf_counter() - _t)\n"
    argv = [sys.executable, "-c", program]

    def run() -> float:
        proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"child {code!r} failed: {proc.stderr[-2000:]}")
        return float(proc.stdout.split()[-1])

    return run


def bench_find_fresh(s: Settings, fx: fixtures.Fixtures) -> dict:
    env = fx.environ()
    code = 'import libbroker; libbroker.find("z")'
    broker = _child_timed(code, env, fx.build)
    broker()  # the disk cache (and the byte-code) is warm from here on
    samples = interleave(
        {
            "find_library": _child_timed('import ctypes.util; ctypes.util.find_library("z")', env,
                                         fx.build),
            "libbroker_find": broker,
            "libbroker_find_no_pyc": _child_timed(code, fx.environ_no_bytecode(), fx.build),
        },
        s.processes,
    )
    return comparison(
        samples, "find_library", "libbroker_find", ">= 5", "s (in the child)",
        higher_is_better=True, limit=5.0,
        extra={"find_library / libbroker_find_no_pyc": ("find_library", "libbroker_find_no_pyc")},
        notes="speed-up; each sample is one fresh interpreter timing import + find itself; "
        "libbroker_find_no_pyc: the same with PYTHONDONTWRITEBYTECODE=1 (sources compiled "
        "in every process)",
    )


def bench_consumer_import(s: Settings, fx: fixtures.Fixtures) -> dict:
    import libbroker

    env = fx.environ()
    zpath = libbroker.find("z").path
    py = sys.executable
    consumer = _child_wall([py, "-c", "import bench_zconsumer"], env, fx.build)
    consumer()  # warms the disk cache (find index and table index)
    samples = interleave(
        {
            "consumer": consumer,
            "ctypes_CDLL": _child_wall([py, "-c", f"import ctypes; ctypes.CDLL({zpath!r})"],
                                       env, fx.build),
            "scipy_openblas32": _child_wall([py, "-c", "import scipy_openblas32"], env, fx.build),
            "python_pass": _child_wall([py, "-c", "pass"], env, fx.build),
        },
        s.processes,
    )
    result = comparison(
        samples, "consumer", "ctypes_CDLL", "<= 2", "s (whole child process)", limit=2.0,
        extra={
            "scipy_openblas32 / ctypes_CDLL": ("scipy_openblas32", "ctypes_CDLL"),
            "python_pass / ctypes_CDLL": ("python_pass", "ctypes_CDLL"),
        },
        notes=f"wall time of python -c 'import bench_zconsumer' (zlib via libbroker, disk cache "
        f"warm) vs python -c 'import ctypes; ctypes.CDLL({zpath!r})'",
    )
    med = result["medians"]
    # What each import adds over a bare interpreter start, for the reader.
    result["extra_ratios"]["(consumer - pass) / (ctypes_CDLL - pass)"] = (
        (med["consumer"] - med["python_pass"]) / max(med["ctypes_CDLL"] - med["python_pass"], 1e-9)
    )
    return result


def bench_generate(s: Settings, fx: fixtures.Fixtures) -> dict:
    import libbroker

    out = os.path.join(fx.root, "gen1500")
    cli = _child_wall([sys.executable, "-m", "libbroker", "generate", fx.generate_spec, "-o", out],
                      fx.environ(), fx.build)

    def in_process() -> float:
        start = clock()
        libbroker.generate(libbroker.Spec.from_file(fx.generate_spec), out)
        return clock() - start

    samples = interleave({"cli": cli, "in_process": in_process}, s.generate_repeats)
    samples["budget"] = [1.0]
    result = comparison(
        samples, "cli", "budget", "< 1 s", "s", limit=1.0,
        extra={"in_process / budget": ("in_process", "budget")},
        notes="`python -m libbroker generate` on 1,500 prototypes of 1-8 parameters (whole "
        "process); ratio = seconds / 1 s budget",
    )
    result["held"] = result["ratio"] < 1.0
    return result


# -- driver --------------------------------------------------------------------------


def machine() -> dict:
    model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import Cython

    import libbroker

    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cython": Cython.__version__,
        "libbroker": libbroker.__version__,
    }


def _fmt(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6), ("ns", 1e-9)):
        if abs(seconds) >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def print_table(results: dict) -> None:
    print(f"\n{'comparison':<22} {'ratio':>8}  {'target':<8} {'held':<5} figures (medians)")
    print("-" * 100)
    for name, r in results.items():
        if "error" in r:
            print(f"{name:<22} {'ERROR':>8}  {r.get('target', ''):<8} {'-':<5} {r['error'][:60]}")
            continue
        figures = ", ".join(f"{k} {_fmt(v)}" for k, v in r["medians"].items())
        print(f"{name:<22} {r['ratio']:>8.3f}  {r['target']:<8} {'yes' if r['held'] else 'NO':<5} "
              f"{figures}")
        for label, value in r["extra_ratios"].items():
            print(f"{'':<22} {value:>8.3f}  {label}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny repeat counts (for tests)")
    parser.add_argument("--json", default=DEFAULT_JSON, help=f"output file (default {DEFAULT_JSON})")
    parser.add_argument("--keep", action="store_true", help="keep the fixture directory")
    args = parser.parse_args(argv)
    settings = Settings(args.quick)

    root = tempfile.mkdtemp(prefix="libbroker-bench-")
    started = clock()
    try:
        fx = fixtures.Fixtures(root)
        # Before anything imports libbroker's discovery, so every layer sees them.
        os.environ.update({k: v for k, v in fx.environ().items() if k.startswith("LIBBROKER_")})
        fx = fixtures.build(root)
        build_seconds = clock() - started
        sys.path.insert(0, fx.build)
        plan: list[tuple[str, Callable[[], dict]]] = [
            ("c_loop", lambda: bench_c_loop(settings)),
            ("cpdef_loop", lambda: bench_cpdef(settings, fx)),
            ("find_warm", lambda: bench_find_warm(settings)),
            ("find_fresh_process", lambda: bench_find_fresh(settings, fx)),
            ("table_1500", lambda: bench_table(settings, fx)),
            ("consumer_import", lambda: bench_consumer_import(settings, fx)),
            ("generate_1500", lambda: bench_generate(settings, fx)),
        ]
        results: dict[str, dict] = {}
        for name, run in plan:
            print(f"running {name} ...", file=sys.stderr, flush=True)
            try:
                results[name] = run()
            except Exception as exc:  # one broken comparison must not hide the others
                results[name] = {"error": f"{type(exc).__name__}: {exc}", "ratio": None}
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"fixtures kept in {root}", file=sys.stderr)

    report = {
        "machine": machine(),
        "quick": args.quick,
        "fixture_build_seconds": build_seconds,
        "total_seconds": clock() - started,
        "comparisons": results,
    }
    print_table(results)
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=1)
    print(f"\nwrote {args.json} ({report['total_seconds']:.1f} s)", file=sys.stderr)
    return 1 if any("error" in r for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
