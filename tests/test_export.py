"""ONNX export: parity with the native forward on onnxruntime and onnx's ReferenceEvaluator."""

from __future__ import annotations

import numpy as np
import pytest

import kanarray as ka
from kanarray.symbolic import LIBRARY

from helpers import expsin_data, gpu_cupy, perturb, pruned_expsin_model, tol as ulps_of
from helpers import run_onnx_reference as _run_reference, run_ort as _run_ort

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from kanarray.export import ExportError, register_onnx, to_onnx  # noqa: E402


def _assert_parity(model, x, *, reference=True, strategies=("local", "dense"), float32_same_rounding=False):
    """float32_same_rounding: compare the float32 graph with the native model run in float32
    (same operations, same rounding) rather than with the float32-rounded model run in float64;
    needed where a function is ill-conditioned (near its singularities) so that the rounding of
    a x + b itself decides the result."""
    ref = np.asarray(model(x))
    # not eps-derived: the runtimes have their own kernels and deep random models amplify rounding
    # layer by layer (the float32 bound adds a budget for that below; float64 keeps this margin)
    for dtype, tol in (("float64", 1e-10), ("float32", 1e-5)):
        for strategy in strategies:
            _check(model, x, ref, dtype, tol, strategy, reference, float32_same_rounding)


def _check(model, x, ref, dtype, tol, strategy, reference, float32_same_rounding):
    proto = to_onnx(model, dtype=dtype, strategy=strategy)
    used = {i for node in proto.graph.node for i in node.input} | {o.name for o in proto.graph.output}
    assert all(o in used for node in proto.graph.node for o in node.output), "a node whose output nothing uses"
    assert all(t.name in used for t in proto.graph.initializer), "an unused initializer"
    xs = x.astype(dtype)
    slack = 0.0
    # float32: the graph holds the parameters rounded to float32, so the reference is that
    # rounded model evaluated natively in float64 (the exact function the graph approximates);
    # a deep random model with steep splines amplifies float32 rounding from layer to layer, so
    # the bound also admits three times the native float32 model's own error on the same inputs,
    # or the first-order error of any evaluation accurate to 8 ulps per layer
    if dtype == "float64":
        want = ref
    else:
        rounded = _rounded_to_float32(model)
        native32 = np.asarray(_rounded_to_float32(model).to(dtype="float32")(xs), dtype=np.float64)
        want = native32 if float32_same_rounding else np.asarray(rounded(xs.astype(np.float64)))
        slack = max(3 * float(np.abs(native32 - np.asarray(rounded(xs.astype(np.float64)))).max()),
                    _float32_budget(rounded, xs.astype(np.float64)))
    for run in [_run_ort] + ([_run_reference] if reference else []):
        got = run(proto, xs)
        assert got.shape == ref.shape and got.dtype == np.dtype(dtype)
        err = np.abs(got - want).max()
        bound = max(tol * max(1.0, float(np.abs(want).max())), 0.0 if float32_same_rounding else slack)
        assert err <= bound, f"{run.__name__} {dtype} {strategy}: max error {err:.3e} > {bound:.3e}"


def _float32_budget(model, x, ulps=8):
    """First-order bound on the output error of a float32 evaluation whose every layer output
    is within ``ulps`` float32 ulps of that layer's largest value:
    sum over layers l of max_b sum_j |dy_b / dh_lbj| * ulps * 2^-24 * max(1, max |h_l|), with
    the Jacobians of the later layers by central differences on the float64 model."""
    hs = [x]
    for layer in model.layers:
        hs.append(np.asarray(layer.forward(hs[-1])[0]))

    def rest(h, start):
        for layer in model.layers[start:]:
            h = np.asarray(layer.forward(h)[0])
        return h

    budget = ulps * 2.0**-24 * max(1.0, float(np.abs(hs[-1]).max()))
    for l in range(1, len(model.layers)):  # h_l: the output of layer l - 1, the input of layer l
        h = hs[l]
        scale = ulps * 2.0**-24 * max(1.0, float(np.abs(h).max()))
        step = 1e-6 * max(1.0, float(np.abs(h).max()))
        sens = np.zeros(hs[-1].shape)
        for j in range(h.shape[1]):
            up, down = h.copy(), h.copy()
            up[:, j] += step
            down[:, j] -= step
            sens += np.abs(rest(up, l) - rest(down, l)) / (2 * step)
        budget += scale * float(sens.max())
    return budget


