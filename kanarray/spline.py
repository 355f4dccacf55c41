"""B-spline grids, bases and least-squares fits, written against the array API standard.

Conventions (pykan's, see ../shared/PAPER.md):

* a grid row holds ``G + 2k + 1`` non-decreasing knots: ``G`` intervals on the grid range
  plus ``k`` extension knots on each side;
* the ``G + k`` B-splines of order ``k`` on a row are built by the Cox-de Boor recursion
  from half-open degree-0 indicators ``t_j <= x < t_{j+1}``, so every basis is zero outside
  ``[t_0, t_L)``;
* a division by a zero knot span (repeated knots) counts as zero.

These functions are the generic, dense reference implementation: they build the whole
``(batch, n_in, G + k)`` basis tensor.  The backends (``kanarray.backends``) provide faster
local evaluations with the same results.

The last two, ``cardinal_coefficients`` and ``interval_polynomials``, are host-side (NumPy,
float64) tables of the bases as polynomials on each knot interval, which the NumPy kernels
and the ONNX exporter evaluate by Horner's rule.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from numpy.polynomial import polynomial as P

from ._namespace import device_of, get_namespace

__all__ = [
    "uniform_grid",
    "extend_grid",
    "basis",
    "basis_with_derivative",
    "basis_derivatives",
    "coef2curve",
    "curve2coef",
    "cardinal_coefficients",
    "interval_polynomials",
]


def _xp(x, xp):
    return get_namespace(x) if xp is None else xp


def safe_reciprocal(a, xp):
    """1/a where a != 0, else 0 (repeated knots give zero spans)."""
    return 1.0 / xp.where(a == 0, math.inf, a)


def extend_grid(grid, k: int, *, xp=None):
    """Add ``k`` knots on each side of each row, with the row's average interior spacing.

    grid: (n_in, G + 1) -> (n_in, G + 2k + 1).  The extension is uniform with step
    ``h = (grid[:, -1] - grid[:, 0]) / G`` even when the interior is not (pykan's rule).
    """
    xp = _xp(grid, xp)
    if k == 0:
        return grid
    G = grid.shape[1] - 1
    h = (grid[:, -1:] - grid[:, :1]) / G
    steps = xp.arange(1, k + 1, dtype=grid.dtype, device=device_of(grid))
    left = grid[:, :1] - h * xp.flip(steps)[None, :]
    right = grid[:, -1:] + h * steps[None, :]
    return xp.concat([left, grid, right], axis=1)


def uniform_grid(n_in: int, G: int, k: int, grid_range=(-1.0, 1.0), *, xp, dtype, device=None):
    """The extended uniform grid of a layer: (n_in, G + 2k + 1)."""
    lo, hi = float(grid_range[0]), float(grid_range[1])
    row = xp.linspace(lo, hi, G + 1, dtype=dtype, device=device)
    interior = xp.zeros((n_in, G + 1), dtype=dtype, device=device) + row[None, :]
    return extend_grid(interior, k, xp=xp)


def _cox_de_boor(x, grid, k: int, xp, keep_previous: bool):
    """Dense basis of order k (and of order k-1 when keep_previous), (batch, n_in, *)."""
    # every basis vanishes off [t_0, t_L); clipping far inputs to just beyond that keeps
    # (x - t) finite, so 0 * (x - t) stays 0 instead of becoming NaN
    span = grid[:, -1] - grid[:, 0] + 1.0
    x3 = xp.clip(x, grid[:, 0] - span, grid[:, -1] + span)[:, :, None]
    g = grid[None, :, :]
    B = xp.astype((x3 >= g[..., :-1]) & (x3 < g[..., 1:]), x.dtype)
    previous = None
    for d in range(1, k + 1):
        n = B.shape[-1] - 1  # number of order-d bases
        t_j = g[..., 0:n]
        t_jd = g[..., d : d + n]
        t_j1 = g[..., 1 : n + 1]
        t_jd1 = g[..., d + 1 : d + 1 + n]
        if d == k and keep_previous:
            previous = B
        B = (x3 - t_j) * safe_reciprocal(t_jd - t_j, xp) * B[..., :-1] + (
            t_jd1 - x3
        ) * safe_reciprocal(t_jd1 - t_j1, xp) * B[..., 1:]
    return B, previous


def basis(x, grid, k: int, *, xp=None):
    """B-spline bases at x.

    x: (batch, n_in); grid: (n_in, n_knots) non-decreasing rows -> (batch, n_in, n_knots - k - 1).
    """
    xp = _xp(x, xp)
    return _cox_de_boor(x, grid, k, xp, keep_previous=False)[0]


def basis_with_derivative(x, grid, k: int, *, xp=None):
    """Bases and their x-derivatives, both (batch, n_in, n_knots - k - 1)."""
    xp = _xp(x, xp)
    B, prev = _cox_de_boor(x, grid, k, xp, keep_previous=True)
    if k == 0:
        return B, xp.zeros_like(B)
    n = B.shape[-1]
    g = grid[None, :, :]
    inv_left = safe_reciprocal(g[..., k : k + n] - g[..., 0:n], xp)
    inv_right = safe_reciprocal(g[..., k + 1 : k + 1 + n] - g[..., 1 : n + 1], xp)
    dB = k * (prev[..., :-1] * inv_left - prev[..., 1:] * inv_right)
    return B, dB


def basis_derivatives(x, grid, k: int, order: int, *, xp=None) -> list:
    """The bases and their x-derivatives up to ``order``: [B, B', ..., B^(order)], each (batch,
    n_in, n_knots - k - 1), piecewise (at a knot, the right-hand piece; a derivative of order
    above k is zero).

    The r-th derivative of the order-k bases is the order-(k - r) bases run through r steps of
    ``B'_(j,d) = d (B_(j,d-1) / (t_(j+d) - t_j) - B_(j+1,d-1) / (t_(j+d+1) - t_(j+1)))``.
    """
    xp = _xp(x, xp)
    span = grid[:, -1] - grid[:, 0] + 1.0  # as in _cox_de_boor: far inputs stay finite
    x3 = xp.clip(x, grid[:, 0] - span, grid[:, -1] + span)[:, :, None]
    g = grid[None, :, :]
    orders = [xp.astype((x3 >= g[..., :-1]) & (x3 < g[..., 1:]), x.dtype)]  # orders[d]: degree-d bases
    for d in range(1, k + 1):
        B = orders[-1]
        n = B.shape[-1] - 1
        orders.append((x3 - g[..., 0:n]) * safe_reciprocal(g[..., d : d + n] - g[..., 0:n], xp) * B[..., :-1]
                      + (g[..., d + 1 : d + 1 + n] - x3)
                      * safe_reciprocal(g[..., d + 1 : d + 1 + n] - g[..., 1 : n + 1], xp) * B[..., 1:])
    out = [orders[k]]
    for r in range(1, order + 1):
        if r > k:
            out.append(xp.zeros_like(orders[k]))
            continue
        A = orders[k - r]
        for d in range(k - r + 1, k + 1):  # differentiate once more, raising the degree to d
            n = A.shape[-1] - 1
            A = d * (A[..., :-1] * safe_reciprocal(g[..., d : d + n] - g[..., 0:n], xp)
                     - A[..., 1:] * safe_reciprocal(g[..., d + 1 : d + 1 + n] - g[..., 1 : n + 1], xp))
        out.append(A)
    return out


def coef2curve(x, grid, coef, k: int, *, xp=None):
    """Spline values sum_j coef[i, o, j] B_ij(x[b, i]).

    x: (batch, n_in); grid: (n_in, G + 2k + 1); coef: (n_in, n_out, G + k) -> (batch, n_in, n_out).
    """
    xp = _xp(x, xp)
    B = basis(x, grid, k, xp=xp)  # (batch, n_in, nb)
    # (n_in, batch, nb) @ (n_in, nb, n_out) -> (n_in, batch, n_out)
    out = xp.matmul(xp.permute_dims(B, (1, 0, 2)), xp.permute_dims(coef, (0, 2, 1)))
    return xp.permute_dims(out, (1, 0, 2))


def curve2coef(x, y, grid, k: int, *, xp=None):
    """Least-squares (minimum-norm) coefficients reproducing y on the samples x.

    x: (batch, n_in); y: (batch, n_in, n_out); grid: (n_in, G + 2k + 1) -> coef (n_in, n_out, G + k).
    Solved with a pseudo-inverse, so rank-deficient systems (fewer distinct samples than
    bases in some interval) give the minimum-norm solution rather than NaN.
    """
    xp = _xp(x, xp)
    B = xp.permute_dims(basis(x, grid, k, xp=xp), (1, 0, 2))  # (n_in, batch, nb)
    pinv = xp.linalg.pinv(B)  # (n_in, nb, batch)
    coef = xp.matmul(pinv, xp.permute_dims(y, (1, 0, 2)))  # (n_in, nb, n_out)
    return xp.permute_dims(coef, (0, 2, 1))


# -- host-side polynomial tables (NumPy) ------------------------------------------------------

@functools.lru_cache(maxsize=None)
def cardinal_coefficients(k: int, dtype: str = "float64"):
    """Power-basis coefficients of the k + 1 uniform B-splines on one interval (host, NumPy).

    k: the order; dtype: the NumPy dtype name of the result.  Returns C (k + 1 powers,
    k + 1 bases) with ``B_{v-k+m}(t_v + f h) = sum_p C[p, m] f**p`` for f in
    [0, 1), and D (k + 1, k + 1) with ``d/df`` of the same (its last row is zero).  Built
    by running de Boor's recursion on polynomials.
    """
    N = [np.array([1.0])]
    for j in range(1, k + 1):
        saved = None
        nxt = []
        for r in range(j):
            temp = N[r] / j
            term = P.polymul([r + 1, -1.0], temp)
            nxt.append(term if saved is None else P.polyadd(term, saved))
            saved = P.polymul([j - r - 1, 1.0], temp)
        nxt.append(saved)
        N = nxt
    C = np.zeros((k + 1, k + 1))
    D = np.zeros((k + 1, k + 1))
    for m, poly in enumerate(N):
        C[: len(poly), m] = poly
        dpoly = P.polyder(poly)
        D[: len(dpoly), m] = dpoly
    return C.astype(dtype), D.astype(dtype)


def _positive_inverse(d):
    """1 / d where d > 0, else 0 (NumPy)."""
    with np.errstate(divide="ignore"):
        return np.where(d > 0, 1.0 / np.where(d > 0, d, 1.0), 0.0)


def interval_polynomials(grid, k: int, step):
    """Power-basis coefficients of the k + 1 non-zero bases on every interval of a grid (host,
    NumPy).

    grid: (n, L + 1) array-like; step: (n,) spacing for the padding knots past the row ends.  Returns
    (n, L + 1, k + 1, k + 1) float64 with ``B_{v-k+m}(t_v + f h_v) = sum_p C[i, v, p, m] f**p``
    for f in [0, 1], h_v = t_{v+1} - t_v, and zeros for v = L (off the grid) and zero-width
    intervals.  de Boor's recursion run on polynomials in f, vectorised over intervals: each
    factor (x - t_j) / (t_{j+d} - t_j) is a linear polynomial with coefficients in [0, 1] in
    magnitude, so no cancellation builds up however uneven the knots.
    """
    n, L1 = grid.shape
    L = L1 - 1
    g = grid.astype(np.float64)
    pad = np.arange(1, k + 1, dtype=np.float64)
    st = np.asarray(step, dtype=np.float64)[:, None]
    tpad = np.concatenate([g[:, :1] - st * pad[::-1], g, g[:, -1:] + st * pad], axis=1)

    def t(q):  # t_{v+q} for every interval v: (n, L)
        return tpad[:, q + k : q + k + L]

    hv = t(1) - t(0)
    N = [np.ones((n, L, 1))]
    for d in range(1, k + 1):
        nxt = []
        for mp in range(d + 1):  # basis j = v - d + mp
            q = mp - d
            poly = np.zeros((n, L, d + 1))
            if mp >= 1:  # (x - t_j) / (t_{j+d} - t_j) * N_{j, d-1}
                a = _positive_inverse(t(q + d) - t(q))
                prev = N[mp - 1]
                poly[..., :d] += ((t(0) - t(q)) * a)[..., None] * prev
                poly[..., 1:] += (hv * a)[..., None] * prev
            if mp <= d - 1:  # (t_{j+d+1} - x) / (t_{j+d+1} - t_{j+1}) * N_{j+1, d-1}
                b = _positive_inverse(t(q + d + 1) - t(q + 1))
                prev = N[mp]
                poly[..., :d] += ((t(q + d + 1) - t(0)) * b)[..., None] * prev
                poly[..., 1:] -= (hv * b)[..., None] * prev
            nxt.append(poly)
        N = nxt
    C = np.zeros((n, L + 1, k + 1, k + 1))
    C[:, :L] = np.stack(N, axis=-1)
    C[:, :L][hv <= 0] = 0.0
    return C
