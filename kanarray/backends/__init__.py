"""Kernels per backend, and the dispatch that picks them.

Every kernel object is a ``generic.Kernels``: the kernel protocol, with an array-API default
for every operation a layer, the penalty or an optimizer needs (the table in
``backends/generic.py``).  ``numpy`` evaluates only the k + 1 non-zero bases per input, picks
a dense or sparse contraction and, with numba, compiles the per-edge layer passes; ``cupy``
does the local work with CUDA kernels (compiled on first use; the module, and CuPy, load only
when a model is on CuPy).  Any other namespace gets the defaults.
"""

from __future__ import annotations

from .._namespace import backend_name, is_numpy_namespace
from .generic import GenericKernels, Kernels

__all__ = ["get_kernels", "clear_kernel_cache", "Kernels", "GenericKernels"]

_cache: dict[str, object] = {}


def get_kernels(xp):
    """The ``Kernels`` for namespace ``xp`` (created once, cached by namespace name)."""
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
            kernels = Kernels(xp)
        _cache[key] = kernels
    return kernels


def clear_kernel_cache() -> None:
    """Forget the cached kernel objects: the next ``get_kernels`` builds them anew, with the
    settings of ``kanarray.config`` then in force (``config.reload`` / ``override`` call this)."""
    _cache.clear()
