"""What every reproduction's report shares: numbers, tables, figures, the output folder."""

from __future__ import annotations

import math
import os
import platform
from dataclasses import dataclass, field

import numpy as np

from .._atomic import atomic_write

__all__ = ["Report", "markdown_table", "machine", "rmse", "loglog_slope", "sci", "ratio_cell", "rmse_figure"]


def sci(value, digits: int = 2) -> str:
    """3.14e-05 style, '-' for None, 'nan' kept visible."""
    if value is None:
        return "-"
    return f"{value:.{digits}e}"


def markdown_table(header, rows) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def machine() -> str:
    """This machine in a line: CPU count, platform, Python and NumPy."""
    return (f"{os.cpu_count()} CPUs, {platform.machine()} {platform.system()}, Python {platform.python_version()}, "
            f"NumPy {np.__version__}")


def rmse(model, x, y) -> float:
    out = np.asarray(model(x), dtype=np.float64)
    return float(np.sqrt(np.mean((out - np.asarray(y, dtype=np.float64)) ** 2)))


def loglog_slope(xs, ys) -> float:
    """Least-squares slope of log(ys) against log(xs); nan with fewer than two points."""
    xs, ys = np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)
    keep = (xs > 0) & (ys > 0) & np.isfinite(ys)
    if keep.sum() < 2:
        return float("nan")
    return float(np.polyfit(np.log(xs[keep]), np.log(ys[keep]), 1)[0])


@dataclass
class Report:
    """A reproduction's outcome: ``markdown`` (the tables and the settings) and the figure."""

    name: str
    markdown: str
    figure: object = None  # a matplotlib figure, written by ``write``
    results: dict = field(default_factory=dict)
    seconds: float = math.nan

    def write(self, out_dir) -> list[str]:
        """Write out_dir/NAME.md (and NAME.png with a figure), atomically; returns the paths."""
        os.makedirs(out_dir, exist_ok=True)
        paths = [os.path.join(out_dir, f"{self.name}.md")]
        with atomic_write(paths[0]) as fh:
            fh.write((self.markdown + "\n").encode())
        if self.figure is not None:
            from ..plotting import save_png

            paths.append(os.path.join(out_dir, f"{self.name}.png"))
            save_png(self.figure, paths[1])
        return paths


def ratio_cell(ours: float, paper) -> str:
    """'0.52x (below)' comparing our RMSE with the paper's."""
    if paper is None:
        return "-"
    r = ours / paper
    return f"{r:.2g}x ({'at or below' if r <= 1 else 'above'})"


def rmse_figure(labels, ours, paper, recovered=None):
    """Test RMSE per entry, ours against the paper's (None: not reported); recovered: optional
    booleans, drawn as filled (recovered) or open (not) markers."""
    from ..plotting import _pyplot

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(5.0, 0.45 * len(labels) + 2), 3.5))
    xs = np.arange(len(labels))
    ax.semilogy(xs, [np.nan if p is None else p for p in paper], "k^", mfc="none", label="paper")
    if recovered is None:
        ax.semilogy(xs, ours, "o", color="C0", label="kanarray")
    else:
        hit = np.asarray(recovered, dtype=bool)
        ax.semilogy(xs[hit], np.asarray(ours)[hit], "o", color="C0", label="kanarray, formula recovered")
        ax.semilogy(xs[~hit], np.asarray(ours)[~hit], "o", color="C0", mfc="none", label="kanarray, not recovered")
    ax.set_xticks(list(xs), labels, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("test RMSE")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
