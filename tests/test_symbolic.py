"""Symbolic edges: the library, fitting, the symbolic branch's gradients, formulas."""

from __future__ import annotations

import numpy as np
import pytest

import kanarray as ka
from kanarray.symbolic import LIBRARY, register
from kanarray.symbolic.fitting import fit_affine

from helpers import assert_grad_close, expsin_data, fd_grad, host, set_param

PYKAN_SET = ["x", "x^2", "x^3", "x^4", "x^5", "1/x", "1/x^2", "1/x^3", "1/x^4", "1/x^5", "sqrt", "x^1.5",
             "1/sqrt(x)", "exp", "log", "abs", "sin", "cos", "tan", "tanh", "sgn", "arcsin", "arccos", "arctan",
             "arctanh", "gaussian", "0"]


def test_library_has_pykans_set_with_its_complexities():
    assert set(PYKAN_SET) <= set(LIBRARY)
    expected = {"x": 1, "x^2": 2, "x^4": 3, "1/x^5": 5, "sqrt": 2, "x^1.5": 4, "exp": 2, "abs": 3, "tan": 3,
                "arctanh": 4, "gaussian": 3, "0": 0}
    assert {k: LIBRARY[k].complexity for k in expected} == expected


@pytest.mark.parametrize("name", PYKAN_SET)
def test_library_matches_sympy_and_its_derivative_on_the_safe_domain(name):
    """fn equals the exact (sympy) function and deriv its derivative where the function is regular;
    everywhere, including at the singularities, both are finite."""
    import sympy

    import array_api_compat.numpy as xp

    row = LIBRARY[name]
    s = sympy.Symbol("s")
    exact = sympy.lambdify(s, row.sympy_fn(s), "numpy")
    z = np.linspace(-3, 3, 601)
    with np.errstate(all="ignore"):
        ref = np.broadcast_to(np.asarray(exact(z), dtype=float), z.shape)
    regular = np.isfinite(ref) & (np.abs(ref) < 1e3) & (np.abs(np.abs(z) - 1) > 1e-3) & (np.abs(z) > 1e-2)
    if name == "tan":
        regular &= np.abs(np.cos(z)) > 1e-2
    assert regular.sum() > 100
    np.testing.assert_allclose(row.fn(z, xp)[regular], ref[regular], rtol=1e-12, atol=1e-12)
    h = 1e-6
    fd = (row.fn(z + h, xp) - row.fn(z - h, xp)) / (2 * h)
    smooth = regular & (np.abs(z) > 1e-2)
    if name in ("abs", "sgn"):
        smooth &= np.abs(z) > 1e-5
    np.testing.assert_allclose(row.deriv(z, xp)[smooth], fd[smooth], rtol=1e-5, atol=1e-6)
    edge = np.array([0.0, -0.0, 1.0, -1.0, np.pi / 2, 1e-300, -1e-300, 700.0, -700.0, 1e10, -1e10])
    assert np.all(np.isfinite(row.fn(edge, xp))) and np.all(np.isfinite(row.deriv(edge, xp)))


@pytest.mark.parametrize("name,a,b,c,d", [("sin", 3.0, 0.4, 1.5, -0.2), ("exp", 1.3, 0.0, 0.7, 0.1),
                                          ("x^2", 1.0, -0.3, 2.0, 0.5), ("tanh", 2.5, 0.5, -1.0, 0.3),
                                          ("arctan", 4.0, -1.0, 0.5, 0.0), ("gaussian", 2.0, 0.5, 1.0, 0.2)])
def test_fit_recovers_known_parameters(name, a, b, c, d):
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (2, 500))
    row = LIBRARY[name]
    import array_api_compat.numpy as xp

    y = c * row.fn(a * x + b, xp) + d
    params, r2 = fit_affine(row, x, y)
    assert np.all(r2 > 1 - 1e-10)
    np.testing.assert_allclose(params, np.tile([a, b, c, d], (2, 1)), atol=1e-6)


