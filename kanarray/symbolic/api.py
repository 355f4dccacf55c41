"""Replacing a trained KAN's edges by library functions: suggest, fix, auto, unfix.

The model methods ``suggest_symbolic``, ``fix_symbolic``, ``auto_symbolic`` and
``unfix_symbolic`` call these.  Every fit uses samples that are passed in, or the inputs of
the model's last ``fit``/``update_grid`` -- never whatever forward pass ran last -- and all
edges of one call are fitted on the activations of the model as it was when the call began.
Models change only after every fit has succeeded.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import stack
from .._checks import check_number
from .._namespace import from_host_like, to_numpy
from .fitting import Candidate, fit_affine, rank
from .library import get_function, resolve_library

__all__ = ["suggest_symbolic", "fix_symbolic", "auto_symbolic", "unfix_symbolic", "AutoSymbolicReport",
           "samples_of", "check_edge", "layer_inputs"]


def samples_of(model, x):
    """The samples to fit on: x (validated) or the inputs stored by the last fit/update_grid."""
    if x is not None:
        return model.prepare_inputs(x)
    if model.fit_inputs is None:
        raise ValueError(f"no samples to fit on: pass x (batch, {model.width[0]}), e.g. the training inputs. The "
                         "model stores none: fit and update_grid keep theirs in model.fit_inputs, but a checkpoint "
                         "does not (a model from kanarray.load has none), nor does a new model")
    return model.fit_inputs


def check_edge(model, l, i, j) -> tuple[int, int, int]:
    """Validate an edge index (layer l, input i, output j)."""
    n_layers = len(model.layers)
    for name, v in (("l", l), ("i", i), ("j", j)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise ValueError(f"edge index {name} must be an integer, got {v!r}")
    if not 0 <= l < n_layers:
        raise ValueError(f"layer index l={l} is out of range: the model has layers 0..{n_layers - 1}")
    n, m = model.layers[l].in_dim, model.layers[l].out_dim  # j: a sum ("sub-node" with multiplication nodes)
    if not 0 <= i < n:
        raise ValueError(f"input index i={i} is out of range: layer {l} has inputs 0..{n - 1}")
    if not 0 <= j < m:
        raise ValueError(f"output index j={j} is out of range: layer {l} has outputs 0..{m - 1}")
    return int(l), int(i), int(j)


def layer_inputs(model, x) -> list:
    """The inputs of every layer for samples x (validated): [(B, width[l])] in the model's namespace."""
    return stack.layer_inputs(model.layers, x)


def _edge_curves(model, hs, edges):
    """Host float64 samples (x (E, B), y (E, B)) of the listed edges' current functions."""
    xs, ys = [], []
    by_layer: dict = {}
    for l, i, j in edges:
        by_layer.setdefault(l, []).append((i, j))
    phis, syms = {}, {}
    for l in by_layer:
        layer = model.layers[l]
        phis[l] = to_numpy(layer.forward_edges(hs[l], need_dx=False)[1])  # (n, B, m), spline branch
        syms[l] = to_numpy(layer.symbolic.edge_values(hs[l])) if layer.symbolic.active else None
    for l, i, j in edges:
        xs.append(np.asarray(to_numpy(hs[l])[:, i], dtype=np.float64))
        y = phis[l][i, :, j]
        if syms[l] is not None:
            y = y + syms[l][i, :, j]
        ys.append(np.asarray(y, dtype=np.float64))
    return np.stack(xs), np.stack(ys)


def _fit_all(rows, x, y, fit_options):
    """Fit every library row to every edge: (params (F, E, 4), r2 (F, E))."""
    params, r2s = [], []
    for row in rows:
        p, r2 = fit_affine(row, x, y, **fit_options)
        params.append(p)
        r2s.append(r2)
    return np.stack(params), np.stack(r2s)


def _check_weight(weight_simple) -> float:
    w = check_number("weight_simple", weight_simple, minimum=0.0)
    if w > 1:
        raise ValueError(f"weight_simple must be a number in [0, 1], got {weight_simple!r}")
    return w


def _edge_state(model, l, i, j) -> str:
    layer = model.layers[l]
    if layer.symbolic.names[i][j] is not None:
        return "symbolic"
    return "spline" if float(to_numpy(layer.mask)[i, j]) != 0 else "pruned"


def suggest_symbolic(model, l, i, j, *, lib=None, topk: int = 5, x=None, weight_simple: float = 0.8,
                     **fit_options) -> list[Candidate]:
    """The library functions that best fit edge (l, i, j), best first (``Candidate``: name, r2,
    complexity, params (a, b, c, d), score)."""
    l, i, j = check_edge(model, l, i, j)
    rows = resolve_library(lib)
    weight_simple = _check_weight(weight_simple)
    if isinstance(topk, bool) or not isinstance(topk, int) or topk < 1:
        raise ValueError(f"topk must be a positive integer, got {topk!r}")
    if _edge_state(model, l, i, j) == "pruned":
        raise ValueError(f"edge ({l}, {i}, {j}) is pruned (mask 0, no function): there is nothing to fit")
    hs = layer_inputs(model, samples_of(model, x))
    ex, ey = _edge_curves(model, hs, [(l, i, j)])
    params, r2s = _fit_all(rows, ex, ey, fit_options)
    return rank(rows, r2s[:, 0], params[:, 0], weight_simple)[:topk]


