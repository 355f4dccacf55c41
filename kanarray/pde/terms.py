"""One term of a physics-informed loss: a sympy expression in the inputs, the outputs and their
derivatives (up to second order), compiled once into array functions (sympy imported on use).

The expression's *quantities* -- an output u_o, or its derivative along one or two inputs, on
point set j -- become placeholder symbols q_k.  The residual r = E(inputs, data, q) and each
partial dE/dq_k (sympy's ``diff``) are compiled by ``kanarray.sympy_arrays``; the gradient of
weight * mean(r^2) reaches the network's jets as dL/dq_k = 2 weight r dE/dq_k / N.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ..jets.rule import Directions

__all__ = ["Quantity", "CompiledTerm", "compile_term", "AT_PREFIX", "check_points", "channel_of", "finite_weight"]

AT_PREFIX = "_kanarray_at"  # on(expr, j) wraps expr in the sympy function _kanarray_at{j}


class Quantity(NamedTuple):
    """output: its index; inputs: the (sorted) input indices it is differentiated along (() for the
    value, (a,) first, (a, b) second); point_set: which of the term's point sets."""

    output: int
    inputs: tuple
    point_set: int


class CompiledTerm(NamedTuple):
    """quantities (K); specs: per point set its ``Directions``; residual(xp, *arrays) and partials
    [dE/dq_k] as array functions of (inputs columns of point set 0, data, q_0 .. q_K-1)."""

    quantities: tuple
    specs: tuple
    residual: object
    partials: tuple
    data_symbols: tuple


def check_points(points, n_inputs: int, what: str) -> np.ndarray:
    """points as a float64 host array (N, n_inputs), N >= 1, finite; else ValueError."""
    try:
        arr = np.asarray(points if not hasattr(points, "__array_namespace__") else np.asarray(points))
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be an array of shape (N, {n_inputs}), got {type(points).__name__}") from None
    if arr.dtype.kind not in "iuf":
        raise ValueError(f"{what} must hold real numbers, got dtype {arr.dtype}")
    if arr.ndim != 2 or arr.shape[1] != n_inputs or arr.shape[0] < 1:
        raise ValueError(f"{what} must have shape (N, {n_inputs}) with N >= 1 (one column per input), "
                         f"got shape {arr.shape}")
    arr = arr.astype(np.float64)
    bad = ~np.all(np.isfinite(arr), axis=1)
    if bad.any():
        rows = np.nonzero(bad)[0]
        raise ValueError(f"{what} hold NaN or infinite values in {rows.size} row(s), the first at row {rows[0]}")
    return arr


def _name(e) -> str:
    return str(e)


def _quantities(expr, inputs, outputs, point_set: int, found: dict, where: str):
    """expr with every output and output derivative replaced by its placeholder (added to found:
    Quantity -> Symbol)."""
    import sympy
    from sympy.core.function import AppliedUndef

    index_in = {s: i for i, s in enumerate(inputs)}
    out_of = {u: o for o, u in enumerate(outputs)}

    def placeholder(q):
        if q not in found:
            found[q] = sympy.Symbol(f"_q{len(found)}", real=True)  # real: diff(Abs(q), q) = sign(q)
        return found[q]

    mapping = {}
    for d in expr.atoms(sympy.Derivative):
        if d.expr not in out_of:
            raise ValueError(f"{where}: {d} differentiates {d.expr}, which is not one of the outputs "
                             f"{[_name(u) for u in outputs]}")
        axes = []
        for s, count in d.variable_count:
            if s not in index_in:
                raise ValueError(f"{where}: {d} differentiates along {s}, which is not one of the inputs "
                                 f"{[_name(s) for s in inputs]}")
            axes += [index_in[s]] * int(count)
        if len(axes) > 2:
            raise ValueError(f"{where}: {d} is a derivative of order {len(axes)}; the terms take derivatives up to "
                             "second order")
        mapping[d] = placeholder(Quantity(out_of[d.expr], tuple(sorted(axes)), point_set))
    expr = expr.xreplace(mapping)
    mapping = {}
    for f in expr.atoms(AppliedUndef):
        if f.func.__name__.startswith(AT_PREFIX):
            continue
        if f in out_of:
            mapping[f] = placeholder(Quantity(out_of[f], (), point_set))
            continue
        same = [u for u in outputs if u.func == f.func]
        if same:
            raise ValueError(f"{where}: {f} takes other arguments than the output {same[0]}; an output appears as "
                             f"{same[0]}, evaluated at the term's points (for a condition linking two point sets, "
                             "use kanarray.pde.on(expr, j) with a list of point sets)")
        raise ValueError(f"{where}: unknown function {f}; the outputs are {[_name(u) for u in outputs]}")
    return expr.xreplace(mapping)