def test_fit_canonical_form_and_vectorized_edges():
    """sin(-pi x + pi) is sin(pi x); two edges fitted in one call get their own parameters."""
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, (2, 400))
    y = np.stack([np.sin(-np.pi * x[0] + np.pi), 3 * np.exp(0.5 * x[1] + 1.0)])
    p_sin, r2 = fit_affine(LIBRARY["sin"], x[:1], y[:1])
    np.testing.assert_allclose(p_sin[0], [np.pi, 0, 1, 0], atol=1e-7)
    p_exp, _ = fit_affine(LIBRARY["exp"], x, y)
    np.testing.assert_allclose(p_exp[1], [0.5, 0, 3 * np.e, 0], rtol=1e-7, atol=1e-7)


@pytest.mark.parametrize("name,span,a,b", [("exp", (0.15, 0.20), -110.0, 0.0),  # a hidden edge's narrow range
                                           ("sin", (-40.0, 40.0), 1.0, 0.3)])  # a wide one: the given scale
def test_fit_finds_slopes_outside_a_range_on_narrow_inputs(name, span, a, b):
    """pykan's (a, b) search over [-10, 10]^2 on x as given misses exp(-110 x) on [0.15, 0.2]
    (R^2 0.97); the search on x mapped onto [-1, 1] finds it, and a wide range keeps the given scale."""
    x = np.random.default_rng(2).uniform(*span, (1, 600))
    y = 2.0 * LIBRARY[name].fn(a * x + b, np) - 0.5
    params, r2 = fit_affine(LIBRARY[name], x, y)
    assert r2[0] > 1 - 1e-10
    np.testing.assert_allclose(params[0, :2], [a, b], rtol=1e-6, atol=1e-6)


def _trained_expsin(seed=1, steps=30):
    x, y = expsin_data(600, seed=seed)
    model = ka.KAN([2, 1, 1], grid=5, k=3, seed=seed)
    model.fit(x, y, steps=steps, progress=False)
    return model, x, y


@pytest.fixture(scope="module")
def expsin():
    return _trained_expsin()


def test_suggest_symbolic_ranks_the_true_function_first(expsin):
    model, x, _ = expsin
    top = model.suggest_symbolic(0, 0, 0, lib=["x", "x^2", "sin", "exp", "tanh"], topk=3)
    assert top[0].name == "sin" and top[0].r2 > 0.999 and len(top) == 3
    assert [c.score for c in top] == sorted(c.score for c in top)
    assert model.suggest_symbolic(0, 1, 0, lib=["x", "x^2", "x^3", "sin", "exp"])[0].name == "x^2"


def test_fitting_uses_the_samples_not_the_last_forward_pass(expsin):
    model, x, _ = expsin
    first = model.suggest_symbolic(0, 0, 0, lib=["sin", "x^3"])
    model(np.full((5, 2), 0.3))  # an unrelated forward pass
    again = model.suggest_symbolic(0, 0, 0, lib=["sin", "x^3"])
    assert first == again
    other = model.suggest_symbolic(0, 0, 0, lib=["sin", "x^3"], x=x[:200])
    assert other != first and other[0].name == "sin"


def test_auto_symbolic_gate_rejects_bad_fits(expsin):
    model, x, _ = expsin
    copy = model.refine(model.grid)  # same function, independent arrays
    before = copy(x)
    report = copy.auto_symbolic(lib=["x", "x^3"], r2_threshold=0.999)  # none of the true functions
    assert report.fixed == {} and set(report.kept) == {(0, 0, 0), (0, 1, 0), (1, 0, 0)}
    assert all(c.r2 < 0.999 for c in report.kept.values())
    assert all(name is None for layer in copy.layers for row in layer.symbolic.names for name in row)
    np.testing.assert_array_equal(copy(x), before)
    assert "kept" in str(report)
    # pykan's default threshold (0) would accept these poor fits: the gate is what stops them
    accepted = model.refine(model.grid).auto_symbolic(lib=["x", "x^3"], r2_threshold=0.0)
    assert len(accepted.fixed) == 3


