"""Spline kernels for CuPy arrays: CUDA kernels for the local B-spline work, cuBLAS where a
dense GEMM is cheaper.  Imported only when a model lives on CuPy (``get_kernels``).

The kernels (``cuda_source``) are compiled once per (device, k, dtype) (the element-wise ones
per (device, dtype)) with NVRTC through
``cupy.RawModule`` and cached.  Per call they run on the current stream with no host
synchronisation.  Two contractions, as in the NumPy kernels:

* "sparse": the fused kernels touch only the k + 1 non-zero bases of each input; the weight
  gradient accumulates with atomics (rows sharing an interval add into the same entries);
* "dense": the (B, n nb) basis matrix is scattered from the same local bases and contracted
  with cuBLAS (``matmul``); cheaper when nb is small next to k + 1 (``choose_contraction``).
"""

from __future__ import annotations

import cupy

from .cuda_source import (ELEMENTWISE_KERNEL_NAMES, KERNEL_NAMES, MATMUL_TILE, THREADS, blocks_for,
                          choose_contraction, coef_grad_launch, cuda_source, elementwise_source, matmul_split)
from .generic import Kernels

__all__ = ["CupyKernels", "choose_contraction"]

_modules: dict = {}


def _kernels(k: int, dtype) -> dict:
    """{name: cupy.RawKernel} for order k and dtype on the current device (compiled once)."""
    name = cupy.dtype(dtype).name
    key = (cupy.cuda.runtime.getDevice(), k, name)
    found = _modules.get(key)
    if found is None:
        module = cupy.RawModule(code=cuda_source(k, name), options=("--std=c++14",))
        found = {kernel: module.get_function(kernel) for kernel in KERNEL_NAMES}
        _modules[key] = found
    return found


def _elementwise_kernels(dtype) -> dict:
    """{name: cupy.RawKernel} of the element-wise kernels for dtype on the current device."""
    name = cupy.dtype(dtype).name
    key = (cupy.cuda.runtime.getDevice(), "elementwise", name)
    found = _modules.get(key)
    if found is None:
        module = cupy.RawModule(code=elementwise_source(name), options=("--std=c++14",))
        found = {kernel: module.get_function(kernel) for kernel in ELEMENTWISE_KERNEL_NAMES}
        _modules[key] = found
    return found


def _recording() -> bool:
    """Whether the current stream is recording a CUDA graph."""
    try:
        return bool(cupy.cuda.get_current_stream().is_capturing())
    except cupy.cuda.runtime.CUDARuntimeError:  # pragma: no cover - a stream that cannot be asked
        return False


