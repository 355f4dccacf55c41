"""Exported graphs on runtimes other than onnxruntime, at the default opset: onnx's own
ReferenceEvaluator (unpatched), and where installed tract, OpenVINO, onnxsim (the simplified
graph, run on onnxruntime) and onnx2torch.  Each runtime's outputs are compared with
onnxruntime's on the same graph (onnxruntime itself is compared with the native model in
test_export.py), on inputs inside and outside the grids, and rows with NaN or +-inf must come
back as NaN.  A runtime that is not installed is skipped."""

from __future__ import annotations

import functools
import os
import tempfile

import numpy as np
import pytest

import kanarray as ka

from helpers import perturb, pruned_expsin_model, run_onnx_reference, run_ort

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from kanarray.export import default_opset, to_onnx  # noqa: E402


def _symbolic_model():
    """[3, 4, 2] with every first-layer edge symbolic, each a different library function, with
    arguments that stay off their singular points on the test inputs (|x| <= 3): the runtimes'
    float32 kernels differ by rounding, which a pole or a jump would amplify without bound."""
    model = ka.KAN([3, 4, 2], grid=4, seed=7)
    functions = [("sin", 1.0, 0.0), ("cos", 1.0, 0.0), ("tanh", 1.0, 0.0), ("exp", 0.3, 0.0), ("x^2", 0.5, 0.0),
                 ("x^3", 0.3, 0.0), ("sqrt", 0.3, 1.0), ("log", 0.3, 1.0), ("arctan", 1.0, 0.0),
                 ("arcsin", 0.3, 0.0), ("arctanh", 0.3, 0.0), ("1/x", 0.3, 1.0)]
    for (i, o), (name, a, b) in zip([(i, o) for i in range(3) for o in range(4)], functions):
        model.fix_symbolic(0, i, o, name, params=(a, b, 1.3, -0.2))
    model.fix_symbolic(1, 2, 1, "gaussian", params=(1.0, 0.5, 0.7, 0.1))
    return model


MODELS = {
    "spline": lambda: ka.KAN([2, 3, 1], grid=5, k=3, seed=0),
    "fine grid": lambda: ka.KAN([2, 2], grid=60, k=3, seed=1),  # lookup tables longer than 64 entries
    "adapted knots": lambda: perturb(ka.KAN([3, 4, 2], grid=7, k=3, seed=2), seed=2),
    "adapted fine grid": lambda: perturb(ka.KAN([2, 1], grid=70, k=3, seed=9), seed=9),  # the long-row lookups
    "pruned": pruned_expsin_model,
    "symbolic": _symbolic_model,
    "linear continuation": lambda: perturb(ka.KAN([2, 3, 1], grid=5, k=3, seed=3, extrapolate="linear"), seed=3),
    "k = 1": lambda: perturb(ka.KAN([2, 3, 1], grid=6, k=1, seed=4), seed=4),
    "k = 5": lambda: ka.KAN([2, 3, 1], grid=4, k=5, seed=5),
    "wide": lambda: ka.KAN([8, 64], grid=5, k=3, seed=6),  # the dense path: GatherElements and, in float32, Gemm
    "deep": lambda: ka.KAN([2, 3, 3, 3, 3, 1], grid=4, k=3, seed=8),
}


@functools.cache
def _graph(name: str, dtype: str):
    """(proto at the default opset, inputs (rows, n) of ``dtype``, the number of leading rows
    that hold a NaN or an infinity)."""
    model = MODELS[name]()
    rng = np.random.default_rng(0)
    x = rng.uniform(-3, 3, (64, model.width[0]))  # the grids span [-1, 1]: inside and well outside
    bad = np.array([np.nan, np.inf, -np.inf])
    for row in range(3):
        x[row, row % model.width[0]] = bad[row]
    return to_onnx(model, dtype=dtype), x.astype(dtype), 3


def _with_file(proto, run):
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "model.onnx")
        onnx.save(proto, path)
        return run(path)


