"""``kanarray reproduce continual``: the paper's continual-learning toy (section 3.4, Figure 3.4).

The target is five Gaussian peaks, f(x) = sum_c exp(-300 (x - c)^2) for c in (-0.8, -0.4, 0,
0.4, 0.8).  Phase i trains only on 100 evenly spaced samples of [c_i - 0.2, c_i + 0.2]; after each
phase the RMSE on every peak's interval (1000 points) is measured.  The KAN is the paper's: [1, 1],
G = 200, cubic, base function off, scales frozen, no grid update, ``steps`` LBFGS steps per phase;
the splines' local support leaves the earlier peaks untouched.  The MLP baseline ([1, 32, 32, 1],
SiLU, kanarray's hand-written gradients and the same LBFGS) has no such locality and forgets.
"""

from __future__ import annotations

import time

import numpy as np

from ..mlp import MLP
from ..model import KAN
from ._report import Report, machine, markdown_table, sci

CENTERS = (-0.8, -0.4, 0.0, 0.4, 0.8)
HALF_WIDTH = 0.2


def peaks(x):
    """(N, 1) -> (N, 1): the five Gaussian peaks."""
    return sum(np.exp(-300.0 * (x - c) ** 2) for c in CENTERS)


def phase_inputs(i: int, n: int = 100):
    """(n, 1): evenly spaced samples of the i-th peak's interval."""
    return np.linspace(CENTERS[i] - HALF_WIDTH, CENTERS[i] + HALF_WIDTH, n)[:, None]


def _interval_rmse(model, i: int) -> float:
    x = phase_inputs(i, 1000)
    return float(np.sqrt(np.mean((np.asarray(model(x)) - peaks(x)) ** 2)))


def run(*, steps: int = 100, grid: int = 200, mlp_width=(1, 32, 32, 1), seed: int = 0, echo=print) -> Report:
    t_all = time.perf_counter()
    kan = KAN([1, 1], grid=grid, k=3, base_fun="zero", seed=seed)
    mlp = MLP(list(mlp_width), activation="silu", seed=seed)
    n = len(CENTERS)
    errors = {"KAN": np.full((n, n), np.nan), "MLP": np.full((n, n), np.nan)}  # [after phase, on peak]
    snapshots = {"KAN": [], "MLP": []}
    train_rmse = {"KAN": [], "MLP": []}
    xs = np.linspace(-1, 1, 801)[:, None]
    for i in range(n):
        x = phase_inputs(i)
        y = peaks(x)
        history = kan.fit(x, y, steps=steps, opt="lbfgs", update_grid=False, frozen=("scale_base", "scale_sp"),
                          progress=False)
        train_rmse["KAN"].append(history["train_loss"][-1])
        train_rmse["MLP"].append(mlp.fit(x, y, steps=steps, opt="lbfgs")[-1])
        for name, model in (("KAN", kan), ("MLP", mlp)):
            errors[name][i] = [_interval_rmse(model, j) for j in range(n)]
            snapshots[name].append(np.asarray(model(xs))[:, 0])
        echo(f"phase {i + 1}: RMSE on peaks 1..{i + 1}: KAN "
             + ", ".join(sci(v) for v in errors["KAN"][i, :i + 1]) + "; MLP "
             + ", ".join(sci(v) for v in errors["MLP"][i, :i + 1]))
    seconds = time.perf_counter() - t_all
    earlier = {name: float(np.max(e[n - 1, :n - 1])) for name, e in errors.items()}
    rows = []
    for i in range(n):
        for name in ("KAN", "MLP"):
            rows.append((i + 1, name, sci(train_rmse[name][i]))
                        + tuple(sci(errors[name][i, j]) if j <= i else "-" for j in range(n)))
    head = (f"## Continual learning (paper section 3.4, Figure 3.4)\n\n"
            f"Five phases, one peak each (100 evenly spaced samples of [c - 0.2, c + 0.2]); KAN [1, 1], G = {grid}, "
            f"base off, scales frozen, no grid update; MLP {list(mlp_width)} SiLU; {steps} LBFGS steps per phase "
            f"for both. Entries: RMSE on each peak's interval (1000 points) after each phase.\n\n"
            f"**After all five phases, the largest RMSE on the four earlier peaks: KAN {earlier['KAN']:.2e}, "
            f"MLP {earlier['MLP']:.2e}** (target for the KAN: <= 1e-3). Machine: {machine()}; {seconds:.1f} s.\n\n")
    table = markdown_table(("after phase", "model", "train RMSE") + tuple(f"peak {j + 1} (c = {c:g})"
                                                                          for j, c in enumerate(CENTERS)), rows)
    return Report("continual", head + table, _figure(xs[:, 0], snapshots),
                  results={"errors": errors, "earlier": earlier}, seconds=seconds)


def _figure(xs, snapshots):
    from ..plotting import _pyplot

    plt = _pyplot()
    n = len(CENTERS)
    fig, axes = plt.subplots(2, n, figsize=(2.6 * n, 4.4), sharex=True, sharey=True)
    truth = peaks(xs[:, None])[:, 0]
    for row, name in enumerate(("KAN", "MLP")):
        for i in range(n):
            ax = axes[row][i]
            ax.plot(xs, truth, color="0.75", lw=1)
            ax.axvspan(CENTERS[i] - HALF_WIDTH, CENTERS[i] + HALF_WIDTH, color="C1", alpha=0.15)
            ax.plot(xs, snapshots[name][i], color="C0" if name == "KAN" else "C3", lw=1)
            ax.set_ylim(-0.5, 1.5)
            if row == 0:
                ax.set_title(f"phase {i + 1}", fontsize=9)
        axes[row][0].set_ylabel(name)
    fig.tight_layout()
    return fig
