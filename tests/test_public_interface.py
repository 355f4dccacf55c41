"""The public interface the feature modules use: KAN.from_layers, fit_inputs, FitSettings,
the layer walk (stack) and the kernel protocol's array-API defaults."""

from __future__ import annotations

import array_api_compat.numpy as npx
import numpy as np
import pytest

import kanarray as ka
from kanarray import stack
from kanarray.backends import get_kernels
from kanarray.backends.generic import Kernels
from helpers import host, random_model


def _trained(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-3, 5, (64, 2))
    y = np.sin(x[:, :1]) + x[:, 1:] ** 2 / 10
    model = ka.KAN([2, 3, 1], grid=4, seed=seed, bias_trainable=True, extrapolate="linear", dtype="float64")
    model.scale_inputs(x.min(axis=0), x.max(axis=0))
    model.fit(x, y, steps=2, progress=False)
    return model, x


def test_from_layers_like_a_model_carries_every_attribute():
    model, x = _trained()
    copy = ka.KAN.from_layers([layer.copy() for layer in model.layers], like=model)
    for name in ("width", "base_fun", "grid_range", "seed", "dtype_name", "bias_trainable", "backend", "extrapolate",
                 "grid", "k"):
        assert getattr(copy, name) == getattr(model, name), name
    np.testing.assert_array_equal(copy.input_scaling[0], model.input_scaling[0])
    np.testing.assert_array_equal(copy.input_scaling[1], model.input_scaling[1])
    assert copy.fit_inputs is model.fit_inputs
    np.testing.assert_array_equal(host(copy(x)), host(model(x)))
    assert list(copy.parameters()) == list(model.parameters())


def test_from_layers_attributes_override_and_defaults_apply_without_like():
    model, _ = _trained()
    bare = ka.KAN.from_layers(model.layers)
    assert (bare.width, bare.seed, bare.bias_trainable, bare.input_scaling, bare.fit_inputs) == (
        [2, 3, 1], 0, False, None, None)
    assert bare.dtype_name == "float64" and bare.grid_range == [(-1.0, 1.0)] * 2
    other = ka.KAN.from_layers(model.layers, like=model, seed=7, input_scaling=None, fit_inputs=None)
    assert (other.seed, other.input_scaling, other.fit_inputs) == (7, None, None)


@pytest.mark.parametrize("layers, attributes, error, match", [
    ([], {}, ValueError, "non-empty list of KANLayer"),
    ("swap", {}, ValueError, "does not follow layer 0"),
    ("model", {"colour": 1}, TypeError, "unknown attributes \\['colour'\\]"),
    ("model", {"grid_range": [(-1, 1)]}, ValueError, "1 ranges for 2 layers"),
    ("model", {"base_fun": "tanh"}, ValueError, "base_fun must be one of"),
    ("model", {"input_scaling": (np.zeros(3), np.ones(3))}, ValueError, "shape \\(2,\\)"),
])
def test_from_layers_refuses_what_does_not_fit(layers, attributes, error, match):
    model = random_model("numpy", [2, 3, 1])
    layers = {"swap": model.layers[::-1], "model": model.layers}.get(layers, layers) if isinstance(layers, str) \
        else layers
    with pytest.raises(error, match=match):
        ka.KAN.from_layers(layers, **attributes)


def test_fit_inputs_are_the_prepared_inputs_and_are_checked():
    model, x = _trained()
    np.testing.assert_array_equal(host(model.fit_inputs), host(model.prepare_inputs(x)))
    with pytest.raises(ValueError, match=r"shape \(S, 2\)"):
        model.fit_inputs = np.zeros((4, 3))
    model.fit_inputs = None
    with pytest.raises(ValueError, match="no samples"):
        model.attribute()


def test_fit_settings_object_and_keywords_train_identically():
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, (40, 2))
    y = x[:, :1] * x[:, 1:]
    settings = ka.FitSettings(steps=3, opt="Adam", lr=0.05, lamb=1e-3, batch_size=20, progress=False)
    assert settings.opt == "adam" and settings.regularization.lamb == 1e-3
    a, b, c = (ka.KAN([2, 3, 1], grid=3, seed=2) for _ in range(3))
    ha = a.fit(x, y, steps=3, opt="adam", lr=0.05, lamb=1e-3, batch_size=20, progress=False)
    hb = b.fit(x, y, settings)
    hc = c.fit(x, y, settings.replace(steps=1), steps=3)  # keywords amend a settings object
    assert ha["train_loss"] == hb["train_loss"] == hc["train_loss"]
    for name, p in a.parameters().items():
        np.testing.assert_array_equal(b.parameters()[name], p)


