"""Markdown tables from the JSON of several `benchmarks/run.py` runs, for docs/benchmarks.md.

    python benchmarks/summarize.py run1.json run2.json run3.json

Prints one table of every target (goal, the value in each run, held in all of them) and
one table per sweep (the median cost at each N, per run). Nothing is computed here that
the runs did not record: the figures and verdicts are the runner's.
"""

from __future__ import annotations

import json
import sys


def _value(target: dict) -> str:
    value = target["value"]
    if value is None:
        return "not measured"
    unit = target.get("unit", "")
    if unit == "s":
        text = f"{value * 1e3:.3g} ms" if value < 1 else f"{value:.3g} s"
    elif unit == "ratio":
        text = f"{value:.3g}"
    else:
        text = f"{value:.3g} {unit}".strip()
    return text if target["held"] else f"**{text}** (missed)"


def _cost(value: float, unit: str) -> str:
    if unit.startswith("s"):
        return f"{value * 1e3:.3g} ms" if value < 1 else f"{value:.3g} s"
    return f"{value / 1024:.0f} KiB" if value >= 1024 else f"{value:.0f}"


def targets_table(runs: list[dict]) -> list[str]:
    header = "| target | goal | " + " | ".join(f"run {i + 1}" for i in range(len(runs))) + " | all held |"
    lines = [header, "| --- | --- | " + " | ".join("---" for _ in runs) + " | --- |"]
    per_run = [{t["measure"]: t for t in run["targets"]} for run in runs]
    measures = list(dict.fromkeys(m for run in per_run for m in run))
    for measure in measures:
        found = [run.get(measure) for run in per_run]
        cells = [_value(t) if t else "(not run)" for t in found]
        goal = next(t for t in found if t)["target"]
        held = all(t is not None and t["held"] for t in found)
        lines.append(f"| {measure} | {goal} | " + " | ".join(cells) + f" | {'yes' if held else 'NO'} |")
    return lines


def sweep_tables(runs: list[dict]) -> list[str]:
    lines: list[str] = []
    for name, result in runs[-1]["results"].items():
        if "series" not in result or "x" not in result:
            continue
        lines += ["", f"**{name}** ({result['xlabel']}; {result['notes']}), medians per run:", ""]
        xs = result["x"]
        lines.append("| side | " + " | ".join(f"N = {x:,}" for x in xs) + " |")
        lines.append("| --- | " + " | ".join("---" for _ in xs) + " |")
        for side in result["series"]:
            cells = []
            for k in range(len(xs)):
                values = [run["results"][name]["series"][side][k] for run in runs
                          if name in run["results"] and side in run["results"][name].get("series", {})]
                unit = "s" if not side.startswith("size") else "bytes"
                cells.append(" / ".join(_cost(v, unit) for v in values if v is not None))
            lines.append(f"| {side} | " + " | ".join(cells) + " |")
    return lines


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    runs = []
    for path in argv:
        with open(path, encoding="utf-8") as f:
            runs.append(json.load(f))
    for i, run in enumerate(runs):
        machine = run["machine"]
        load = ", ".join(f"{x:.2f}" for x in machine.get("load_average", []))
        probes = [r["speed_probe_ms"] for r in run["results"].values()
                  if isinstance(r, dict) and "speed_probe_ms" in r]
        speed = (f", speed probe {min(probes):.1f}-{max(probes):.1f} ms (harness.speed_probe: "
                 f"lower is faster)" if probes else "")
        print(f"- run {i + 1}: {run['total_seconds']:.0f} s, load average at its end {load}{speed}")
    print()
    print("\n".join(targets_table(runs)))
    print("\n".join(sweep_tables(runs)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
