"""onnxruntime latency of exported KANs, next to kanarray's NumPy forward and a dense
Cox-de Boor ONNX graph of the same model, each timed alone in a fresh process.

    python benchmarks/onnx_bench.py [--repeats 30] [--rounds 3] [--cases toy,mnist,fine,deep]
                                    [--batches 1,4096] [--nonuniform] [--strategy auto|local|dense] [--json PATH]

The cases are the core issue's (``common.CASES``: shapes, G, dtype; k = 3; uniform knots,
or with ``--nonuniform`` jittered like a grid update leaves them).  Three ways to compute
the same forward pass:

* ``numpy``: ``model(x)`` (kanarray's NumPy backend);
* ``onnx``: ``kanarray.export.to_onnx(model)`` on onnxruntime's CPU provider;
* ``dense``: the baseline graph built here -- every basis of every input by the Cox-de Boor
  recursion on the whole knot vector (degree-0 indicators, then k rounds of Slice / Mul /
  Add), reshaped to (batch, n * (G + k)) and one MatMul with the coefficients.

Method: for each case, the parent builds the model, its two ONNX graphs and the inputs (one
per batch size), checks that the three outputs agree (in this process, which has both
runtimes), and writes the model (``KAN.save``), the graphs, the inputs and the reference
outputs to a temp dir.  Then, over ``--rounds`` rounds, it runs this script once per way in
worker mode (``--worker numpy|onnx|dense``), each worker alone in a fresh process
(``common.run_alone``), in an order rotated by one each round (``common.alternate``).  A
worker loads its model or graph (an onnxruntime session with its default options), checks
its output against the reference again, and times every batch size with
``common.interleaved_medians`` (median ms of ``--repeats`` samples).  One runtime per process
because each keeps threads busy after a call (OpenBLAS's spin for about 0.1 s after every
GEMM) that slow the other's calls that follow on a small machine; no thread setting is
changed.  The table gives the median over rounds of each worker's median, and the ratios
numpy / onnx and dense / onnx of those; ``--json PATH`` also writes the medians and the
parent's cross-check errors there (``common.write_json``; read by compare_versions.py).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile

import numpy as np
from common import (
    CASES,
    alternate,
    fmt,
    interleaved_medians,
    jittered_grids,
    kanarray_root,
    median_of,
    ratio,
    run_alone,
    worker_output,
    write_json,
)

sys.path.insert(0, kanarray_root())

WAYS = ("numpy", "onnx", "dense")


def build_model(case, nonuniform=False):
    import kanarray as ka

    model = ka.KAN(case["width"], grid=case["grid"], k=3, seed=0, dtype=case["dtype"])
    if nonuniform:
        for layer, grid in zip(model.layers, jittered_grids(case)):
            layer.grid[...] = grid
    return model


def dense_baseline(model, dtype):
    """The straightforward graph: all bases by Cox-de Boor over the whole knot vector, then MatMul."""
    import onnx
    from onnx import helper, numpy_helper

    from kanarray.export import default_opset

    nodes, inits = [], []
    counter = [0]

    def const(a, dt=dtype):
        counter[0] += 1
        name = f"c{counter[0]}"
        inits.append(numpy_helper.from_array(np.ascontiguousarray(np.asarray(a, dtype=dt)), name))
        return name

    def node(op, *inputs, **attrs):
        counter[0] += 1
        out = f"v{counter[0]}"
        nodes.append(helper.make_node(op, list(inputs), [out], **attrs))
        return out

    def sl(x, start, end):
        return node("Slice", x, const([start], np.int64), const([end], np.int64), const([2], np.int64))

    h = "x"
    for layer in model.layers:
        grid = np.asarray(layer.grid, dtype=np.float64)
        n, L1 = grid.shape
        k = layer.k
        nb = L1 - 1 - k
        xu = node("Unsqueeze", h, const([2], np.int64))  # (B, n, 1)
        lo, hi = const(grid[None, :, :-1]), const(grid[None, :, 1:])
        b = node("Cast", node("And", node("GreaterOrEqual", xu, lo), node("Less", xu, hi)),
                 to=helper.np_dtype_to_tensor_dtype(np.dtype(dtype)))  # (B, n, L)
        for d in range(1, k + 1):
            cnt = L1 - 1 - d  # bases of degree d
            t = grid
            with np.errstate(divide="ignore"):
                left_den = t[:, d:d + cnt] - t[:, :cnt]
                right_den = t[:, d + 1:d + 1 + cnt] - t[:, 1:1 + cnt]
                inv_l = np.where(left_den > 0, 1 / np.where(left_den > 0, left_den, 1), 0)
                inv_r = np.where(right_den > 0, 1 / np.where(right_den > 0, right_den, 1), 0)
            left = node("Mul", node("Mul", node("Sub", xu, const(t[None, :, :cnt])), const(inv_l[None])),
                        sl(b, 0, cnt))
            right = node("Mul", node("Mul", node("Sub", const(t[None, :, d + 1:d + 1 + cnt]), xu),
                                     const(inv_r[None])), sl(b, 1, 1 + cnt))
            b = node("Add", left, right)
        flat = node("Reshape", b, const([0, n * nb], np.int64))
        weight = (np.asarray(layer.coef, np.float64) * np.asarray(layer.mask * layer.scale_sp, np.float64)[:, :, None])
        spline = node("MatMul", flat, const(weight.transpose(0, 2, 1).reshape(n * nb, -1)))
        silu = node("Mul", h, node("Sigmoid", h))
        base = node("MatMul", silu, const(np.asarray(layer.mask * layer.scale_base, np.float64)))
        h = node("Add", node("Add", spline, base), const(np.asarray(layer.bias, np.float64)))
    nodes.append(helper.make_node("Identity", [h], ["y"]))
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    graph = helper.make_graph(nodes, "dense_baseline",
                              [helper.make_tensor_value_info("x", elem, ["batch", model.width[0]])],
                              [helper.make_tensor_value_info("y", elem, ["batch", model.width[-1]])], inits)
    opset = default_opset()
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    proto.ir_version = helper.find_min_ir_version_for([helper.make_opsetid("", opset)])
    onnx.checker.check_model(proto)
    return proto


def tolerance(dtype) -> float:
    return 1e-4 if dtype == "float32" else 1e-9


def relative_error(got, ref) -> float:
    return float(np.abs(np.asarray(got, dtype=np.float64) - ref).max() / max(1.0, np.abs(ref).max()))


def worker(way, name, folder, batches, repeats):
    """In a worker process: {batch: median ms, "{batch} error": vs the reference} for one way."""
    inputs = {b: np.load(os.path.join(folder, f"{name}-x{b}.npy")) for b in batches}
    got = {}
    if way == "numpy":
        import kanarray as ka

        model = ka.load(os.path.join(folder, f"{name}.kan"))
        calls = {b: (lambda x=x: model(x)) for b, x in inputs.items()}
        got["package"] = ka.__file__
    else:
        import onnxruntime as ort

        sess = ort.InferenceSession(os.path.join(folder, f"{name}-{way}.onnx"), providers=["CPUExecutionProvider"])
        calls = {b: (lambda x=x: sess.run(None, {"x": x})[0]) for b, x in inputs.items()}
    for b, call in calls.items():
        got[f"{b} error"] = relative_error(call(), np.load(os.path.join(folder, f"{name}-ref{b}.npy")))
    got.update({str(b): ms for b, ms in interleaved_medians(calls, repeats).items()})
    return got


def prepare(name, case, folder, batches, nonuniform, strategy):
    """Build, cross-check and write to ``folder`` the case's model, graphs, inputs and outputs;
    returns {"{name} batch {b} {onnx|dense} error": relative error vs numpy}."""
    import onnxruntime as ort

    from kanarray.export import to_onnx

    model = build_model(case, nonuniform)
    dtype = case["dtype"]
    graphs = {"onnx": to_onnx(model, dtype=dtype, strategy=strategy), "dense": dense_baseline(model, dtype)}
    sessions = {}
    for way, proto in graphs.items():
        path = os.path.join(folder, f"{name}-{way}.onnx")
        with open(path, "wb") as f:
            f.write(proto.SerializeToString())
        sessions[way] = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    model.save(os.path.join(folder, f"{name}.kan"))
    rng = np.random.default_rng(0)
    errors = {}
    for batch in batches:
        x = rng.uniform(-1, 1, (batch, case["width"][0])).astype(dtype)
        ref = np.asarray(model(x), dtype=np.float64)
        np.save(os.path.join(folder, f"{name}-x{batch}.npy"), x)
        np.save(os.path.join(folder, f"{name}-ref{batch}.npy"), ref)
        for way, s in sessions.items():
            err = relative_error(s.run(None, {"x": x})[0], ref)
            assert err < tolerance(dtype), f"{name} batch {batch}: {way} differs from numpy by {err:.2e}"
            errors[f"{name} batch {batch} {way} error"] = err
    return errors


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30, help="samples per batch size in each worker")
    parser.add_argument("--rounds", type=int, default=3, help="fresh processes per way and case")
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--batches", default="1,4096")
    parser.add_argument("--nonuniform", action="store_true", help="jitter the knots as a grid update would")
    parser.add_argument("--strategy", default="auto", choices=["auto", "local", "dense"])
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the medians to PATH as JSON")
    parser.add_argument("--worker", default=None, choices=WAYS, help=argparse.SUPPRESS)
    parser.add_argument("--dir", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    batches = [int(b) for b in args.batches.split(",")]
    if args.worker:
        worker_output(worker(args.worker, args.cases, args.dir, batches, args.repeats))
        return
    import onnxruntime as ort

    from kanarray.export import default_opset

    print(f"# onnx_bench: {platform.node()}, {os.cpu_count()} cpus, python {platform.python_version()}, "
          f"numpy {np.__version__}, onnxruntime {ort.__version__}, opset {default_opset()}; each way alone in a "
          f"fresh process, median over {args.rounds} round(s) of each process's median of {args.repeats}")
    print()
    print("| case | batch | numpy ms | onnx ms | dense baseline ms | numpy / onnx | dense / onnx |")
    print("|---|---|---|---|---|---|---|", flush=True)
    script = os.path.abspath(__file__)
    times, values, rows = {}, {}, []
    with tempfile.TemporaryDirectory() as folder:
        for name in args.cases.split(","):
            case = CASES[name]
            dtype = case["dtype"]
            values.update(prepare(name, case, folder, batches, args.nonuniform, args.strategy))
            options = ["--cases", name, "--dir", folder, "--batches", args.batches, "--repeats", str(args.repeats)]
            runs = alternate(list(WAYS), args.rounds, lambda way, r: run_alone(script, ["--worker", way, *options]))
            for way, got in runs.items():
                for r in got:
                    for batch in batches:
                        err = r.get(f"{batch} error")
                        assert err is None or err < tolerance(dtype), \
                            f"{name} batch {batch}: the {way} worker's output differs by {err:.2e}"
            for batch in batches:
                t = {way: median_of(runs[way], str(batch)) for way in WAYS}
                print(f"| {name} {case['width']} G={case['grid']} {dtype} | {batch} | {fmt(t['numpy'], '.3f')} "
                      f"| {fmt(t['onnx'], '.3f')} | {fmt(t['dense'], '.3f')} "
                      f"| {fmt(ratio(t['numpy'], t['onnx']), '.2f', 'x')} "
                      f"| {fmt(ratio(t['dense'], t['onnx']), '.1f', 'x')} |", flush=True)
                for way, label in (("numpy", "numpy"), ("onnx", "onnx"), ("dense", "dense baseline")):
                    if np.isfinite(t[way]):
                        times[f"{name} batch {batch} {label}"] = t[way]
                rows.append({"case": name, "batch": batch, **t,
                             "rounds": {way: [r.get(str(batch), r.get("failed")) for r in runs[way]] for way in WAYS}})
    write_json(args.json, "onnx_bench", times, values=values, rows=rows)


if __name__ == "__main__":
    main()
