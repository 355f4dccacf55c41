"""``to_onnx``: a trained KAN as an ONNX graph built with onnx's helper API (no tracing).

Per layer, for inputs h (batch, n):

* spline branch, evaluated locally.  Each input's knot interval comes from a closed form on
  uniform rows (floor((x - t0) / h)) or from a bin lookup plus a comparison or two
  (``_bins``); inputs off the grid land on all-zero table rows, exactly as the native
  B-splines vanish there.  On its interval every basis, and so every edge's spline, is a
  degree-k polynomial in f = (x - t_v) / (t_{v+1} - t_v) (``spline.interval_polynomials``,
  contracted with coef * mask * scale_sp on the host).  Two ways to finish, chosen per layer
  by shape (``_dense_is_cheaper``): gather every edge's k + 1 coefficients and run Horner's
  scheme (cost per input and output independent of G), or compute each input's k + 1
  non-zero bases (one Gemm on uniform rows, where they are the same polynomials everywhere),
  put them in place in the (batch, n (G + k)) basis matrix with one GatherElements, and
  contract with one MatMul;
* base branch: b(h) (SiLU = h * Sigmoid(h); in float64 h * (1/2 + tanh(h/2)/2), see
  ``_emit_silu``) times mask * scale_base, one MatMul;
* symbolic edges, grouped by function: gather their inputs, c f(a x + b) + d with the
  library function's safe version in standard operators (``symbolic_ops``), scatter into the
  outputs with a 0/1 MatMul;
* plus the bias.  Branches that are all zero (fully masked) are left out;
* then, in a layer with a node stage (multiplication nodes, ``kanarray.nodes``), the sums'
  affine map, a Gather per factor and Mul per product, a Concat and the nodes' affine map.

A model with an input scaling (``KAN.scale_inputs``) maps the graph input first,
(x - shift) * scale (a Sub and a Mul in the graph's dtype), so the graph takes raw inputs.
"""

from __future__ import annotations

import json

import numpy as np

from .._atomic import atomic_write
from .._namespace import to_numpy
from .graph import MIN_OPSET, ExportError, GraphBuilder

__all__ = ["to_onnx", "default_opset"]


def default_opset() -> int:
    """The opset of exported graphs unless ``to_onnx(opset=...)`` asks for a newer one: the
    lowest that defines every operator the exporter emits with the signature it uses
    (``graph.OP_SINCE``), 13, whose IR version (7) the older runtimes (onnxruntime-node,
    onnx2torch, tract, OpenVINO) load."""
    return MIN_OPSET


def _spline_tables(layer):
    """What a layer's spline branch needs on the host, float64: knots (n, L + 1), C (n, L, k + 1
    powers, k + 1 bases) the bases of each interval as polynomials in its fraction, left and
    inv_span (n (L + 2),), and the weight (n, m, nb).  Row i (L + 2) + r of input i in the tables
    below and in left / inv_span: r = 0 below the grid, r = v + 1 for interval v, r = L + 1 at or
    above the last knot (zero rows: the B-splines vanish off the grid)."""
    from ..spline import interval_polynomials

    grid = np.asarray(to_numpy(layer.grid), dtype=np.float64)
    n, L1 = grid.shape
    L, k = L1 - 1, layer.k
    weight = np.asarray(to_numpy(layer.coef), dtype=np.float64) * np.asarray(
        to_numpy(layer.mask * layer.scale_sp), dtype=np.float64)[:, :, None]  # (n, m, nb)
    h = np.diff(grid, axis=1)
    step = np.where(h.mean(axis=1) > 0, h.mean(axis=1), 1.0)
    C = interval_polynomials(grid, k, step)[:, :L]
    left = np.zeros((n, L + 2))
    left[:, 1 : L + 1] = grid[:, :L]
    inv = np.zeros((n, L + 2))
    with np.errstate(divide="ignore"):
        inv[:, 1 : L + 1] = np.where(h > 0, 1.0 / np.where(h > 0, h, 1.0), 0.0)
    return grid, C, left.reshape(-1), inv.reshape(-1), weight


