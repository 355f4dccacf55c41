"""kanarray.mlp: the MLP baseline's hand-written gradients and training."""

from __future__ import annotations

import numpy as np
import pytest

from kanarray.mlp import MLP
from helpers import host


@pytest.mark.parametrize("activation", ["silu", "tanh"])
def test_mlp_gradients_match_central_differences(backend, activation):
    rng = np.random.default_rng(0)
    model = MLP([3, 5, 4, 2], activation=activation, seed=1, backend=backend)
    x, y = model.xp.asarray(rng.uniform(-1, 1, (7, 3))), model.xp.asarray(rng.normal(size=(7, 2)))
    _, grads = model.value_and_grad(x, y)
    params = model.parameters()
    for name, p in params.items():
        ref = host(p).copy()
        fd = np.zeros_like(ref)
        for idx in np.ndindex(ref.shape):
            vals = []
            for h in (1e-6, -1e-6):
                bumped = ref.copy()
                bumped[idx] += h
                p[...] = model.xp.asarray(bumped)
                vals.append(float(model.value_and_grad(x, y)[0]))
            fd[idx] = (vals[0] - vals[1]) / 2e-6
        p[...] = model.xp.asarray(ref)
        np.testing.assert_allclose(host(grads[name]), fd, rtol=1e-6, atol=1e-9, err_msg=name)


@pytest.mark.parametrize("opt", ["lbfgs", "adam"])
def test_mlp_fits_a_smooth_function(opt):
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (200, 1))
    y = np.sin(3 * x)
    model = MLP([1, 16, 1], activation="tanh", seed=0)
    losses = model.fit(x, y, steps=30 if opt == "lbfgs" else 300, opt=opt, lr=None if opt == "lbfgs" else 1e-2)
    assert losses[-1] < 0.2 * losses[0]
    np.testing.assert_allclose(np.sqrt(np.mean((host(model(x)) - y) ** 2)), losses[-1], rtol=1e-12)
    assert model.num_parameters() == 16 + 16 + 16 + 1


def test_mlp_rejects_bad_arguments():
    with pytest.raises(ValueError, match="activation"):
        MLP([1, 2, 1], activation="relu6")
    with pytest.raises(ValueError, match="opt"):
        MLP([1, 2, 1]).fit(np.zeros((3, 1)), np.zeros((3, 1)), opt="sgd")
    with pytest.raises(ValueError, match="rows"):
        MLP([1, 2, 1]).value_and_grad(np.zeros((3, 1)), np.zeros((2, 1)))
