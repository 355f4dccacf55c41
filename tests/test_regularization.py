"""pykan's sparsification penalty: value against an independent reference, gradients against
finite differences, and the Gram shortcut against the edge-by-edge path."""

from __future__ import annotations

import numpy as np
import pytest

from kanarray.objective import evaluate
from kanarray.regularization import Regularization

from helpers import host, random_model, reference_edges

REG = Regularization(lamb=0.3, lamb_l1=1.0, lamb_entropy=2.0, lamb_coef=0.5, lamb_coefdiff=0.7)


def reference_penalty(model, x, reg):
    """pykan's get_reg('edge_forward_spline_n') written out with scipy edge activations in
    pykan's (out, in) layout."""
    total = 0.0
    h = np.asarray(x, dtype=np.float64)
    for layer in model.layers:
        phi = reference_edges(layer, h)  # (B, n, m)
        vec = (phi.std(axis=0, ddof=1) / (h.std(axis=0, ddof=1)[:, None] + 0.1)).T  # (out, in)
        p_row = vec / (vec.sum(axis=1, keepdims=True) + 1)
        p_col = vec / (vec.sum(axis=0, keepdims=True) + 1)
        ent_row = -np.mean(np.sum(p_row * np.log2(p_row + 1e-4), axis=1))
        ent_col = -np.mean(np.sum(p_col * np.log2(p_col + 1e-4), axis=0))
        coef = host(layer.coef)
        total += reg.lamb_l1 * vec.sum() + reg.lamb_entropy * (ent_row + ent_col)
        total += reg.lamb_coef * np.sum(np.mean(np.abs(coef), axis=1))
        total += reg.lamb_coefdiff * np.sum(np.mean(np.abs(np.diff(coef, axis=2)), axis=1))
        h = phi.sum(axis=1) + host(layer.bias)
    return total


def _data(xp, seed=1, batch=40, n_in=3, n_out=2):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.2, 1.2, (batch, n_in))
    y = rng.normal(size=(batch, n_out))
    return x, y, xp.asarray(x), xp.asarray(y)


@pytest.fixture(params=["compiled", "numpy-passes"])
def passes(request, backend, monkeypatch):
    """On the NumPy backend, run the per-edge passes both compiled (numba, when installed)
    and as NumPy passes; other backends have one path."""
    if request.param == "numpy-passes":
        if backend != "numpy":
            pytest.skip("one path only on this backend")
        import array_api_compat.numpy as npx
        from kanarray.backends import get_kernels

        monkeypatch.setattr(get_kernels(npx), "fused", False)
    return request.param


@pytest.mark.parametrize("cached", [False, True], ids=["edges", "gram"])
def test_penalty_matches_pykans_formula(backend, passes, cached):
    model = random_model(backend, [3, 4, 2], grid=3)
    x, y, xd, yd = _data(model.xp)
    ev = evaluate(model, xd, yd, reg=REG, cache={} if cached else None)
    np.testing.assert_allclose(float(ev.reg), reference_penalty(model, x, REG), rtol=1e-10)
    mse = np.mean((host(ev.pred) - y) ** 2)
    np.testing.assert_allclose(float(ev.objective), mse + REG.lamb * float(ev.reg), rtol=1e-12)


