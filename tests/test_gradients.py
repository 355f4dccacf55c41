"""Hand-written gradients against central finite differences (float64)."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import host, random_model

EPS = 1e-6
RTOL = 1e-6


def fd_grad(loss_of, values: np.ndarray) -> np.ndarray:
    """Central differences of a scalar function of a host array."""
    grad = np.zeros_like(values)
    flat = values.reshape(-1)
    for j in range(flat.size):
        old = flat[j]
        step = EPS * max(1.0, abs(old))
        flat[j] = old + step
        up = loss_of(values)
        flat[j] = old - step
        down = loss_of(values)
        flat[j] = old
        grad.reshape(-1)[j] = (up - down) / (2 * step)
    return grad


def assert_grad_close(got, ref, what):
    scale = max(np.abs(ref).max(), np.abs(got).max(), 1e-12)
    err = np.abs(got - ref).max() / scale
    assert err <= RTOL, f"{what}: relative error {err:.2e} > {RTOL:.0e}"


def set_param(model, name, values):
    _, l, attr = name.split(".")
    layer = model.layers[int(l)]
    setattr(layer, attr, model.xp.asarray(values, dtype=model.dtype))


def assert_parameter_gradients(model, value_of, grads):
    """Check ``grads`` (name -> array, every parameter's) against central differences of
    ``value_of()`` (a float at the model's current parameters)."""
    assert set(grads) == set(model.parameters())
    for name, param in model.parameters().items():
        assert grads[name].shape == param.shape, name
        start = host(param).astype(np.float64).copy()

        def loss_of(values, name=name):
            set_param(model, name, values)
            return value_of()

        ref = fd_grad(loss_of, start.copy())
        set_param(model, name, start)
        assert_grad_close(host(grads[name]), ref, name)


CASES = [
    ([3, 4, 2], 4, 1),
    ([2, 3, 1], 5, 2),
    ([3, 2, 2, 1], 4, 3),
    ([2, 3, 2], 3, 5),
]


@pytest.mark.parametrize("base_fun", ["silu", "identity", "zero"])
@pytest.mark.parametrize("width,G,k", CASES, ids=[f"k{c[2]}" for c in CASES])
def test_parameter_gradients_match_finite_differences(backend, width, G, k, base_fun):
    model = random_model(backend, width, grid=G, k=k, base_fun=base_fun, seed=k)
    xp = model.xp
    rng = np.random.default_rng(1)
    span = 1.0 + k * 2.0 / G  # extended grid edge; draw inputs past it too
    x = xp.asarray(rng.uniform(-1.2 * span, 1.2 * span, (40, width[0])))
    y = xp.asarray(rng.normal(size=(40, width[-1])))
    assert np.any(np.abs(host(x)) > span), "some inputs must lie outside the grid"
    loss, grads = model.value_and_grad(x, y)
    assert_parameter_gradients(model, lambda: float(model.value_and_grad(x, y)[0]), grads)
    assert float(model.value_and_grad(x, y)[0]) == pytest.approx(float(loss), rel=1e-14)


@pytest.mark.parametrize("base_fun", ["silu", "identity", "zero"])
@pytest.mark.parametrize("width,G,k", CASES, ids=[f"k{c[2]}" for c in CASES])
def test_input_gradient_matches_finite_differences(backend, width, G, k, base_fun):
    model = random_model(backend, width, grid=G, k=k, base_fun=base_fun, seed=10 + k)
    xp = model.xp
    rng = np.random.default_rng(2)
    span = 1.0 + k * 2.0 / G
    x0 = rng.uniform(-1.2 * span, 1.2 * span, (15, width[0]))
    gy = rng.normal(size=(15, width[-1]))
    _, _, dx = model.vjp(xp.asarray(x0), xp.asarray(gy))

    def objective(values):
        return float(np.sum(host(model(xp.asarray(values))) * gy))

    ref = fd_grad(objective, x0.copy())
    assert_grad_close(host(dx), ref, "x")


def test_masked_edges_get_zero_gradient(backend):
    model = random_model(backend, [2, 3, 1], seed=5)
    xp = model.xp
    mask = host(model.layers[0].mask)
    assert (mask == 0).any()
    rng = np.random.default_rng(0)
    _, grads = model.value_and_grad(xp.asarray(rng.uniform(-1, 1, (30, 2))), xp.asarray(rng.normal(size=(30, 1))))
    off = mask == 0
    for name in ("coef", "scale_base", "scale_sp"):
        g = host(grads[f"layers.0.{name}"])
        assert np.all(g[off] == 0), name


@pytest.mark.parametrize("seed", range(6))
def test_random_architectures_match_finite_differences(seed):
    """Random depth, widths, G, k and base function; all parameters and the input."""
    rng = np.random.default_rng(100 + seed)
    width = [int(w) for w in rng.integers(1, 4, rng.integers(2, 5))]
    G = int(rng.integers(1, 7))
    k = int(rng.choice([1, 2, 3, 5]))
    base_fun = str(rng.choice(["silu", "identity", "zero"]))
    model = random_model("numpy", width, grid=G, k=k, base_fun=base_fun, seed=seed)
    x = rng.uniform(-2.5, 2.5, (25, width[0]))
    y = rng.normal(size=(25, width[-1]))
    _, grads = model.value_and_grad(x, y)
    for name, param in model.parameters().items():
        start = np.array(param, dtype=np.float64)

        def loss_of(values, name=name):
            set_param(model, name, values)
            return float(model.value_and_grad(x, y)[0])

        ref = fd_grad(loss_of, start.copy())
        set_param(model, name, start)
        assert_grad_close(grads[name], ref, f"{width} G={G} k={k} {base_fun}: {name}")
    _, _, dx = model.vjp(x, y)
    ref = fd_grad(lambda v: float(np.sum(model(v) * y)), x.copy())
    assert_grad_close(dx, ref, "x")
