"""Bad input gets a clear error, raised before anything changes."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import host
from hypothesis import given, settings
from hypothesis import strategies as st

import kanarray as ka
from kanarray.optim import Adam


@pytest.fixture
def model(backend):
    return ka.KAN([2, 3, 1], seed=0, backend=backend)


def snapshot(model):
    return {name: host(p).copy() for name, p in model.parameters().items()} | {
        f"grid{l}": host(layer.grid).copy() for l, layer in enumerate(model.layers)
    }


def assert_unchanged(model, before):
    after = snapshot(model)
    for name in before:
        np.testing.assert_array_equal(after[name], before[name], err_msg=name)


@pytest.mark.parametrize("shape", [(5,), (5, 3), (5, 2, 1), (2, 5)])
def test_wrong_shape_names_expected_shape(model, shape):
    x = model.xp.asarray(np.zeros(shape))
    with pytest.raises(ValueError, match=r"x must have shape \(batch, 2\)"):
        model(x)


def test_single_feature_hint():
    model = ka.KAN([1, 1])
    with pytest.raises(ValueError, match=r"reshape\(-1, 1\)"):
        model(np.zeros(4))


def test_empty_batch(model):
    with pytest.raises(ValueError, match="at least one sample"):
        model(model.xp.asarray(np.zeros((0, 2))))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_input(model, bad):
    x = np.zeros((4, 2))
    x[2, 1] = bad
    before = snapshot(model)
    with pytest.raises(ValueError, match="NaN or infinite"):
        model(model.xp.asarray(x))
    with pytest.raises(ValueError, match="NaN or infinite"):
        model.value_and_grad(model.xp.asarray(np.zeros((4, 2))), model.xp.asarray(x[:, 1:]))
    assert_unchanged(model, before)


def test_integer_and_bool_inputs_are_cast(model):
    xp = model.xp
    xi = xp.asarray(np.array([[0, 1], [-1, 0]]))
    out = model(xi)
    assert out.dtype == model.dtype
    np.testing.assert_array_equal(host(out), host(model(xp.asarray(np.array([[0.0, 1.0], [-1.0, 0.0]])))))
    xb = xp.asarray(np.array([[True, False]]))
    np.testing.assert_array_equal(host(model(xb)), host(model(xp.asarray(np.array([[1.0, 0.0]])))))


def test_lists_are_accepted():
    model = ka.KAN([2, 3, 1])
    np.testing.assert_array_equal(model([[0.1, 0.2]]), model(np.array([[0.1, 0.2]])))


def test_complex_input_rejected():
    with pytest.raises(TypeError, match="complex"):
        ka.KAN([2, 1])(np.zeros((3, 2), dtype=complex))


def test_array_from_another_namespace():
    strict = pytest.importorskip("array_api_strict")
    numpy_model = ka.KAN([2, 1])
    with pytest.raises(TypeError, match="array_api_strict array but the model is on backend 'numpy'"):
        numpy_model(strict.asarray(np.zeros((3, 2))))
    strict_model = ka.KAN([2, 1], backend=strict)
    with pytest.raises(TypeError, match="numpy array but the model is on backend 'array_api_strict'"):
        strict_model(np.zeros((3, 2)))


def test_target_shape_checked(model):
    xp = model.xp
    x = xp.asarray(np.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"y must have shape \(batch, 1\)"):
        model.value_and_grad(x, xp.asarray(np.zeros((4, 2))))
    with pytest.raises(ValueError, match=r"y must have shape \(4, 1\) to match x"):
        model.value_and_grad(x, xp.asarray(np.zeros((3, 1))))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(width=[2]), "at least two entries"),
        (dict(width=[2, 0, 1]), r"width\[1\] must be an integer >= 1"),
        (dict(width=[2, 2.5, 1]), r"width\[1\] must be an integer"),
        (dict(width=[2, [3, 1, 1], 1]), r"an entry is an int \(addition nodes\) or a pair"),
        (dict(width="21"), "list of layer sizes"),
        (dict(width=[2, 1], grid=0), "grid must be an integer >= 1"),
        (dict(width=[2, 1], grid=2.5), "grid must be an integer"),
        (dict(width=[2, 1], grid=True), "grid must be an integer"),
        (dict(width=[2, 1, 1], grid=[3]), "grid has 1 entries but the model has 2 layers"),
        (dict(width=[2, 1], k=-1), "k must be an integer >= 0"),
        (dict(width=[2, 1], grid_range=(1, -1)), "lo < hi"),
        (dict(width=[2, 1], grid_range=(0, float("nan"))), "finite"),
        (dict(width=[2, 1], grid_range="ab"), "pair"),
        (dict(width=[2, 1], base_fun="relu"), "base_fun must be one of"),
        (dict(width=[2, 1], dtype="int32"), "dtype must be one of"),
        (dict(width=[2, 1], backend="torch"), "unknown backend 'torch'"),
        (dict(width=[2, 1], noise_scale=float("inf")), "noise_scale must be a finite number"),
        (dict(width=[2, 1], seed=-1), "seed must be a non-negative integer"),
        (dict(width=[2, 1], seed="abc"), "seed must be a non-negative integer"),
        (dict(width=[2, 1], seed=1.5), "seed must be a non-negative integer"),
        (dict(width=[2, 1], seed=True), "seed must be a non-negative integer"),
        (dict(width=[2, 1], seed=2**128), "below 2\\*\\*128"),
        (dict(width=[2, 1], grid_range=(-1e308, 1e308)), "too wide for float64"),
        (dict(width=[2, 1], grid_range=(-1e30, 1e30), dtype="float32"), "too wide for float32"),
        (dict(width=[2, 1], grid_range=(1.0, 1.0 + 1e-15), grid=100), "too narrow"),
        (dict(width=[2, 1, 1], grid_range=[(-1, 1), (0, float("inf"))]), "grid_range of layer 1 must be finite"),
        (dict(width=[2, 1], scale_base_sigma=1e308), "scale_base_sigma must have magnitude at most 1e\\+06"),
        (dict(width=[2, 1], scale_base_mu=-1e7), "scale_base_mu must have magnitude at most"),
        (dict(width=[2, 1], noise_scale=float("nan")), "noise_scale must be a finite number"),
        (dict(width=[2, 1], noise_scale="0.3"), "noise_scale must be a number"),
        (dict(width=[2, 1], k=21), "k must be an integer from 0 to 20"),
        (dict(width=[2, 1], k=2.0), "k must be an integer"),
        (dict(width=[2, 1], grid=5001), "grid must be an integer from 1 to 5000"),
        (dict(width=[2, 1], grid=[5, 6]), "grid has 2 entries but the model has 1 layers"),
        (dict(width=[2, True, 1]), r"width\[1\] must be an integer"),
        (dict(width=[2, -3, 1]), r"width\[1\] must be an integer >= 1"),
        (dict(width=[2, 1], bias_trainable="false"), "bias_trainable must be True or False"),
        (dict(width=[2, 1], bias_trainable=1), "bias_trainable must be True or False"),
        (dict(width=[2, 1], base_fun=None), "base_fun must be one of"),
        (dict(width=[2, 1], extrapolate="linear", k=1), "needs spline order k >= 2"),
    ],
)
def test_invalid_constructor_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ka.KAN(**kwargs)


def test_failed_move_leaves_model_as_it_was():
    model = ka.KAN([2, 3, 1])
    before = snapshot(model)
    with pytest.raises(ValueError, match="unknown backend"):
        model.to("jax")
    with pytest.raises(ValueError, match="dtype must be one of"):
        model.to(dtype="float16")
    assert model.backend == "numpy" and model.dtype == np.float64
    assert_unchanged(model, before)


def test_adam_rejects_bad_gradients_before_updating():
    model = ka.KAN([2, 3, 1])
    opt = Adam(model.parameters(), lr=0.1)
    x, y = np.zeros((4, 2)), np.ones((4, 1))
    _, grads = model.value_and_grad(x, y)
    before = snapshot(model)
    with pytest.raises(KeyError, match="missing"):
        opt.step({k: v for k, v in grads.items() if not k.endswith("scale_sp")})
    bad = dict(grads)
    bad["layers.1.coef"] = np.zeros((1, 1))
    with pytest.raises(ValueError, match="layers.1.coef"):
        opt.step(bad)
    assert_unchanged(model, before)
    assert set(opt.steps.values()) == {0}
    with pytest.raises(ValueError, match="lr"):
        Adam(model.parameters(), lr=-1.0)


def test_replaced_array_of_the_wrong_shape_is_named():
    model = ka.KAN([2, 3, 1], grid=5, k=3)
    model.layers[0].grid = np.zeros((2, 7))
    with pytest.raises(ValueError, match=r"grid must have shape \(2, 12\), got \(2, 7\)"):
        model(np.zeros((4, 2)))


def test_numpy_integer_arguments_are_accepted_as_before():
    model = ka.KAN([np.int64(2), 3, 1], grid=np.int32(4), k=np.int64(2), seed=np.int64(7))
    reference = ka.KAN([2, 3, 1], grid=4, k=2, seed=7)
    assert model.seed == 7 and isinstance(model.seed, int)
    np.testing.assert_array_equal(model(np.ones((2, 2))), reference(np.ones((2, 2))))


def test_from_layers_uses_the_constructors_checks():
    layers = [layer.copy() for layer in ka.KAN([2, 3, 1], seed=0).layers]
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        ka.KAN.from_layers(layers, seed="abc")
    with pytest.raises(ValueError, match="grid_range of layer 1 must be finite"):
        ka.KAN.from_layers(layers, grid_range=[(-1, 1), (1, -1)])
    with pytest.raises(ValueError, match="bias_trainable must be True or False"):
        ka.KAN.from_layers(layers, bias_trainable="yes")
    with pytest.raises(ValueError, match="layer 0 uses base_fun 'silu', but the model is to use 'identity'"):
        ka.KAN.from_layers(layers, base_fun="identity")
    bad = layers[1].copy()
    bad.grid[0, 3] = bad.grid[0, 6]
    with pytest.raises(ValueError, match="layer 1: grid: the knots of row 0 decrease"):
        ka.KAN.from_layers([layers[0], bad])
    bad = layers[0].copy()
    bad.coef[0, 0, 0] = np.inf
    with pytest.raises(ValueError, match="layer 0: coef holds NaN or infinite"):
        ka.KAN.from_layers([bad, layers[1]])


_numbers = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**6, 10**6),
                     st.sampled_from([1e6, -1e6, 1e7, 1e150, 1e300]))


@settings(max_examples=60, deadline=None)
@given(grid=st.integers(-2, 60), k=st.integers(-1, 25), lo=_numbers, span=_numbers,
       noise=_numbers, mu=_numbers, sigma=_numbers,
       seed=st.one_of(st.integers(-5, 2**130), st.none(), st.text(max_size=3)),
       dtype=st.sampled_from(["float32", "float64"]))
def test_any_constructor_arguments_give_a_clear_error_or_a_finite_model(grid, k, lo, span, noise, mu, sigma, seed,
                                                                         dtype):
    """Whatever the numbers: a ValueError naming the argument, or a model whose arrays and
    outputs on its grid range are finite (no numpy error, no inf)."""
    try:
        model = ka.KAN([2, 3, 1], grid=grid, k=k, grid_range=(lo, lo + span), noise_scale=noise, scale_base_mu=mu,
                       scale_base_sigma=sigma, seed=seed, dtype=dtype)
    except ValueError as exc:
        assert any(name in str(exc) for name in ("grid", "k ", "k must", "noise_scale", "scale_base", "seed")), exc
        return
    for layer in model.layers:
        for name, a in layer.arrays().items():
            assert np.all(np.isfinite(a)), name
    lo_, hi_ = model.grid_range[0]
    x = np.linspace(lo_, hi_, 7, dtype=dtype)[:, None] * np.ones((1, 2), dtype=dtype)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        y = model(x)
    assert np.all(np.isfinite(y))
