"""B-spline bases against scipy, on both the dense reference and the NumPy local kernel."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.interpolate import BSpline

import array_api_compat.numpy as npx
from kanarray import spline
from kanarray.backends.numpy import interval_index, local_basis

from helpers import asarray, host

K_VALUES = [0, 1, 2, 3, 5]


def random_grid(rng, n, G, k, repeats=False):
    """Random non-decreasing knots (n, G + 2k + 1); with repeats, some knots coincide."""
    g = np.sort(rng.uniform(-1, 1, (n, G + 2 * k + 1)), axis=1)
    if repeats:
        g[:, 4] = g[:, 3]
        g = np.sort(g, axis=1)
    return g


def scipy_basis(x, grid, k):
    """(batch, n, nb) bases and derivatives from scipy's BSpline.basis_element, one basis at a time."""
    n, n_knots = grid.shape
    nb = n_knots - k - 1
    B = np.zeros((x.shape[0], n, nb))
    dB = np.zeros_like(B)
    for i in range(n):
        for j in range(nb):
            knots = grid[i, j : j + k + 2]
            if knots[-1] == knots[0]:
                continue  # a basis on a single point is zero everywhere
            b = BSpline.basis_element(knots, extrapolate=False)
            inside = (x[:, i] >= knots[0]) & (x[:, i] < knots[-1])
            B[inside, i, j] = b(x[inside, i])
            if k > 0:
                try:
                    dB[inside, i, j] = b.derivative()(x[inside, i])
                except ValueError:  # scipy will not differentiate across a repeated knot
                    dB[:, i, j] = np.nan
    return B, dB


def assert_derivatives_close(got, ref):
    known = ~np.isnan(ref)
    scale = max(1.0, np.abs(ref[known]).max())
    np.testing.assert_allclose(got[known], ref[known], atol=1e-9 * scale, rtol=0)


def local_dense(x, grid, k, need_deriv=True):
    """The NumPy kernel's local values scattered into a dense (batch, n, nb) tensor."""
    B_, n = x.shape
    nb = grid.shape[1] - k - 1
    cols, vals, dvals = local_basis(x, grid, k, need_deriv=need_deriv)
    dense = np.zeros((B_, n * nb + 1))
    ddense = np.zeros((B_, n * nb + 1))
    rows = np.repeat(np.arange(B_), n * (k + 1))
    np.add.at(dense, (rows, cols.reshape(-1)), vals.reshape(-1))
    np.add.at(ddense, (rows, cols.reshape(-1)), dvals.reshape(-1))
    return dense[:, :-1].reshape(B_, n, nb), ddense[:, :-1].reshape(B_, n, nb)


def test_extended_uniform_grid():
    grid = np.asarray(spline.uniform_grid(3, 5, 3, (-1, 2), xp=npx, dtype=np.float64))
    assert grid.shape == (3, 5 + 2 * 3 + 1)
    np.testing.assert_allclose(grid[0], np.linspace(-1 - 3 * 0.6, 2 + 3 * 0.6, 12), atol=1e-15)
    np.testing.assert_allclose(np.diff(grid, axis=1), 0.6, atol=1e-14)


def test_extend_grid_uses_average_interior_spacing():
    interior = np.array([[-1.0, -0.9, 0.5, 1.0]])
    ext = np.asarray(spline.extend_grid(interior, 2, xp=npx))
    np.testing.assert_allclose(ext, [[-1 - 2 * 2 / 3, -1 - 2 / 3, -1.0, -0.9, 0.5, 1.0, 1 + 2 / 3, 1 + 4 / 3]])


@pytest.mark.parametrize("k", K_VALUES)
@pytest.mark.parametrize("repeats", [False, True])
def test_dense_basis_matches_scipy(xp, k, repeats):
    rng = np.random.default_rng(k + 10 * repeats)
    grid = random_grid(rng, 3, 6, k, repeats)
    x = rng.uniform(-1.3, 1.3, (400, 3))
    x[:5] = grid[:, 2:7].T  # exactly on knots
    ref, dref = scipy_basis(x, grid, k)
    B, dB = spline.basis_with_derivative(asarray(xp, x), asarray(xp, grid), k)
    np.testing.assert_allclose(host(B), ref, atol=1e-12, rtol=0)
    np.testing.assert_allclose(host(spline.basis(asarray(xp, x), asarray(xp, grid), k)), ref, atol=1e-12, rtol=0)
    assert_derivatives_close(host(dB), dref)


