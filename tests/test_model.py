"""KAN semantics: initialization, live arrays, an independent reference, backends, moves."""

from __future__ import annotations

import math

import numpy as np
import pytest

import array_api_compat.numpy as npx
import kanarray as ka
from kanarray import spline

from helpers import host, perturb, random_model, reference_forward, tol

F64 = tol(np.float64, 4096)  # 9.1e-13: two float64 evaluations of the same model, by other paths


@pytest.mark.parametrize("base_fun", ["silu", "identity", "zero"])
@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_forward_matches_edge_by_edge_reference(backend, base_fun, k):
    model = random_model(backend, [3, 4, 2], grid=5, k=k, base_fun=base_fun, seed=k)
    x = np.random.default_rng(0).uniform(-2.5, 2.5, (200, 3))
    y = host(model(model.xp.asarray(x)))
    assert y.shape == (200, 2)
    np.testing.assert_allclose(y, reference_forward(model, x), atol=F64, rtol=0)


def test_initialization_follows_pykan(backend):
    width, G, k, seed = [3, 4, 2], 6, 3, 7
    model = ka.KAN(width, grid=G, k=k, seed=seed, backend=backend)
    rng = np.random.default_rng(seed)
    for l, layer in enumerate(model.layers):
        n_in, n_out = width[l], width[l + 1]
        grid = host(layer.grid)
        assert grid.shape == (n_in, G + 2 * k + 1)
        np.testing.assert_allclose(grid[:, k : k + G + 1], np.tile(np.linspace(-1, 1, G + 1), (n_in, 1)), atol=1e-15)
        np.testing.assert_allclose(np.diff(grid, axis=1), 2 / G, atol=1e-14)
        assert host(layer.coef).shape == (n_in, n_out, G + k)
        # the coefficients interpolate pykan's noise (U - 1/2) * 0.3 / G at the interior knots
        noise = (rng.random((G + 1, n_in, n_out)) - 0.5) * 0.3 / G
        knots = np.ascontiguousarray(grid[:, k : k + G + 1].T)
        at_knots = np.asarray(spline.coef2curve(knots, grid, host(layer.coef), k, xp=npx))
        np.testing.assert_allclose(at_knots, noise, atol=1e-12)
        expect_sb = (rng.random((n_in, n_out)) * 2 - 1) / math.sqrt(n_in)
        np.testing.assert_allclose(host(layer.scale_base), expect_sb, atol=1e-15)
        np.testing.assert_allclose(host(layer.scale_sp), 1 / math.sqrt(n_in), atol=1e-15)
        assert np.all(host(layer.mask) == 1) and np.all(host(layer.bias) == 0)


def test_initialization_is_deterministic_and_seeded():
    a, b, c = ka.KAN([2, 3, 1], seed=1), ka.KAN([2, 3, 1], seed=1), ka.KAN([2, 3, 1], seed=2)
    for name, p in a.parameters().items():
        np.testing.assert_array_equal(p, b.parameters()[name])
    assert not np.array_equal(a.layers[0].coef, c.layers[0].coef)


def test_parameters_are_live_and_named():
    model = ka.KAN([2, 3, 1])
    params = model.parameters()
    assert list(params) == [f"layers.{l}.{n}" for l in range(2) for n in ("coef", "scale_base", "scale_sp")]
    assert params["layers.1.coef"] is model.layers[1].coef
    assert model.num_parameters() == sum(p.size for p in params.values())
    with_bias = ka.KAN([2, 3, 1], bias_trainable=True).parameters()
    assert list(with_bias) == [f"layers.{l}.{n}" for l in range(2) for n in ("coef", "scale_base", "scale_sp", "bias")]
    assert set(model.value_and_grad(np.zeros((4, 2)), np.zeros((4, 1)))[1]) == set(params)
    with pytest.raises(ValueError, match="bias_trainable"):
        ka.KAN([2, 3, 1], bias_trainable="yes")


def test_fixed_biases_do_not_move_in_training():
    model = ka.KAN([2, 3, 1], seed=0)
    model.layers[1].bias[...] = 0.25
    x = np.random.default_rng(0).uniform(-1, 1, (50, 2))
    model.fit(x, np.sin(x[:, :1]), steps=3, progress=False)
    np.testing.assert_array_equal(model.layers[1].bias, [0.25])
    assert not np.array_equal(model.layers[1].coef, ka.KAN([2, 3, 1], seed=0).layers[1].coef)


def test_in_place_edits_change_the_output(backend):
    model = ka.KAN([2, 3, 1], seed=0, backend=backend)
    xp = model.xp
    x = xp.asarray(np.random.default_rng(0).uniform(-1, 1, (64, 2)))
    y0 = host(model(x))
    layer = model.layers[0]
    grid = host(layer.grid)
    layer.grid[...] = xp.asarray(grid * 0.7)  # in place: the very same array object
    y1 = host(model(x))
    assert not np.allclose(y0, y1)
    np.testing.assert_allclose(y1, reference_forward(model, host(x)), atol=F64)
    layer.coef[0, 0, :] = xp.asarray(np.linspace(-1, 1, layer.coef.shape[2]))
    y2 = host(model(x))
    assert not np.allclose(y1, y2)
    np.testing.assert_allclose(y2, reference_forward(model, host(x)), atol=F64)
    model.layers[1].mask[0, 0] = 0.0
    np.testing.assert_allclose(host(model(x)), reference_forward(model, host(x)), atol=F64)


