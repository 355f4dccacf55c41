"""The kernel protocol: every operation a layer, a loss or an optimizer asks of a backend,
with array-API defaults that run on any namespace.

``Kernels`` is the base class of every backend's kernels (``backends.get_kernels`` picks
the object for a namespace).  A backend overrides what it accelerates and inherits the rest:
``NumpyKernels`` evaluates only the k + 1 non-zero bases per input (and, with numba, runs the
per-edge layer passes compiled), ``CupyKernels`` launches CUDA kernels.  Callers never probe
for a capability: every operation below exists on every kernel object.

Shapes: batch B, inputs n, outputs m, bases nb = G + k, knots L + 1 = G + 2k + 1.

==========================  ==========================================================
operation                   what it computes
==========================  ==========================================================
``spline_forward``          y[b, o] = sum_i sum_j weight[i, o, j] B_j(x[b, i]; grid[i])
``spline_backward``         d/dweight and d/dx of ``spline_forward``
``dense_basis``             every basis at every input, edge-major (n, B, nb)
``edge_forward``            each edge's spline spl[i, b, o] (not summed over i)
``edge_backward``           d/dweight of ``edge_forward``
``edge_layer_forward``      a whole layer edge by edge: y, phi (n, B, m) and a cache
``edge_layer_backward``     its gradients, with an optional per-edge dL/dphi
``spread_penalty``          the L1 + entropy terms of the sparsification penalty
``matmul``                  the 2-d matrix product of the layers' base branch
``base_with_grad``          b(x) and b'(x) of a base function (``kanarray.base``)
``adam_step``               one Adam / AdamW update of one parameter, in place
==========================  ==========================================================

The default dense basis wastes (G + k)/(k + 1) of the work at large G, which the
backend-specific kernels avoid.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from .._namespace import xsum
from ..base import base_grad, base_with_grad
from ..extrapolation import continued_edge_forward
from ..spline import basis, basis_derivatives, basis_with_derivative

__all__ = ["Kernels", "GenericKernels", "EdgeCache", "CompiledEdgeCache", "SpreadGradient", "ENTROPY_EPS"]

ENTROPY_EPS = 1e-4  # pykan's epsilon inside the entropy's logarithm


class EdgeCache(NamedTuple):
    """What ``Kernels.edge_layer_forward``'s array-API pass keeps for its backward.

    basis: ``edge_forward``'s ctx (reusable for the same x and grid); xt (n, B): x transposed;
    spl (n, B, m): each edge's spline; base_x (n, B) or None: b(x); dphi (n, B, m) or None:
    d phi / dx; tail: ``extrapolation.Tails`` or None."""

    basis: object
    xt: object
    spl: object
    base_x: object
    dphi: object
    tail: object
    compiled = False


class CompiledEdgeCache(NamedTuple):
    """What a compiled per-edge pass keeps (``NumpyKernels`` with numba): xt (n, B) and the
    kernel's own context.  It has no reusable basis and no per-edge arrays; the penalty's
    gradient then reaches the backward as a ``regularization.SpreadGradient``."""

    xt: object
    ctx: object
    basis = None
    compiled = True


class SpreadGradient(NamedTuple):
    """A penalty's dL/dphi = a (phi - phi_mean) and dL/dxt = c (xt - x_mean), not formed:
    phi (n, B, m), a and phi_mean (n, m), xt (n, B), c and x_mean (n,).  Passed as ``gphi`` to
    ``edge_layer_backward`` after a compiled forward, which applies it inside its loop."""

    phi: object
    a: object
    phi_mean: object
    xt: object
    c: object
    x_mean: object


class Kernels:
    """Array-API kernels for namespace ``xp``: the defaults of the kernel protocol."""

    name = "generic"

    def __init__(self, xp):
        self.xp = xp

    # -- summed spline pass (the plain forward) --------------------------------------------
    def spline_forward(self, x, grid, weight, k, *, need_dx, reuse=None):
        """x (B, n), weight (n, m, nb) -> (y (B, m), ctx for ``spline_backward``); reuse: the ctx
        of an earlier call with the same x and grid, whose bases are used again.  ctx holds no
        copy of the layer's arrays."""
        xp = self.xp
        B, n = x.shape
        m, nb = weight.shape[1], weight.shape[2]
        if reuse is not None and not (need_dx and reuse[1] is None):
            Bd2, dBd = reuse[:2]
        else:
            if need_dx:
                Bd, dBd = basis_with_derivative(x, grid, k, xp=xp)
            else:
                Bd, dBd = basis(x, grid, k, xp=xp), None
            Bd2 = xp.reshape(Bd, (B, n * nb))
        W2 = xp.reshape(xp.permute_dims(weight, (0, 2, 1)), (n * nb, m))
        y = xp.matmul(Bd2, W2)
        return y, (Bd2, dBd, W2, (B, n, m, nb))

    def spline_backward(self, ctx, gy, *, need_dx):
        """gy (B, m) -> (dweight (n, m, nb), dx (B, n) or None); need_dx must have been set in
        the forward as well."""
        xp = self.xp
        Bd2, dBd, W2, (B, n, m, nb) = ctx
        dW2 = xp.matmul(xp.matrix_transpose(Bd2), gy)  # (n * nb, m)
        dweight = xp.permute_dims(xp.reshape(dW2, (n, nb, m)), (0, 2, 1))
        dx = None
        if need_dx:
            if dBd is None:
                raise ValueError("need_dx=True in the backward needs need_dx=True in the forward")
            GW = xp.reshape(xp.matmul(gy, xp.matrix_transpose(W2)), (B, n, nb))
            dx = xp.sum(GW * dBd, axis=2)
        return dweight, dx

    def local_basis_derivatives(self, x, grid, k, order):
        """The non-zero bases only (``NumpyKernels``); None here: callers use ``basis_derivatives``."""
        return None

    def basis_derivatives(self, x, grid, k, order):
        """[B, B', ..., B^(order)] at x (B, n), each (B, n, nb) (``spline.basis_derivatives``)."""
        return basis_derivatives(x, grid, k, order, xp=self.xp)

    def dense_basis(self, x, grid, k):
        """All bases at x, edge-major: x (B, n) -> (n, B, nb)."""
        return self.xp.permute_dims(basis(x, grid, k, xp=self.xp), (1, 0, 2))

    # -- per-edge spline pass (regularization needs every phi_io) ---------------------------
    def edge_forward(self, x, grid, weight, k, *, need_dx, ctx=None):
        """Per-edge spline values: spl[i, b, o] = sum_j weight[i, o, j] B_ij(x[b, i]).

        x (B, n), weight (n, m, nb) -> (spl (n, B, m), dspl = d spl / dx or None, ctx for
        ``edge_backward``); ctx from an earlier call with the same x and grid is reused.
        """
        xp = self.xp
        if ctx is None or (need_dx and ctx[1] is None):
            if need_dx:
                Bd, dBd = basis_with_derivative(x, grid, k, xp=xp)
                ctx = (xp.permute_dims(Bd, (1, 0, 2)), xp.permute_dims(dBd, (1, 0, 2)))
            else:
                ctx = (xp.permute_dims(basis(x, grid, k, xp=xp), (1, 0, 2)), None)
        basis_t, dbasis_t = ctx  # (n, B, nb)
        w = xp.permute_dims(weight, (0, 2, 1))  # (n, nb, m)
        spl = xp.matmul(basis_t, w)
        dspl = xp.matmul(dbasis_t, w) if need_dx else None
        return spl, dspl, ctx

    def edge_backward(self, ctx, g):
        """g = dL/dspl (n, B, m) -> dL/dweight (n, m, nb)."""
        xp = self.xp
        basis_t = ctx[0]
        return xp.permute_dims(xp.matmul(xp.permute_dims(basis_t, (0, 2, 1)), g), (0, 2, 1))

    # -- a whole layer, edge by edge ----------------------------------------------------------
    def edge_layer_forward(self, x, grid, coef, msp, mb, bias, k, base_fun, *, need_dx, tail=None, basis=None):
        """One layer's edges evaluated one by one.

        x (B, n), coef (n, m, nb), msp / mb = masked spline / base scales (n, m), bias (m,) ->
        (y (B, m) without the symbolic branch, phi (n, B, m) every edge's activation, cache for
        ``edge_layer_backward``).  tail: ``extrapolation.Tails`` of x when the splines continue
        as lines; basis: ``EdgeCache.basis`` of an earlier call with the same x and grid."""
        xp = self.xp
        spl, dspl, basis = continued_edge_forward(self, x, grid, coef, k, xp, tail, need_dx=need_dx, ctx=basis)
        msp3 = msp[:, None, :]
        phi = spl * msp3
        dphi = dspl * msp3 if need_dx else None
        # (n, B), laid out row by row (the reshapes copy): every pass below runs along B
        xt = xp.reshape(xp.reshape(xp.permute_dims(x, (1, 0)), (-1,)), (x.shape[1], x.shape[0]))
        base_x = None
        if base_fun != "zero":
            base_x, dbase = self.base_with_grad(base_fun, xt, need_grad=need_dx)
            mb3 = mb[:, None, :]
            phi += mb3 * base_x[:, :, None]
            if need_dx:
                dphi += mb3 * dbase[:, :, None]
        y = xsum(xp, phi, axis=0) + bias
        return y, phi, EdgeCache(basis, xt, spl, base_x, dphi, tail)

    def edge_layer_backward(self, cache, gy, gphi, *, need_dx):
        """gy = dL/dy (B, m), gphi = dL/dphi (n, B, m), a ``SpreadGradient`` (after a compiled
        forward only) or None -> (d/dcoef (n, m, nb) of
        sum g spl, sum_b g spl (n, m), sum_b g b(x) (n, m) or None, dL/dxt (n, B) or None),
        with g = gy + gphi."""
        xp = self.xp
        if need_dx and cache.dphi is None:
            raise ValueError("backward_edges(need_dx=True) needs forward_edges(need_dx=True)")
        n = cache.xt.shape[0]
        g = xp.broadcast_to(gy[None, :, :], (n, *gy.shape)) if gphi is None else gphi + gy[None, :, :]  # (n, B, m)
        dweight = self.edge_backward(cache.basis, g)  # (n, m, nb)
        if cache.tail is not None:
            dweight = dweight + cache.tail.coef_grad_edges(g, xp)
        # reductions over B and m as vecdot / matmul: no (n, B, m) product is formed
        gsp = xp.vecdot(g, cache.spl, axis=-2)
        gsb = None if cache.base_x is None else xp.matmul(cache.base_x[:, None, :], g)[:, 0, :]
        dxt = xp.vecdot(g, cache.dphi, axis=-1) if need_dx else None
        return dweight, gsp, gsb, dxt

    def spread_penalty(self, sphi, sx, lamb_l1: float, lamb_entropy: float, *, grad: bool):
        """One layer's L1 + entropy terms from the edges' spreads sphi (n, m) and the inputs'
        sx (n,): (value, (d/dsphi (n, m), d/dsx (n,)) or None)."""
        xp = self.xp
        v = sphi / sx[:, None]
        h_row, dv_row = _entropy(v, 0, xp)  # rows are output nodes: sum over inputs (axis 0)
        h_col, dv_col = _entropy(v, 1, xp)
        value = lamb_l1 * xsum(xp, v) + lamb_entropy * (h_row + h_col)
        if not grad:
            return value, None
        dv = lamb_l1 + lamb_entropy * (dv_row + dv_col)  # (n, m)
        return value, (dv / sx[:, None], -xsum(xp, dv * sphi, axis=1) / (sx * sx))

    # -- dense algebra and element-wise chains ------------------------------------------------
    def matmul(self, a, b):
        """a (M, K) @ b (K, N) -> (M, N)."""
        return self.xp.matmul(a, b)

    def base_with_grad(self, name: str, x, *, need_grad: bool = True):
        """(b(x), b'(x) or None) for base function ``name`` (``kanarray.base``), x any shape."""
        return base_with_grad(name, x, self.xp, need_grad=need_grad)

    def base_grad(self, name: str, x):
        """b'(x) for base function ``name``."""
        return base_grad(name, x, self.xp)

    def adam_step(self, p, g, m, v, *, lr, betas, eps, weight_decay, decoupled, step):
        """One Adam (AdamW if decoupled) step: p is updated in place and the new moments
        (m, v) are returned; m and v are None before the first step; step counts from 1."""
        xp = self.xp
        b1, b2 = betas
        if weight_decay and not decoupled:
            g = g + weight_decay * p
        m = b1 * (xp.zeros_like(p) if m is None else m) + (1 - b1) * g
        v = b2 * (xp.zeros_like(p) if v is None else v) + (1 - b2) * (g * g)
        update = lr * (m / (1 - b1**step)) / (xp.sqrt(v / (1 - b2**step)) + eps)
        new = p * (1 - lr * weight_decay) if weight_decay and decoupled else p
        p[...] = new - update
        return m, v


GenericKernels = Kernels  # the name tests and benchmarks know the array-API kernels by


def _entropy(v, axis: int, xp):
    """H along groups summed over ``axis`` and its gradient dH/dv.

    With p = v / total and c = 1 / (groups * ln 2): H = -c sum p ln(p + eps) and
    dH/dp = -c (ln(p + eps) + p / (p + eps)); dH/dv follows through total."""
    total = xsum(xp, v, axis=axis, keepdims=True) + 1
    p = v / total
    shifted = p + ENTROPY_EPS
    log_p = xp.log(shifted)
    c = 1.0 / (v.shape[1 - axis] * math.log(2))
    h = -c * xsum(xp, p * log_p)
    q = log_p + p / shifted  # -dH/dp / c
    dv = (xsum(xp, q * p, axis=axis, keepdims=True) - q) * (c / total)
    return h, dv
