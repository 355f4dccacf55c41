"""NumPy spline kernels: local basis evaluation and a dense-or-sparse contraction.

At any x only k + 1 of the G + k bases of a row are non-zero.  We find each input's knot
interval (arithmetic on uniform grids, ``searchsorted`` otherwise; both exact under the
half-open rule ``t_v <= x < t_{v+1}`` where it matters), evaluate the k + 1 values (fixed
polynomials of the fraction within the interval on uniform grids, de Boor's triangular
recursion otherwise), and place them in a (B, n * nb + 1) basis matrix with
n * (k + 1) entries per row.  The contraction with the weights is then either

* dense: the full matrix and BLAS GEMMs, best at small G; or
* sparse: a scipy CSR matrix, best at large G, where the dense matrix is mostly zeros;

chosen per call by ``choose_contraction``.  Entries of bases that do not exist (index
outside [0, nb)) and of inputs off the grid go to the extra last column, whose weight row
is zero, so no per-element masking is needed.

Per-grid tables (``GridTables``: uniformity, knot interval -> columns, per-interval
polynomials) are cached by the grid's content, so in-place edits of the grid are always seen.
The polynomial tables themselves (``cardinal_coefficients``, ``interval_polynomials``) are
host-side spline math, in ``kanarray.spline``.

Length: one kernel object with the interval search, per-grid tables and local bases it alone
reads; split, the tables' cache invariants would span modules.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np

from .._namespace import host_namespace
from ..base import base_with_grad
from ..spline import cardinal_coefficients, interval_polynomials
from .generic import ENTROPY_EPS, CompiledEdgeCache, Kernels, SpreadGradient

__all__ = ["NumpyKernels", "interval_index", "local_basis", "choose_contraction"]


def _is_uniform(grid):
    """Per-row flag: knots equally spaced up to rounding; plus the row spacing h (n,)."""
    L = grid.shape[1] - 1
    h = (grid[:, -1] - grid[:, 0]) / L
    scale = np.max(np.abs(grid), axis=1)
    tol = 16 * np.finfo(grid.dtype).eps * scale
    uniform = (h > 0) & np.all(np.abs(np.diff(grid, axis=1) - h[:, None]) <= tol[:, None], axis=1)
    return uniform, h


def interval_index(x, grid, *, tables=None, exact=True):
    """Knot interval of every input.

    x: (B, n); grid: (n, L + 1) -> (idx, frac).  idx (B, n) int is in [0, L - 1] with
    ``grid[i, idx] <= x < grid[i, idx + 1]`` for inputs on the grid, and L for inputs off
    the grid (``x < grid[i, 0]`` or ``x >= grid[i, L]``).  On uniform grids the index comes
    from arithmetic and frac = (x - t_idx) / h, clipped to [0, 1], is returned too (else
    None; off the grid it is meaningless); ``exact=False`` skips the correction of inputs within
    rounding of a knot, harmless where the bases are continuous (values for k >= 1,
    derivatives for k >= 2).
    """
    t = GridTables(grid, 0) if tables is None else tables
    B, n = x.shape
    L = t.L
    frac = None
    if t.uniform:
        u = x - t.t0
        u *= t.inv_h
        np.clip(u, 0, L, out=u)
        # truncation is floor here: u >= 0.  fmin: a NaN input (a hidden activation of a diverged
        # model) gets a valid index and NaN bases rather than an index from NaN's cast
        idx = np.fmin(u, L - 1).astype(np.intp)
        if exact and not _correct(idx, x, grid, t.row_base, L, rounds=2):  # pragma: no cover - defensive
            idx = _searchsorted_rows(x, grid)
        # the fraction from the interval's own left knot, not from u: u carries an absolute
        # rounding error of eps * L, which would grow with G
        frac = x - np.take(grid.reshape(-1), t.row_base + idx)
        frac *= t.inv_h
        # [0, 1] up to rounding on the grid; off the grid it can be huge, and its (dropped)
        # basis values must still be finite, since inf * 0 would give NaN
        np.clip(frac, 0.0, 1.0, out=frac)
    elif t.bins is not None and n > 8:  # with few rows, a searchsorted per row costs fewer calls
        # look up the interval at the start of x's bin, then step over the few knots in the bin
        b = x - t.t0
        b *= t.inv_bin_width
        np.fmin(np.fmax(b, 0, out=b), t.n_bins - 1, out=b)  # clip that also sends NaN to a valid bin
        idx = np.take(t.bins, t.bin_base + b.astype(np.intp))
        if not _correct(idx, x, grid, t.row_base, L, rounds=t.max_knots_per_bin + 2):  # pragma: no cover
            idx = _searchsorted_rows(x, grid)
    else:
        idx = _searchsorted_rows(x, grid)
    off_grid = (x < t.t0) | (x >= t.tL)
    idx[off_grid] = L
    return idx, frac


def _correct(idx, x, grid, row_base, L: int, rounds: int) -> bool:
    """Move each idx (in place) towards the interval with t[idx] <= x < t[idx + 1], one
    knot per round; True once every idx is there.  ``rounds`` covers the largest distance
    the callers expect."""
    flat = grid.reshape(-1)
    for _ in range(rounds):
        pos = row_base + idx
        down = (x < np.take(flat, pos)) & (idx > 0)
        up = (x >= np.take(flat, pos + 1)) & (idx < L - 1)
        if not (down.any() or up.any()):
            return True
        idx += up
        idx -= down
    return False


def _searchsorted_rows(x, grid):
    """Index of the last knot <= x in each row (clipped to [0, L - 1]): (B, n) intp."""
    B, n = x.shape
    xt = np.ascontiguousarray(x.T)
    idx = np.empty((n, B), dtype=np.intp)
    for i in range(n):
        idx[i] = np.searchsorted(grid[i], xt[i], side="right")
    idx -= 1
    np.clip(idx, 0, grid.shape[1] - 2, out=idx)
    return idx.T


def _safe_inv(d):
    with np.errstate(divide="ignore"):
        return np.where(d > 0, 1.0 / np.where(d > 0, d, 1.0), 0.0)


class GridTables:
    """Everything the kernels derive from one grid (n, L + 1) and order k, computed once.

    uniform: all rows equally spaced; t0, tL, inv_h (n,): first and last knot, 1 / spacing;
    cols (n * (L + 1), k + 1) int32: for row i and interval v (v = L: off the grid), the
    basis-matrix column of each of the k + 1 entries (``n * nb`` for bases that do not
    exist); poly_p (k + 1, n * (L + 1), k + 1) and inv_span (n * (L + 1),): for non-uniform
    grids, each interval's bases as polynomials in the fraction f = (x - t_v) / h_v
    (``interval_polynomials``, power-major) and 1 / h_v; bins: for non-uniform grids, the
    interval at the start of each of 4L equal bins per row (None where knots cluster too much
    for that to pay).
    """

    def __init__(self, grid, k: int):
        n, L1 = grid.shape
        L = L1 - 1
        nb = L - k
        self.k, self.L, self.n = k, L, n
        uniform, h = _is_uniform(grid)
        self.uniform = bool(np.all(uniform))
        self.t0 = grid[:, 0].copy()
        self.tL = grid[:, -1].copy()
        self.inv_h = _safe_inv(h).astype(grid.dtype)
        self.row_base = np.arange(n, dtype=np.intp) * (L + 1)
        basis_of = np.arange(L + 1)[:, None] - k + np.arange(k + 1)
        exists = (basis_of >= 0) & (basis_of < nb)
        exists[L] = False
        row = np.arange(n)
        self.cols = (
            np.where(exists[None], row[:, None, None] * nb + basis_of[None], n * nb)
            .astype(np.int32)
            .reshape(n * (L + 1), k + 1)
        )
        self._cardinal = {}
        self._edge = {}
        self.any_grid = {}  # _any_grid_polynomials by dtype
        self._poly64 = None
        self._grid64 = grid.astype(np.float64)
        self._step = np.where(h > 0, h, 1.0)
        self._build_bins(grid)
        self.poly_p = None
        if not (self.uniform and k >= 1):
            # per interval: the power-basis coefficients of its k + 1 bases in the fraction
            # f = (x - t_v) / h_v, and 1 / h_v (0 off the grid and on zero-width intervals)
            poly = self._polynomials()
            self.poly_p = np.ascontiguousarray(poly.transpose(1, 0, 2)).astype(grid.dtype)  # power-major
            self.inv_span = self._inv_span64().astype(grid.dtype)

    def _build_bins(self, grid):
        """For non-uniform grids: split each row's range into 4L equal bins and store the
        interval holding each bin's start, so a search is a lookup plus a few steps."""
        self.bins = None
        if self.uniform:
            return
        n, L = self.n, self.L
        span = self.tL - self.t0
        if not np.all(span > 0):
            return  # a row with all knots equal: fall back to searchsorted
        M = 4 * L
        width = span / M
        starts = self.t0[:, None] + width[:, None] * np.arange(M)
        bins = np.stack([np.searchsorted(grid[i], starts[i], side="right") - 1 for i in range(n)])
        np.clip(bins, 0, L - 1, out=bins)
        # knots per bin bound the correction steps; heavily clustered knots -> searchsorted
        ends = np.concatenate([bins[:, 1:], np.full((n, 1), L - 1)], axis=1)
        most = int(np.max(ends - bins)) if bins.size else 0
        if most > 8:
            return
        self.bins = bins.reshape(-1).astype(np.intp)
        self.n_bins = M
        self.bin_base = np.arange(n, dtype=np.intp) * M
        self.inv_bin_width = (1.0 / width).astype(grid.dtype)
        self.max_knots_per_bin = most

    def _polynomials(self):
        """``interval_polynomials`` of the grid as (n * (L + 1), k + 1 powers, k + 1 bases), float64."""
        if self._poly64 is None:
            n, L, k = self.n, self.L, self.k
            self._poly64 = interval_polynomials(self._grid64, k, self._step).reshape(n * (L + 1), k + 1, k + 1)
        return self._poly64

    def _inv_span64(self):
        """1 / h_v per interval, (n * (L + 1),) float64; 0 off the grid and on zero-width intervals."""
        n, L = self.n, self.L
        inv = np.zeros((n, L + 1))
        inv[:, :L] = _safe_inv(np.diff(self._grid64, axis=1))
        return inv.reshape(-1)

    def edge_tables(self, dtype):
        """For the per-edge kernels, in ``dtype``: (poly (n (L + 1), 2k + 1, k + 1), left
        (n (L + 1),), inv_span (n (L + 1),)).  poly[e, :k + 1] are interval e's bases as
        polynomials in f = (x - left[e]) * inv_span[e] (coefficient of f**p in row p), and
        poly[e, k + 1 + p] the coefficient of f**p in their x-derivatives; rows of intervals
        off the grid (v = L) and of zero width are zero."""
        key = np.dtype(dtype).str
        got = self._edge.get(key)
        if got is None:
            L, k = self.L, self.k
            poly = self._polynomials()
            inv = self._inv_span64()
            powers = np.arange(1, k + 1, dtype=np.float64)
            deriv = poly[:, 1:, :] * (powers[None, :, None] * inv[:, None, None])
            left = np.concatenate([self._grid64[:, :L], self._grid64[:, L - 1 : L]], axis=1).reshape(-1)
            got = (
                np.ascontiguousarray(np.concatenate([poly, deriv], axis=1), dtype=dtype),
                left.astype(dtype),
                inv.astype(dtype),
            )
            self._edge[key] = got
        return got

    def cardinal(self, dtype):
        """(C, D, 1/h as (1, n, 1)) in ``dtype`` for the uniform fast path."""
        key = np.dtype(dtype).str
        got = self._cardinal.get(key)
        if got is None:
            C, D = cardinal_coefficients(self.k, np.dtype(dtype).name)
            got = (C, D, self.inv_h.astype(dtype)[None, :, None])
            self._cardinal[key] = got
        return got


