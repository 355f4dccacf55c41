"""onnxruntime latency of exported KANs, next to kanarray's NumPy forward and a dense
Cox-de Boor ONNX graph of the same model.

    python benchmarks/onnx_bench.py [--repeats 30] [--cases toy,mnist,fine,deep] [--batches 1,4096]
                                    [--nonuniform] [--strategy auto|local|dense] [--json PATH]

The cases are the core issue's (``common.CASES``: shapes, G, dtype; k = 3; uniform knots,
or with ``--nonuniform`` jittered like a grid update leaves them).  Three ways to compute
the same forward pass:

* ``numpy``: ``model(x)`` (kanarray's NumPy backend);
* ``onnx``: ``kanarray.export.to_onnx(model)`` on onnxruntime's CPU provider;
* ``dense``: the baseline graph built here -- every basis of every input by the Cox-de Boor
  recursion on the whole knot vector (degree-0 indicators, then k rounds of Slice / Mul /
  Add), reshaped to (batch, n * (G + k)) and one MatMul with the coefficients.

Times are medians (ms) of interleaved calls (``common.interleaved_medians``).  Neither
runtime's idle threads spin, so that neither steals the cores from the other between calls:
each onnxruntime session uses its default threads (all cores) with spinning off, and
OpenBLAS (NumPy's BLAS) gets ``OPENBLAS_THREAD_TIMEOUT=4`` (set here, before NumPy loads,
unless already set).  By default OpenBLAS's worker busy-waits about 2^28 cycles (~0.1 s)
after every GEMM, which slowed the onnxruntime calls that followed a NumPy call by up to 2x
on this 2-core machine.  The outputs of the three are checked against each other before
timing.  Prints a markdown table with the ratios numpy / onnx and dense / onnx; ``--json PATH``
also writes the medians and the errors there (``common.write_json``; read by compare_versions.py).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys

os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")  # before NumPy loads OpenBLAS: see the docstring

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import kanarray as ka  # noqa: E402
from common import CASES, interleaved_medians, jittered_grids, write_json  # noqa: E402
from kanarray.export import default_opset, to_onnx  # noqa: E402


def build_model(case, nonuniform=False):
    model = ka.KAN(case["width"], grid=case["grid"], k=3, seed=0, dtype=case["dtype"])
    if nonuniform:
        for layer, grid in zip(model.layers, jittered_grids(case)):
            layer.grid[...] = grid
    return model


def dense_baseline(model, dtype):
    """The straightforward graph: all bases by Cox-de Boor over the whole knot vector, then MatMul."""
    import onnx
    from onnx import helper, numpy_helper

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


def session(proto):
    """A CPU session whose idle threads do not spin: the calls interleave with NumPy's BLAS
    threads on the same cores, and spinning ORT workers would take their time."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--batches", default="1,4096")
    parser.add_argument("--nonuniform", action="store_true", help="jitter the knots as a grid update would")
    parser.add_argument("--strategy", default="auto", choices=["auto", "local", "dense"])
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the medians to PATH as JSON")
    args = parser.parse_args(argv)
    import onnxruntime as ort

    print(f"# onnx_bench: {platform.node()}, {os.cpu_count()} cpus, python {platform.python_version()}, "
          f"numpy {np.__version__}, onnxruntime {ort.__version__}, opset {default_opset()}, "
          f"OPENBLAS_THREAD_TIMEOUT={os.environ['OPENBLAS_THREAD_TIMEOUT']}")
    print()
    print("| case | batch | numpy ms | onnx ms | dense baseline ms | numpy / onnx | dense / onnx |")
    print("|---|---|---|---|---|---|---|")
    times, values = {}, {}
    for name in args.cases.split(","):
        case = CASES[name]
        model = build_model(case, args.nonuniform)
        dtype = case["dtype"]
        ours = session(to_onnx(model, dtype=dtype, strategy=args.strategy))
        dense = session(dense_baseline(model, dtype))
        rng = np.random.default_rng(0)
        for batch in (int(b) for b in args.batches.split(",")):
            x = rng.uniform(-1, 1, (batch, case["width"][0])).astype(dtype)
            ref = np.asarray(model(x), dtype=np.float64)
            tol = 1e-4 if dtype == "float32" else 1e-9
            for label, s in (("onnx", ours), ("dense", dense)):
                got = s.run(None, {"x": x})[0]
                err = np.abs(got - ref).max() / max(1.0, np.abs(ref).max())
                assert err < tol, f"{name} batch {batch}: {label} differs from numpy by {err:.2e}"
                values[f"{name} batch {batch} {label} error"] = float(err)
            ops = {"numpy": lambda: model(x), "onnx": lambda: ours.run(None, {"x": x}),
                   "dense": lambda: dense.run(None, {"x": x})}
            t = interleaved_medians(ops, args.repeats)
            print(f"| {name} {case['width']} G={case['grid']} {dtype} | {batch} | {t['numpy']:.3f} | {t['onnx']:.3f} | "
                  f"{t['dense']:.3f} | {t['numpy'] / t['onnx']:.2f}x | {t['dense'] / t['onnx']:.1f}x |", flush=True)
            times.update({f"{name} batch {batch} {label}": t[op] for op, label in
                          (("numpy", "numpy"), ("onnx", "onnx"), ("dense", "dense baseline"))})
    write_json(args.json, "onnx_bench", times, values=values)


if __name__ == "__main__":
    main()
