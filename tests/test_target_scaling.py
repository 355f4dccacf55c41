"""``kanarray fit`` standardizes the targets (``kanarray.output_scaling``) and folds the map into the
saved model: raw targets of any magnitude train well, and the checkpoint and the ONNX graph compute
raw targets with no extra operation."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from helpers import host

import kanarray as ka
from kanarray.output_scaling import fold_output_map, standardization

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _model():
    model = ka.KAN([2, 3, 2], grid=4, seed=0)
    model.fix_symbolic(1, 0, 1, "sin", params=(1.0, 0.2, 0.7, 0.1))  # a symbolic edge into an output
    return model


def test_folding_the_map_into_the_last_layer_is_exact(backend):
    model = _model().to(backend)
    x = model.xp.asarray(np.random.default_rng(0).uniform(-1, 1, (60, 2)))
    shift, scale = np.array([3.0, -1e4]), np.array([2.0, 5e3])
    folded = fold_output_map(model, shift, scale)
    want = host(model(x)) * scale + shift
    np.testing.assert_allclose(host(folded(x)), want, rtol=1e-13, atol=1e-13 * np.abs(want).max())
    assert folded.width == model.width and folded.layers[-1].symbolic.names == model.layers[-1].symbolic.names
    np.testing.assert_array_equal(host(model.layers[-1].bias), host(_model().layers[-1].bias))  # the original is kept


def test_folding_into_a_last_layer_with_multiplication_nodes_is_exact(backend):
    model = ka.KAN([2, 3, [1, 1]], grid=4, seed=0, backend=backend)  # outputs: a sum and a product
    x = model.xp.asarray(np.random.default_rng(0).uniform(-1, 1, (60, 2)))
    shift, scale = np.array([3.0, -1e4]), np.array([2.0, 5e3])
    folded = fold_output_map(model, shift, scale)
    want = host(model(x)) * scale + shift
    np.testing.assert_allclose(host(folded(x)), want, rtol=1e-13, atol=1e-13 * np.abs(want).max())
    np.testing.assert_array_equal(host(model.layers[-1].nodes.node_scale), [1.0, 1.0])  # the original is kept


def test_standardization_handles_huge_and_constant_columns():
    shift, scale = standardization(np.array([[1e200, 1.0], [3e200, 1.0]]))
    np.testing.assert_allclose(shift, [2e200, 1.0])
    np.testing.assert_allclose(scale, [1e200, 1.0])  # a constant column keeps scale 1
    with pytest.raises(ValueError, match="positive finite scale"):
        fold_output_map(_model(), [0.0, 0.0], [1.0, 0.0])


def _fit(args, tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-m", "kanarray", "fit", *args, "--quiet"], capture_output=True, text=True,
                          cwd=tmp_path, env=env, timeout=300)


@pytest.mark.slow
def test_fit_trains_raw_targets_of_any_magnitude_and_saves_a_raw_model(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (400, 2))
    y = 5e6 + 3e4 * np.sin(2 * x[:, 0]) + 1e4 * x[:, 1] ** 2
    data = tmp_path / "big.csv"
    np.savetxt(data, np.column_stack([x, y]), delimiter=",", header="a,b,y", comments="", fmt="%.17g")
    run = _fit([str(data), "--target", "y", "--steps", "30", "--out", "m.kan", "--onnx", "m.onnx"], tmp_path)
    assert run.returncode == 0, run.stderr
    assert "targets standardized for training (y: mean 5.006e+06, std 2.328e+04)" in run.stdout
    native = host(ka.load(tmp_path / "m.kan")(x))[:, 0]
    rmse = np.sqrt(np.mean((native - y) ** 2))
    assert rmse < 1e-2 * y.std()  # the loaded model computes raw targets, and well
    printed = float(run.stdout.split("\nfit ")[1].split()[2])  # the stage's train RMSE, in the target's units
    assert 0.5 * rmse < printed < 2 * rmse
    from kanarray.export import OnnxModel

    graph = OnnxModel(str(tmp_path / "m.onnx"))(x)[:, 0]
    np.testing.assert_allclose(graph, native, rtol=1e-6)  # float32 graph
    # the old behaviour, for comparison: the same fit on raw targets is far worse
    old = _fit([str(data), "--target", "y", "--steps", "30", "--out", "raw.kan", "--no-scale-target"], tmp_path)
    assert old.returncode == 0, old.stderr
    raw_rmse = np.sqrt(np.mean((host(ka.load(tmp_path / "raw.kan")(x))[:, 0] - y) ** 2))
    assert raw_rmse > 5 * rmse
