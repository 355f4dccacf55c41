"""Grid update from samples and grid extension (refine)."""

from __future__ import annotations

import numpy as np
import pytest

import kanarray as ka
from kanarray.grids import MIN_SPAN

from helpers import expsin_data, host, random_model


def pykan_sample_grid(x, G, k, grid_eps=0.02):
    """pykan's update_grid_from_samples knots, written out in NumPy: (n, G + 2k + 1)."""
    xs = np.sort(x, axis=0)
    ids = [int(x.shape[0] / G * i) for i in range(G)] + [-1]
    adaptive = xs[ids, :].T
    h = (adaptive[:, -1:] - adaptive[:, :1]) / G
    uniform = adaptive[:, :1] + h * np.arange(G + 1)[None, :]
    grid = grid_eps * uniform + (1 - grid_eps) * adaptive
    step = (grid[:, -1:] - grid[:, :1]) / G
    left = grid[:, :1] - step * np.arange(k, 0, -1)[None, :]
    right = grid[:, -1:] + step * np.arange(1, k + 1)[None, :]
    return np.concatenate([left, grid, right], axis=1)


def test_first_layer_knots_follow_pykans_rule(backend):
    model = random_model(backend, [2, 3, 1], grid=6)
    x = np.random.default_rng(0).normal(0.2, 0.5, (500, 2))
    model.update_grid(model.xp.asarray(x))
    np.testing.assert_allclose(host(model.layers[0].grid), pykan_sample_grid(x, 6, 3), atol=1e-13)


def test_update_grid_preserves_a_trained_function_on_the_samples():
    model, _ = _trained()
    x = np.random.default_rng(1).uniform(-1, 1, (2000, 2))  # fresh samples: the knots move
    before = model(x)
    model.update_grid(x)
    after = model(x)
    # the new knots are not nested in the old ones, so a cubic spline cannot be copied exactly
    assert np.max(np.abs(after - before)) <= 1e-2 * np.max(np.abs(before))
    assert np.sqrt(np.mean((after - before) ** 2)) <= 5e-3 * np.sqrt(np.mean(before**2))


def test_update_grid_refits_a_single_layer_to_new_knots(backend):
    model = random_model(backend, [2, 3], grid=6)
    xp = model.xp
    grid = host(model.layers[0].grid).copy()
    x = np.random.default_rng(1).uniform(-0.9, 0.9, (600, 2))
    before = host(model(xp.asarray(x)))
    model.update_grid(xp.asarray(x), grid_eps=1.0)  # uniform over the samples' range: new knots
    after = host(model(xp.asarray(x)))
    assert not np.allclose(host(model.layers[0].grid), grid)
    assert np.sqrt(np.mean((after - before) ** 2)) <= 0.05 * np.sqrt(np.mean(before**2))


def test_update_grid_keeps_live_arrays():
    model = random_model("numpy", [2, 3, 1], grid=5)
    params = model.parameters()
    grids = [layer.grid for layer in model.layers]
    model.update_grid(np.random.default_rng(2).uniform(-1, 1, (300, 2)))
    assert all(params[n] is p for n, p in model.parameters().items())
    assert all(layer.grid is g for layer, g in zip(model.layers, grids))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize(
    "case", ["duplicates", "few_samples", "constant_column", "single_sample", "outliers"]
)
def test_update_grid_is_robust_to_rank_deficient_data(case, dtype):
    model = ka.KAN([2, 3, 1], grid=10, seed=0, dtype=dtype)
    rng = np.random.default_rng(3)
    x = {
        "duplicates": np.repeat(rng.uniform(-1, 1, (4, 2)), 50, axis=0),
        "few_samples": rng.uniform(-1, 1, (5, 2)),
        "constant_column": np.column_stack([rng.uniform(-1, 1, 200), np.full(200, 0.3)]),
        "single_sample": np.array([[0.1, -0.2]]),
        "outliers": np.concatenate([rng.uniform(-1, 1, (200, 2)), [[40.0, -30.0]]]),
    }[case].astype(dtype)
    before = model(x)
    model.update_grid(x)
    for layer in model.layers:
        grid = host(layer.grid)
        assert np.all(np.isfinite(grid)) and np.all(np.isfinite(host(layer.coef)))
        assert np.all(np.diff(grid, axis=1) > 0), "knots must stay strictly increasing"
    after = model(x)
    assert np.all(np.isfinite(after))
    # not eps-derived: the refit is a least-squares fit, off by about 1e-6 in both precisions
    tol = 1e-3 if dtype == "float32" else 1e-6
    if case in ("duplicates", "few_samples", "single_sample"):
        # few distinct points: the refit reproduces the old function there
        np.testing.assert_allclose(after, before, atol=tol * 10, rtol=tol * 10)


