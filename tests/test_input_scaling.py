"""Input scaling (``KAN.scale_inputs``): raw inputs mapped onto the first layer's grid range,
applied once by every entry point, kept by every operation that builds or moves a model, and
part of formulas, checkpoints and ONNX graphs."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest

import kanarray as ka

from helpers import host, perturb, random_model

LO = np.array([100.0, -0.01, -7.0])
HI = np.array([300.0, 0.01, 5e3])


def _normalized(model, x):
    """(x - shift) * scale on the host, float64: what the first layer should see."""
    shift, scale = model.input_scaling
    return (np.asarray(x, dtype=np.float64) - shift) * scale


def _raw(n, seed, lo=LO, hi=HI):
    return np.random.default_rng(seed).uniform(lo, hi, (n, len(lo)))


def _scaled_and_twin(backend, width=(3, 4, 2), seed=3, **kwargs):
    """A random model with LO/HI scaling and its unscaled twin (same arrays)."""
    scaled = random_model(backend, list(width), seed=seed, **kwargs)
    scaled.scale_inputs(LO[: width[0]], HI[: width[0]])
    return scaled, random_model(backend, list(width), seed=seed, **kwargs)


def _expsin_raw(n, seed):
    """Raw inputs in [100, 300] x [-0.01, 0.01] and y = exp(sin(pi u) + v^2) of the
    normalized u, v in [-1, 1]."""
    u = np.random.default_rng(seed).uniform(-1, 1, (n, 2))
    x = np.stack([200 + 100 * u[:, 0], 0.01 * u[:, 1]], axis=1)
    return x, np.exp(np.sin(np.pi * u[:, :1]) + u[:, 1:] ** 2)


# -- the map --------------------------------------------------------------------------------


def test_forward_equals_the_unscaled_twin_on_normalized_inputs(backend):
    scaled, twin = _scaled_and_twin(backend)
    xp = scaled.xp
    x = _raw(200, 0)
    got = host(scaled(xp.asarray(x)))
    np.testing.assert_allclose(got, host(twin(xp.asarray(_normalized(scaled, x)))), rtol=0, atol=1e-13)
    assert not np.allclose(got, host(twin(xp.asarray(x))))
    shift, scale = scaled.input_scaling
    assert shift.dtype == scale.dtype == np.float64 and shift.shape == scale.shape == (3,)
    assert twin.input_scaling is None and "input_scaling=True" in repr(scaled) and "input_scaling" not in repr(twin)
    plain = xp.asarray(x)
    assert twin.prepare_inputs(plain) is plain  # no map: the validated inputs themselves


@pytest.mark.parametrize("grid_range", [(-1.0, 1.0), (0.0, 4.0), (-2.5, 0.5), [(-3.0, 1.0), (-1.0, 1.0)]])
def test_lo_and_hi_map_onto_the_first_layers_grid_range(grid_range):
    model = ka.KAN([3, 2, 1], grid_range=grid_range, seed=0)
    model.scale_inputs(LO, HI)
    g_lo, g_hi = model.grid_range[0]
    ends = host(model.prepare_inputs(np.stack([LO, HI])))
    tol = 4 * np.finfo(np.float64).eps * max(abs(g_lo), abs(g_hi))
    np.testing.assert_allclose(ends[0], g_lo, rtol=0, atol=tol)
    np.testing.assert_allclose(ends[1], g_hi, rtol=0, atol=tol)
    shift, scale = model.input_scaling
    np.testing.assert_allclose(scale, (g_hi - g_lo) / (HI - LO), rtol=1e-15)
    if grid_range == (-1.0, 1.0):  # a symmetric range: shift is the midpoint, the ends land exactly
        np.testing.assert_array_equal(shift, (LO + HI) / 2)
        np.testing.assert_array_equal(ends, [[-1.0] * 3, [1.0] * 3])


def test_constant_column_gets_scale_one_at_the_centre_of_the_grid():
    model = ka.KAN([2, 3, 1], grid_range=(0.0, 4.0), seed=0)
    model.scale_inputs([5.0, 0.0], [5.0, 2.0])
    shift, scale = model.input_scaling
    assert scale[0] == 1.0 and scale[1] == 2.0
    np.testing.assert_array_equal(host(model.prepare_inputs(np.array([[5.0, 0.0], [5.5, 2.0], [4.0, 1.0]]))),
                                  [[2.0, 0.0], [2.5, 4.0], [1.0, 2.0]])


def test_removing_the_map_and_copies():
    scaled, twin = _scaled_and_twin("numpy")
    x = _raw(50, 1)
    shift, scale = scaled.input_scaling
    shift[:] = 0.0
    scale[:] = 1.0  # copies: the model keeps its map
    np.testing.assert_array_equal(scaled.input_scaling[1], 2 / (HI - LO))
    scaled.scale_inputs(None, None)
    assert scaled.input_scaling is None
    np.testing.assert_array_equal(scaled(x), twin(x))


@pytest.mark.parametrize("lo,hi,match", [
    ([0.0, 0.0], [1.0, 1.0], r"shape \(3,\)"),
    (np.zeros((1, 3)), np.ones((1, 3)), r"shape \(3,\)"),
    (0.0, 1.0, r"shape \(3,\)"),
    ([0.0, np.nan, 0.0], [1.0, 1.0, 1.0], "finite"),
    ([0.0, 0.0, 0.0], [1.0, np.inf, 1.0], "finite"),
    ([0.0, 2.0, 0.0], [1.0, 1.0, 1.0], r"lo must be <= hi.*\[1\]"),
    (["a", "b", "c"], [1.0, 1.0, 1.0], "real numbers"),
    ([0j, 0j, 0j], [1.0, 1.0, 1.0], "real numbers"),
    ([[0.0], [0.0, 1.0], [0.0]], [1.0, 1.0, 1.0], "real numbers"),
    ([0.0, 0.0, 0.0], None, "both"),
    (None, [1.0, 1.0, 1.0], "both"),
    ([-1e308, 0.0, 0.0], [1e308, 1.0, 1.0], "too wide or too narrow"),
])
@pytest.mark.parametrize("start", ["none", "scaled"])
def test_bad_ranges_are_refused_before_anything_changes(lo, hi, match, start):
    model = random_model("numpy", [3, 4, 1], seed=1)
    if start == "scaled":
        model.scale_inputs(LO, HI)
    x = _raw(20, 2)
    model.fit(x, np.ones((20, 1)), steps=1, progress=False, update_grid=False)
    before, samples, y = model.input_scaling, model.fit_inputs, model(x)
    with pytest.raises(ValueError, match=match):
        model.scale_inputs(lo, hi)
    after = model.input_scaling
    assert (before is None and after is None) or all(np.array_equal(a, b) for a, b in zip(before, after))
    assert model.fit_inputs is samples
    np.testing.assert_array_equal(model(x), y)


def test_changing_the_map_remaps_the_kept_samples():
    model = ka.KAN([3, 2, 1], seed=0)
    x = _raw(30, 3)
    model.fit(x, np.ones((30, 1)), steps=1, progress=False, update_grid=False)
    np.testing.assert_array_equal(model.fit_inputs, x)
    model.scale_inputs(LO, HI)
    np.testing.assert_allclose(model.fit_inputs, _normalized(model, x), rtol=0, atol=1e-14)
    model.scale_inputs(LO - 1.0, HI + 1.0)
    np.testing.assert_allclose(model.fit_inputs, _normalized(model, x), rtol=0, atol=1e-13)
    model.scale_inputs(None, None)
    assert np.all(np.abs(model.fit_inputs - x) <= 1e-14 * (HI - LO))


# -- gradients --------------------------------------------------------------------------------


def test_vjp_dx_is_the_gradient_with_respect_to_the_raw_inputs(backend):
    scaled, twin = _scaled_and_twin(backend)
    xp = scaled.xp
    x = _raw(40, 4)
    gy = np.random.default_rng(5).normal(size=(40, 2))
    y, grads, dx = scaled.vjp(xp.asarray(x), xp.asarray(gy))
    dx = host(dx)
    f = lambda v: host(scaled(xp.asarray(v)))  # noqa: E731
    step = 1e-5 * (HI - LO)  # a step per column, on its own scale
    fd = np.zeros_like(x)
    for i in range(3):
        up, down = x.copy(), x.copy()
        up[:, i] += step[i]
        down[:, i] -= step[i]
        fd[:, i] = np.sum((f(up) - f(down)) * gy, axis=1) / (2 * step[i])
    for i in range(3):  # the columns differ by 1e5 in scale: compare each on its own
        np.testing.assert_allclose(dx[:, i], fd[:, i], rtol=1e-6, atol=1e-6 * np.abs(fd[:, i]).max())
    ty, tgrads, tdx = twin.vjp(xp.asarray(_normalized(scaled, x)), xp.asarray(gy))
    np.testing.assert_allclose(host(y), host(ty), rtol=0, atol=1e-13)
    np.testing.assert_allclose(dx, host(tdx) * scaled.input_scaling[1], rtol=1e-13)
    for name in grads:
        np.testing.assert_allclose(host(grads[name]), host(tgrads[name]), rtol=1e-12, atol=1e-13, err_msg=name)


@pytest.mark.parametrize("lamb", [0.0, 1e-2])
def test_value_and_grad_is_consistent_with_forward(backend, lamb):
    scaled, twin = _scaled_and_twin(backend)
    xp = scaled.xp
    x = _raw(60, 6)
    y = np.random.default_rng(7).normal(size=(60, 2))
    value, grads = scaled.value_and_grad(xp.asarray(x), xp.asarray(y), lamb=lamb)
    if lamb == 0:
        assert abs(float(value) - np.mean((host(scaled(xp.asarray(x))) - y) ** 2)) <= 1e-13
    tvalue, tgrads = twin.value_and_grad(xp.asarray(_normalized(scaled, x)), xp.asarray(y), lamb=lamb)
    assert abs(float(value) - float(tvalue)) <= 1e-12 * abs(float(tvalue))
    for name in grads:
        np.testing.assert_allclose(host(grads[name]), host(tgrads[name]), rtol=1e-10, atol=1e-12, err_msg=name)


# -- training and grids -----------------------------------------------------------------------


def test_fit_on_raw_inputs_reaches_a_much_lower_error_with_scaling():
    x, y = _expsin_raw(300, 0)
    x_test, y_test = _expsin_raw(300, 1)
    errors = {}
    for scaled in (True, False):
        model = ka.KAN([2, 5, 1], grid=5, seed=0)
        if scaled:
            model.scale_inputs(x.min(axis=0), x.max(axis=0))
        model.fit(x, y, steps=20, progress=False)
        errors[scaled] = float(np.sqrt(np.mean((model(x_test) - y_test) ** 2)))
    assert errors[True] < 2e-2 and errors[True] < 0.1 * errors[False], errors


def test_fit_applies_the_map_once_to_training_and_validation_inputs():
    x, y = _expsin_raw(200, 2)
    x_val, y_val = _expsin_raw(100, 3)
    scaled = ka.KAN([2, 3, 1], grid=5, seed=1)
    scaled.scale_inputs([100.0, -0.01], [300.0, 0.01])
    twin = ka.KAN([2, 3, 1], grid=5, seed=1)
    kw = dict(steps=6, progress=False, stop_grid_update_step=4, grid_update_num=2, lamb=1e-3)
    h = scaled.fit(x, y, validation=(x_val, y_val), **kw)
    th = twin.fit(_normalized(scaled, x), y, validation=(_normalized(scaled, x_val), y_val), **kw)
    for key in ("train_loss", "val_loss", "reg"):
        np.testing.assert_allclose(h[key], th[key], rtol=1e-10, err_msg=key)
    for name, a in scaled.parameters().items():
        np.testing.assert_allclose(a, twin.parameters()[name], rtol=1e-9, atol=1e-12, err_msg=name)
    np.testing.assert_array_equal(scaled.fit_inputs, _normalized(scaled, x))
    interior = scaled.layers[0].grid[:, 3:-3]  # knots adapted to the normalized range, not to [100, 300]
    assert np.all(np.abs(interior) <= 1.0 + 1e-12) and np.all(interior.max(axis=1) > 0.95)


def test_update_grid_on_raw_inputs_keeps_the_function_and_matches_the_twin(backend):
    scaled, twin = _scaled_and_twin(backend, width=(2, 3, 1), seed=4)
    xp = scaled.xp
    x = _raw(500, 8, LO[:2], HI[:2])
    before = host(scaled(xp.asarray(x)))
    scaled.update_grid(xp.asarray(x))
    twin.update_grid(xp.asarray(_normalized(scaled, x)))
    for a, b in zip(scaled.layers, twin.layers):
        np.testing.assert_allclose(host(a.grid), host(b.grid), rtol=0, atol=1e-13)
        np.testing.assert_allclose(host(a.coef), host(b.coef), rtol=1e-9, atol=1e-10)
    g = host(scaled.layers[0].grid)[:, 3:-3]  # interior knots: from the samples' normalized min to max
    u = _normalized(scaled, x)
    np.testing.assert_allclose(g[:, [0, -1]], np.stack([u.min(axis=0), u.max(axis=0)], axis=1), atol=1e-12)
    after = host(scaled(xp.asarray(x)))
    assert np.sqrt(np.mean((after - before) ** 2)) <= 5e-2 * np.sqrt(np.mean(before**2))


def _uniform_knots(model):
    """Every layer's knots back to the initial uniform ones (which refine to nested knots)."""
    for layer, fresh in zip(model.layers, ka.KAN(model.width, grid=model.grid, k=model.k).layers):
        layer.grid[...] = model.xp.asarray(host(fresh.grid))
    return model


