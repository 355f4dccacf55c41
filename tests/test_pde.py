"""Physics-informed problems (``kanarray.pde``): the loss and its gradients against finite differences
(linear, nonlinear, mixed-derivative, periodic and data terms, KAN and MLP, NumPy and array_api_strict),
clear errors for bad problems before any training, and ``fit(problem)``'s loop: per-term history, grid
updates on the collocation points, refine, Adam, divergence restore, Ctrl-C, checkpoints and ONNX."""

from __future__ import annotations

import numpy as np
import pytest

import kanarray as ka
from kanarray._namespace import to_numpy
from kanarray.mlp import MLP

sympy = pytest.importorskip("sympy")
from helpers import set_parameter  # noqa: E402

from kanarray.pde import Problem, Term, on  # noqa: E402
from kanarray.reproduce.pde import square_points  # noqa: E402

x, y = sympy.symbols("x y")
u = sympy.Function("u")(x, y)
v = sympy.Function("v")(x, y)
g = sympy.Symbol("g")


def _points(seed=0, n=12):
    """(interior (n^2, 2), boundary (4 n, 2)): the reproduction's layout (``square_points``)."""
    return square_points(n, seed)[:2]


def poisson(n=12):
    interior, boundary = _points(n=n)
    source = -2 * sympy.pi**2 * sympy.sin(sympy.pi * x) * sympy.sin(sympy.pi * y)
    return Problem([x, y], [u], [Term(sympy.diff(u, x, 2) + sympy.diff(u, y, 2) - source, interior, 0.01, name="pde"),
                                 Term(u, boundary, 1.0, name="bc")])


def _general_problem(two_outputs=False):
    """Every kind of term at once: nonlinear, mixed second derivative, Neumann, Robin, periodic, data."""
    interior, boundary = _points(n=5)
    left, right = boundary[:5], boundary[5:10]
    outs = [u, v] if two_outputs else [u]
    terms = [Term(sympy.diff(u, x, 2) + u * sympy.diff(u, x) - sympy.sin(x) * sympy.diff(u, x, y), interior, 0.3,
                  name="burgers_like"),
             (sympy.diff(u, y) - g, boundary, 0.7, {g: np.cos(boundary[:, 0])}),  # Neumann with data
             Term(sympy.diff(u, x) + 2 * u - 1, boundary, 0.2, name="robin"),
             Term(on(u, 0) - on(u, 1) + on(sympy.diff(u, x), 0) - on(sympy.diff(u, x), 1), [left, right], 1.5,
                  name="periodic"),
             Term(u**3 - g, interior[:7], 0.4, data={g: np.linspace(0, 1, 7)}, name="data")]
    if two_outputs:
        terms.append(Term(u * v - sympy.diff(v, x, 2) - sympy.diff(v, y, x), interior, 1.0, name="coupled"))
    return Problem([x, y], outs, terms)


def _fd_check(problem, model, assign, rtol=1e-6):
    objective, grads = problem.value_and_grad(model)
    assert abs(float(to_numpy(objective)) - problem.loss(model)) <= 1e-12 * max(1.0, problem.loss(model))
    for name, p in model.parameters().items():
        host = np.array(to_numpy(p), copy=True)
        fd = np.zeros(host.shape)
        for idx in np.ndindex(host.shape):
            old = host[idx]
            h = 1e-6 * max(1.0, abs(old))
            vals = []
            for val in (old + h, old - h):
                host[idx] = val
                assign(name, host)
                vals.append(problem.loss(model))
            host[idx] = old
            assign(name, host)
            fd[idx] = (vals[0] - vals[1]) / (2 * h)
        np.testing.assert_allclose(np.asarray(to_numpy(grads[name])), fd, rtol=rtol,
                                   atol=rtol * max(1.0, np.abs(fd).max()), err_msg=name)


def _kan_assign(model, xp):
    return lambda name, host: set_parameter(model, name, host, xp)


def test_loss_gradients_match_finite_differences_for_every_kind_of_term():
    problem = _general_problem()
    model = ka.KAN([2, 3, 1], grid=4, k=3, seed=0, bias_trainable=True)
    model.fix_symbolic(0, 1, 2, "sin", params=(1.2, 0.1, 0.8, 0.0))
    import numpy as xp

    _fd_check(problem, model, _kan_assign(model, xp))


def test_systems_of_equations_and_the_mlp():
    problem = _general_problem(two_outputs=True)
    kan = ka.KAN([2, 3, 2], grid=3, k=3, seed=1)
    import numpy as xp

    _fd_check(problem, kan, _kan_assign(kan, xp))
    mlp = MLP([2, 6, 2], seed=0)
    _fd_check(problem, mlp, lambda name, host: mlp.parameters()[name].__setitem__(..., host))


