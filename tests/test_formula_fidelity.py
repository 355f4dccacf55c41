"""symbolic_formula's printed result computes what the model computes: rounding keeps
magnitudes (issue 25, item 0), a mismatch is reported naming the edge, var_names are checked
(item 10), and a property over random symbolic models."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kanarray as ka
from kanarray.symbolic import FormulaMismatchError, FormulaMismatchWarning
from kanarray.symbolic import formula as formula_module
from kanarray.symbolic.fidelity import GRID_POINTS, base_tolerance, check_samples

sympy = pytest.importorskip("sympy")


def _values(expr, symbols, columns):
    fn = sympy.lambdify(list(symbols), expr, "numpy")
    with np.errstate(all="ignore"):
        return np.broadcast_to(np.asarray(fn(*columns), dtype=np.float64), np.shape(columns[0]))


# -- rounding keeps magnitudes ------------------------------------------------------------------

@pytest.mark.parametrize("digits", [4, 20])
def test_tidy_keeps_a_gaussian_of_a_shifted_argument(digits):
    """The issue's minimal case: expanding exp(-(x + 7.6)**2) made a factor exp(-57.76) ~ 1e-25,
    which 4 (or 20) decimals rounded to 0, leaving y."""
    x, y = sympy.symbols("x y")
    exact = sympy.Float(1.4) * sympy.exp(-(x + sympy.Float(7.6)) ** 2) + y
    tidied = formula_module.tidy(exact, digits)
    xs = np.linspace(-9.0, -6.0, 301)
    ys = np.linspace(-1.0, 1.0, 301)
    np.testing.assert_allclose(_values(tidied, (x, y), (xs, ys)), _values(exact, (x, y), (xs, ys)),
                               rtol=10.0 ** -min(digits, 12), atol=0)
    assert tidied.has(sympy.exp) and tidied.has(x)


def test_tidy_keeps_the_coefficient_of_a_growing_exponential():
    """1e-6 exp(20 x) is 485 at x = 1: its coefficient must not be rounded to 0."""
    x = sympy.Symbol("x")
    exact = sympy.Float(1.234567e-6) * sympy.exp(sympy.Float(20.0) * x) + sympy.Float(0.5) * x
    tidied = formula_module.tidy(exact, 4)
    xs = np.linspace(-1.0, 1.0, 101)
    np.testing.assert_allclose(_values(tidied, (x,), (xs,)), _values(exact, (x,), (xs,)), rtol=1e-3)


def test_tidy_still_drops_noise_and_merges_constants():
    """What tidy is for keeps working: a coefficient of order 1e-6 on a bounded term vanishes,
    constants spread over exp(b) and c merge, and ordinary numbers keep digits decimals."""
    x = sympy.Symbol("x")
    exact = (sympy.Float(1.0 / np.e) * sympy.exp(sympy.Float(3.14159265) * x + sympy.Float(1.0))
             + sympy.Float(1e-6) * x + sympy.Float(2.5))
    assert formula_module.tidy(exact, 4) == sympy.exp(sympy.Float("3.1416", 15) * x) + sympy.Float("2.5", 15)


def _friedman_like():
    """[2, 1, 1]: h = 8 x_1 + 0.5 x_2 (range about [-8.5, 8.5]), output 1.4 exp(-(h + 7.6)**2): the
    gaussian peaks near x_1 = -0.95, and expanding its square gives exp(-57.76) (the old tidy: 0)."""
    model = ka.KAN([2, 1, 1], grid=3, seed=0)
    model.fix_symbolic(0, 0, 0, "x", params=(1.0, 0.0, 8.0, 0.0))
    model.fix_symbolic(0, 1, 0, "x", params=(1.0, 0.0, 0.5, 0.0))
    model.fix_symbolic(1, 0, 0, "gaussian", params=(1.0, 7.6, 1.4, 0.0))
    return model


def test_formula_of_a_model_with_a_shifted_gaussian_matches_the_model():
    model = _friedman_like()
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (400, 2))
    x[:50, 0] = rng.uniform(-1.0, -0.9, 50)  # where the gaussian is large
    (formula,) = model.symbolic_formula()
    x1, x2 = sympy.symbols("x_1 x_2")
    got = _values(formula, (x1, x2), (x[:, 0], x[:, 1]))
    ref = np.asarray(model(x))[:, 0]
    assert np.max(ref) > 1.0  # the gaussian is large on some of these inputs
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-3)


# -- the check against the model --------------------------------------------------------------

def _destructive_tidy(expr, digits):
    """The old tidy step: expand exponentials of sums fully, round to decimals."""
    return formula_module.round_numbers(sympy.expand(expr), digits)


def test_a_formula_that_lost_a_term_warns_naming_the_edge(monkeypatch):
    model = _friedman_like()
    monkeypatch.setattr(formula_module, "tidy", _destructive_tidy)
    with pytest.warns(FormulaMismatchWarning, match=r"output 0 differs.*edge \(layer 1, input 0, output 0\) "
                                                    r"'gaussian'") as caught:
        (formula,) = model.symbolic_formula()
    assert "grid range" in str(caught[0].message)  # no fit_inputs stored: the grid over grid_range
    assert caught[0].filename == __file__  # the warning points at the caller
    assert not formula.has(sympy.exp)  # the broken formula is still returned, for inspection
    with pytest.raises(FormulaMismatchError, match=r"edge \(layer 1, input 0, output 0\) 'gaussian'"):
        model.symbolic_formula(on_mismatch="raise")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.symbolic_formula(on_mismatch="ignore")
    with pytest.raises(ValueError, match="on_mismatch"):
        model.symbolic_formula(on_mismatch="loud")


def test_the_check_uses_the_stored_samples(monkeypatch):
    """With fit_inputs stored only where the gaussian is negligible (x_1 >= 0), the same broken
    formula agrees with the model on them: no warning.  The grid over grid_range (no samples
    stored) does reach x_1 = -0.95."""
    model = _friedman_like()
    monkeypatch.setattr(formula_module, "tidy", _destructive_tidy)
    stored = np.random.default_rng(1).uniform(0, 1, (300, 2))
    model.fit_inputs = model.prepare_inputs(stored)
    assert check_samples(model)[0] is model.fit_inputs
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.symbolic_formula()
    model.fit_inputs = None
    grid, what = check_samples(model)
    grid = np.asarray(grid)
    assert grid.shape == (GRID_POINTS, 2) and "grid range" in what
    for column in grid.T:
        np.testing.assert_allclose(np.sort(column), np.linspace(-1.0, 1.0, GRID_POINTS))
    with pytest.warns(FormulaMismatchWarning):
        model.symbolic_formula()


def test_the_check_runs_on_every_backend_and_thins_many_samples(backend, monkeypatch):
    from kanarray._namespace import resolve_backend

    model = _friedman_like().to(backend)
    xp = resolve_backend(backend)
    model.fit_inputs = model.prepare_inputs(xp.asarray(np.random.default_rng(3).uniform(-1, 1, (3000, 2))))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.symbolic_formula(on_mismatch="raise")
    monkeypatch.setattr(formula_module, "tidy", _destructive_tidy)
    with pytest.raises(FormulaMismatchError, match=r"on 2048 of the 3000 stored fit_inputs.*'gaussian'"):
        model.symbolic_formula(on_mismatch="raise")


def test_the_check_finds_the_edge_in_a_hidden_layer(monkeypatch):
    """A broken hidden node is traced to the edge into it, not to the output edge above it."""
    model = ka.KAN([1, 2, 1], grid=3, seed=0)
    model.fix_symbolic(0, 0, 0, "gaussian", params=(8.0, 7.6, 3.0, 0.0))  # centred at x = -0.95
    model.fix_symbolic(0, 0, 1, "sin", params=(1.0, 0.0, 1.0, 0.0))
    model.fix_symbolic(1, 0, 0, "x", params=(1.0, 0.0, 1.0, 0.0))
    model.fix_symbolic(1, 1, 0, "x", params=(1.0, 0.0, 1.0, 0.0))
    monkeypatch.setattr(formula_module, "tidy", _destructive_tidy)
    with pytest.raises(FormulaMismatchError) as caught:
        model.symbolic_formula(on_mismatch="raise")
    message = str(caught.value)
    assert "edge (layer 0, input 0, output 0) 'gaussian'" in message
    assert "layer 1" not in message and "'sin'" not in message


def test_the_check_with_an_input_scaling_and_float32_passes_on_a_correct_formula():
    model = _friedman_like()
    model.scale_inputs([10.0, -3.0], [20.0, 3.0])
    model.to(dtype="float32")
    model.fit_inputs = model.prepare_inputs(np.random.default_rng(2).uniform([10, -3], [20, 3], (500, 2)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        (formula,) = model.symbolic_formula(on_mismatch="raise")
    assert base_tolerance(4, "float64") == pytest.approx(1e-4)  # the dtype's floor shows for float32 only
    assert base_tolerance(4, "float32") == pytest.approx(1e3 * np.finfo(np.float32).eps)
    assert formula.free_symbols == set(sympy.symbols("x_1 x_2"))


# -- var_names ----------------------------------------------------------------------------------

@pytest.mark.parametrize("names,match", [
    (["a", "a"], "distinct.*'a'"),
    (["a", sympy.Symbol("a", positive=True)], "distinct.*'a'"),
    (["a"], "1 names but the model has 2 inputs"),
    (["a", "b", "c"], "3 names but the model has 2 inputs"),
    (["a", ""], r"var_names\[1\] = ''.*identifier"),
    (["a", "1x"], r"var_names\[1\] = '1x'"),
    (["a b", "c"], r"var_names\[0\] = 'a b'"),
    ("ab", "single string"),
    (["a", 3], r"var_names\[1\] must be a string or a sympy Symbol"),
    (["a", sympy.Symbol("b") + 1], r"var_names\[1\] must be a string or a sympy Symbol"),
    (5, "list of 2 names"),
])
def test_var_names_are_checked_before_any_work(names, match):
    model = ka.KAN([2, 1], grid=3, seed=0)  # still all splines: the names are refused first
    with pytest.raises(ValueError, match=match):
        model.symbolic_formula(var_names=names)


def test_good_var_names_still_work():
    model = ka.KAN([2, 1], grid=3, seed=0)
    model.fix_symbolic(0, 0, 0, "sin", params=(1.0, 0.0, 1.0, 0.0))
    model.fix_symbolic(0, 1, 0, "x", params=(1.0, 0.0, 2.0, 0.0))
    u = sympy.Symbol("u", positive=True)
    (formula,) = model.symbolic_formula(var_names=[u, "v_1"])
    assert formula == sympy.sin(u) + 2 * sympy.Symbol("v_1")


# -- the property: formula and model agree ----------------------------------------------------

FUNCTIONS = ["x", "x^2", "x^3", "sin", "cos", "tanh", "arctan", "exp", "gaussian", "abs"]
EXP_CAP = 30.0  # keep exp's argument below the model's clamp (50) so model and formula are the same function


@st.composite
def symbolic_model(draw):
    """A random all-symbolic KAN, 1 or 2 layers of widths 1..3, with random library functions and
    affine parameters: large shifts b, coefficients c down to 1e-6, exponentials and gaussians
    centred (by their shift) somewhere inside their inputs' range."""
    depth = draw(st.integers(1, 2))
    width = [draw(st.integers(1, 3)) for _ in range(depth + 1)]
    model = ka.KAN(width, grid=3, seed=0)
    probe = np.random.default_rng(0).uniform(-1, 1, (500, width[0]))
    h = probe
    for l in range(depth):
        for i in range(width[l]):
            for j in range(width[l + 1]):
                name = draw(st.sampled_from(FUNCTIONS))
                a = draw(st.floats(0.3, 2.5)) * draw(st.sampled_from([-1.0, 1.0]))
                c = 10.0 ** draw(st.floats(-6, 0.4)) * draw(st.sampled_from([-1.0, 1.0]))
                d = draw(st.floats(-1, 1))
                z = a * h[:, i]
                if name == "gaussian":  # centred at a quantile of its input: a large shift where h is large
                    b = -float(np.quantile(z, draw(st.floats(0, 1)))) + draw(st.floats(-0.5, 0.5))
                else:
                    b = draw(st.floats(-8, 8))
                if name == "exp":
                    b = min(b, EXP_CAP - float(np.max(z)))
                model.fix_symbolic(l, i, j, name, params=(a, b, c, d))
        h = np.asarray(model.layers[l].forward(model.xp.asarray(h))[0])
    return model


