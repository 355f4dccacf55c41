"""Input validation shared by the public entry points.  Every check runs before any state
changes, and every error says what was wrong and what was expected."""

from __future__ import annotations

import math
import operator

import numpy as np

from ._namespace import backend_name, namespace_of

_NDARRAY = np.ndarray

__all__ = ["as_batch", "as_labels", "check_width", "check_positive_int", "check_number", "check_grid", "check_order",
           "check_grid_range", "check_seed", "check_base_fun", "check_bias_trainable", "check_init_constant",
           "check_knots", "MAX_GRID", "MAX_ORDER", "MAX_INIT_CONSTANT", "SEED_LIMIT"]

#: the largest G the constructor and refine accept: the initialization and refine solve dense
#: least-squares problems per input whose time grows as G**3 (G = 1000: 0.5 s, 3000: 11 s, 5000:
#: about a minute per input on one core); loaded models are not limited (loading fits nothing)
MAX_GRID = 5000
#: the largest spline order k: KANs use small orders (pykan: k = 3), and every basis evaluation
#: and fit grows with k (k + 1 bases per point through a k-step recursion, k + 1 points per interval)
MAX_ORDER = 20
#: the largest magnitude of noise_scale, scale_base_mu and scale_base_sigma (pykan's defaults:
#: 0.3, 0, 1); larger initial scales make the outputs of a few layers overflow
MAX_INIT_CONSTANT = 1e6
#: seeds are non-negative integers below this (numpy's SeedSequence takes them; the checkpoint
#: stores them in JSON)
SEED_LIMIT = 2**128


def check_positive_int(value, name: str, minimum: int = 1) -> int:
    try:
        if isinstance(value, bool):
            raise TypeError
        value = operator.index(value)  # (an array that is not one integer refuses too)
    except TypeError:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}") from None
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value}")
    return value


def check_number(name: str, value, *, minimum: float = 0.0, strict: bool = False, below: float | None = None,
                 maximum: float | None = None) -> float:
    """A finite real number >= minimum (> minimum if strict, < below and <= maximum if given) as
    a float, else ValueError.  Booleans and strings are refused, not converted."""
    try:
        if isinstance(value, (bool, str, bytes)):
            raise TypeError
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    ok = (math.isfinite(v) and (v > minimum if strict else v >= minimum) and (below is None or v < below)
          and (maximum is None or v <= maximum))
    if not ok:
        rel = ">" if strict else ">="
        upper = (f" and < {below}" if below is not None else "") + (f" and <= {maximum}" if maximum is not None else "")
        raise ValueError(f"{name} must be a finite number {rel} {minimum}{upper}, got {value!r}")
    return v


def check_grid(value, name: str = "grid") -> int:
    """G, the number of grid intervals: an integer from 1 to MAX_GRID."""
    g = check_positive_int(value, name)
    if g > MAX_GRID:
        raise ValueError(f"{name} must be an integer from 1 to {MAX_GRID}, got {g}: the initial and refined spline "
                         f"fits solve dense least-squares problems whose time grows as G**3 (about a minute per input "
                         f"at G = {MAX_GRID})")
    return g


def check_order(value, name: str = "k") -> int:
    """k, the spline order: an integer from 0 to MAX_ORDER."""
    k = check_positive_int(value, name, minimum=0)
    if k > MAX_ORDER:
        raise ValueError(f"{name} must be an integer from 0 to {MAX_ORDER}, got {k}: KANs use small orders (pykan: "
                         "k = 3), and every basis evaluation and fit grows with k")
    return k


