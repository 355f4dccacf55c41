"""The NumPy kernels (dense and sparse contraction) against the generic array-API kernels."""

from __future__ import annotations

import numpy as np
import pytest

import array_api_compat.numpy as npx
from kanarray import spline
from kanarray.backends import GenericKernels, get_kernels
from kanarray.backends.numpy import NumpyKernels, choose_contraction

from helpers import tol


@pytest.mark.parametrize("mode", ["dense", "sparse"])
@pytest.mark.parametrize("k", [0, 1, 2, 3, 5])
@pytest.mark.parametrize("m", [1, 3, 40])
@pytest.mark.parametrize("uniform", [True, False])
@pytest.mark.parametrize("B", [7, 20000])
def test_numpy_kernels_match_generic(mode, k, m, uniform, B):
    rng = np.random.default_rng(k + m)
    n, G = 3, 12
    grid = np.asarray(spline.uniform_grid(n, G, k, (-1, 1), xp=npx, dtype=np.float64))
    if not uniform:
        grid = np.sort(grid + rng.uniform(-0.05, 0.05, grid.shape), axis=1)
    x = rng.uniform(-1.8, 1.8, (B, n))
    x[: min(B, 5)] = grid[:, :5].T[: min(B, 5)]
    weight = rng.normal(size=(n, m, G + k))
    gy = rng.normal(size=(B, m))
    ref_y, ctx = GenericKernels(npx).spline_forward(x, grid, weight, k, need_dx=True)
    ref_w, ref_dx = GenericKernels(npx).spline_backward(ctx, gy, need_dx=True)
    kernels = NumpyKernels(mode)
    y, ctx = kernels.spline_forward(x, grid, weight, k, need_dx=True)
    w, dx = kernels.spline_backward(ctx, gy, need_dx=True)
    tol = 1e-12 * max(1.0, np.abs(ref_y).max())
    np.testing.assert_allclose(y, ref_y, atol=tol, rtol=0)
    np.testing.assert_allclose(w, ref_w, atol=1e-12 * max(1.0, np.abs(ref_w).max()), rtol=0)
    np.testing.assert_allclose(dx, ref_dx, atol=1e-10 * max(1.0, np.abs(ref_dx).max()), rtol=0)


@pytest.mark.parametrize("k", [0, 1, 2, 3, 5])
@pytest.mark.parametrize("m", [1, 3])
@pytest.mark.parametrize("uniform", [True, False])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_numpy_edge_kernels_match_generic(k, m, uniform, dtype):
    """Per-edge values, their x-derivatives and the weight gradient, inputs on knots and off
    the grid included, and a second call reusing the located inputs."""
    rng = np.random.default_rng(10 * k + m)
    n, G, B = 4, 7, 300
    grid = np.asarray(spline.uniform_grid(n, G, k, (-1, 1), xp=npx, dtype=np.float64))
    if not uniform:
        grid = np.sort(grid + rng.uniform(-0.05, 0.05, grid.shape), axis=1)
    x = rng.uniform(-1.8, 1.8, (B, n))
    x[:5] = grid[:, :5].T
    x[5:10] = grid[:, -5:].T
    grid, x = grid.astype(dtype), x.astype(dtype)
    g = rng.normal(size=(n, B, m)).astype(dtype)
    kernels = NumpyKernels()
    atol = tol(dtype, 128)
    ctx = None
    for _ in range(2):
        weight = rng.normal(size=(n, m, G + k)).astype(dtype)
        ref_spl, ref_dspl, ref_ctx = GenericKernels(npx).edge_forward(
            x.astype(np.float64), grid.astype(np.float64), weight.astype(np.float64), k, need_dx=True)
        ref_w = GenericKernels(npx).edge_backward(ref_ctx, g.astype(np.float64))
        spl, dspl, ctx = kernels.edge_forward(x, grid, weight, k, need_dx=True, ctx=ctx)
        w = kernels.edge_backward(ctx, g)
        assert spl.dtype == dspl.dtype == w.dtype == dtype
        assert spl.shape == (n, B, m) and w.shape == weight.shape
        scale = max(1.0, np.abs(ref_spl).max())
        np.testing.assert_allclose(spl, ref_spl, atol=atol * scale, rtol=0)
        np.testing.assert_allclose(w, ref_w, atol=atol * max(1.0, np.abs(ref_w).max()), rtol=0)
        # the derivative jumps at knots for k <= 1: compare away from them
        away = np.min(np.abs(x.T[:, :, None] - grid[:, None, :]), axis=2) > 1e-6 if k <= 1 else slice(None)
        np.testing.assert_allclose(dspl[away], ref_dspl[away], atol=100 * atol * max(1.0, np.abs(ref_dspl).max()),
                                   rtol=0)
        off = (x.T < grid[:, :1]) | (x.T >= grid[:, -1:])
        assert off.any() and np.all(spl[off] == 0) and np.all(dspl[off] == 0)