def _local_table(C) -> np.ndarray:
    """(k + 1 powers, n (L + 2), k + 2): the k + 1 non-zero bases of each row's interval and a zero column."""
    n, L, k1, _ = C.shape
    table = np.zeros((k1, n, L + 2, k1 + 1))
    table[:, :, 1 : L + 1, :k1] = C.transpose(2, 0, 1, 3)
    return table.reshape(k1, n * (L + 2), k1 + 1)


def _edge_table(C, weight) -> np.ndarray:
    """(k + 1 powers, n (L + 2), m): every edge's polynomial on each row's interval."""
    n, L, k1, _ = C.shape
    k, m = k1 - 1, weight.shape[1]
    cols = np.arange(L)[:, None] + np.arange(k1)[None, :]  # basis v - k + q sits at v + q (k-padded)
    padded = np.concatenate([np.zeros((n, m, k)), weight, np.zeros((n, m, k))], axis=2)
    table = np.zeros((k1, n, L + 2, m))
    table[:, :, 1 : L + 1] = np.einsum("ivpq,iovq->pivo", C, padded[:, :, cols])
    return table.reshape(k1, n * (L + 2), m)


def _bins(grid):
    """A lookup that finds r = #{knots <= x} in O(1): the row's range cut into equal bins;
    ``base[c]`` counts the knots safely below bin c's start, and ``reach`` bounds how many more
    knots can lie at or below any x of the bin (margins absorb the rounding of the bin index).
    Returns (n_bins, inv_width (n,), base (n, n_bins) int64, reach, padded knots (n, L + 1 + reach))."""
    n, L1 = grid.shape
    span = grid[:, -1] - grid[:, 0]
    span = np.where(span > 0, span, 1.0)
    best = None
    for n_bins in (L1, 4 * L1, 16 * L1, 64 * L1):
        width = span / n_bins
        starts = grid[:, :1] + width[:, None] * np.arange(n_bins)
        margin = 1e-3 * width[:, None]
        base = np.stack([np.searchsorted(grid[i], starts[i] - margin[i], side="right") for i in range(n)])
        top = np.stack([np.searchsorted(grid[i], starts[i] + width[i] + margin[i], side="right") for i in range(n)])
        reach = int(np.max(top - base))
        if best is None or reach < best[3]:
            best = (n_bins, 1.0 / span * n_bins, base, reach)
        if reach <= 2:
            break
    n_bins, inv_width, base, reach = best
    padded = np.concatenate([grid, np.full((n, reach), np.inf)], axis=1)
    return n_bins, inv_width, base.astype(np.int64), reach, padded


def _uniform_rows(grid, dtype):
    """(first knots, 1 / spacing) if every row's knots are equally spaced to within the rounding
    of the graph's dtype (4 ulps of the largest knot), else None.  Knots stored in float32 are
    uniform for a float32 graph but not for a float64 one, which then takes the exact search."""
    L = grid.shape[1] - 1
    step = (grid[:, -1] - grid[:, 0]) / L
    if not np.all(step > 0):
        return None
    straight = grid[:, :1] + step[:, None] * np.arange(L + 1)
    tol = 4 * np.finfo(dtype).eps * max(1.0, float(np.max(np.abs(grid))))
    if np.max(np.abs(grid - straight)) > tol:
        return None
    return grid[:, 0], 1.0 / step


