"""pykan's habits that kanarray accepts: fit(dataset), create_dataset, ka.datasets, History's
test_loss, symbolic_formula's (formulas, variables), 1-D mse targets, the progress bar's figures,
and the test run's skip summary."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import kanarray as ka
from kanarray import training
from kanarray._checks import as_batch
from kanarray._namespace import resolve_backend

ROOT = Path(__file__).resolve().parents[1]


def _data(n_train=40, n_test=16):
    return ka.make_dataset(lambda x: x[:, 0] * x[:, 1], 2, n_train=n_train, n_test=n_test, seed=1)


def _params(model):
    return {k: np.asarray(v).copy() for k, v in model.parameters().items()}


# -- fit(dataset), create_dataset, ka.datasets -------------------------------------------------
def test_fit_on_a_dataset_dict_trains_on_train_and_validates_on_test():
    data = _data()
    a, b = ka.KAN([2, 3, 1], seed=0), ka.KAN([2, 3, 1], seed=0)
    ha = a.fit(data, steps=4, progress=False)
    hb = b.fit(data["train_input"], data["train_label"], validation=(data["test_input"], data["test_label"]),
               steps=4, progress=False)
    assert len(ha["val_loss"]) == 4
    assert ha["train_loss"] == hb["train_loss"] and ha["val_loss"] == hb["val_loss"]
    for name, value in _params(a).items():
        np.testing.assert_array_equal(value, _params(b)[name])


def test_fit_on_a_dataset_dict_without_a_test_split_has_no_validation():
    data = {k: v for k, v in _data().items() if k.startswith("train")}
    history = ka.KAN([2, 3, 1]).fit(data, steps=2, progress=False)
    assert len(history["train_loss"]) == 2 and history["val_loss"] == []


@pytest.mark.parametrize(("call", "match"), [
    (lambda m, d: m.fit(d["train_input"], steps=1), "fit needs targets"),
    (lambda m, d: m.fit(d, d["train_label"], steps=1), "dataset dict and y"),
    (lambda m, d: m.fit({"train_input": d["train_input"]}, steps=1), r"lacks \['train_label'\]"),
    (lambda m, d: m.fit({k: v for k, v in d.items() if k != "test_label"}, steps=1), r"lacks \['test_label'\]"),
    (lambda m, d: m.fit(d, validation=(d["test_input"], d["test_label"]), steps=1), "pass only one"),
])
def test_fit_refuses_an_unclear_dataset_before_changing_anything(call, match):
    model, data = ka.KAN([2, 3, 1]), _data()
    before = _params(model)
    with pytest.raises(ValueError, match=match):
        call(model, data)
    for name, value in _params(model).items():
        np.testing.assert_array_equal(value, before[name])


def test_create_dataset_is_make_dataset_under_pykans_argument_names():
    def f(x):
        return np.sin(x[:, [0]]) + x[:, [1]] ** 2

    got = ka.create_dataset(f, n_var=2, ranges=[-2, 1], train_num=30, test_num=10, seed=3)
    ref = ka.make_dataset(f, 2, (-2, 1), n_train=30, n_test=10, seed=3)
    assert sorted(got) == ["test_input", "test_label", "train_input", "train_label"]
    for key in ref:
        np.testing.assert_array_equal(got[key], ref[key])
    assert got["train_input"].shape == (30, 2) and got["test_label"].shape == (10, 1)


def test_datasets_is_reachable_from_the_package_and_imports_nothing_heavy():
    code = ("import sys, kanarray as ka; ka.datasets.make_dataset; ka.datasets.FEYNMAN; "
            "heavy = [m for m in ('scipy', 'sympy', 'matplotlib', 'torch', 'cupy') if m in sys.modules]; "
            "assert not heavy, heavy")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr


# -- History's pykan keys -----------------------------------------------------------------------
def test_history_answers_to_pykans_test_loss():
    history = ka.KAN([2, 3, 1]).fit(_data(), steps=3, progress=False)
    assert history["test_loss"] is history["val_loss"] and len(history["test_loss"]) == 3
    assert "test_loss" in history and history.get("test_loss") is history["val_loss"]
    assert "test_acc" not in history and history.get("test_acc", 7) == 7  # mse: no accuracy curve
    assert list(history) == ["train_loss", "val_loss", "reg"]  # the aliases are not listed twice
    assert len(history["reg"]) == 3 and len(history["train_loss"]) == 3
    with pytest.raises(KeyError):
        history["nonsense"]


def test_history_test_acc_is_val_acc_for_classification():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (40, 2))
    labels = (x[:, 0] > 0).astype(np.int64)
    history = ka.KAN([2, 2], seed=0).fit(x, labels, loss="cross_entropy", validation=(x, labels), steps=2,
                                         progress=False)
    assert history["test_acc"] is history["val_acc"] and len(history["test_acc"]) == 2


# -- symbolic_formula's pykan shape -----------------------------------------------------------
def _symbolic_model():
    model = ka.KAN([2, 1], grid=3, seed=0)
    model.fix_symbolic(0, 0, 0, "x", params=(1.0, 0.0, 2.0, 0.0))
    model.fix_symbolic(0, 1, 0, "sin", params=(1.0, 0.0, 1.0, 0.0))
    return model


def test_symbolic_formula_with_variables_returns_pykans_pair():
    sympy = pytest.importorskip("sympy")
    model = _symbolic_model()
    plain = model.symbolic_formula(on_mismatch="ignore")
    formulas, variables = model.symbolic_formula(on_mismatch="ignore", with_variables=True)
    assert formulas == plain and isinstance(plain, list) and len(plain) == 1
    assert variables == list(sympy.symbols("x_1 x_2"))
    assert formulas[0].free_symbols == set(variables)
    _, named = model.symbolic_formula(["a", "b"], on_mismatch="ignore", with_variables=True)
    assert [s.name for s in named] == ["a", "b"]
    with pytest.raises(ValueError, match="with_variables must be True or False"):
        model.symbolic_formula(with_variables="yes")


# -- y (N,) for mse -----------------------------------------------------------------------------
def test_mse_takes_one_dimensional_targets_as_a_column():
    data = _data()
    x, y = data["train_input"], data["train_label"]
    a, b = ka.KAN([2, 3, 1], seed=0), ka.KAN([2, 3, 1], seed=0)
    ha = a.fit(x, y[:, 0], steps=3, progress=False)
    hb = b.fit(x, y, steps=3, progress=False)
    assert ha["train_loss"] == hb["train_loss"]
    va, _ = a.value_and_grad(x, y[:, 0])
    vb, _ = a.value_and_grad(x, y)
    assert float(va) == float(vb)


def test_one_dimensional_targets_for_several_outputs_are_refused():
    data = _data()
    with pytest.raises(ValueError, match=r"y must have shape \(batch, 2\)"):
        ka.KAN([2, 2]).fit(data["train_input"], data["train_label"][:, 0], steps=1)


def test_the_reshape_hint_names_the_array_at_fault():
    with pytest.raises(ValueError, match=r"use gy\.reshape\(-1, 1\)"):
        as_batch(np.zeros(3), xp=resolve_backend("numpy"), dtype=np.float64, n_features=1, name="gy")
    with pytest.raises(ValueError, match=r"use x\.reshape\(-1, 1\)"):
        ka.KAN([1, 1])(np.zeros(3))


# -- the progress bar ---------------------------------------------------------------------------
class _Bar:
    def __init__(self, steps, fail_at=None):
        self.postfix, self.description, self.updates, self.fail_at, self.closed = [], None, 0, fail_at, False

    def set_postfix_str(self, text, refresh=True):
        self.postfix.append(text)

    def set_description_str(self, text, refresh=True):
        self.description = text

    def update(self, n):
        self.updates += n
        if self.updates == self.fail_at:
            raise KeyboardInterrupt

    def close(self):
        self.closed = True


@pytest.fixture
def bars(monkeypatch):
    made = []

    def make(fail_at=None):
        def progress(steps):
            made.append(_Bar(steps, fail_at))
            return made[-1]

        monkeypatch.setattr(training, "_progress", progress)
        return made

    return make


@pytest.mark.slow  # the penalised fit compiles its kernels
def test_progress_bar_shows_reg_only_with_a_penalty(bars):
    made = bars()
    data = _data()
    ka.KAN([2, 3, 1]).fit(data, steps=2, progress=True)
    ka.KAN([2, 3, 1]).fit(data, steps=2, progress=True, lamb=0.01)
    plain, penalised = made
    assert all("reg" not in t and "val" in t for t in plain.postfix) and len(plain.postfix) == 2
    assert all("reg" in t for t in penalised.postfix)
    assert plain.description is None and plain.closed


def test_progress_bar_says_where_a_fit_was_interrupted(bars):
    made = bars(fail_at=3)
    history = ka.KAN([2, 3, 1]).fit(_data(), steps=10, progress=True)
    assert history.interrupted and len(history["train_loss"]) == 3
    assert made[0].description == "fit interrupted at step 3" and made[0].closed


# -- the test run's skip summary ----------------------------------------------------------------
@pytest.mark.slow
def test_gpu_skips_fold_into_one_counted_line(tmp_path):
    shutil.copy(ROOT / "tests" / "conftest.py", tmp_path / "conftest.py")
    shutil.copy(ROOT / "tests" / "helpers.py", tmp_path / "helpers.py")
    (tmp_path / "pytest.ini").write_text("[pytest]\naddopts = -ra\n")
    (tmp_path / "test_sample.py").write_text(textwrap.dedent("""
        import pytest

        @pytest.mark.parametrize("i", range(5))
        def test_needs_cupy(i):
            pytest.importorskip("cupy_that_is_not_installed")

        @pytest.mark.parametrize("i", range(3))
        def test_needs_a_device(i):
            pytest.skip("no CUDA device")

        def test_skipped_for_another_reason():
            pytest.skip("waiting for a fix")

        def test_fails():
            assert 1 == 2
    """))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False)
    out = done.stdout
    skipped = [line for line in out.splitlines() if line.startswith("SKIPPED")]
    assert len(skipped) == 3, out  # cupy, the device, the other reason
    assert any("[5]" in line and "GPU tests skipped" in line for line in skipped), out
    assert any("[3]" in line and "GPU tests skipped" in line for line in skipped), out
    assert any("[1]" in line and "waiting for a fix" in line and "GPU" not in line for line in skipped), out
    assert "FAILED test_sample.py::test_fails" in out and "1 failed" in out, out
