"""``model.copy()``, ``copy.deepcopy`` and ``copy.copy``: independent models (layers, symbolic
edges, input scaling, fit_inputs), so a user can branch before ``auto_symbolic`` (in place);
and what a loaded model, which keeps no fit_inputs, says when asked for samples."""

from __future__ import annotations

import copy

import numpy as np
import pytest

import kanarray as ka

from helpers import asarray, host


def trained(xp, backend):
    """A [2, 3, 1] model with an input map, a fit and one symbolic edge, and its data."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-2, 2, (60, 2))
    y = np.sin(x[:, :1]) + x[:, 1:] ** 2
    x, y = asarray(xp, x), asarray(xp, y)
    model = ka.KAN([2, 3, 1], grid=4, seed=3, backend=backend)
    model.scale_inputs([-2, -2], [2, 2])
    model.fit(x, y, steps=3, progress=False)
    model.fix_symbolic(0, 0, 0, "sin")
    return model, x, y


def state(model):
    """Host copies of every layer array, the input map and fit_inputs."""
    out = {f"{l}.{name}": host(a).copy() for l, layer in enumerate(model.layers) for name, a in layer.arrays().items()}
    out["fit_inputs"] = host(model.fit_inputs).copy()
    out["input_scaling"] = np.concatenate(model.input_scaling)
    return out


def live_arrays(model):
    return [a for layer in model.layers for a in layer.arrays().values()] + [model.fit_inputs]


@pytest.mark.parametrize("how", ["copy", "deepcopy", "copy.copy"])
def test_a_copy_is_independent_of_the_original(backend, xp, how):
    model, x, y = trained(xp, backend)
    twin = {"copy": lambda m: m.copy(), "deepcopy": copy.deepcopy, "copy.copy": copy.copy}[how](model)
    assert type(twin) is ka.KAN and twin is not model and twin.xp is model.xp
    before = state(model)
    for name, a in state(twin).items():
        np.testing.assert_array_equal(a, before[name], err_msg=name)
    assert [layer.symbolic.names for layer in twin.layers] == [layer.symbolic.names for layer in model.layers]
    np.testing.assert_array_equal(host(twin(x)), host(model(x)))
    # no array is shared: changing the copy in place (fit, auto_symbolic, scale_inputs) leaves the original alone
    for a, b in zip(live_arrays(twin), live_arrays(model)):
        assert a is not b
    out = host(model(x))
    twin.fit(x, y, steps=2, progress=False)
    twin.auto_symbolic(lib=["x", "x^2", "sin"], r2_threshold=0.0)
    twin.scale_inputs([-3, -3], [3, 3])
    for name, a in state(model).items():
        np.testing.assert_array_equal(a, before[name], err_msg=name)
    assert model.layers[0].symbolic.names[1] == (None, None, None)
    assert twin.layers[0].symbolic.names[1] != (None, None, None)
    np.testing.assert_array_equal(host(model(x)), out)


def test_deepcopy_inside_a_container_keeps_shared_references_shared():
    model = ka.KAN([2, 2, 1], seed=0)
    pair = copy.deepcopy({"a": model, "b": model})
    assert pair["a"] is pair["b"] and pair["a"] is not model


def test_a_loaded_model_asks_for_x(tmp_path):
    """A checkpoint keeps no fit_inputs; the symbolic fits, pruning and plots without x then say
    to pass x, and work with it."""
    model, x, _ = trained(np, "numpy")
    model.save(tmp_path / "m.kan")
    loaded = ka.load(tmp_path / "m.kan")
    assert loaded.fit_inputs is None
    calls = [lambda: loaded.auto_symbolic(), lambda: loaded.suggest_symbolic(0, 1, 0), lambda: loaded.prune(),
             lambda: loaded.attribute()]
    for call in calls:
        with pytest.raises(ValueError, match=r"pass x \(batch, 2\).*a model from kanarray.load has none"):
            call()
    report = loaded.auto_symbolic(lib=["x", "x^2"], x=x, r2_threshold=0.0)
    assert report.fixed