def _rounding_spread(model, x, digits: int, draws: int = 4) -> np.ndarray:
    """(width[-1],): the largest change of model(x) when every edge's (a, b, c, d) moves by half a
    rounding step, 10**-digits / 2 (times the number where it exceeds 1), in random directions:
    what printing the model's numbers to ``digits`` decimals can do to its outputs."""
    edges = [(l, i, j, name, np.array(np.asarray(layer.symbolic.affine)[i, j]))
             for l, layer in enumerate(model.layers) for i, j, name in layer.symbolic.edges()]
    base = np.asarray(model(x))
    rng = np.random.default_rng(1)
    spread = np.zeros(base.shape[1])
    step = 0.5 * 10.0 ** -digits
    try:
        for _ in range(draws):
            for l, i, j, name, p in edges:
                model.fix_symbolic(l, i, j, name, params=p + rng.choice([-1.0, 1.0], 4) * step * np.maximum(1, abs(p)))
            spread = np.maximum(spread, np.max(np.abs(np.asarray(model(x)) - base), axis=0))
    finally:
        for l, i, j, name, p in edges:
            model.fix_symbolic(l, i, j, name, params=p)
    return spread


@pytest.mark.slow
@settings(max_examples=40, deadline=None)
@given(model=symbolic_model(), digits=st.sampled_from([3, 4, 6]), simplify=st.booleans(),
       seed=st.integers(0, 2**16))
