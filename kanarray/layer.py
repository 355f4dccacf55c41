"""One KAN layer: its arrays, forward pass and hand-derived backward pass.

Shapes: batch B, inputs n = ``in_dim``, outputs m = ``out_dim``, G grid intervals,
spline order k, nb = G + k bases per input.

    phi_io(x) = mask_io * (scale_base_io * b(x) + scale_sp_io * sum_j coef_ioj B_ij(x))
    y_o       = sum_i phi_io(x_i) + sum_i psi_io(x_i) + bias_o

where psi_io(x) = c f(a x + b) + d on the edges replaced by a library function (the
symbolic branch, ``kanarray.symbolic.edges``; such edges have mask 0) and 0 elsewhere.

The spline part goes through the backend kernels with the folded weight
``coef * (mask * scale_sp)[..., None]``; the base part is one GEMM.  Nothing derived from
the layer's arrays outlives a call unchecked (the NumPy kernels' per-grid tables are
validated against the live grid each time), so editing the arrays in place is always safe.
"""

from __future__ import annotations

import math

import array_api_compat
import numpy as np

from . import spline
from ._namespace import from_host_like, is_numpy_namespace, to_numpy, xsum
from .backends import get_kernels
from .base import base_grad, base_with_grad
from .extrapolation import check_mode, continued_edge_forward, tails
from .symbolic.edges import SymbolicEdges

__all__ = ["KANLayer"]

PARAMETER_NAMES = ("coef", "scale_base", "scale_sp", "bias")


def _matmul(xp):
    """The 2-d matrix product of xp's kernels where they have one (CuPy: also while a CUDA
    graph is recorded), else ``xp.matmul``."""
    return getattr(get_kernels(xp), "matmul", None) or xp.matmul