def test_refine_keeps_the_function_and_the_map(backend):
    model = _uniform_knots(_scaled_and_twin(backend, width=(2, 3), seed=5, grid=4)[0])
    xp = model.xp
    x = xp.asarray(_raw(300, 9, LO[:2], HI[:2]))
    y = host(model(x))
    new = model.refine(8, x=x)
    assert new.grid == [8]
    np.testing.assert_array_equal(new.input_scaling[1], model.input_scaling[1])
    np.testing.assert_allclose(host(new(x)), y, rtol=0, atol=1e-9 * np.abs(y).max())
    np.testing.assert_allclose(host(new.fit_inputs), _normalized(model, host(x)), rtol=0, atol=1e-13)
    again = new.refine(16)  # on the kept (normalized) samples
    np.testing.assert_allclose(host(again(x)), y, rtol=0, atol=1e-9 * np.abs(y).max())


def test_refine_of_a_model_trained_on_raw_inputs_stays_close():
    x, y = _expsin_raw(300, 4)
    model = ka.KAN([2, 5, 1], grid=5, seed=0)
    model.scale_inputs(x.min(axis=0), x.max(axis=0))
    model.fit(x, y, steps=15, progress=False)
    new = model.refine(10)
    before, after = model(x), new(x)
    assert np.max(np.abs(after - before)) <= 1e-3 * np.max(np.abs(before))