@pytest.mark.parametrize("mode", ["dense", "sparse"])
def test_float32_kernels_stay_float32_and_close(mode):
    rng = np.random.default_rng(0)
    grid = np.asarray(spline.uniform_grid(4, 20, 3, (-1, 1), xp=npx, dtype=np.float64))
    x = rng.uniform(-1.2, 1.2, (500, 4))
    weight = rng.normal(size=(4, 5, 23))
    gy = rng.normal(size=(500, 5))
    ref_y, ctx = NumpyKernels(mode).spline_forward(x, grid, weight, 3, need_dx=True)
    ref_w, ref_dx = NumpyKernels(mode).spline_backward(ctx, gy, need_dx=True)
    f = np.float32
    y, ctx = NumpyKernels(mode).spline_forward(x.astype(f), grid.astype(f), weight.astype(f), 3, need_dx=True)
    w, dx = NumpyKernels(mode).spline_backward(ctx, gy.astype(f), need_dx=True)
    assert y.dtype == w.dtype == dx.dtype == np.float32
    np.testing.assert_allclose(y, ref_y, atol=1e-4 * np.abs(ref_y).max())
    np.testing.assert_allclose(w, ref_w, atol=1e-4 * np.abs(ref_w).max())
    np.testing.assert_allclose(dx, ref_dx, atol=1e-3 * np.abs(ref_dx).max())


def test_grid_edit_in_place_is_seen_by_cached_tables():
    rng = np.random.default_rng(0)
    grid = np.asarray(spline.uniform_grid(2, 6, 3, (-1, 1), xp=npx, dtype=np.float64))
    x = rng.uniform(-1, 1, (50, 2))
    weight = rng.normal(size=(2, 1, 9))
    kernels = NumpyKernels()
    before, _ = kernels.spline_forward(x, grid, weight, 3, need_dx=False)
    grid *= 1.5  # same object, new knots
    after, _ = kernels.spline_forward(x, grid, weight, 3, need_dx=False)
    ref, _ = GenericKernels(npx).spline_forward(x, grid, weight, 3, need_dx=False)
    assert not np.allclose(before, after)
    np.testing.assert_allclose(after, ref, atol=1e-13)


def test_contraction_choice_follows_sparsity():
    assert choose_contraction(1024, 784, 64, 8, 3) == "dense"  # mnist's first layer
    assert choose_contraction(4096, 64, 64, 13, 3) == "dense"  # deep's middle layer
    assert choose_contraction(4096, 16, 1, 103, 3) == "sparse"  # fine's G = 100
    assert choose_contraction(4096, 64, 64, 1003, 3) == "sparse"
    assert choose_contraction(1000, 2, 5, 1003, 3) == "dense"  # too small for scipy's overhead
    assert choose_contraction(200_000, 784, 64, 8, 3) == "sparse"  # dense matrix would be ~5 GB


def test_dispatch():
    assert get_kernels(npx).name == "numpy"
    strict = pytest.importorskip("array_api_strict")
    assert get_kernels(strict).name == "generic"
    with pytest.raises(ValueError, match="contraction"):
        NumpyKernels("blas")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_large_grid_accuracy(dtype):
    """G = 1000 (grid extension's far end): the local kernels stay close to a float64 dense
    evaluation on the ideal knots, in both contraction modes."""
    rng = np.random.default_rng(0)
    G, k = 1000, 3
    grid64 = np.asarray(spline.uniform_grid(2, G, k, (-1, 1), xp=npx, dtype=np.float64))
    x = rng.uniform(-1.05, 1.05, (3000, 2)).astype(dtype)
    weight = rng.normal(size=(2, 2, G + k)).astype(dtype)
    ref, _ = GenericKernels(npx).spline_forward(x.astype(np.float64), grid64, weight.astype(np.float64), k,
                                                need_dx=False)
    for mode in ("dense", "sparse"):
        y, _ = NumpyKernels(mode).spline_forward(x, grid64.astype(dtype), weight, k, need_dx=False)
        assert np.abs(y - ref).max() <= tol(dtype, 400) * np.abs(ref).max(), mode


