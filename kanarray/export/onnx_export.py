"""``to_onnx``: a trained KAN as an ONNX graph built with onnx's helper API (no tracing).

Per layer, for inputs h (batch, n):

* spline branch, evaluated locally: each input's knot interval comes from counting the knots
  at or below it (GreaterOrEqual + ReduceSum; inputs off the grid land on an all-zero row,
  exactly as the native B-splines vanish there), then every edge's spline on that interval
  is a degree-k polynomial in f = (x - t_v) / (t_{v+1} - t_v), gathered from a per-edge
  table (the B-spline bases as polynomials, ``backends.numpy.interval_polynomials``,
  contracted with coef * mask * scale_sp on the host) and run through Horner's scheme.  Cost
  per input and output: k + 1 gathers and k multiply-adds, whatever G is;
* base branch: b(h) (SiLU = h * Sigmoid(h)) times mask * scale_base, one MatMul;
* symbolic edges, grouped by function: gather their inputs, c f(a x + b) + d with the
  library function's safe version in standard operators (``symbolic_ops``), scatter into the
  outputs with a 0/1 MatMul;
* plus the bias.  Branches that are all zero (fully masked) are left out.
"""

from __future__ import annotations

import functools
import json
import os
import tempfile

import numpy as np

from .._namespace import to_numpy
from .graph import MIN_OPSET, ExportError, GraphBuilder

__all__ = ["to_onnx", "default_opset"]


def _min_ir_version(onnx, opset: int) -> int:
    return onnx.helper.find_min_ir_version_for([onnx.helper.make_opsetid("", opset)])


def _probe(opset: int, dtype) -> bytes:
    """A graph using every operator the exporter emits, in ``dtype``, at ``opset``."""
    import onnx

    g = GraphBuilder(opset, dtype)
    v = "x"
    ops = ("Abs", "Sign", "Sqrt", "Exp", "Log", "Sin", "Cos", "Tanh", "Sigmoid", "Neg")
    if np.dtype(dtype) == np.float32:  # float64 graphs build these from others (``symbolic_ops``)
        ops += ("Asin", "Acos", "Atan", "Atanh")
    else:
        v = g.op("Cast", g.op("Atan", g.op("Cast", v, to=onnx.TensorProto.FLOAT)), to=onnx.TensorProto.DOUBLE)
    for op in ops:
        v = g.op(op, v)
    v = g.op("Clip", g.op("Min", g.op("Div", g.op("Sub", v, g.const(1.0)), g.const(2.0)), g.const(3.0)),
             g.const(-1.0), g.const(1.0))
    v = g.where(g.op("Less", v, g.const(0.0)), v, g.mul(v, v))
    v = g.where(g.op("Greater", v, g.const(0.5)), v, g.const(0.0))
    count = g.op("Cast", g.op("GreaterOrEqual", v, g.const(0.0)), to=onnx.TensorProto.INT64)
    axis = g.const(np.array([1]), dtype=np.int64)
    idx = g.op("ReduceSum", g.op("Unsqueeze", count, axis), axis, keepdims=0)
    v = g.op("MatMul", g.op("Unsqueeze", g.add(v, g.op("Gather", g.const(np.zeros(4)), idx, axis=0)), axis),
             g.const(np.ones((1, 1))))
    g.nodes.append(onnx.helper.make_node("Identity", [v], ["y"]))
    elem = onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    graph = onnx.helper.make_graph(g.nodes, "probe", [onnx.helper.make_tensor_value_info("x", elem, [3])],
                                   [onnx.helper.make_tensor_value_info("y", elem, [3, 1])], g.initializers)
    proto = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", opset)])
    proto.ir_version = _min_ir_version(onnx, opset)
    return proto.SerializeToString()


