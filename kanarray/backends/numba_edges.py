"""Compiled per-edge layer passes for the NumPy backend, used when numba is installed.

The per-edge path (``KANLayer.forward_edges`` / ``backward_edges``, which the regularized
objective runs for every layer whose inputs change between evaluations) is, in NumPy, some
forty array passes over (n, B, m) arrays whose cost at small sizes is mostly call overhead.
Here each direction is one compiled loop over the inputs:

forward
    locate x[b, i] on row i's knots (binary search, the half-open rule t_v <= x < t_{v+1}),
    evaluate the edge polynomial of its interval and its derivative (Horner, on the table of
    per-interval polynomials that ``NumpyKernels.edge_forward`` also uses), phi, dphi and
    the node sums y (the base function comes in precomputed).
backward
    the transpose: per-interval moments sum g f**p (turned into coefficient gradients by the
    caller), the scale gradients sum_b g spl and sum_b g b(x), and dL/dx.

``spread_penalty`` is the sparsification penalty of one layer (``regularization.penalty``),
a few dozen tiny NumPy passes, as one call.

The arithmetic is the NumPy path's, summed in another order; tests compare the two.
``KANARRAY_NUMBA=0`` in the environment (``kanarray.config``, field ``numba``) switches this path off.
"""

from __future__ import annotations

import math
from importlib.util import find_spec
from types import SimpleNamespace

import numpy as np

__all__ = ["available", "forward", "backward", "spread_penalty", "spread_stats"]


def available() -> bool:
    """numba is importable and not switched off (``kanarray.config.current().numba``, from
    KANARRAY_NUMBA)."""
    from .. import config

    return config.current().numba and find_spec("numba") is not None


_compiled = None