# -- models built from models -------------------------------------------------------------------


def test_pruning_keeps_the_map():
    x, y = _expsin_raw(300, 5)
    scaled = ka.KAN([2, 5, 1], grid=3, seed=1)
    scaled.scale_inputs([100.0, -0.01], [300.0, 0.01])
    twin = ka.KAN([2, 5, 1], grid=3, seed=1)
    scaled.fit(x, y, steps=15, lamb=1e-2, progress=False)
    twin.fit(_normalized(scaled, x), y, steps=15, lamb=1e-2, progress=False)
    a, b = scaled.attribute(x), twin.attribute(_normalized(scaled, x))
    for l in range(2):
        np.testing.assert_allclose(a.edge_scores[l], b.edge_scores[l], rtol=1e-8)
    pruned, pruned_twin = scaled.prune(), twin.prune()
    assert pruned.width == pruned_twin.width and pruned.width[1] < 5
    np.testing.assert_array_equal(pruned.input_scaling[0], scaled.input_scaling[0])
    np.testing.assert_allclose(pruned(x), pruned_twin(_normalized(scaled, x)), rtol=1e-8, atol=1e-10)
    for p in (scaled.prune_node(x), scaled.prune_edge(x)):
        assert p.input_scaling is not None
        np.testing.assert_allclose(p(x), scaled(x), atol=0.05 * np.abs(scaled(x)).max())