class _TableCache:
    """GridTables by grid *content* (order k, shape, dtype and the knots' bytes), least
    recently used first out: an edited grid simply has another key, equal grids in
    different arrays share their tables, and nothing refers to the grid arrays.  Holds at
    most ``size`` entries and about ``max_bytes`` of tables (the newest entry always stays)."""

    def __init__(self, size: int = 32, max_bytes: int = 256 << 20):
        self.size, self.max_bytes = size, max_bytes
        self.entries: OrderedDict = OrderedDict()
        self.nbytes = 0

    def get(self, grid, k: int) -> GridTables:
        key = (k, grid.shape, grid.dtype.str, grid.tobytes())
        hit = self.entries.get(key)
        if hit is not None:
            self.entries.move_to_end(key)
            return hit[0]
        tables = GridTables(grid, k)
        n, L1 = grid.shape
        # bound on what the tables may grow to (per-interval polynomial tables in two dtypes)
        size = n * L1 * ((k + 1) * (k + 1) * 2 + (2 * k + 1) * (k + 1) * 2 + k + 8) * 8
        self.entries[key] = (tables, size)
        self.nbytes += size
        while len(self.entries) > 1 and (len(self.entries) > self.size or self.nbytes > self.max_bytes):
            _, (_, dropped) = self.entries.popitem(last=False)
            self.nbytes -= dropped
        return tables


