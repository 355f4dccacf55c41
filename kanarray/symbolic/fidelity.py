"""Whether a printed formula still computes what its model computes.

``symbolic_formula`` rounds and rearranges the model's exact expression; ``check_formulas``
evaluates the result (NumPy, via ``sympy.lambdify``) against the model's forward pass on
check samples and, where an output differs by more than the rounding allows, warns
(``FormulaMismatchWarning``) or raises (``FormulaMismatchError``), naming the edges whose
rounded formulas went wrong.

The check samples (``check_samples``) are the model's ``fit_inputs`` (the samples that the
symbolic fits use; at most ``MAX_SAMPLES`` of them, evenly spaced), or, where none are stored,
``GRID_POINTS`` points spread over the first layer's grid range: every input takes that many
evenly spaced values, each column in its own fixed shuffled order.

What the rounding allows (``allowance``), for one output: 10 times the largest change of the
model's exact expression when every number in it moves by half a rounding step (10**-digits / 2,
times the number where it exceeds 1) in random directions (``PERTURBATIONS`` draws), plus
``base_tolerance(digits, dtype)`` times max(1, max |output|).  The first part follows the
formula's own sensitivity: sin(400 x) printed with 3 decimals may well be off by 0.2, and is
not reported; a term that vanished or changed magnitude is far outside it.  The second covers
terms dropped because their coefficient rounds to 0, and a float32 model's own rounding.
"""

from __future__ import annotations

import sys
import warnings

import numpy as np

from .._namespace import from_host_like, to_numpy
from .library import get_function

__all__ = ["ON_MISMATCH", "FormulaMismatchError", "FormulaMismatchWarning", "allowance", "base_tolerance",
           "check_formulas", "check_samples"]

ON_MISMATCH = ("warn", "raise", "ignore")
MAX_SAMPLES = 2048
GRID_POINTS = 256
PERTURBATIONS = 4


class FormulaMismatchWarning(UserWarning):
    """A formula from ``symbolic_formula`` differs from its model by more than rounding explains."""


class FormulaMismatchError(ValueError):
    """``symbolic_formula(on_mismatch="raise")``: a formula differs from its model by more than
    rounding explains."""


def base_tolerance(digits: int, dtype_name: str) -> float:
    """The mismatch always allowed, relative to max(1, max |value|): 10**-digits, at least
    1000 ulps of the model's dtype."""
    eps = float(np.finfo(np.float32 if dtype_name == "float32" else np.float64).eps)
    return max(10.0 ** -digits, 1e3 * eps)


def check_samples(model) -> tuple:
    """(samples (S, width[0]) in the model's namespace, as the first layer sees them, a phrase
    saying what they are): ``fit_inputs`` (every k-th row when there are more than
    ``MAX_SAMPLES``), or ``GRID_POINTS`` points spread over the first layer's grid range."""
    stored = model.fit_inputs
    if stored is not None and stored.shape[0] > 0:
        rows = stored.shape[0]
        if rows <= MAX_SAMPLES:
            return stored, f"the {rows} stored fit_inputs"
        picked = np.linspace(0, rows - 1, MAX_SAMPLES).round().astype(np.int64)
        like = model.layers[0].grid
        return from_host_like(model.xp, to_numpy(stored)[picked], like), \
            f"{MAX_SAMPLES} of the {rows} stored fit_inputs"
    lo, hi = model.grid_range[0]
    rng = np.random.default_rng(0)
    line = np.linspace(lo, hi, GRID_POINTS)
    grid = np.stack([rng.permutation(line) for _ in range(model.width[0])], axis=1)
    return from_host_like(model.xp, grid, model.layers[0].grid), \
        f"{GRID_POINTS} points over the grid range {(lo, hi)} (no fit_inputs stored)"


def _evaluate(expr, symbols, columns) -> np.ndarray:
    """expr at the points columns (list of (S,) float64), as (S,) float64; NaN where it is not real."""
    import sympy

    fn = sympy.lambdify(list(symbols), expr, modules="numpy")
    with np.errstate(all="ignore"):
        out = np.asarray(fn(*columns))
    out = np.broadcast_to(out, columns[0].shape)
    if np.iscomplexobj(out):
        out = np.where(np.abs(out.imag) > 0, np.nan, out.real)
    return np.asarray(out, dtype=np.float64)


def _gap(got: np.ndarray, ref: np.ndarray, exact: np.ndarray) -> float:
    """max |got - ref| over the points where the exact expression's values ``exact`` are finite
    (outside the domain of sqrt, log, arcsin... the model's safe versions are finite and the
    formula is not: no point to compare there); infinite where got is not finite there."""
    inside = np.isfinite(exact)
    got, ref = got[inside], ref[inside]
    if not np.all(np.isfinite(got)):
        return float("inf")
    return float(np.max(np.abs(got - ref))) if got.size else 0.0


