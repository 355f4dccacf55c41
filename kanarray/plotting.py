"""Pictures: the network with every edge's learned curve (``KAN.plot``), and the atomic PNG
writer shared with ``History.plot``.  matplotlib is imported here only, when a plot is asked for."""

from __future__ import annotations

import math

import numpy as np

from . import stack
from ._atomic import atomic_write
from ._namespace import to_numpy

__all__ = ["plot_model", "save_png"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def save_png(fig, path) -> None:
    """Save ``fig`` as a PNG at ``path`` atomically (temporary file, then rename) and close it."""
    try:
        with atomic_write(path, ".png.tmp") as fh:
            fig.savefig(fh, format="png", dpi=100)
    finally:
        _pyplot().close(fig)


def _edge_label(name, params, digits: int = 2) -> str:
    """The formula of a symbolic edge, c * f(a x + b) + d, rounded, as text."""
    import sympy

    from .symbolic.formula import round_numbers
    from .symbolic.library import get_function

    a, b, c, d = (sympy.Float(float(v)) for v in params)
    s = sympy.Symbol("x")
    return str(round_numbers(c * get_function(name).sympy_fn(a * s + b) + d, digits))


def plot_model(model, path, *, x=None, title=None, beta: float = 3.0) -> None:
    """Draw ``model`` to a PNG at ``path``.

    Nodes sit in rows, one per layer (inputs at the bottom).  Between two rows, one small
    panel per edge (i, o) shows phi_io over the range of its input on the samples x (default
    the inputs of the last ``fit``); lines join it to its two nodes.  Opacity is
    tanh(beta * attribution score) (pykan's choice), pruned edges are not drawn, and symbolic
    edges are drawn in red with their formula as the panel's title.  With an input scaling
    (``KAN.scale_inputs``) the first layer's curves and formulas are in the scaled input
    (x - shift) * scale that the layer sees.
    """
    from .pruning import attribute, edge_activations
    from .symbolic.api import samples_of

    x = samples_of(model, x)
    if x.shape[0] < 2:
        raise ValueError("plotting needs at least 2 samples")
    scores = attribute(model, x).edge_scores

    def visit(l, layer, h):
        phi, out = edge_activations(layer, h)
        return out, (np.asarray(to_numpy(h), dtype=np.float64), np.asarray(to_numpy(phi), dtype=np.float64))

    _, curves = stack.traverse(model.layers, x, visit)

    plt = _pyplot()
    widths = model.width
    n_layers = len(model.layers)
    panels = max(w_in * w_out for w_in, w_out in zip(widths[:-1], widths[1:]))
    fig_w = max(4.0, min(24.0, 1.1 * max(panels, max(widths))))
    fig_h = 2.6 * n_layers + 0.6
    fig = plt.figure(figsize=(fig_w, fig_h))
    back = fig.add_axes([0, 0, 1, 1])
    back.set_xlim(0, 1)
    back.set_ylim(0, 1)
    back.axis("off")

    def row_y(level):  # level: 0 .. 2 * n_layers (nodes on even levels, panels on odd ones)
        return 0.05 + 0.9 * level / (2 * n_layers)

    def spread(count, index):
        return (index + 0.5) / count

    for level, w in enumerate(widths):
        back.scatter([spread(w, i) for i in range(w)], [row_y(2 * level)] * w, s=80, color="black", zorder=3)
    panel_h = 0.9 / (2 * n_layers) * 0.75
    for l, layer in enumerate(model.layers):
        n, m = layer.in_dim, layer.out_dim
        mask = to_numpy(layer.mask)
        xs, phi = curves[l]
        panel_w = min(0.9 / (n * m), 0.25)
        for i in range(n):
            order = np.argsort(xs[:, i])
            for o in range(m):
                name = layer.symbolic.names[i][o]
                if name is None and mask[i, o] == 0:
                    continue  # pruned
                alpha = float(np.clip(math.tanh(beta * scores[l][i, o]), 0.05, 1.0))
                color = "red" if name is not None else "black"
                cx, cy = spread(n * m, i * m + o), row_y(2 * l + 1)
                back.plot([spread(n, i), cx], [row_y(2 * l), cy - panel_h / 2], color=color, alpha=alpha, lw=1)
                back.plot([cx, spread(m, o)], [cy + panel_h / 2, row_y(2 * l + 2)], color=color, alpha=alpha, lw=1)
                ax = fig.add_axes([cx - panel_w * 0.4, cy - panel_h / 2, panel_w * 0.8, panel_h])
                ax.plot(xs[order, i], phi[i, order, o], color=color, alpha=alpha, lw=1.5)
                ax.set_xticks([])
                ax.set_yticks([])
                for side in ax.spines.values():
                    side.set_alpha(alpha)
                if name is not None:
                    label = _edge_label(name, to_numpy(layer.symbolic.affine)[i, o])
                    ax.set_title(label, fontsize=7, color="red", pad=2)
    if title:
        back.text(0.5, 0.995, title, ha="center", va="top", fontsize=10)
    save_png(fig, path)