def _rounded_to_float32(model):
    xp = model.xp
    layers = [layer.moved(xp, xp.float32).moved(xp, xp.float64) for layer in model.layers]
    return ka.KAN.from_layers(layers, base_fun=model.base_fun, grid_range=model.grid_range, seed=model.seed,
                              dtype_name="float64", bias_trainable=False)


def _inputs(model, seed, n=300):
    """Inputs inside the grid and well outside it (the spline vanishes there, only the base remains)."""
    rng = np.random.default_rng(seed)
    lo = min(float(np.min(layer.grid)) for layer in model.layers[:1])
    hi = max(float(np.max(layer.grid)) for layer in model.layers[:1])
    span = hi - lo
    x = rng.uniform(lo - 0.5 * span, hi + 0.5 * span, (n, model.width[0]))
    x[:5] = lo  # exactly on the first knot
    x[5:10] = hi  # exactly on the last knot (outside: half-open)
    return x


@pytest.mark.parametrize("k", [0, 1, 2, 3, 5])
@pytest.mark.parametrize("width,G", [([2, 3, 1], 3), ([4, 5, 3], 7), ([3, 2, 2, 2], 20), ([1, 1], 1)])
def test_spline_models_match_native(width, G, k):
    model = perturb(ka.KAN(width, grid=G, k=k, seed=G + k), seed=k)  # non-uniform knots, masks, biases
    _assert_parity(model, _inputs(model, k), reference=G < 20)


@pytest.mark.parametrize("k,jitter", [(0, False), (0, True), (1, False), (3, False), (3, True)])
def test_long_table_rows_match_native(k, jitter):
    """G = 70: rows of more than 64 entries, looked up in chunks (``_lookup``), on onnxruntime and
    the unpatched ReferenceEvaluator.  (k = 1 with jittered knots is left out: its steep pieces
    amplify float32 rounding to 1e-4, in the exports before these lookups too.)"""
    model = ka.KAN([3, 2, 1], grid=70, k=k, seed=k)
    if jitter:
        perturb(model, seed=k)
    _assert_parity(model, _inputs(model, k, n=200))


@pytest.mark.parametrize("base_fun", ["silu", "identity", "zero"])
def test_trained_grid_updated_model_matches_native(base_fun):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 2))
    y = np.sin(x[:, :1]) * x[:, 1:]
    model = ka.KAN([2, 4, 1], grid=10, k=3, base_fun=base_fun, seed=0)
    model.fit(x, y, steps=10, progress=False)  # grid updates: knots at the quantiles
    _assert_parity(model, np.concatenate([x, rng.uniform(-8, 8, (100, 2))]))


def test_pruned_model_matches_native():
    _assert_parity(pruned_expsin_model(), expsin_data(300, seed=1)[0])


@pytest.mark.parametrize("name", sorted(n for n in LIBRARY if n != "cube_root_test"))
def test_every_library_function_exports_exactly(name):
    """Each function, with its safe clamps, on arguments that reach its singular points."""
    model = ka.KAN([2, 2], grid=3, seed=0)
    model.fix_symbolic(0, 0, 1, name, params=(2.5, 0.3, 1.3, -0.2))
    model.fix_symbolic(0, 1, 0, name, params=(1.0, 0.0, 0.7, 0.1))
    x = np.concatenate([np.random.default_rng(0).uniform(-3, 3, (300, 2)),
                        np.array([[0.0, 0.0], [-0.12, 1.0], [-1.0, -1.0], [np.pi / 2, np.pi / 2], [30, 60.0]])])
    _assert_parity(model, x, float32_same_rounding=True)


def test_symbolic_model_from_the_demo_pipeline_matches_native():
    x, y = expsin_data(500, seed=2)
    model = ka.KAN([2, 1, 1], grid=5, seed=1)
    model.fit(x, y, steps=20, progress=False)
    model.fix_symbolic(0, 0, 0, "sin")  # one symbolic edge next to spline edges
    _assert_parity(model, x)
    model.auto_symbolic(lib=["x^2", "exp", "sin"])
    _assert_parity(model, np.concatenate([x, 3 * x]))


