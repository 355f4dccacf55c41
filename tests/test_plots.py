"""Plots: ``KAN.plot`` and ``History.plot`` return a Figure without a path, write a PNG atomically
with one, name the nodes, keep faint edges visible and formula labels clear of the lines, show
ranges in raw units and mark the stages of successive fits; the demo writes only when asked."""

from __future__ import annotations

import inspect
import os
import sys

import numpy as np
import pytest

import kanarray as ka

matplotlib = pytest.importorskip("matplotlib")
pytest.importorskip("sympy")

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from kanarray.plotting import ALPHA_FLOOR

LO, HI = np.array([100.0, -1.0]), np.array([110.0, 1.0])


def _raw(n=200, seed=0):
    x = np.random.default_rng(seed).uniform(LO, HI, (n, 2))
    x[0], x[1] = LO, HI  # the exact ends, so the printed ranges are known
    return x


def _scaled_model():
    """A [2, 3, 1] model on raw inputs [100, 110] x [-1, 1] with a sin edge on input 0 -> node 0."""
    model = ka.KAN([2, 3, 1], grid=3, seed=0)
    model.scale_inputs(LO, HI)
    x = _raw()
    model.fit(x, np.sin(0.5 * x[:, :1]) + x[:, 1:] ** 2, steps=3, progress=False)
    model.fix_symbolic(0, 0, 0, "sin", fit_params=False, params=(2.0, 0.5, 1.5, 0.2))  # in the scaled input
    return model, x


def _texts(fig):
    return [t.get_text() for ax in fig.axes for t in ax.texts]


def _drawn(fig):
    FigureCanvasAgg(fig)
    fig.canvas.draw()
    return fig.canvas.get_renderer()


def test_model_plot_without_a_path_returns_the_figure_and_writes_nothing(tmp_path, monkeypatch):
    model, _ = _scaled_model()
    monkeypatch.chdir(tmp_path)
    fig = model.plot()
    assert isinstance(fig, Figure)
    assert os.listdir(tmp_path) == []
    plt = sys.modules.get("matplotlib.pyplot")
    assert plt is None or not plt.get_fignums()  # built outside pyplot: nothing left open there


def test_model_plot_names_the_nodes():
    model, _ = _scaled_model()
    texts = _texts(model.plot(in_vars=["temp", "pressure"], out_vars=["yield"], title="my net"))
    assert {"temp", "pressure", "yield", "my net"} <= set(texts)
    default = _texts(model.plot())
    assert {"x_1", "x_2"} <= set(default)
    model.input_names = ["age", "dose"]  # the column names a model may carry (kanarray fit)
    assert {"age", "dose"} <= set(_texts(model.plot()))
    assert {"temp", "pressure"} <= set(_texts(model.plot(in_vars=["temp", "pressure"])))  # given names win


@pytest.mark.parametrize("kw, match", [({"in_vars": ["a"]}, "in_vars must have 2 names"),
                                       ({"out_vars": ["a", "b"]}, "out_vars must have 1 names"),
                                       ({"beta": -1.0}, "beta must be a positive")])
def test_model_plot_refuses_wrong_names(kw, match):
    model, _ = _scaled_model()
    with pytest.raises(ValueError, match=match):
        model.plot(**kw)


def test_model_plot_keeps_faint_edges_visible():
    model, _ = _scaled_model()
    fig = model.plot(beta=1e-6)  # every score maps to about tanh(0): the faintest possible edges
    alphas = [line.get_alpha() for line in fig.axes[0].lines]
    assert len(alphas) == 2 * 9 and min(alphas) >= ALPHA_FLOOR
    strong = [line.get_alpha() for line in model.plot(beta=1e3).axes[0].lines]
    assert max(strong) > 0.9  # the floor does not flatten the scale


def test_model_plot_shows_ranges_in_raw_units():
    model, x = _scaled_model()
    texts = _texts(model.plot(x=x, in_vars=["temp", "pressure"]))
    assert any(t.startswith("temp [100, 110]") for t in texts)
    assert any(t.startswith("pressure [-1, 1]") for t in texts)
    assert any(t.startswith("h1_1 [") for t in texts)  # the hidden layer's inputs: what it sees


def test_formula_labels_use_the_input_name_in_raw_units_and_stay_clear_of_the_lines():
    import sympy

    from kanarray.pruning import edge_activations

    model, x = _scaled_model()
    fig = model.plot(x=x, in_vars=["temp", "pressure"])
    red = [t for ax in fig.axes[1:] for t in ax.texts if t.get_color() == "red"]
    assert len(red) == 1
    expr = sympy.sympify(red[0].get_text(), locals={"temp": sympy.Symbol("temp")})
    assert {s.name for s in expr.free_symbols} == {"temp"}
    phi, _ = edge_activations(model.layers[0], model.prepare_inputs(x))
    label_values = sympy.lambdify(sympy.Symbol("temp"), expr, "numpy")(x[:, 0])
    curve = np.asarray(phi)[0, :, 0]
    assert np.ptp(curve) > 1.0 and np.max(np.abs(label_values - curve)) <= 1e-2 * np.ptp(curve)

    renderer = _drawn(fig)
    box = red[0].get_window_extent(renderer)
    panel = red[0].axes.get_window_extent(renderer)
    assert panel.y0 <= box.y0 and box.y1 <= panel.y1  # inside its panel's band: no edge line enters it
    t = np.linspace(0.0, 1.0, 400)[:, None]
    for line in fig.axes[0].lines:
        a, b = line.get_transform().transform(line.get_xydata())
        points = a + t * (b - a)
        inside = ((points[:, 0] > box.x0) & (points[:, 0] < box.x1) & (points[:, 1] > box.y0) & (points[:, 1] < box.y1))
        assert not inside.any(), "an edge line crosses a formula label"