_tables = _TableCache()


def local_basis(x, grid, k: int, *, need_deriv: bool, tables: GridTables | None = None):
    """The k + 1 non-zero bases (and their x-derivatives) at each input.

    x: (B, n); grid: (n, L + 1) -> cols (B, n, k + 1) int32, vals (B, n, k + 1),
    dvals (B, n, k + 1) or None.  ``vals[b, i, m]`` belongs to column ``cols[b, i, m]`` of
    a (B, n * nb + 1) basis matrix: column ``i * nb + j`` for basis j of row i, and the
    extra last column ``n * nb`` for entries of bases that do not exist (index outside
    [0, nb)) and of inputs off the grid.  Giving that column a zero weight row drops them
    without masking the values.
    """
    B, n = x.shape
    t = GridTables(grid, k) if tables is None else tables
    L = t.L
    dtype = x.dtype
    fast = k >= 1 and t.uniform
    idx, frac = interval_index(x, grid, tables=t, exact=not fast or (need_deriv and k <= 1))
    table_index = (t.row_base + idx).reshape(-1)
    cols = np.take(t.cols, table_index, axis=0).reshape(B, n, k + 1)

    dvals = None
    if fast:
        # equal spacing: the bases are fixed polynomials of the fraction f within the interval
        C, D, inv_h = t.cardinal(dtype)
        powers = np.empty((k + 1, B * n), dtype=dtype)  # rows 1, f, f^2, ...
        powers[0] = 1
        powers[1] = frac.reshape(-1)
        for p in range(2, k + 1):
            np.multiply(powers[p - 1], powers[1], out=powers[p])
        vals = (powers.T @ C).reshape(B, n, k + 1)
        if need_deriv:
            dvals = (powers.T @ D).reshape(B, n, k + 1)
            dvals *= inv_h
    else:
        # any grid: gather each interval's polynomial table and evaluate it at the fraction
        frac = x - np.take(grid.reshape(-1), t.row_base + np.minimum(idx, L - 1))
        inv_span = np.take(t.inv_span, table_index).reshape(B, n)
        frac *= inv_span
        np.clip(frac, 0.0, 1.0, out=frac)
        f = frac.reshape(-1)
        # Horner's scheme on the gathered coefficients, p-major: tab[p] is (E, k + 1)
        tab = np.take(t.poly_p, table_index, axis=1)  # (k + 1 powers, E, k + 1 bases)
        fe = f[:, None]
        vals = tab[k].copy()
        for p in range(k - 1, -1, -1):
            vals *= fe
            vals += tab[p]
        vals = vals.reshape(B, n, k + 1)
        if need_deriv:
            if k == 0:
                dvals = np.zeros_like(vals)
            else:
                dvals = tab[k] * k
                for p in range(k - 1, 0, -1):
                    dvals *= fe
                    dvals += tab[p] * p
                dvals *= inv_span.reshape(-1, 1)
                dvals = dvals.reshape(B, n, k + 1)
    return cols, vals, dvals


