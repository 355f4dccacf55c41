"""fit's evaluations replayed as CUDA graphs (``backends.cuda_graph``, ``training._Evaluations``).

On the CPU: the schedule (eager after each grid update, then record, then replay; minibatches
copied into the recorded arrays; failure -> warning and eager) through a stand-in recorder
that re-runs the evaluation, so a fit must equal the eager fit exactly.  On a GPU (marked
gpu): the real graphs against eager evaluations and eager fits."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import kanarray as ka
import kanarray.training as training
from kanarray import config
from kanarray.objective import evaluate
from kanarray.regularization import Regularization

from helpers import gpu_cupy, host, tol


_real_recorder = training._graph_recorder


def _data(n=400, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (n, 2))
    return x, np.sin(np.pi * x[:, :1]) + x[:, 1:2] ** 2


class _Recorder:
    """Stands in for ``GraphedEvaluation``: "replays" by evaluating again; counts."""

    records = 0
    replays = 0

    def __init__(self, run, model, batch):
        type(self).records += 1
        self.run, self.model, self.batch = run, model, tuple(batch)
        self.ids = self._ids(model, batch)

    @staticmethod
    def _ids(model, batch):
        return tuple(id(a) for layer in model.layers for a in layer.arrays().values()) + tuple(map(id, batch))

    def matches(self, model, batch=()):
        return model is self.model and self._ids(model, batch) == self.ids

    @staticmethod
    def synchronize():
        pass

    def __call__(self):
        type(self).replays += 1
        return self.run()


@pytest.fixture
def recorder(monkeypatch):
    """The stand-in recorder, its replays taken as faster than eager evaluations."""
    _Recorder.records = _Recorder.replays = 0
    monkeypatch.setattr(training, "_graph_recorder", lambda model: _Recorder)
    monkeypatch.setattr(training, "_replay_pays", lambda replay_s, eager_s: True)
    return _Recorder


def _fit(x, y, **kwargs):
    model = ka.KAN([2, 4, 1], grid=5, seed=0)
    history = model.fit(x, y, progress=False, seed=0, **kwargs)
    return model, history


def _same(a, b):
    for (name, p), q in zip(a.parameters().items(), b.parameters().values()):
        np.testing.assert_array_equal(host(p), host(q), err_msg=name)


def test_schedule_full_batch_with_grid_updates(recorder, monkeypatch):
    x, y = _data()
    kwargs = dict(steps=12, opt="adam", update_grid=True, stop_grid_update_step=10, grid_update_num=2)
    graphed, h1 = _fit(x, y, **kwargs)
    assert (recorder.records, recorder.replays) == (2, 10)  # grid updates at steps 0 and 5: eager there
    monkeypatch.setattr(training, "_graph_recorder", _real_recorder)  # numpy: eager
    eager, h2 = _fit(x, y, **kwargs)
    _same(graphed, eager)
    assert h1["train_loss"] == h2["train_loss"]


def test_schedule_minibatches_copied_into_the_recorded_arrays(recorder, monkeypatch):
    x, y = _data()
    kwargs = dict(steps=9, opt="adam", batch_size=100, update_grid=False)
    graphed, h1 = _fit(x, y, **kwargs)
    assert (recorder.records, recorder.replays) == (1, 8)
    monkeypatch.setattr(training, "_graph_recorder", _real_recorder)  # numpy: eager
    eager, h2 = _fit(x, y, **kwargs)
    _same(graphed, eager)
    assert h1["train_loss"] == h2["train_loss"]


def test_a_graph_slower_than_eager_is_dropped(recorder, monkeypatch):
    """The recording step times an eager evaluation and the first replay; a slower replay
    leaves the fit eager from then on (no more recordings, even after grid updates)."""
    timings = []

    def pays(replay_s, eager_s):
        timings.append((replay_s, eager_s))
        return False

    monkeypatch.setattr(training, "_replay_pays", pays)
    x, y = _data()
    kwargs = dict(steps=12, opt="adam", update_grid=True, stop_grid_update_step=10, grid_update_num=2)
    dropped, h1 = _fit(x, y, **kwargs)
    assert (recorder.records, recorder.replays) == (1, 1) and len(timings) == 1
    assert all(t > 0 for t in timings[0])
    monkeypatch.setattr(training, "_graph_recorder", _real_recorder)
    eager, h2 = _fit(x, y, **kwargs)
    _same(dropped, eager)
    assert h1["train_loss"] == h2["train_loss"]
    assert training._replay_pays.__name__ == "pays"
    monkeypatch.undo()
    assert training._replay_pays(0.5e-3, 2e-3) and not training._replay_pays(29e-3, 20e-3)


def test_recording_failure_warns_once_and_goes_on_eagerly(monkeypatch):
    class Failing:
        calls = 0

        def __init__(self, *args):
            Failing.calls += 1
            raise RuntimeError("operation not permitted when stream is capturing")

    Failing.synchronize = staticmethod(lambda: None)
    monkeypatch.setattr(training, "_graph_recorder", lambda model: Failing)
    x, y = _data()
    with pytest.warns(RuntimeWarning, match="CUDA graph failed .*not permitted"):
        failed, _ = _fit(x, y, steps=6, opt="adam", update_grid=False)
    assert Failing.calls == 1
    monkeypatch.setattr(training, "_graph_recorder", _real_recorder)
    eager, _ = _fit(x, y, steps=6, opt="adam", update_grid=False)
    _same(failed, eager)


@pytest.mark.parametrize("kwargs", [dict(opt="lbfgs"), dict(opt="adam", lamb=1e-3)])
def test_no_graphs_for_lbfgs_or_regularization(recorder, kwargs):
    """LBFGS keeps evaluations across its line search; the regularized objective uses cuBLAS
    calls that have no stand-in while a graph records."""
    x, y = _data()
    _fit(x, y, steps=3, update_grid=False, **kwargs)
    assert recorder.records == recorder.replays == 0


def test_no_graphs_with_linear_continuation(recorder):
    x, y = _data()
    model = ka.KAN([2, 4, 1], grid=5, seed=0, extrapolate="linear")
    model.fit(x, y, steps=3, opt="adam", update_grid=False, progress=False)
    assert recorder.records == recorder.replays == 0
    ka.KAN([2, 4, 1], grid=5, seed=0).fit(x, y, steps=3, opt="adam", update_grid=False, progress=False)
    assert recorder.records == 1


# -- on a GPU ---------------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("lamb", [0.0])
def test_replay_equals_eager_evaluation_as_parameters_change(dtype, lamb):
    cupy = gpu_cupy()
    rtol = tol(dtype, 84)  # float32: 1e-5, as the GPU run passed it
    from kanarray.backends.cuda_graph import GraphedEvaluation

    model = ka.KAN([3, 5, 2], grid=6, seed=1, dtype=dtype, backend="cupy")
    rng = np.random.default_rng(2)
    x = cupy.asarray(rng.uniform(-1, 1, (300, 3)), dtype=dtype)
    y = cupy.asarray(rng.uniform(-1, 1, (300, 2)), dtype=dtype)
    reg, cache = Regularization(lamb=lamb), {}
    evaluate(model, x, y, reg=reg, cache=cache)  # eager first, as fit does
    replay = GraphedEvaluation(lambda: evaluate(model, x, y, reg=reg, cache=cache), model, (x, y))
    for trial in range(3):
        got = replay()
        want = evaluate(model, x, y, reg=reg, cache=cache)
        assert float(got.objective) == pytest.approx(float(want.objective), rel=rtol)
        for name, g in want.grads.items():
            np.testing.assert_allclose(cupy.asnumpy(got.grads[name]), cupy.asnumpy(g), rtol=rtol,
                                       atol=rtol * float(cupy.abs(g).max()), err_msg=name)
        for p in model.parameters().values():  # in place, as the optimizers write
            p[...] = p * 0.9 + 0.01 * (trial + 1)
    assert replay.matches(model, (x, y))


@pytest.mark.gpu
def test_replays_leave_other_arrays_alone_and_rebinding_is_noticed():
    cupy = gpu_cupy()
    from kanarray.backends.cuda_graph import GraphedEvaluation

    model = ka.KAN([2, 4, 1], grid=5, seed=0, backend="cupy")
    x = cupy.asarray(np.random.default_rng(0).uniform(-1, 1, (500, 2)))
    y = cupy.sin(x[:, :1])
    evaluate(model, x, y)
    replay = GraphedEvaluation(lambda: evaluate(model, x, y), model, (x, y))
    others = [cupy.full((n,), float(n)) for n in (1, 17, 500, 4096, 2**16)]  # allocated after recording
    for _ in range(5):
        replay()
    cupy.cuda.get_current_stream().synchronize()
    for a in others:
        assert bool(cupy.all(a == float(a.size)))
    assert not replay.matches(model, (x, cupy.sin(x[:, :1])))
    layer = model.layers[0]
    layer.grid = layer.grid.copy()
    assert not replay.matches(model, (x, y))


@pytest.mark.gpu
def test_recording_a_synchronising_evaluation_raises_and_the_device_goes_on():
    cupy = gpu_cupy()
    from kanarray.backends.cuda_graph import GraphedEvaluation

    model = ka.KAN([2, 3, 1], grid=5, seed=0, backend="cupy")
    x = cupy.zeros((10, 2))

    def syncs():
        return float(model(x).sum())  # a device-to-host copy cannot be recorded

    with pytest.raises(Exception):
        GraphedEvaluation(syncs, model, (x,))
    assert float((x + 1).sum()) == 20.0


@pytest.mark.gpu
@pytest.mark.parametrize("kwargs", [
    dict(steps=16, opt="adam", update_grid=True, stop_grid_update_step=12, grid_update_num=3),
    dict(steps=10, opt="adamw", batch_size=128, update_grid=True, stop_grid_update_step=6, grid_update_num=2),
])
def test_fit_with_graphs_equals_fit_without(kwargs, monkeypatch):
    cupy = gpu_cupy()
    from kanarray.backends import cuda_graph

    counted = []

    class Counting(cuda_graph.GraphedEvaluation):
        def __init__(self, *args):
            super().__init__(*args)
            counted.append(self)

    x, y = _data(1000)
    monkeypatch.setattr(training, "_graph_recorder", lambda model: Counting)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a failed recording would warn
        graphed = ka.KAN([2, 5, 1], grid=5, seed=0, backend="cupy")
        h1 = graphed.fit(cupy.asarray(x), cupy.asarray(y), progress=False, seed=0, **kwargs)
    assert counted
    monkeypatch.setenv("KANARRAY_CUDA_GRAPHS", "0")
    monkeypatch.setattr(training, "_graph_recorder", _real_recorder)
    try:
        config.reload()  # kanarray.config reads the environment once; read it again
        assert training._graph_recorder(graphed) is None
        eager = ka.KAN([2, 5, 1], grid=5, seed=0, backend="cupy")
        h2 = eager.fit(cupy.asarray(x), cupy.asarray(y), progress=False, seed=0, **kwargs)
    finally:
        monkeypatch.undo()
        config.reload()
    for (name, p), q in zip(graphed.parameters().items(), eager.parameters().values()):
        np.testing.assert_allclose(host(p), host(q), rtol=1e-10, atol=1e-12, err_msg=name)
    np.testing.assert_allclose(h1["train_loss"], h2["train_loss"], rtol=1e-10)


def test_graphs_off_by_environment(monkeypatch):
    cuda_graph = pytest.importorskip("kanarray.backends.cuda_graph", exc_type=ImportError)
    monkeypatch.setenv("KANARRAY_CUDA_GRAPHS", "0")
    try:
        config.reload()
        assert not cuda_graph.graphs_enabled()
        monkeypatch.delenv("KANARRAY_CUDA_GRAPHS")
        config.reload()
        assert cuda_graph.graphs_enabled()
        with config.override(cuda_graphs=False):
            assert not cuda_graph.graphs_enabled()
        assert cuda_graph.graphs_enabled()
    finally:
        monkeypatch.undo()
        config.reload()