def _locate(g: GraphBuilder, h: str, grid, l: int, left, inv, k: int):
    """(r, f, uniform): r (B, n) int64 the count of knots at or below x (0 below the grid, L + 1
    at or above its last knot), the row of each input's tables (``_local_table``,
    ``_edge_table``, left / inv_span), f (B, n) the fraction of the interval, and whether the
    closed form for uniform rows was used: r = floor((x - t0) / h) + 1 clipped to [0, L + 1],
    f = its fractional part; otherwise ``_search``.  (For k = 0, whose splines jump at the
    knots, an input within rounding of an interior knot may land on either side, as in any
    floating-point evaluation.)"""
    onnx = g.onnx
    n, L1 = grid.shape
    L = L1 - 1
    uniform = _uniform_rows(grid, g.dtype)
    if uniform is not None:
        t0, inv_h = uniform
        pos = g.op("Clip", g.mul(g.op("Sub", h, g.const(t0, f"l{l}_first_knot")), g.const(inv_h, f"l{l}_inv_h")),
                   g.const(-1.0), g.const(float(L)), hint=f"l{l}_position")
        whole = g.op("Floor", pos)
        if k == 0:  # at the last knot (tL - t0) / h may round below L; only k = 0 splines jump there
            whole = g.where(g.op("GreaterOrEqual", h, g.const(grid[:, -1], f"l{l}_last_knot")), g.const(float(L)),
                            whole)
        count = _clamped(g, g.add(g.op("Cast", whole, to=onnx.TensorProto.INT64), g.const(np.array(1), dtype=np.int64)),
                         L + 1, hint=f"l{l}_count")
        return count, g.op("Sub", pos, whole, hint=f"l{l}_frac"), True
    count = _search(g, h, grid, l)
    frac = g.mul(g.op("Sub", h, _lookup(g, left.reshape(n, L + 2), count, f"l{l}_left")),
                 _lookup(g, inv.reshape(n, L + 2), count, f"l{l}_inv_span"), hint=f"l{l}_frac")
    return count, frac, False


def _search(g: GraphBuilder, h: str, grid, l: int):
    """r (B, n) = #{knots <= x}, 0 below the grid and L + 1 at or above its last knot, through
    the bins of ``_bins``.  Off the grid no test is needed: the clipped bin is the first or the
    last, whose counts come out as 0 and L + 1."""
    onnx = g.onnx
    L = grid.shape[1] - 1
    n_bins, inv_width, base, reach, padded = _bins(grid)
    pos = g.mul(g.op("Sub", h, g.const(grid[:, 0], f"l{l}_first_knot")), g.const(inv_width, f"l{l}_inv_bin_width"))
    bin_ = _clamped(g, g.op("Cast", g.op("Floor", g.op("Clip", pos, g.const(0.0), g.const(float(n_bins - 1)))),
                            to=onnx.TensorProto.INT64), n_bins - 1)
    start = _lookup(g, base, bin_, f"l{l}_bin_base")  # (B, n)
    knots = np.where(np.isinf(padded), np.finfo(g.dtype).max, padded)
    r = start
    for q in range(reach):
        at = start if q == 0 else g.add(start, g.const(np.array(q), dtype=np.int64))
        r = g.add(r, g.op("Cast", g.op("GreaterOrEqual", h, _lookup(g, knots, at, f"l{l}_knots")),
                          to=onnx.TensorProto.INT64))
    # the padding knots are the dtype's largest finite number, which x = +inf (or that number) reaches
    return _clamped(g, r, L + 1, hint=f"l{l}_count")


def _clamped(g: GraphBuilder, index: str, hi: int, hint: str | None = None) -> str:
    """An int64 index clipped to [0, hi].  The float it was cast from was clipped into range
    already, except NaN, whose cast to int64 the ONNX standard leaves undefined (INT64_MIN on
    x86): the clip keeps every lookup of a NaN input in its table, and the NaN itself reaches
    the output through the fraction f and the layer's ``_poison``."""
    return g.op("Clip", index, g.const(np.array(0), dtype=np.int64), g.const(np.array(hi), dtype=np.int64), hint=hint)


# onnx's ReferenceEvaluator runs GatherElements through np.choose, which takes at most 64 choices
SHORT_TABLE = 64