def choose_contraction(B: int, n: int, m: int, nb: int, k: int) -> str:
    """'dense' or 'sparse' for a layer call of this shape.

    Dense costs about n * nb * (c + m) per sample through BLAS (building the basis matrix,
    then GEMMs whose efficiency grows with m); sparse costs n * (k + 1) * m per sample in
    scipy's scalar CSR loops.  benchmarks/bench_contraction.py measured the crossover on
    the 2-core benchmark machine at nb ~ 1.2 (k + 1) max(1, m / 10) (see RESULTS.md); below
    ``_SMALL`` stored entries scipy's call overhead dominates and dense wins; above
    ``_DENSE_LIMIT`` entries of the dense matrix, sparse is used to bound memory.
    """
    if B * n * (k + 1) <= _SMALL:
        return "dense"
    if B * (n * nb + 1) > _DENSE_LIMIT:
        return "sparse"  # the dense basis matrix alone would pass ~1 GiB in float64
    return "sparse" if nb > 1.2 * (k + 1) * max(1.0, m / 10) else "dense"


_SMALL = 1 << 16  # entries below which a NumPy scatter beats scipy's call overhead
_DENSE_LIMIT = 1 << 27  # dense basis-matrix entries above which the sparse form is used
_sparse_module = None


def _any_grid_polynomials(t: GridTables, dtype):
    """(poly_p (k + 1, n (L + 1), k + 1), inv_span (n (L + 1),)) in dtype for any grid, uniform ones too
    (whose GridTables skip them: their fast path needs only the cardinal bases); kept on t."""
    key = np.dtype(dtype).str
    if key not in t.any_grid:
        if t.poly_p is not None and t.poly_p.dtype == dtype:
            t.any_grid[key] = (t.poly_p, t.inv_span)
        else:
            poly = np.ascontiguousarray(t._polynomials().transpose(1, 0, 2)).astype(dtype)
            t.any_grid[key] = (poly, t._inv_span64().astype(dtype))
    return t.any_grid[key]


