"""Scaling sweeps: cost against N, where N is what grows in a real installation.

Each sweep returns a record with `x` (the N values), `series` (label -> median per N,
in seconds or bytes) and the raw `samples` (label -> N -> list); plots.py draws the
series. Process figures are in the child (start-up excluded, harness.Child).
"""

from __future__ import annotations

import os
import statistics
import subprocess

import builders
import harness
from harness import Child, Settings, clock, target

TYPE_CHECKING = False
if TYPE_CHECKING:
    import fixtures



def _sweep(xs: tuple[int, ...], make: object, processes: int, xlabel: str, unit: str,
           notes: str) -> dict:
    """Run make(N) -> {label: side} for every N; medians of the in-child time per label."""
    series: dict[str, list[float]] = {}
    samples: dict[str, dict[int, list[float]]] = {}
    walls: dict[str, dict[int, list[float]]] = {}
    imported: dict[str, dict[int, list[str]]] = {}
    for n in xs:
        runs = harness.run_children(make(n), processes)  # type: ignore[operator]
        for label, figures in runs.items():
            values = [f["t"] for f in figures]
            series.setdefault(label, []).append(statistics.median(values))
            samples.setdefault(label, {})[n] = values
            walls.setdefault(label, {})[n] = [f["wall"] for f in figures]
            imported.setdefault(label, {})[n] = harness.heavy_imports(figures)
    return {"x": list(xs), "xlabel": xlabel, "unit": unit, "notes": notes, "series": series,
            "samples": samples, "wall": walls, "imported": imported}


def _imports(prefix: str, n: int) -> str:
    return "import " + ", ".join(f"{prefix}{k}" for k in range(n))


def sweep_consumers(s: Settings, fx: fixtures.Fixtures) -> tuple[dict, list[dict]]:
    """N consumers of one table (zlib) imported in one process, vs N linked -lz."""
    import libbroker

    builders.zlib_consumers(fx.root, max(s.consumers), fx.gen, libbroker.get_include())
    env = fx.environ()
    env["PYTHONPATH"] = os.path.join(fx.root, "zext") + os.pathsep + env["PYTHONPATH"]

    def make(n: int) -> dict:
        sides: dict[str, object] = dict(harness.states(
            _imports("zuse", n), env, fx.build, cache_root=fx.root, touched=fx.site,
            tag=f"consumers{n}"))
        sides["linked"] = Child(_imports("zlnk", n), env, fx.build)
        return sides

    result = _sweep(s.consumers, make, s.sweep_processes, "consumers sharing one table (zlib)",
                    "s", "import of N C consumers of the zlib table in one fresh interpreter")
    return result, []


def sweep_libraries(s: Settings, fx: fixtures.Fixtures) -> tuple[dict, list[dict]]:
    """N consumers of N different libraries (gcc-built), vs the same N linked."""
    import libbroker

    dirs = builders.distinct_libraries(os.path.join(fx.root, "many"), max(s.libraries),
                                       libbroker.get_include())
    env = fx.environ()
    env["LIBBROKER_PATH"] = env["LIBBROKER_PATH"] + os.pathsep + dirs["lib"]
    env["PYTHONPATH"] = dirs["ext"] + os.pathsep + env["PYTHONPATH"]

    def make(n: int) -> dict:
        sides: dict[str, object] = dict(harness.states(
            _imports("use_bl", n), env, fx.build, cache_root=fx.root, touched=fx.site,
            tag=f"libraries{n}"))
        sides["linked"] = Child(_imports("lnk_bl", n), env, fx.build)
        return sides

    result = _sweep(s.libraries, make, s.sweep_processes, "distinct libraries (one consumer each)",
                    "s", "import of N consumers of N different libraries, one fresh interpreter")
    targets = []
    if 50 in s.libraries:
        cold = result["series"]["cold"][s.libraries.index(50)]
        targets.append(target("50 consumers of 50 libraries, empty cache (in the child)",
                              "<= 100 ms", cold, cold <= 0.100, source="issue 11, table row 5",
                              unit="s"))
    else:
        targets.append(target("50 consumers of 50 libraries, empty cache", "<= 100 ms", None,
                              None, source="issue 11, table row 5", why="N=50 not run (--quick)"))
    return result, targets


