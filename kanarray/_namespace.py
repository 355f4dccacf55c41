"""The only importer of array-api-compat: backend names, namespaces, devices, host copies.

A *backend* is what users pass (``"numpy"``, ``"cupy"``, or an array-API namespace
module such as ``array_api_strict``); a *namespace* (``xp``) is the array-API module
the core computes with.  NumPy and CuPy go through array-api-compat's wrappers so the
core sees standard names, while the arrays themselves stay plain ``numpy.ndarray`` /
``cupy.ndarray``.
"""

from __future__ import annotations

from types import ModuleType

import array_api_compat
import numpy as np

__all__ = [
    "resolve_backend",
    "backend_name",
    "host_namespace",
    "namespace_of",
    "get_namespace",
    "device_of",
    "is_cupy_array",
    "is_numpy_namespace",
    "to_numpy",
    "from_host_like",
    "dtype_of",
    "xsum",
    "xmean",
    "xflat",
]

_DTYPES = ("float32", "float64")


def resolve_backend(backend) -> ModuleType:
    """Map a user's backend spec to an array-API namespace.

    Accepts ``"numpy"``, ``"cupy"``, the modules ``numpy``/``cupy`` themselves, or any
    module that implements the array API standard (it must define ``__array_api_version__``).
    CuPy is imported only here, and only when asked for.
    """
    if isinstance(backend, str):
        name = backend.lower()
        if name == "numpy":
            return host_namespace()
        if name == "cupy":
            try:
                import cupy  # noqa: F401
            except ImportError as exc:  # pragma: no cover - depends on the machine
                raise ImportError(
                    "backend='cupy' needs CuPy: install kanarray[cuda12] or kanarray[cuda13]"
                ) from exc
            import array_api_compat.cupy as xp

            return xp
        if name == "array_api_strict":
            import array_api_strict as xp

            return xp
        raise ValueError(
            f"unknown backend {backend!r}: expected 'numpy', 'cupy' or an array-API namespace module"
        )
    if isinstance(backend, ModuleType):
        if backend is np or backend.__name__ == "array_api_compat.numpy":
            return resolve_backend("numpy")
        if backend.__name__ in ("cupy", "array_api_compat.cupy"):
            return resolve_backend("cupy")
        if hasattr(backend, "__array_api_version__"):
            return backend
        raise ValueError(
            f"module {backend.__name__!r} is not an array-API namespace "
            "(it has no __array_api_version__)"
        )
    raise ValueError(
        f"backend must be a name or a module, got {type(backend).__name__}: "
        "expected 'numpy', 'cupy' or an array-API namespace module"
    )


def backend_name(xp: ModuleType) -> str:
    """Short, user-facing name of a namespace: 'numpy', 'cupy', or the module name."""
    name = xp.__name__
    if name.startswith("array_api_compat."):
        return name.split(".", 1)[1]
    return name


def host_namespace() -> ModuleType:
    """The namespace of host (NumPy) arrays: array-api-compat's NumPy wrapper, whose functions
    take and return plain ``numpy.ndarray``."""
    import array_api_compat.numpy as xp

    return xp


def is_numpy_namespace(xp: ModuleType) -> bool:
    return xp.__name__ == "array_api_compat.numpy"


def namespace_of(x):
    """The array-API namespace of array ``x``, or ``None`` if ``x`` is not an array.

    Python scalars and lists are not arrays here; the caller decides what to do with them.
    """
    if isinstance(x, (list, tuple, int, float, bool)) or x is None:
        return None
    try:
        return array_api_compat.array_namespace(x)
    except TypeError:
        return None


def get_namespace(*arrays) -> ModuleType:
    """The array-API namespace shared by ``arrays`` (array-api-compat's wrapper for NumPy and
    CuPy arrays).  Raises TypeError when one is not an array or they mix namespaces; see
    ``namespace_of`` for a lenient form of one array."""
    return array_api_compat.array_namespace(*arrays)


def device_of(x):
    """The device of array ``x``, as the namespace's ``device=`` arguments take it."""
    return array_api_compat.device(x)


def is_cupy_array(x) -> bool:
    """Whether ``x`` is a ``cupy.ndarray`` (without importing CuPy)."""
    return array_api_compat.is_cupy_array(x)


def to_numpy(x) -> np.ndarray:
    """Host copy (or view, for NumPy) of any array as a ``numpy.ndarray``."""
    if isinstance(x, np.ndarray) or np.isscalar(x):
        return np.asarray(x)
    if is_cupy_array(x):
        return x.get()
    return np.from_dlpack(x)


def from_host_like(xp: ModuleType, host, like):
    """The host array ``host`` as an array of namespace xp with ``like``'s dtype and device."""
    return xp.asarray(np.ascontiguousarray(host), dtype=like.dtype, device=device_of(like))


def dtype_of(xp: ModuleType, name: str):
    """The namespace's floating dtype called ``name`` ('float32' or 'float64')."""
    if name not in _DTYPES:
        raise ValueError(f"dtype must be one of {_DTYPES}, got {name!r}")
    return getattr(xp, name)


_add_reduce = np.add.reduce


def xsum(xp: ModuleType, a, axis=None, keepdims: bool = False):
    """``xp.sum(a, axis=axis, keepdims=keepdims)``; for NumPy arrays the ufunc reduction is
    called directly, since ``np.sum``'s wrapper costs a few microseconds per call, which adds
    up over the many small arrays of a training step.  Same result, same dtype."""
    if type(a) is np.ndarray:
        return _add_reduce(a, axis=axis, keepdims=keepdims)
    return xp.sum(a, axis=axis, keepdims=keepdims)


def xmean(xp: ModuleType, a, axis=None, keepdims: bool = False):
    """``xp.mean`` for floating arrays, with ``xsum``'s shortcut for NumPy arrays."""
    if type(a) is np.ndarray:
        count = a.size if axis is None else a.shape[axis]
        return _add_reduce(a, axis=axis, keepdims=keepdims) / count
    return xp.mean(a, axis=axis, keepdims=keepdims)


def xflat(xp: ModuleType, a):
    """``xp.reshape(a, (-1,))``, through the array's own method for NumPy arrays (a view when
    a is contiguous)."""
    if type(a) is np.ndarray:
        return a.reshape(-1)
    return xp.reshape(a, (-1,))