def _kernels():
    """The compiled loops, built (or loaded from numba's cache) on first use."""
    global _compiled
    if _compiled is None:
        import numba

        njit = numba.njit(cache=True, nogil=True)

        # Each pass is its own simple loop: numba cannot prove the arrays distinct, so one loop
        # doing everything reloads its inputs after every store (measured 2.5x slower).
        @njit
        def forward_loop(xt, knots, table, left, inv_span, k, msp, mb, bias, base, dbase, need_dx,
                         lines, has_lines, y, phi, spl, dphi, e, f):
            n, B = xt.shape
            L = knots.shape[1] - 1
            m = msp.shape[1]
            for i in range(n):  # locate
                lo_knot, hi_knot = knots[i, 0], knots[i, L]
                for b in range(B):
                    xv = xt[i, b]
                    if xv < lo_knot or xv >= hi_knot:
                        v = L
                    elif L <= 16:  # count the inner knots <= xv: no branches to mispredict
                        v = 0
                        for j in range(1, L):
                            v += knots[i, j] <= xv
                    else:
                        lo, hi = 0, L  # knots[i, lo] <= xv < knots[i, hi]
                        while hi - lo > 1:
                            mid = (lo + hi) >> 1
                            if knots[i, mid] <= xv:
                                lo = mid
                            else:
                                hi = mid
                        v = lo
                    row = i * (L + 1) + v
                    fr = (xv - left[row]) * inv_span[row]
                    if fr < 0.0:  # NaN passes both tests and propagates
                        fr = 0.0
                    elif fr > 1.0:
                        fr = 1.0
                    e[i, b] = row
                    f[i, b] = fr
            for i in range(n):  # spline values and slopes (Horner)
                for b in range(B):
                    row = e[i, b]
                    fr = f[i, b]
                    for o in range(m):
                        acc = table[row, k, o]
                        for p in range(k - 1, -1, -1):
                            acc = acc * fr + table[row, p, o]
                        spl[i, b, o] = acc
                        if need_dx:
                            dacc = 0.0
                            if k > 0:
                                dacc = table[row, 2 * k, o]
                                for p in range(k - 2, -1, -1):
                                    dacc = dacc * fr + table[row, k + 1 + p, o]
                            dphi[i, b, o] = dacc
            if has_lines:  # the lines beyond the grid (zero distances inside it)
                below, above, s_lo, s_hi = lines
                for i in range(n):
                    for b in range(B):
                        bl, ab = below[i, b], above[i, b]
                        if bl != 0.0 or ab != 0.0:
                            for o in range(m):
                                spl[i, b, o] += bl * s_lo[i, o] + ab * s_hi[i, o]
            for b in range(B):
                for o in range(m):
                    y[b, o] = bias[o]
            # (i, b, o) order: every (n, B, m) array is walked contiguously (o innermost); y's
            # sums still run over i in order
            for i in range(n):  # edges and node sums
                for b in range(B):
                    tb = base[i, b]
                    for o in range(m):
                        ph = msp[i, o] * spl[i, b, o] + mb[i, o] * tb
                        phi[i, b, o] = ph
                        y[b, o] += ph
                if need_dx:
                    for b in range(B):
                        tb = dbase[i, b]
                        for o in range(m):
                            dphi[i, b, o] = msp[i, o] * dphi[i, b, o] + mb[i, o] * tb

        @njit
        def backward_loop(gy, gphi, has_gphi, spread, has_spread, e, f, spl, base, dphi, need_dx, k,
                          lines, has_lines, moments, gsp, gsb, dxt, g, g_lo, g_hi):
            n, B = e.shape
            m = gy.shape[1]
            phi, a, phi_mean, xt, c, x_mean = spread
            for i in range(n):  # g = dL/dphi, and dL/dx; (i, b, o) order as in the forward
                for b in range(B):
                    for o in range(m):
                        g[i, b, o] = gy[b, o]
                if has_gphi:
                    for b in range(B):
                        for o in range(m):
                            g[i, b, o] += gphi[i, b, o]
                if has_spread:
                    for b in range(B):
                        for o in range(m):
                            g[i, b, o] += a[i, o] * (phi[i, b, o] - phi_mean[i, o])
                if need_dx:
                    for b in range(B):
                        dx = c[i] * (xt[i, b] - x_mean[i]) if has_spread else 0.0
                        for o in range(m):
                            dx += g[i, b, o] * dphi[i, b, o]
                        dxt[i, b] = dx
            for i in range(n):  # per-interval moments sum g f**p
                for b in range(B):
                    row = e[i, b]
                    fr = f[i, b]
                    for o in range(m):
                        w = g[i, b, o]
                        for p in range(k + 1):
                            moments[row, p, o] += w
                            w *= fr
            for i in range(n):  # scale gradients, summed over b in order for each (i, o)
                for o in range(m):
                    gsp[i, o] = 0.0
                    gsb[i, o] = 0.0
                for b in range(B):
                    tb = base[i, b]
                    for o in range(m):
                        gsp[i, o] += g[i, b, o] * spl[i, b, o]
                        gsb[i, o] += g[i, b, o] * tb
            if has_lines:  # dL/d(the lines' slopes at each end)
                below, above = lines[0], lines[1]
                for i in range(n):
                    for o in range(m):
                        g_lo[i, o] = 0.0
                        g_hi[i, o] = 0.0
                    for b in range(B):
                        bl, ab = below[i, b], above[i, b]
                        if bl != 0.0 or ab != 0.0:
                            for o in range(m):
                                g_lo[i, o] += bl * g[i, b, o]
                                g_hi[i, o] += ab * g[i, b, o]

        @njit
        def spread_penalty(sphi, sx, lamb_l1, lamb_entropy, eps, dsphi, dsx):
            n, m = sphi.shape
            v = np.empty((n, m))
            dv = np.full((n, m), lamb_l1)
            total_v = 0.0
            for i in range(n):
                for o in range(m):
                    v[i, o] = sphi[i, o] / sx[i]
                    total_v += v[i, o]
            h = 0.0
            inv_ln2 = 1.0 / math.log(2.0)
            # rows are output nodes (sums over inputs i), columns input nodes (sums over o)
            for axis in range(2):
                groups, size = (m, n) if axis == 0 else (n, m)
                c = inv_ln2 / groups
                q = np.empty(size)
                for a in range(groups):
                    total = 1.0
                    for j in range(size):
                        total += v[j, a] if axis == 0 else v[a, j]
                    qp = 0.0
                    for j in range(size):
                        p = (v[j, a] if axis == 0 else v[a, j]) / total
                        log_p = math.log(p + eps)
                        h -= c * p * log_p
                        q[j] = log_p + p / (p + eps)
                        qp += q[j] * p
                    for j in range(size):
                        g = lamb_entropy * (qp - q[j]) * (c / total)
                        if axis == 0:
                            dv[j, a] += g
                        else:
                            dv[a, j] += g
            for i in range(n):
                acc = 0.0
                for o in range(m):
                    dsphi[i, o] = dv[i, o] / sx[i]
                    acc += dv[i, o] * sphi[i, o]
                dsx[i] = -acc / (sx[i] * sx[i])
            return lamb_l1 * total_v + lamb_entropy * h

        @njit
        def spread_stats(phi, xt, s_phi, inv_phi, phi_mean, s_x, inv_x, x_mean):
            n, B, m = phi.shape
            for i in range(n):
                total = 0.0
                for b in range(B):
                    total += xt[i, b]
                mean = total / B
                ss = 0.0
                for b in range(B):
                    d = xt[i, b] - mean
                    ss += d * d
                x_mean[i] = mean
                s_x[i] = math.sqrt(ss / (B - 1))
                inv_x[i] = 1.0 / ((B - 1) * s_x[i]) if s_x[i] != 0.0 else 0.0
                # (b, o) order, o innermost: contiguous; each (i, o) still sums over b in order
                for o in range(m):
                    phi_mean[i, o] = 0.0
                    s_phi[i, o] = 0.0
                for b in range(B):
                    for o in range(m):
                        phi_mean[i, o] += phi[i, b, o]
                for o in range(m):
                    phi_mean[i, o] /= B
                for b in range(B):
                    for o in range(m):
                        d = phi[i, b, o] - phi_mean[i, o]
                        s_phi[i, o] += d * d
                for o in range(m):
                    s_phi[i, o] = math.sqrt(s_phi[i, o] / (B - 1))
                    inv_phi[i, o] = 1.0 / ((B - 1) * s_phi[i, o]) if s_phi[i, o] != 0.0 else 0.0

        _compiled = SimpleNamespace(forward_loop=forward_loop, backward_loop=backward_loop,
                                    spread_penalty=spread_penalty, spread_stats=spread_stats)
    return _compiled