def test_constant_input_gets_a_minimum_span():
    model = ka.KAN([2, 3, 1], grid=4, seed=0)
    x = np.column_stack([np.linspace(-1, 1, 50), np.full(50, 2.0)])
    model.update_grid(x)
    interior = host(model.layers[0].grid)[1, 3:-3]
    np.testing.assert_allclose(interior[-1] - interior[0], MIN_SPAN * 2.0, rtol=1e-12)
    np.testing.assert_allclose(interior.mean(), 2.0, rtol=1e-12)


def test_update_grid_rejects_bad_input_before_changing_anything():
    model = random_model("numpy", [2, 3, 1], grid=5)
    before = [host(layer.grid).copy() for layer in model.layers]
    for bad in (1.5, -0.1, True, "0.1", float("nan")):
        with pytest.raises(ValueError, match="grid_eps must be"):
            model.update_grid(np.zeros((10, 2)), grid_eps=bad)
    with pytest.raises(ValueError, match="grid_margin must be"):
        model.update_grid(np.zeros((10, 2)), grid_margin=-1)
    with pytest.raises(ValueError, match=r"\(batch, 2\)"):
        model.update_grid(np.zeros((10, 3)))
    for layer, g in zip(model.layers, before):
        np.testing.assert_array_equal(host(layer.grid), g)


def _trained(seed=0, G=5):
    x, y = expsin_data(1000, seed=seed)
    model = ka.KAN([2, 5, 1], grid=G, seed=seed)
    model.fit(x, y, steps=20, progress=False)
    return model, x


def test_refine_5_to_10_keeps_a_trained_model_within_1e3():
    model, x = _trained()
    new = model.refine(10)
    assert new.grid == [10, 10]
    before, after = model(x), new(x)
    assert np.max(np.abs(after - before)) <= 1e-3 * np.max(np.abs(before))


def test_refine_on_nested_uniform_knots_is_exact(backend):
    model = random_model(backend, [2, 3], grid=4, seed=5)
    layer = model.layers[0]  # back to uniform knots, which refine to nested ones
    layer.grid[...] = model.xp.asarray(host(ka.KAN([2, 3], grid=4).layers[0].grid))
    x = model.xp.asarray(np.random.default_rng(6).uniform(-1, 1, (300, 2)))
    new = model.refine(8)
    np.testing.assert_allclose(host(new(x)), host(model(x)), atol=1e-9)


