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


# -- SGD, AdamW, LBFGS, state --------------------------------------------------------------
from kanarray.optim import LBFGS, SGD, AdamW, optimizer_from_state  # noqa: E402


def _quadratic(seed=0, n=6):
    """f(p) = 1/2 (p - c)^T A (p - c) with a well-conditioned SPD A: value and gradient."""
    rng = np.random.default_rng(seed)
    q = np.linalg.qr(rng.normal(size=(n, n)))[0]
    A = q @ np.diag(np.linspace(1, 10, n)) @ q.T
    c = rng.normal(size=n)

    def fg(p):
        r = p - c
        return 0.5 * r @ A @ r, {"p": A @ r}

    return fg, c


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_momentum_follows_its_formula(nesterov):
    fg, _ = _quadratic()
    p = np.zeros(6)
    opt = SGD({"p": p}, lr=0.05, momentum=0.9, weight_decay=0.01, nesterov=nesterov)
    q, buf = np.zeros(6), None
    for _ in range(5):
        g = fg(p)[1]["p"]
        opt.step({"p": g})
        g = fg(q)[1]["p"] + 0.01 * q
        buf = g if buf is None else 0.9 * buf + g
        q = q - 0.05 * (g + 0.9 * buf if nesterov else buf)
        np.testing.assert_allclose(p, q, rtol=1e-14, atol=1e-15)


def test_adamw_decays_decoupled_from_the_gradient():
    p = np.array([1.0, -2.0])
    opt = AdamW({"p": p}, lr=0.1, weight_decay=0.5, eps=1e-30)
    opt.step({"p": np.array([3.0, -4.0])})
    # first step: p * (1 - lr wd) - lr sign(g)
    np.testing.assert_allclose(p, np.array([1.0, -2.0]) * 0.95 - 0.1 * np.array([1.0, -1.0]), rtol=1e-14)


def test_lbfgs_minimises_rosenbrock():
    from scipy.optimize import rosen, rosen_der

    p = {"x": np.array([-1.2, 1.0, -0.5, 0.8, 1.5])}
    opt = LBFGS(p, max_iter=100, tolerance_grad=1e-12, tolerance_change=1e-15)
    for _ in range(5):
        opt.step(lambda: (rosen(p["x"]), {"x": rosen_der(p["x"])}))
    np.testing.assert_allclose(p["x"], 1.0, atol=1e-7)


def test_lbfgs_solves_a_quadratic_in_few_iterations(backend):
    from kanarray._namespace import resolve_backend

    xp = resolve_backend(backend)
    fg, c = _quadratic(1)
    p = {"p": xp.asarray(np.zeros(6))}
    opt = LBFGS(p, max_iter=30, tolerance_grad=1e-12, tolerance_change=1e-20)

    def closure():
        value, grads = fg(host(p["p"]))
        return value, {"p": xp.asarray(grads["p"])}

    opt.step(closure)
    np.testing.assert_allclose(host(p["p"]), c, atol=1e-8)
    assert opt.n_iter <= 30


def test_lbfgs_iterates_match_torch():
    torch = pytest.importorskip("torch")
    from scipy.optimize import rosen, rosen_der

    x0 = np.array([-1.2, 1.0, -0.5, 0.8, 1.5])
    p = {"x": x0.copy()}
    ours = LBFGS(p, history_size=10, max_iter=20, tolerance_grad=1e-32, tolerance_change=1e-32)
    tx = torch.tensor(x0.copy(), dtype=torch.float64, requires_grad=True)
    theirs = torch.optim.LBFGS([tx], lr=1, history_size=10, max_iter=20, line_search_fn="strong_wolfe",
                               tolerance_grad=1e-32, tolerance_change=1e-32)

    def torch_closure():
        theirs.zero_grad()
        value = (100 * (tx[1:] - tx[:-1] ** 2) ** 2 + (1 - tx[:-1]) ** 2).sum()
        value.backward()
        return value

    for _ in range(2):
        ours.step(lambda: (rosen(p["x"]), {"x": rosen_der(p["x"])}))
        theirs.step(torch_closure)
        np.testing.assert_allclose(p["x"], tx.detach().numpy(), rtol=1e-9, atol=1e-12)
        assert ours.func_evals == theirs.state[theirs._params[0]]["func_evals"]