def test_graph_is_valid_with_dynamic_batch_and_metadata(tmp_path):
    rng = np.random.default_rng(0)
    model = ka.KAN([3, 4, 2], grid=5, seed=0)
    model.fit(rng.uniform(-1, 1, (100, 3)), rng.normal(size=(100, 2)), steps=2, progress=False)
    path = tmp_path / "m.onnx"
    proto = to_onnx(model, path, opset=17, dtype="float64", input_name="inp", output_name="out")
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    inferred = onnx.shape_inference.infer_shapes(proto, strict_mode=True)
    (inp,), (out,) = inferred.graph.input, inferred.graph.output
    dims = lambda vi: [d.dim_param or d.dim_value for d in vi.type.tensor_type.shape.dim]  # noqa: E731
    assert (inp.name, dims(inp)) == ("inp", ["batch", 3]) and (out.name, dims(out)) == ("out", ["batch", 2])
    assert proto.opset_import[0].version == 17
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["width"] == "[3, 4, 2]" and meta["k"] == "[3, 3]" and meta["kanarray_version"] == ka.__version__
    assert "training_input_range" in meta and meta["training_input_range"] != "null"
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch in (1, 7, 1000):
        x = rng.uniform(-1, 1, (batch, 3))
        np.testing.assert_allclose(session.run(None, {"inp": x})[0], model(x), rtol=1e-12, atol=1e-12)


def test_local_graph_does_not_grow_with_the_grid():
    """The per-edge graph evaluates k + 1 polynomial coefficients per input, whatever G is: same
    operators for G = 5 and G = 200, and no tensor with a G-sized axis but the constant tables."""
    ops = lambda p: sorted(n.op_type for n in p.graph.node)  # noqa: E731
    small = to_onnx(ka.KAN([2, 3], grid=5, seed=0), strategy="local")
    big = to_onnx(ka.KAN([2, 3], grid=200, seed=0), strategy="local")
    assert ops(small) == ops(big)
    inferred = onnx.shape_inference.infer_shapes(big, strict_mode=True).graph.value_info
    dims = {d.dim_value for v in inferred for d in v.type.tensor_type.shape.dim}
    assert 200 + 3 not in dims and 200 + 3 + 1 not in dims, "a (batch, n, G + k)-sized tensor in the local graph"
    assert "GatherElements" not in ops(big)
    dense = to_onnx(ka.KAN([8, 64], grid=5, seed=0))  # many outputs per input: the GEMM path is chosen
    assert "GatherElements" in ops(dense) and "Gemm" in ops(dense)


def test_export_errors_are_clear_and_leave_no_file(tmp_path):
    import sympy

    model = ka.KAN([2, 2], grid=3, seed=0)
    with pytest.raises(ExportError, match="opset >= 13"):
        to_onnx(model, opset=11)
    with pytest.raises(ExportError, match="dtype"):
        to_onnx(model, dtype="float16")
    name = "softsign_test"
    ka.symbolic.register(name, lambda z, xp: z / (1 + xp.abs(z)), lambda z, xp: 1 / (1 + xp.abs(z)) ** 2,
                         lambda s: s / (1 + sympy.Abs(s)), 2, overwrite=True)
    try:
        model.fix_symbolic(0, 1, 0, name, params=(1.0, 0.0, 1.0, 0.0))
        path = tmp_path / "m.onnx"
        with pytest.raises(ExportError, match=r"\(0, 1, 0, 'softsign_test'\).*register_onnx"):
            to_onnx(model, path)
        assert list(tmp_path.iterdir()) == []
        register_onnx(name, lambda g, z: g.op("Div", z, g.add(g.const(1.0), g.op("Abs", z))))
        _assert_parity(model, np.random.default_rng(0).uniform(-3, 3, (50, 2)))
    finally:
        from kanarray.export.symbolic_ops import EMITTERS

        EMITTERS.pop(name, None)
        LIBRARY.pop(name, None)


def _saved_model(tmp_path):
    rng = np.random.default_rng(0)
    model = ka.KAN([3, 4, 2], grid=5, seed=0)
    model.fit(rng.uniform(-1, 1, (100, 3)), rng.normal(size=(100, 2)), steps=2, progress=False)
    model.save(tmp_path / "m.kan")
    return model, rng.uniform(-1.5, 1.5, (37, 3))


def test_cli_export_and_predict_npy_and_csv(tmp_path, capsys):
    from kanarray.cli import main

    model, x = _saved_model(tmp_path)
    assert main(["export", str(tmp_path / "m.kan"), "-o", str(tmp_path / "m.onnx"), "--dtype", "float64"]) == 0
    np.save(tmp_path / "x.npy", x)
    np.savetxt(tmp_path / "x.csv", x, delimiter=",", header="u,v,w", comments="")
    assert main(["predict", str(tmp_path / "m.onnx"), str(tmp_path / "x.npy"), "-o", str(tmp_path / "y.npy"),
                 "--batch-size", "8"]) == 0
    assert main(["predict", str(tmp_path / "m.onnx"), str(tmp_path / "x.csv"), "-o", str(tmp_path / "y.csv"),
                 "--provider", "cpu"]) == 0
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), model(x), rtol=1e-12, atol=1e-12)
    assert (tmp_path / "y.csv").read_text().splitlines()[0] == ",".join(f"y{j}" for j in range(model.width[-1]))
    np.testing.assert_allclose(np.loadtxt(tmp_path / "y.csv", delimiter=",", skiprows=1), model(x), rtol=1e-12,
                               atol=1e-12)
    assert "37 rows (cpu)" in capsys.readouterr().out