def compile_term(expr, inputs, outputs, n_sets: int, data_symbols, where: str) -> CompiledTerm:
    """Check and compile one term (see the module docstring); ValueError naming what is wrong."""
    import sympy

    from ..sympy_arrays import array_function

    try:
        expr = sympy.sympify(expr)
    except (sympy.SympifyError, TypeError) as exc:
        raise ValueError(f"{where}: the expression must be a sympy expression, got {expr!r} ({exc})") from None
    if not isinstance(expr, sympy.Expr):
        raise ValueError(f"{where}: the expression must be a sympy expression (an equation's residual, lhs - rhs), "
                         f"got {type(expr).__name__} {expr}")
    found: dict = {}
    wrapped = {}
    for a in expr.atoms(sympy.Function):
        name = type(a).__name__
        if name.startswith(AT_PREFIX):
            j = int(name[len(AT_PREFIX):])
            if j >= n_sets:
                raise ValueError(f"{where}: on(..., {j}) refers to point set {j}, but the term has {n_sets} point "
                                 "set(s)")
            inner = a.args[0]
            if any(type(f).__name__.startswith(AT_PREFIX) for f in inner.atoms(sympy.Function)):
                raise ValueError(f"{where}: on(...) cannot be nested: {a}")
            replaced = _quantities(inner, inputs, outputs, j, found, where)
            held = sorted(map(str, replaced.free_symbols & set(inputs)))  # inputs outside the outputs
            if j > 0 and held:
                raise ValueError(f"{where}: on(..., {j}) holds the inputs {held}, but a term's inputs are the columns "
                                 f"of its first point set; give values on set {j} as data instead")
            wrapped[a] = replaced
    expr = expr.xreplace(wrapped)
    expr = _quantities(expr, inputs, outputs, 0, found, where)
    allowed = set(inputs) | set(data_symbols) | set(found.values())
    unknown = sorted((_name(s) for s in expr.free_symbols - allowed))
    if unknown:
        raise ValueError(f"{where}: unknown symbol(s) {unknown}; a term may use the inputs "
                         f"{[_name(s) for s in inputs]}, the outputs and their derivatives, and the symbols given "
                         f"values in its data ({[_name(s) for s in data_symbols]})")
    quantities = tuple(found)
    symbols = list(inputs) + list(data_symbols) + [found[q] for q in quantities]
    residual = array_function(expr, symbols)
    partials = tuple(array_function(sympy.diff(expr, found[q]), symbols) for q in quantities)
    specs = []
    for j in range(n_sets):
        mine = [q for q in quantities if q.point_set == j]
        dirs = tuple(sorted({a for q in mine for a in q.inputs}))
        pairs = tuple(sorted({(dirs.index(q.inputs[0]), dirs.index(q.inputs[1])) for q in mine if len(q.inputs) == 2}))
        specs.append(Directions(dirs, pairs, len(inputs)))
    return CompiledTerm(quantities, tuple(specs), residual, partials, tuple(data_symbols))


def channel_of(q: Quantity, spec: Directions) -> int:
    """The jet channel holding quantity q on its point set's spec."""
    if not q.inputs:
        return 0
    if len(q.inputs) == 1:
        return 1 + spec.dirs.index(q.inputs[0])
    a, b = (spec.dirs.index(i) for i in q.inputs)
    return 1 + len(spec.dirs) + spec.pairs.index((a, b))


def finite_weight(weight, where: str) -> float:
    if isinstance(weight, bool) or not isinstance(weight, (int, float, np.integer, np.floating)):
        raise ValueError(f"{where}: weight must be a number >= 0, got {weight!r}")
    weight = float(weight)
    if not (math.isfinite(weight) and weight >= 0):
        raise ValueError(f"{where}: weight must be a finite number >= 0, got {weight!r}")
    return weight
