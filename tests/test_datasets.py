"""kanarray.datasets: make_dataset (pykan's create_dataset) and the paper's toy, special and Feynman functions."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from kanarray.datasets import FEYNMAN, SPECIAL, TOY, feynman_dataset, make_dataset, special_dataset, toy_dataset
from kanarray._namespace import to_numpy


def test_make_dataset_draws_each_variable_from_its_range(backend):
    f = lambda x: np.stack([x[:, 0] * x[:, 1], x[:, 1] - x[:, 0]], axis=1)  # noqa: E731
    d = make_dataset(f, 2, ranges=[(-1, 1), (2, 5)], n_train=500, n_test=300, seed=3, backend=backend)
    x, y = to_numpy(d["train_input"]), to_numpy(d["train_label"])
    assert x.shape == (500, 2) and y.shape == (500, 2) and to_numpy(d["test_input"]).shape == (300, 2)
    assert x[:, 0].min() >= -1 and x[:, 0].max() < 1 and x[:, 1].min() >= 2 and x[:, 1].max() < 5
    assert x[:, 1].max() - x[:, 1].min() > 2.8  # spread over the range, not squeezed
    np.testing.assert_allclose(y, f(x), rtol=1e-15)
    again = make_dataset(f, 2, ranges=[(-1, 1), (2, 5)], n_train=500, n_test=300, seed=3)
    np.testing.assert_array_equal(to_numpy(again["test_input"]), to_numpy(d["test_input"]))
    assert not np.array_equal(to_numpy(d["test_input"])[:300], x[:300])


def test_make_dataset_float32_and_column_labels():
    d = make_dataset(lambda x: np.sin(x[:, 0]), 1, dtype="float32", n_train=10, n_test=10)
    assert d["train_input"].dtype == np.float32 and d["train_label"].shape == (10, 1)


@pytest.mark.parametrize("kwargs,match", [
    (dict(ranges=(1, -1)), "lo < hi"),
    (dict(ranges=[(0, 1)] * 3), "one per variable"),
    (dict(n_train=0), "n_train"),
    (dict(n_test=2.5), "n_test"),
    (dict(dtype="float16"), "dtype"),
])
def test_make_dataset_refuses_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_dataset(lambda x: x[:, 0], 2, **kwargs)


def test_make_dataset_refuses_bad_labels():
    with pytest.raises(ValueError, match="non-finite"):
        make_dataset(lambda x: np.log(x[:, 0]), 1)  # log of negative inputs
    with pytest.raises(ValueError, match="must return"):
        make_dataset(lambda x: x[:5, 0], 1)
    with pytest.raises(ValueError, match="n_var"):
        make_dataset(lambda x: x[:, 0], 0)


@pytest.mark.parametrize("name", sorted(TOY))
def test_toy_functions_match_their_formulas(name):
    sympy = pytest.importorskip("sympy")
    d = TOY[name]
    expr = d.formula()
    symbols = sorted(expr.free_symbols, key=lambda s: int(s.name.split("_")[1]))
    assert len(symbols) == d.n_var and d.shape[0] == d.n_var and d.shape[-1] == 1
    fn = sympy.lambdify(symbols, expr, modules=["scipy", "numpy"])
    data = toy_dataset(name, n_train=200, n_test=10, seed=1)
    x = np.asarray(data["train_input"])
    np.testing.assert_allclose(np.asarray(data["train_label"])[:, 0], fn(*x.T), rtol=1e-12, atol=1e-12)


def test_unknown_toy_name_is_refused():
    with pytest.raises(ValueError, match="choose from"):
        toy_dataset("nope")


def test_importing_datasets_stays_light():
    code = "import sys, kanarray.datasets; print(any(m in sys.modules for m in ('scipy', 'sympy')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def _symbols(d):
    """The real symbols named after d.variables; the formula may use no others."""
    sympy = pytest.importorskip("sympy")
    symbols = [sympy.Symbol(v, real=True) for v in d.variables]
    expr = d.formula()
    assert expr.free_symbols <= set(symbols), (expr.free_symbols, d.variables)
    return sympy, symbols, expr


@pytest.mark.parametrize("table,sample", [(SPECIAL, special_dataset), (FEYNMAN, feynman_dataset)])
def test_tables_are_well_formed_and_give_finite_labels(table, sample):
    for name, d in table.items():
        assert d.name == name and d.n_var == len(d.variables) == len(d.ranges) and d.note
        assert d.shape[0] == d.n_var and d.shape[-1] == 1 and all(w >= 1 for w in d.shape)
        assert all(lo < hi for lo, hi in d.ranges)
        data = sample(name, n_train=1000, n_test=1000, seed=2)  # make_dataset raises on non-finite labels
        x = np.asarray(data["train_input"])
        assert np.all(x >= [lo for lo, _ in d.ranges]) and np.all(x <= [hi for _, hi in d.ranges])
        assert np.std(np.asarray(data["train_label"])) > 1e-3, name  # not constant on its ranges


@pytest.mark.parametrize("name", list(SPECIAL))
def test_special_functions_match_their_sympy_formulas(name):
    """scipy.special (f) against sympy/mpmath (formula) at 20 of 200 sampled points."""
    d = SPECIAL[name]
    assert d.paper_rmse is not None and d.n_var == 2
    sympy, symbols, expr = _symbols(d)
    data = special_dataset(name, n_train=200, n_test=10, seed=5)
    x, y = np.asarray(data["train_input"])[:20], np.asarray(data["train_label"])[:20, 0]
    ref = [float(expr.subs({s: sympy.Float(v) for s, v in zip(symbols, row)}).evalf(30)) for row in x]
    np.testing.assert_allclose(y, ref, rtol=1e-9, atol=1e-12)


def test_special_function_conventions():
    """Spot values: sn(u|0) = sin u, F(phi|0) = E(phi|0) = phi, lpmv's Condon-Shortley phase, Re Y_1^1."""
    def at(name, *x):
        return SPECIAL[name].f(np.array([x], dtype=np.float64))[0]

    assert at("ellipj", 0.7, 0.0) == pytest.approx(np.sin(0.7), rel=1e-14)
    assert at("ellipkinc", 0.7, 0.0) == pytest.approx(0.7, rel=1e-14)
    assert at("ellipeinc", 0.7, 0.0) == pytest.approx(0.7, rel=1e-14)
    assert at("lpmv_m1", 1.0, 0.6) == pytest.approx(-0.8, rel=1e-12)  # P_1^1(x) = -sqrt(1 - x^2)
    assert at("lpmv_m2", 1.0, 0.6) == pytest.approx(0.0, abs=1e-12)
    assert at("sph_harm_m1_n1", 0.4, 1.1) == pytest.approx(
        -np.sqrt(3 / (8 * np.pi)) * np.sin(0.4) * np.cos(1.1), rel=1e-12)