def test_cli_predict_reports_bad_input_clearly(tmp_path, capsys):
    from kanarray.cli import main

    _saved_model(tmp_path)
    assert main(["export", str(tmp_path / "m.kan"), "-o", str(tmp_path / "m.onnx")]) == 0
    (tmp_path / "bad.csv").write_text("1,2,3\n4,five,6\n")
    (tmp_path / "wide.csv").write_text("1,2,3,4\n")
    cases = [
        (str(tmp_path / "bad.csv"), "line 2, column 2: 'five' is not a number"),
        (str(tmp_path / "wide.csv"), "has 4 columns but the model takes 3"),
        (str(tmp_path / "missing.npy"), "no input file"),
    ]
    for path, message in cases:
        assert main(["predict", str(tmp_path / "m.onnx"), path, "-o", str(tmp_path / "y.npy")]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "y.npy").exists()
    assert main(["export", str(tmp_path / "nothere.kan"), "-o", str(tmp_path / "z.onnx")]) == 2
    assert "no checkpoint" in capsys.readouterr().err


def test_onnx_model_helper_batches_and_validates(tmp_path):
    from kanarray.export import OnnxModel

    model, x = _saved_model(tmp_path)
    to_onnx(model, tmp_path / "m.onnx")  # float32
    served = OnnxModel(tmp_path / "m.onnx", provider="cpu")
    assert served.n_inputs == 3 and served.dtype == np.float32
    np.testing.assert_allclose(served(x, batch_size=5), model(x), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match=r"shape \(batch, 3\)"):
        served(np.zeros((4, 2)))
    with pytest.raises(FileNotFoundError):
        OnnxModel(tmp_path / "none.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not a loadable ONNX model"):
        OnnxModel(tmp_path / "junk.onnx")


def test_cuda_provider_when_present(tmp_path):
    from kanarray.export import OnnxModel, available_providers

    if "cuda" not in available_providers():
        pytest.skip("onnxruntime here has no CUDAExecutionProvider")
    model, x = _saved_model(tmp_path)
    to_onnx(model, tmp_path / "m.onnx", dtype="float64")
    served = OnnxModel(tmp_path / "m.onnx", provider="cuda")
    np.testing.assert_allclose(served(x), model(x), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_float32_model_exports_in_both_precisions(dtype):
    """Knots stored in float32 are uniform only to float32 rounding: a float32 graph uses the
    closed form, a float64 graph the exact search; both match."""
    model = ka.KAN([3, 4, 2], grid=7, k=3, seed=5, dtype="float32")  # 2/7 is not a float32 number
    x = np.random.default_rng(5).uniform(-2, 2, (300, 3))
    ref = np.asarray(model(x.astype(np.float32)), dtype=np.float64)
    proto = to_onnx(model, dtype=dtype)
    names = {init.name for init in proto.graph.initializer}
    assert ("l0_inv_h" in names) == (dtype == "float32")
    # SiLU: a float64 h * Sigmoid(h) is fused by onnxruntime 1.30 into QuickGelu, which has no
    # float64 kernel (the session fails to load); float64 graphs use the tanh form
    ops = {node.op_type for node in proto.graph.node}
    assert ("Sigmoid" in ops, "Tanh" in ops) == ((True, False) if dtype == "float32" else (False, True))
    got = _run_ort(proto, x.astype(dtype))
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5 * max(1.0, np.abs(ref).max()))


from hypothesis import given, settings, strategies as st  # noqa: E402


@settings(max_examples=25, deadline=None)
@given(width=st.lists(st.integers(1, 4), min_size=2, max_size=4), G=st.integers(1, 12), k=st.sampled_from([1, 2, 3, 5]),
       seed=st.integers(0, 10_000), jitter=st.booleans(), spread=st.floats(0.5, 4.0))