@pytest.mark.parametrize("k", K_VALUES)
@pytest.mark.parametrize("kind", ["random", "repeats", "uniform"])
def test_local_basis_matches_scipy(k, kind):
    rng = np.random.default_rng(100 + k)
    if kind == "uniform":
        grid = np.asarray(spline.uniform_grid(3, 7, k, (-1, 1), xp=npx, dtype=np.float64))
    else:
        grid = random_grid(rng, 3, 7, k, repeats=kind == "repeats")
    x = rng.uniform(-1.5, 1.5, (500, 3))
    x[:5] = grid[:, 2:7].T
    x[5] = grid[:, 0]
    x[6] = grid[:, -1]
    ref, dref = scipy_basis(x, grid, k)
    dense, ddense = local_dense(x, grid, k)
    np.testing.assert_allclose(dense, ref, atol=1e-12, rtol=0)
    assert_derivatives_close(ddense, dref)


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_partition_of_unity_inside_grid_range(xp, k):
    rng = np.random.default_rng(k)
    grid = random_grid(rng, 4, 9, k)
    lo, hi = grid[:, k], grid[:, -k - 1]  # the spline's base interval, where all bases exist
    x = lo + (hi - lo) * rng.uniform(0, 1, (300, 4))
    total = np.sum(host(spline.basis(asarray(xp, x), asarray(xp, grid), k)), axis=2)
    np.testing.assert_allclose(total, 1.0, atol=1e-13)
    dense, ddense = local_dense(x, grid, k)
    np.testing.assert_allclose(dense.sum(axis=2), 1.0, atol=1e-13)
    np.testing.assert_allclose(ddense.sum(axis=2), 0.0, atol=1e-8)


@pytest.mark.parametrize("k", [0, 1, 3])
def test_zero_outside_extended_knots(xp, k):
    grid = np.asarray(spline.uniform_grid(2, 5, k, (-1, 1), xp=npx, dtype=np.float64))
    x = np.array([[grid[0, 0] - 1e-9, grid[1, -1]], [-1e6, 1e6], [grid[0, -1] + 1.0, grid[1, 0] - 3.0]])
    assert np.all(host(spline.basis(asarray(xp, x), asarray(xp, grid), k)) == 0)
    dense, ddense = local_dense(x, grid, k)
    assert np.all(dense == 0) and np.all(ddense == 0)


@pytest.mark.parametrize("kind", ["uniform", "random", "repeats", "clustered"])
def test_interval_index_is_exact_half_open(kind):
    rng = np.random.default_rng(3)
    if kind == "uniform":
        grid = np.asarray(spline.uniform_grid(2, 50, 3, (-1, 1), xp=npx, dtype=np.float64))
    elif kind == "clustered":  # most knots in a tiny range: the bin lookup gives way to searchsorted
        grid = np.sort(np.concatenate([rng.uniform(-1, 1, (2, 6)), rng.uniform(0.1, 0.1001, (2, 51))], axis=1), axis=1)
    else:
        grid = random_grid(rng, 2, 50, 3, repeats=kind == "repeats")
    knots = grid.T.copy()  # every knot of both rows, exactly
    x = np.concatenate([knots, np.nextafter(knots, -np.inf), rng.uniform(-2, 2, (200, 2))])
    idx, _ = interval_index(x, grid)
    L = grid.shape[1] - 1
    for i in range(2):
        expect = np.searchsorted(grid[i], x[:, i], side="right") - 1
        off = (x[:, i] < grid[i, 0]) | (x[:, i] >= grid[i, -1])
        expect[off] = L
        np.testing.assert_array_equal(idx[:, i], expect)


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_curve2coef_recovers_spline(xp, k):
    rng = np.random.default_rng(k)
    grid = random_grid(rng, 2, 8, k)
    nb = grid.shape[1] - k - 1
    coef = rng.normal(size=(2, 3, nb))
    lo, hi = grid[:, k], grid[:, -k - 1]
    x = lo + (hi - lo) * rng.uniform(0, 1, (500, 2))
    y = spline.coef2curve(asarray(xp, x), asarray(xp, grid), asarray(xp, coef), k)
    assert y.shape == (500, 2, 3)
    fitted = spline.curve2coef(asarray(xp, x), y, asarray(xp, grid), k)
    np.testing.assert_allclose(host(fitted), coef, atol=1e-8)