@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
@pytest.mark.parametrize("cached", [False, True], ids=["edges", "gram"])
def test_objective_gradients_match_finite_differences(backend, passes, loss, cached):
    model = random_model(backend, [3, 4, 2], grid=3, seed=2)
    xp = model.xp
    x, y, xd, yd = _data(xp)
    if loss == "cross_entropy":
        yd = xp.asarray(np.random.default_rng(3).integers(0, 2, 40))
    ev = evaluate(model, xd, yd, loss=loss, reg=REG, cache={} if cached else None)

    def objective():
        return float(evaluate(model, xd, yd, loss=loss, reg=REG).objective)

    worst = 0.0
    for name, p in model.parameters().items():
        g = host(ev.grads[name]).reshape(-1)
        flat_size = g.size
        for idx in range(0, flat_size, max(1, flat_size // 6)):
            pos = np.unravel_index(idx, tuple(p.shape))
            old = float(host(p)[pos])
            vals = []
            for step in (1e-6, -1e-6):
                arr = host(p).copy()
                arr[pos] = old + step
                p[...] = xp.asarray(arr)
                vals.append(objective())
            arr = host(p).copy()
            arr[pos] = old
            p[...] = xp.asarray(arr)
            fd = (vals[0] - vals[1]) / 2e-6
            worst = max(worst, abs(fd - g[idx]) / max(1.0, abs(fd)))
    assert worst < 1e-6


def test_gram_shortcut_equals_edge_by_edge(backend):
    model = random_model(backend, [3, 4, 2], grid=3, seed=4)
    _, _, xd, yd = _data(model.xp, seed=5)
    a = evaluate(model, xd, yd, reg=REG)
    cache = {}
    evaluate(model, xd, yd, reg=REG, cache=cache)
    b = evaluate(model, xd, yd, reg=REG, cache=cache)  # reuses the cached bases and Gram matrix
    assert "gram" in cache
    np.testing.assert_allclose(float(b.objective), float(a.objective), rtol=1e-13)
    for name in a.grads:
        np.testing.assert_allclose(host(b.grads[name]), host(a.grads[name]), atol=1e-13, err_msg=name)


def test_masked_edges_get_zero_not_nan_gradients(backend):
    model = random_model(backend, [2, 3, 1], grid=3, seed=6)
    xp = model.xp
    model.layers[0].mask[...] = xp.asarray(np.array([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]]))
    _, _, xd, yd = _data(xp, n_in=2, n_out=1)
    ev = evaluate(model, xd, yd, reg=Regularization(lamb=0.3))  # no coefficient terms: they ignore masks
    for name, g in ev.grads.items():
        assert np.all(np.isfinite(host(g))), name
    assert np.all(host(ev.grads["layers.0.coef"])[0, 1] == 0)


def test_value_and_grad_with_lamb_equals_evaluate():
    model = random_model("numpy", [3, 4, 2], grid=3)
    _, _, x, y = _data(model.xp)
    value, grads = model.value_and_grad(x, y, lamb=0.3, lamb_coef=0.5, lamb_coefdiff=0.7)
    ev = evaluate(model, x, y, reg=REG)
    assert float(value) == float(ev.objective)
    for name in grads:
        np.testing.assert_array_equal(grads[name], ev.grads[name])


@pytest.mark.parametrize("bad", [dict(lamb=-1.0), dict(lamb_l1=float("nan")), dict(lamb_entropy="2")])
def test_bad_weights_are_rejected(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        Regularization(**bad)


def test_regularization_needs_two_samples():
    model = random_model("numpy", [2, 3, 1], grid=3)
    with pytest.raises(ValueError, match="at least 2 samples"):
        model.value_and_grad(np.zeros((1, 2)), np.zeros((1, 1)), lamb=0.1)


@pytest.mark.parametrize("shape", [(2, 5), (5, 1), (1, 1), (7, 3)])
def test_compiled_penalty_matches_numpy_passes(shape, monkeypatch):
    """The one-call compiled penalty (numba) against the NumPy passes, masked (zero) edges included."""
    pytest.importorskip("numba")
    import array_api_compat.numpy as npx
    from kanarray.backends import get_kernels
    from kanarray.regularization import penalty

    rng = np.random.default_rng(shape[0])
    sphi = rng.uniform(0, 2, shape)
    sphi[0, 0] = 0.0
    sx = rng.uniform(0.1, 1.5, shape[0])
    coef = rng.normal(size=(*shape, 6))
    reg = Regularization(lamb=1e-3, lamb_l1=0.7, lamb_entropy=2.0, lamb_coef=0.3, lamb_coefdiff=0.2)
    out = {}
    for fused in (False, True):
        monkeypatch.setattr(get_kernels(npx), "fused", fused)
        out[fused] = penalty([(sphi, sx)], [coef], reg, npx)
    (v0, s0, c0), (v1, s1, c1) = out[False], out[True]
    np.testing.assert_allclose(v1, v0, rtol=1e-13)
    np.testing.assert_allclose(s1[0][0], s0[0][0], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(s1[0][1], s0[0][1], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(c1[0], c0[0], rtol=0, atol=0)
