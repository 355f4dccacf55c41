"""Input derivatives ("jets", ``kanarray.jets``): the bases' derivatives against scipy, the jets against
central finite differences of model(x) in float64 on every layer feature, and their reverse passes
against finite differences of a scalar loss of (u, du, d2u), on NumPy and array_api_strict."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import set_parameter

import kanarray as ka
from kanarray import spline
from kanarray._namespace import host_namespace, to_numpy
from kanarray.backends import get_kernels
from kanarray.base import base_derivatives
from kanarray.jets.mlp import activation_derivatives
from kanarray.mlp import MLP

scipy_interpolate = pytest.importorskip("scipy.interpolate")
xs = pytest.importorskip("array_api_strict")

BACKENDS = ["numpy", "array_api_strict"]


def _xp_of(backend):
    return host_namespace() if backend == "numpy" else xs


def _grid(kind, n, G, k, rng):
    if kind == "uniform":
        return spline.uniform_grid(n, G, k, xp=host_namespace(), dtype=np.float64)
    return np.sort(rng.uniform(-1.3, 1.3, (n, G + 2 * k + 1)), axis=1)


@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("kind", ["uniform", "random"])
def test_basis_derivatives_match_scipy(k, kind):
    rng = np.random.default_rng(k)
    grid = _grid(kind, 3, 6, k, rng)
    x = rng.uniform(-1.6, 1.6, (400, 3))
    dense = spline.basis_derivatives(x, grid, k, k + 1)
    local = get_kernels(host_namespace()).basis_derivatives(x, grid, k, k + 1)
    nb = grid.shape[1] - k - 1
    for r in range(k + 2):
        np.testing.assert_allclose(local[r], dense[r], rtol=1e-12, atol=1e-10 * (1 + np.abs(dense[r]).max()))
        for i in range(3):
            inside = (x[:, i] >= grid[i, k]) & (x[:, i] < grid[i, -k - 1])  # where scipy's basis is defined
            for j in range(nb):
                c = np.zeros(nb)
                c[j] = 1.0
                ref = scipy_interpolate.BSpline(grid[i], c, k)(x[inside, i], nu=r) if r <= k else 0.0
                np.testing.assert_allclose(dense[r][inside, i, j], ref, rtol=1e-10,
                                           atol=1e-10 * (1 + np.max(np.abs(ref))))
    # off the knots entirely, every basis and derivative is zero
    far = spline.basis_derivatives(np.full((2, 3), 9.0), grid, k, k)
    assert all(np.all(b == 0) for b in far)


@pytest.mark.parametrize("name", ["silu", "identity", "zero", "tanh"])
def test_activation_derivatives_match_finite_differences(name):
    z = np.linspace(-6, 6, 101)
    xp = host_namespace()
    fn = (lambda v, o: activation_derivatives("tanh", v, xp, o)) if name == "tanh" else (
        lambda v, o: base_derivatives(name, v, xp, o))
    ds = fn(z, 3)
    h = 1e-5
    for r in range(1, 4):
        fd = (fn(z + h, 3)[r - 1] - fn(z - h, 3)[r - 1]) / (2 * h)
        np.testing.assert_allclose(ds[r], fd, rtol=1e-6, atol=1e-7)


def _models(backend):
    """(label, model, x) covering every layer feature the jets pass through."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-0.95, 0.95, (9, 2))
    out = [("plain", ka.KAN([2, 3, 2], grid=4, k=3, seed=0, backend=backend), x),
           ("k2", ka.KAN([2, 3, 1], grid=4, k=2, seed=1, backend=backend), x),
           ("identity base", ka.KAN([2, 3, 1], grid=4, k=3, seed=2, base_fun="identity", backend=backend), x),
           ("zero base, bias", ka.KAN([2, 2, 1], grid=3, k=3, seed=3, base_fun="zero", bias_trainable=True,
                                      backend=backend), x),
           ("deep", ka.KAN([3, 2, 2, 1], grid=3, k=3, seed=4, backend=backend), rng.uniform(-0.9, 0.9, (6, 3))),
           ("linear continuation", ka.KAN([2, 3, 1], grid=4, k=3, seed=5, extrapolate="linear", backend=backend),
            rng.uniform(-1.7, 1.7, (9, 2)))]
    spline_beyond = ka.KAN([2, 3, 1], grid=4, k=3, seed=6, backend=backend)
    out.append(("spline beyond the grid", spline_beyond, rng.uniform(-1.5, 1.5, (9, 2))))
    scaled = ka.KAN([2, 3, 1], grid=4, k=3, seed=7, backend=backend)
    scaled.scale_inputs([0.0, -2.0], [3.0, 5.0])
    out.append(("input scaling", scaled, rng.uniform(0.1, 2.9, (9, 2))))
    sym = ka.KAN([2, 3, 1], grid=4, k=3, seed=8, backend=backend)
    sym.layers[0].mask[0, 1] = 0.0  # a pruned edge
    sym.fix_symbolic(0, 1, 0, "sin", params=(1.3, 0.2, 0.7, 0.1))
    sym.fix_symbolic(0, 0, 2, "exp", params=(0.5, 0.1, 0.3, 0.0))
    sym.fix_symbolic(1, 2, 0, "x^2", params=(0.8, 0.1, 1.2, -0.3))
    sym.fix_symbolic(1, 0, 0, "tanh", params=(1.1, -0.2, 0.9, 0.05))
    out.append(("symbolic and masked", sym, x))
    out.append(("multiplication nodes", _mult_model(backend), x))
    out.append(("a product output", ka.KAN([2, [0, 1]], grid=4, k=3, seed=10, backend=backend), x))
    return out


