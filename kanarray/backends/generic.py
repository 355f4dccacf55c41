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

    def spline_forward(self, x, grid, weight, k, *, need_dx):
        xp = self.xp
        B, n = x.shape
        m, nb = weight.shape[1], weight.shape[2]
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