def test_to_keeps_the_map_and_the_kept_samples(backend):
    x, y = _expsin_raw(100, 6)
    model = ka.KAN([2, 3, 1], grid=4, seed=2)
    model.scale_inputs([100.0, -0.01], [300.0, 0.01])
    model.fit(x, y, steps=3, progress=False)
    ref, refined = model(x), model.refine(8)(x)
    model.to(backend)
    xp = model.xp
    np.testing.assert_array_equal(model.input_scaling[1], [0.01, 100.0])
    np.testing.assert_allclose(host(model(xp.asarray(x))), ref, rtol=1e-12)
    np.testing.assert_allclose(host(model.refine(8)(xp.asarray(x))), refined, rtol=1e-9, atol=1e-12)
    model.to(dtype="float32")
    got = host(model(xp.asarray(x, dtype=xp.float32)))
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)
    assert model.input_scaling[0].dtype == np.float64


# -- checkpoints --------------------------------------------------------------------------------


def _members(path):
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def _write_zip(path, members):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)


def test_checkpoint_round_trip_keeps_the_map(tmp_path, backend):
    scaled, _ = _scaled_and_twin("numpy", dtype="float32")
    path = tmp_path / "m.kan"
    scaled.save(path)
    header = json.loads(_members(path)["kanarray.json"])
    assert header["version"] == 2 and {"model/input_shift", "model/input_scale"} <= set(header["arrays"])
    loaded = ka.load(path, backend=backend)
    for a, b in zip(loaded.input_scaling, scaled.input_scaling):
        assert a.dtype == np.float64 and a.tobytes() == b.tobytes()
    x = _raw(50, 10).astype(np.float32)
    np.testing.assert_allclose(host(loaded(loaded.xp.asarray(x))), scaled(x), rtol=1e-6, atol=1e-6)
    wider = ka.load(path, dtype="float64")
    assert wider.input_scaling[1].tobytes() == scaled.input_scaling[1].tobytes()
    np.testing.assert_allclose(wider(x.astype(np.float64)), scaled(x), rtol=1e-4, atol=1e-4)