def _lookup(g: GraphBuilder, table, index: str, hint: str) -> str:
    """table[i, index[b, i]] (B, n) for a host table (n, R) (float, or int64) and an int64 index
    (B, n) in [0, R), by GatherElements along axes of at most ``SHORT_TABLE`` entries, which
    onnxruntime runs several times faster than a Gather of scalars, and which onnx's
    ReferenceEvaluator runs (its np.choose takes at most 64 choices).  Short rows: one
    GatherElements on the table transposed to (R, n).  Longer rows, cut into C chunks of S
    entries (index = S c + j): the entries j of every chunk, (B, C, n), then chunk c of those
    (``_chunked_index``).  Rows beyond 64 chunks (R > 4096): a Gather on the flattened table."""
    n, R = table.shape
    dtype = np.int64 if table.dtype.kind == "i" else None
    if R <= SHORT_TABLE:
        return g.op("GatherElements", g.const(np.ascontiguousarray(table.T), hint, dtype=dtype), index, axis=0)
    C = -(-R // SHORT_TABLE)
    if C > SHORT_TABLE:
        return g.op("Gather", g.const(table.reshape(-1), hint, dtype=dtype), _flat_index(g, index, R, n), axis=0)
    S = -(-R // C)
    padded = np.zeros((n, C * S), dtype=table.dtype)
    padded[:, :R] = table
    chunks = np.ascontiguousarray(padded.reshape(n, C, S).transpose(2, 1, 0))  # (S, C, n): [j, c, i] = table[i, S c + j]
    within, chunk = _chunked_index(g, index, C, S)
    across = g.op("GatherElements", g.const(chunks, hint, dtype=dtype), within, axis=0)  # (B, C, n)
    picked = g.op("GatherElements", across, chunk, axis=1)  # (B, 1, n)
    return g.op("Reshape", picked, g.const(np.array([-1, n]), dtype=np.int64))


def _chunked_index(g: GraphBuilder, index: str, C: int, S: int):
    """(j expanded to (B, C, n), c (B, 1, n)) for index = S c + j, built once per index and chunking."""
    key = ("chunked_index", index, C, S)
    if key not in g.memo:
        i64 = {"dtype": np.int64}
        chunk = g.op("Div", index, g.const(np.array(S), **i64))
        within = g.op("Sub", index, g.mul(chunk, g.const(np.array(S), **i64)))
        axis1 = g.const(np.array([1]), "axis1", **i64)
        expanded = g.op("Expand", g.op("Unsqueeze", within, axis1), g.const(np.array([1, C, 1]), **i64))
        g.memo[key] = (expanded, g.op("Unsqueeze", chunk, axis1))
    return g.memo[key]


def _flat_index(g: GraphBuilder, index: str, R: int, n: int) -> str:
    """i R + index[b, i] (B, n), built once per index and row length."""
    key = ("flat_index", index, R)
    if key not in g.memo:
        g.memo[key] = g.add(index, g.const(np.arange(n) * R, "row_offsets", dtype=np.int64), hint="rows")
    return g.memo[key]


def _widened(g: GraphBuilder, frac3: str, w: int) -> str:
    """f (B, n, 1) repeated to (B, n, w) for short rows (w <= 16): a Concat of copies, so that
    the multiplications by f run on equal shapes.  onnxruntime broadcasts (B, n, 1) onto a short
    last axis element by element, several times slower than a Concat and an equal-shape Mul
    together; longer rows broadcast well."""
    return frac3 if w == 1 or w > 16 else g.op("Concat", *([frac3] * w), axis=2)


def _horner(g: GraphBuilder, tables, count, frac, n: int):
    """sum_p tables[p][row] * f^p by Horner's scheme; tables (k + 1, n (L + 2), w) host arrays,
    count and f (B, n), row = i (L + 2) + count.  Returns (B, n, w), or (B, n) when w = 1."""
    k, w = tables.shape[0] - 1, tables.shape[2]
    R = tables.shape[1] // n
    if w == 1:
        gather = lambda p: _lookup(g, tables[p, :, 0].reshape(n, R), count, "spline_table")  # noqa: E731
        f = frac
    else:
        rows = _flat_index(g, count, R, n)
        gather = lambda p: g.op("Gather", g.const(tables[p]), rows, axis=0)  # noqa: E731
        f = _widened(g, g.op("Unsqueeze", frac, g.const(np.array([2]), "axis2", dtype=np.int64)), w)
    acc = gather(k)
    for p in range(k - 1, -1, -1):
        acc = g.add(g.mul(acc, f), gather(p))
    return acc


def _dense_is_cheaper(n: int, m: int, L: int, k: int) -> bool:
    """Per batch row and input, the per-edge path runs Horner's scheme on m values (k + 1
    gathers, 2k passes), the dense path writes nb basis values (the local bases, one placement
    gather) and then a GEMM.  Measured with onnxruntime on the benchmark cases
    (``benchmarks/onnx_bench.py --strategy local|dense``), the dense path wins once m >= nb;
    its placement table (L + 2) nb must also stay small."""
    nb = L - k
    return m >= nb and (L + 2) * nb <= 1 << 24


def _cardinal_bases(g: GraphBuilder, frac3: str, n: int, k: int, l: int) -> str:
    """(B, n, k + 2): the k + 1 non-zero bases of uniform rows (k >= 1) and a zero column.  On
    every interval they are the same polynomials of f (the pieces of the cardinal B-spline,
    ``cardinal_coefficients``), so one Gemm (B n, k) @ (k, k + 2) with the constant terms as
    its bias gives them, with no gathered tables.  float64 graphs take a MatMul and an Add
    instead: tract fails on every float64 Gemm ("tensor is F32, accessed as F64")."""
    from ..spline import cardinal_coefficients

    C, _ = cardinal_coefficients(k)  # (k + 1 powers, k + 1 bases)
    M = np.concatenate([C, np.zeros((k + 1, 1))], axis=1)
    powers = [frac3]
    for _ in range(k - 1):
        powers.append(g.mul(powers[-1], frac3))
    F = powers[0] if k == 1 else g.op("Concat", *powers, axis=2)  # (B, n, k): f, f^2, ..., f^k
    F = g.op("Reshape", F, g.const(np.array([-1, k]), dtype=np.int64))
    if g.dtype == np.float32:
        local = g.op("Gemm", F, g.const(M[1:], f"l{l}_cardinal"), g.const(M[0], f"l{l}_cardinal_const"))
    else:
        local = g.add(g.op("MatMul", F, g.const(M[1:], f"l{l}_cardinal")), g.const(M[0], f"l{l}_cardinal_const"))
    return g.op("Reshape", local, g.const(np.array([-1, n, k + 2]), dtype=np.int64), hint=f"l{l}_local_bases")


def _place_bases(g: GraphBuilder, local: str, count: str, L: int, k: int, l: int) -> str:
    """The (B, n, nb) basis matrix from each input's local bases (B, n, k + 2) in one
    GatherElements: column v - k + q takes local basis q for an input in interval v, and the
    zero column k + 1 otherwise (off the grid, or not one of the k + 1), by indices gathered
    from an (L + 2, nb) table with the knot count r (B, n)."""
    nb = L - k
    table = np.full((L + 2, nb), k + 1, dtype=np.int32)  # row r = v + 1 for interval v
    for v in range(L):
        for q in range(k + 1):
            if 0 <= v - k + q < nb:
                table[v + 1, v - k + q] = q
    index = g.op("Gather", g.const(table, f"l{l}_placement", dtype=np.int32), count, axis=0)  # (B, n, nb)
    return g.op("GatherElements", local, index, axis=2, hint=f"l{l}_basis")


def _emit_silu(g: GraphBuilder, h: str, l: int) -> str:
    """SiLU of h.  float32: h * Sigmoid(h).  float64: h * (1/2 + tanh(h/2)/2), the form the
    library computes: onnxruntime 1.30's graph optimizer fuses h * Sigmoid(h) into
    com.microsoft.QuickGelu, which has no float64 kernel, and the session then fails to load."""
    if g.dtype == np.float32:
        return g.mul(h, g.op("Sigmoid", h), hint=f"l{l}_silu")
    half = g.const(0.5, "half")
    s = g.add(g.mul(g.op("Tanh", g.mul(h, half)), half), half)
    return g.mul(h, s, hint=f"l{l}_silu")


def _emit_spline(g: GraphBuilder, layer, h: str, l: int, strategy: str) -> str:
    grid, C, left, inv, weight = _spline_tables(layer)
    n, L1 = grid.shape
    L, k = L1 - 1, layer.k
    m = weight.shape[1]
    count, frac, uniform = _locate(g, h, grid, l, left, inv, k)
    dense = strategy == "dense" or (strategy == "auto" and _dense_is_cheaper(n, m, L, k))
    if not dense:  # every edge's polynomial on its interval: (B, n, m), summed over inputs
        acc = _horner(g, _edge_table(C, weight), count, frac, n)
        # summed over inputs by a 0/1 GEMM: onnxruntime's ReduceSum over a middle axis is slower
        flat = g.op("Reshape", acc, g.const(np.array([0, n * m]), dtype=np.int64))
        return g.op("MatMul", flat, g.const(np.tile(np.eye(m), (n, 1)), f"l{l}_sum_inputs"), hint=f"l{l}_spline")
    # the k + 1 non-zero bases of each input, put in place in the (B, n nb) basis matrix, one GEMM
    if uniform and k >= 1:
        local = _cardinal_bases(g, g.op("Unsqueeze", frac, g.const(np.array([2]), "axis2", dtype=np.int64)), n, k, l)
    else:
        local = _horner(g, _local_table(C), count, frac, n)
    basis = _place_bases(g, local, count, L, k, l)
    flat = g.op("Reshape", basis, g.const(np.array([0, n * (L - k)]), dtype=np.int64))
    w = weight.transpose(0, 2, 1).reshape(n * (L - k), m)
    return g.op("MatMul", flat, g.const(w, f"l{l}_coef"), hint=f"l{l}_spline")


def _emit_linear_spline(g: GraphBuilder, layer, h: str, l: int, strategy: str, weight) -> list:
    """The splines continued as lines beyond the interior grid (``kanarray.extrapolation``): the
    spline at h clipped to [lo, hi], plus min(h - lo, 0) @ slopes at lo + max(h - hi, 0) @ slopes at hi."""
    from .._namespace import host_namespace
    from ..extrapolation import end_slopes, interior_ends

    hxp = host_namespace()
    grid = np.asarray(to_numpy(layer.grid), dtype=np.float64)
    lo, hi = interior_ends(grid, layer.k)
    s_lo, s_hi = end_slopes(grid, weight, layer.k, hxp)
    lo_c, hi_c, zero = g.const(lo, f"l{l}_interior_lo"), g.const(hi, f"l{l}_interior_hi"), g.const(0.0)
    clipped = g.op("Min", g.op("Max", h, lo_c), hi_c, hint=f"l{l}_clipped")
    below = g.op("Min", g.op("Sub", h, lo_c), zero, hint=f"l{l}_below")
    above = g.op("Max", g.op("Sub", h, hi_c), zero, hint=f"l{l}_above")
    lines = g.add(g.op("MatMul", below, g.const(s_lo, f"l{l}_slope_lo")),
                  g.op("MatMul", above, g.const(s_hi, f"l{l}_slope_hi")), hint=f"l{l}_lines")
    return [_emit_spline(g, layer, clipped, l, strategy), lines]


def _emit_symbolic(g: GraphBuilder, layer, h: str, l: int):
    """(sum over symbolic edges of c f(a x + b) scattered to their outputs (B, m), the sum of
    their d per output (m,) float64 for the bias).  c is folded into each function group's
    scatter matrix and d into the bias on the host: onnxruntime-node's "extended"
    optimizations fold a scalar Mul after a MatMul into a float32 FusedMatMul alpha, which
    cost float64 graphs their precision."""
    from .symbolic_ops import EMITTERS

    affine = np.asarray(to_numpy(layer.symbolic.affine), dtype=np.float64)
    groups: dict = {}
    for i, o, name in layer.symbolic.edges():
        groups.setdefault(name, []).append((i, o))
    out = None
    offset = np.zeros(layer.out_dim)
    for name, edges in groups.items():
        rows = np.array([i for i, _ in edges], dtype=np.int64)
        p = np.stack([affine[i, o] for i, o in edges])  # (E, 4)
        outputs = [o for _, o in edges]
        scatter = np.zeros((len(edges), layer.out_dim))
        scatter[np.arange(len(edges)), outputs] = p[:, 2]
        np.add.at(offset, outputs, p[:, 3])
        safe = name.replace("/", "div").replace("^", "pow").replace("(", "").replace(")", "")
        xg = g.op("Gather", h, g.const(rows, f"l{l}_{safe}_inputs", dtype=np.int64), axis=1)
        z = g.add(g.mul(xg, g.const(p[:, 0], f"l{l}_{safe}_a")), g.const(p[:, 1], f"l{l}_{safe}_b"))
        part = g.op("MatMul", EMITTERS[name](g, z), g.const(scatter, f"l{l}_{safe}_scatter"))
        out = part if out is None else g.add(out, part)
    return out, offset


def _poison(g: GraphBuilder, h: str, n: int) -> str:
    """(B, 1): NaN in the rows of h (B, n) that hold a NaN or an infinity, 0 elsewhere (h - h,
    summed by a MatMul with ones).  Added to a layer's outputs, it makes each of them NaN for
    such a row, whatever the runtime's Clip, Min, Max and Where make of NaN: the native model
    refuses non-finite inputs (ValueError), the graph, which cannot raise, answers NaN."""
    return g.op("MatMul", g.op("Sub", h, h), g.const(np.ones((n, 1)), f"ones_{n}"), hint="non_finite")


def _emit_layer(g: GraphBuilder, layer, h: str, l: int, strategy: str) -> str:
    mask = np.asarray(to_numpy(layer.mask), dtype=np.float64)
    terms = []
    weight = np.asarray(to_numpy(layer.coef), dtype=np.float64) * (
        mask * np.asarray(to_numpy(layer.scale_sp), dtype=np.float64))[:, :, None]
    if np.any(weight != 0):
        if layer.extrapolate == "linear":
            terms.extend(_emit_linear_spline(g, layer, h, l, strategy, weight))
        else:
            terms.append(_emit_spline(g, layer, h, l, strategy))
    base_w = mask * np.asarray(to_numpy(layer.scale_base), dtype=np.float64)
    if layer.base_fun != "zero" and np.any(base_w != 0):
        b = h if layer.base_fun == "identity" else _emit_silu(g, h, l)
        terms.append(g.op("MatMul", b, g.const(base_w, f"l{l}_base_weight"), hint=f"l{l}_base"))
    bias = np.asarray(to_numpy(layer.bias), dtype=np.float64)
    if layer.symbolic.active:
        symbolic, offset = _emit_symbolic(g, layer, h, l)
        terms.append(symbolic)
        bias = bias + offset
    terms.append(_poison(g, h, layer.in_dim))  # (B, 1): broadcasts a bias-only layer to (B, m) too
    y = g.const(bias[None, :], f"l{l}_bias")  # (1, m)
    for t in terms:
        y = g.add(t, y)
    return y if layer.nodes is None else _emit_nodes(g, layer.nodes, y, l)


def _affine(g: GraphBuilder, h: str, scale, shift, hint: str) -> str:
    """h * scale + shift (constants (m,)), each left out where it is the identity."""
    if np.any(scale != 1):
        h = g.mul(h, g.const(scale[None, :], f"{hint}_scale"), hint=f"{hint}_scaled")
    if np.any(shift != 0):
        h = g.add(h, g.const(shift[None, :], f"{hint}_bias"), hint=f"{hint}_shifted")
    return h


def _emit_nodes(g: GraphBuilder, stage, y: str, l: int) -> str:
    """The node stage (``kanarray.nodes``) on the layer's sums y (B, n_sub) -> (B, n_nodes): the
    sub-node affine, then per run of multiplication nodes of one arity a Gather of each factor
    position and a Mul chain over them (one Mul per factor beyond the first, each multiplying
    the run's nodes at once), the nodes concatenated in order, then the node affine."""
    host = stage.host_arrays()
    s = _affine(g, y, host["subnode_scale"], host["subnode_bias"], f"l{l}_subnode")
    parts = []
    if stage.n_add:
        parts.append(g.op("Gather", s, g.const(np.arange(stage.n_add), f"l{l}_add_nodes", dtype=np.int64), axis=1,
                          hint=f"l{l}_add"))
    for j, a, count, start in stage.runs():
        product = None
        for i in range(a):
            cols = start + i + a * np.arange(count)
            factor = g.op("Gather", s, g.const(cols, f"l{l}_mult{j}_factor{i}", dtype=np.int64), axis=1,
                          hint=f"l{l}_mult{j}_f{i}")
            product = factor if product is None else g.mul(product, factor, hint=f"l{l}_mult{j}_product")
        parts.append(product)
    p = parts[0] if len(parts) == 1 else g.op("Concat", *parts, axis=1, hint=f"l{l}_nodes")
    return _affine(g, p, host["node_scale"], host["node_bias"], f"l{l}_node")


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
    """String properties: sizes, each layer's knot range (``grid_ranges``, the first layer's in
    the scaled coordinate), the last fit's raw input range per column (``training_input_range``,
    or null), the input scaling (``input_scaling``: {"shift": [...], "scale": [...]}, the first
    layer seeing (x - shift) * scale, or null), how the splines continue beyond their grids
    (``extrapolate``: "spline" or "linear"), the symbolic edges, and the variables' names
    (``input_names``, ``output_names``: JSON lists, present only when the model has them)."""
    from .. import __version__

    ranges = [[float(np.min(to_numpy(layer.grid))), float(np.max(to_numpy(layer.grid)))] for layer in model.layers]
    scaling = model.input_scaling
    seen = None
    if model.fit_inputs is not None:
        s = np.asarray(to_numpy(model.fit_inputs), dtype=np.float64)
        lo, hi = s.min(axis=0), s.max(axis=0)
        if scaling is not None:  # the samples are the first layer's inputs: back to raw inputs
            lo, hi = lo / scaling[1] + scaling[0], hi / scaling[1] + scaling[0]
        seen = [[float(a), float(b)] for a, b in zip(lo, hi)]
    names = {key: json.dumps(list(getattr(model, key))) for key in ("input_names", "output_names")
             if getattr(model, key) is not None}
    return {
        "kanarray_version": __version__,
        "width": json.dumps(model.width),
        "node_width": json.dumps(model.node_width),  # [n_add, n_mult] per entry (``kanarray.nodes``)
        "mult_arity": json.dumps(model.mult_arity),
        "grid": json.dumps(model.grid),
        "k": json.dumps(model.k),
        "grid_ranges": json.dumps(ranges),
        "extrapolate": model.extrapolate,
        "training_input_range": json.dumps(seen),
        "input_scaling": json.dumps(None if scaling is None else {"shift": scaling[0].tolist(),
                                                                  "scale": scaling[1].tolist()}),
        "symbolic_edges": json.dumps([[list(e) for e in layer.symbolic.edges()] for layer in model.layers]),
        **names,
    }


def to_onnx(model, path=None, *, opset: int | None = None, dtype: str | None = None, input_name: str = "x",
            output_name: str = "y", strategy: str = "auto"):
    """The ONNX graph of ``model`` (an ``onnx.ModelProto``); also written to ``path`` if given
    (atomically: a temporary file renamed into place, no partial file on failure).

    opset: default ``default_opset()`` (13, the lowest that covers the operators used); any
    newer opset that the installed onnx defines is accepted.  dtype: "float32" (default) or "float64".  Input ``input_name`` (batch, width[0]) of raw
    inputs (an input scaling is part of the graph), output ``output_name`` (batch, width[-1]),
    batch dynamic.  Raises ``ExportError`` (a ValueError) naming what cannot be exported.
    strategy: how spline layers are evaluated: "local" (per-edge polynomials, k + 1 gathers
    per input and output), "dense" (the k + 1 bases of each input placed in a (batch, n (G +
    k)) matrix, then one MatMul), or "auto" (dense when a layer has at least G + k outputs).
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
    if strategy not in ("auto", "local", "dense"):
        raise ExportError(f"strategy must be 'auto', 'local' or 'dense', got {strategy!r}")
    _check_exportable(model)

    g = GraphBuilder(opset, dtype)
    g.name(input_name)
    g.name(output_name)
    h = input_name
    if model.input_scaling is not None:
        shift, scale = model.input_scaling
        h = g.mul(g.op("Sub", h, g.const(shift, "input_shift")), g.const(scale, "input_scale"), hint="scaled_input")
    for l, layer in enumerate(model.layers):
        h = _emit_layer(g, layer, h, l, strategy)
    g.nodes.append(onnx.helper.make_node("Identity", [h], [output_name], name=g.name("n_output")))
    g.prune([output_name])
    from .. import __version__

    proto = g.to_model("kanarray_kan", [(input_name, ["batch", model.width[0]])],
                       [(output_name, ["batch", model.width[-1]])], producer=("kanarray", __version__),
                       metadata=_metadata(model))
    onnx.checker.check_model(proto, full_check=True)
    if path is not None:
        with atomic_write(path, ".onnx.tmp") as fh:
            fh.write(proto.SerializeToString())
    return proto

