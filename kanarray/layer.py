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
from typing import NamedTuple

import numpy as np

from . import spline
from ._checks import check_knots
from ._namespace import device_of, from_host_like, host_namespace, is_numpy_namespace, to_numpy, xsum
from .backends import get_kernels
from .extrapolation import check_mode, tails
from .symbolic.edges import SymbolicEdges

__all__ = ["KANLayer", "LayerCache", "EdgeLayerCache", "layer_gradients"]

PARAMETER_NAMES = ("coef", "scale_base", "scale_sp", "bias")


class LayerCache(NamedTuple):
    """What ``KANLayer.forward`` keeps for ``backward``.

    x (B, n): the input; base_x (B, n) or None: b(x); mask_sp, mask_base (n, m): the masked
    scales; coef, mask: the arrays the forward used; spline: the kernels' ``spline_forward``
    context, None when the spline branch is off (an all-symbolic layer); need_dx: whether the
    forward kept what dx needs; symbolic: the symbolic branch's context or None; tail:
    ``extrapolation.Tails`` or None; nodes: the node stage's context or None."""

    x: object
    base_x: object
    mask_sp: object
    mask_base: object
    coef: object
    mask: object
    spline: object
    need_dx: bool
    symbolic: object
    tail: object
    nodes: object = None


class EdgeLayerCache(NamedTuple):
    """What ``KANLayer.forward_edges`` keeps for ``backward_edges``: the kernels' cache
    (``backends.generic.EdgeCache`` or ``CompiledEdgeCache``) and the symbolic branch's context."""

    edges: object
    symbolic: object
    nodes: object = None

    @property
    def basis(self):
        """The reusable basis evaluation (None after a compiled pass)."""
        return self.edges.basis

    @property
    def xt(self):
        """The input transposed, (n, B)."""
        return self.edges.xt

    @property
    def compiled(self) -> bool:
        return self.edges.compiled


def layer_gradients(xp, gy, dweight, gsp, gsb, mask_sp, mask) -> dict:
    """A layer's gradient dict (the keys of ``KANLayer.parameters()`` but sym_affine) from the
    reductions its backward computed: dweight (n, m, nb) = d/d(folded spline weight), gsp (n, m)
    = d/d(scale_sp) before the mask, gsb (n, m) or None (no base branch) = d/d(scale_base) before
    the mask, gy (B, m) = dL/dy; mask_sp = mask * scale_sp and mask as the forward used them."""
    return {
        "coef": dweight * mask_sp[:, :, None],
        "scale_sp": mask * gsp,
        "bias": xsum(xp, gy, axis=0),
        "scale_base": xp.zeros_like(mask) if gsb is None else mask * gsb,
    }


