"""Datasets for fitting and for the paper's experiments, generated locally (nothing is downloaded).

``make_dataset(f, n_var, ranges, ...)`` is pykan's ``create_dataset`` (which is here too, with
pykan's argument names): inputs drawn uniformly from per-variable ranges, labels f(x).  Its dict
goes to ``KAN.fit`` as it is (``fit_arguments``).  Three tables of ``Dataset`` entries, each with its KAN
shape and ground-truth sympy formula, and a sampler for each:

- ``TOY`` / ``toy_dataset(name)``: the paper's toy functions (section 3.1);
- ``SPECIAL`` / ``special_dataset(name)``: its special functions (section 3.2, scipy.special);
- ``FEYNMAN`` / ``feynman_dataset(name)``: its dimensionless Feynman equations (Table 2).

scipy and sympy are imported only when a function or formula is evaluated.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Mapping

import numpy as np

from ._namespace import resolve_backend

__all__ = ["make_dataset", "create_dataset", "fit_arguments",
           "Dataset", "TOY", "toy_dataset", "SPECIAL", "special_dataset", "FEYNMAN",
           "feynman_dataset"]


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


def create_dataset(f: Callable, n_var: int = 2, ranges=(-1, 1), train_num: int = 1000, test_num: int = 1000,
                   seed: int = 0, *, backend="numpy", dtype: str = "float64") -> dict:
    """pykan's ``create_dataset`` under its own argument names: ``make_dataset(f, n_var, ranges,
    n_train=train_num, n_test=test_num, seed=seed)``.  f takes a NumPy (N, n_var) array (write
    ``np.sin``, not ``torch.sin``); pykan's f_mode, normalize_input/label and device are not offered."""
    return make_dataset(f, n_var, ranges, n_train=train_num, n_test=test_num, seed=seed, backend=backend,
                        dtype=dtype)


_TRAIN_KEYS, _TEST_KEYS = ("train_input", "train_label"), ("test_input", "test_label")


def fit_arguments(x, y, validation) -> tuple:
    """``KAN.fit``'s (x, y, validation): as given, or, for a dataset dict as x with y None
    (pykan's ``model.fit(dataset)``), (train_input, train_label, (test_input, test_label)) -- the
    test split is the validation pair; without test keys, validation stays as given.
    ValueError for a missing y, a dict with a y, a dict missing keys, or two validation sets.  A physics
    problem (``kanarray.pde.Problem``) as x passes through: its terms are the targets."""
    if getattr(x, "is_physics_problem", False):
        if y is not None:
            raise ValueError("fit got a physics problem and y: the problem's terms are the targets; pass fit(problem)")
        return x, None, validation
    if not isinstance(x, Mapping):
        if y is None:
            raise ValueError("fit needs targets: fit(x, y), or fit(dataset) with a dict holding "
                             f"{list(_TRAIN_KEYS + _TEST_KEYS)} (make_dataset's)")
        return x, y, validation
    if y is not None:
        raise ValueError("fit got a dataset dict and y: pass fit(dataset) alone (its train_label are the targets) "
                         "or fit(x, y) with arrays")
    missing = [k for k in _TRAIN_KEYS if k not in x]
    has_test = [k in x for k in _TEST_KEYS]
    if any(has_test) and not all(has_test):
        missing += [k for k, present in zip(_TEST_KEYS, has_test) if not present]
    if missing:
        raise ValueError(f"the dataset dict lacks {missing}; expected {list(_TRAIN_KEYS)} and optionally "
                         f"{list(_TEST_KEYS)} (make_dataset's keys), got {sorted(map(str, x))}")
    if all(has_test):
        if validation is not None:
            raise ValueError("fit got validation and a dataset dict with a test split (its validation set): "
                             "pass only one")
        validation = (x["test_input"], x["test_label"])
    return x["train_input"], x["train_label"], validation


@dataclass(frozen=True)
class Dataset:
    """A target function with what the paper trains on it.

    f: NumPy (N, n_var) -> (N,); formula(): the ground truth as a sympy expression (sympy is
    imported only then) in real symbols named after ``variables``, or x_1 ... x_n where that is
    empty; shape: the KAN shape to train (the paper's); ranges: one (lo, hi) for all inputs or one
    pair per input; note: where the ranges come from; paper_rmse: the paper's test RMSE, if given."""

    name: str
    n_var: int
    f: Callable
    formula: Callable
    shape: tuple
    ranges: tuple = (-1.0, 1.0)
    variables: tuple = ()
    note: str = ""
    paper_rmse: float | None = None


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