def test_files_without_a_map_load_without_one(tmp_path):
    plain = random_model("numpy", [3, 4, 1], seed=2)
    plain.save(tmp_path / "plain.kan")
    header = json.loads(_members(tmp_path / "plain.kan")["kanarray.json"])
    assert header["version"] == 1 and not any("input_" in name for name in header["arrays"])
    assert ka.load(tmp_path / "plain.kan").input_scaling is None
    scaled = random_model("numpy", [3, 4, 1], seed=2)
    scaled.scale_inputs(LO, HI)
    scaled.save(tmp_path / "scaled.kan")
    members = _members(tmp_path / "scaled.kan")  # written as before version 2: no input arrays
    header = json.loads(members["kanarray.json"])
    header["version"] = 1
    del header["arrays"]["model/input_shift"], header["arrays"]["model/input_scale"]
    old = {k: v for k, v in members.items() if not k.startswith("model/input_")}
    _write_zip(tmp_path / "old.kan", {**old, "kanarray.json": json.dumps(header)})
    loaded = ka.load(tmp_path / "old.kan")
    assert loaded.input_scaling is None
    x = _raw(20, 11)
    np.testing.assert_array_equal(loaded(x), plain(x))


def test_broken_maps_in_files_are_refused(tmp_path):
    scaled = random_model("numpy", [3, 4, 1], seed=2)
    scaled.scale_inputs(LO, HI)
    scaled.save(tmp_path / "m.kan")
    members = _members(tmp_path / "m.kan")
    header = json.loads(members["kanarray.json"])
    half = dict(header, arrays={k: v for k, v in header["arrays"].items() if k != "model/input_scale"})
    _write_zip(tmp_path / "half.kan", {**{k: v for k, v in members.items() if k != "model/input_scale.npy"},
                                       "kanarray.json": json.dumps(half)})
    with pytest.raises(ka.CheckpointError, match="incomplete"):
        ka.load(tmp_path / "half.kan")
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.array([1.0, -2.0, 1.0]), allow_pickle=False)
    _write_zip(tmp_path / "neg.kan", {**members, "model/input_scale.npy": buf.getvalue()})
    with pytest.raises(ka.CheckpointError, match="positive"):
        ka.load(tmp_path / "neg.kan")


