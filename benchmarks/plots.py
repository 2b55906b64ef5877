"""`run.py --plots`: one PNG per sweep, cost against N (matplotlib, optional).

Seconds are drawn in milliseconds, bytes in KiB; both axes logarithmic, so a straight
line of slope 1 is linear growth and the gap between two lines is a ratio.
"""

from __future__ import annotations

import os


def plot_sweeps(sweeps: dict[str, dict], out_dir: str) -> list[str]:
    """Write `sweep_NAME.png` for each sweep record into *out_dir*; the paths written."""
    import matplotlib

    matplotlib.use("Agg")  # no display: write files only
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    os.makedirs(out_dir, exist_ok=True)
    written = []
    for name, sweep in sweeps.items():
        if "error" in sweep:
            continue
        groups = {"time": {k: v for k, v in sweep["series"].items() if not k.startswith("size")},
                  "size": {k: v for k, v in sweep["series"].items() if k.startswith("size")}}
        groups = {k: v for k, v in groups.items() if v}
        fig, axes = plt.subplots(1, len(groups), figsize=(6.4 * len(groups), 4.4), squeeze=False)
        for ax, (kind, series) in zip(axes[0], groups.items()):
            scale, unit = (1e3, "ms") if kind == "time" else (1 / 1024, "KiB")
            for label, values in series.items():
                ax.plot(sweep["x"], [v * scale for v in values], marker="o", label=label)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xticks(sweep["x"])  # the N values measured, as plain numbers
            ax.xaxis.set_major_formatter(ScalarFormatter())
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.yaxis.set_major_formatter(ScalarFormatter())
            ax.set_xlabel(f"N = {sweep['xlabel']}")
            ax.set_ylabel("median time (ms)" if kind == "time" else f"size ({unit})")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize="small")
        fig.suptitle(f"{name}: cost against N", fontsize="medium")
        fig.tight_layout()
        path = os.path.join(out_dir, f"sweep_{name}.png")
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(path)
    return written