def test_formula_and_model_agree(model, digits, simplify, seed):
    """On random inputs inside grid_range, the printed formula (lambdified with NumPy) equals
    model.forward within what rounding to ``digits`` decimals allows: 10 times the change that
    moving the model's numbers by half a rounding step makes, plus 10**-digits of the output's
    scale (terms whose coefficient rounds to 0); and no mismatch is reported."""
    n = model.width[0]
    symbols = sympy.symbols(f"x_1:{n + 1}") if n > 1 else (sympy.Symbol("x_1"),)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FormulaMismatchWarning)
        formulas = model.symbolic_formula(digits=digits, simplify=simplify)
    x = np.random.default_rng(seed).uniform(-1, 1, (300, n))
    ref = np.asarray(model(x))
    spread = _rounding_spread(model, x, digits)
    for o, expr in enumerate(formulas):
        got = _values(expr, symbols, list(x.T))
        allowed = 10 * spread[o] + 10.0 ** -digits * max(1.0, float(np.max(np.abs(ref[:, o]))))
        assert np.max(np.abs(got - ref[:, o])) <= allowed, (expr, model.width)


@pytest.mark.parametrize("name", ["sqrt", "x^1.5", "1/sqrt(x)", "log", "arcsin", "arccos", "arctanh"])
def test_functions_with_a_restricted_domain_are_compared_only_inside_it(name):
    """Over the grid range (no fit_inputs), sqrt(x + 0.3) is NaN below -0.3 while the model's safe
    version is finite there: a correct formula must not be reported (it was, as off by inf)."""
    model = ka.KAN([2, 1], grid=5, seed=0)
    model.fix_symbolic(0, 0, 0, name, params=(1.0, 0.3, 1.0, 0.0))
    model.fix_symbolic(0, 1, 0, "x", params=(1.0, 0.0, 1.0, 0.0))
    (formula,) = model.symbolic_formula(on_mismatch="raise")
    assert {str(s) for s in formula.free_symbols} == {"x_1", "x_2"}


def test_a_wrong_formula_is_still_found_inside_the_domain():
    import sympy

    from kanarray.symbolic.fidelity import check_formulas

    model = ka.KAN([2, 1], grid=5, seed=0)
    model.fix_symbolic(0, 0, 0, "sqrt", params=(1.0, 0.3, 1.0, 0.0))
    model.fix_symbolic(0, 1, 0, "x", params=(1.0, 0.0, 1.0, 0.0))
    (formula,) = model.symbolic_formula(on_mismatch="raise")
    x1, x2 = sorted(formula.free_symbols, key=str)
    with pytest.raises(FormulaMismatchError, match="output 0 differs"):
        check_formulas(model, [formula - x2], [x1, x2], nodes=[[x1, x2], [formula]], round_fn=lambda e: e,
                       digits=4, on_mismatch="raise")