def test_array_api_strict_gives_the_numpy_results():
    xs = pytest.importorskip("array_api_strict")
    problem = _general_problem()
    a = ka.KAN([2, 3, 1], grid=4, k=3, seed=0)
    b = ka.KAN([2, 3, 1], grid=4, k=3, seed=0, backend=xs)
    (la, ga), (lb, gb) = problem.value_and_grad(a), problem.value_and_grad(b)
    assert float(to_numpy(la)) == pytest.approx(float(to_numpy(lb)), rel=1e-12)
    for name in ga:
        np.testing.assert_allclose(np.asarray(to_numpy(gb[name])), ga[name], rtol=1e-10, atol=1e-12)


def test_residuals_are_the_equations_evaluated_from_the_jets():
    problem = poisson()
    model = ka.KAN([2, 3, 1], grid=4, k=3, seed=0)
    interior, boundary = _points()
    r = problem.residuals(model)
    d = model.derivatives(interior, order=2)
    source = -2 * np.pi**2 * np.sin(np.pi * interior[:, 0]) * np.sin(np.pi * interior[:, 1])
    np.testing.assert_allclose(r["pde"], d.d2u[:, 0, 0] + d.d2u[:, 0, 1] - source, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(r["bc"], model(boundary)[:, 0], rtol=1e-13)
    losses = problem.term_losses(model)
    assert losses == pytest.approx({"pde": np.mean(r["pde"] ** 2), "bc": np.mean(r["bc"] ** 2)}, rel=1e-12)
    assert problem.loss(model) == pytest.approx(0.01 * losses["pde"] + losses["bc"], rel=1e-12)


@pytest.mark.parametrize("build, match", [
    (lambda P: Term(sympy.diff(u, x, 3), P, name="t"), "order 3"),
    (lambda P: Term(u - sympy.Symbol("c"), P, name="t"), r"unknown symbol\(s\) \['c'\]"),
    (lambda P: Term(sympy.Function("w")(x, y), P, name="t"), r"unknown function w\(x, y\)"),
    (lambda P: Term(sympy.Function("u")(0, y), P, name="t"), r"takes other arguments than the output u\(x, y\)"),
    (lambda P: Term(sympy.diff(u, x) - sympy.Derivative(sympy.sin(x) * sympy.Function("q")(x), x), P, name="t"),
     "not one of the outputs"),
    (lambda P: Term(u, P[:, :1], name="t"), r"shape \(N, 2\)"),
    (lambda P: Term(u, np.where(np.arange(P.size).reshape(P.shape) == 3, np.nan, P), name="t"), "NaN or infinite"),
    (lambda P: Term(u, P, weight=-1.0, name="t"), "weight must be a finite number >= 0"),
    (lambda P: Term(u - g, P, data={g: np.zeros(3)}, name="t"), "data for g must be"),
    (lambda P: Term(on(u, 1), P, name="t"), "point set 1, but the term has 1"),
    (lambda P: Term(u, [P, P[:3]], name="t"), "the same number of rows"),
    (lambda P: Term(sympy.Eq(u, 0), P, name="t"), "lhs - rhs"),
    (lambda P: Term(u, P, name="not an identifier"), "identifier"),
    (lambda P: ("u",), "must be a kanarray.pde.Term or a tuple"),
])
def test_bad_terms_are_refused_with_a_clear_message(build, match):
    P, _ = _points(n=4)
    with pytest.raises(ValueError, match=match):
        Problem([x, y], [u], [build(P)])


def test_bad_problems_and_fit_settings_are_refused_before_training():
    P, _ = _points(n=4)
    with pytest.raises(ValueError, match="distinct sympy Symbols"):
        Problem([x, x], [u], [(u, P)])
    with pytest.raises(ValueError, match="applied to the inputs"):
        Problem([x, y], [sympy.Function("u")(y, x)], [(u, P)])
    with pytest.raises(ValueError, match="term names must be distinct"):
        Problem([x, y], [u], [Term(u, P, name="a"), Term(u, P, name="a")])
    problem = poisson(n=4)
    k1 = ka.KAN([2, 2, 1], grid=3, k=1, seed=0)
    before = {k: np.array(a) for k, a in k1.parameters().items()}
    with pytest.raises(ValueError, match="k >= 2"):
        k1.fit(problem, steps=2)
    assert all(np.array_equal(before[k], a) for k, a in k1.parameters().items())
    model = ka.KAN([2, 2, 1], grid=3, k=3, seed=0)
    with pytest.raises(ValueError, match=r"2 inputs and 1 outputs, but the model maps 2 -> 2"):
        ka.KAN([2, 2, 2], grid=3, seed=0).fit(problem, steps=1)
    for options, match in (({"batch_size": 4}, "takes no batch_size"), ({"lamb": 1e-3}, "takes no lamb"),
                           ({"loss": "cross_entropy"}, "takes no loss")):
        with pytest.raises(ValueError, match=match):
            model.fit(problem, steps=1, **options)
    with pytest.raises(ValueError, match="problem and y"):
        model.fit(problem, np.zeros((3, 1)))
    with pytest.raises(ValueError, match="clash with the history"):
        model.fit(Problem([x, y], [u], [Term(u, P, name="reg")]), steps=1)


def test_fit_solves_poisson_with_history_per_term_and_grid_updates():
    problem = poisson()
    model = ka.KAN([2, 2, 1], grid=5, k=3, seed=0)
    start = problem.term_losses(model)
    xt = np.random.default_rng(5).uniform(-1, 1, (400, 2))
    exact = np.sin(np.pi * xt[:, :1]) * np.sin(np.pi * xt[:, 1:])
    history = model.fit(problem, steps=20, progress=False, validation=(xt, exact))
    assert history.loss == "pde" and len(history["pde"]) == len(history["bc"]) == len(history["train_loss"]) == 20
    np.testing.assert_allclose(history["train_loss"], 0.01 * np.array(history["pde"]) + np.array(history["bc"]),
                               rtol=1e-12)
    end = problem.term_losses(model)
    assert end["pde"] < 0.05 * start["pde"] and history["val_loss"][-1] < 0.05
    # the grids were fitted to the collocation points, which fit keeps for refine
    assert model.fit_inputs.shape == problem.points().shape
    assert not np.allclose(model.layers[1].grid, ka.KAN([2, 2, 1], grid=5, k=3, seed=0).layers[1].grid)
    fine = model.refine(10)
    assert problem.loss(fine) == pytest.approx(problem.loss(model), rel=0.05)
    more = fine.fit(problem, steps=10, progress=False)
    assert more["train_loss"][-1] < history["train_loss"][-1]


def test_fit_with_adam_and_the_mlp():
    problem = poisson(n=6)
    model = ka.KAN([2, 2, 1], grid=3, k=3, seed=0)
    before = problem.loss(model)
    history = model.fit(problem, steps=100, opt="adam", lr=3e-2, progress=False, update_grid=False)
    assert history["train_loss"][-1] < 0.5 * before
    mlp = MLP([2, 8, 1], seed=0)
    losses = mlp.fit(problem, steps=5)
    assert losses[-1] < problem.loss(MLP([2, 8, 1], seed=0))


def test_a_diverging_problem_fit_restores_the_last_good_parameters():
    P, _ = _points(n=5)
    # log(u) is NaN where u < 0: a first-order step into negative u makes the objective NaN
    problem = Problem([x, y], [u], [Term(sympy.log(u + 2) - 5, P, name="t")])
    model = ka.KAN([2, 2, 1], grid=3, k=3, seed=0)
    with pytest.raises(ka.TrainingDiverged) as info:
        model.fit(problem, steps=40, opt="adam", lr=50.0, progress=False, update_grid=False)
    assert np.isfinite(problem.loss(model))
    assert "restored" in str(info.value)


def test_ctrl_c_during_a_problem_fit_keeps_the_last_good_step(monkeypatch):
    problem = poisson(n=6)
    model = ka.KAN([2, 2, 1], grid=3, k=3, seed=0)
    calls = {"n": 0}
    real = problem.evaluate

    def interrupted(m, grad=True):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real(m, grad=grad)

    monkeypatch.setattr(problem, "evaluate", interrupted)
    history = model.fit(problem, steps=10, opt="adam", progress=False, update_grid=False)
    assert history.interrupted and len(history["train_loss"]) == 3
    assert np.isfinite(history["train_loss"][-1])


def test_a_trained_solution_saves_resumes_and_exports(tmp_path):
    problem = poisson(n=6)
    model = ka.KAN([2, 2, 1], grid=3, k=3, seed=0)
    history = model.fit(problem, steps=5, progress=False)
    path = tmp_path / "poisson.kan"
    model.save(path, optimizer=history.optimizer)
    loaded = ka.load(path)
    assert problem.loss(loaded) == problem.loss(model)
    again = loaded.fit(problem, steps=3, progress=False)
    assert again["train_loss"][-1] <= history["train_loss"][-1]
    pytest.importorskip("onnxruntime")
    from kanarray.export import OnnxModel, to_onnx

    onnx_path = tmp_path / "poisson.onnx"
    to_onnx(model, onnx_path, dtype="float64")
    pts = np.random.default_rng(0).uniform(-1, 1, (50, 2))
    np.testing.assert_allclose(OnnxModel(onnx_path)(pts), model(pts), rtol=1e-10, atol=1e-12)


def test_the_first_layers_kept_features_follow_the_grid_and_the_input_map():
    """fit keeps the first layer's lifted features between evaluations; a grid update, a refine or a new input
    map must not leave stale ones (the loss equals a fresh problem's every time)."""
    problem = poisson(n=6)
    model = ka.KAN([2, 2, 1], grid=3, k=3, seed=0)
    problem.loss(model)
    model.update_grid(problem.points(), grid_eps=0.5)
    assert problem.loss(model) == poisson(n=6).loss(model)
    model.scale_inputs([-2.0, -2.0], [2.0, 2.0])
    assert problem.loss(model) == poisson(n=6).loss(model)
    model.layers[0].grid[...] = model.layers[0].grid * 1.1  # edited in place
    assert problem.loss(model) == poisson(n=6).loss(model)


def test_the_progress_bar_shows_every_term():
    from kanarray.training import _postfix

    text = _postfix(0.5, 0.1, None, {"pde": 2.0, "bc": 3e-4})
    assert text == "train 5.000e-01 | val 1.000e-01 | pde 2.000e+00 | bc 3.000e-04"


def test_a_problem_shared_by_models_with_other_input_maps_uses_each_ones_scale():
    """The kept first-layer features carry the input map's scale: a model with the same grid and the same
    mapped points but another scale must not reuse them (points on x = 0, map with zero shift)."""
    P = np.stack([np.zeros(9), np.linspace(-0.9, 0.9, 9)], 1)
    problem = Problem([x, y], [u], [Term(sympy.diff(u, x) - 1, P, name="t")])
    plain = ka.KAN([2, 2, 1], grid=3, k=3, seed=0)
    scaled = ka.KAN([2, 2, 1], grid=3, k=3, seed=0)
    scaled.scale_inputs([-2.0, -1.0], [2.0, 1.0])
    problem.loss(plain)
    truth = float(np.mean((scaled.derivatives(P, order=1).du[:, 0, 0] - 1) ** 2))
    assert problem.loss(scaled) == pytest.approx(truth, rel=1e-12)
    assert problem.loss(plain) != pytest.approx(truth, rel=1e-6)


def test_singular_symbolic_edges_give_finite_curvature():
    """sqrt, log and 1/x are clamped outside their domain (slope 0 there): their second derivatives are 0
    there too, never NaN or inf, and exact inside."""
    xs = np.array([[-0.5, 0.1], [0.3, 0.2], [0.0, 0.3]])
    for name in ("sqrt", "log", "1/x"):
        model = ka.KAN([2, 1], grid=3, k=3, seed=0)
        model.fix_symbolic(0, 0, 0, name, params=(1.0, 0.0, 1.0, 0.0))
        d2 = model.derivatives(xs, order=2).d2u[:, 0, 0]
        assert np.all(np.isfinite(d2)), name
        h = 1e-4
        e = np.array([h, 0.0])
        fd = (model(xs[1:2] + e) - 2 * model(xs[1:2]) + model(xs[1:2] - e))[0, 0] / h**2
        assert d2[1] == pytest.approx(fd, rel=1e-4), name


def test_terms_that_only_fail_on_arrays_are_refused_when_built():
    P, _ = _points(n=4)
    problem = Problem([x, y], [u], [Term(sympy.Abs(u) - x, P, name="abs")])  # d|u|/du = sign(u)
    model = ka.KAN([2, 2, 1], grid=3, k=3, seed=0)
    _fd_check(problem, model, _kan_assign(model, np))
    for expr, match in ((sympy.erf(u), "cannot be evaluated on arrays"), (on(on(u, 1), 0), "cannot be nested"),
                        (on(u - x, 1), r"on\(\.\.\., 1\) holds the inputs \['x'\]")):
        with pytest.raises(ValueError, match=match):
            Problem([x, y], [u], [Term(expr, [P, P], name="t")])


def test_float32_models_get_float32_gradients():
    for width in ([2, 1], [2, 2], [2, 3, 1]):
        model = ka.KAN(width, grid=3, k=3, seed=0, dtype="float32")
        xs = np.random.default_rng(0).uniform(-1, 1, (5, 2))
        m = width[-1]
        _, grads = model.derivatives_vjp(xs, np.ones((5, m)), np.ones((5, m, 2)), np.ones((5, m, 2)))
        assert all(g.dtype == np.float32 for g in grads.values()), width