def test_symbolic_pipeline_recovers_the_formula(expsin):
    import sympy

    model, x, y = expsin
    copy = model.refine(10)
    copy.fit(x, y, steps=20, progress=False)
    report = copy.auto_symbolic(lib=["x", "x^2", "x^3", "exp", "sin", "tanh"])
    assert {k: c.name for k, c in report.fixed.items()} == {(0, 0, 0): "sin", (0, 1, 0): "x^2", (1, 0, 0): "exp"}
    coef_grad = host(copy.value_and_grad(x, y)[1]["layers.0.coef"])
    assert np.all(coef_grad == 0)  # symbolic edges' splines are switched off
    h = copy.fit(x, y, steps=30, progress=False)
    assert h["train_loss"][-1] < 1e-9
    formula = copy.symbolic_formula()[0]
    x1, x2 = sympy.symbols("x_1 x_2")
    assert formula == sympy.exp(x2**2 + sympy.sin(sympy.Float("3.1416", 15) * x1))
    named = copy.symbolic_formula(var_names=["u", "v"], simplify=False)[0]
    assert named.free_symbols == set(sympy.symbols("u v"))


@pytest.mark.slow
def test_symbolic_edges_gradients_match_finite_differences(backend):
    from kanarray._namespace import resolve_backend

    model = ka.KAN([2, 3, 2], grid=4, seed=3, backend=backend, bias_trainable=True)
    model.fix_symbolic(0, 0, 1, "sin", params=(1.3, 0.2, 0.8, -0.1))
    model.fix_symbolic(0, 1, 2, "exp", params=(0.7, -0.3, 1.1, 0.2))
    model.fix_symbolic(0, 1, 0, "1/x^2", params=(1.0, 2.5, 0.5, 0.0))
    model.fix_symbolic(1, 2, 1, "tanh", params=(2.0, 0.1, -0.5, 0.3))
    xp = resolve_backend(backend)
    rng = np.random.default_rng(0)
    x = xp.asarray(rng.uniform(-1, 1, (30, 2)))
    y = xp.asarray(rng.normal(size=(30, 2)))
    for lamb in (0.0, 1e-2):  # plain and regularized (per-edge) paths
        loss, grads = model.value_and_grad(x, y, lamb=lamb)
        assert "layers.0.sym_affine" in grads and "layers.1.sym_affine" in grads
        for name in ("layers.0.sym_affine", "layers.1.sym_affine", "layers.0.coef", "layers.1.scale_base"):
            values = host(model.parameters()[name]).copy()

            def loss_of(v, name=name):
                _assign(model, name, v)
                return float(model.value_and_grad(x, y, lamb=lamb)[0])

            ref = fd_grad(loss_of, values)
            _assign(model, name, values)
            assert_grad_close(host(grads[name]), ref, f"{name} lamb={lamb}")
    out, _, dx = model.vjp(x, xp.ones((30, 2), dtype=xp.float64))
    xh = host(x).copy()

    def sum_out(v):
        return float(np.sum(host(model(xp.asarray(v)))))

    assert_grad_close(host(dx), fd_grad(sum_out, xh), "dx")


def _assign(model, name, values):
    if name.endswith("sym_affine"):
        model.layers[int(name.split(".")[1])].symbolic.affine = model.xp.asarray(values, dtype=model.dtype)
    else:
        set_param(model, name, values)


def test_formula_lists_spline_edges_and_bad_input_leaves_model_unchanged(expsin):
    model, x, _ = expsin
    with pytest.raises(ValueError, match=r"spline edges.*\(0, 0, 0\)"):
        model.symbolic_formula()
    before = [host(a).copy() for a in model.parameters().values()]
    for call, match in [
        (lambda: model.fix_symbolic(0, 0, 0, "nosuchfunction"), "unknown symbolic function"),
        (lambda: model.fix_symbolic(2, 0, 0, "sin"), "layer index"),
        (lambda: model.fix_symbolic(0, 2, 0, "sin"), "input index"),
        (lambda: model.fix_symbolic(0, 0, 1, "sin"), "output index"),
        (lambda: model.suggest_symbolic(0, 0, 0, topk=0), "topk"),
        (lambda: model.auto_symbolic(r2_threshold=1.5), "r2_threshold"),
        (lambda: model.auto_symbolic(lib=["sin", "nope"]), "unknown symbolic function"),
        (lambda: model.fix_symbolic(0, 0, 0, "sin", params=(1, 2, 3)), "four finite numbers"),
        (lambda: model.unfix_symbolic(0, 0, 0), "not symbolic"),
        (lambda: model.symbolic_formula(digits=-1), "digits"),
    ]:
        with pytest.raises(ValueError, match=match):
            call()
    after = [host(a) for a in model.parameters().values()]
    assert all(np.array_equal(a, b) for a, b in zip(before, after))
    assert all(name is None for layer in model.layers for row in layer.symbolic.names for name in row)
    fresh = ka.KAN([2, 1], grid=3)
    with pytest.raises(ValueError, match="no samples"):
        fresh.suggest_symbolic(0, 0, 0)