@functools.lru_cache(maxsize=None)
def default_opset() -> int:
    """The newest opset that the installed onnx defines and at which the installed onnxruntime
    (if any) has kernels for every operator the exporter emits, in float32 and float64."""
    import onnx

    top = onnx.defs.onnx_opset_version()
    try:
        import onnxruntime as ort
    except ImportError:
        return top
    for opset in range(top, MIN_OPSET - 1, -1):
        try:
            for dtype in ("float32", "float64"):
                ort.InferenceSession(_probe(opset, dtype), providers=["CPUExecutionProvider"])
        except Exception:
            continue
        return opset
    raise ExportError(f"the installed onnxruntime runs no opset >= {MIN_OPSET} with the operators the export needs")


def _spline_tables(layer):
    """Per-edge polynomial tables of a layer's spline branch on the host, float64:
    knots (n, L + 1), table (k + 1 powers, n (L + 2), m), left (n (L + 2),), inv_span (n (L + 2),).
    Row i (L + 2) + r of input i: r = 0 below the grid, r = v + 1 for interval v, r = L + 1 above."""
    from ..backends.numpy import interval_polynomials

    grid = np.asarray(to_numpy(layer.grid), dtype=np.float64)
    n, L1 = grid.shape
    L, k = L1 - 1, layer.k
    weight = np.asarray(to_numpy(layer.coef), dtype=np.float64) * np.asarray(
        to_numpy(layer.mask * layer.scale_sp), dtype=np.float64)[:, :, None]  # (n, m, nb)
    m = weight.shape[1]
    h = np.diff(grid, axis=1)
    step = np.where(h.mean(axis=1) > 0, h.mean(axis=1), 1.0)
    C = interval_polynomials(grid, k, step)[:, :L]  # (n, L, k + 1 powers, k + 1 bases)
    padded = np.concatenate([np.zeros((n, m, k)), weight, np.zeros((n, m, k))], axis=2)  # basis j at j + k
    cols = np.arange(L)[:, None] + np.arange(k + 1)[None, :]  # basis v - k + q sits at v + q
    gathered = padded[:, :, cols]  # (n, m, L, k + 1 bases)
    poly = np.einsum("ivpq,iovq->pivo", C, gathered)  # (k + 1 powers, n, L, m)
    table = np.zeros((k + 1, n, L + 2, m))
    table[:, :, 1 : L + 1] = poly
    left = np.zeros((n, L + 2))
    left[:, 1 : L + 1] = grid[:, :L]
    inv = np.zeros((n, L + 2))
    with np.errstate(divide="ignore"):
        inv[:, 1 : L + 1] = np.where(h > 0, 1.0 / np.where(h > 0, h, 1.0), 0.0)
    return grid, table.reshape(k + 1, n * (L + 2), m), left.reshape(-1), inv.reshape(-1)


def _emit_spline(g: GraphBuilder, layer, h: str, l: int) -> str:
    grid, table, left, inv = _spline_tables(layer)
    n, L1 = grid.shape
    k = layer.k
    knots = g.const(grid[None], f"l{l}_knots")  # (1, n, L + 1)
    axis2 = g.const(np.array([2]), "axis2", dtype=np.int64)
    at_or_above = g.op("GreaterOrEqual", g.op("Unsqueeze", h, axis2), knots)  # (B, n, L + 1)
    count = g.op("ReduceSum", g.op("Cast", at_or_above, to=g.onnx.TensorProto.INT64), axis2, keepdims=0)
    rows = g.op("Add", count, g.const(np.arange(n) * (L1 + 1), f"l{l}_row_offsets", dtype=np.int64),
                hint=f"l{l}_interval")  # (B, n)
    frac = g.mul(g.op("Sub", h, g.op("Gather", g.const(left, f"l{l}_left"), rows, axis=0)),
                 g.op("Gather", g.const(inv, f"l{l}_inv_span"), rows, axis=0), hint=f"l{l}_frac")
    frac3 = g.op("Unsqueeze", frac, axis2)  # (B, n, 1)
    acc = g.op("Gather", g.const(table[k], f"l{l}_poly{k}"), rows, axis=0)  # (B, n, m)
    for p in range(k - 1, -1, -1):
        coef_p = g.op("Gather", g.const(table[p], f"l{l}_poly{p}"), rows, axis=0)
        acc = g.add(g.mul(acc, frac3), coef_p)
    return g.op("ReduceSum", acc, g.const(np.array([1]), "axis1", dtype=np.int64), keepdims=0, hint=f"l{l}_spline")