def _set_edge(layer, i, j, name, params) -> tuple:
    """(new mask, new SymbolicEdges) with edge (i, j) symbolic (name) or back to spline (None)."""
    mask = np.array(to_numpy(layer.mask), copy=True)
    mask[i, j] = 0.0 if name is not None else 1.0
    return from_host_like(layer.xp, mask, layer.mask), layer.symbolic.with_edge(i, j, name, params)


def fix_symbolic(model, l, i, j, name, *, x=None, fit_params: bool = True, params=None, **fit_options) -> float | None:
    """Replace edge (l, i, j) by c * f(a x + b) + d with f = library function ``name``; returns
    the fit's R^2 (None when params are given or fit_params is False: then params, default
    (1, 0, 1, 0), are used as they are).  The edge's spline branch is switched off (mask 0)."""
    l, i, j = check_edge(model, l, i, j)
    row = get_function(name)
    state = _edge_state(model, l, i, j)
    if state == "pruned":
        raise ValueError(f"edge ({l}, {i}, {j}) is pruned (mask 0, no function); it cannot be made symbolic")
    r2 = None
    if params is not None or not fit_params:
        p = np.asarray((1.0, 0.0, 1.0, 0.0) if params is None else params, dtype=np.float64)
        if p.shape != (4,) or not np.all(np.isfinite(p)):
            raise ValueError(f"params must be four finite numbers (a, b, c, d), got {params!r}")
    else:
        hs = layer_inputs(model, samples_of(model, x))
        ex, ey = _edge_curves(model, hs, [(l, i, j)])
        fitted, r2s = fit_affine(row, ex, ey, **fit_options)
        p, r2 = fitted[0], float(r2s[0])
    layer = model.layers[l]
    layer.mask, layer.symbolic = _set_edge(layer, i, j, row.name, p)
    return r2


def unfix_symbolic(model, l, i, j) -> None:
    """Turn symbolic edge (l, i, j) back into its spline (which was kept, switched off)."""
    l, i, j = check_edge(model, l, i, j)
    if _edge_state(model, l, i, j) != "symbolic":
        raise ValueError(f"edge ({l}, {i}, {j}) is not symbolic")
    layer = model.layers[l]
    layer.mask, layer.symbolic = _set_edge(layer, i, j, None, None)


@dataclass
class AutoSymbolicReport:
    """What ``auto_symbolic`` did.  fixed: {(l, i, j): Candidate}; kept: {(l, i, j): the
    candidate with the highest R^2} for the edges left as splines because no candidate reached
    r2_threshold."""

    r2_threshold: float
    fixed: dict = field(default_factory=dict)
    kept: dict = field(default_factory=dict)

    def __str__(self) -> str:
        lines = [f"auto_symbolic: {len(self.fixed)} edges fixed, {len(self.kept)} kept as splines "
                 f"(R^2 threshold {self.r2_threshold:g})"]
        for (l, i, j), c in self.fixed.items():
            lines.append(f"  fixed ({l},{i},{j}) -> {c.name:<10} R^2 = {c.r2:.6f}")
        for (l, i, j), c in self.kept.items():
            lines.append(f"  kept  ({l},{i},{j}) as spline: best {c.name} has R^2 = {c.r2:.4f}")
        return "\n".join(lines)


def auto_symbolic(model, *, lib=None, r2_threshold: float = 0.99, weight_simple: float = 0.8, x=None,
                  **fit_options) -> AutoSymbolicReport:
    """Fix every spline edge to its best-ranked library function among those with
    R^2 >= r2_threshold; edges with no such function stay splines.  All edges are fitted on the
    activations of the model as it is now, and the model changes only once every fit is done."""
    rows = resolve_library(lib)
    weight_simple = _check_weight(weight_simple)
    r2_threshold = check_number("r2_threshold", r2_threshold, minimum=-np.inf)
    if r2_threshold > 1:
        raise ValueError(f"r2_threshold must be at most 1 (R^2 cannot exceed 1), got {r2_threshold!r}")
    edges = [(l, i, j) for l in range(len(model.layers)) for i in range(model.width[l])
             for j in range(model.layers[l].out_dim) if _edge_state(model, l, i, j) == "spline"]
    report = AutoSymbolicReport(r2_threshold)
    if not edges:
        return report
    hs = layer_inputs(model, samples_of(model, x))
    ex, ey = _edge_curves(model, hs, edges)
    params, r2s = _fit_all(rows, ex, ey, fit_options)
    for e, edge in enumerate(edges):
        ranked = rank(rows, r2s[:, e], params[:, e], weight_simple)
        passing = [c for c in ranked if c.r2 >= r2_threshold]
        if passing:
            report.fixed[edge] = passing[0]
        else:
            report.kept[edge] = max(ranked, key=lambda c: c.r2)
    for (l, i, j), c in report.fixed.items():  # every fit is done: now change the model
        layer = model.layers[l]
        layer.mask, layer.symbolic = _set_edge(layer, i, j, c.name, c.params)
    return report