def _sample(table: dict, kind: str, name: str, kwargs: dict) -> dict:
    if name not in table:
        raise ValueError(f"unknown {kind} {name!r}; choose from {list(table)}")
    d = table[name]
    return make_dataset(d.f, d.n_var, d.ranges, **kwargs)


def toy_dataset(name: str, **kwargs) -> dict:
    """``make_dataset`` for ``TOY[name]``; keyword arguments go to make_dataset."""
    return _sample(TOY, "toy function", name, kwargs)


def _entry(name, variables, ranges, shape, f, formula, note="", rmse=None) -> Dataset:
    """A Dataset from f(*columns) in NumPy and formula(sympy, *symbols); variables: space-separated."""
    names = tuple(variables.split())
    return Dataset(name, len(names), lambda x: f(*x.T), lambda: formula(*_sym_named(names)), tuple(shape),
                   tuple(tuple(float(b) for b in r) for r in ranges), names, note, rmse)


def _sym_named(names):
    import sympy

    return (sympy, *(sympy.Symbol(n, real=True) for n in names))


def _sc():
    import scipy.special

    return scipy.special


@lru_cache(maxsize=None)
def _jacobi_sn():
    """sympy has no Jacobi sn: an unevaluated Function ``jacobi_sn(u, m)`` that evalf computes with mpmath."""
    import mpmath
    import sympy

    class jacobi_sn(sympy.Function):  # lower case, like sympy's functions
        nargs = 2

        def _eval_evalf(self, prec):
            if not all(a.is_number for a in self.args):
                return None
            with mpmath.workprec(prec):
                u, m = (a._to_mpmath(prec) for a in self.args)
                return sympy.Expr._from_mpmath(mpmath.ellipfun("sn", u, m=m), prec)

    return jacobi_sn


def _sph_harm_re(n, m, polar, azimuth):
    sc = _sc()
    if hasattr(sc, "sph_harm_y"):
        return sc.sph_harm_y(n, m, polar, azimuth).real
    return sc.sph_harm(m, n, azimuth, polar).real  # scipy < 1.15: (order, degree, azimuth, polar)


_PI = np.pi
_ELLIP = ([(-1, 1), (0, 1)], "argument in [-1, 1], parameter m in [0, 1]")
_BESSEL = ([(0, 1), (0, 1)], "order v in [0, 1], x in [0, 1]")
_BESSEL_AWAY = ([(0, 1), (0.2, 1)], "order v in [0, 1], x in [0.2, 1] (the function diverges at x = 0)")
_LPMV = ([(0, 1), (-0.9, 0.9)], "degree v in [0, 1]; x in [-0.9, 0.9], not [-1, 1], since P_v^m(x) "
         "diverges at x = -1 for non-integer v (on [-0.99, 0.99] P_v^2 reaches 60 near -0.99 and that corner "
         "holds 92% of the label variance)")
_SPHERE = ([(0, _PI), (0, 2 * _PI)], "polar theta in [0, pi], azimuth phi in [0, 2 pi]")


def _special(name, variables, ranges_note, shape, rmse, sympy_name="", f=None, formula=None):
    """f defaults to scipy.special.<name>(a, b), formula to sympy.<sympy_name>(a, b)."""
    ranges, note = ranges_note
    return _entry(name, variables, ranges, shape, f or (lambda a, b: getattr(_sc(), name)(a, b)),
                  formula or (lambda sp, a, b: getattr(sp, sympy_name)(a, b)),
                  "our ranges (the paper gives none): " + note, rmse)


def _lpmv(m, shape, rmse):
    return _special(f"lpmv_m{m}", "v x", _LPMV, shape, rmse, f=lambda v, x: _sc().lpmv(m, v, x),
                    formula=lambda sp, v, x: sp.assoc_legendre(v, m, x))


def _sph(n, m, shape, rmse):
    return _special(f"sph_harm_m{m}_n{n}", "theta phi", _SPHERE, shape, rmse,
                    f=lambda th, ph: _sph_harm_re(n, m, th, ph),
                    formula=lambda sp, th, ph: sp.re(sp.Ynm(n, m, th, ph).expand(func=True)))