def _run_tract(proto, x):
    tract = pytest.importorskip("tract")
    model = _with_file(proto, lambda path: tract.onnx().load(path).into_model().into_runnable())
    return model.run([x])[0].to_numpy()


def _run_openvino(proto, x):
    ov = pytest.importorskip("openvino")
    core = ov.Core()
    # without the hint, the CPU plugin runs float32 graphs in bfloat16 on CPUs that have it (errors ~1e-3)
    compiled = _with_file(proto, lambda path: core.compile_model(path, "CPU", {"INFERENCE_PRECISION_HINT": "f32"}))
    return np.asarray(compiled([x])[compiled.output(0)])


def _run_onnxsim(proto, x):
    onnxsim = pytest.importorskip("onnxsim")
    simplified, ok = onnxsim.simplify(proto)
    assert ok, "onnxsim could not validate its simplified graph"
    return run_ort(simplified, x)


def _run_onnx2torch(proto, x):
    onnx2torch = pytest.importorskip("onnx2torch")
    torch = pytest.importorskip("torch")
    module = onnx2torch.convert(proto)
    with torch.no_grad():
        return module(torch.from_numpy(x)).numpy()


RUNTIMES = {"reference": run_onnx_reference, "tract": _run_tract, "openvino": _run_openvino, "onnxsim": _run_onnxsim,
            "onnx2torch": _run_onnx2torch}


def test_default_opset_is_the_lowest_that_covers_the_graph():
    """Every operator of every test graph exists at the default opset with the signature used
    there, and the model declares the IR version that goes with it (older runtimes refuse newer
    ones: onnxruntime-node 1.30 loads no IR 14 / opset 27+)."""
    assert default_opset() == 13
    wanted_ir = onnx.helper.find_min_ir_version_for([onnx.helper.make_opsetid("", 13)])
    for name in MODELS:
        for dtype in ("float32", "float64"):
            proto = _graph(name, dtype)[0]
            assert proto.opset_import[0].version == 13 and proto.ir_version == wanted_ir == 7
            for node in proto.graph.node:
                assert onnx.defs.get_schema(node.op_type, 13).since_version <= 13, node.op_type
    assert to_onnx(ka.KAN([2, 2], grid=3, seed=0), opset=21).opset_import[0].version == 21  # newer on request


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("runtime", sorted(RUNTIMES))
def test_graphs_run_alike_on_other_runtimes(runtime, dtype):
    """Finite rows within 1e-10 (float64) or 1e-4 (float32) of onnxruntime, relative to
    max(1, |y|), and non-finite rows NaN.  OpenVINO runs float64 graphs in float32 (so the
    float32 bound), after saturating infinite float64 inputs to float32's largest number (so
    only its NaN rows are NaN)."""
    run = RUNTIMES[runtime]
    in_float32 = dtype == "float32" or runtime == "openvino"
    for name in MODELS:
        proto, x, n_bad = _graph(name, dtype)
        want = run_ort(proto, x)
        with np.errstate(all="ignore"):  # NaN and inf rows: some runtimes' kernels warn on them
            got = np.asarray(run(proto, x))
        assert got.shape == want.shape, f"{runtime} {name}: shape {got.shape}, expected {want.shape}"
        assert got.dtype == want.dtype or runtime == "openvino", f"{runtime} {name}: dtype {got.dtype}"
        nan_rows = [0] if (runtime == "openvino" and dtype == "float64") else range(n_bad)
        assert np.isnan(got[list(nan_rows)]).all(), f"{runtime} {name} {dtype}: non-finite rows {got[:n_bad]}"
        finite = want[n_bad:]
        err = float(np.abs(got[n_bad:] - finite).max())
        bound = (1e-4 if in_float32 else 1e-10) * max(1.0, float(np.abs(finite).max()))
        assert err <= bound, f"{runtime} {name} {dtype}: max difference {err:.3e} from onnxruntime > {bound:.1e}"