def test_curve2coef_rank_deficient_gives_finite_min_norm():
    grid = np.asarray(spline.uniform_grid(1, 10, 3, (-1, 1), xp=npx, dtype=np.float64))
    x = np.full((20, 1), 0.05)  # every sample in one interval: most bases unconstrained
    y = np.ones((20, 1, 1))
    coef = np.asarray(spline.curve2coef(x, y, grid, 3, xp=npx))
    assert np.all(np.isfinite(coef))
    fit = np.asarray(spline.coef2curve(x, grid, coef, 3, xp=npx))
    np.testing.assert_allclose(fit, 1.0, atol=1e-10)
    untouched = np.ones(coef.shape[-1], bool)
    interval = np.searchsorted(grid[0], 0.05, side="right") - 1
    untouched[interval - 3 : interval + 1] = False  # the k + 1 = 4 bases alive at x = 0.05
    np.testing.assert_allclose(coef[0, 0, untouched], 0.0, atol=1e-12)


@pytest.mark.parametrize("k", K_VALUES)
@pytest.mark.parametrize("repeats", [False, True])
def test_interval_polynomials_evaluate_to_the_bases(k, repeats):
    """spline.interval_polynomials (host tables of the NumPy kernels and the ONNX exporter): on
    every interval, sum_p C[i, v, p, m] f**p is the dense basis B_{v-k+m}; on uniform rows the
    tables are spline.cardinal_coefficients."""
    rng = np.random.default_rng(7 + k)
    n, G = 3, 6
    grid = random_grid(rng, n, G, k, repeats=repeats)
    L = grid.shape[1] - 1
    step = (grid[:, -1] - grid[:, 0]) / L
    C = spline.interval_polynomials(grid, k, step)
    assert C.shape == (n, L + 1, k + 1, k + 1) and C.dtype == np.float64
    assert np.all(C[:, L] == 0)
    x = rng.uniform(grid[:, 0], grid[:, -1], (200, n))
    dense = spline.basis(x, grid, k, xp=npx)  # (200, n, L - k)
    idx, _ = interval_index(x, grid)
    for b in range(x.shape[0]):
        for i in range(n):
            v = idx[b, i]
            if v == L or grid[i, v + 1] == grid[i, v]:
                continue
            f = (x[b, i] - grid[i, v]) / (grid[i, v + 1] - grid[i, v])
            local = (f ** np.arange(k + 1)) @ C[i, v]  # (k + 1,) bases v - k .. v
            for m in range(k + 1):
                j = v - k + m
                if 0 <= j < L - k:
                    np.testing.assert_allclose(local[m], dense[b, i, j], rtol=1e-9, atol=1e-12)
    uniform = spline.uniform_grid(2, G, k, xp=npx, dtype=np.float64)
    Cu = spline.interval_polynomials(uniform, k, (uniform[:, -1] - uniform[:, 0]) / L)
    card, dcard = spline.cardinal_coefficients(k)
    np.testing.assert_allclose(Cu[:, :L], np.broadcast_to(card, Cu[:, :L].shape), atol=1e-12)
    np.testing.assert_allclose(dcard[:-1], np.arange(1, k + 1)[:, None] * card[1:], atol=1e-12)  # d/df
    assert np.all(dcard[-1] == 0)
