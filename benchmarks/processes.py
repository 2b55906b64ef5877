"""What a user pays in a fresh process: find, a consumer's import, memory, the CLI.

Every figure is the median over fresh interpreters; "in the child" excludes the
interpreter's start-up (see harness.Child), "[wall]" is the whole process beside it.
"""

from __future__ import annotations

import os
import sys

import builders
import harness
from harness import (
    Child,
    Command,
    Settings,
    child_samples,
    heavy_imports,
    record,
    target,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    import fixtures

# The modules a cold `find` runs (the `imported` list of `libbroker.find cold`): a floor.
COLD_FIND_MODULES = ("libbroker._api", "libbroker._resolve", "libbroker._closure",
                     "libbroker._loader", "libbroker._providers", "libbroker._ldcache")

# Imports a cold consumer must not pay for (issue 11).
FORBIDDEN_COLD = ("pycparser", "tomllib", "packaging", "importlib.metadata")


def bench_find(s: Settings, fx: fixtures.Fixtures) -> tuple[dict, list[dict]]:
    """`import libbroker; find("z")` warm / cold / invalidated vs ctypes.util.find_library,
    and what rescanning the changed directory alone costs (the "changed part")."""
    env = fx.environ()
    children: dict[str, object] = dict(harness.states(
        'import libbroker; libbroker.find("z")', env, fx.build,
        cache_root=fx.root, touched=fx.site, name="libbroker.find"))
    children["find_library"] = Child('import ctypes.util; ctypes.util.find_library("z")', env,
                                     fx.build)
    # A floor of the cold find: importing the modules it runs, and nothing else (no search,
    # no judgement, no cache). The 3x target is measured against this too.
    children["imports alone"] = Child("import " + ", ".join(COLD_FIND_MODULES), env, fx.build)
    # The least any search must redo after the change: list the touched directory and
    # read every distribution's entry points in it.
    children["changed part"] = Child(
        f"import os\nfor _e in os.scandir({fx.site!r}):\n"
        "    if _e.name.endswith('.dist-info'):\n"
        "        try:\n"
        "            open(os.path.join(_e.path, 'entry_points.txt'), 'rb').read()\n"
        "        except OSError:\n"
        "            pass\n", env, fx.build)
    runs = harness.run_children(children, s.processes)  # type: ignore[arg-type]
    result = record(child_samples(runs), "s (in the child; [wall]: whole process)",
                    "import + find in a fresh interpreter; warm: the same process ran just "
                    "before; cold: empty LIBBROKER_CACHE_DIR; invalidated: one sys.path "
                    "directory gained an entry since the cache was written",
                    ratios={
                        "find_library / cold": ("find_library", "libbroker.find cold"),
                        "find_library / warm": ("find_library", "libbroker.find warm"),
                        "invalidated / warm": ("libbroker.find invalidated",
                                               "libbroker.find warm"),
                        "cold / warm": ("libbroker.find cold", "libbroker.find warm"),
                        "imports alone / cold": ("imports alone", "libbroker.find cold"),
                    },
                    imported={name: heavy_imports(r) for name, r in runs.items()})
    med = result["medians"]
    speedup = result["ratios"]["find_library / cold"]
    floor = med.get("imports alone")
    budget = 2 * med["libbroker.find warm"] + med["changed part"]
    invalidated = med["libbroker.find invalidated"]
    return result, [
        target("find cold (empty cache) vs find_library, in the child", ">= 3x faster",
               speedup, speedup >= 3, source="issue 11, table row 1",
               why=(f"budget {harness.fmt(med['find_library'] / 3)}; importing the modules "
                    f"alone takes {harness.fmt(floor)}" if floor else "")),
        target("find after one sys.path directory changed", "<= 2x warm + the changed part",
               invalidated, invalidated <= budget, source="issue 11, table row 2", unit="s",
               why=f"budget {harness.fmt(budget)}"),
    ]


def bench_consumer(s: Settings, fx: fixtures.Fixtures) -> tuple[dict, list[dict]]:
    """The Cython zlib consumer warm / cold / invalidated vs the same consumer linked -lz."""
    env = fx.environ()
    children: dict[str, object] = dict(harness.states(
        "import bench_zconsumer", env, fx.build, cache_root=fx.root, touched=fx.site,
        name="consumer"))
    children["linked -lz"] = Child("import bench_zlinked", env, fx.build)
    children["ctypes.CDLL"] = Child("import ctypes; ctypes.CDLL('libz.so.1')", env, fx.build)
    runs = harness.run_children(children, s.processes)  # type: ignore[arg-type]
    imported = {name: heavy_imports(r) for name, r in runs.items()}
    result = record(child_samples(runs), "s (in the child; [wall]: whole process)",
                    "import of a Cython consumer calling zlib through libbroker's table, vs "
                    "the same module linked -lz (zlib.h) and vs ctypes.CDLL",
                    ratios={
                        "warm / linked": ("consumer warm", "linked -lz"),
                        "cold / linked": ("consumer cold", "linked -lz"),
                        "invalidated / linked": ("consumer invalidated", "linked -lz"),
                        "warm / ctypes.CDLL": ("consumer warm", "ctypes.CDLL"),
                        "warm / linked [wall]": ("consumer warm [wall]", "linked -lz [wall]"),
                    },
                    imported=imported)
    warm = result["ratios"]["warm / linked"]
    cold = result["ratios"]["cold / linked"]
    forbidden = [m for m in imported["consumer cold"] if m in FORBIDDEN_COLD]
    return result, [
        target("consumer import, warm cache, vs linked -lz (in the child)", "<= 1.5x", warm,
               warm <= 1.5, source="issue 11, table row 3",
               why="imported: " + (", ".join(imported["consumer warm"]) or "nothing")),
        target("consumer import, empty cache, vs linked -lz (in the child)",
               "<= 25x, no pycparser/tomllib/packaging/importlib.metadata", cold,
               cold <= 25 and not forbidden, source="issue 11, table row 4",
               why="forbidden imports: " + (", ".join(forbidden) or "none")),
    ]


def build_memory(fx: fixtures.Fixtures) -> None:
    """A C consumer of the 1,500-slot openblas table and its -lscipy_openblas twin."""
    import libbroker

    libbroker.generate(libbroker.Spec.from_file(fx.openblas_spec), fx.gen)
    names = fx.openblas_symbols
    src = os.path.join(fx.ext, "mem1500.c")
    builders.write(src, builders.module_source(
        "mem1500", table="openblas1500",
        calls=[f"(size_t)libbroker_openblas1500->{n}" for n in names]))
    linked = os.path.join(fx.ext, "memlnk1500.c")
    builders.write(linked, builders.module_source(
        "memlnk1500", table=None, calls=[f"(size_t)&scipy_{n}" for n in names],
        declarations="".join(f"extern int scipy_{n}(void);\n" for n in names)))
    lib_dir = os.path.dirname(fx.openblas_path)
    builders.compile_many([
        {"src": src, "out_dir": fx.ext, "include": [fx.gen, libbroker.get_include()]},
        {"src": linked, "out_dir": fx.ext, "libs": ["scipy_openblas"], "lib_dirs": [lib_dir]},
    ])


def bench_memory(s: Settings, fx: fixtures.Fixtures) -> tuple[dict, list[dict]]:
    """RSS the child gains from `import libbroker` (lazy: next to nothing), from a first
    `find` and from a 1,500-slot consumer (warm)."""
    env = fx.environ()
    children = {
        "import libbroker": Child("import libbroker", env, fx.build),
        "libbroker.find": Child("import libbroker; libbroker.find('z')", env, fx.build),
        "1500-slot consumer": Child("import mem1500", env, fx.build),
        "1500 linked (-lscipy_openblas)": Child("import memlnk1500", env, fx.build),
        "import ctypes": Child("import ctypes", env, fx.build),
    }
    runs = harness.run_children(children, s.processes)  # type: ignore[arg-type]
    samples = {name: [float(f["rss1"] - f["rss0"]) for f in r] for name, r in runs.items()}
    samples.update({f"{name} [time]": [f["t"] for f in r] for name, r in runs.items()})
    result = record(samples, "bytes of RSS added (from /proc/self/statm); [time]: s",
                    "warm cache; each consumer's figure includes libbroker's import and "
                    "mapping libscipy_openblas.so",
                    ratios={"1500-slot consumer / linked (RSS)":
                            ("1500-slot consumer", "1500 linked (-lscipy_openblas)")})
    return result, []


def bench_list(s: Settings, fx: fixtures.Fixtures) -> tuple[dict, list[dict]]:
    env = fx.environ()
    code = ("with contextlib.redirect_stdout(_sink):\n"
            "    from libbroker._cli import main\n    main(['list'])")
    setup = "import contextlib, os\n_sink = open(os.devnull, 'w')"
    children: dict[str, object] = dict(harness.states(
        code, env, fx.build, cache_root=fx.root, touched=fx.site, name="list", setup=setup))
    children["ldconfig -p"] = Command(["ldconfig", "-p"], env, fx.build)
    children["libbroker list [cli]"] = Command([sys.executable, "-m", "libbroker", "list"], env,
                                               fx.build)
    runs = harness.run_children(children, s.processes)  # type: ignore[arg-type]
    result = record(child_samples(runs), "s (in the child; ldconfig and [cli]: whole process)",
                    "`libbroker list` in the child (_cli.main(['list'])) vs `ldconfig -p`",
                    ratios={"list warm / ldconfig -p": ("list warm", "ldconfig -p")})
    warm = result["medians"]["list warm"]
    return result, [target("libbroker list (warm, in the child)", "<= 20 ms", warm, warm <= 0.020,
                           source="issue 11, table row 8", unit="s")]


def bench_doctor(s: Settings, fx: fixtures.Fixtures) -> tuple[dict, list[dict]]:
    """`doctor --import numpy` and `threadpoolctl -i numpy` over a bare `import numpy`."""
    env = fx.environ()
    py = sys.executable
    children: dict[str, object] = {
        "import numpy": Command([py, "-c", "import numpy"], env, fx.build),
        "doctor --import numpy": Command([py, "-m", "libbroker", "doctor", "--import", "numpy"],
                                         env, fx.build),
    }
    try:
        import threadpoolctl  # noqa: F401  (benchmark-only dependency)

        children["threadpoolctl -i numpy"] = Command([py, "-m", "threadpoolctl", "-i", "numpy"],
                                                     env, fx.build)
    except ImportError:
        pass
    runs = harness.run_children(children, s.processes)  # type: ignore[arg-type]
    samples = {name: [f["wall"] for f in r] for name, r in runs.items()}
    result = record(samples, "s (whole process)", "each command's wall time; the figure that "
                    "matters is what it adds over `python -c 'import numpy'`")
    med = result["medians"]
    added = {name: med[name] - med["import numpy"] for name in med if name != "import numpy"}
    result["added over import numpy"] = added
    doctor = added["doctor --import numpy"]
    why = ("threadpoolctl adds " + harness.fmt(added["threadpoolctl -i numpy"])
           if "threadpoolctl -i numpy" in added else "threadpoolctl not installed")
    return result, [target("doctor --import numpy over the import", "<= +20 ms", doctor,
                           doctor <= 0.020, source="issue 11, table row 9", unit="s", why=why)]