SPECIAL = {d.name: d for d in (
    _special("ellipj", "u m", _ELLIP, (2, 2, 1), 7.29e-3, f=lambda u, m: _sc().ellipj(u, m)[0],
             formula=lambda sp, u, m: _jacobi_sn()(u, m)),
    _special("ellipkinc", "phi m", _ELLIP, (2, 2, 1, 1), 1.00e-3, "elliptic_f"),
    _special("ellipeinc", "phi m", _ELLIP, (2, 2, 1, 1), 8.36e-5, "elliptic_e"),
    _special("jv", "v x", _BESSEL, (2, 2, 1), 4.93e-3, "besselj"),
    _special("yv", "v x", _BESSEL_AWAY, (2, 3, 1), 1.89e-3, "bessely"),
    _special("kv", "v x", _BESSEL_AWAY, (2, 1, 1), 4.89e-3, "besselk"),
    _special("iv", "v x", _BESSEL, (2, 4, 3, 2, 1, 1), 9.28e-3, "besseli"),
    _lpmv(0, (2, 2, 1), 5.25e-5),
    _lpmv(1, (2, 4, 1), 6.90e-4),
    _lpmv(2, (2, 2, 1), 4.88e-3),
    _sph(1, 0, (2, 1, 1), 2.21e-7),
    _sph(1, 1, (2, 2, 1), 7.86e-4),
    _sph(2, 0, (2, 1, 1), 1.95e-7),
    _sph(2, 1, (2, 2, 1), 4.70e-4),
    _sph(2, 2, (2, 2, 1), 1.12e-3),
)}
"""The paper's special functions (section 3.2) with its KAN shapes and test RMSEs, two inputs each:
ellipj sn(u|m); ellipkinc F(phi|m); ellipeinc E(phi|m); jv, yv, kv, iv (order v, x); lpmv_m{0,1,2}
the associated Legendre P_v^m(x) with the Condon-Shortley phase (degree v, x); sph_harm_m{m}_n{n}
Re Y_n^m(theta polar, phi azimuth).  Ranges are ours (see each ``note``)."""


def special_dataset(name: str, **kwargs) -> dict:
    """``make_dataset`` for ``SPECIAL[name]``; keyword arguments go to make_dataset."""
    return _sample(SPECIAL, "special function", name, kwargs)


_2PI = (0, 2 * _PI)


def _fey(name, variables, ranges, shape, f, formula, note, rmse=None):
    return _entry(name, variables, ranges, shape, f, formula, "pykan " + note, rmse)


