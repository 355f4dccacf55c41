"""Property-based checks: the NumPy kernels equal the generic dense kernels on arbitrary
shapes, orders, knots (uniform, jittered, with repeats) and inputs, on and off the grid."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import array_api_compat.numpy as npx
from kanarray import spline
from kanarray.backends import GenericKernels
from kanarray.backends.numpy import NumpyKernels


@st.composite
def layer_case(draw):
    k = draw(st.integers(0, 5))
    G = draw(st.integers(1, 40))
    n = draw(st.integers(1, 5))
    m = draw(st.integers(1, 6))
    B = draw(st.integers(1, 300))
    kind = draw(st.sampled_from(["uniform", "jitter", "repeats", "random"]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    lo = draw(st.floats(-5, 4))
    hi = lo + draw(st.floats(0.1, 6))
    grid = np.asarray(spline.uniform_grid(n, G, k, (lo, hi), xp=npx, dtype=np.float64))
    h = (hi - lo) / G
    if kind == "jitter":
        grid = np.sort(grid + rng.uniform(-0.45 * h, 0.45 * h, grid.shape), axis=1)
    elif kind == "repeats" and grid.shape[1] > 3:
        j = rng.integers(1, grid.shape[1] - 1)
        grid[:, j] = grid[:, j - 1]
    elif kind == "random":
        grid = np.sort(rng.uniform(lo, hi, grid.shape), axis=1)
    span = grid[:, -1] - grid[:, 0]
    x = grid[:, 0] - 0.2 * span + 1.4 * span * rng.uniform(0, 1, (B, n))
    if draw(st.booleans()):  # some inputs exactly on knots
        cols = rng.integers(0, grid.shape[1], (B, n))
        pick = rng.uniform(0, 1, (B, n)) < 0.3
        x = np.where(pick, np.take_along_axis(grid.T, cols, axis=0), x)
    weight = rng.normal(size=(n, m, G + k))
    gy = rng.normal(size=(B, m))
    return k, grid, x, weight, gy


@settings(max_examples=200, deadline=None)
@given(case=layer_case(), mode=st.sampled_from(["auto", "dense", "sparse"]))
def test_numpy_kernels_equal_generic(case, mode):
    k, grid, x, weight, gy = case
    ref_y, ctx = GenericKernels(npx).spline_forward(x, grid, weight, k, need_dx=True)
    ref_w, ref_dx = GenericKernels(npx).spline_backward(ctx, gy, need_dx=True)
    y, ctx = NumpyKernels(mode).spline_forward(x, grid, weight, k, need_dx=True)
    w, dx = NumpyKernels(mode).spline_backward(ctx, gy, need_dx=True)
    scale = max(1.0, np.abs(ref_y).max())
    np.testing.assert_allclose(y, ref_y, atol=1e-11 * scale, rtol=0)
    np.testing.assert_allclose(w, ref_w, atol=1e-11 * max(1.0, np.abs(ref_w).max()), rtol=0)
    np.testing.assert_allclose(dx, ref_dx, atol=1e-9 * max(1.0, np.abs(ref_dx).max()), rtol=0)