# -- formulas, plots, ONNX -------------------------------------------------------------------------


def _symbolic_scaled_model():
    """[2, 2, 1] with every edge symbolic and inputs scaled from [100, 300] x [-0.01, 0.01]."""
    model = ka.KAN([2, 2, 1], grid=3, seed=0)
    model.scale_inputs([100.0, -0.01], [300.0, 0.01])
    model.fix_symbolic(0, 0, 0, "sin", params=(3.0, 0.2, 1.0, 0.0))
    model.fix_symbolic(0, 1, 0, "x^2", params=(1.0, 0.0, 0.5, 0.0))
    model.fix_symbolic(0, 0, 1, "x", params=(1.0, 0.0, 0.75, 0.5))
    model.fix_symbolic(0, 1, 1, "tanh", params=(2.0, -0.5, 1.0, 0.0))
    model.fix_symbolic(1, 0, 0, "exp", params=(0.5, 0.0, 1.0, 0.0))
    model.fix_symbolic(1, 1, 0, "x^2", params=(1.0, 0.25, 1.0, -0.1))
    return model


@pytest.mark.parametrize("digits,tol", [(10, 1e-8), (4, 1e-3)])
@pytest.mark.parametrize("simplify", [True, False])
def test_symbolic_formula_is_in_the_raw_inputs(digits, tol, simplify):
    import sympy

    model = _symbolic_scaled_model()
    x = _raw(200, 12, LO[:2], HI[:2])
    (formula,) = model.symbolic_formula(digits=digits, simplify=simplify)
    x1, x2 = sympy.symbols("x_1 x_2")
    assert formula.free_symbols == {x1, x2}
    got = sympy.lambdify([x1, x2], formula, "numpy")(x[:, 0], x[:, 1])
    ref = model(x)[:, 0]
    np.testing.assert_allclose(got, ref, rtol=0, atol=tol * np.abs(ref).max())
    named = model.symbolic_formula(var_names=["u", "v"], digits=digits)[0]
    got = sympy.lambdify(sympy.symbols("u v"), named, "numpy")(x[:, 0], x[:, 1])
    np.testing.assert_allclose(got, ref, rtol=0, atol=tol * np.abs(ref).max())