def test_refine_copies_scales_masks_and_biases_and_leaves_the_old_model_alone():
    model = random_model("numpy", [2, 3, 1], grid=4)
    old = {n: a.copy() for n, a in model.parameters().items()}
    new = model.refine(7, x=np.random.default_rng(7).uniform(-1, 1, (100, 2)))
    for l, (a, b) in enumerate(zip(model.layers, new.layers)):
        for name in ("scale_base", "scale_sp", "mask", "bias"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
            assert getattr(a, name) is not getattr(b, name)
        assert b.coef.shape == (a.in_dim, a.out_dim, 7 + 3)
    for n, a in model.parameters().items():
        np.testing.assert_array_equal(a, old[n])


def test_refine_per_layer_grids_and_validation():
    model = random_model("numpy", [2, 3, 1], grid=4)
    assert model.refine([6, 9]).grid == [6, 9]
    with pytest.raises(ValueError, match="grid"):
        model.refine(0)
    with pytest.raises(ValueError, match="2 layers"):
        model.refine([5, 6, 7])


def test_grid_margin_moves_only_the_end_knots_out(backend):
    x = np.random.default_rng(0).normal(0.2, 0.5, (500, 2))
    plain, wide, zero = (random_model(backend, [2, 3, 1], grid=6) for _ in range(3))
    plain.update_grid(plain.xp.asarray(x))
    wide.update_grid(wide.xp.asarray(x), grid_margin=0.5)
    zero.update_grid(zero.xp.asarray(x), grid_margin=0.0)
    for a, c in zip(plain.layers, zero.layers):
        np.testing.assert_array_equal(host(c.grid), host(a.grid))  # 0 is pykan's rule, bit for bit
    k = 3  # the first layer's samples are x in both (a hidden layer's differ: the refit edges differ)
    ga, gb = host(plain.layers[0].grid)[:, k:-k], host(wide.layers[0].grid)[:, k:-k]
    np.testing.assert_allclose(gb[:, 1:-1], ga[:, 1:-1], rtol=0, atol=1e-12)
    np.testing.assert_allclose(gb[:, 0], ga[:, 0] - 0.5 * (ga[:, 1] - ga[:, 0]), rtol=0, atol=1e-12)
    np.testing.assert_allclose(gb[:, -1], ga[:, -1] + 0.5 * (ga[:, -1] - ga[:, -2]), rtol=0, atol=1e-12)
    assert np.all(host(wide.layers[1].grid)[:, k] < host(wide.layers[1].grid)[:, k + 1])


def test_grid_margin_keeps_inputs_just_beyond_the_samples_accurate():
    """Past the samples' range the spline's end pieces are fitted to no sample; the margin puts
    the first stretch beyond the samples inside an interval the samples shape."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (300, 1))
    G = 20
    h = (x.max() - x.min()) / G
    beyond = np.r_[np.linspace(x.min() - 0.3 * h, x.min(), 20), np.linspace(x.max(), x.max() + 0.3 * h, 20)][:, None]
    errors = {}
    for margin in (0.0, 0.5):
        model = ka.KAN([1, 1], grid=G, seed=0)
        history = model.fit(x, np.sin(3 * x), steps=100, progress=False, grid_margin=margin)
        assert history["train_loss"][-1] < 3e-5
        errors[margin] = np.max(np.abs(model(beyond) - np.sin(3 * beyond)))
    assert errors[0.5] < 0.5 * errors[0.0], errors


def test_grid_margin_is_checked_before_anything_changes():
    model = random_model("numpy", [2, 3, 1], grid=5)
    before = [host(layer.grid).copy() for layer in model.layers]
    x = np.random.default_rng(0).uniform(-1, 1, (50, 2))
    for bad in (-0.1, float("nan"), "0.5", True):
        with pytest.raises(ValueError, match="grid_margin must be"):
            model.update_grid(x, grid_margin=bad)
        with pytest.raises(ValueError, match="grid_margin must be"):
            model.fit(x, x[:, :1], steps=1, grid_margin=bad, progress=False)
    for layer, g in zip(model.layers, before):
        np.testing.assert_array_equal(host(layer.grid), g)


@pytest.mark.parametrize("call", ["update_grid", "refine"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_samples_too_wide_for_the_dtype_are_refused_and_change_nothing(call, dtype):
    """One sample of 1e308 (float64; 1e30 in float32) used to give non-finite knots in place
    (update_grid) or a coefficient error (refine): refused up front, naming the range."""
    model = ka.KAN([2, 3, 1], grid=3, dtype=dtype, seed=1)
    x = np.random.default_rng(0).uniform(-1, 1, (40, 2))
    x[3, 0] = 1e308 if dtype == "float64" else 1e30
    before = {name: host(a).copy() for name, a in model.parameters().items()}
    grids = [host(layer.grid).copy() for layer in model.layers]
    with pytest.raises(ValueError, match=rf"{call}: the samples' range .* too wide for {dtype}.*rescale the inputs"):
        model.update_grid(x) if call == "update_grid" else model.refine(5, x)
    assert all(np.array_equal(host(layer.grid), g) for layer, g in zip(model.layers, grids))
    assert all(np.array_equal(host(a), before[name]) for name, a in model.parameters().items())
    model.update_grid(x[4:])  # ordinary samples still work