class CupyKernels(Kernels):
    """The kernel object of ``backends.get_kernels`` for CuPy (see ``backends/__init__``).

    contraction: 'auto' (by shape, ``choose_contraction``), 'dense' or 'sparse'.
    elementwise: use the one-kernel Adam update and SiLU (``adam_update``, ``silu``); by default
    unless switched off (``kanarray.config.current().cupy_elementwise``, from
    KANARRAY_CUPY_ELEMENTWISE: to time the array-API forms against them)."""

    name = "cupy"

    def __init__(self, xp, contraction: str = "auto", *, elementwise: bool | None = None):
        if contraction not in ("auto", "dense", "sparse"):
            raise ValueError(f"contraction must be 'auto', 'dense' or 'sparse', got {contraction!r}")
        if elementwise is None:
            from .. import config

            elementwise = config.current().cupy_elementwise
        self.elementwise = bool(elementwise)
        self.xp = xp
        self.contraction = contraction

    # -- local bases --------------------------------------------------------------------
    def local_bases(self, x, grid, k: int, *, need_dx: bool):
        """x (B, n), grid (n, L + 1) -> (cols (B, n) int32, vals (B, n, k + 1), dvals or None).

        cols[b, i] = v - k for x[b, i] in interval v (0 off the grid); vals[b, i, q] = B_{v-k+q}
        (zero for bases that do not exist and off the grid); dvals their derivatives."""
        x = cupy.ascontiguousarray(x)
        grid = cupy.ascontiguousarray(grid, dtype=x.dtype)
        B, n = x.shape
        L = grid.shape[1] - 1
        cols = cupy.empty((B, n), dtype=cupy.int32)
        vals = cupy.empty((B, n, k + 1), dtype=x.dtype)
        dvals = cupy.empty((B, n, k + 1), dtype=x.dtype) if need_dx else vals  # unused when not needed
        _kernels(k, x.dtype)["locate_bases"](
            blocks_for(B * n), (THREADS,), (x, grid, cupy.int64(B), cupy.int32(n), cupy.int32(L),
                                          cupy.int32(need_dx), cols, vals, dvals))
        return cols, vals, (dvals if need_dx else None)

    def _dense(self, cols, vals, nb: int, k: int):
        B, n = cols.shape
        dense = cupy.zeros((B, n * nb), dtype=vals.dtype)
        _kernels(k, vals.dtype)["scatter_dense"](
            blocks_for(B * n * (k + 1)), (THREADS,), (cols, vals, cupy.int64(B), cupy.int32(n), cupy.int32(nb), dense))
        return dense

    def _coef_grad(self, cols, vals, g, g_stride_i: int, n: int, m: int, nb: int, k: int):
        """dwt (n, nb, m): sum over the batch of vals[b, i, q] g_i[b, o] at column cols + q."""
        B = cols.shape[0]
        dwt = cupy.zeros((n, nb, m), dtype=vals.dtype)
        plan = coef_grad_launch(B, n, m, nb, vals.dtype.itemsize)
        kernel = _kernels(k, vals.dtype)[plan["kernel"]]
        args = (cols, vals, g, cupy.int64(g_stride_i), cupy.int64(B), cupy.int32(n), cupy.int32(m), cupy.int32(nb))
        if plan["kernel"] == "coef_grad_shared":
            args += (cupy.int64(plan["rows"]),)
        kernel(plan["grid"], plan["block"], args + (dwt,), shared_mem=plan["shared_mem"])
        return dwt

    # -- layer contraction (KANLayer.forward / backward) ---------------------------------
    def spline_forward(self, x, grid, weight, k, *, need_dx, reuse=None):
        """x (B, n), weight (n, m, nb) -> (y (B, m), ctx); reuse: the ctx of an earlier call
        with the same x and grid, whose local bases (and dense matrix) are used again."""
        B, n = x.shape
        m, nb = weight.shape[1], weight.shape[2]
        if reuse is not None and not (need_dx and reuse[2] is None):
            cols, vals, dvals, dense = reuse[:4]
        else:
            cols, vals, dvals = self.local_bases(x, grid, k, need_dx=need_dx)
            mode = self.contraction
            if mode == "auto":
                mode = choose_contraction(B, n, nb, k, x.dtype.itemsize)
            dense = self._dense(cols, vals, nb, k) if mode == "dense" else None
        wt = cupy.ascontiguousarray(cupy.transpose(weight, (0, 2, 1)))  # (n, nb, m)
        if dense is not None:
            y = self.matmul(dense, wt.reshape(n * nb, m))
        else:
            y = cupy.empty((B, m), dtype=x.dtype)
            _kernels(k, x.dtype)["spline_fwd"](
                blocks_for(B * m), (THREADS,), (cols, vals, wt, cupy.int64(B), cupy.int32(n), cupy.int32(m),
                                              cupy.int32(nb), y))
        return y, (cols, vals, dvals, dense, wt, (B, n, m, nb, k))

    def spline_backward(self, ctx, gy, *, need_dx):
        cols, vals, dvals, dense, wt, (B, n, m, nb, k) = ctx
        gy = cupy.ascontiguousarray(gy)
        if dense is not None:
            dwt = self.matmul(dense.T, gy).reshape(n, nb, m)
        else:
            dwt = self._coef_grad(cols, vals, gy, 0, n, m, nb, k)
        dx = None
        if need_dx:
            if dvals is None:
                raise ValueError("need_dx=True in the backward needs need_dx=True in the forward")
            dx = cupy.empty((B, n), dtype=gy.dtype)
            _kernels(k, gy.dtype)["spline_dx"](
                blocks_for(B * n * 32), (THREADS,), (cols, dvals, wt, gy, cupy.int64(B), cupy.int32(n), cupy.int32(m),
                                                   cupy.int32(nb), dx))
        return cupy.transpose(dwt, (0, 2, 1)), dx

    # -- per-edge terms (regularised fits, grid updates) ---------------------------------
    def dense_basis(self, x, grid, k):
        """All bases at x, edge-major: x (B, n) -> (n, B, nb)."""
        B, n = x.shape
        nb = grid.shape[1] - 1 - k
        cols, vals, _ = self.local_bases(x, grid, k, need_dx=False)
        return cupy.transpose(self._dense(cols, vals, nb, k).reshape(B, n, nb), (1, 0, 2))

    def edge_forward(self, x, grid, weight, k, *, need_dx, ctx=None):
        """spl[i, b, o] = sum_j weight[i, o, j] B_ij(x[b, i]): x (B, n), weight (n, m, nb) ->
        (spl (n, B, m), dspl or None, ctx for ``edge_backward``; reused when given)."""
        B, n = x.shape
        m, nb = weight.shape[1], weight.shape[2]
        if ctx is None or (need_dx and ctx[2] is None):
            ctx = (*self.local_bases(x, grid, k, need_dx=need_dx), nb, k)
        cols, vals, dvals = ctx[:3]
        wt = cupy.ascontiguousarray(cupy.transpose(weight, (0, 2, 1)))
        spl = cupy.empty((n, B, m), dtype=x.dtype)
        dspl = cupy.empty((n, B, m), dtype=x.dtype) if need_dx else spl
        _kernels(k, x.dtype)["edge_fwd"](
            blocks_for(n * B * m), (THREADS,),
            (cols, vals, dvals if need_dx else vals, wt, cupy.int64(B), cupy.int32(n), cupy.int32(m), cupy.int32(nb),
             cupy.int32(need_dx), spl, dspl))
        return spl, (dspl if need_dx else None), ctx

    def edge_backward(self, ctx, g):
        """g = dL/dspl (n, B, m) -> dL/dweight (n, m, nb)."""
        cols, vals, _, nb, k = ctx
        n, B, m = g.shape
        dwt = self._coef_grad(cols, vals, cupy.ascontiguousarray(g), B * m, n, m, nb, k)
        return cupy.transpose(dwt, (0, 2, 1))

    # -- matrix products ----------------------------------------------------------------------
    def matmul(self, a, b):
        """a (M, K) @ b (K, N) -> (M, N): cuBLAS, except while the current stream records a CUDA
        graph (``cuda_graph``), where CuPy refuses cuBLAS calls: then ``matmul_tiled``."""
        if _recording():
            return self.matmul_tiled(a, b)
        return a @ b

    def matmul_tiled(self, a, b):
        """a (M, K) @ b (K, N) -> (M, N) C-contiguous, through the tiled kernel (any strides)."""
        if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
            raise ValueError(f"matmul_tiled takes (M, K) and (K, N) arrays, got shapes {a.shape} and {b.shape}")
        dtype = cupy.result_type(a, b)
        a, b = a.astype(dtype, copy=False), b.astype(dtype, copy=False)
        (M, K), N = a.shape, b.shape[1]
        if M * N == 0 or K == 0:
            return cupy.zeros((M, N), dtype=dtype)
        splits, k_chunk = matmul_split(M, N, K)
        parts = cupy.empty((splits, M, N), dtype=dtype)
        size = dtype.itemsize
        tile = MATMUL_TILE
        _elementwise_kernels(dtype)["matmul_tiled"](
            (-(-M // tile), -(-N // tile), splits), (tile, tile),
            (a, cupy.int64(a.strides[0] // size), cupy.int64(a.strides[1] // size), b,
             cupy.int64(b.strides[0] // size), cupy.int64(b.strides[1] // size), parts, cupy.int64(M), cupy.int64(N),
             cupy.int64(K), cupy.int64(k_chunk)), shared_mem=2 * tile * (tile + 1) * size)
        return parts[0] if splits == 1 else parts.sum(axis=0)

    # -- element-wise chains in one launch (base.base_with_grad, optim.Adam.step) -----------
    def silu(self, x, *, need_value: bool = True, need_grad: bool = False):
        """(b(x) or None, b'(x) or None) of the SiLU base function in one launch; x any shape.
        Returns None when x's dtype is not float32/float64 or ``elementwise`` is off (the caller
        computes it)."""
        if not self.elementwise or x.dtype.name not in ("float32", "float64"):
            return None
        x = cupy.ascontiguousarray(x)
        value = cupy.empty_like(x) if need_value else None
        grad = cupy.empty_like(x) if need_grad else None
        if x.size:
            _elementwise_kernels(x.dtype)["silu"](
                blocks_for(x.size), (THREADS,),
                (x, cupy.int64(x.size), cupy.int32(need_value), cupy.int32(need_grad),
                 x if value is None else value, x if grad is None else grad))
        return value, grad

    def base_with_grad(self, name: str, x, *, need_grad: bool = True):
        """``Kernels.base_with_grad``: SiLU in one launch (``silu``) where it applies."""
        fused = self.silu(x, need_grad=need_grad) if name == "silu" else None
        return super().base_with_grad(name, x, need_grad=need_grad) if fused is None else fused

    def base_grad(self, name: str, x):
        """``Kernels.base_grad``: SiLU's derivative in one launch (``silu``) where it applies."""
        fused = self.silu(x, need_value=False, need_grad=True) if name == "silu" else None
        return super().base_grad(name, x) if fused is None else fused[1]

    def adam_step(self, p, g, m, v, *, lr, betas, eps, weight_decay, decoupled, step):
        """``Kernels.adam_step`` in one launch (``adam_update``) where it applies."""
        moments = self.adam_update(p, g, m, v, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                   decoupled=decoupled, step=step)
        if moments is None:
            return super().adam_step(p, g, m, v, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                     decoupled=decoupled, step=step)
        return moments

    def adam_update(self, p, g, m, v, *, lr, betas, eps, weight_decay, decoupled, step):
        """One Adam (AdamW if decoupled) step of parameter p in one launch, as
        ``Kernels.adam_step`` computes it: p (C-contiguous, any shape) is updated in place and
        the new moments (m, v) are returned; m and v are None before the first step.  Returns
        None, changing nothing, when p is not C-contiguous or ``elementwise`` is off (the caller
        then takes the array-API path)."""
        if not self.elementwise or not p.flags.c_contiguous or p.dtype.name not in ("float32", "float64"):
            return None
        g = cupy.ascontiguousarray(g, dtype=p.dtype)  # the kernel reads g as p's type
        fresh = m is None or v is None
        m_new, v_new = cupy.empty_like(p), cupy.empty_like(p)
        if p.size:
            b1, b2 = betas
            f64 = cupy.float64
            _elementwise_kernels(p.dtype)["adam_update"](
                blocks_for(p.size), (THREADS,),
                (p, g, g if fresh else cupy.ascontiguousarray(m), g if fresh else cupy.ascontiguousarray(v), m_new,
                 v_new, cupy.int64(p.size), f64(lr), f64(b1), f64(b2), f64(eps), f64(weight_decay),
                 f64(1 - b1**step), f64(1 - b2**step), cupy.int32(bool(decoupled)), cupy.int32(fresh)))
        return m_new, v_new