class KANLayer:
    """A layer mapping (B, in_dim) -> (B, n_nodes); n_nodes = out_dim without a node stage.

    Attributes (live arrays of the layer's namespace):
        grid (in_dim, G + 2k + 1), coef (in_dim, out_dim, G + k), scale_base (in_dim, out_dim),
        scale_sp (in_dim, out_dim), mask (in_dim, out_dim) of 0/1, bias (out_dim,).
        symbolic: the symbolic branch (``SymbolicEdges``: names and affine (in_dim, out_dim, 4)).
        nodes: None, or the node stage (``kanarray.nodes.NodeStage``: multiplication nodes and
            pykan's node affine) mapping the out_dim sums ("sub-nodes") to n_nodes outputs.
    Trainable: coef, scale_base, scale_sp, bias, sym_affine when some edge is symbolic, and the
    node stage's affine arrays when it is trainable.
    """

    def __init__(self, *, grid, coef, scale_base, scale_sp, mask, bias, k: int, base_fun: str, xp, symbolic=None,
                 extrapolate: str = "spline", nodes=None):
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
                                           device_of(coef))
        self.symbolic = symbolic
        self.nodes = nodes

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
        hxp = host_namespace()

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
        check_knots(grid, "the initial grid")  # KAN's checks of grid_range make these hold
        if not all(np.all(np.isfinite(a)) for a in arrays.values()):
            raise ValueError(f"the initialization of a {in_dim} -> {out_dim} layer (G={num}, k={k}) produced NaN or "
                             "infinite values")
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
    def n_nodes(self) -> int:
        """The layer's output width: out_dim, or the node stage's node count."""
        return self.out_dim if self.nodes is None else self.nodes.n_nodes

    def node_groups(self) -> list:
        """The sums (indices into out_dim) behind each output node: [[j]] per node without a node
        stage, else the stage's groups (a multiplication node's consecutive factors)."""
        return [[j] for j in range(self.out_dim)] if self.nodes is None else self.nodes.groups()

    @property
    def num(self) -> int:
        """G, the number of grid intervals."""
        return self.grid.shape[1] - 1 - 2 * self.k

    ARRAY_NAMES = ("grid", "coef", "scale_base", "scale_sp", "mask", "bias")

    def arrays(self) -> dict:
        return {name: getattr(self, name) for name in self.ARRAY_NAMES}

    def state(self) -> dict:
        """Every live array the layer computes with, by name: ``arrays()``, "sym_affine" and, with a
        node stage, "nodes.<name>" for its affine arrays (snapshots and digests; same keys on a copy)."""
        out = {**self.arrays(), "sym_affine": self.symbolic.affine}
        if self.nodes is not None:
            out.update({f"nodes.{name}": a for name, a in self.nodes.arrays().items()})
        return out

    def parameters(self) -> dict:
        params = {name: getattr(self, name) for name in PARAMETER_NAMES}
        if self.symbolic.active:
            params["sym_affine"] = self.symbolic.affine
        if self.nodes is not None:
            params.update(self.nodes.parameters())
        return params

    def copy(self) -> "KANLayer":
        """An independent copy on the same namespace."""
        arrays = {name: self.xp.asarray(a, copy=True) for name, a in self.arrays().items()}
        return KANLayer(**arrays, k=self.k, base_fun=self.base_fun, xp=self.xp, symbolic=self.symbolic.copy(),
                        extrapolate=self.extrapolate, nodes=None if self.nodes is None else self.nodes.copy())

    def moved(self, xp, dtype, *, name: str = "layer") -> "KANLayer":
        """A copy of this layer on namespace ``xp`` (arrays go through the host); ValueError
        (starting with ``name``) when a finite value does not survive a cast to a narrower dtype
        (1e300 in float32 is inf).  Values that were not finite already stay as they are."""
        with np.errstate(over="ignore"):  # overflow is reported below
            arrays = {key: xp.asarray(np.ascontiguousarray(to_numpy(a)), dtype=dtype)
                      for key, a in self.arrays().items()}
            moved = KANLayer(**arrays, k=self.k, base_fun=self.base_fun, xp=xp,
                             symbolic=self.symbolic.moved(xp, dtype), extrapolate=self.extrapolate,
                             nodes=None if self.nodes is None else self.nodes.moved(xp, dtype))
        cast = moved.state()
        for key, a in self.state().items():
            a = to_numpy(a)
            lost = np.isfinite(a) & ~np.isfinite(to_numpy(cast[key]))
            if lost.any():
                raise ValueError(f"{name}: {key} holds {int(lost.sum())} value(s) beyond the new dtype's range "
                                 f"(up to {float(np.max(np.abs(a[lost]))):.3g}), which the cast would make infinite")
        return moved

    def subset(self, rows, cols) -> "KANLayer":
        """A copy keeping inputs ``rows`` and outputs ``cols`` (lists of indices; with a node stage,
        of nodes: a multiplication node keeps all its sub-nodes)."""
        nodes = None
        if self.nodes is not None:
            nodes, cols = self.nodes.subset(cols)
        host = {name: to_numpy(a) for name, a in self.arrays().items()}
        arrays = dict(grid=host["grid"][rows], coef=host["coef"][np.ix_(rows, cols)],
                      scale_base=host["scale_base"][np.ix_(rows, cols)], scale_sp=host["scale_sp"][np.ix_(rows, cols)],
                      mask=host["mask"][np.ix_(rows, cols)], bias=host["bias"][cols])
        arrays = {name: from_host_like(self.xp, a, self.coef) for name, a in arrays.items()}
        return KANLayer(**arrays, k=self.k, base_fun=self.base_fun, xp=self.xp,
                        symbolic=self.symbolic.subset(rows, cols), extrapolate=self.extrapolate, nodes=nodes)

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
        if self.nodes is not None:
            if self.nodes.n_sub != m:
                raise ValueError(f"the node stage takes {self.nodes.n_sub} sub-nodes ({self.nodes.n_add} additions, "
                                 f"arities {list(self.nodes.arities)}) but the layer has {m} outputs")
            for name, shape in self.nodes.expected_shapes().items():
                got = tuple(getattr(self.nodes, name).shape)
                if got != shape:
                    raise ValueError(f"the node stage's {name} must have shape {shape}, got {got}")

    def check_values(self) -> None:
        """Raise ValueError unless the arrays' values make a layer: every array finite, each
        grid row non-decreasing with a positive span (``check_knots``), and every symbolic edge's
        spline branch off (mask 0).  Copies the arrays to the host: for loading and building
        models, not for every call (``check_consistent`` is the cheap per-call check)."""
        self.check_consistent()
        arrays = {name: to_numpy(a) for name, a in self.state().items()}
        for name, a in arrays.items():
            if not np.all(np.isfinite(a)):
                raise ValueError(f"{name} holds NaN or infinite values")
        check_knots(arrays["grid"], "grid")
        live = [(i, o, name) for i, o, name in self.symbolic.edges() if arrays["mask"][i, o] != 0]
        if live:
            i, o, name = live[0]
            raise ValueError(f"edge ({i}, {o}) is symbolic ({name!r}) but its spline is live (mask "
                             f"{arrays['mask'][i, o]!r}); a symbolic edge has mask 0")

    def forward(self, x, *, need_dx: bool = False, reuse=None):
        """x (B, in_dim), already validated -> (y (B, n_nodes), ``LayerCache`` for ``backward``).

        reuse: the cache of an earlier call with the same x and grid; the basis evaluation
        and base activations in it are used again (``fit`` evaluates one batch many times).
        """
        self.check_consistent()
        xp = self.xp
        if self._spline_branch_off():
            y, sym_ctx = self._add_symbolic(x, xp.zeros((x.shape[0], self.out_dim), dtype=x.dtype) + self.bias)
            y, node_ctx = self._node_forward(y)
            return y, LayerCache(x, None, None, None, None, None, None, need_dx, sym_ctx, None, node_ctx)
        kernels = get_kernels(xp)
        mask_sp = self.mask * self.scale_sp
        weight = self.coef * mask_sp[:, :, None]
        tail = self._tails(x)
        y, kernel_ctx = kernels.spline_forward(
            x if tail is None else tail.clipped, self.grid, weight, self.k, need_dx=need_dx,
            reuse=None if reuse is None else reuse.spline
        )
        if tail is not None:
            y = y + tail.summed(weight, xp)
        base_x = None
        mask_base = None
        if self.base_fun != "zero":
            if reuse is None or reuse.base_x is None:
                base_x = kernels.base_with_grad(self.base_fun, x, need_grad=False)[0]
            else:
                base_x = reuse.base_x
            mask_base = self.mask * self.scale_base
            y = y + kernels.matmul(base_x, mask_base)
        y = y + self.bias
        y, sym_ctx = self._add_symbolic(x, y)
        y, node_ctx = self._node_forward(y)
        return y, LayerCache(x, base_x, mask_sp, mask_base, self.coef, self.mask, kernel_ctx, need_dx, sym_ctx, tail,
                             node_ctx)

    def _node_forward(self, y):
        """The node stage on the sums y (B, out_dim) -> (B, n_nodes) and its context (None without one)."""
        return (y, None) if self.nodes is None else self.nodes.forward(y)

    def _node_backward(self, ctx, gy):
        """(the node stage's gradients (a dict), dL/d(sums) (B, out_dim)) from dL/d(output) gy."""
        return ({}, gy) if ctx is None else self.nodes.backward(ctx, gy)

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

    def backward(self, cache: LayerCache, gy, *, need_dx: bool = False):
        """gy = dL/dy (B, n_nodes) -> (grads dict keyed like ``parameters()``, dx (B, in_dim) or None)."""
        xp = self.xp
        if need_dx and not cache.need_dx:
            raise ValueError("backward(need_dx=True) needs forward(need_dx=True)")
        node_grads, gy = self._node_backward(cache.nodes, gy)
        if cache.spline is None:  # spline branch off (``_spline_branch_off``): its gradients are zero
            grads = {name: xp.zeros_like(getattr(self, name)) for name in ("coef", "scale_sp", "scale_base")}
            grads["bias"] = xsum(xp, gy, axis=0)
            dx = xp.zeros_like(cache.x) if need_dx else None
            grads.update(node_grads)
            return grads, self._symbolic_backward(cache.symbolic, gy, grads, dx, need_dx)
        kernels = get_kernels(xp)
        # the kernels' dx at a clipped input is the spline's slope at the end: the line's slope
        dweight, dx = kernels.spline_backward(cache.spline, gy, need_dx=need_dx)
        if cache.tail is not None:
            dweight = dweight + cache.tail.weight_grad(gy, xp)
        gsb = None
        if cache.base_x is not None:
            gsb = kernels.matmul(xp.matrix_transpose(cache.base_x), gy)
            if need_dx:
                dx = dx + kernels.base_grad(self.base_fun, cache.x) * kernels.matmul(
                    gy, xp.matrix_transpose(cache.mask_base))
        grads = layer_gradients(xp, gy, dweight, xsum(xp, cache.coef * dweight, axis=2), gsb, cache.mask_sp,
                                cache.mask) | node_grads
        return grads, self._symbolic_backward(cache.symbolic, gy, grads, dx, need_dx)

    # -- per-edge evaluation (regularization needs every phi_io, not only their sums) -------
    def forward_edges(self, x, *, need_dx: bool = True, basis_ctx=None):
        """x (B, in_dim), validated -> (y (B, n_nodes), phi (in_dim, B, out_dim), ``EdgeLayerCache``).

        Per-edge path, used when a regularization needs the edge activations phi_io(x_bi)
        themselves.  y equals ``forward(x)[0]``.  basis_ctx: ``cache.basis`` of an earlier call
        with the same x and grid, whose basis evaluation is then reused (the first layer
        during ``fit``).  ``cache.xt`` is x transposed, (in_dim, B).  The pass runs in the
        kernels (``Kernels.edge_layer_forward``: with the NumPy kernels and numba, one compiled loop).
        """
        self.check_consistent()
        kernels = get_kernels(self.xp)
        y, phi, edges = kernels.edge_layer_forward(
            x, self.grid, self.coef, self.mask * self.scale_sp, self.mask * self.scale_base, self.bias, self.k,
            self.base_fun, need_dx=need_dx, tail=self._tails(x), basis=basis_ctx)
        y, sym_ctx = self._add_symbolic(x, y)
        y, node_ctx = self._node_forward(y)
        return y, phi, EdgeLayerCache(edges, sym_ctx, node_ctx)

    def backward_edges(self, cache: EdgeLayerCache, gy, gphi, *, need_dx: bool = False):
        """Gradients from dL/dy (B, n_nodes) plus a per-edge dL/dphi (in_dim, B, out_dim) (or None;
        after a compiled forward also a ``regularization.SpreadGradient``, which adds its dL/dx).

        Returns (grads dict keyed like ``parameters()``, dx (B, in_dim) or None).
        """
        xp = self.xp
        node_grads, gy = self._node_backward(cache.nodes, gy)
        dweight, gsp, gsb, dxt = get_kernels(xp).edge_layer_backward(cache.edges, gy, gphi, need_dx=need_dx)
        grads = layer_gradients(xp, gy, dweight, gsp, gsb, self.mask * self.scale_sp, self.mask) | node_grads
        dx = xp.permute_dims(dxt, (1, 0)) if need_dx else None
        return grads, self._symbolic_backward(cache.symbolic, gy, grads, dx, need_dx)

    def __repr__(self) -> str:
        nodes = "" if self.nodes is None else f" ({self.nodes.n_add} add, {self.nodes.n_mult} mult)"
        return (f"KANLayer({self.in_dim} -> {self.out_dim}{nodes}, G={self.num}, k={self.k}, "
                f"base_fun={self.base_fun!r})")
