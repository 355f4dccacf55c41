"""Construction, refine, update_grid, forward, fit and load fail fast: bounded arguments, and a
memory estimate checked against the cap (KANARRAY_MAX_MEMORY) before anything is allocated."""

from __future__ import annotations

import math
import time
import tracemalloc

import numpy as np
import pytest
from helpers import host

import kanarray as ka
from kanarray import config, resources
from kanarray._namespace import is_numpy_namespace
from kanarray.resources import MemoryLimitError

MIB = 2**20


def _fast(fn, exc=ValueError, match=None, seconds=1.0):
    start = time.perf_counter()
    with pytest.raises(exc, match=match) as info:
        fn()
    assert time.perf_counter() - start < seconds, "the refusal must come before the work"
    return str(info.value)


def _peak(fn) -> int:
    fn()  # warm: caches, compiled kernels
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# -- the cases -----------------------------------------------------------------------

def test_huge_grids_and_orders_are_refused_at_once():
    _fast(lambda: ka.KAN([1, 1], grid=10**4), match="grid must be an integer from 1 to 5000, got 10000")
    _fast(lambda: ka.KAN([1, 1], grid=10**5), match="grid must be an integer from 1 to 5000")
    _fast(lambda: ka.KAN([1, 1], k=10**6), match="k must be an integer from 0 to 20, got 1000000.*pykan")
    _fast(lambda: ka.KAN([1, 1], k=[3, 21][1:]), match="k must be an integer from 0 to 20")
    model = ka.KAN([1, 1])
    _fast(lambda: model.refine(10**6), match="grid must be an integer from 1 to 5000")


def test_the_bounds_themselves_are_accepted():
    assert ka.KAN([1, 1], grid=2, k=20).k == [20]
    model = ka.KAN([1, 1], grid=3, k=0)
    assert model.grid == [3]


def test_a_model_too_big_for_the_cap_is_refused_with_the_figure_and_the_limit():
    with config.override(max_memory=64 * MIB):
        message = _fast(lambda: ka.KAN([300, 300], grid=100), MemoryLimitError)
    assert "KAN(width=[300, 300], grid=[100], k=[3]) would need about" in message
    assert "more than the limit of 64 MiB" in message and "KANARRAY_MAX_MEMORY" in message
    with config.override(max_memory=math.inf):  # no cap: the same model is built
        assert ka.KAN([30, 30], grid=100).width == [30, 30]


def test_the_default_cap_is_the_physical_memory():
    with config.override(max_memory=None):
        assert resources.limit() == resources.physical_memory() > 0
        # ~20 TB: more than any machine these tests run on
        _fast(lambda: ka.KAN([200000, 200000], grid=50), MemoryLimitError, match="KAN\\(width=\\[200000, 200000\\]")
        _fast(lambda: ka.KAN([10**12, 1]), MemoryLimitError, match="would need about")
        _fast(lambda: ka.KAN([1, 10**6, 10**6, 1], grid=3), MemoryLimitError, match="TiB of memory")


def test_refine_and_update_grid_check_their_memory_first():
    model = ka.KAN([4, 4], grid=5, seed=0)
    x = np.random.default_rng(0).uniform(-1, 1, (200, 4))
    before = host(model.layers[0].grid).copy()
    with config.override(max_memory=8 * MIB):
        _fast(lambda: model.refine(1000, x), MemoryLimitError, match=r"refine\(grid=\[1000\]\) would need about")
        _fast(lambda: model.update_grid(np.zeros((200000, 4))), MemoryLimitError,
              match="update_grid on 200000 samples would need")
        assert model.refine(20, x).grid == [20]
    np.testing.assert_array_equal(host(model.layers[0].grid), before)


def test_forward_value_and_grad_vjp_and_fit_check_the_batch():
    model = ka.KAN([4, 8, 1], grid=20, seed=0)
    big = np.zeros((100000, 4))
    with config.override(max_memory=16 * MIB):
        _fast(lambda: model(big), MemoryLimitError, match="a forward pass on a batch of 100000 samples")
        _fast(lambda: model.value_and_grad(big, np.zeros((100000, 1))), MemoryLimitError, match="a training step")
        _fast(lambda: model.vjp(big, np.zeros((100000, 1))), MemoryLimitError, match="a training step")
        _fast(lambda: model.fit(big, np.zeros((100000, 1)), steps=1, progress=False), MemoryLimitError,
              match="a training step on a batch of 100000")
        # minibatches that fit are fine, although the data set as a whole would not be
        x = np.random.default_rng(0).uniform(-1, 1, (20000, 4))
        model.fit(x, np.sin(x[:, :1]), steps=1, batch_size=100, opt="adam", update_grid=False, progress=False)
        assert model(x[:10]).shape == (10, 1)


def test_loading_checks_the_cap(tmp_path):
    ka.KAN([40, 40], grid=50, seed=0).save(tmp_path / "m.kan")
    with config.override(max_memory=MIB):
        _fast(lambda: ka.load(tmp_path / "m.kan"), MemoryLimitError, match="loading .* would need about")
    assert ka.load(tmp_path / "m.kan").width == [40, 40]


# -- the switch ---------------------------------------------------------------------------------

@pytest.mark.parametrize("value, want", [("", None), ("auto", None), (" AUTO ", None), ("none", math.inf),
                                         ("off", math.inf), ("unlimited", math.inf), ("4096", 4096),
                                         ("8G", 8 * 2**30), ("512M", 512 * MIB), ("1.5GiB", 3 * 2**29),
                                         ("2 TB", 2 * 2**40), ("64k", 64 * 1024)])