def allowance(exact, symbols, columns, ref: np.ndarray, digits: int, dtype_name: str) -> float:
    """How far a rounded version of ``exact`` (in ``symbols``, at the points ``columns``) may be
    from the model's values ``ref`` (S,): see the module docstring."""
    import sympy

    base = _evaluate(exact, symbols, columns)
    numbers = sorted(exact.atoms(sympy.Float), key=float)
    rng = np.random.default_rng(0)
    step = 0.5 * 10.0 ** -digits
    spread = 0.0
    for _ in range(PERTURBATIONS if numbers else 0):
        signs = rng.choice([-1.0, 1.0], len(numbers))
        moved = exact.xreplace({f: sympy.Float(float(f) + s * step * max(1.0, abs(float(f))))
                                for f, s in zip(numbers, signs)})
        change = np.abs(_evaluate(moved, symbols, columns) - base)
        change = change[np.isfinite(change)]
        spread = max(spread, float(np.max(change)) if change.size else 0.0)
    scale = max(1.0, float(np.max(np.abs(ref))) if ref.size else 0.0)
    return 10.0 * spread + base_tolerance(digits, dtype_name) * scale


def check_formulas(model, formulas, raw_symbols, *, nodes, round_fn, digits: int, on_mismatch: str) -> None:
    """Compare ``formulas`` (one per output, in ``raw_symbols``: the raw inputs) with the model.

    nodes: [[exact expression of node j of layer l] for l = 0 .. len(layers)]: nodes[0] are
    the input symbols (as the first layer sees them), nodes[-1] the outputs; round_fn: what
    turned an exact expression into a printed one (tidy or round_magnitudes), used to find the
    edges at fault."""
    if on_mismatch == "ignore":
        return
    samples, what = check_samples(model)
    inputs = [samples]  # every layer's input, and then the output, in the model's namespace
    for layer in model.layers:
        inputs.append(layer.forward(inputs[-1])[0])
    values = [np.asarray(to_numpy(h), dtype=np.float64) for h in inputs]
    raw = values[0]
    if model.input_scaling is not None:
        shift, scale = model.input_scaling
        raw = raw / scale + shift
    columns = list(values[0].T)

    def allowed(exact, ref):
        return allowance(exact, nodes[0], columns, ref, digits, model.dtype_name)

    problems = []
    for o, expr in enumerate(formulas):
        ref = values[-1][:, o]
        gap = _gap(_evaluate(expr, raw_symbols, list(raw.T)), ref, _evaluate(nodes[-1][o], nodes[0], columns))
        limit = allowed(nodes[-1][o], ref)
        if not gap <= limit:
            where = _culprits(model, o, inputs, values, nodes, round_fn, allowed)
            problems.append(f"output {o} differs from the model by up to {gap:.3g} (rounding to {digits} "
                            f"decimals allows {limit:.3g}); {where}")
    if not problems:
        return
    message = (f"symbolic_formula: the formula does not compute what the model computes on {what}: "
               + "; ".join(problems) + ". A larger digits or simplify=False may help.")
    if on_mismatch == "raise":
        raise FormulaMismatchError(message)
    warnings.warn(message, FormulaMismatchWarning, stacklevel=_caller_level())


def _caller_level() -> int:
    """The stacklevel of the first frame outside kanarray, so the warning points at the user's call."""
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_globals.get("__name__", "").partition(".")[0] == "kanarray":
        frame, level = frame.f_back, level + 1
    return level


def _culprits(model, o, inputs, values, nodes, round_fn, allowed) -> str:
    """Which edges' rounded formulas differ from the model: at the first layer l where a node
    in output o's cone does, the symbolic edges into that node whose own rounded contribution
    c f(a e_i + b) + d (e_i exact) does, or all of them when none does on its own."""
    columns = list(values[0].T)

    def wrong(exact, ref):
        gap = _gap(_evaluate(round_fn(exact), nodes[0], columns), ref, _evaluate(exact, nodes[0], columns))
        return not gap <= allowed(exact, ref)

    for l, cone in enumerate(_cone(model, o)):
        bad_nodes = [j for j in sorted(cone) if wrong(nodes[l + 1][j], values[l + 1][:, j])]
        if not bad_nodes:
            continue
        layer = model.layers[l]
        edge_values = np.asarray(to_numpy(layer.symbolic.edge_values(inputs[l])), dtype=np.float64)
        groups, found = layer.node_groups(), []
        for j in bad_nodes:
            into = [(i, s, layer.symbolic.names[i][s]) for s in groups[j] for i in range(layer.in_dim)
                    if layer.symbolic.names[i][s]]
            bad = [(i, s, name) for i, s, name in into
                   if wrong(_edge_expr(layer, i, s, nodes[l][i]), edge_values[i, :, s])]
            found += [f"edge (layer {l}, input {i}, output {s}) {name!r}" for i, s, name in (bad or into)]
        return "the rounded formula goes wrong at " + ", ".join(found)
    return "each layer's rounded formula agrees: the substitution of the raw inputs does not"


def _cone(model, o) -> list:
    """[the nodes of layer l + 1 that output o depends on through symbolic edges, per layer l]."""
    cone = [set() for _ in model.layers]
    cone[-1] = {o}
    for l in range(len(model.layers) - 1, 0, -1):
        layer = model.layers[l]
        names = layer.symbolic.names
        groups = layer.node_groups()
        cone[l - 1] = {i for i in range(layer.in_dim) for j in cone[l] for s in groups[j] if names[i][s] is not None}
    return cone


def _edge_expr(layer, i, j, source):
    """The exact expression c f(a source + b) + d of the layer's edge (i, j)."""
    import sympy

    a, b, c, d = (sympy.Float(float(v)) for v in np.asarray(to_numpy(layer.symbolic.affine), dtype=np.float64)[i, j])
    return c * get_function(layer.symbolic.names[i][j]).sympy_fn(a * source + b) + d