def test_fix_and_unfix_restore_the_spline():
    model = ka.KAN([2, 2], grid=3, seed=0)
    x = np.random.default_rng(0).uniform(-1, 1, (50, 2))
    before = model(x)
    model.fix_symbolic(0, 1, 0, "sin", params=(2.0, 0.0, 1.0, 0.0))
    assert not np.allclose(model(x), before)
    model.unfix_symbolic(0, 1, 0)
    np.testing.assert_array_equal(model(x), before)
    assert "layers.0.sym_affine" not in model.parameters()


def test_user_registered_function_trains_and_saves(tmp_path):
    import sympy

    name = "cube_root_test"
    register(name, lambda z, xp: xp.sign(z) * xp.abs(z) ** (1 / 3),
             lambda z, xp: (xp.abs(z) + 1e-12) ** (-2 / 3) / 3, lambda s: sympy.cbrt(s), 3, overwrite=True)
    with pytest.raises(ValueError, match="already has"):
        register(name, abs, abs, abs, 1)
    model = ka.KAN([1, 1], grid=3, seed=0)
    model.fix_symbolic(0, 0, 0, name, params=(1.0, 2.0, 1.0, 0.0))
    path = tmp_path / "m.kan"
    model.save(path)
    x = np.linspace(-1, 1, 20)[:, None]
    np.testing.assert_array_equal(ka.load(path)(x), model(x))
    del LIBRARY[name]
    with pytest.raises(ka.CheckpointError, match="not in the library"):
        ka.load(path)


def test_symbolic_model_moves_between_backends_and_checkpoints(backend, tmp_path):
    model = ka.KAN([2, 2, 1], grid=3, seed=2)
    model.fix_symbolic(0, 0, 1, "sin", params=(2.0, 0.3, 1.0, 0.1))
    model.fix_symbolic(1, 1, 0, "x^2", params=(1.0, -0.2, 0.5, 0.0))
    x = np.random.default_rng(0).uniform(-1, 1, (20, 2))
    ref = model(x)
    model.save(tmp_path / "s.kan")
    loaded = ka.load(tmp_path / "s.kan", backend=backend)
    np.testing.assert_allclose(host(loaded(loaded.xp.asarray(x))), ref, rtol=1e-13, atol=1e-13)
    moved = ka.load(tmp_path / "s.kan").to(backend)
    assert moved.layers[0].symbolic.names == model.layers[0].symbolic.names
    np.testing.assert_allclose(host(moved(moved.xp.asarray(x))), ref, rtol=1e-13, atol=1e-13)


