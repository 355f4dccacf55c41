"""Spline kernels for any array-API namespace: the dense basis followed by a GEMM.

Simple and portable; wastes (G + k)/(k + 1) of the work at large G, which the
backend-specific kernels avoid.
"""

from __future__ import annotations

from ..spline import basis, basis_with_derivative

__all__ = ["GenericKernels"]


class GenericKernels:
    name = "generic"

    def __init__(self, xp):
        self.xp = xp

    def spline_forward(self, x, grid, weight, k, *, need_dx, reuse=None):
        """x (B, n), weight (n, m, nb) -> (y (B, m), ctx); reuse: the ctx of an earlier call
        with the same x and grid, whose bases are used again."""
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

    def dense_basis(self, x, grid, k):
        """All bases at x, edge-major: x (B, n) -> (n, B, nb)."""
        return self.xp.permute_dims(basis(x, grid, k, xp=self.xp), (1, 0, 2))

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