def _mult_model(backend="numpy", seed=9):
    """Multiplication nodes of arities 2 and 3 with trainable, non-identity node affine."""
    model = ka.KAN([2, [1, 2], 1], mult_arity=[[], [2, 3], []], grid=4, k=3, seed=seed, backend=backend,
                   affine_trainable=True)
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        for name, a in layer.nodes.arrays().items():
            values = rng.uniform(0.7, 1.3, a.shape) if "scale" in name else rng.normal(scale=0.2, size=a.shape)
            setattr(layer.nodes, name, model.xp.asarray(values))
    return model


def _host(a):
    return np.asarray(to_numpy(a))


def _f(model, x, xp):
    return _host(model(xp.asarray(x)))


@pytest.mark.parametrize("backend", BACKENDS)
def test_jets_match_central_differences(backend):
    xp = _xp_of(backend)
    for label, model, x in _models(backend):
        n = x.shape[1]
        d = model.derivatives(xp.asarray(x), order=2, mixed=True)
        diag = model.derivatives(xp.asarray(x), order=2)
        u, du, d2u, d2 = _host(d.u), _host(d.du), _host(d.d2u), _host(diag.d2u)
        np.testing.assert_allclose(u, _f(model, x, xp), rtol=1e-13, atol=1e-13, err_msg=label)
        h1, h2 = 1e-6, 1e-4
        for a in range(n):
            e = np.zeros(n)
            e[a] = h1
            fd = (_f(model, x + e, xp) - _f(model, x - e, xp)) / (2 * h1)
            np.testing.assert_allclose(du[:, :, a], fd, rtol=1e-6, atol=1e-6 * np.abs(fd).max(), err_msg=label)
            ea = np.zeros(n)
            ea[a] = h2
            for b in range(n):
                eb = np.zeros(n)
                eb[b] = h2
                fd2 = (_f(model, x + ea + eb, xp) - _f(model, x + ea - eb, xp) - _f(model, x - ea + eb, xp)
                       + _f(model, x - ea - eb, xp)) / (4 * h2 * h2)
                scale = max(np.abs(fd2).max(), 1e-2)
                np.testing.assert_allclose(d2u[:, :, a, b], fd2, rtol=1e-4, atol=1e-4 * scale,
                                           err_msg=f"{label}: d2u/dx{a}dx{b}")
            np.testing.assert_allclose(d2[:, :, a], d2u[:, :, a, a], rtol=1e-12, atol=1e-12)
        first_only = model.derivatives(xp.asarray(x), order=1)
        assert first_only.d2u is None
        np.testing.assert_allclose(_host(first_only.du), du, rtol=1e-14, atol=1e-14)


