"""libbroker benchmarks: what users pay, side by side with what they would use instead.

    python benchmarks/run.py [--quick] [--plots] [--json OUT] [--keep] [--only NAME ...]

Every comparison runs its sides interleaved and reports medians and ratios in one
run; process-level figures are timed inside fresh children (start-up excluded) with
the whole-process figure beside them; find and consumer imports are measured warm,
cold (empty cache) and invalidated (one search directory touched). Each target of
issue 11 (and of design.md part 4) is reported held / missed / not measured; nothing
here asserts a time. Fixtures are built in a temporary directory with gcc and
Cython; LIBBROKER_CACHE_DIR always points there. See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import fixtures
import harness
import inprocess
import processes
import sweeps

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

RESULTS = os.path.join(HERE, "results")
DEFAULT_JSON = os.path.join(RESULTS, "latest.json")

# name -> (kind, function); kind "comparison" or "sweep" (sweeps are plotted).
PLAN: dict[str, tuple[str, Callable]] = {
    "find_process": ("comparison", processes.bench_find),
    "consumer_import": ("comparison", processes.bench_consumer),
    "memory": ("comparison", processes.bench_memory),
    "list": ("comparison", processes.bench_list),
    "doctor_numpy": ("comparison", processes.bench_doctor),
    "find_warm": ("comparison", lambda s, fx: inprocess.bench_find_warm(s)),
    "c_loop": ("comparison", inprocess.bench_c_loop),
    "cpdef_loop": ("comparison", inprocess.bench_cpdef),
    "table_1500": ("comparison", inprocess.bench_table),
    "consumers_one_table": ("sweep", sweeps.sweep_consumers),
    "distinct_libraries": ("sweep", sweeps.sweep_libraries),
    "spec_sizes": ("sweep", sweeps.sweep_spec_sizes),
    "search_dir_files": ("sweep", sweeps.sweep_dir_files),
    "distributions": ("sweep", sweeps.sweep_distributions),
}

# Every target the issue's table names, so a failed benchmark still shows as missing.
ISSUE_TARGETS = {
    "find_process": 2, "consumer_import": 2, "distinct_libraries": 1, "spec_sizes": 4,
    "list": 1, "doctor_numpy": 1, "c_loop": 2,
}


def machine() -> dict:
    model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            model = next((line.split(":", 1)[1].strip() for line in f
                          if line.startswith("model name")), "")
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
        "gcc": sweeps.gcc_version(),
        "valgrind": shutil.which("valgrind") is not None,
        "libbroker": libbroker.__version__,
        "load_average": os.getloadavg(),
        "speed_probe_ms": harness.speed_probe(),  # at the end of the run (harness.speed_probe)
    }


def _error(exc: Exception) -> dict:
    return {"error": f"{type(exc).__name__}: {exc}\n{traceback.format_exc()[-3000:]}"}


def print_report(results: dict, targets: list[dict]) -> None:
    print(f"\n{'benchmark':<22} figures (medians; in the child unless [wall])")
    print("-" * 100)
    for name, r in results.items():
        if "error" in r:
            print(f"{name:<22} ERROR {r['error'].splitlines()[0][:75]}")
            continue
        if "series" in r:
            print(f"{name:<22} N = {r['x']} ({r['xlabel']})")
            for label, values in r["series"].items():
                shown = ", ".join(f"{v / 1024:.0f} KiB" if label.startswith("size")
                                  else harness.fmt(v) for v in values)
                print(f"{'':<24}{label:<22} {shown}")
            continue
        unit_bytes = r["unit"].startswith("bytes")
        figures = ", ".join(f"{k} {v / 1024:.0f} KiB" if unit_bytes and "[time]" not in k
                            else f"{k} {harness.fmt(v)}" for k, v in r["medians"].items())
        print(f"{name:<22} {figures}")
        for label, value in r["ratios"].items():
            print(f"{'':<22} {value:>8.3f}  {label}")
    print(f"\n{'target':<70} {'goal':<22} {'value':>10}  status")
    print("-" * 116)
    for t in targets:
        value = t["value"]
        shown = ("-" if value is None else
                 harness.fmt(value) if t["unit"] == "s" else f"{value:.3g}")
        status = {True: "held", False: "MISSED", None: "not measured"}[t["held"]]
        print(f"{t['measure'][:70]:<70} {t['target'][:22]:<22} {shown:>10}  {status}"
              + (f"  ({t['why']})" if t["why"] else ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes and counts (tests)")
    parser.add_argument("--plots", action="store_true",
                        help=f"write a PNG per sweep into {RESULTS} (needs matplotlib)")
    parser.add_argument("--json", default=DEFAULT_JSON, help=f"output (default {DEFAULT_JSON})")
    parser.add_argument("--plots-dir", default=RESULTS, help="where --plots writes")
    parser.add_argument("--keep", action="store_true", help="keep the fixture directory")
    parser.add_argument("--only", nargs="+", choices=sorted(PLAN), help="run only these")
    args = parser.parse_args(argv)
    settings = harness.Settings(args.quick)

    root = tempfile.mkdtemp(prefix="libbroker-bench-")
    started = harness.clock()
    results: dict[str, dict] = {}
    targets: list[dict] = []
    build_seconds = 0.0
    try:
        fx = fixtures.Fixtures(root)
        # Before anything imports libbroker's discovery, so every layer sees them.
        os.environ.update({k: v for k, v in fx.environ().items() if k.startswith("LIBBROKER_")})
        try:
            fx = fixtures.build(root, quick=args.quick)
            processes.build_memory(fx)
        except Exception as exc:
            results["fixtures"] = _error(exc)
        build_seconds = harness.clock() - started
        sys.path[1:1] = [fx.build, fx.ext]
        for name, (_, run) in PLAN.items():
            if args.only and name not in args.only:
                continue
            print(f"running {name} ...", file=sys.stderr, flush=True)
            probe = harness.speed_probe()
            t0 = harness.clock()
            try:
                if "fixtures" in results:
                    raise RuntimeError("the fixtures could not be built (see 'fixtures')")
                results[name], found = run(settings, fx)
                for t in found:
                    t["benchmark"] = name
                targets += found
            except Exception as exc:
                results[name] = _error(exc)
                for _ in range(ISSUE_TARGETS.get(name, 0)):
                    targets.append(harness.target(f"{name} (benchmark failed)", "-", None, None,
                                                  source="issue 11", why="error, see JSON") |
                                   {"benchmark": name})
            results[name]["seconds"] = harness.clock() - t0
            results[name]["speed_probe_ms"] = probe
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"fixtures kept in {root}", file=sys.stderr)

    plots: list[str] = []
    if args.plots:
        import plots as plotting

        plots = plotting.plot_sweeps(
            {n: r for n, r in results.items() if n in PLAN and PLAN[n][0] == "sweep"},
            args.plots_dir)
    report = {
        "machine": machine(),
        "quick": args.quick,
        "settings": vars(settings),
        "fixture_build_seconds": build_seconds,
        "total_seconds": harness.clock() - started,
        "results": results,
        "targets": targets,
        "plots": plots,
    }
    print_report(results, targets)
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=1, default=str)
    print(f"\nwrote {args.json} ({report['total_seconds']:.1f} s)"
          + (f"; plots: {', '.join(plots)}" if plots else ""), file=sys.stderr)
    return 1 if any("error" in r for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
