"""Bad input gets a clear error, raised before anything changes."""

from __future__ import annotations

import numpy as np
import pytest

import kanarray as ka
from kanarray.optim import Adam

from helpers import host


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
        (dict(width=[2, [3, 1], 1]), "multiplication nodes"),
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