class KANLayer:
    """A layer mapping (B, in_dim) -> (B, out_dim).

    Attributes (live arrays of the layer's namespace):
        grid (in_dim, G + 2k + 1), coef (in_dim, out_dim, G + k), scale_base (in_dim, out_dim),
        scale_sp (in_dim, out_dim), mask (in_dim, out_dim) of 0/1, bias (out_dim,).
        symbolic: the symbolic branch (``SymbolicEdges``: names and affine (in_dim, out_dim, 4)).
    Trainable: coef, scale_base, scale_sp, bias, and sym_affine when some edge is symbolic.
    """

    def __init__(self, *, grid, coef, scale_base, scale_sp, mask, bias, k: int, base_fun: str, xp, symbolic=None,
                 extrapolate: str = "spline"):
        self.grid = grid
        self.coef = coef
        self.scale_base = scale_base
        self.scale_sp = scale_sp
        self.mask = mask
        self.bias = bias
        self.k = int(k)
        self.base_fun = base_fun
        self.extrapolate = check_mode(extrapolate, self.k)
        self._memo: dict = {}  # values derived from the grid, each checked against it when used
        self.xp = xp
        if symbolic is None:
            symbolic = SymbolicEdges.empty(coef.shape[0], coef.shape[1], xp, coef.dtype,
                                           array_api_compat.device(coef))
        self.symbolic = symbolic

    # -- construction -------------------------------------------------------------------
    @classmethod
    def initialize(
        cls,
        in_dim: int,
        out_dim: int,
        *,
        num: int,
        k: int,
        grid_range,
        base_fun: str,
        noise_scale: float,
        scale_base_mu: float,
        scale_base_sigma: float,
        rng: np.random.Generator,
        xp,
        dtype,
        extrapolate: str = "spline",
    ) -> "KANLayer":
        """pykan's initialization, drawn on the host in float64 so every backend gets the
        same numbers from the same seed.

        coef: minimum-norm least-squares fit of the splines to uniform noise of amplitude
        noise_scale / G at the G + 1 interior grid points; scale_base = mu / sqrt(in_dim) +
        sigma * U(-1, 1) / sqrt(in_dim); scale_sp = 1 / sqrt(in_dim); mask = 1; bias = 0.
        """
        import array_api_compat.numpy as hxp

        grid = spline.uniform_grid(in_dim, num, k, grid_range, xp=hxp, dtype=np.float64)
        interior = grid[:, k : k + num + 1]
        noise = (rng.random((num + 1, in_dim, out_dim)) - 0.5) * noise_scale / num
        coef = spline.curve2coef(np.ascontiguousarray(interior.T), noise, grid, k, xp=hxp)
        root = math.sqrt(in_dim)
        scale_base = scale_base_mu / root + scale_base_sigma * (rng.random((in_dim, out_dim)) * 2 - 1) / root
        scale_sp = np.full((in_dim, out_dim), 1.0 / root)
        arrays = dict(
            grid=grid,
            coef=coef,
            scale_base=scale_base,
            scale_sp=scale_sp,
            mask=np.ones((in_dim, out_dim)),
            bias=np.zeros(out_dim),
        )
        return cls(
            **{name: xp.asarray(np.ascontiguousarray(a), dtype=dtype) for name, a in arrays.items()},
            k=k,
            base_fun=base_fun,
            xp=xp,
            extrapolate=extrapolate,
        )

    # -- shape facts ----------------------------------------------------------------------
    @property
    def in_dim(self) -> int:
        return self.coef.shape[0]

    @property
    def out_dim(self) -> int:
        return self.coef.shape[1]

    @property
    def num(self) -> int:
        """G, the number of grid intervals."""
        return self.grid.shape[1] - 1 - 2 * self.k

    ARRAY_NAMES = ("grid", "coef", "scale_base", "scale_sp", "mask", "bias")

    def arrays(self) -> dict:
        return {name: getattr(self, name) for name in self.ARRAY_NAMES}

    def parameters(self) -> dict:
        params = {name: getattr(self, name) for name in PARAMETER_NAMES}
        if self.symbolic.active:
            params["sym_affine"] = self.symbolic.affine
        return params

    def copy(self) -> "KANLayer":
        """An independent copy on the same namespace."""
        arrays = {name: self.xp.asarray(a, copy=True) for name, a in self.arrays().items()}
        return KANLayer(**arrays, k=self.k, base_fun=self.base_fun, xp=self.xp, symbolic=self.symbolic.copy(),
                        extrapolate=self.extrapolate)

    def moved(self, xp, dtype) -> "KANLayer":
        """A copy of this layer on namespace ``xp`` (arrays go through the host)."""
        arrays = {name: xp.asarray(np.ascontiguousarray(to_numpy(a)), dtype=dtype) for name, a in self.arrays().items()}
        return KANLayer(**arrays, k=self.k, base_fun=self.base_fun, xp=xp, symbolic=self.symbolic.moved(xp, dtype),
                        extrapolate=self.extrapolate)

    def subset(self, rows, cols) -> "KANLayer":
        """A copy keeping inputs ``rows`` and outputs ``cols`` (lists of indices)."""
        host = {name: to_numpy(a) for name, a in self.arrays().items()}
        arrays = dict(grid=host["grid"][rows], coef=host["coef"][np.ix_(rows, cols)],
                      scale_base=host["scale_base"][np.ix_(rows, cols)], scale_sp=host["scale_sp"][np.ix_(rows, cols)],
                      mask=host["mask"][np.ix_(rows, cols)], bias=host["bias"][cols])
        arrays = {name: from_host_like(self.xp, a, self.coef) for name, a in arrays.items()}
        return KANLayer(**arrays, k=self.k, base_fun=self.base_fun, xp=self.xp,
                        symbolic=self.symbolic.subset(rows, cols), extrapolate=self.extrapolate)

    # -- computation ----------------------------------------------------------------------
    def check_consistent(self) -> None:
        """Raise ValueError if the arrays' shapes no longer fit together (after a user
        replaced one of them)."""
        n, m, nb = self.coef.shape
        expect = {
            "grid": (n, nb + self.k + 1),
            "scale_base": (n, m),
            "scale_sp": (n, m),
            "mask": (n, m),
            "bias": (m,),
        }
        expect["sym_affine"] = (n, m, 4)
        for name, shape in expect.items():
            got = tuple((self.symbolic.affine if name == "sym_affine" else getattr(self, name)).shape)
            if got != shape:
                raise ValueError(
                    f"layer arrays disagree: coef has shape {(n, m, nb)} (k={self.k}), so {name} must have "
                    f"shape {shape}, got {got}"
                )

    def forward(self, x, *, need_dx: bool = False, reuse=None):
        """x (B, in_dim), already validated -> (y (B, out_dim), cache for ``backward``).

        reuse: the cache of an earlier call with the same x and grid; the basis evaluation
        and base activations in it are used again (``fit`` evaluates one batch many times).
        """
        self.check_consistent()
        xp = self.xp
        if self._spline_branch_off():
            y, sym_ctx = self._add_symbolic(x, xp.zeros((x.shape[0], self.out_dim), dtype=x.dtype) + self.bias)
            return y, (x, None, None, None, None, None, None, need_dx, sym_ctx, None)
        mask_sp = self.mask * self.scale_sp
        weight = self.coef * mask_sp[:, :, None]
        tail = self._tails(x)
        y, kernel_ctx = get_kernels(xp).spline_forward(
            x if tail is None else tail.clipped, self.grid, weight, self.k, need_dx=need_dx,
            reuse=None if reuse is None else reuse[6]
        )
        if tail is not None:
            y = y + tail.summed(weight, xp)
        base_x = None
        mask_base = None
        if self.base_fun != "zero":
            if reuse is None or reuse[1] is None:
                base_x = base_with_grad(self.base_fun, x, xp, need_grad=False)[0]
            else:
                base_x = reuse[1]
            mask_base = self.mask * self.scale_base
            y = y + _matmul(xp)(base_x, mask_base)
        y = y + self.bias
        y, sym_ctx = self._add_symbolic(x, y)
        cache = (x, base_x, mask_sp, mask_base, self.coef, self.mask, kernel_ctx, need_dx, sym_ctx, tail)
        return y, cache

    def _tails(self, x):
        """``extrapolation.Tails`` of x when the splines continue linearly beyond the grid, else None."""
        return tails(x, self.grid, self.k, self.xp, self._memo) if self.extrapolate == "linear" else None

    def _spline_branch_off(self) -> bool:
        """Whether every edge's spline branch is masked out (an all-symbolic layer): then the
        spline and base evaluations are skipped.  Checked on NumPy only, where it costs no
        device synchronisation."""
        return self.symbolic.active and is_numpy_namespace(self.xp) and not np.any(self.mask)

    def _add_symbolic(self, x, y):
        """y plus the symbolic edges' outputs, and their context (None without symbolic edges)."""
        if not self.symbolic.active:
            return y, None
        ys, ctx = self.symbolic.forward(x)
        return y + ys, ctx

    def _symbolic_backward(self, ctx, gy, grads, dx, need_dx: bool):
        """Add the symbolic branch's gradients to grads (as "sym_affine") and dx."""
        if ctx is None:
            return dx
        grads["sym_affine"], sdx = self.symbolic.backward(ctx, gy, need_dx=need_dx)
        return dx + sdx if need_dx and sdx is not None else dx

    def backward(self, cache, gy, *, need_dx: bool = False):
        """gy = dL/dy (B, out_dim) -> (grads dict keyed like ``parameters()``, dx (B, in_dim) or None)."""
        xp = self.xp
        x, base_x, mask_sp, mask_base, coef, mask, kernel_ctx, had_dx, sym_ctx, tail = cache
        if need_dx and not had_dx:
            raise ValueError("backward(need_dx=True) needs forward(need_dx=True)")
        if kernel_ctx is None:  # spline branch off (``_spline_branch_off``): its gradients are zero
            grads = {name: xp.zeros_like(getattr(self, name)) for name in ("coef", "scale_sp", "scale_base")}
            grads["bias"] = xsum(xp, gy, axis=0)
            dx = xp.zeros_like(x) if need_dx else None
            return grads, self._symbolic_backward(sym_ctx, gy, grads, dx, need_dx)
        # the kernels' dx at a clipped input is the spline's slope at the end: the line's slope
        dweight, dx = get_kernels(xp).spline_backward(kernel_ctx, gy, need_dx=need_dx)
        if tail is not None:
            dweight = dweight + tail.weight_grad(gy, xp)
        grads = {
            "coef": dweight * mask_sp[:, :, None],
            "scale_sp": mask * xsum(xp, coef * dweight, axis=2),
            "bias": xsum(xp, gy, axis=0),
        }
        if base_x is None:
            grads["scale_base"] = xp.zeros_like(mask)
        else:
            grads["scale_base"] = mask * _matmul(xp)(xp.matrix_transpose(base_x), gy)
            if need_dx:
                dx = dx + base_grad(self.base_fun, x, xp) * _matmul(xp)(gy, xp.matrix_transpose(mask_base))
        return grads, self._symbolic_backward(sym_ctx, gy, grads, dx, need_dx)

    # -- per-edge evaluation (regularization needs every phi_io, not only their sums) -------
    def forward_edges(self, x, *, need_dx: bool = True, basis_ctx=None):
        """x (B, in_dim), validated -> (y (B, out_dim), phi (in_dim, B, out_dim), cache).

        Per-edge path, used when a regularization needs the edge activations phi_io(x_bi)
        themselves.  y equals ``forward(x)[0]``.  basis_ctx: ``cache[0]`` of an earlier call
        with the same x and grid, whose basis evaluation is then reused (the first layer
        during ``fit``).  ``cache[1]`` is x transposed, (in_dim, B).  With the NumPy kernels
        and numba installed, the whole pass is one compiled loop (``backends.numba_edges``).
        """
        self.check_consistent()
        xp = self.xp
        kernels = get_kernels(xp)
        tail = self._tails(x)
        if getattr(kernels, "fused", False):
            y, phi, xt, ctx = kernels.edge_layer_forward(
                x, self.grid, self.coef, self.mask * self.scale_sp, self.mask * self.scale_base, self.bias, self.k,
                self.base_fun, need_dx=need_dx, tail=tail)
            y, sym_ctx = self._add_symbolic(x, y)
            return y, phi, (None, xt, ctx, sym_ctx)
        spl, dspl, basis_ctx = continued_edge_forward(kernels, x, self.grid, self.coef, self.k, xp, tail,
                                                      need_dx=need_dx, ctx=basis_ctx)
        mask_sp = (self.mask * self.scale_sp)[:, None, :]
        phi = spl * mask_sp
        dphi = dspl * mask_sp if need_dx else None
        # (n, B), laid out row by row (the reshapes copy): every pass below runs along B
        xt = xp.reshape(xp.reshape(xp.permute_dims(x, (1, 0)), (-1,)), (x.shape[1], x.shape[0]))
        base_x = None
        if self.base_fun != "zero":
            base_x, dbase = base_with_grad(self.base_fun, xt, xp, need_grad=need_dx)
            mask_base = (self.mask * self.scale_base)[:, None, :]
            phi += mask_base * base_x[:, :, None]
            if need_dx:
                dphi += mask_base * dbase[:, :, None]
        y, sym_ctx = self._add_symbolic(x, xsum(xp, phi, axis=0) + self.bias)
        return y, phi, (basis_ctx, xt, spl, base_x, dphi, sym_ctx, tail)

    def backward_edges(self, cache, gy, gphi, *, need_dx: bool = False):
        """Gradients from dL/dy (B, out_dim) plus a per-edge dL/dphi (in_dim, B, out_dim) (or None;
        after a compiled forward also a ``regularization.SpreadGradient``, which adds its dL/dx).

        Returns (grads dict keyed like ``parameters()``, dx (B, in_dim) or None).
        """
        xp = self.xp
        if cache[0] is None:  # the compiled forward's cache: (None, xt, kernel ctx)
            mask_sp = self.mask * self.scale_sp
            spread = None
            if isinstance(gphi, tuple):  # a regularization.SpreadGradient, applied inside the loop
                spread, gphi = gphi, None
            dweight, gsp, gsb, dxt = get_kernels(xp).edge_layer_backward(cache[2], gy, gphi, need_dx=need_dx,
                                                                         spread=spread)
            grads = {"coef": dweight * mask_sp[:, :, None], "scale_sp": self.mask * gsp,
                     "bias": xsum(xp, gy, axis=0), "scale_base": self.mask * gsb}
            dx = xp.permute_dims(dxt, (1, 0)) if need_dx else None
            return grads, self._symbolic_backward(cache[3], gy, grads, dx, need_dx)
        basis_ctx, _, spl, base_x, dphi, sym_ctx, tail = cache
        if need_dx and dphi is None:
            raise ValueError("backward_edges(need_dx=True) needs forward_edges(need_dx=True)")
        g = gy[None, :, :] if gphi is None else gphi + gy[None, :, :]  # (n, B, m)
        dspl = get_kernels(xp).edge_backward(basis_ctx, g)  # (n, m, nb)
        if tail is not None:
            dspl = dspl + tail.coef_grad_edges(g, xp)
        # reductions over B and m as vecdot / matmul: no (n, B, m) product is formed
        grads = {
            "coef": dspl * (self.mask * self.scale_sp)[:, :, None],
            "scale_sp": self.mask * xp.vecdot(g, spl, axis=-2),
            "bias": xsum(xp, gy, axis=0),
        }
        if base_x is None:
            grads["scale_base"] = xp.zeros_like(self.mask)
        else:
            grads["scale_base"] = self.mask * xp.matmul(base_x[:, None, :], g)[:, 0, :]
        dx = xp.permute_dims(xp.vecdot(g, dphi, axis=-1), (1, 0)) if need_dx else None
        return grads, self._symbolic_backward(sym_ctx, gy, grads, dx, need_dx)

    def __repr__(self) -> str:
        return f"KANLayer({self.in_dim} -> {self.out_dim}, G={self.num}, k={self.k}, base_fun={self.base_fun!r})"
