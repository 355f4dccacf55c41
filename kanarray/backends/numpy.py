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

Per-grid tables (``GridTables``: uniformity, knot interval -> columns, padded knots) are
cached by grid identity and re-validated against a copy of the grid on every call, so
in-place edits of the grid are always seen.
"""

from __future__ import annotations

import functools
import weakref

import numpy as np
from numpy.polynomial import polynomial as P

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
        idx = np.minimum(u, L - 1).astype(np.intp)  # truncation is floor here: u >= 0
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
        np.clip(b, 0, t.n_bins - 1, out=b)
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
    B, n = x.shape
    idx = np.empty((B, n), dtype=np.intp)
    for i in range(n):
        idx[:, i] = np.searchsorted(grid[i], x[:, i], side="right") - 1
    np.clip(idx, 0, grid.shape[1] - 2, out=idx)
    return idx


@functools.lru_cache(maxsize=None)
def cardinal_coefficients(k: int, dtype: str = "float64"):
    """Power-basis coefficients of the k + 1 uniform B-splines on one interval.

    Returns C (k + 1, k + 1) with ``B_{v-k+m}(t_v + f h) = sum_p C[p, m] f**p`` for f in
    [0, 1), and D (k + 1, k + 1) with ``d/df`` of the same (its last row is zero).  Built
    by running de Boor's recursion on polynomials.
    """
    N = [np.array([1.0])]
    for j in range(1, k + 1):
        saved = None
        nxt = []
        for r in range(j):
            temp = N[r] / j
            term = P.polymul([r + 1, -1.0], temp)
            nxt.append(term if saved is None else P.polyadd(term, saved))
            saved = P.polymul([j - r - 1, 1.0], temp)
        nxt.append(saved)
        N = nxt
    C = np.zeros((k + 1, k + 1))
    D = np.zeros((k + 1, k + 1))
    for m, poly in enumerate(N):
        C[: len(poly), m] = poly
        dpoly = P.polyder(poly)
        D[: len(dpoly), m] = dpoly
    return C.astype(dtype), D.astype(dtype)


def _recursion_general(x, knot, inv, k):
    """de Boor's recursion with per-input knots ``knot(q) = t[idx + q]`` (q = 1-k .. k)
    and reciprocal spans ``inv(j, r) = 1 / (t[idx + r + 1] - t[idx + 1 - j + r])``.

    Returns (order-k values, order-(k-1) values) as lists of k + 1 and k arrays.
    """
    left = {j: x - knot(1 - j) for j in range(1, k + 1)}
    right = {j: knot(j) - x for j in range(1, k + 1)}
    N = [np.ones_like(x)]
    previous = N
    for j in range(1, k + 1):
        previous = N
        saved = None
        nxt = []
        for r in range(j):
            temp = N[r] * inv(j, r)
            term = right[r + 1] * temp
            nxt.append(term if saved is None else term + saved)
            saved = left[j - r] * temp
        nxt.append(saved)
        N = nxt
    return N, previous


def _span_pairs(k: int):
    """The (j, r) pairs of the recursion, in table order."""
    return [(j, r) for j in range(1, k + 1) for r in range(j)]


class GridTables:
    """Everything the kernels derive from one grid (n, L + 1) and order k, computed once.

    uniform: all rows equally spaced; t0, tL, inv_h (n,): first and last knot, 1 / spacing;
    cols (n * (L + 1), k + 1) int32: for row i and interval v (v = L: off the grid), the
    basis-matrix column of each of the k + 1 entries (``n * nb`` for bases that do not
    exist); knots_t (2k + k (k + 1) / 2, n * (L + 1)): for non-uniform grids, the knots
    t[v + q] (q = 1-k .. k) each interval's recursion reads and the reciprocals of its knot
    spans; bins: for non-uniform grids, the interval at the start of each of 4L equal
    bins per row (None where knots cluster too much for that to pay).
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
        with np.errstate(divide="ignore"):
            self.inv_h = np.where(h > 0, 1.0 / np.where(h > 0, h, 1.0), 0.0).astype(grid.dtype)
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
        self._build_bins(grid)
        self.knots_t = None
        if not (self.uniform and k >= 1):
            # per interval: the 2k knots t[v + q] the recursion reads (padded past the row
            # ends with the row's spacing) and the reciprocals of its k (k + 1) / 2 spans;
            # padded knots only feed bases that do not exist, whose entries are dropped
            step = np.where(h > 0, h, 1.0)[:, None]
            pad = np.arange(1, k + 1, dtype=grid.dtype)
            tpad = np.concatenate([grid[:, :1] - step * pad[::-1], grid, grid[:, -1:] + step * pad], axis=1)
            self.q = np.arange(1 - k, k + 1) if k >= 1 else np.arange(0, 2)
            where = np.clip(np.arange(L + 1)[:, None] + k + self.q[None, :], 0, L + 2 * k)
            knots = tpad[:, where]  # (n, L + 1, len(q))
            knots[:, L, :] = np.arange(len(self.q), dtype=grid.dtype)  # off-grid row: harmless spaced knots
            q0 = int(self.q[0])
            spans = [knots[:, :, r + 1 - q0] - knots[:, :, 1 - j + r - q0] for j, r in _span_pairs(k)]
            with np.errstate(divide="ignore"):
                inv = [np.where(d > 0, 1.0 / np.where(d > 0, d, 1.0), 0.0) for d in spans]
            rows = [knots[:, :, c] for c in range(len(self.q))] + inv
            self.knots_t = np.stack([r.reshape(-1) for r in rows]).astype(grid.dtype)

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
    """GridTables by grid identity, each checked against a copy of the grid it was built
    from on every use, so an in-place edit of the grid is always seen.  An entry leaves
    the cache when its grid array is freed, so the cache holds tables for live grids only
    (and at most ``size`` of them)."""

    def __init__(self, size: int = 64):
        self.size = size
        self.entries: dict = {}

    def get(self, grid, k: int) -> GridTables:
        key = (id(grid), k, grid.shape, grid.dtype.str)
        hit = self.entries.get(key)
        if hit is not None and np.array_equal(hit[0], grid):
            return hit[1]
        tables = GridTables(grid, k)
        if hit is None:
            if len(self.entries) >= self.size:
                self.entries.pop(next(iter(self.entries)))
            weakref.finalize(grid, self.entries.pop, key, None)
        self.entries[key] = (grid.copy(), tables)
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
        q0, nq = int(t.q[0]), len(t.q)
        rows = np.take(t.knots_t, table_index, axis=1).reshape(-1, B, n)
        pair = {jr: nq + c for c, jr in enumerate(_span_pairs(k))}
        kr = lambda qq: rows[qq - q0]  # noqa: E731
        inv = lambda j, r: rows[pair[(j, r)]]  # noqa: E731
        xe = np.where(idx < L, x, 0.5 * (kr(0) + kr(1)))
        N, previous = _recursion_general(xe, kr, inv, k)
        vals = np.stack(N, axis=-1).astype(dtype, copy=False)
        if need_deriv:
            # dB_{v-k+m}/dx = k (N^{k-1}_{m-1} / span(k, m-1) - N^{k-1}_m / span(k, m))
            dvals = np.zeros_like(vals)
            for mm in range(k + 1 if k >= 1 else 0):
                term = 0.0
                if mm >= 1:
                    term = previous[mm - 1] * inv(k, mm - 1)
                if mm <= k - 1:
                    term = term - previous[mm] * inv(k, mm)
                dvals[..., mm] = k * term
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


class NumpyKernels:
    """Local B-spline kernels for NumPy arrays.

    contraction: 'auto' (by shape), 'dense' or 'sparse' (tests and benchmarks force one).
    """

    name = "numpy"

    def __init__(self, contraction: str = "auto"):
        if contraction not in ("auto", "dense", "sparse"):
            raise ValueError(f"contraction must be 'auto', 'dense' or 'sparse', got {contraction!r}")
        self.contraction = contraction

    def spline_forward(self, x, grid, weight, k, *, need_dx):
        B, n = x.shape
        m, nb = weight.shape[1], weight.shape[2]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            cols, vals, dvals = local_basis(x, grid, k, need_deriv=need_dx, tables=_tables.get(grid, k))
        mode = self.contraction
        if mode == "auto":
            mode = choose_contraction(B, n, m, nb, k)
        # weight rows by basis column, plus the zero row of the "dropped entries" column
        W2 = np.zeros((n * nb + 1, m), dtype=weight.dtype)
        W2[:-1].reshape(n, nb, m)[...] = np.transpose(weight, (0, 2, 1))
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
