"""Fitting c * f(a x + b) + d to sampled edge functions, and ranking library candidates.

For one library function and E edges at once (samples x, y of shape (E, N), float64 on the
host):

1. search: R^2 of f(a x + b) against y (the squared Pearson correlation, which already
   accounts for the best c, d) on an (a, b) grid over ``a_range`` x ``b_range``, then
   ``zoom_rounds`` finer grids (``zoom_number`` points a side) around the best point
   (pykan's search, with its three zoom rounds, on a subsample of
   ``search_points`` samples spread evenly through the sorted x); the same search on x mapped
   onto [-1, 1] as well, the better of the two kept (pykan searches only the first, which
   misses the large slopes a hidden edge with a narrow input range needs);
2. c, d by linear least squares;
3. polish: Levenberg-Marquardt on (a, b, c, d) over all samples (up to ``polish_points``);
4. canonical form: the function's symmetries move (a, b, c) to a > 0, b in [-P/2, P/2]
   for a function with f(z + P) = +-f(z), a = 1 for powers and b = 0 for exp, so equal
   functions get equal parameters.

R^2 = 1 - SS_res / SS_tot of the final fit (1 when y is constant and fitted exactly).
"""

from __future__ import annotations

import math

import numpy as np

from .library import SymbolicFunction

__all__ = ["fit_affine", "rank", "Candidate"]

_ROUND_GROUP = 16  # edges per chunk of the grid search (bounds its memory)


def _even_subset(x, y, count: int):
    """Sort each edge's samples by x and keep ``count`` of them spread evenly (all if fewer)."""
    order = np.argsort(x, axis=1, kind="stable")
    x = np.take_along_axis(x, order, axis=1)
    y = np.take_along_axis(y, order, axis=1)
    n = x.shape[1]
    if n <= count:
        return x, y
    idx = np.unique(np.round(np.linspace(0, n - 1, count)).astype(int))
    return x[:, idx], y[:, idx]


def _r2_corr(f, y):
    """Squared correlation along the last axis; 0 where f or y is constant.  f (..., S), y broadcastable."""
    fc = f - f.mean(axis=-1, keepdims=True)
    yc = y - y.mean(axis=-1, keepdims=True)
    sfy = (fc * yc).sum(axis=-1)
    sff = (fc * fc).sum(axis=-1)
    syy = (yc * yc).sum(axis=-1)
    den = sff * syy
    ok = den > 0
    return np.where(ok, sfy * sfy / np.where(ok, den, 1.0), 0.0)


def _linear_cd(fz, y):
    """c, d minimizing sum (c fz + d - y)^2 per edge: (E,), (E,)."""
    fm, ym = fz.mean(axis=1), y.mean(axis=1)
    fc = fz - fm[:, None]
    sff = (fc * fc).sum(axis=1)
    sfy = (fc * (y - ym[:, None])).sum(axis=1)
    ok = sff > 0
    c = np.where(ok, sfy / np.where(ok, sff, 1.0), 0.0)
    return c, ym - c * fm


def _search(fn: SymbolicFunction, x, y, a_range, b_range, grid_number: int, zoom_rounds: int, zoom_number: int):
    """Best (a, b) per edge by grid search with zoom-in rounds, and its R^2: (E,), (E,), (E,)."""
    E = x.shape[0]
    a_best = np.empty(E)
    b_best = np.empty(E)
    r2_best = np.empty(E)
    for start in range(0, E, _ROUND_GROUP):
        sl = slice(start, min(E, start + _ROUND_GROUP))
        xs, ys = x[sl], y[sl]
        e = xs.shape[0]
        a_lo, a_hi = np.full(e, float(a_range[0])), np.full(e, float(a_range[1]))
        b_lo, b_hi = np.full(e, float(b_range[0])), np.full(e, float(b_range[1]))
        for round_ in range(zoom_rounds + 1):
            count = grid_number if round_ == 0 else zoom_number
            t = np.linspace(0.0, 1.0, count)
            a = a_lo[:, None] + (a_hi - a_lo)[:, None] * t  # (e, A)
            b = b_lo[:, None] + (b_hi - b_lo)[:, None] * t
            z = a[:, :, None, None] * xs[:, None, None, :] + b[:, None, :, None]  # (e, A, A, S)
            r2 = _r2_corr(fn.fn(z, np), ys[:, None, None, :])  # (e, A, A)
            r2 = np.nan_to_num(r2.reshape(e, -1), nan=-1.0)
            flat = r2.argmax(axis=1)
            ia, ib = np.unravel_index(flat, (count, count))
            rows = np.arange(e)
            r2_c = r2[rows, flat]
            a_c, b_c = a[rows, ia], b[rows, ib]
            da = (a_hi - a_lo) / (count - 1)
            db = (b_hi - b_lo) / (count - 1)
            a_lo, a_hi = a_c - da, a_c + da
            b_lo, b_hi = b_c - db, b_c + db
        a_best[sl], b_best[sl], r2_best[sl] = a_c, b_c, r2_c
    return a_best, b_best, r2_best