def forward(xt, knots, table, left, inv_span, k: int, msp, mb, bias, base, dbase, need_dx: bool, lines=None):
    """xt (n, B) C-contiguous; knots (n, L + 1); table (n (L + 1), 2k + 1, m) per-interval
    polynomials of every edge (values in rows 0..k, derivatives after); left, inv_span
    (n (L + 1),); msp, mb (n, m) masked scales; bias (m,); base, dbase (n, B): the base
    function and its derivative (NumPy's vectorised tanh beats a scalar loop's); lines:
    None, or the splines' continuation as lines beyond the grid, (below, above (n, B): the
    distances beyond each end, s_lo, s_hi (n, m): the unweighted splines' slopes there), added
    to every edge's spline (xt is then the clipped input; base, dbase are at the input itself).

    Returns y (B, m), phi (n, B, m), and ctx = (e, f, spl, base, dphi, k, lines) for ``backward``.
    """
    n, B = xt.shape
    m = msp.shape[1]
    dtype = xt.dtype
    y = np.empty((B, m), dtype=dtype)
    phi = np.empty((n, B, m), dtype=dtype)
    spl = np.empty((n, B, m), dtype=dtype)
    dphi = np.empty((n, B, m) if need_dx else (1, 1, 1), dtype=dtype)
    e = np.empty((n, B), dtype=np.intp)
    f = np.empty((n, B), dtype=dtype)
    has_lines = lines is not None
    lines = tuple(np.ascontiguousarray(a, dtype=dtype) for a in lines) if has_lines else (f, f, y, y)
    _kernels().forward_loop(xt, knots, table, left, inv_span, k, msp, mb, bias, base, dbase, need_dx, lines, has_lines,
                            y, phi, spl, dphi, e, f)
    return y, phi, (e, f, spl, base, dphi if need_dx else None, k, lines if has_lines else None)