def test_random_models_match_native_property(width, G, k, seed, jitter, spread):
    model = ka.KAN(width, grid=G, k=k, seed=seed)
    if jitter:
        perturb(model, seed)
    x = np.random.default_rng(seed).uniform(-spread, spread, (64, width[0]))
    _assert_parity(model, x, reference=False)


@pytest.mark.gpu
def test_model_trained_on_cupy_exports(tmp_path):
    cupy = gpu_cupy()
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (200, 2))
    model = ka.KAN([2, 3, 1], grid=5, seed=0, backend="cupy")
    model.fit(cupy.asarray(x), cupy.asarray(np.sin(x[:, :1]) * x[:, 1:]), steps=5, progress=False)
    model.fix_symbolic(1, 0, 0, "tanh", params=(1.0, 0.0, 1.0, 0.0))
    got = _run_ort(to_onnx(model, dtype="float64"), x)
    np.testing.assert_allclose(got, cupy.asnumpy(model(cupy.asarray(x))), rtol=1e-10, atol=1e-10)


def _non_finite_models():
    """Models covering every lookup the graph does: uniform and adapted knots (closed form and
    bin search), k = 0, both continuations, the three base functions, local and dense layers,
    symbolic edges and an input scaling."""
    yield "uniform", ka.KAN([2, 3, 1], grid=5, k=3, seed=0)
    yield "adapted", perturb(ka.KAN([2, 3, 2], grid=6, k=2, seed=1), seed=1)
    yield "k0", perturb(ka.KAN([2, 2], grid=4, k=0, seed=2), seed=2)
    yield "dense", ka.KAN([2, 12], grid=3, k=1, seed=3)
    for base in ("silu", "identity", "zero"):
        yield f"linear-{base}", perturb(ka.KAN([2, 3, 1], grid=5, k=3, seed=4, base_fun=base, extrapolate="linear"))
    symbolic = ka.KAN([2, 2, 1], grid=3, seed=5)
    for i, o, name in [(0, 0, "sqrt"), (1, 1, "log"), (0, 1, "arctanh"), (1, 0, "1/x")]:
        symbolic.fix_symbolic(0, i, o, name, params=(1.0, 0.0, 1.0, 0.0))
    yield "symbolic", symbolic
    scaled = ka.KAN([2, 2], grid=4, seed=6)
    scaled.scale_inputs(np.array([-10.0, 0.0]), np.array([10.0, 5.0]))
    yield "scaled", scaled


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_non_finite_inputs_give_nan_rows_on_every_runtime(dtype):
    """NaN, +inf and -inf anywhere in a row: the native model refuses the row (ValueError); the
    graph, which cannot raise, runs and answers NaN in each of that row's outputs, on
    onnxruntime and on onnx's unpatched ReferenceEvaluator, for every strategy, while the finite
    rows of the same batch keep their values."""
    rng = np.random.default_rng(0)
    for label, model in _non_finite_models():
        x = rng.uniform(-1.5, 1.5, (9, 2))
        bad = [(0, 0, np.nan), (1, 1, np.nan), (2, 0, np.inf), (3, 1, np.inf), (4, 0, -np.inf), (5, 1, -np.inf)]
        for row, col, value in bad:
            x[row, col] = value
        x[6] = [np.nan, np.inf]
        with pytest.raises(ValueError, match="NaN or infinite"):
            model(x)
        finite = np.asarray(model(x[7:]))
        for strategy in ("local", "dense"):
            proto = to_onnx(model, dtype=dtype, strategy=strategy)
            for run in (_run_ort, _run_reference):
                got = run(proto, x.astype(dtype))
                assert np.isnan(got[:7]).all(), f"{label} {strategy} {run.__name__}: {got[:7]}"
                alone = run(proto, x[7:].astype(dtype))
                np.testing.assert_allclose(got[7:], alone, rtol=ulps_of(dtype, 8), atol=ulps_of(dtype, 8), err_msg=label)
                if dtype == "float64":  # float32 parity, near the symbolic singularities too, is tested above
                    np.testing.assert_allclose(got[7:], finite, rtol=1e-10, atol=1e-10, err_msg=f"{label} {strategy}")


def test_overflow_inside_the_graph_gives_nan_not_a_crash():
    """A finite input whose layer output overflows to inf (float32): the next layer's lookups
    stay in their tables, and its outputs are NaN."""
    model = ka.KAN([1, 1, 1], grid=3, k=3, seed=0, base_fun="identity")
    model.layers[0].scale_base[...] = 4.0
    x = np.array([[3e38], [0.5]], dtype=np.float32)
    for run in (_run_ort, _run_reference):
        got = run(to_onnx(model), x)
        assert np.isnan(got[0]).all() and np.isfinite(got[1]).all()