def _emit_symbolic(g: GraphBuilder, layer, h: str, l: int):
    from .symbolic_ops import EMITTERS

    affine = np.asarray(to_numpy(layer.symbolic.affine), dtype=np.float64)
    groups: dict = {}
    for i, o, name in layer.symbolic.edges():
        groups.setdefault(name, []).append((i, o))
    out = None
    for name, edges in groups.items():
        rows = np.array([i for i, _ in edges], dtype=np.int64)
        scatter = np.zeros((len(edges), layer.out_dim))
        scatter[np.arange(len(edges)), [o for _, o in edges]] = 1.0
        p = np.stack([affine[i, o] for i, o in edges])  # (E, 4)
        safe = name.replace("/", "div").replace("^", "pow").replace("(", "").replace(")", "")
        xg = g.op("Gather", h, g.const(rows, f"l{l}_{safe}_inputs", dtype=np.int64), axis=1)
        z = g.add(g.mul(xg, g.const(p[:, 0], f"l{l}_{safe}_a")), g.const(p[:, 1], f"l{l}_{safe}_b"))
        fz = EMITTERS[name](g, z)
        val = g.add(g.mul(fz, g.const(p[:, 2], f"l{l}_{safe}_c")), g.const(p[:, 3], f"l{l}_{safe}_d"))
        part = g.op("MatMul", val, g.const(scatter, f"l{l}_{safe}_scatter"))
        out = part if out is None else g.add(out, part)
    return out


def _emit_layer(g: GraphBuilder, layer, h: str, l: int) -> str:
    mask = np.asarray(to_numpy(layer.mask), dtype=np.float64)
    terms = []
    weight = np.asarray(to_numpy(layer.coef), dtype=np.float64) * (
        mask * np.asarray(to_numpy(layer.scale_sp), dtype=np.float64))[:, :, None]
    if np.any(weight != 0):
        terms.append(_emit_spline(g, layer, h, l))
    base_w = mask * np.asarray(to_numpy(layer.scale_base), dtype=np.float64)
    if layer.base_fun != "zero" and np.any(base_w != 0):
        b = h if layer.base_fun == "identity" else g.mul(h, g.op("Sigmoid", h), hint=f"l{l}_silu")
        terms.append(g.op("MatMul", b, g.const(base_w, f"l{l}_base_weight"), hint=f"l{l}_base"))
    y = g.const(np.asarray(to_numpy(layer.bias), dtype=np.float64)[None, :], f"l{l}_bias")  # (1, m)
    for t in terms:
        y = g.add(t, y)
    if not terms:  # only a bias: broadcast it to (B, m)
        y = g.add(g.op("MatMul", h, g.const(np.zeros((layer.in_dim, layer.out_dim)), f"l{l}_zero")), y)
    if layer.symbolic.active:
        y = g.add(y, _emit_symbolic(g, layer, h, l), hint=f"l{l}_out")
    return y


def _check_exportable(model) -> None:
    from .symbolic_ops import EMITTERS

    missing = [(l, i, o, name) for l, layer in enumerate(model.layers) for i, o, name in layer.symbolic.edges()
               if name not in EMITTERS]
    if missing:
        raise ExportError(
            f"symbolic edges {missing} (layer, input, output, function) use functions with no ONNX form; "
            "give them one with kanarray.export.register_onnx(name, emitter)"
        )
    for l, layer in enumerate(model.layers):
        if layer.base_fun not in ("silu", "identity", "zero"):  # pragma: no cover - no other base exists yet
            raise ExportError(f"layer {l}: base function {layer.base_fun!r} has no ONNX form")