def test_numpy_and_array_api_strict_agree_to_1e12():
    strict = pytest.importorskip("array_api_strict")
    rng = np.random.default_rng(0)
    for k, base_fun in [(1, "silu"), (3, "identity"), (5, "zero"), (3, "silu")]:
        a = random_model("numpy", [3, 5, 2], grid=6, k=k, base_fun=base_fun, seed=k)
        b = random_model(strict, [3, 5, 2], grid=6, k=k, base_fun=base_fun, seed=k)
        x = rng.uniform(-2, 2, (300, 3))
        y = rng.normal(size=(300, 2))
        np.testing.assert_allclose(host(b(strict.asarray(x))), a(x), atol=F64, rtol=0)
        la, ga = a.value_and_grad(x, y)
        lb, gb = b.value_and_grad(strict.asarray(x), strict.asarray(y))
        assert abs(float(la) - float(lb)) <= F64
        for name in ga:
            np.testing.assert_allclose(host(gb[name]), ga[name], atol=F64, rtol=0, err_msg=name)
        _, _, dxa = a.vjp(x, y)
        _, _, dxb = b.vjp(strict.asarray(x), strict.asarray(y))
        np.testing.assert_allclose(host(dxb), dxa, atol=F64, rtol=0)


def test_float32_model(backend):
    m64 = random_model(backend, [2, 4, 1], seed=3)
    m32 = random_model(backend, [2, 4, 1], seed=3, dtype="float32")
    xp = m64.xp
    x = np.random.default_rng(1).uniform(-1, 1, (100, 2))
    y32 = m32(xp.asarray(x, dtype=xp.float32))
    assert y32.dtype == xp.float32
    assert all(p.dtype == xp.float32 for p in m32.parameters().values())
    np.testing.assert_allclose(host(y32), host(m64(xp.asarray(x))), atol=tol(np.float32, 64))
    _, grads = m32.value_and_grad(xp.asarray(x, dtype=xp.float32), xp.asarray(np.ones((100, 1)), dtype=xp.float32))
    assert all(g.dtype == xp.float32 for g in grads.values())


def test_per_layer_grid_k_and_range():
    model = ka.KAN([2, 3, 1], grid=[4, 7], k=[2, 3], grid_range=[(-2, 2), (-1, 1)])
    assert model.grid == [4, 7] and model.k == [2, 3]
    assert model.layers[0].grid.shape == (2, 4 + 4 + 1)
    assert model.layers[1].coef.shape == (3, 1, 10)
    np.testing.assert_allclose(model.layers[0].grid[:, 2], -2.0)
    assert model(np.zeros((5, 2))).shape == (5, 1)


def test_to_moves_between_backends_and_dtypes():
    strict = pytest.importorskip("array_api_strict")
    model = perturb(ka.KAN([2, 3, 1], seed=0))
    x = np.random.default_rng(0).uniform(-1, 1, (20, 2))
    y = model(x)
    assert model.to(strict) is model and model.backend == "array_api_strict"
    np.testing.assert_allclose(host(model(strict.asarray(x))), y, atol=tol(np.float64, 32))
    model.to("numpy", dtype="float32")
    assert model.dtype == np.float32 and model.layers[0].coef.dtype == np.float32
    np.testing.assert_allclose(model(x), y, atol=tol(np.float32, 64))


def test_repr_names_the_shape():
    text = repr(ka.KAN([2, 5, 1], grid=5, k=3))
    assert "width=[2, 5, 1]" in text and "backend='numpy'" in text


@pytest.mark.parametrize("base_fun", ["silu", "identity", "zero"])
def test_far_inputs_give_finite_outputs_and_gradients(backend, base_fun):
    """Off the grid only the base branch remains, however far: no inf * 0 = NaN."""
    model = random_model(backend, [2, 3, 1], seed=0, base_fun=base_fun)
    xp = model.xp
    x = np.array([[1e100, 0.0], [-1e120, 0.5], [3e5, -7e7], [1e150, -1e140]])
    y = host(model(xp.asarray(x)))
    assert np.all(np.isfinite(y))
    _, grads = model.value_and_grad(xp.asarray(x), xp.asarray(np.zeros((4, 1))))
    assert all(np.all(np.isfinite(host(g))) for g in grads.values())
    _, _, dx = model.vjp(xp.asarray(x), xp.asarray(np.ones((4, 1))))
    assert np.all(np.isfinite(host(dx)))
    np.testing.assert_allclose(y[2:3], reference_forward(model, x[2:3]), rtol=1e-12)


def test_to_a_narrower_dtype_refuses_values_that_overflow_and_keeps_the_model():
    model = ka.KAN([2, 1], grid=3, seed=0)
    model.layers[0].coef[0, 0, 0] = 1e300
    with pytest.raises(ValueError, match=r"to\(dtype='float32'\): layer 0: coef holds 1 value\(s\) beyond the new "
                                         r"dtype's range \(up to 1e\+300\)"):
        model.to(dtype="float32")
    assert model.dtype_name == "float64" and host(model.layers[0].coef)[0, 0, 0] == 1e300
    model.layers[0].coef[0, 0, 0] = 1.0
    assert model.to(dtype="float32").dtype_name == "float32"


def test_to_keeps_values_that_were_not_finite_before():
    """to() only refuses what the cast itself breaks: a model holding NaN can still be moved to inspect it."""
    model = ka.KAN([2, 1], grid=3, seed=0)
    model.layers[0].coef[0, 0, 0] = np.nan
    assert np.isnan(host(model.to(dtype="float32").layers[0].coef)[0, 0, 0])