def _search_both_scales(fn: SymbolicFunction, x, y, a_range, b_range, *grid):
    """``_search`` on x as given and on x mapped onto [-1, 1] (u = (x - m) / s), keeping the
    better (a, b) per edge: (E,), (E,).

    The ranges suit inputs of order 1, as the first layer's are; a hidden edge's inputs can span
    0.15..0.20, where exp(a x) with |a| <= 10 is nearly linear and the slope needed (about 100)
    lies outside a_range.  On u the same ranges cover such an edge; (a_u, b_u) on u is
    (a_u / s, b_u - a_u m / s) on x."""
    a, b, r2 = _search(fn, x, y, a_range, b_range, *grid)
    lo, hi = x.min(axis=1), x.max(axis=1)
    m, s = (hi + lo) / 2, (hi - lo) / 2
    s = np.where(s > 0, s, 1.0)
    a_u, b_u, r2_u = _search(fn, (x - m[:, None]) / s[:, None], y, a_range, b_range, *grid)
    scaled = r2_u > r2
    return np.where(scaled, a_u / s, a), np.where(scaled, b_u - a_u * m / s, b)


def _sse(fn, p, x, y):
    r = p[:, 2:3] * fn.fn(p[:, 0:1] * x + p[:, 1:2], np) + p[:, 3:4] - y
    return (r * r).sum(axis=1)


def _polish(fn: SymbolicFunction, p, x, y, steps: int):
    """Levenberg-Marquardt on p = (a, b, c, d) (E, 4), each edge independently."""
    lam = np.full(p.shape[0], 1e-3)
    loss = _sse(fn, p, x, y)
    eye = np.eye(4)
    for _ in range(steps):
        a, b, c, d = (p[:, j : j + 1] for j in range(4))
        z = a * x + b
        fz, dz = fn.fn(z, np), fn.deriv(z, np)
        r = c * fz + d - y
        J = np.stack([c * dz * x, c * dz, fz, np.ones_like(fz)], axis=2)  # (E, N, 4)
        Jt = np.swapaxes(J, 1, 2)
        JTJ = Jt @ J
        g = (Jt @ r[:, :, None])[:, :, 0]
        diag = np.diagonal(JTJ, axis1=1, axis2=2)
        A = JTJ + lam[:, None, None] * (diag[:, :, None] * eye + 1e-12 * eye)
        try:
            step = np.linalg.solve(A, -g[:, :, None])[:, :, 0]
        except np.linalg.LinAlgError:
            step = np.zeros_like(p)
        trial = p + np.where(np.isfinite(step), step, 0.0)
        new_loss = _sse(fn, trial, x, y)
        better = np.isfinite(new_loss) & (new_loss < loss)
        p = np.where(better[:, None], trial, p)
        loss = np.where(better, new_loss, loss)
        lam = np.clip(np.where(better, lam / 3.0, lam * 4.0), 1e-12, 1e12)
    return p