def sweep_spec_sizes(s: Settings, fx: fixtures.Fixtures) -> tuple[dict, list[dict]]:
    """generate time (fresh interpreter), consumer compile time and .so size vs externs."""
    import libbroker

    gen = os.path.join(fx.root, "sizes")
    os.makedirs(gen, exist_ok=True)
    env = fx.environ()
    include = libbroker.get_include()
    series: dict[str, list[float]] = {k: [] for k in (
        "generate", "compile table", "compile extern", "size table", "size extern")}
    samples: dict[str, dict[int, list[float]]] = {k: {} for k in series}
    for n in s.spec_sizes:
        path, functions = builders.sized_spec(gen, n)
        child = Child(f"import libbroker\nlibbroker.generate(libbroker.Spec.from_file({path!r}),"
                      f" {gen!r})", env, fx.build)
        runs = [child() for _ in range(s.spec_repeats)]
        samples["generate"][n] = [f["t"] for f in runs]
        tab, ext = builders.sized_consumers(gen, n, functions, gen)

        def compile_(src: str) -> float:
            start = clock()
            builders.compile_module(src, gen, include=[gen, include])
            return clock() - start

        timed = harness.interleave({"compile table": lambda src=tab: compile_(src),
                                    "compile extern": lambda src=ext: compile_(src)},
                                   s.spec_repeats, warmup=False)
        samples.update({k: {**samples[k], n: v} for k, v in timed.items()})
        for side, src in (("size table", tab), ("size extern", ext)):
            samples[side][n] = [float(os.path.getsize(src[:-2] + builders.EXT_SUFFIX))]
        for label, values in series.items():
            values.append(statistics.median(samples[label][n]))
    result = {"x": list(s.spec_sizes), "xlabel": "functions in the spec", "unit": "s or bytes",
              "notes": "generate: Spec.from_file + generate in a fresh interpreter (in the "
              "child); compile: gcc -O2 -shared of a C module calling every function once, "
              "through the table vs declared extern; size: the .so in bytes",
              "series": series, "samples": samples}
    targets = []
    if 5000 in s.spec_sizes and 1500 in s.spec_sizes:
        i, j = s.spec_sizes.index(5000), s.spec_sizes.index(1500)
        c = series["compile table"][i] / series["compile extern"][i]
        z = series["size table"][i] / series["size extern"][i]
        g = series["generate"][i]
        growth = (g / 5000) / (series["generate"][j] / 1500)
        targets += [
            target("5,000-function consumer compile time vs plain externs", "<= 2x", c, c <= 2,
                   source="issue 11, table row 6"),
            target("5,000-function consumer .so size vs plain externs", "<= 2x", z, z <= 2,
                   source="issue 11, table row 6"),
            target("spec parsing + generate, 5,000 functions", "<= 0.5 s", g, g <= 0.5,
                   source="issue 11, table row 7", unit="s"),
            target("generate linear: per-function time at 5,000 / at 1,500", "<= 1.5", growth,
                   growth <= 1.5, source="issue 11, table row 7"),
        ]
    else:
        for what in ("5,000-function consumer compile time vs plain externs",
                     "5,000-function consumer .so size vs plain externs",
                     "spec parsing + generate, 5,000 functions",
                     "generate linear: per-function time at 5,000 / at 1,500"):
            targets.append(target(what, "see docs/benchmarks.md", None, None,
                                  source="issue 11, table rows 6-7",
                                  why="sizes 1,500 and 5,000 not run (--quick)"))
    return result, targets


def sweep_dir_files(s: Settings, fx: fixtures.Fixtures) -> tuple[dict, list[dict]]:
    """find of a library in a LIBBROKER_PATH directory holding N files."""
    library = os.path.join(fx.lib, "libbenchadd.so")
    root = os.path.join(fx.root, "dirs")
    os.makedirs(root, exist_ok=True)

    def make(n: int) -> dict:
        directory = builders.search_dir(root, n, library)
        env = fx.environ()
        env["LIBBROKER_PATH"] = directory
        return harness.states('import libbroker; libbroker.find("benchadd")', env, fx.build,
                              cache_root=fx.root, touched=directory, tag=f"dir{n}")

    result = _sweep(s.dir_files, make, s.sweep_processes, "files in the search directory", "s",
                    "import + find('benchadd') in a fresh interpreter; invalidated touches "
                    "that directory")
    return result, []


def sweep_distributions(s: Settings, fx: fixtures.Fixtures) -> tuple[dict, list[dict]]:
    """find("z") with N installed distributions on sys.path (and no others: python -S)."""
    root = os.path.join(fx.root, "dists")
    os.makedirs(root, exist_ok=True)

    def make(n: int) -> dict:
        site = builders.distributions(root, n)
        env = fx.environ()
        env["PYTHONPATH"] = os.pathsep.join([fx.installed, site])
        return harness.states('import libbroker; libbroker.find("z")', env, fx.build,
                              cache_root=fx.root, touched=site, tag=f"dists{n}", flags=["-S"])

    result = _sweep(s.distributions, make, s.sweep_processes, "installed distributions", "s",
                    "python -S with only N dist-info directories on sys.path (plus the "
                    "source tree); import + find('z'); invalidated touches that directory")
    return result, []


def gcc_version() -> str:
    try:
        proc = subprocess.run(["gcc", "--version"], capture_output=True, text=True, check=False)
    except OSError:
        return ""
    return proc.stdout.splitlines()[0] if proc.returncode == 0 else ""
