"""kanarray.datasets: make_dataset (pykan's create_dataset) and the paper's toy functions."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from kanarray.datasets import TOY, make_dataset, toy_dataset
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
