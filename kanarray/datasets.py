"""Datasets for fitting and for the paper's experiments, generated locally (nothing is downloaded).

``make_dataset(f, n_var, ranges, ...)`` is pykan's ``create_dataset``: inputs drawn uniformly
from per-variable ranges, labels f(x).  ``TOY`` holds the paper's toy functions (section 3.1),
each with its KAN shape and ground-truth sympy formula; ``toy_dataset(name)`` samples one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ._namespace import resolve_backend

__all__ = ["make_dataset", "Dataset", "TOY", "toy_dataset"]


def _ranges(ranges, n_var: int) -> np.ndarray:
    """(n_var, 2) bounds from one (lo, hi) pair or one pair per variable."""
    arr = np.asarray(ranges, dtype=np.float64)
    if arr.shape == (2,):
        arr = np.tile(arr, (n_var, 1))
    if arr.shape != (n_var, 2):
        raise ValueError(f"ranges must be one (lo, hi) pair or {n_var} of them (one per variable), "
                         f"got shape {np.asarray(ranges).shape}")
    if not np.all(np.isfinite(arr)) or np.any(arr[:, 0] >= arr[:, 1]):
        raise ValueError(f"every range must be finite with lo < hi, got {arr.tolist()}")
    return arr


def _count(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def make_dataset(f: Callable, n_var: int, ranges=(-1, 1), n_train: int = 1000, n_test: int = 1000, seed: int = 0,
                 backend="numpy", dtype: str = "float64") -> dict:
    """Inputs uniform on the ranges and labels f(x), for training and for testing.

    f: takes x (N, n_var) as a NumPy float64 array and returns (N,) or (N, n_out).  ranges: one
    (lo, hi) for every variable or one pair per variable.  The train and test inputs are
    independent draws from ``numpy.random.default_rng(seed)``.  Returns
    {"train_input" (n_train, n_var), "train_label" (n_train, n_out), "test_input", "test_label"}
    on ``backend`` in ``dtype``.  Raises ValueError for bad arguments and for labels that are
    not finite or not of the expected shape.
    """
    n_var = _count(n_var, "n_var")
    n_train, n_test = _count(n_train, "n_train"), _count(n_test, "n_test")
    bounds = _ranges(ranges, n_var)
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    xp = resolve_backend(backend)
    rng = np.random.default_rng(seed)
    out = {}
    for part, n in (("train", n_train), ("test", n_test)):
        x = bounds[:, 0] + (bounds[:, 1] - bounds[:, 0]) * rng.random((n, n_var))
        with np.errstate(all="ignore"):  # non-finite labels get the error below
            y = np.asarray(f(x), dtype=np.float64)
        if y.ndim == 1:
            y = y[:, None]
        if y.ndim != 2 or y.shape[0] != n:
            raise ValueError(f"f must return ({n},) or ({n}, n_out) for {n} inputs, got shape {y.shape}")
        if not np.all(np.isfinite(y)):
            raise ValueError(f"f returned {int(np.sum(~np.isfinite(y)))} non-finite labels on the {part} inputs; "
                             "narrow the ranges to where f is defined")
        out[f"{part}_input"] = xp.asarray(x.astype(dtype))
        out[f"{part}_label"] = xp.asarray(y.astype(dtype))
    return out


@dataclass(frozen=True)
class Dataset:
    """A target function with what the paper trains on it.

    f: NumPy (N, n_var) -> (N,); formula(): the ground truth as a sympy expression in the
    symbols x_1 ... x_n (sympy is imported only then); shape: the paper's KAN shape."""

    name: str
    n_var: int
    f: Callable
    formula: Callable
    shape: tuple
    ranges: tuple = (-1.0, 1.0)


def _j0(x):
    from scipy.special import j0

    return j0(20 * x[:, 0])


def _sym(n):
    import sympy

    return sympy, sympy.symbols(" ".join(f"x_{i + 1}" for i in range(n)), real=True, seq=True)


def _formula_j0():
    sp, x = _sym(1)
    return sp.besselj(0, 20 * x[0])


def _formula_exp_sin():
    sp, (x1, x2) = _sym(2)
    return sp.exp(sp.sin(sp.pi * x1) + x2**2)


def _formula_product():
    sp, (x1, x2) = _sym(2)
    return x1 * x2


def _formula_mean_sin2():
    sp, xs = _sym(100)
    return sp.exp(sp.Add(*[sp.sin(sp.pi * xi / 2) ** 2 for xi in xs]) / 100)


def _formula_two_sines():
    sp, (x1, x2, x3, x4) = _sym(4)
    return sp.exp((sp.sin(sp.pi * (x1**2 + x2**2)) + sp.sin(sp.pi * (x3**2 + x4**2))) / 2)


TOY = {d.name: d for d in (
    Dataset("j0", 1, _j0, _formula_j0, (1, 1)),
    Dataset("exp_sin", 2, lambda x: np.exp(np.sin(np.pi * x[:, 0]) + x[:, 1] ** 2), _formula_exp_sin, (2, 1, 1)),
    Dataset("product", 2, lambda x: x[:, 0] * x[:, 1], _formula_product, (2, 2, 1)),
    Dataset("mean_sin2_100d", 100, lambda x: np.exp(np.mean(np.sin(np.pi * x / 2) ** 2, axis=1)), _formula_mean_sin2,
            (100, 1, 1)),
    Dataset("two_sines", 4, lambda x: np.exp(0.5 * (np.sin(np.pi * (x[:, 0] ** 2 + x[:, 1] ** 2))
                                                    + np.sin(np.pi * (x[:, 2] ** 2 + x[:, 3] ** 2)))),
            _formula_two_sines, (4, 4, 2, 1)),
)}
"""The paper's toy functions (section 3.1) with its shapes, inputs uniform on [-1, 1]."""


def toy_dataset(name: str, **kwargs) -> dict:
    """``make_dataset`` for ``TOY[name]``; keyword arguments go to make_dataset."""
    if name not in TOY:
        raise ValueError(f"unknown toy function {name!r}; choose from {sorted(TOY)}")
    d = TOY[name]
    return make_dataset(d.f, d.n_var, d.ranges, **kwargs)