def check_grid_range(r, name: str, *, num: int, k: int, dtype) -> tuple[float, float]:
    """(lo, hi) of a layer's initial grid as floats: finite, lo < hi, the extended grid (k more
    intervals of (hi - lo) / num on each side) within +-sqrt of the dtype's largest number and the
    interval at least its reciprocal, so the spline arithmetic (differences of knots and inputs,
    their reciprocals and products) cannot overflow, and the knots distinct in the dtype.
    dtype: a NumPy dtype or its name."""
    try:
        if isinstance(r, (str, bytes)):
            raise TypeError
        lo, hi = (float(v) for v in r)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair (lo, hi), got {r!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"{name} must be finite with lo < hi, got {r!r}")
    info = np.finfo(np.dtype(dtype))
    bound = math.sqrt(float(info.max))
    span = hi - lo
    ends = max(abs(lo), abs(hi)) + k * span / num if math.isfinite(span) else math.inf
    if not ends <= bound:
        raise ValueError(f"{name} = {r!r} is too wide for {np.dtype(dtype).name}: the grid extended by k = {k} "
                         f"intervals on each side must lie within +-{bound:.3g}")
    step = span / num
    if not (step > float(info.eps) * 4 * max(abs(lo), abs(hi)) and step >= 1 / bound):
        raise ValueError(f"{name} = {r!r} is too narrow for {num} intervals in {np.dtype(dtype).name}: its knots "
                         "would not be distinct")
    return lo, hi


def check_seed(seed):
    """None (a fresh random initialization) or an integer 0 <= seed < SEED_LIMIT, as an int."""
    if seed is None:
        return None
    if isinstance(seed, bool) or not hasattr(type(seed), "__index__"):
        raise ValueError(f"seed must be a non-negative integer (or None), got {seed!r}")
    value = operator.index(seed)
    if not 0 <= value < SEED_LIMIT:
        raise ValueError(f"seed must be a non-negative integer below 2**128 (or None), got {value}")
    return value


def check_base_fun(base_fun, known) -> str:
    """base_fun, a name among ``known`` (``base.BASE_FUNCTIONS``, passed in: this module sits
    below the core)."""
    if not isinstance(base_fun, str) or base_fun not in known:
        raise ValueError(f"base_fun must be one of {sorted(known)}, got {base_fun!r}")
    return base_fun


def check_bias_trainable(value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"bias_trainable must be True or False, got {value!r}")
    return bool(value)


def check_init_constant(name: str, value) -> float:
    """noise_scale, scale_base_mu, scale_base_sigma: a finite number of magnitude <= MAX_INIT_CONSTANT."""
    v = check_number(name, value, minimum=-math.inf)
    if abs(v) > MAX_INIT_CONSTANT:
        raise ValueError(f"{name} must have magnitude at most {MAX_INIT_CONSTANT:g} (pykan's defaults: noise_scale "
                         f"0.3, scale_base_mu 0, scale_base_sigma 1; larger initial scales overflow), got {value!r}")
    return v


def check_knots(grid, name: str) -> None:
    """A layer's knots, a host array (n, L): finite, non-decreasing along each row (repeated
    knots are allowed: ``update_grid(grid_eps=0)`` makes them from tied samples, and the bases
    treat them as zero-width intervals), and each row spanning a positive width."""
    grid = np.asarray(grid)
    if grid.ndim != 2 or grid.shape[1] < 2:
        raise ValueError(f"{name} must be a 2-d array of knots, got shape {grid.shape}")
    if not np.all(np.isfinite(grid)):
        raise ValueError(f"{name} holds NaN or infinite knots")
    steps = np.diff(grid, axis=1)
    if np.any(steps < 0):
        row, col = (int(v) for v in np.argwhere(steps < 0)[0])
        raise ValueError(f"{name}: the knots of row {row} decrease at position {col + 1} "
                         f"({grid[row, col]!r} then {grid[row, col + 1]!r}); knots must be non-decreasing")
    if np.any(grid[:, -1] <= grid[:, 0]):
        row = int(np.argwhere(grid[:, -1] <= grid[:, 0])[0, 0])
        raise ValueError(f"{name}: the knots of row {row} are all equal; a grid must span a positive width")


def check_width(width) -> list[int]:
    if isinstance(width, (str, bytes)) or not hasattr(width, "__len__"):
        raise ValueError(f"width must be a list of layer sizes such as [2, 5, 1], got {width!r}")
    width = list(width)
    if len(width) < 2:
        raise ValueError(f"width needs at least two entries (inputs and outputs), got {width}")
    for i, w in enumerate(width):
        if isinstance(w, (list, tuple)):
            raise ValueError(
                f"width[{i}] = {w!r}: multiplication nodes (pykan's [n, m] entries) are not supported; "
                "give plain integers"
            )
        check_positive_int(w, f"width[{i}]")
    return [int(w) for w in width]