def test_max_memory_values(value, want):
    assert config.from_environ({"KANARRAY_MAX_MEMORY": value}).max_memory == want


@pytest.mark.parametrize("value", ["lots", "-1G", "0", "8X", "nan", "inf G"])
def test_invalid_max_memory_names_the_variable(value):
    with pytest.raises(ValueError, match="KANARRAY_MAX_MEMORY=.*not a valid size"):
        config.from_environ({"KANARRAY_MAX_MEMORY": value})


def test_max_memory_is_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("KANARRAY_MAX_MEMORY", "3M")
    try:
        config.reload()
        assert resources.limit() == 3 * MIB
        with pytest.raises(MemoryLimitError, match="limit of 3 MiB"):
            ka.KAN([100, 100], grid=50)
    finally:
        monkeypatch.delenv("KANARRAY_MAX_MEMORY")
        config.reload()
    assert config.current().max_memory is None


@pytest.mark.parametrize("bad", ["8G", -1, 0, True, [1]])
def test_override_checks_max_memory(bad):
    with pytest.raises(TypeError, match="max_memory"):
        with config.override(max_memory=bad):
            pass


# -- the estimates against tracemalloc's peak ---------------------------------------------------

def _ratio(estimate, peak):
    return estimate / peak


@pytest.mark.parametrize("width, grid, k", [([1, 1], 300, 3), ([4, 3], 100, 3), ([2, 5, 1], 30, 2), ([8, 8], 10, 5)])
def test_construction_estimate_is_close_to_the_peak(width, grid, k):
    shapes = [(width[l], width[l + 1], grid, k) for l in range(len(width) - 1)]
    peak = _peak(lambda: ka.KAN(width, grid=grid, k=k))
    assert 0.7 <= _ratio(resources.construction_bytes(shapes, 8), peak) <= 5


@pytest.mark.parametrize("backend", ["numpy", "array_api_strict"])
@pytest.mark.parametrize("width, grid, batch", [([2, 5, 1], 5, 2000), ([4, 16, 1], 60, 1000), ([16, 8], 10, 2000),
                                                ([3, 40], 5, 1000)])
def test_forward_and_training_estimates_are_close_to_the_peak(backend, width, grid, batch):
    pytest.importorskip(backend)
    model = ka.KAN(width, grid=grid, seed=0, backend=backend)
    xp = model.xp
    x = xp.asarray(np.random.default_rng(0).uniform(-1, 1, (batch, width[0])))
    y = xp.asarray(np.zeros((batch, width[-1])))
    shapes, local = resources.layer_shapes(model.layers), is_numpy_namespace(xp)
    cases = [(lambda: model(x), dict()),
             (lambda: model.value_and_grad(x, y), dict(training=True)),
             (lambda: model.value_and_grad(x, y, lamb=0.01), dict(training=True, per_edge=True))]
    for fn, kind in cases:
        estimate = resources.forward_bytes(shapes, batch, 8, local_basis=local, **kind)
        assert 0.7 <= _ratio(estimate, _peak(fn)) <= 5, kind


@pytest.mark.parametrize("width, grid, new, samples", [([1, 1], 5, 500, 100), ([2, 5, 1], 5, 40, 1000),
                                                       ([4, 3], 10, 80, 2000)])
def test_refine_and_update_grid_estimates_are_close_to_the_peak(width, grid, new, samples):
    model = ka.KAN(width, grid=grid, seed=0)
    x = np.random.default_rng(0).uniform(-1, 1, (samples, width[0]))
    shapes = resources.layer_shapes(model.layers)
    refine = resources.refit_bytes(shapes, [new] * len(shapes), samples)
    assert 0.7 <= _ratio(refine, _peak(lambda: model.refine(new, x))) <= 5
    update = resources.refit_bytes(shapes, model.grid, samples)
    assert 0.7 <= _ratio(update, _peak(lambda: model.update_grid(x))) <= 5


def test_the_forward_check_is_a_few_operations():
    """The check a forward adds: well under the small-model forward itself (the benchmark's toy case)."""
    model = ka.KAN([2, 5, 1], grid=5, seed=0)
    x = np.random.default_rng(0).uniform(-1, 1, (1000, 2))

    def best(fn, n=200):
        times = []
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(n):
                fn()
            times.append((time.perf_counter() - start) / n)
        return min(times)

    check = best(lambda: resources.check_forward(model.layers, 1000, training=True))
    forward = best(lambda: model(x), n=50)
    assert check < 0.05 * forward, (check, forward)


@pytest.mark.parametrize("width, batch", [([40, 40, 1], 2000), ([10, 30, 5], 5000), ([6, 30, 30, 1], 2000)])
def test_the_regularized_fit_estimate_is_close_to_its_peak(width, batch):
    """fit's regularized step (the first layer's spread from a Gram matrix) is charged what it
    holds: within 0.6x-2.5x of its peak (charging every layer's per-edge arrays, 11x over, refused
    fits that ran on main)."""
    model = ka.KAN(width, grid=5, seed=0)
    x = np.random.default_rng(0).uniform(-1, 1, (batch, width[0]))
    y = np.random.default_rng(1).normal(size=(batch, width[-1]))
    peak = _peak(lambda: model.fit(x, y, steps=2, lamb=0.01, update_grid=False, progress=False))
    estimate = resources.forward_bytes(resources.layer_shapes(model.layers), batch, 8, training=True,
                                       per_edge="hidden", local_basis=True)
    assert 0.6 <= _ratio(estimate, peak) <= 2.5
    with config.override(max_memory=2 * peak):  # a cap this fit fits in comfortably
        model.fit(x, y, steps=1, lamb=0.01, update_grid=False, progress=False)