def _metadata(model) -> dict:
    from .. import __version__

    ranges = [[float(np.min(to_numpy(layer.grid))), float(np.max(to_numpy(layer.grid)))] for layer in model.layers]
    seen = None
    if model._samples is not None:
        s = np.asarray(to_numpy(model._samples), dtype=np.float64)
        seen = [[float(lo), float(hi)] for lo, hi in zip(s.min(axis=0), s.max(axis=0))]
    return {
        "kanarray_version": __version__,
        "width": json.dumps(model.width),
        "grid": json.dumps(model.grid),
        "k": json.dumps(model.k),
        "grid_ranges": json.dumps(ranges),
        "training_input_range": json.dumps(seen),
        "symbolic_edges": json.dumps([[list(e) for e in layer.symbolic.edges()] for layer in model.layers]),
    }


def to_onnx(model, path=None, *, opset: int | None = None, dtype: str | None = None, input_name: str = "x",
            output_name: str = "y"):
    """The ONNX graph of ``model`` (an ``onnx.ModelProto``); also written to ``path`` if given
    (atomically: a temporary file renamed into place, no partial file on failure).

    opset: default the newest that the installed onnx and onnxruntime both support (at least
    13).  dtype: "float32" (default) or "float64".  Input ``input_name`` (batch, width[0]),
    output ``output_name`` (batch, width[-1]), batch dynamic.  Raises ``ExportError`` (a
    ValueError) naming what cannot be exported.
    """
    try:
        import onnx
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("to_onnx needs onnx: pip install 'kanarray[onnx]'") from exc
    dtype = "float32" if dtype is None else str(dtype)
    if dtype not in ("float32", "float64"):
        raise ExportError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    if opset is None:
        opset = default_opset()
    elif isinstance(opset, bool) or not isinstance(opset, int):
        raise ExportError(f"opset must be an integer, got {opset!r}")
    elif opset < MIN_OPSET:
        raise ExportError(f"opset {opset} is too old: the exported graph needs opset >= {MIN_OPSET}")
    elif opset > onnx.defs.onnx_opset_version():
        raise ExportError(f"opset {opset} is newer than the installed onnx supports "
                          f"({onnx.defs.onnx_opset_version()})")
    for label, name in (("input_name", input_name), ("output_name", output_name)):
        if not isinstance(name, str) or not name:
            raise ExportError(f"{label} must be a non-empty string, got {name!r}")
    if input_name == output_name:
        raise ExportError("input_name and output_name must differ")
    _check_exportable(model)

    g = GraphBuilder(opset, dtype)
    g.name(input_name)
    g.name(output_name)
    h = input_name
    for l, layer in enumerate(model.layers):
        h = _emit_layer(g, layer, h, l)
    g.nodes.append(onnx.helper.make_node("Identity", [h], [output_name], name=g.name("n_output")))
    elem = onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    graph = onnx.helper.make_graph(
        g.nodes, "kanarray_kan",
        [onnx.helper.make_tensor_value_info(input_name, elem, ["batch", model.width[0]])],
        [onnx.helper.make_tensor_value_info(output_name, elem, ["batch", model.width[-1]])],
        g.initializers,
    )
    proto = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", opset)],
                                   producer_name="kanarray")
    proto.ir_version = _min_ir_version(onnx, opset)
    from .. import __version__

    proto.producer_version = __version__
    onnx.helper.set_model_props(proto, _metadata(model))
    onnx.checker.check_model(proto, full_check=True)
    if path is not None:
        _write_atomically(proto.SerializeToString(), os.fspath(path))
    return proto


def _write_atomically(data: bytes, path: str) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".kanarray-", suffix=".onnx.tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