def _in_namespace(a, xp, name: str, expected: str):
    """a as an array of namespace xp: lists and scalars are converted; an array of another
    namespace is refused (no silent host/device moves)."""
    ns = xp if type(a) is _NDARRAY and xp.__name__ == "array_api_compat.numpy" else namespace_of(a)
    if ns is None:
        try:
            return xp.asarray(a)
        except Exception as exc:
            raise TypeError(f"{name} must be {expected}, got {type(a).__name__}") from exc
    if ns.__name__ != xp.__name__:
        raise TypeError(
            f"{name} is a {backend_name(ns)} array but the model is on backend "
            f"{backend_name(xp)!r}: convert {name} to {backend_name(xp)} or move the model with "
            f"model.to({backend_name(ns)!r})"
        )
    return a


def as_batch(a, *, xp, dtype, n_features: int, name: str):
    """Validate a (batch, n_features) array and return it in the model's dtype.

    Lists and Python scalars are converted; arrays must already be in namespace ``xp``
    (no silent host/device moves).  Integer and boolean arrays are cast to ``dtype``.
    """
    a = _in_namespace(a, xp, name, f"an array of shape (batch, {n_features})")
    if a.ndim != 2 or a.shape[1] != n_features:
        hint = f" (use {name}.reshape(-1, 1) for a single column)" if a.ndim == 1 and n_features == 1 else ""
        raise ValueError(f"{name} must have shape (batch, {n_features}), got shape {tuple(a.shape)}{hint}")
    if a.shape[0] == 0:
        raise ValueError(f"{name} must hold at least one sample, got shape {tuple(a.shape)}")
    if a.dtype != dtype:
        if xp.isdtype(a.dtype, "complex floating"):
            raise TypeError(f"{name} has complex dtype {a.dtype}; expected real numbers")
        if not xp.isdtype(a.dtype, ("bool", "integral", "real floating")):
            raise TypeError(f"{name} has dtype {a.dtype}; expected a real numeric dtype")
        a = xp.astype(a, dtype)
    finite = xp.isfinite(a)
    if not bool(xp.all(finite)):
        bad = int(xp.sum(xp.astype(~finite, xp.int64)))
        raise ValueError(f"{name} contains {bad} NaN or infinite value(s); expected finite numbers")
    return a


def as_labels(y, *, xp, batch: int, n_classes: int):
    """Validate class labels: integers in [0, n_classes) of shape (batch,) or (batch, 1).

    Floating arrays holding whole numbers are accepted; returns an int64 array (batch,).
    """
    y = _in_namespace(y, xp, "y", "an array of class labels")
    if y.ndim == 2 and y.shape[1] == 1:
        y = xp.reshape(y, (-1,))
    if y.ndim != 1 or y.shape[0] != batch:
        raise ValueError(
            f"y must hold one class label per sample for loss='cross_entropy': shape ({batch},) or ({batch}, 1), "
            f"got {tuple(y.shape)}"
        )
    if xp.isdtype(y.dtype, "real floating"):
        if not bool(xp.all(xp.isfinite(y))) or not bool(xp.all(y == xp.round(y))):
            raise ValueError("y must hold whole-number class labels for loss='cross_entropy'; got non-integer values")
    elif not xp.isdtype(y.dtype, ("integral", "bool")):
        raise TypeError(f"y has dtype {y.dtype}; expected integer class labels")
    y = xp.astype(y, xp.int64)
    if bool(xp.any(y < 0)) or bool(xp.any(y >= n_classes)):
        raise ValueError(
            f"class labels must lie in [0, {n_classes}) for a model with {n_classes} outputs; "
            f"got values from {int(xp.min(y))} to {int(xp.max(y))}"
        )
    return y