def _canonical(fn: SymbolicFunction, p):
    """Use the function's symmetries to put (a, b, c) in canonical form: a > 0 (parity),
    b in [-P/2, P/2] ((anti)period P), a = 1 (homogeneous of some degree), b = 0 (exp)."""
    p = p.copy()
    if fn.parity is not None:
        neg = p[:, 0] < 0
        p[neg, 0] *= -1
        p[neg, 1] *= -1
        if fn.parity == "odd":
            p[neg, 2] *= -1
    if fn.shift is not None:
        period, sign = fn.shift
        n = np.round(p[:, 1] / period)
        p[:, 1] -= n * period
        if sign < 0:
            p[:, 2] *= np.where(n % 2 == 0, 1.0, -1.0)
    if fn.degree is not None:
        pos = p[:, 0] > 0
        scale = np.where(pos, p[:, 0], 1.0)
        p[:, 2] = np.where(pos, p[:, 2] * scale ** fn.degree, p[:, 2])
        p[:, 1] = p[:, 1] / scale
        p[:, 0] = np.where(pos, 1.0, p[:, 0])
    if fn.exponential:
        folded = p[:, 2] * np.exp(np.clip(p[:, 1], -700, 700))
        ok = np.isfinite(folded) & (folded != 0)
        p[:, 2] = np.where(ok, folded, p[:, 2])
        p[:, 1] = np.where(ok, 0.0, p[:, 1])
    return p


def fit_affine(fn: SymbolicFunction, x, y, *, a_range=(-10.0, 10.0), b_range=(-10.0, 10.0),
               grid_number: int = 41, zoom_rounds: int = 3, zoom_number: int = 11, search_points: int = 128,
               polish_points: int = 2000, polish_steps: int = 40):
    """Fit y ~ c f(a x + b) + d for each of E edges.

    x, y: (E, N) samples.  Returns (params (E, 4) = (a, b, c, d), r2 (E,)).
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    with np.errstate(all="ignore"):  # the safe functions are finite; products of huge values may not be
        xs, ys = _even_subset(x, y, search_points)
        a, b = _search_both_scales(fn, xs, ys, a_range, b_range, grid_number, zoom_rounds, zoom_number)
        xp_, yp_ = _even_subset(x, y, polish_points)
        c, d = _linear_cd(fn.fn(a[:, None] * xp_ + b[:, None], np), yp_)
        p = np.stack([a, b, c, d], axis=1)
        if polish_steps:
            p = _polish(fn, p, xp_, yp_, polish_steps)
        p = _canonical(fn, p)
        # c, d once more by least squares on all samples
        fz = fn.fn(p[:, 0:1] * x + p[:, 1:2], np)
        p[:, 2], p[:, 3] = _linear_cd(fz, y)
        sse = _sse(fn, p, x, y)
        yc = y - y.mean(axis=1, keepdims=True)
        sst = (yc * yc).sum(axis=1)
        ok = sst > 0
        r2 = np.where(ok, 1.0 - sse / np.where(ok, sst, 1.0), np.where(sse <= 1e-30, 1.0, 0.0))
    r2 = np.where(np.isfinite(r2), r2, -np.inf)
    return p, r2


class Candidate(tuple):
    """(name, r2, complexity, params (a, b, c, d), score): one ranked library function."""

    __slots__ = ()

    def __new__(cls, name, r2, complexity, params, score):
        return super().__new__(cls, (name, float(r2), float(complexity), tuple(float(v) for v in params),
                                     float(score)))

    name = property(lambda self: self[0])
    r2 = property(lambda self: self[1])
    complexity = property(lambda self: self[2])
    params = property(lambda self: self[3])
    score = property(lambda self: self[4])

    def __repr__(self) -> str:
        a, b, c, d = self.params
        return (f"Candidate({self.name!r}, r2={self.r2:.6g}, complexity={self.complexity:g}, "
                f"params=(a={a:.4g}, b={b:.4g}, c={c:.4g}, d={d:.4g}), score={self.score:.4g})")


def rank(rows, r2s, params, weight_simple: float):
    """Candidates sorted best first by pykan's score w * complexity + (1 - w) * log2(1 + 1e-5 - R^2)
    (lower is better; ties keep library order).  rows: library rows; r2s (F,); params (F, 4)."""
    out = []
    for row, r2, p in zip(rows, r2s, params):
        r2c = min(float(r2), 1.0) if math.isfinite(r2) else -math.inf
        quality = math.log2(1 + 1e-5 - r2c) if math.isfinite(r2c) else math.inf
        out.append(Candidate(row.name, r2, row.complexity, p, weight_simple * row.complexity
                             + (1 - weight_simple) * quality))
    return sorted(out, key=lambda c: c.score)