def test_symbolic_fits_on_raw_samples_and_their_formula():
    import sympy

    x, y = _expsin_raw(400, 7)
    model = ka.KAN([2, 1, 1], grid=5, seed=1)
    model.scale_inputs(x.min(axis=0), x.max(axis=0))
    model.fit(x, y, steps=20, progress=False)
    assert model.suggest_symbolic(0, 0, 0, lib=["x", "x^2", "sin", "exp", "tanh"])[0].name == "sin"
    for edge, name in (((0, 0, 0), "sin"), ((0, 1, 0), "x^2"), ((1, 0, 0), "exp")):
        assert model.fix_symbolic(*edge, name, x=x) > 0.99
    (formula,) = model.symbolic_formula(digits=10)
    got = sympy.lambdify(sympy.symbols("x_1 x_2"), formula, "numpy")(x[:, 0], x[:, 1])
    np.testing.assert_allclose(got, model(x)[:, 0], rtol=1e-7)
    np.testing.assert_allclose(got, y[:, 0], rtol=5e-2)


def test_plot_takes_raw_samples(tmp_path):
    pytest.importorskip("matplotlib")
    model = _symbolic_scaled_model()
    model.unfix_symbolic(0, 0, 0)
    model.plot(tmp_path / "m.png", x=_raw(50, 13, LO[:2], HI[:2]))
    assert (tmp_path / "m.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _onnx_parity(model, x):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from kanarray.export import to_onnx
    from helpers import run_onnx_reference, run_ort, tol

    ref = model(x)
    for dtype in ("float64", "float32"):
        xs = x.astype(dtype)
        want = ref if dtype == "float64" else model(xs.astype(np.float64))
        for strategy in ("local", "dense"):
            proto = to_onnx(model, dtype=dtype, strategy=strategy)
            for run in (run_ort, run_onnx_reference):
                got = run(proto, xs)
                assert got.dtype == np.dtype(dtype) and got.shape == ref.shape
                err = float(np.abs(got - want).max())
                bound = tol(dtype, 512) * max(1.0, float(np.abs(want).max()))
                assert err <= bound, (run.__name__, dtype, strategy, err)
    return proto


def test_onnx_spline_model_takes_raw_inputs():
    x, y = _expsin_raw(300, 8)
    model = perturb(ka.KAN([2, 4, 1], grid=6, seed=3), seed=3)
    model.scale_inputs(x.min(axis=0), x.max(axis=0))
    model.fit(x, y, steps=5, progress=False)
    proto = _onnx_parity(model, np.concatenate([x, _raw(50, 14, [0.0, -0.05], [400.0, 0.05])]))
    first = proto.graph.node[:2]
    assert [n.op_type for n in first] == ["Sub", "Mul"] and list(first[0].input) == ["x", "input_shift"]
    meta = {p.key: p.value for p in proto.metadata_props}
    np.testing.assert_allclose(json.loads(meta["training_input_range"]), np.stack([x.min(0), x.max(0)], axis=1),
                               rtol=1e-12)
    scaling = json.loads(meta["input_scaling"])
    np.testing.assert_array_equal(scaling["shift"], model.input_scaling[0])
    np.testing.assert_array_equal(scaling["scale"], model.input_scaling[1])


def test_onnx_symbolic_model_takes_raw_inputs():
    model = _symbolic_scaled_model()
    proto = _onnx_parity(model, _raw(300, 15, LO[:2] - 20, HI[:2] + 20))
    assert json.loads({p.key: p.value for p in proto.metadata_props}["training_input_range"]) is None


def test_onnx_without_a_map_has_no_input_step():
    pytest.importorskip("onnx")
    from kanarray.export import to_onnx

    proto = to_onnx(ka.KAN([2, 3, 1], seed=0))
    assert not any(t.name.startswith("input_") for t in proto.graph.initializer)
    assert {p.key: p.value for p in proto.metadata_props}["input_scaling"] == "null"
