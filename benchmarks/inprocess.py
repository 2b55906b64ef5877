"""Comparisons inside one process: call loops, warm find, a 1,500-slot table build.

The C loop is also measured in several fresh processes (code placement differs per
process; the pooled median is the figure) and under callgrind, whose instruction
counts per call do not depend on placement or load.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile

from harness import Settings, clock, interleave, record, target

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    import fixtures


def _timed(fn: Callable[[int], int], calls: int) -> Callable[[], float]:
    def run() -> float:
        start = clock()
        fn(calls)
        return (clock() - start) / calls

    return run


def c_loop_here(s: Settings) -> dict[str, list[float]]:
    """This process: brokered vs direct (PLT) nogil loop, plus the pointer without noexcept."""
    import bench_brokered
    import bench_direct
    import bench_noexc

    n = s.c_calls
    return interleave(
        {
            "brokered": _timed(bench_brokered.c_loop, n),
            "direct": _timed(bench_direct.c_loop, n),
            "no_noexcept_nogil": _timed(bench_noexc.c_loop, max(n // 20, 1000)),
            "no_noexcept_gil": _timed(bench_noexc.c_loop_gil, max(n // 4, 1000)),
        },
        s.repeats,
    )


_LOOP_CHILD = """\
import statistics, sys
sys.path.insert(0, {here!r})
import bench_brokered as b, bench_direct as d
from harness import interleave, clock
def timed(f, n):
    def run():
        t = clock(); f(n); return (clock() - t) / n
    return run
