"""``kanarray reproduce scaling``: the paper's neural scaling laws on its five toy functions.

Each toy function (``kanarray.datasets.TOY``) is fitted with the paper's KAN shape by grid
extension, G = 3, 5, 10, ..., 1000 with ``steps`` LBFGS steps per grid (the paper: 200), on
``n_train`` training points (default 1000, the paper's; ``--train`` on the command line) and
1000 test points.  The table gives test RMSE and median error against the number of
parameters N, and their log-log slopes from the first grid to the grid of lowest test RMSE
(past it the test error rises: the training points cannot pin down more parameters).  The
theory for cubic splines gives RMSE ~ N^-4; the paper sees about -4 on the median error and
-3 on RMSE.  ``seeds``: initializations tried at the first grid; the lowest training RMSE is kept
(default 16: [4, 4, 2, 1] on two_sines reaches the good basin from 3 of seeds 0-15 only, pykan from 1 of 0-2).
"""

from __future__ import annotations

import math
import time

import numpy as np

from ..datasets import TOY, toy_dataset
from ..model import KAN
from ._plan import Plan, grid_extension, inside_box
from ._report import Report, loglog_slope, machine, markdown_table, sci

GRIDS = (3, 5, 10, 20, 50, 100, 200, 500, 1000)


def _slopes(rows):
    """(RMSE slope, median-error slope) against N up to the lowest test RMSE."""
    stop = int(np.argmin([r.test for r in rows])) + 1
    part = rows[:stop]
    return (loglog_slope([r.params for r in part], [r.test for r in part]),
            loglog_slope([r.params for r in part], [r.median for r in part]), part[-1].G)


def run(*, functions=tuple(TOY), grids=GRIDS, steps: int = 200, seeds=tuple(range(16)), data_seed: int = 0,
        n_train: int = 1000, grid_margin: float = 0.0, echo=print) -> Report:
    """Fit every function in ``functions`` by grid extension over ``grids``; returns the Report."""
    unknown = [f for f in functions if f not in TOY]
    if unknown:
        raise ValueError(f"unknown toy functions {unknown}; choose from {sorted(TOY)}")
    grids = sorted(set(int(g) for g in grids))
    t_all = time.perf_counter()
    sections, summary, curves = [], [], {}
    for name in functions:
        t0 = time.perf_counter()
        data = toy_dataset(name, n_train=n_train, n_test=1000, seed=data_seed)
        shape = list(TOY[name].shape)
        rows, _, seed = grid_extension(lambda G, s, _: KAN(shape, grid=G, k=3, seed=s), data, grids, steps, seeds=seeds,
                                       grid_margin=grid_margin)
        seconds = time.perf_counter() - t0
        s_rmse, s_median, upto = _slopes(rows)
        curves[name] = rows
        best = min(rows, key=lambda r: r.test)
        best_inside = min(rows, key=lambda r: r.inside)
        outside = int(np.sum(~inside_box(data["train_input"], data["test_input"])))
        summary.append((name, list(TOY[name].shape), seed, sci(best.test), best.G,
                        f"{s_rmse:.2f}", f"{s_median:.2f}", f"{grids[0]}..{upto}",
                        f"{sci(best_inside.inside)} (G={best_inside.G}, {outside} outside)", f"{seconds:.0f}"))
        sections.append(f"### {name} {list(TOY[name].shape)} (seed {seed})\n\n" + markdown_table(
            ("G", "N params", "train RMSE", "test RMSE", "test median abs error", "test RMSE inside training box"),
            [(r.G, r.params, sci(r.train), sci(r.test), sci(r.median), sci(r.inside)) for r in rows]))
        echo(f"{name}: best test RMSE {best.test:.2e} at G={best.G}; slopes RMSE {s_rmse:.2f}, median "
             f"{s_median:.2f}; {seconds:.0f} s")
    seconds = time.perf_counter() - t_all
    head = (f"## Scaling laws (paper section 3.1, Figure 3.1)\n\n"
            f"Trained by {Plan(grids, steps, seeds, grid_margin).schedule_text()}; {n_train} training / 1000 test "
            f"points (data seed {data_seed}), float64. Slopes: least squares of log error against log N from the "
            f"first grid to the grid of lowest test RMSE. Theory: -4. The first layer's grids follow the training "
            f"samples' range (pykan's grid update), so at large G test points a hair outside it, where the splines "
            f"extrapolate, carry much of the test error; the RMSE on the test points inside the training box is "
            f"given as well. Machine: {machine()}; {seconds:.0f} s in all.\n\n")
    table = markdown_table(("function", "shape", "seed", "best test RMSE", "at G", "slope RMSE", "slope median",
                            "slope over G", "best test RMSE inside the training box (test points outside)",
                            "seconds"), summary)
    return Report("scaling", head + table + "\n\n" + "\n\n".join(sections), _figure(curves),
                  results={"curves": curves}, seconds=seconds)


def _figure(curves):
    from ..plotting import _pyplot

    plt = _pyplot()
    fig, axes = plt.subplots(1, len(curves), figsize=(3.2 * len(curves), 3.2), squeeze=False)
    for ax, (name, rows) in zip(axes[0], curves.items()):
        n = np.array([r.params for r in rows], dtype=float)
        ax.loglog(n, [r.train for r in rows], "o-", ms=3, label="train RMSE")
        ax.loglog(n, [r.test for r in rows], "s-", ms=3, label="test RMSE")
        ax.loglog(n, [r.median for r in rows], "d-", ms=3, label="test median")
        ax.loglog(n, rows[0].test * (n / n[0]) ** -4.0, "k:", label="N^-4")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("number of parameters N")
        ax.xaxis.set_minor_formatter(plt.NullFormatter())  # under a decade, minor labels overlap
        finite = [v for r in rows for v in (r.train, r.test, r.median) if v > 0 and math.isfinite(v)]
        ax.set_ylim(min(finite) / 3, max(finite) * 3)
    axes[0][0].set_ylabel("error")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return fig