@pytest.mark.parametrize("name", list(FEYNMAN))
def test_feynman_equations_match_their_formulas(name):
    d = FEYNMAN[name]
    sympy, symbols, expr = _symbols(d)
    fn = sympy.lambdify(symbols, expr, modules="numpy")
    data = feynman_dataset(name, n_train=200, n_test=10, seed=4)
    x, y = np.asarray(data["train_input"]), np.asarray(data["train_label"])[:, 0]
    np.testing.assert_allclose(y, np.broadcast_to(fn(*x.T), y.shape), rtol=1e-12, atol=1e-14)


def test_feynman_paper_rmses_and_i16_6():
    with_rmse = {name for name, d in FEYNMAN.items() if d.paper_rmse is not None}
    assert with_rmse == {"I.6.2", "I.9.18", "I.16.6", "I.37.4", "I.44.4", "III.17.37"}
    assert FEYNMAN["I.16.6"].f(np.array([[0.5, 0.5]]))[0] == pytest.approx(0.8)  # (a + b)/(1 + a b), not a b
    assert len(FEYNMAN) == 27 and len(SPECIAL) == 15


@pytest.mark.parametrize("sample,valid", [(special_dataset, "ellipj"), (feynman_dataset, "I.6.2")])
def test_unknown_special_and_feynman_names_are_refused(sample, valid):
    with pytest.raises(ValueError, match=f"choose from .*'{valid}'"):
        sample("nope")