def test_model_plot_writes_a_png_atomically(tmp_path, monkeypatch):
    model, _ = _scaled_model()
    path = tmp_path / "net.png"
    assert model.plot(path) is None
    first = path.read_bytes()
    assert first[:8] == b"\x89PNG\r\n\x1a\n"

    def broken(self, fh, **kw):
        fh.write(b"half a picture")
        raise RuntimeError("disk full")

    monkeypatch.setattr(Figure, "savefig", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        model.plot(path)
    assert path.read_bytes() == first and os.listdir(tmp_path) == ["net.png"]


# -- History -------------------------------------------------------------------------------------

def _data(n=100, seed=0):
    x = np.random.default_rng(seed).uniform(-1, 1, (n, 2))
    return x, np.sin(np.pi * x[:, :1]) + x[:, 1:] ** 2


def test_history_plot_marks_every_stage_and_names_the_loss(tmp_path):
    x, y = _data()
    model = ka.KAN([2, 3, 1], grid=3, seed=0)
    history = model.fit(x, y, steps=4, validation=(x[:20], y[:20]), progress=False)
    assert history.loss == "mse" and history.stages == [0]
    history.extend(model.fit(x, y, steps=3, validation=(x[:20], y[:20]), progress=False))
    model = model.refine(5)
    history.extend(model.fit(x, y, steps=2, progress=False))  # no validation this time
    assert history.stages == [0, 4, 7]
    assert all(len(v) == 9 for v in history.values())
    assert np.isnan(history["val_loss"][7:]).all() and np.isfinite(history["val_loss"][:7]).all()
    fig = history.plot()
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    marks = [line for line in ax.lines if line.get_gid() == "stage"]
    assert [line.get_xdata()[0] for line in marks] == [0.5, 4.5, 7.5]
    assert "RMSE" in ax.get_ylabel() and "mse" in ax.get_ylabel()
    assert {"fit 1", "fit 2", "fit 3"} <= {t.get_text().strip() for t in ax.texts}
    assert history.plot(tmp_path / "h.png") is None
    assert (tmp_path / "h.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_history_extend_keeps_absent_curves_empty_and_joins_extended_histories():
    x, y = _data()
    model = ka.KAN([2, 3, 1], grid=3, seed=0)
    first, second = model.fit(x, y, steps=2, progress=False), model.fit(x, y, steps=3, progress=False)
    first.extend(second)
    assert first["val_loss"] == [] and first.stages == [0, 2]
    joined = ka.History(()).extend(first)
    assert joined.stages == [0, 2] and joined["train_loss"] == first["train_loss"]
    joined.extend(first)
    assert joined.stages == [0, 2, 5, 7]
    other = ka.History(("train_loss",))
    other.loss, other["train_loss"] = "cross_entropy", [0.5]
    with pytest.raises(ValueError, match="different losses"):
        joined.extend(other)
    assert joined.stages == [0, 2, 5, 7] and len(joined["train_loss"]) == 10  # unchanged


def test_history_plot_of_cross_entropy_names_it():
    x, y = _data()
    model = ka.KAN([2, 3, 2], grid=3, seed=0)
    labels = (y[:, 0] > 1).astype(np.int64)
    history = model.fit(x, labels, steps=2, loss="cross_entropy", progress=False)
    assert "cross-entropy" in history.plot().axes[0].get_ylabel()


# -- the demo ------------------------------------------------------------------------------------

def test_demo_writes_only_when_asked(monkeypatch):
    from kanarray import cli, demo

    assert inspect.signature(demo.run_demo).parameters["out_dir"].default is None
    seen = []
    monkeypatch.setattr(demo, "run_demo", lambda **kw: seen.append(kw["out_dir"]) or {"formula": "f"})
    assert cli.main(["demo"]) == 0
    assert cli.main(["demo", "--out", "pics"]) == 0
    assert cli.main(["demo", "--out", "pics", "--no-plots"]) == 0
    assert seen == [None, "pics", None]


@pytest.mark.slow
def test_demo_without_out_says_nothing_was_written(tmp_path, monkeypatch, capsys):
    from kanarray.demo import run_demo

    monkeypatch.chdir(tmp_path)
    run_demo(steps=2)
    assert os.listdir(tmp_path) == []
    assert "--out DIR" in capsys.readouterr().out


@pytest.mark.slow
def test_the_demo_command_writes_files_only_with_out(tmp_path):
    """Through the console script: no files in the working directory without --out, the plots in DIR with it."""
    import subprocess

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root)
    run = subprocess.run([sys.executable, "-m", "kanarray", "demo", "--steps", "5"], capture_output=True, text=True,
                         cwd=tmp_path, env=env, timeout=300)
    assert run.returncode in (0, 1), run.stderr  # 1: no formula after so few steps; the files are what counts here
    assert os.listdir(tmp_path) == [] and "kanarray demo --out DIR writes them to DIR" in run.stdout
    run = subprocess.run([sys.executable, "-m", "kanarray", "demo", "--steps", "5", "--out", "pics"],
                         capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert run.returncode in (0, 1), run.stderr
    assert os.listdir(tmp_path) == ["pics"] and any(name.endswith(".png") for name in os.listdir(tmp_path / "pics"))
