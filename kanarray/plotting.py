"""Pictures: the network with every edge's learned curve (``KAN.plot``), and the atomic PNG
writer; ``History.plot`` (``plot_history``).  matplotlib is imported here only, when a plot is asked for.

Figures are built with ``matplotlib.figure.Figure``, not pyplot, so that returning one (no path)
neither switches a notebook's backend nor leaves a figure open in pyplot's registry."""

from __future__ import annotations

import math
import sys

import numpy as np

from . import stack
from ._atomic import atomic_write
from ._namespace import to_numpy

__all__ = ["ALPHA_FLOOR", "finish", "new_figure", "plot_history", "plot_model", "save_png"]

ALPHA_FLOOR = 0.2  # the opacity of an edge with attribution score 0: faint, still visible


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def new_figure(figsize):
    """A matplotlib Figure outside pyplot (any backend, nothing to close)."""
    from matplotlib.figure import Figure

    return Figure(figsize=figsize)


def save_png(fig, path) -> None:
    """Save ``fig`` as a PNG at ``path`` atomically (temporary file, then rename) and close it."""
    try:
        with atomic_write(path, ".png.tmp") as fh:
            fig.savefig(fh, format="png", dpi=100)
    finally:
        if "matplotlib.pyplot" in sys.modules:  # a pyplot figure is released; for others a no-op
            sys.modules["matplotlib.pyplot"].close(fig)


def finish(fig, path):
    """Write ``fig`` to the PNG ``path`` and return None, or return the figure when path is None."""
    if path is None:
        return fig
    save_png(fig, path)
    return None


def _names(given, n: int, default, what: str) -> list:
    """``given`` (n names) as a list of str, or ``default(i)`` for each i; ValueError for a wrong count."""
    if given is None:
        return [default(i) for i in range(n)]
    if isinstance(given, str):
        raise TypeError(f"{what} must be a sequence of {n} names, got the string {given!r}")
    names = [str(v) for v in given]
    if len(names) != n:
        raise ValueError(f"{what} must have {n} names (one per node), got {len(names)}: {names}")
    return names


def _edge_label(name, params, variable: str, digits: int = 4) -> str:
    """The formula of a symbolic edge, c * f(a x + b) + d, in ``variable``, a..d to ``digits``
    significant digits, as text."""
    import sympy

    from .symbolic.formula import round_numbers
    from .symbolic.library import get_function

    a, b, c, d = (sympy.Float(float(v)) for v in params)
    expr = c * get_function(name).sympy_fn(a * sympy.Symbol(variable) + b) + d
    # significant digits, after sympy has merged numbers (c exp(a x + b)): a raw input's small coefficients survive
    expr = expr.xreplace({f: sympy.Float(float(f"{float(f):.{digits}g}")) for f in expr.atoms(sympy.Float)})
    return str(round_numbers(expr, 2 * digits))


def _raw_affine(params, shift: float, scale: float) -> list:
    """(a, b, c, d) of c f(a x' + b) + d with x' = (x - shift) * scale, rewritten in the raw x."""
    a, b, c, d = (float(v) for v in params)
    return [a * scale, b - a * scale * shift, c, d]


def _fitting_size(text: str, width_pt: float, largest: float = 7.0, smallest: float = 4.0) -> float:
    """A font size at which ``text`` (about 0.6 em per character) fits ``width_pt`` points."""
    return float(np.clip(width_pt / (0.6 * max(len(text), 1)), smallest, largest))


def _range_text(lo, hi) -> str:
    return f"[{lo:.3g}, {hi:.3g}]"