@pytest.mark.parametrize("options, error, match", [
    (dict(stepz=3), TypeError, r"unknown settings \['stepz'\]"),
    (dict(steps=0), ValueError, "steps"),
    (dict(opt="rmsprop"), ValueError, "opt must be one of"),
    (dict(lr=-1.0), ValueError, "lr"),
    (dict(frozen=[3]), ValueError, "frozen must be a list of parameter names"),
    (dict(progress="sometimes"), ValueError, "progress must be"),
    (dict(lamb=float("nan")), ValueError, "lamb"),
])
def test_fit_settings_refuse_bad_values_before_training(options, error, match):
    model = random_model("numpy", [2, 2, 1])
    before = {name: np.array(p) for name, p in model.parameters().items()}
    with pytest.raises(error, match=match):
        model.fit(np.zeros((8, 2)), np.zeros((8, 1)), **options)
    with pytest.raises(error, match=match):
        ka.FitSettings.of(None, **options)
    for name, p in model.parameters().items():
        np.testing.assert_array_equal(p, before[name])


def test_traverse_visits_in_order_and_backpropagate_names_like_parameters():
    model = random_model("numpy", [2, 3, 2, 1])
    x = np.random.default_rng(0).uniform(-1, 1, (5, 2))
    seen = []
    out, items = stack.traverse(model.layers, x, lambda l, layer, h: (layer.forward(h)[0], (l, h.shape)))
    assert items == [(0, (5, 2)), (1, (5, 3)), (2, (5, 2))]
    np.testing.assert_array_equal(out, host(model(x)))
    grads, gx = stack.backpropagate(model.layers, np.ones((5, 1)),
                                    lambda l, layer, g: (seen.append(l) or {"coef": l}, g), names=None)
    assert seen == [2, 1, 0] and list(grads) == ["layers.2.coef", "layers.1.coef", "layers.0.coef"]
    assert [len(h) for h in stack.layer_inputs(model.layers, x)] == [5, 5, 5]


def test_kernel_protocol_defaults_match_the_numpy_kernels():
    """Kernels' array-API defaults against NumPy's overrides on one layer: the per-edge pass
    (both ways), the penalty terms, the base function and an Adam step."""
    model = random_model("numpy", [3, 4], grid=5)
    layer = model.layers[0]
    rng = np.random.default_rng(3)
    x = rng.uniform(-1.2, 1.2, (30, 3))
    gy, gphi = rng.normal(size=(30, 4)), rng.normal(size=(3, 30, 4))
    generic, native = Kernels(npx), get_kernels(npx)
    args = (x, layer.grid, layer.coef, layer.mask * layer.scale_sp, layer.mask * layer.scale_base, layer.bias,
            layer.k, layer.base_fun)
    out = {}
    for name, kernels in (("generic", generic), ("native", native)):
        y, phi, cache = kernels.edge_layer_forward(*args, need_dx=True)
        out[name] = (y, phi, *kernels.edge_layer_backward(cache, gy, gphi, need_dx=True))
    for a, b in zip(out["generic"], out["native"]):
        np.testing.assert_allclose(b, a, rtol=1e-11, atol=1e-12)
    sphi, sx = rng.uniform(0.1, 1, (3, 4)), rng.uniform(0.2, 1, 3)
    (v0, (d0, e0)), (v1, (d1, e1)) = (k.spread_penalty(sphi, sx, 0.7, 2.0, grad=True) for k in (generic, native))
    np.testing.assert_allclose(v1, v0, rtol=1e-13)
    np.testing.assert_allclose(d1, d0, rtol=1e-12)
    np.testing.assert_allclose(e1, e0, rtol=1e-12)
    p0, p1, g = np.ones(4), np.ones(4), np.full(4, 0.5)
    m0 = generic.adam_step(p0, g, None, None, lr=0.1, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                           decoupled=False, step=1)
    m1 = native.adam_step(p1, g, None, None, lr=0.1, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                          decoupled=False, step=1)
    np.testing.assert_allclose(p0, 1 - 0.1, rtol=1e-7)  # the first step moves by lr against the gradient's sign
    np.testing.assert_array_equal(p1, p0)
    np.testing.assert_array_equal(m1[1], m0[1])
    value, grad = native.base_with_grad("silu", x)
    np.testing.assert_allclose(value, x / (1 + np.exp(-x)), rtol=1e-14)
    np.testing.assert_allclose(native.base_grad("silu", x), grad, rtol=1e-14)


def test_fit_shows_every_setting_in_its_signature():
    import inspect

    params = inspect.signature(ka.KAN.fit).parameters
    assert [name for name in params if name in ka.FitSettings.names()] == list(ka.FitSettings.names())
    assert params["steps"].default == ka.FitSettings().steps and params["opt"].default == "lbfgs"
