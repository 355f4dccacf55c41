"""Shared fixtures: every numerical test runs on each backend through ``xp``."""

from __future__ import annotations

import functools

import pytest
from helpers import gpu_cupy

from kanarray._namespace import resolve_backend

BACKENDS = ["numpy", "array_api_strict"]
STRICT_DEVICE = "device1"


def _strict_arrays_on_a_device():
    """Make array-api-strict create arrays on its non-host ``device1`` unless told otherwise.

    Such arrays refuse ``numpy.asarray`` and mixing with host arrays, as CuPy's do, so every
    test on the ``array_api_strict`` backend also checks, without a GPU, that kanarray never
    converts a device array to NumPy implicitly.  The host copies kanarray means to make go
    through ``to_numpy`` (DLPack).  Only the creation functions of the module change, and only
    in the test process."""
    try:
        import array_api_strict as strict
    except ImportError:  # pragma: no cover - the test extra installs it
        return
    if getattr(strict, "_kanarray_device", None) is not None:
        return
    on_device, on_host = strict.Device(STRICT_DEVICE), strict.Device("CPU_DEVICE")

    def defaulting_to_the_device(create):
        @functools.wraps(create)
        def wrapper(*args, device=None, **kwargs):
            return create(*args, device=on_device if device in (None, on_host) else device, **kwargs)

        return wrapper

    for name in ("arange", "asarray", "empty", "eye", "from_dlpack", "full", "linspace", "ones", "zeros"):
        setattr(strict, name, defaulting_to_the_device(getattr(strict, name)))
    strict._kanarray_device = on_device


_strict_arrays_on_a_device()


def _backend_params():
    params = [pytest.param(name, id=name) for name in BACKENDS]
    params.append(pytest.param("cupy", id="cupy", marks=pytest.mark.gpu))
    return params


@pytest.fixture(params=_backend_params())
def backend(request):
    """A backend name; cupy only where CuPy and a GPU are present."""
    name = request.param
    if name == "cupy":
        gpu_cupy()
    elif name == "array_api_strict":
        pytest.importorskip("array_api_strict")
    return name


@pytest.fixture
def xp(backend):
    return resolve_backend(backend)



# -- the skip summary --------------------------------------------------------------------------
GPU_SKIP = "GPU tests skipped (CuPy or a CUDA device is missing)"


def _is_gpu_skip(reason: str) -> bool:
    return "cupy" in reason.lower() or "cuda device" in reason.lower()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Every skip for want of CuPy or a GPU reported from one place with one reason, so that
    ``-ra`` folds them into one counted line instead of one line per test."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and isinstance(report.longrepr, tuple) and len(report.longrepr) == 3:
        reason = report.longrepr[2]
        if _is_gpu_skip(str(reason)):
            report.longrepr = (str(gpu_cupy.__code__.co_filename), gpu_cupy.__code__.co_firstlineno,
                               f"{GPU_SKIP}: {str(reason).removeprefix('Skipped: ')}")