def test_all_symbolic_layer_skips_the_splines_and_keeps_exact_gradients(backend):
    """A layer whose edges are all symbolic skips the spline evaluation (on NumPy); values and
    gradients must not change because of it."""
    from kanarray._namespace import resolve_backend

    xp = resolve_backend(backend)
    model = ka.KAN([2, 2, 1], grid=3, seed=4, backend=backend)
    for (l, i, j), name in {(0, 0, 0): "sin", (0, 0, 1): "x^2", (0, 1, 0): "exp", (0, 1, 1): "tanh",
                            (1, 0, 0): "x", (1, 1, 0): "gaussian"}.items():
        model.fix_symbolic(l, i, j, name, params=(1.1 + 0.1 * i, 0.2 * j - 0.1, 0.9, 0.05 * l))
    rng = np.random.default_rng(3)
    xh = rng.uniform(-1, 1, (25, 2))
    x, y = xp.asarray(xh), xp.asarray(rng.normal(size=(25, 1)))
    ref = np.zeros((25, 1))
    hidden = np.zeros((25, 2))
    for (i, o), (f, a, b, c, d) in {(0, 0): (np.sin, 1.1, -0.1, 0.9, 0), (0, 1): (np.square, 1.1, 0.1, 0.9, 0),
                                    (1, 0): (np.exp, 1.2, -0.1, 0.9, 0), (1, 1): (np.tanh, 1.2, 0.1, 0.9, 0)}.items():
        hidden[:, o] += c * f(a * xh[:, i] + b) + d
    for i, (f, a, b) in enumerate([(lambda v: v, 1.1, -0.1), (lambda v: np.exp(-v * v), 1.2, -0.1)]):
        ref[:, 0] += 0.9 * f(a * hidden[:, i] + b) + 0.05
    np.testing.assert_allclose(host(model(x)), ref, rtol=1e-12, atol=1e-12)
    _, grads = model.value_and_grad(x, y)
    for name in ("layers.0.sym_affine", "layers.1.sym_affine"):
        values = host(model.parameters()[name]).copy()

        def loss_of(v, name=name):
            _assign(model, name, v)
            return float(model.value_and_grad(x, y)[0])

        ref_grad = fd_grad(loss_of, values)
        _assign(model, name, values)
        assert_grad_close(host(grads[name]), ref_grad, name)
    assert np.all(host(grads["layers.0.coef"]) == 0) and np.all(host(grads["layers.1.scale_base"]) == 0)


def test_formulas_agree_up_to_rounding_and_not_beyond():
    sympy = pytest.importorskip("sympy")
    from kanarray.symbolic.formula import formulas_agree

    a, b = sympy.symbols("a b", real=True)
    plain_a, plain_b = sympy.symbols("a b")  # other assumptions, same names
    x = np.random.default_rng(0).uniform(0.5, 2, (50, 2))
    target = (a + b) / (1 + a * b)
    assert formulas_agree((plain_a + plain_b) / (1 + plain_a * plain_b), target, (a, b), x) == (True, 0.0)
    near = (1.00004 * plain_a + plain_b) / (1 + plain_a * plain_b)
    ok, gap = formulas_agree(near, target, (a, b), x)
    assert ok and 0 < gap < 1e-4
    off = (1.003 * plain_a + plain_b) / (1 + plain_a * plain_b)  # a real difference, not rounding
    assert not formulas_agree(off, target, (a, b), x)[0]
    assert not formulas_agree(plain_a * plain_b, target, (a, b), x)[0]
    # pi in the target is compared after rounding, as in the recovered formulas
    ok, _ = formulas_agree(sympy.sin(3.1416 * plain_a), sympy.sin(sympy.pi * a), (a, b), x)
    assert ok


def test_formulas_agree_sees_through_constants_spread_over_a_power():
    sympy = pytest.importorskip("sympy")
    from kanarray.symbolic.formula import canonical, formulas_agree

    a, b = sympy.symbols("a b", nonnegative=True)
    x = np.random.default_rng(1).uniform(0, 1, (50, 2))
    # what a [2, 1, 1] KAN gives for sqrt(1 + a^2 + b^2): the scale split between the two layers
    found = 23.840712 * sympy.sqrt(0.00175942 * a**2 + 0.00175942 * b**2 + 0.00175942)
    assert canonical(found) == sympy.sqrt(a**2 + b**2 + 1)
    assert formulas_agree(found, sympy.sqrt(1 + a**2 + b**2), (a, b), x)[0]
    assert not formulas_agree(found, sympy.sqrt(1 + a**2 + 2 * b**2), (a, b), x)[0]
    wrong = 23.840712 * sympy.sqrt(0.00175942 * a**2 + 0.0019 * b**2 + 0.00175942)  # 8% off on b^2
    assert not formulas_agree(wrong, sympy.sqrt(1 + a**2 + b**2), (a, b), x)[0]