def _flat_index(cols, width: int):
    """Positions in a flattened (B, width) matrix of the columns cols (B, n, k + 1).

    intp, so that NumPy indexes with it without converting a copy first."""
    return (np.arange(cols.shape[0], dtype=np.intp) * width)[:, None, None] + cols


def _scipy_sparse():
    global _sparse_module
    if _sparse_module is None:
        import scipy.sparse

        _sparse_module = scipy.sparse
    return _sparse_module


class NumpyKernels(Kernels):
    """Local B-spline kernels for NumPy arrays.

    contraction: 'auto' (by shape), 'dense' or 'sparse' (tests and benchmarks force one).
    fused: run ``KANLayer``'s per-edge passes as one compiled loop each (``numba_edges``);
    by default whenever numba is installed and not switched off (``kanarray.config``, field
    ``numba``, from KANARRAY_NUMBA).
    """

    name = "numpy"

    def __init__(self, contraction: str = "auto", *, fused: bool | None = None):
        if contraction not in ("auto", "dense", "sparse"):
            raise ValueError(f"contraction must be 'auto', 'dense' or 'sparse', got {contraction!r}")
        super().__init__(host_namespace())
        self.contraction = contraction
        from . import numba_edges

        # fused: the compiled per-edge layer passes (None: whenever numba is installed)
        self.fused = numba_edges.available() if fused is None else bool(fused)

    def spline_forward(self, x, grid, weight, k, *, need_dx, reuse=None):
        """x (B, n), weight (n, m, nb) -> (y (B, m), ctx for ``spline_backward``).

        reuse: the ctx of an earlier call with the same x and grid; its basis matrix is used
        again (only the weight changed), unless need_dx asks for derivatives it lacks.
        """
        B, n = x.shape
        m, nb = weight.shape[1], weight.shape[2]
        W2 = _weight_rows(weight)
        if reuse is not None and not (need_dx and reuse[2] is None):
            basis, cols, dvals = reuse[:3]
            return np.asarray(basis @ W2), (basis, cols, dvals, W2, (B, n, m, nb, k))
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            cols, vals, dvals = local_basis(x, grid, k, need_deriv=need_dx, tables=_tables.get(grid, k))
        mode = self.contraction
        if mode == "auto":
            mode = choose_contraction(B, n, m, nb, k)
        nnz = B * n * (k + 1)
        if mode == "dense" and nnz <= _SMALL:
            # small: a plain scatter; entries bound for the zero-weight column may overwrite
            # each other there, which is harmless
            basis = np.zeros((B, n * nb + 1), dtype=x.dtype)
            basis.reshape(-1)[_flat_index(cols, n * nb + 1).reshape(-1)] = vals.reshape(-1)
        else:
            sp = _scipy_sparse()
            index_dtype = np.int32 if nnz < 2**31 else np.int64
            indptr = np.arange(0, nnz + 1, n * (k + 1), dtype=index_dtype)
            basis = sp.csr_matrix(
                (vals.reshape(-1), cols.reshape(-1).astype(index_dtype, copy=False), indptr), shape=(B, n * nb + 1)
            )
            if mode == "dense":
                basis = basis.toarray()  # C loop, several times faster than a NumPy scatter
        y = np.asarray(basis @ W2)
        return y, (basis, cols, dvals, W2, (B, n, m, nb, k))

    def spline_backward(self, ctx, gy, *, need_dx):
        basis, cols, dvals, W2, (B, n, m, nb, k) = ctx
        gy = np.ascontiguousarray(gy)
        dW2 = np.asarray(basis.T @ gy)  # (n * nb + 1, m); the last row is the dropped entries'
        dweight = dW2[:-1].reshape(n, nb, m).transpose(0, 2, 1)
        dx = None
        if need_dx:
            if dvals is None:
                raise ValueError("need_dx=True in the backward needs need_dx=True in the forward")
            if nb <= (k + 1) * m:
                # gy @ W2.T (B, n nb + 1) is no larger than the gathered rows: form it and
                # pick the k + 1 columns of each input
                GW = gy @ W2.T
                picked = np.take(GW.reshape(-1), _flat_index(cols, n * nb + 1))
            else:
                # gather the k + 1 weight rows of each input: (B, n (k + 1), m) @ (B, m, 1)
                if m == 1:
                    picked = np.take(W2[:, 0], cols) * gy[:, :, None]
                else:
                    rows = np.take(W2, cols.reshape(B, n * (k + 1)), axis=0)
                    picked = np.einsum("bjo,bo->bj", rows, gy).reshape(B, n, k + 1)
            dx = np.einsum("bim,bim->bi", picked, dvals)
        return dweight, dx

    # -- fused per-edge layer (compiled, when numba is installed) ------------------------
    def edge_layer_forward(self, x, grid, weight, msp, mb, bias, k, base_fun, *, need_dx, tail=None, basis=None):
        """``Kernels.edge_layer_forward``: with ``fused``, the whole per-edge layer in one
        compiled pass (``numba_edges.forward``; basis is not used), whose cache is a
        ``CompiledEdgeCache``; otherwise the array-API pass on these kernels' ``edge_forward``."""
        if not self.fused:
            return super().edge_layer_forward(x, grid, weight, msp, mb, bias, k, base_fun, need_dx=need_dx,
                                              tail=tail, basis=basis)
        from . import numba_edges

        B, n = x.shape
        m, nb = weight.shape[1], weight.shape[2]
        dtype = x.dtype
        t = _tables.get(grid, k)
        _, left, inv_span = t.edge_tables(dtype)
        table = _interval_table(t, weight, dtype, with_derivative=True)
        xt = np.ascontiguousarray(x.T)
        base, dbase = base_with_grad(base_fun, xt, np, need_grad=need_dx)
        base = np.ascontiguousarray(base, dtype=dtype)
        y, phi, ctx = numba_edges.forward(
            xt if tail is None else np.ascontiguousarray(tail.clipped.T), np.ascontiguousarray(grid, dtype=dtype),
            table, left, inv_span, k,
            np.ascontiguousarray(msp, dtype=dtype), np.ascontiguousarray(mb, dtype=dtype),
            np.ascontiguousarray(bias, dtype=dtype), base,
            np.ascontiguousarray(dbase, dtype=dtype) if need_dx else base, need_dx,
            lines=None if tail is None else (tail.below.T, tail.above.T, *tail.slopes(weight, np)))
        return y, phi, CompiledEdgeCache(xt, (ctx, t, (B, n, m, nb), tail))

    def edge_layer_backward(self, cache, gy, gphi, *, need_dx):
        """``Kernels.edge_layer_backward``; after the compiled forward in one compiled pass,
        where a ``SpreadGradient`` as gphi is applied inside the loop."""
        if not cache.compiled:
            return super().edge_layer_backward(cache, gy, gphi, need_dx=need_dx)
        from . import numba_edges

        spread = None
        if isinstance(gphi, SpreadGradient):
            spread, gphi = gphi, None
        kctx, t, (B, n, m, nb), tail = cache.ctx
        poly, _, _ = t.edge_tables(gy.dtype)
        moments, gsp, gsb, dxt, g_slopes = numba_edges.backward(kctx, gy, gphi, poly.shape[0], need_dx, spread)
        dweight = self._moments_to_weights(moments, poly, t, n, m, nb)
        if tail is not None:  # the lines' part; dxt already has their slope (the kernels' at the clipped input)
            dweight = dweight + tail.onto_bases(*g_slopes)
        return dweight, gsp, gsb, dxt

    def spread_penalty(self, sphi, sx, lamb_l1: float, lamb_entropy: float, *, grad: bool):
        """``Kernels.spread_penalty``; with ``fused`` and gradients, one compiled call."""
        if not (self.fused and grad):
            return super().spread_penalty(sphi, sx, lamb_l1, lamb_entropy, grad=grad)
        from .numba_edges import spread_penalty

        value, dsphi, dsx = spread_penalty(sphi, sx, lamb_l1, lamb_entropy, ENTROPY_EPS)
        return np.asarray(value, dtype=sphi.dtype), (dsphi.astype(sphi.dtype, copy=False),
                                                     dsx.astype(sx.dtype, copy=False))

    def _moments_to_weights(self, moments, poly, t, n, m, nb):
        """Per-interval moments (n (L + 1), k + 1, m) -> weight gradient (n, m, nb)."""
        k = t.k
        # (n (L + 1), k + 1 bases, m): each interval's share of every weight row it touches
        per_row = np.matmul(np.transpose(poly[:, : k + 1], (0, 2, 1)), moments)
        width = n * nb + 1
        flat_cols = t.cols.reshape(-1)
        dW2 = np.empty((m, width), dtype=moments.dtype)
        for o in range(m):
            dW2[o] = np.bincount(flat_cols, weights=per_row[:, :, o].reshape(-1), minlength=width)
        return dW2[:, :-1].reshape(m, n, nb).transpose(1, 0, 2)

    def local_basis_derivatives(self, x, grid, k, order):
        """The k + 1 non-zero bases of each input and their x-derivatives, from the grid's interval
        polynomials (Horner's rule on the derivatives): x (B, n) -> (cols (B, n, k + 1) intp, [B, B', ...,
        B^(order)] each (B, n, k + 1)).  cols index a (B, n * nb + 1) matrix as in ``local_basis`` (the
        last column for bases that do not exist and inputs off the grid, whose values are 0)."""
        B, n = x.shape
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            t = _tables.get(grid, k)
            poly, inv_span = _any_grid_polynomials(t, grid.dtype)
            idx, _ = interval_index(x, grid, tables=t, exact=True)
            table_index = (t.row_base + idx).reshape(-1)
            cols = np.take(t.cols, table_index, axis=0).reshape(B, n, k + 1).astype(np.intp)
            span = np.take(inv_span, table_index).reshape(-1, 1)
            frac = (x.reshape(-1) - np.take(grid.reshape(-1), (t.row_base + np.minimum(idx, t.L - 1)).reshape(-1)))
            f = np.clip(frac[:, None] * span, 0.0, 1.0)
            tab = np.take(poly, table_index, axis=1)  # (k + 1 powers, E, k + 1 bases)
            out = []
            for r in range(order + 1):
                if r > k:
                    out.append(np.zeros((B, n, k + 1), dtype=x.dtype))
                    continue
                vals = tab[k] * math.perm(k, r)  # d^r/df^r f^p = p!/(p-r)! f^(p-r)
                for p in range(k - 1, r - 1, -1):
                    vals = vals * f + tab[p] * math.perm(p, r)
                if r:
                    vals = vals * span**r
                out.append(vals.reshape(B, n, k + 1))
        return cols, out

    def basis_derivatives(self, x, grid, k, order):
        """``spline.basis_derivatives`` from ``local_basis_derivatives``, placed densely:
        x (B, n) -> [B, B', ..., B^(order)], each (B, n, nb)."""
        B, n = x.shape
        nb = grid.shape[1] - k - 1
        cols, vals = self.local_basis_derivatives(x, grid, k, order)
        flat = _flat_index(cols, n * nb + 1).reshape(-1)
        out = []
        for v in vals:
            dense = np.zeros((B, n * nb + 1), dtype=x.dtype)
            dense.reshape(-1)[flat] = v.reshape(-1)
            out.append(dense[:, :-1].reshape(B, n, nb))
        return out

    def dense_basis(self, x, grid, k):
        """All bases at x, edge-major: x (B, n) -> (n, B, nb), zeros included."""
        B, n = x.shape
        nb = grid.shape[1] - k - 1
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            cols, vals, _ = local_basis(x, grid, k, need_deriv=False, tables=_tables.get(grid, k))
        flat = np.zeros((B, n * nb + 1), dtype=x.dtype)
        flat.reshape(-1)[_flat_index(cols, n * nb + 1).reshape(-1)] = vals.reshape(-1)
        return np.ascontiguousarray(flat[:, :-1].reshape(B, n, nb).transpose(1, 0, 2))

    def edge_forward(self, x, grid, weight, k, *, need_dx, ctx=None):
        """Per-edge spline values: spl[i, b, o] = sum_j weight[i, o, j] B_ij(x[b, i]).

        x (B, n), weight (n, m, nb) -> (spl (n, B, m), dspl = d spl / dx or None, ctx for
        ``edge_backward``).  ctx from an earlier call with the same x and grid skips locating
        the inputs on the grid.

        Each edge function is one polynomial per knot interval, so instead of evaluating k + 1
        bases per input and contracting them with the weights, the weights are first
        contracted with the per-interval basis polynomials (a few hundred numbers per layer),
        and each input then reads one row of that table and runs Horner's scheme.
        """
        B, n = x.shape
        m = weight.shape[1]
        t = _tables.get(grid, k)
        if ctx is None:
            ctx = _edge_locate(x, grid, t)
        e, f = ctx[0], ctx[1]
        table = _interval_table(t, weight, x.dtype, with_derivative=need_dx)

        def coefficient(p):  # every input's coefficient of f**p: (n B, m), one gather at a time
            return np.take(np.ascontiguousarray(table[:, p, :]), e, axis=0)

        fe = f[:, None]
        spl = coefficient(k)
        for p in range(k - 1, -1, -1):
            spl *= fe
            spl += coefficient(p)
        spl = spl.reshape(n, B, m)
        dspl = None
        if need_dx:
            if k == 0:
                dspl = np.zeros_like(spl)
            else:
                dspl = coefficient(2 * k)
                for p in range(k - 2, -1, -1):
                    dspl *= fe
                    dspl += coefficient(k + 1 + p)
                dspl = dspl.reshape(n, B, m)
        return spl, dspl, ctx

    def edge_backward(self, ctx, g):
        """g = dL/dspl (n, B, m) -> dL/dweight (n, m, nb).

        The transpose of ``edge_forward``: per interval, the moments sum g f**p of the inputs
        in it, then through the basis polynomials back to the weights.
        """
        e, f, t, (B, n) = ctx
        m = g.shape[2]
        k, nb = t.k, t.L - t.k
        poly, _, _ = t.edge_tables(g.dtype)
        n_int = poly.shape[0]
        gm = np.reshape(g, (n * B, m))
        moments = np.empty((n_int, k + 1, m), dtype=g.dtype)
        if m == 1 or n * B * m <= _SMALL:
            keys = e if m == 1 else (e[:, None] * m + np.arange(m)).reshape(-1)
            w = gm
            for p in range(k + 1):
                if p:
                    w = w * f[:, None]
                moments[:, p, :] = np.bincount(keys, weights=w.reshape(-1), minlength=n_int * m).reshape(n_int, m)
        else:
            # each input adds its row of g, times f**p, to its interval's row: a sparse (n_int, n B)
            # product with one entry per column, accumulated in float64 like bincount (no (n B m)
            # key array)
            sparse = _scipy_sparse()
            pointers = np.arange(n * B + 1)
            gm64 = gm.astype(np.float64, copy=False)
            fp = np.ones(n * B)
            for p in range(k + 1):
                if p:
                    fp = fp * f
                moments[:, p, :] = sparse.csc_matrix((fp, e, pointers), shape=(n_int, n * B)) @ gm64
        return self._moments_to_weights(moments, poly, t, n, m, nb)