def test_onnx_model_bounds_threads_before_onnxruntime_starts_them(tmp_path):
    from kanarray.export import OnnxModel
    from kanarray.export.serving import THREADS_PER_CPU

    model, x = _saved_model(tmp_path)
    to_onnx(model, tmp_path / "m.onnx")
    limit = THREADS_PER_CPU * (__import__("os").cpu_count() or 1)
    for bad in (10**6, limit + 1, 0, -2, True, 2.5, "4"):
        with pytest.raises(ValueError, match=rf"threads must be an integer from 1 to {limit}"):
            OnnxModel(tmp_path / "m.onnx", threads=bad)
    served = OnnxModel(tmp_path / "m.onnx", threads=1)
    np.testing.assert_allclose(served(x), model(x), rtol=1e-5, atol=1e-5)


def _plain_graph(path, inputs, outputs, nodes):
    """A hand-made graph: inputs, outputs [(name, element type, shape)], nodes as make_node arguments."""
    helper = onnx.helper
    graph = helper.make_graph([helper.make_node(*n) for n in nodes], "plain",
                              [helper.make_tensor_value_info(*v) for v in inputs],
                              [helper.make_tensor_value_info(*v) for v in outputs])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    proto.ir_version = 7
    onnx.save(proto, str(path))
    return str(path)


def test_onnx_model_refuses_graphs_of_another_form_and_serves_plain_ones(tmp_path, capsys):
    """Graphs that are not of a kanarray export's form get a ValueError saying what was expected
    and what the graph has (was an IndexError or an unpacking error); a plain graph of that form
    (one float input (batch, n), one float output (batch, m)) is served, whatever made it."""
    from kanarray.cli import main
    from kanarray.export import OnnxModel

    F, D, I64 = onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.INT64
    cases = {
        "two_inputs": ([("a", F, ["N", 2]), ("b", F, ["N", 2])], [("y", F, ["N", 2])], [("Add", ["a", "b"], ["y"])]),
        "vector": ([("a", F, ["N"])], [("y", F, ["N"])], [("Neg", ["a"], ["y"])]),
        "integers": ([("a", I64, ["N", 2])], [("y", I64, ["N", 2])], [("Neg", ["a"], ["y"])]),
        "two_outputs": ([("a", F, ["N", 2])], [("y", F, ["N", 2]), ("z", F, ["N", 2])],
                        [("Neg", ["a"], ["y"]), ("Abs", ["a"], ["z"])]),
    }
    np.save(tmp_path / "x.npy", np.ones((3, 2)))
    for label, (inputs, outputs, nodes) in cases.items():
        path = _plain_graph(tmp_path / f"{label}.onnx", inputs, outputs, nodes)
        with pytest.raises(ValueError, match=r"not a graph OnnxModel can serve: expected one float32 or float64 "
                                             r"input of shape \(batch, n\).*it has inputs 'a'"):
            OnnxModel(path, provider="cpu")
        assert main(["predict", path, str(tmp_path / "x.npy"), "-o", str(tmp_path / "y.npy")]) == 2
        assert "not a graph OnnxModel can serve" in capsys.readouterr().err
    assert not (tmp_path / "y.npy").exists()
    path = _plain_graph(tmp_path / "plain.onnx", [("features", D, ["N", 3])], [("out", D, ["N", 3])],
                        [("Mul", ["features", "features"], ["out"])])
    served = OnnxModel(path, provider="cpu")
    assert (served.input_name, served.n_inputs, served.dtype) == ("features", 3, np.float64)
    np.testing.assert_array_equal(served(np.arange(6.0).reshape(2, 3)), np.arange(6.0).reshape(2, 3) ** 2)


def test_onnx_model_float32_graph_takes_float64_beyond_its_range_as_nan_rows(tmp_path):
    """1e300 becomes +inf in a float32 graph (no overflow warning from the cast), and the row NaN."""
    from kanarray.export import OnnxModel

    model, x = _saved_model(tmp_path)
    to_onnx(model, tmp_path / "m.onnx")
    x[0, 1], x[1, 0] = 1e300, -1e300
    got = OnnxModel(tmp_path / "m.onnx", provider="cpu")(x)
    assert np.isnan(got[:2]).all()
    np.testing.assert_allclose(got[2:], model(x[2:]), rtol=1e-5, atol=1e-5)
