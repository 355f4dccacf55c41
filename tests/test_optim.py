"""Adam on dicts of arrays."""

from __future__ import annotations

import numpy as np
import pytest

import kanarray as ka
from kanarray.optim import Adam

from helpers import host


def test_first_adam_step_moves_each_entry_by_lr_against_the_gradient_sign(backend):
    model = ka.KAN([2, 3, 1], seed=0, backend=backend)
    xp = model.xp
    rng = np.random.default_rng(0)
    x, y = xp.asarray(rng.uniform(-1, 1, (50, 2))), xp.asarray(rng.normal(size=(50, 1)))
    before = {n: host(p).copy() for n, p in model.parameters().items()}
    _, grads = model.value_and_grad(x, y)
    Adam(model.parameters(), lr=0.01, eps=1e-30).step(grads)
    for name, p in model.parameters().items():
        g = host(grads[name])
        expected = before[name] - 0.01 * np.sign(g)
        np.testing.assert_allclose(host(p), expected, atol=1e-12, err_msg=name)


def test_adam_converges_on_a_quadratic():
    target = np.linspace(-2, 3, 7)
    p = np.zeros(7)
    opt = Adam({"p": p}, lr=0.05)
    for _ in range(2000):
        opt.step({"p": 2 * (p - target)})
    np.testing.assert_allclose(p, target, atol=1e-4)


def test_training_reduces_the_loss(backend):
    model = ka.KAN([2, 4, 1], seed=0, backend=backend)
    xp = model.xp
    rng = np.random.default_rng(0)
    xh = rng.uniform(-1, 1, (200, 2))
    x, y = xp.asarray(xh), xp.asarray(np.sin(3 * xh[:, :1]) * xh[:, 1:])
    opt = Adam(model.parameters(), lr=0.02)
    first = float(model.value_and_grad(x, y)[0])
    for _ in range(150):
        _, grads = model.value_and_grad(x, y)
        opt.step(grads)
    assert float(model.value_and_grad(x, y)[0]) < 0.05 * first


@pytest.mark.parametrize("kwargs", [dict(lr=0.0), dict(betas=(1.0, 0.9)), dict(eps=0.0)])
def test_adam_argument_checks(kwargs):
    with pytest.raises(ValueError):
        Adam({"p": np.zeros(2)}, **kwargs)