def plot_model(model, path=None, *, x=None, in_vars=None, out_vars=None, title=None, beta: float = 3.0):
    """Draw ``model``; write a PNG at ``path`` (atomically) and return None, or, with no path,
    return the matplotlib Figure (shown inline in a notebook).

    Nodes sit in rows, one per layer (inputs at the bottom), the inputs labelled with ``in_vars``
    (width[0] names; default the model's ``input_names`` if it has them, else x_1, x_2, ...) and
    the outputs with ``out_vars`` (width[-1] names; default none).  Between two rows, one small
    panel per edge (i, o) shows phi_io over the range of its input on the samples x (default
    the inputs of the last ``fit``), with that input range and phi's range written under it;
    lines join it to its two nodes.  Opacity is ALPHA_FLOOR + (1 - ALPHA_FLOOR) *
    tanh(beta * attribution score) (pykan's tanh, with a floor so that faint edges stay visible),
    pruned edges are not drawn, and symbolic edges are drawn in red with their formula, in the
    input's name, at the top of the panel.  With an input scaling (``KAN.scale_inputs``) the
    first layer's curves, ranges and formulas are in the raw inputs.  Hidden nodes are named
    h<layer>_<node> in formulas (h1_2: node 2 of the first hidden row).  In a layer with
    multiplication nodes the edges end on small grey sums ("sub-nodes") joined to their node, and
    the multiplication nodes are white circles marked x.
    """
    from .pruning import attribute, edge_activations
    from .symbolic.api import samples_of

    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not math.isfinite(beta) or beta <= 0:
        raise ValueError(f"beta must be a positive finite number, got {beta!r}")
    widths = model.width
    in_names = _names(in_vars if in_vars is not None else getattr(model, "input_names", None), widths[0],
                      lambda i: f"x_{i + 1}", "in_vars")
    out_names = None if out_vars is None else _names(out_vars, widths[-1], None, "out_vars")
    x = samples_of(model, x)
    if x.shape[0] < 2:
        raise ValueError("plotting needs at least 2 samples")
    scores = attribute(model, x).edge_scores

    def visit(l, layer, h):
        phi, out = edge_activations(layer, h)
        return out, (np.asarray(to_numpy(h), dtype=np.float64), np.asarray(to_numpy(phi), dtype=np.float64))

    _, curves = stack.traverse(model.layers, x, visit)
    scaling = model.input_scaling

    n_layers = len(model.layers)
    panels = max(layer.in_dim * layer.out_dim for layer in model.layers)
    fig_w = max(6.0, min(30.0, 1.5 * max(panels, max(widths))))
    fig_h = 3.0 * n_layers + 0.8
    fig = new_figure((fig_w, fig_h))
    back = fig.add_axes([0, 0, 1, 1])
    back.set_xlim(0, 1)
    back.set_ylim(0, 1)
    back.axis("off")

    def row_y(level):  # level: 0 .. 2 * n_layers (nodes on even levels, panels on odd ones)
        return 0.07 + 0.86 * level / (2 * n_layers)

    def spread(count, index):
        return (index + 0.5) / count

    gap = 0.86 / (2 * n_layers) * 0.12  # sums of a layer with a node stage sit this far below its nodes
    for level, w in enumerate(widths):
        stage = model.layers[level - 1].nodes if level else None
        n_add = w if stage is None else stage.n_add
        back.scatter([spread(w, i) for i in range(n_add)], [row_y(2 * level)] * n_add, s=80, color="black",
                     zorder=3, gid="node")
        if stage is not None:
            _draw_node_stage(back, stage, spread, row_y(2 * level), gap)
    for i, name in enumerate(in_names):
        back.text(spread(widths[0], i), row_y(0) - 0.02, name, ha="center", va="top", fontsize=10)
    for o, name in enumerate(out_names or ()):
        back.text(spread(widths[-1], o), row_y(2 * n_layers) + 0.02, name, ha="center", va="bottom", fontsize=10)
    panel_h = 0.86 / (2 * n_layers) * 0.8
    for l, layer in enumerate(model.layers):
        n, m = layer.in_dim, layer.out_dim
        mask = to_numpy(layer.mask)
        affine = to_numpy(layer.symbolic.affine)
        xs, phi = curves[l]
        variables = in_names if l == 0 else [f"h{l}_{i + 1}" for i in range(n)]
        if l == 0 and scaling is not None:
            shift, scale = scaling
            xs = xs / scale + shift
        panel_w = min(0.9 / (n * m), 0.3)
        for i in range(n):
            order = np.argsort(xs[:, i])
            for o in range(m):
                name = layer.symbolic.names[i][o]
                if name is None and mask[i, o] == 0:
                    continue  # pruned
                alpha = ALPHA_FLOOR + (1.0 - ALPHA_FLOOR) * math.tanh(beta * max(float(scores[l][i, o]), 0.0))
                alpha = float(np.clip(alpha, ALPHA_FLOOR, 1.0))
                color = "red" if name is not None else "black"
                cx, cy = spread(n * m, i * m + o), row_y(2 * l + 1)
                back.plot([spread(n, i), cx], [row_y(2 * l), cy - panel_h / 2], color=color, alpha=alpha, lw=1)
                top = row_y(2 * l + 2) - (0 if layer.nodes is None else gap)
                back.plot([cx, spread(m, o)], [cy + panel_h / 2, top], color=color, alpha=alpha, lw=1)
                ax = fig.add_axes([cx - panel_w * 0.45, cy - panel_h / 2, panel_w * 0.9, panel_h])
                curve = phi[i, order, o]
                lo, hi = float(xs[order[0], i]), float(xs[order[-1], i])
                p_lo, p_hi = float(np.min(curve)), float(np.max(curve))
                span = (p_hi - p_lo) or max(abs(p_hi), 1.0)
                # bands: the formula above the curve, the ranges below it, so no text crosses the curve
                ax.set_ylim(p_lo - 0.75 * span, p_hi + 0.45 * span)
                ax.plot(xs[order, i], curve, color=color, alpha=alpha, lw=1.5)
                ax.set_xticks([])
                ax.set_yticks([])
                for side in ax.spines.values():
                    side.set_alpha(alpha)
                ax.text(0.03, 0.03, f"{variables[i]} {_range_text(lo, hi)}\nφ {_range_text(p_lo, p_hi)}",
                        transform=ax.transAxes, ha="left", va="bottom", fontsize=6, color="0.3")
                if name is not None:
                    params = np.round(affine[i, o], 4)  # as symbolic_formula rounds: no 4e-6 offsets
                    if l == 0 and scaling is not None:
                        params = _raw_affine(params, float(shift[i]), float(scale[i]))
                        if abs(params[1]) < 1e-4 * abs(params[0]) * max(abs(lo), abs(hi)):
                            params[1] = 0.0  # an offset the map left, negligible against a x on this range
                    label = _edge_label(name, params, variables[i])
                    ax.text(0.5, 0.97, label, transform=ax.transAxes, ha="center", va="top",
                            fontsize=_fitting_size(label, panel_w * 0.9 * fig_w * 72), color="red")
    if title:
        back.text(0.5, 0.995, title, ha="center", va="top", fontsize=11)
    return finish(fig, path)