def test_lbfgs_line_search_backs_off_from_non_finite_losses():
    p = {"x": np.array([0.5])}

    def closure():  # log barrier: NaN/inf outside (0, 2)
        x = p["x"][0]
        if not 0 < x < 2:
            return float("nan"), {"x": np.array([float("nan")])}
        return -np.log(x) - np.log(2 - x), {"x": np.array([-1 / x + 1 / (2 - x)])}

    opt = LBFGS(p, lr=100.0, max_iter=20)
    opt.step(closure)
    assert 0 < p["x"][0] < 2
    np.testing.assert_allclose(p["x"][0], 1.0, atol=1e-6)


@pytest.mark.parametrize("make", [
    lambda p: SGD(p, lr=0.05, momentum=0.9),
    lambda p: Adam(p, lr=0.05),
    lambda p: AdamW(p, lr=0.05),
    lambda p: LBFGS(p, max_iter=3),
], ids=["sgd", "adam", "adamw", "lbfgs"])
def test_state_round_trip_continues_identically(make):
    fg, _ = _quadratic(2)
    p1, p2 = {"p": np.zeros(6)}, {"p": np.zeros(6)}
    a = make(p1)

    def run(opt, p, n):
        for _ in range(n):
            if isinstance(opt, LBFGS):
                opt.step(lambda: fg(p["p"]))
            else:
                opt.step(fg(p["p"])[1])

    run(a, p1, 3)
    config, arrays = a.state_dict()
    import json

    config = json.loads(json.dumps(config))  # what a checkpoint stores
    p2["p"][...] = p1["p"]
    b = optimizer_from_state(p2, config, {k: np.array(v) for k, v in arrays.items()})
    run(a, p1, 3)
    run(b, p2, 3)
    np.testing.assert_array_equal(p1["p"], p2["p"])


def test_transferred_keeps_unchanged_state_and_resets_the_rest():
    params = {"a": np.zeros(3), "b": np.zeros((2, 2))}
    opt = Adam(params, lr=0.1)
    opt.step({"a": np.ones(3), "b": np.ones((2, 2))})
    new = opt.transferred({"a": np.zeros(3), "b": np.zeros((2, 5))})
    assert new.steps == {"a": 1, "b": 0}
    np.testing.assert_array_equal(new.state["m"]["a"], opt.state["m"]["a"])
    assert new.state["m"]["b"] is None
    assert new.state["m"]["a"] is not opt.state["m"]["a"]
    lb = LBFGS({"a": np.zeros(3)})
    lb.step(lambda: (0.5 * float(lb.params["a"] @ lb.params["a"]) + 1.0, {"a": lb.params["a"] - 1}))
    assert lb.transferred({"a": np.zeros(4)}).s_hist == []


@pytest.mark.parametrize("make, match", [
    (lambda p: SGD(p, lr=0), "lr"),
    (lambda p: SGD(p, lr=0.1, nesterov=True), "nesterov"),
    (lambda p: SGD(p, lr=0.1, momentum=1.0), "momentum"),
    (lambda p: AdamW(p, weight_decay=-1), "weight_decay"),
    (lambda p: LBFGS(p, history_size=0), "history_size"),
    (lambda p: LBFGS(p, line_search="backtracking"), "line_search"),
    (lambda p: Adam({}, lr=0.1), "non-empty"),
], ids=["lr", "nesterov", "momentum", "wd", "history", "line_search", "empty"])
def test_bad_hyper_parameters(make, match):
    with pytest.raises(ValueError, match=match):
        make({"p": np.zeros(2)})