def _random_cotangents(d, rng):
    return [None if a is None else rng.normal(size=tuple(a.shape)) for a in d]


def _loss(model, x, gs, order, mixed, xp):
    d = model.derivatives(xp.asarray(x), order=order, mixed=mixed)
    return sum(float(np.sum(g * _host(a))) for g, a in zip(gs, d) if a is not None)


def _check_parameter_gradients(model, x, order, mixed, xp, rtol=1e-6):
    rng = np.random.default_rng(1)
    gs = _random_cotangents(model.derivatives(xp.asarray(x), order=order, mixed=mixed), rng)
    _, grads = model.derivatives_vjp(xp.asarray(x), *[None if g is None else xp.asarray(g) for g in gs],
                                     order=order, mixed=mixed)
    assert list(grads) == list(model.parameters())
    for name, p in model.parameters().items():
        g = _host(grads[name])
        host = _host(p)
        fd = np.zeros(host.shape)
        for idx in np.ndindex(host.shape):
            old = host[idx]
            h = 1e-6 * max(1.0, abs(old))
            vals = []
            for v in (old + h, old - h):
                host[idx] = v
                set_parameter(model, name, host, xp)
                vals.append(_loss(model, x, gs, order, mixed, xp))
            host[idx] = old
            set_parameter(model, name, host, xp)
            fd[idx] = (vals[0] - vals[1]) / (2 * h)
        np.testing.assert_allclose(g, fd, rtol=rtol, atol=rtol * max(1.0, np.abs(fd).max()), err_msg=name)


@pytest.mark.parametrize("backend", BACKENDS)
def test_jet_gradients_match_finite_differences(backend):
    xp = _xp_of(backend)
    for label, model, x in _models(backend):
        if label in ("deep", "k2", "identity base"):
            continue  # covered on NumPy below (each FD pass costs a few hundred jet evaluations)
        _check_parameter_gradients(model, x[:5], 2, True, xp)


@pytest.mark.parametrize("order,mixed", [(0, False), (1, False), (2, False), (2, True)])
def test_jet_gradients_every_order_and_deep_models(order, mixed):
    xp = host_namespace()
    rng = np.random.default_rng(3)
    for model in (ka.KAN([3, 2, 2, 1], grid=3, k=3, seed=4), ka.KAN([2, 3, 1], grid=4, k=2, seed=1),
                  ka.KAN([2, 3, 1], grid=4, k=3, seed=2, base_fun="identity"), _mult_model()):
        _check_parameter_gradients(model, rng.uniform(-0.9, 0.9, (4, model.width[0])), order, mixed, xp)


def test_first_derivative_gradients_with_k1():
    model = ka.KAN([2, 3, 1], grid=4, k=1, seed=1)
    _check_parameter_gradients(model, np.random.default_rng(0).uniform(-0.9, 0.9, (5, 2)), 1, False,
                               host_namespace())