def _draw_node_stage(back, stage, spread, y, gap) -> None:
    """A node stage (``kanarray.nodes``) at node row y: a small grey dot per sum ("sub-node") at y - gap,
    joined to its node; multiplication nodes drawn as white circles with a x (gid "mult_node")."""
    n_sub, n_nodes = stage.n_sub, stage.n_nodes
    back.scatter([spread(n_sub, s) for s in range(n_sub)], [y - gap] * n_sub, s=12, color="0.5", zorder=3,
                 gid="subnode")
    for j, group in enumerate(stage.groups()):
        for s in group:
            back.plot([spread(n_sub, s), spread(n_nodes, j)], [y - gap, y], color="0.5", lw=0.8)
    mult = [spread(n_nodes, j) for j in range(stage.n_add, n_nodes)]
    back.scatter(mult, [y] * len(mult), s=170, facecolor="white", edgecolor="black", linewidth=1.2, zorder=4,
                 gid="mult_node")
    for cx in mult:
        back.text(cx, y, "×", ha="center", va="center", fontsize=11, zorder=5)


LOSS_LABELS = {"mse": "RMSE (loss mse)", "cross_entropy": "cross-entropy (loss cross_entropy)"}


def plot_history(history, path=None):
    """``History.plot``: every curve but ``val_acc`` on a log scale against the step, one dashed
    vertical line (labelled fit 1, fit 2, ...) at the start of each stage in ``history.stages``,
    the y axis named by ``history.loss``.  A PNG at ``path`` (None returned) or the Figure."""
    curves = [(k, v) for k, v in history.items() if k != "val_acc" and v]
    if not curves:
        raise ValueError("the history is empty: nothing to plot")
    fig = new_figure((6, 4))
    ax = fig.add_subplot()
    for key, values in curves:
        steps = np.arange(1, len(values) + 1)
        values = np.asarray(values, dtype=float)
        positive = values > 0  # NaN (a stage without this curve) and 0 have no place on a log axis
        if positive.any():
            ax.semilogy(steps[positive], values[positive], label=key)
    stages = list(getattr(history, "stages", [0]))
    for n, start in enumerate(stages):
        ax.axvline(start + 0.5, color="0.5", ls="--", lw=0.8, gid="stage")
        ax.text(start + 0.5, 1.0, f" fit {n + 1}", transform=ax.get_xaxis_transform(), ha="left", va="top",
                fontsize=8, color="0.4")
    ax.set_xlabel("step")
    ax.set_ylabel(LOSS_LABELS.get(getattr(history, "loss", None), "loss"))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="best")
    fig.tight_layout()
    return finish(fig, path)
