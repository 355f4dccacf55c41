"""``Problem``: a physics-informed loss over sympy terms, its value, residuals and gradients.

    loss = sum over terms t of weight_t * mean over the term's points of r_t^2

Each term's residual r_t is a sympy expression (``terms``) evaluated on its points from the
network's input jets (``kanarray.jets``): one jet pass per point set, with only the directions and
pairs that set's quantities need, and one reverse pass per set for the gradients.  The model is a
``KAN`` or the ``MLP`` baseline; the scalar losses are the only values that leave the device.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .. import jets
from .._namespace import device_of, to_numpy
from .terms import AT_PREFIX, channel_of, check_points, compile_term, finite_weight

__all__ = ["Term", "Problem", "on", "PhysicsEvaluation"]


def on(expr, point_set: int):
    """expr (outputs and their derivatives) evaluated on a term's point set ``point_set`` (0, 1, ...):
    for conditions linking points, e.g. periodicity ``on(u, 0) - on(u, 1)`` with points [left, right]."""
    import sympy

    if isinstance(point_set, bool) or not isinstance(point_set, int) or point_set < 0:
        raise ValueError(f"point_set must be an int >= 0, got {point_set!r}")
    return sympy.Function(f"{AT_PREFIX}{point_set}")(sympy.sympify(expr))


class Term:
    """One term: expr (sympy, in the inputs, the outputs and their derivatives up to second order, and
    the ``data`` symbols), points (N, n_inputs) or a list of point sets of the same N (see ``on``),
    weight >= 0, data {sympy Symbol: values (N,) or a number}, name (the history's key)."""

    def __init__(self, expr, points, weight: float = 1.0, data=None, name: str | None = None):
        self.expr, self.points, self.weight, self.data, self.name = expr, points, weight, data, name

    def __repr__(self) -> str:
        return f"Term({self.expr}, weight={self.weight}, name={self.name!r})"


class PhysicsEvaluation(NamedTuple):
    """objective (0-d), terms (a 0-d mean squared residual per term), grads (by parameter name) or None."""

    objective: object
    terms: list
    grads: dict | None


class _Compiled(NamedTuple):
    name: str
    code: object
    points: list  # host float64 (N, n) per point set
    weight: float
    data: list  # host float64 (N,) per data symbol


def _probe(code, points, values, where: str) -> None:
    """Evaluate a compiled term and its partials once on NumPy (two points, quantities 0.5), so that an
    expression the array namespace cannot evaluate fails here, naming the term, not during training."""
    import array_api_compat.numpy as xp

    rows = points[0][:2]
    args = ([np.ascontiguousarray(rows[:, i]) for i in range(rows.shape[1])] + [v[:2] for v in values]
            + [np.full(rows.shape[0], 0.5) for _ in code.quantities])
    try:
        with np.errstate(all="ignore"):
            for fn in (code.residual, *code.partials):
                fn(xp, *args)
    except Exception as exc:  # noqa: BLE001 - any failure of the printed code is the expression's
        raise ValueError(f"{where}: the expression (or its derivative with respect to an output) cannot be "
                         f"evaluated on arrays: {type(exc).__name__}: {exc}") from None


def _as_term(t, i) -> Term:
    if isinstance(t, Term):
        return t
    if isinstance(t, (tuple, list)) and 2 <= len(t) <= 4:
        return Term(*t)
    raise ValueError(f"term {i} must be a kanarray.pde.Term or a tuple (expr, points[, weight[, data]]), got {t!r}")


class Problem:
    """A physics-informed problem for ``model.fit(problem, ...)``.

    inputs: sympy Symbols, one per network input, in column order; outputs: sympy functions of exactly
    those inputs (``sympy.Function("u")(x, y)``), one per network output; terms: ``Term`` or tuples
    (expr, points, weight[, data]).  Everything is checked here (ValueError naming the term)."""

    is_physics_problem = True  # what ``KAN.fit`` recognises (without importing this module)

    def __init__(self, inputs, outputs, terms):
        import sympy
        from sympy.core.function import AppliedUndef

        inputs, outputs, terms = list(inputs), list(outputs), list(terms)
        if not inputs or not all(isinstance(s, sympy.Symbol) for s in inputs) or len(set(inputs)) != len(inputs):
            raise ValueError(f"inputs must be distinct sympy Symbols (one per network input), got {inputs}")
        if not outputs:
            raise ValueError("outputs must name at least one sympy function of the inputs, e.g. "
                             "sympy.Function('u')(x, y)")
        for u in outputs:
            if not isinstance(u, AppliedUndef) or tuple(u.args) != tuple(inputs):
                raise ValueError(f"each output must be an undefined sympy function applied to the inputs "
                                 f"{tuple(inputs)} in that order, e.g. sympy.Function('u')(*inputs); got {u}")
        if len({u.func for u in outputs}) != len(outputs):
            raise ValueError(f"the outputs must be distinct functions, got {outputs}")
        if not terms:
            raise ValueError("a problem needs at least one term")
        self.inputs, self.outputs = tuple(inputs), tuple(outputs)
        self._terms = [self._compile(_as_term(t, i), i) for i, t in enumerate(terms)]
        names = [t.name for t in self._terms]
        if len(set(names)) != len(names):
            raise ValueError(f"term names must be distinct, got {names}")
        self._device_cache: dict = {}

    def _compile(self, term: Term, i: int) -> _Compiled:
        import sympy

        name = f"term{i}" if term.name is None else term.name
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"term {i}: name must be an identifier (a history key), got {name!r}")
        where = f"term {name!r}"
        n = len(self.inputs)
        sets = term.points if isinstance(term.points, (list, tuple)) else [term.points]
        if not sets:
            raise ValueError(f"{where}: needs at least one point set")
        points = [check_points(p, n, f"{where}: point set {j}" if len(sets) > 1 else f"{where}: points")
                  for j, p in enumerate(sets)]
        N = points[0].shape[0]
        if any(p.shape[0] != N for p in points):
            raise ValueError(f"{where}: its point sets must have the same number of rows, got "
                             f"{[p.shape[0] for p in points]}")
        data = dict(term.data or {})
        symbols, values = [], []
        for s, v in data.items():
            if not isinstance(s, sympy.Symbol) or s in self.inputs:
                raise ValueError(f"{where}: data keys must be sympy Symbols other than the inputs, got {s!r}")
            arr = np.asarray(to_numpy(v) if hasattr(v, "__array_namespace__") else v, dtype=np.float64)
            if arr.ndim == 0:
                arr = np.full(N, float(arr))
            if arr.shape not in ((N,), (N, 1)) or not np.all(np.isfinite(arr)):
                raise ValueError(f"{where}: data for {s} must be {N} finite values (one per point), got shape "
                                 f"{arr.shape}" + ("" if np.all(np.isfinite(arr)) else " with NaN or infinite values"))
            symbols.append(s)
            values.append(arr.reshape(N))
        code = compile_term(term.expr, self.inputs, self.outputs, len(points), symbols, where)
        _probe(code, points, values, where)
        return _Compiled(name, code, points, finite_weight(term.weight, where), values)

    # -- facts ------------------------------------------------------------------------------------
    @property
    def term_names(self) -> list:
        return [t.name for t in self._terms]

    @property
    def order(self) -> int:
        """The highest derivative order any term uses."""
        return max((spec.order for t in self._terms for spec in t.code.specs), default=0)

    def points(self) -> np.ndarray:
        """Every term's points, distinct rows, (S, n_inputs) host float64: the collocation points of grid updates."""
        return np.unique(np.concatenate([p for t in self._terms for p in t.points]), axis=0)

    def check_model(self, model) -> None:
        """ValueError unless ``model`` fits: width[0] inputs, width[-1] outputs, spline orders for the derivatives."""
        if model.width[0] != len(self.inputs) or model.width[-1] != len(self.outputs):
            raise ValueError(f"the problem has {len(self.inputs)} inputs and {len(self.outputs)} outputs, but the "
                             f"model maps {model.width[0]} -> {model.width[-1]}")
        jets.network.check_order_of(model, self.order)

    def __repr__(self) -> str:
        return f"Problem(inputs={list(self.inputs)}, outputs={list(self.outputs)}, terms={self.term_names})"

    # -- evaluation -------------------------------------------------------------------------------
    def _on_device(self, model):
        """Per term: (point sets, input columns of set 0, data) in the model's namespace and dtype."""
        xp = model.xp
        like = next(iter(model.parameters().values()))
        key = (id(xp), str(like.dtype), str(device_of(like)))
        if key not in self._device_cache:
            put = lambda a: xp.asarray(a, dtype=like.dtype, device=device_of(like))  # noqa: E731
            self._device_cache = {key: [([put(p) for p in t.points], [put(np.ascontiguousarray(t.points[0][:, i]))
                                          for i in range(len(self.inputs))], [put(v) for v in t.data],
                                          [{} for _ in t.points]) for t in self._terms]}
        return self._device_cache[key]

    def evaluate(self, model, *, grad: bool = True) -> PhysicsEvaluation:
        """The loss, each term's mean squared residual, and (grad) the loss's parameter gradients."""
        self.check_model(model)
        xp = model.xp
        total, per_term, grads = None, [], None
        for t, (sets, columns, data, caches) in zip(self._terms, self._on_device(model)):
            q_values, tapes = {}, []
            for j, spec in enumerate(t.code.specs):
                Y, tape = jets.jet_forward(model, sets[j], spec, grad=grad, cache=caches[j])
                tapes.append((Y, tape))
                for q in t.code.quantities:
                    if q.point_set == j:
                        q_values[q] = Y[channel_of(q, spec), :, q.output]
            args = columns + data + [q_values[q] for q in t.code.quantities]
            r = t.code.residual(xp, *args)
            mse = xp.mean(r * r)
            per_term.append(mse)
            total = t.weight * mse if total is None else total + t.weight * mse
            if grad:
                scale = 2.0 * t.weight / r.shape[0]
                for j, (Y, tape) in enumerate(tapes):
                    gY = self._cotangent(xp, Y, t, j, r * scale, args)
                    if gY is not None:
                        g = jets.jet_backward(tape, gY)
                        grads = g if grads is None else {k: grads[k] + g[k] for k in grads}
        if grad and grads is None:  # no term depends on the network: zero gradients
            grads = {k: xp.zeros_like(v) for k, v in model.parameters().items()}
        return PhysicsEvaluation(total, per_term, grads)

    @staticmethod
    def _cotangent(xp, Y, t, j, gr, args):
        """dL/dY (C, B, m) of point set j from dL/dr = gr (B,), or None when no quantity lives there."""
        C, B, m = Y.shape
        spec = t.code.specs[j]
        cells = {}
        for q, partial in zip(t.code.quantities, t.code.partials):
            if q.point_set != j:
                continue
            key = (channel_of(q, spec), q.output)
            g = gr * partial(xp, *args)
            cells[key] = g if key not in cells else cells[key] + g
        if not cells:
            return None
        zero = xp.zeros_like(gr)
        columns = [cells.get((c, o), zero) for c in range(C) for o in range(m)]
        return xp.permute_dims(xp.reshape(xp.stack(columns, axis=0), (C, m, B)), (0, 2, 1))

    def loss(self, model) -> float:
        """sum of weight * mean(residual^2) over the terms, as a float."""
        return float(to_numpy(self.evaluate(model, grad=False).objective))

    def term_losses(self, model) -> dict:
        """{term name: mean squared residual} as floats."""
        ev = self.evaluate(model, grad=False)
        return {t.name: float(to_numpy(v)) for t, v in zip(self._terms, ev.terms)}

    def residuals(self, model) -> dict:
        """{term name: residual at each of its points, (N,) array in the model's namespace}."""
        self.check_model(model)
        xp = model.xp
        out = {}
        for t, (sets, columns, data, caches) in zip(self._terms, self._on_device(model)):
            q_values = {}
            for j, spec in enumerate(t.code.specs):
                Y, _ = jets.jet_forward(model, sets[j], spec, grad=False, cache=caches[j])
                q_values.update({q: Y[channel_of(q, spec), :, q.output] for q in t.code.quantities if q.point_set == j})
            out[t.name] = t.code.residual(xp, *(columns + data + [q_values[q] for q in t.code.quantities]))
        return out

    def value_and_grad(self, model):
        """(loss as a 0-d array, its gradients by parameter name): the optimizers' closure."""
        ev = self.evaluate(model)
        return ev.objective, ev.grads