FEYNMAN = {d.name: d for d in (
    _fey("I.6.2", "theta sigma", [(-1, 1), (0.5, 2)], (2, 2, 1),
         lambda t, s: np.exp(-t**2 / (2 * s**2)) / np.sqrt(2 * np.pi * s**2),
         lambda sp, t, s: sp.exp(-t**2 / (2 * s**2)) / sp.sqrt(2 * sp.pi * s**2), "I.6.20 ranges", 2.86e-5),
    _fey("I.6.2b", "theta theta1 sigma", [(-1.5, 1.5), (-1.5, 1.5), (0.5, 2)], (3, 4, 1),
         lambda t, t1, s: np.exp(-(t - t1)**2 / (2 * s**2)) / np.sqrt(2 * np.pi * s**2),
         lambda sp, t, t1, s: sp.exp(-(t - t1)**2 / (2 * s**2)) / sp.sqrt(2 * sp.pi * s**2), "I.6.20b ranges"),
    _fey("I.9.18", "a b c d e f", [(-1, 1), (-1, -0.5), (-1, -0.5), (0.5, 1), (-1, -0.5), (0.5, 1)], (6, 4, 1, 1),
         lambda a, b, c, d, e, f: a / ((b - 1)**2 + (c - d)**2 + (e - f)**2),
         lambda sp, a, b, c, d, e, f: a / ((b - 1)**2 + (c - d)**2 + (e - f)**2),
         "I.9.18 ranges: a from G; b, c, e from x1, y1, z1 ([-1, -0.5]); d, f from y2, z2 ([0.5, 1])", 8.62e-3),
    _fey("I.12.11", "a theta", [(-1, 1), _2PI], (2, 2, 1),
         lambda a, t: 1 + a * np.sin(t), lambda sp, a, t: 1 + a * sp.sin(t),
         "I.12.11 ranges: a = Bv/E_f from B; theta kept"),
    _fey("I.13.12", "a b", [(0, 1), (0.5, 2)], (2, 2, 1),
         lambda a, b: a * (1 / b - 1), lambda sp, a, b: a * (1 / b - 1),
         "I.13.12 ranges: a = G m1 m2/r1 from G; b = r2/r1 from r2"),
    _fey("I.15.3x", "a b", [(-1, 1), (-0.99, 0.99)], (2, 1, 1),
         lambda a, b: (1 - a) / np.sqrt(1 - b**2), lambda sp, a, b: (1 - a) / sp.sqrt(1 - b**2),
         "I.15.3x ranges: a = ut/x from u; b = u/c from u, narrowed from [-1, 1] to [-0.99, 0.99] "
         "(1/sqrt(1 - b^2) is singular at |b| = 1; 0.99 as pykan's I.26.2 bounds n)"),
    _fey("I.16.6", "a b", [(-0.8, 0.8), (-0.8, 0.8)], (2, 2, 1),
         lambda a, b: (a + b) / (1 + a * b), lambda sp, a, b: (a + b) / (1 + a * b),
         "I.16.6 ranges: a = u/c from u, b = v/c from v (pykan's lambda computes u v, not u + v; "
         "the formula is (u + v)/(1 + u v/c^2))", 1.19e-3),
    _fey("I.18.4", "a b", [(0.5, 1), (-1, 1)], (2, 2, 1),
         lambda a, b: (1 + a * b) / (1 + a), lambda sp, a, b: (1 + a * b) / (1 + a),
         "I.18.4 ranges: a = m2/m1 from m2; b = r2/r1 from r2"),
    _fey("I.26.2", "n theta2", [(0, 0.99), _2PI], (2, 2, 1),
         lambda n, t: np.arcsin(n * np.sin(t)), lambda sp, n, t: sp.asin(n * sp.sin(t)), "I.26.2 ranges"),
    _fey("I.27.6", "a b", [(0.5, 2), (0.5, 2)], (2, 1, 1),
         lambda a, b: 1 / (1 + a * b), lambda sp, a, b: 1 / (1 + a * b),
         "I.27.6 ranges: a = n; b = d1/d2 from d1"),
    _fey("I.29.16", "a theta1 theta2", [(-1, 1), _2PI, _2PI], (3, 2, 2, 1),
         lambda a, t1, t2: np.sqrt(1 + a**2 - 2 * a * np.cos(t1 - t2)),
         lambda sp, a, t1, t2: sp.sqrt(1 + a**2 - 2 * a * sp.cos(t1 - t2)),
         "I.29.16 ranges: a = x2/x1 from x2; angles kept"),
    _fey("I.30.3", "n theta", [(0, 4), (0.4 * _PI, 1.6 * _PI)], (2, 4, 3, 1),
         lambda n, t: np.sin(n * t / 2)**2 / np.sin(t / 2)**2,
         lambda sp, n, t: sp.sin(n * t / 2)**2 / sp.sin(t / 2)**2, "I.30.3 ranges (sin(theta/2) >= sin(0.2 pi))"),
    _fey("I.30.5", "a n", [(-1, 1), (1, 1.5)], (2, 1, 1),
         lambda a, n: np.arcsin(a / n), lambda sp, a, n: sp.asin(a / n), "I.30.5 ranges: a = lambda/d from lambda"),
    _fey("I.37.4", "a delta", [(0.1, 1), _2PI], (2, 2, 1),
         lambda a, d: 1 + a + 2 * np.sqrt(a) * np.cos(d), lambda sp, a, d: 1 + a + 2 * sp.sqrt(a) * sp.cos(d),
         "I.37.4 ranges: a = I2/I1 from I2", 4.91e-6),
    _fey("I.40.1", "n0 a", [(0, 1), (-1, 1)], (2, 2, 1),
         lambda n0, a: n0 * np.exp(-a), lambda sp, n0, a: n0 * sp.exp(-a),
         "I.40.1 ranges: a = m g x/(k_b T) from m"),
    _fey("I.44.4", "n a", [(0, 1), (0.5, 2)], (2, 2, 1),
         lambda n, a: n * np.log(a), lambda sp, n, a: n * sp.log(a), "I.44.4 ranges: a = V2/V1 from V2", 2.43e-5),
    _fey("I.50.26", "a alpha", [_2PI, (0, 1)], (2, 3, 1),
         lambda a, al: np.cos(a) + al * np.cos(a)**2, lambda sp, a, al: sp.cos(a) + al * sp.cos(a)**2,
         "I.50.26 ranges: a = omega t from omega"),
    _fey("II.2.42", "a b", [(0, 1), (0, 1)], (2, 2, 1),
         lambda a, b: (a - 1) * b, lambda sp, a, b: (a - 1) * b,
         "II.2.42 ranges: a = T2/T1 from T2; b = kappa T1 A/d from kappa"),
    _fey("II.6.15a", "a b c", [(0, 1), (0, 1), (0, 1)], (3, 2, 1, 1),
         lambda a, b, c: c * np.sqrt(a**2 + b**2) / (4 * np.pi),
         lambda sp, a, b, c: c * sp.sqrt(a**2 + b**2) / (4 * sp.pi),
         "II.6.15a ranges: a = x/r from x, b = y/r from y, c = 3 z/r from z"),
    _fey("II.11.7", "n0 a theta", [(0, 1), (-1, 1), _2PI], (3, 3, 1, 1),
         lambda n0, a, t: n0 * (1 + a * np.cos(t)), lambda sp, n0, a, t: n0 * (1 + a * sp.cos(t)),
         "II.11.17 ranges (the paper's II.11.7 is pykan's II.11.17): a = p_d E_f/(k_b T) from p_d"),
    _fey("II.11.27", "n alpha", [(0, 1), (0, 2)], (2, 1, 1),
         lambda n, al: n * al / (1 - n * al / 3), lambda sp, n, al: n * al / (1 - n * al / 3),
         "II.11.27 ranges (n alpha <= 2 < 3)"),
    _fey("II.35.18", "n0 a", [(0, 1), (0, 1)], (2, 1, 1),
         lambda n0, a: n0 / (np.exp(a) + np.exp(-a)), lambda sp, n0, a: n0 / (sp.exp(a) + sp.exp(-a)),
         "II.35.18 ranges: a = mu B/(k_b T) from mu"),
    _fey("II.36.38", "a alpha b", [(0, 1), (0, 1), (0, 1)], (3, 2, 1),
         lambda a, al, b: a + al * b, lambda sp, a, al, b: a + al * b,
         "II.36.38 ranges: a = mu B/(k_b T) and b = mu M/(epsilon c^2 k_b T) from mu"),
    _fey("II.38.3", "a b", [(0, 1), (0.5, 2)], (2, 1, 1),
         lambda a, b: a / b, lambda sp, a, b: a / b, "II.38.3 ranges: a = x, b = d (F/(Y A) = x/d)"),
    _fey("III.9.52", "a b c", [(0, 1), (0, _PI), (0, _PI)], (3, 3, 2, 1),
         lambda a, b, c: a * np.sinc((b - c) / (2 * np.pi))**2,  # sin(u)^2/u^2 with u = (b - c)/2, 1 at u = 0
         lambda sp, a, b, c: a * sp.sin((b - c) / 2)**2 / ((b - c) / 2)**2,
         "III.9.52 ranges: a = p_d E_f t/hbar from p_d; b = omega t from omega; c = omega_0 t from omega_0 "
         "(b = c is a removable singularity: f uses numpy.sinc)"),
    _fey("III.10.19", "a b", [(0, 1), (0, 1)], (2, 1, 1),
         lambda a, b: np.sqrt(1 + a**2 + b**2), lambda sp, a, b: sp.sqrt(1 + a**2 + b**2),
         "III.10.19 ranges: a = B_y/B_x from B_y; b = B_z/B_x from B_z"),
    _fey("III.17.37", "beta alpha theta", [(0, 1), (0, 1), _2PI], (3, 3, 1),
         lambda be, al, t: be * (1 + al * np.cos(t)), lambda sp, be, al, t: be * (1 + al * sp.cos(t)),
         "III.17.37 ranges", 5.03e-4),
)}
"""The paper's dimensionless Feynman equations (Table 2) with its pruned KAN shapes and, for six,
its test RMSE; ranges from pykan's ``feynman`` module (the range of the dimensional variable each
input stands for), narrowed only where the formula is singular (see each ``note``)."""


def feynman_dataset(name: str, **kwargs) -> dict:
    """``make_dataset`` for ``FEYNMAN[name]``; keyword arguments go to make_dataset."""
    return _sample(FEYNMAN, "Feynman equation", name, kwargs)