s = interleave({{"brokered": timed(b.c_loop, {n}), "direct": timed(d.c_loop, {n})}}, {r})
print(repr({{k: statistics.median(v) for k, v in s.items()}}))
"""


def c_loop_processes(s: Settings, fx: fixtures.Fixtures) -> dict[str, list[float]]:
    """Per-process medians of the loop, from s.loop_processes fresh interpreters."""
    import ast

    program = _LOOP_CHILD.format(here=os.path.dirname(os.path.abspath(__file__)),
                                 n=s.c_calls // 4, r=max(s.repeats // 2, 3))
    out: dict[str, list[float]] = {"brokered": [], "direct": []}
    for _ in range(s.loop_processes):
        proc = subprocess.run([sys.executable, "-c", program], env=fx.environ(), cwd=fx.build,
                              capture_output=True, text=True, timeout=600, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"C loop child failed: {proc.stderr[-2000:]}")
        for k, v in ast.literal_eval(proc.stdout.strip().splitlines()[-1]).items():
            out[k].append(v)
    return out


def callgrind(s: Settings, fx: fixtures.Fixtures) -> dict[str, float] | str:
    """Instructions per loop iteration (call included) under callgrind; a reason if no valgrind.

    Collection is on only inside the Python wrapper of `c_loop` (`__pyx_pw_*c_loop`: a
    pattern also matching the inner `__pyx_pf_` function would toggle collection off
    again inside it). With two loop lengths the counts are differenced, which removes
    the wrapper's fixed cost; --quick runs one length and divides.
    """
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        return "valgrind not installed (Debian package valgrind, .ci/apt-packages.txt)"
    out: dict[str, float] = {}
    # python -S: site-packages stays on the path, but its .pth files (the editable
    # install's finder imports pathlib and re) are not run under valgrind's ~50x.
    env = fx.environ()
    env["PYTHONPATH"] = os.pathsep.join([ROOT, fx.build, sysconfig.get_paths()["purelib"]])
    with tempfile.TemporaryDirectory() as tmp:
        for side in ("brokered", "direct"):
            counts = []
            for calls in s.callgrind_calls:
                file = os.path.join(tmp, f"{side}.{calls}.out")
                argv = [valgrind, "--tool=callgrind", f"--callgrind-out-file={file}",
                        "--collect-atstart=no", "--toggle-collect=__pyx_pw_*c_loop",
                        sys.executable, "-S", "-c",
                        f"import bench_{side} as m; m.c_loop({calls})"]
                proc = subprocess.run(argv, env=env, cwd=fx.build,
                                      capture_output=True, text=True, timeout=600,
                                      check=False)
                if proc.returncode != 0:
                    raise RuntimeError(f"callgrind failed: {proc.stderr[-2000:]}")
                counts.append(_callgrind_total(file))
            if len(counts) == 1:
                out[side] = counts[0] / s.callgrind_calls[0]
            else:
                (n1, n2), (i1, i2) = s.callgrind_calls, counts
                out[side] = (i2 - i1) / (n2 - n1)
            if out[side] <= 0:
                raise RuntimeError(f"callgrind counted no instructions in {side}'s c_loop "
                                   f"({counts}); was the wrapper renamed?")
    return out


def _callgrind_total(path: str) -> int:
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith(("totals:", "summary:")):
                return int(line.split()[1])
    raise RuntimeError(f"no totals line in {path}")


def bench_c_loop(s: Settings, fx: fixtures.Fixtures) -> tuple[dict, list[dict]]:
    here = c_loop_here(s)
    pooled = c_loop_processes(s, fx)
    samples = {**here, "brokered [process medians]": pooled["brokered"],
               "direct [process medians]": pooled["direct"]}
    instructions = callgrind(s, fx)
    result = record(
        samples, "s/call",
        f"nogil C loop acc = bench_add(acc, 1), {s.c_calls} calls a sample in this process; "
        f"[process medians]: one median per fresh process ({s.loop_processes} processes); "
        "no_noexcept_*: a pointer type without noexcept (Cython: except *)",
        ratios={
            "brokered / direct (this process)": ("brokered", "direct"),
            "brokered / direct (median of processes)": ("brokered [process medians]",
                                                        "direct [process medians]"),
            "no_noexcept_nogil / direct": ("no_noexcept_nogil", "direct"),
            "no_noexcept_gil / direct": ("no_noexcept_gil", "direct"),
        },
        instructions_per_call=instructions,
    )
    ratio = result["ratios"]["brokered / direct (median of processes)"]
    targets = [target("C loop: generated call / PLT call, median of processes", "<= 1.05",
                      ratio, ratio <= 1.05, source="issue 11, Benchmarks")]
    if isinstance(instructions, dict):
        iratio = instructions["brokered"] / instructions["direct"]
        result["ratios"]["instructions brokered / direct (callgrind)"] = iratio
        targets.append(target("C loop: instructions per iteration, generated / PLT (callgrind)",
                               "<= 1.0 (both 9)", iratio, iratio <= 1.0,
                               source="issue 11, Benchmarks"))
    else:
        targets.append(target("C loop: instructions per iteration (callgrind)", "<= 1.0",
                              None, None, source="issue 11, Benchmarks", why=instructions))
    return result, targets


def _python_loop(fn: Callable[[int, int], int], calls: int) -> Callable[[], float]:
    def run() -> float:
        start = clock()
        for i in range(calls):
            fn(i, 1)
        return (clock() - start) / calls

    return run


def bench_cpdef(s: Settings, fx: fixtures.Fixtures) -> tuple[dict, list[dict]]:
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
    result = record(samples, "s/call",
                    "Python for-loop calling f(i, 1): cpdef int add(a, b) noexcept over each call",
                    ratios={"brokered / direct": ("brokered", "direct"),
                            "ctypes / direct": ("ctypes", "direct"),
                            "cffi_abi / direct": ("cffi_abi", "direct")})
    ratio = result["ratios"]["brokered / direct"]
    return result, [target("cpdef wrapper, Python loop: brokered / linked", "<= 1.05", ratio,
                           ratio <= 1.05, source="design.md part 4")]


def bench_find_warm(s: Settings) -> tuple[dict, list[dict]]:
    """Warm find against find_library uncached and behind functools.lru_cache: a cache
    against no cache is not a faster lookup, so the lru_cache side is the fair one."""
    import ctypes.util

    import libbroker

    cached = functools.lru_cache(maxsize=None)(ctypes.util.find_library)
    cached("z")

    def loop(fn: Callable[[str], object], calls: int) -> Callable[[], float]:
        def run() -> float:
            start = clock()
            for _ in range(calls):
                fn("z")
            return (clock() - start) / calls

        return run

    samples = interleave({
        "find_library": loop(ctypes.util.find_library, s.find_library_calls),
        "lru_cache(find_library)": loop(cached, s.find_calls),
        "libbroker.find": loop(libbroker.find, s.find_calls),
    }, s.repeats)
    result = record(samples, "s/call", "in-process, disk cache and process warm",
                    ratios={"find_library / libbroker.find": ("find_library", "libbroker.find"),
                            "libbroker.find / lru_cache(find_library)":
                                ("libbroker.find", "lru_cache(find_library)")})
    speedup = result["ratios"]["find_library / libbroker.find"]
    return result, [target("warm find: find_library / libbroker.find", ">= 100", speedup,
                           speedup >= 100, source="design.md part 4")]


def bench_table(s: Settings, fx: fixtures.Fixtures) -> tuple[dict, list[dict]]:
    import bench_dlsym

    import libbroker
    from libbroker import _master, _registry, _runtime

    spec = libbroker.Spec.from_file(fx.openblas_spec)
    capsule = libbroker.table(spec)
    library = _registry.table_library[_master.table_address(capsule)]
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
        # Drop the table from the in-process registries; the library stays loaded.
        _registry.by_spec.pop(spec.spec_digest, None)
        for key in [k for k in _registry.by_layout if k[2] == spec.name]:
            del _registry.by_layout[key]

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

    samples = interleave({"raw_dlsym": raw, "lookup_many+make_table": build,
                          "table(spec)": api, "import_table": runtime}, s.repeats * 2)
    result = record(samples, "s/table",
                    f"{len(symbols)} scipy_* functions of {library.path}; library loaded, disk "
                    "cache warm, registries cleared before each table(spec)/import_table",
                    ratios={"lookup_many+make_table / raw_dlsym":
                                ("lookup_many+make_table", "raw_dlsym"),
                            "table(spec) / raw_dlsym": ("table(spec)", "raw_dlsym"),
                            "import_table / raw_dlsym": ("import_table", "raw_dlsym")})
    ratio = result["ratios"]["lookup_many+make_table / raw_dlsym"]
    return result, [target("1,500-slot table build / raw dlsym loop", "<= 2", ratio, ratio <= 2,
                           source="design.md part 4")]

