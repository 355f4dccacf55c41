"""Spline kernels per backend, and the dispatch that picks them.

Every kernel object offers the same two calls (shapes: batch B, inputs n, outputs m,
bases nb = G + k, knots L + 1 = G + 2k + 1):

``spline_forward(x, grid, weight, k, *, need_dx) -> (y, ctx)``
    x (B, n), grid (n, L + 1), weight (n, m, nb) -> y (B, m) with
    ``y[b, o] = sum_i sum_j weight[i, o, j] * B_j(x[b, i]; grid[i])``.
    ``ctx`` is whatever the backward needs; it holds no copy of the layer's arrays.

``spline_backward(ctx, gy, *, need_dx) -> (dweight, dx)``
    gy (B, m) -> dweight (n, m, nb), dx (B, n) or None.  ``need_dx`` must have been set
    in the forward as well.

``generic`` works on any array-API namespace; ``numpy`` evaluates only the k + 1 non-zero
bases per input and picks a dense or sparse contraction; ``cupy`` does the same with CUDA
kernels (compiled on first use; the module, and CuPy, load only when a model is on CuPy).
"""

from __future__ import annotations

from .._namespace import backend_name, is_numpy_namespace
from .generic import GenericKernels

__all__ = ["get_kernels", "clear_kernel_cache", "GenericKernels"]

_cache: dict[str, object] = {}


def get_kernels(xp):
    """The spline kernels for namespace ``xp`` (created once, cached by namespace name)."""
    key = xp.__name__
    kernels = _cache.get(key)
    if kernels is None:
        if is_numpy_namespace(xp):
            from .numpy import NumpyKernels

            kernels = NumpyKernels()
        elif backend_name(xp) == "cupy":
            from .cupy import CupyKernels

            kernels = CupyKernels(xp)
        else:
            kernels = GenericKernels(xp)
        _cache[key] = kernels
    return kernels


def clear_kernel_cache() -> None:
    """Forget the cached kernel objects: the next ``get_kernels`` builds them anew, with the
    settings of ``kanarray.config`` then in force (``config.reload`` / ``override`` call this)."""
    _cache.clear()
