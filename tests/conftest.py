"""Shared fixtures: every numerical test runs on each backend through ``xp``."""

from __future__ import annotations

import numpy as np
import pytest

from kanarray._namespace import resolve_backend, to_numpy

BACKENDS = ["numpy", "array_api_strict"]


def _backend_params():
    params = [pytest.param(name, id=name) for name in BACKENDS]
    params.append(pytest.param("cupy", id="cupy", marks=pytest.mark.gpu))
    return params


@pytest.fixture(params=_backend_params())
def backend(request):
    """A backend name; cupy only where CuPy and a GPU are present."""
    name = request.param
    if name == "cupy":
        cupy = pytest.importorskip("cupy")
        try:
            cupy.cuda.runtime.getDeviceCount()
        except Exception:  # pragma: no cover - depends on the machine
            pytest.skip("no CUDA device")
    elif name == "array_api_strict":
        pytest.importorskip("array_api_strict")
    return name


@pytest.fixture
def xp(backend):
    return resolve_backend(backend)


def asarray(xp, a, dtype=None):
    """Host array -> array of namespace xp (float64 unless said)."""
    a = np.asarray(a)
    return xp.asarray(a, dtype=getattr(xp, dtype or "float64"))


def host(a):
    return np.asarray(to_numpy(a))