@pytest.mark.parametrize("activation", ["silu", "tanh"])
def test_mlp_jets_and_gradients(activation):
    xp = host_namespace()
    model = MLP([2, 5, 4, 1], activation=activation, seed=0)
    x = np.random.default_rng(0).uniform(-1, 1, (6, 2))
    d = model.derivatives(x, order=2, mixed=True)
    h = 1e-4
    for a in range(2):
        e = np.zeros(2)
        e[a] = h
        np.testing.assert_allclose(d.du[:, :, a], (model(x + e) - model(x - e)) / (2 * h), rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(d.d2u[:, :, a, a], (model(x + e) - 2 * model(x) + model(x - e)) / h**2,
                                   rtol=1e-4, atol=1e-5)
    _check_parameter_gradients(model, x, 2, True, xp)


def test_bad_requests_are_refused():
    model = ka.KAN([2, 3, 1], grid=4, k=1, seed=0)
    x = np.zeros((3, 2))
    with pytest.raises(ValueError, match=r"k >= 2.*layer 0 has k = 1"):
        model.derivatives(x, order=2)
    assert model.derivatives(x, order=1).du.shape == (3, 1, 2)
    good = ka.KAN([2, 3, 1], grid=4, k=3, seed=0)
    for order in (3, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="order must be 0, 1 or 2"):
            good.derivatives(x, order=order)
    with pytest.raises(ValueError, match="mixed must be True or False"):
        good.derivatives(x, mixed="yes")
    with pytest.raises(ValueError, match="x must"):
        good.derivatives(np.zeros((3, 3)))
    with pytest.raises(ValueError, match=r"gdu must have shape \(3, 1, 2\)"):
        good.derivatives_vjp(x, np.zeros((3, 1)), np.zeros((3, 2)), order=1)


def test_derivatives_are_bounded_by_the_memory_cap():
    from kanarray import config
    from kanarray.resources import MemoryLimitError

    model = ka.KAN([2, 3, 1], grid=4, k=3, seed=0)
    with config.override(max_memory=10_000), pytest.raises(MemoryLimitError, match="input derivatives"):
        model.derivatives(np.zeros((5000, 2)))


@pytest.mark.gpu
def test_jets_and_problems_on_cupy_match_numpy():
    """The jets' generic path on CuPy (dense bases, cuBLAS): the derivatives, their parameter gradients and a
    Poisson problem's loss and gradients equal NumPy's in float64."""
    from helpers import gpu_cupy

    cupy = gpu_cupy()
    sympy = pytest.importorskip("sympy")
    from kanarray.pde import Problem, Term

    cpu = ka.KAN([2, 3, 1], grid=5, k=3, seed=0)
    cpu.fix_symbolic(0, 1, 0, "sin", params=(1.3, 0.2, 0.7, 0.1))
    gpu = cpu.copy().to("cupy")
    x = np.random.default_rng(0).uniform(-1.2, 1.2, (64, 2))
    gs = [np.random.default_rng(1).normal(size=s) for s in ((64, 1), (64, 1, 2), (64, 1, 2, 2))]
    d_cpu, g_cpu = cpu.derivatives_vjp(x, *gs, order=2, mixed=True)
    d_gpu, g_gpu = gpu.derivatives_vjp(cupy.asarray(x), *[cupy.asarray(g) for g in gs], order=2, mixed=True)
    for a, b in zip(d_cpu, d_gpu):
        np.testing.assert_allclose(cupy.asnumpy(b), a, rtol=1e-10, atol=1e-12)
    for name in g_cpu:
        np.testing.assert_allclose(cupy.asnumpy(g_gpu[name]), g_cpu[name], rtol=1e-9, atol=1e-11)
    s, t = sympy.symbols("s t")
    w = sympy.Function("w")(s, t)
    problem = Problem([s, t], [w], [Term(sympy.diff(w, s, 2) + sympy.diff(w, t, 2) - sympy.sin(s), x, 0.1),
                                    Term(w * sympy.diff(w, s) - 1, x[:10], 1.0)])
    (lc, gc), (lg, gg) = problem.value_and_grad(cpu), problem.value_and_grad(gpu)
    assert float(cupy.asnumpy(lg)) == pytest.approx(float(lc), rel=1e-10)
    for name in gc:
        np.testing.assert_allclose(cupy.asnumpy(gg[name]), gc[name], rtol=1e-9, atol=1e-11)


def test_linear_continuation_at_the_upper_grid_end_with_k2():
    """k = 2 splines have a jump in curvature at each knot; exactly at the upper interior end the jets take the
    line's side (0 spline curvature), a one-sided derivative of the function the model computes, never the
    curvature of the spline piece beyond the end that the continuation replaces."""
    model = ka.KAN([1, 1], grid=4, k=2, seed=3, extrapolate="linear")
    hi = float(model.layers[0].grid[0, -3])
    d2 = model.derivatives(np.array([[hi]]), order=2).d2u[0, 0, 0]
    h = 1e-4
    right = (model(np.array([[hi + 2 * h]])) - 2 * model(np.array([[hi + h]])) + model(np.array([[hi]])))[0, 0] / h**2
    assert d2 == pytest.approx(right, rel=1e-3, abs=1e-6)  # a one-sided difference: O(h) error
