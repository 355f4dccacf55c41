"""Input validation shared by the public entry points.  Every check runs before any state
changes, and every error says what was wrong and what was expected."""

from __future__ import annotations

import math
import operator

import numpy as np

from ._namespace import backend_name, namespace_of

_NDARRAY = np.ndarray

__all__ = ["as_batch", "as_labels", "check_width", "check_positive_int", "check_number"]


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
        hint = " (use x.reshape(-1, 1) for a single feature)" if a.ndim == 1 and n_features == 1 else ""
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