def _weight_rows(weight, dtype=None):
    """weight (n, m, nb) as rows by basis column, (n nb + 1, m), plus the zero row of the
    "dropped entries" column."""
    n, m, nb = weight.shape
    W2 = np.zeros((n * nb + 1, m), dtype=weight.dtype if dtype is None else dtype)
    W2[:-1].reshape(n, nb, m)[...] = np.transpose(weight, (0, 2, 1))
    return W2


def _interval_table(t: GridTables, weight, dtype, *, with_derivative: bool):
    """Every edge's polynomial on every interval: (n (L + 1), k + 1 [+ k], m), the
    coefficients of f**p in rows 0..k and those of its x-derivative after them."""
    poly, _, _ = t.edge_tables(dtype)
    rows = poly if with_derivative else poly[:, : t.k + 1]
    return rows @ np.take(_weight_rows(weight, dtype), t.cols, axis=0)


def _edge_locate(x, grid, t: GridTables):
    """Where every input lies, edge-major: (interval row e (n B,) intp, fraction f (n B,),
    tables, (B, n)).  e = i (L + 1) + v for input i in knot interval v (v = L off the grid,
    whose table rows are zero); f = (x - t_v) / h_v clipped to [0, 1]."""
    B, n = x.shape
    xt = np.ascontiguousarray(x.T)
    idx, _ = interval_index(xt.T, grid, tables=t, exact=True)
    e = (t.row_base[:, None] + idx.T).reshape(-1)
    _, left, inv_span = t.edge_tables(x.dtype)
    f = xt.reshape(-1) - np.take(left, e)
    f *= np.take(inv_span, e)
    np.clip(f, 0.0, 1.0, out=f)
    return e, f, t, (B, n)