def test_grid_table_cache_is_keyed_by_content_and_bounded():
    from kanarray.backends.numpy import _TableCache

    cache = _TableCache(size=3)
    grid = np.asarray(spline.uniform_grid(3, 7, 3, (-1, 1), xp=npx, dtype=np.float64))
    first = cache.get(grid, 3)
    assert cache.get(grid.copy(), 3) is first  # equal knots in another array: shared
    assert cache.get(grid.astype(np.float32), 3) is not first  # another dtype: its own
    grid[0, 0] -= 0.5  # edited in place: another key, new tables
    edited = cache.get(grid, 3)
    assert edited is not first and edited.t0[0] == grid[0, 0]
    for shift in range(5):
        cache.get(grid + shift, 3)
    assert len(cache.entries) == 3
    small = _TableCache(max_bytes=1)
    small.get(grid, 3)
    small.get(grid + 1, 3)
    assert len(small.entries) == 1  # over the byte budget only the newest stays


@pytest.mark.parametrize("base_fun", ["silu", "identity", "zero"])
@pytest.mark.parametrize("k,extrapolate", [(0, "spline"), (1, "spline"), (3, "spline"), (2, "linear"),
                                           (3, "linear")])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_fused_edge_layer_matches_numpy_passes(base_fun, k, extrapolate, dtype, monkeypatch):
    """The compiled per-edge layer passes (numba) give what the NumPy passes give: outputs,
    edge activations, parameter gradients and dL/dx, inputs off the grid (and beyond the
    extension knots, where the two continuations differ) included."""
    pytest.importorskip("numba")
    from helpers import random_model

    model = random_model("numpy", [3, 4], grid=5, k=k, base_fun=base_fun, seed=k, dtype=dtype,
                         extrapolate=extrapolate)
    layer = model.layers[0]
    rng = np.random.default_rng(k)
    x = rng.uniform(-2.5, 2.5, (200, 3)).astype(dtype)
    x[:3] = np.asarray(layer.grid)[:, :3].T  # on knots
    gy = rng.normal(size=(200, 4)).astype(dtype)
    gphi = rng.normal(size=(3, 200, 4)).astype(dtype)
    kernels = get_kernels(npx)
    results = {}
    for fused in (False, True):
        monkeypatch.setattr(kernels, "fused", fused)
        y, phi, cache = layer.forward_edges(x, need_dx=True)
        assert cache.compiled == fused  # the compiled path's cache, or the NumPy one
        grads, dx = layer.backward_edges(cache, gy, gphi, need_dx=True)
        results[fused] = (y, phi, dx, grads)
    atol = tol(dtype, 1024)
    for a, b in zip(results[False][:3], results[True][:3]):
        assert a.dtype == b.dtype == np.dtype(dtype)
        np.testing.assert_allclose(b, a, atol=atol * max(1.0, np.abs(a).max()), rtol=0)
    for name, g in results[False][3].items():
        np.testing.assert_allclose(results[True][3][name], g, atol=atol * max(1.0, np.abs(g).max()), rtol=0,
                                   err_msg=name)


def test_strict_backend_lives_on_a_device_that_refuses_implicit_host_copies():
    """The array_api_strict runs stand in for a GPU (conftest): a model's arrays and its outputs
    sit on device1, which numpy.asarray refuses; to_numpy copies through DLPack."""
    strict = pytest.importorskip("array_api_strict")
    import kanarray as ka
    from kanarray._namespace import to_numpy

    model = ka.KAN([2, 3, 1], grid=4, seed=0, backend="array_api_strict")
    y = model(strict.asarray(np.linspace(-1, 1, 10).reshape(5, 2)))
    assert model.layers[0].coef.device == y.device == strict.Device("device1")
    with pytest.raises(RuntimeError, match="device1"):
        np.asarray(y)
    np.testing.assert_allclose(to_numpy(y), np.asarray(ka.KAN([2, 3, 1], grid=4, seed=0)(
        np.linspace(-1, 1, 10).reshape(5, 2))), rtol=1e-12)