def backward(ctx, gy, gphi, n_rows: int, need_dx: bool, spread=None):
    """gy (B, m), gphi (n, B, m) or None -> (moments (n_rows, k + 1, m), sum_b g spl (n, m),
    sum_b g b(x) (n, m), dL/dxt (n, B) or None, dL/d(slopes (s_lo, s_hi)) each (n, m), or
    None without lines), with g = gy + gphi.

    spread: (phi (n, B, m), a (n, m), phi_mean (n, m), xt (n, B), c (n,), x_mean (n,)) adds
    a (phi - phi_mean) to g and c (xt - x_mean) to dL/dxt: the gradient of a penalty on
    the spreads (``EdgeSpread``), without forming it."""
    e, f, spl, base, dphi, k, lines = ctx
    if need_dx and dphi is None:
        raise ValueError("backward(need_dx=True) needs forward(need_dx=True)")
    n, B = e.shape
    m = gy.shape[1]
    dtype = spl.dtype
    moments = np.zeros((n_rows, k + 1, m), dtype=dtype)
    gsp = np.zeros((n, m), dtype=dtype)
    gsb = np.zeros((n, m), dtype=dtype)
    dxt = np.empty((n, B) if need_dx else (1, 1), dtype=dtype)
    has_gphi = gphi is not None
    has_spread = spread is not None
    if not has_spread:  # placeholders of the right types
        spread = (spl, gsp, gsp, base, gsp[:, 0], gsp[:, 0])
    else:
        spread = tuple(np.ascontiguousarray(a, dtype=dtype) for a in spread)
    has_lines = lines is not None
    g_lo, g_hi = (np.empty((n, m), dtype=dtype) for _ in range(2)) if has_lines else (gsp, gsp)
    _kernels().backward_loop(np.ascontiguousarray(gy, dtype=dtype),
                  np.ascontiguousarray(gphi, dtype=dtype) if has_gphi else spl, has_gphi, spread, has_spread,
                  e, f, spl, base, dphi if need_dx else spl, need_dx, k, lines if has_lines else (f, f, gsp, gsp),
                  has_lines, moments, gsp, gsb, dxt, np.empty((n, B, m), dtype=dtype), g_lo, g_hi)
    return moments, gsp, gsb, (dxt if need_dx else None), ((g_lo, g_hi) if has_lines else None)


def spread_penalty(sphi, sx, lamb_l1: float, lamb_entropy: float, eps: float):
    """One layer's L1 + entropy penalty on its edge spreads (``regularization.penalty``) in one
    compiled call: sphi (n, m), sx (n,) float64 -> (value, d/dsphi (n, m), d/dsx (n,))."""
    sphi = np.ascontiguousarray(sphi, dtype=np.float64)
    sx = np.ascontiguousarray(sx, dtype=np.float64)
    dsphi = np.empty_like(sphi)
    dsx = np.empty_like(sx)
    value = _kernels().spread_penalty(sphi, sx, float(lamb_l1), float(lamb_entropy), float(eps), dsphi, dsx)
    return value, dsphi, dsx


def spread_stats(phi, xt):
    """Batch statistics of the edge activations phi (n, B, m) and inputs xt (n, B) in one
    compiled pass (two-pass, centred sums, ddof 1): (std phi (n, m), 1 / ((B - 1) std phi)
    or 0, mean phi (n, m), std x (n,), 1 / ((B - 1) std x) or 0, mean x (n,))."""
    n, B, m = phi.shape
    out = [np.empty((n, m), dtype=phi.dtype) for _ in range(3)] + [np.empty(n, dtype=phi.dtype) for _ in range(3)]
    _kernels().spread_stats(phi, np.ascontiguousarray(xt, dtype=phi.dtype), *out)
    return tuple(out)
