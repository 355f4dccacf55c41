"""Base (residual) functions b(x) of the KAN edges, with their derivatives.

Each entry maps a name to ``(f, df)``; both take ``(x, xp)`` and work on any array-API
namespace.  "zero" switches the base branch off.  A pure table: the layers reach these
through their backend's kernels (``Kernels.base_with_grad``), which may run a function as
one kernel (SiLU on CuPy, instead of five to eight launches).
"""

from __future__ import annotations

__all__ = ["BASE_FUNCTIONS", "base_with_grad", "base_grad", "base_derivatives", "sigmoid"]


def sigmoid(x, xp):
    """Logistic function without overflow for large |x|."""
    return 0.5 + 0.5 * xp.tanh(0.5 * x)


def _silu(x, xp):
    return x * sigmoid(x, xp)


def _silu_grad(x, xp):
    s = sigmoid(x, xp)
    return s * (1.0 + x * (1.0 - s))


def _identity(x, xp):
    return x


def _ones(x, xp):
    return xp.ones_like(x)


def _zeros(x, xp):
    return xp.zeros_like(x)


BASE_FUNCTIONS = {
    "silu": (_silu, _silu_grad),
    "identity": (_identity, _ones),
    "zero": (_zeros, _zeros),
}


def base_with_grad(name: str, x, xp, *, need_grad: bool = True):
    """(b(x), b'(x) or None) for base function ``name``, sharing the work between the two
    (one sigmoid for SiLU)."""
    if name == "silu":
        s = sigmoid(x, xp)
        value = x * s
        if not need_grad:
            return value, None
        return value, s * (1.0 + (x - value))  # s (1 + x (1 - s))
    f, df = BASE_FUNCTIONS[name]
    return f(x, xp), (df(x, xp) if need_grad else None)


def base_grad(name: str, x, xp):
    """b'(x) for base function ``name``."""
    return BASE_FUNCTIONS[name][1](x, xp)


def base_derivatives(name: str, x, xp, order: int) -> list:
    """[b(x), b'(x), ..., b^(order)(x)] for base function ``name``, order <= 3 (the input jets).

    SiLU, with s = sigmoid(x) and s1 = s (1 - s) its slope: b = x s, b1 = s + x s1,
    b2 = 2 s1 + x s2, b3 = 3 s2 + x s3, where s2 = s1 (1 - 2 s) and s3 = s1 (1 - 6 s + 6 s^2)."""
    if order > 3:
        raise ValueError(f"base function derivatives go up to order 3, got {order}")
    if name == "silu":
        s = sigmoid(x, xp)
        s1 = s * (1.0 - s)
        out = [x * s, s + x * s1]
        if order >= 2:
            s2 = s1 * (1.0 - 2.0 * s)
            out.append(2.0 * s1 + x * s2)
        if order >= 3:
            out.append(3.0 * s2 + x * (s1 * (1.0 - 6.0 * s + 6.0 * s * s)))
        return out[: order + 1]
    if name == "identity":
        return ([x, xp.ones_like(x)] + [xp.zeros_like(x)] * max(0, order - 1))[: order + 1]
    return [xp.zeros_like(x)] * (order + 1)
