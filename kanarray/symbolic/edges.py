"""The symbolic branch of a layer: edges replaced by c * f(a * x + b) + d.

A layer's edge (i, o) is in one of three states: spline (``mask = 1``, no function),
symbolic (a function name here, ``mask = 0`` so the spline branch is off), or pruned
(``mask = 0``, no function).  ``SymbolicEdges`` holds the names, an (in_dim, out_dim)
grid of library names or None, and ``affine`` (in_dim, out_dim, 4) = (a, b, c, d) per edge,
the trainable parameters of the symbolic edges (zeros elsewhere).

The forward pass groups the symbolic edges by function, so each library function runs
once per layer on a (B, edges) array; gathers and scatters are matrix products with small
0/1 matrices, which every array-API backend has.
"""

from __future__ import annotations

import numpy as np

from .._namespace import device_of, to_numpy, xsum
from .library import get_function

__all__ = ["SymbolicEdges"]


class _Group:
    """The edges of one function: rows i, columns o, flat positions i * m + o, and the 0/1
    matrices that gather inputs (n, E), scatter outputs (E, m) and place parameters (E, n m)."""

    def __init__(self, fn, rows, cols, n, m, xp, dtype, device):
        self.fn = fn
        e = len(rows)
        self.flat = [r * m + c for r, c in zip(rows, cols)]
        gather = np.zeros((n, e))
        gather[rows, np.arange(e)] = 1.0
        scatter = np.zeros((e, m))
        scatter[np.arange(e), cols] = 1.0
        place = np.zeros((e, n * m))
        place[np.arange(e), self.flat] = 1.0
        self.gather = xp.asarray(gather, dtype=dtype, device=device)
        self.scatter = xp.asarray(scatter, dtype=dtype, device=device)
        self.place = xp.asarray(place, dtype=dtype, device=device)


class SymbolicEdges:
    """names: (in_dim, out_dim) nested tuples of library names or None (fixed at construction:
    the methods return new objects); affine: array (in_dim, out_dim, 4) of (a, b, c, d);
    active: whether any edge is symbolic."""

    def __init__(self, names, affine, xp):
        self.names = tuple(tuple(row) for row in names)
        self.affine = affine
        self.xp = xp
        self.active = any(name is not None for row in self.names for name in row)
        self._plan = None  # (names, dtype, groups), rebuilt when the names or dtype change

    @classmethod
    def empty(cls, in_dim: int, out_dim: int, xp, dtype, device=None) -> "SymbolicEdges":
        affine = xp.zeros((in_dim, out_dim, 4), dtype=dtype, device=device)
        return cls([[None] * out_dim for _ in range(in_dim)], affine, xp)

    # -- facts --------------------------------------------------------------------------------
    def fixed(self):
        """(in_dim, out_dim) bool host array: True where the edge is symbolic."""
        return np.array([[name is not None for name in row] for row in self.names], dtype=bool).reshape(
            self.affine.shape[:2])

    def edges(self):
        """[(i, o, name)] of the symbolic edges, row by row."""
        return [(i, o, name) for i, row in enumerate(self.names) for o, name in enumerate(row) if name is not None]

    def check_names(self) -> None:
        for _, _, name in self.edges():
            get_function(name)

    # -- copies -------------------------------------------------------------------------------
    def with_edge(self, i: int, o: int, name, params) -> "SymbolicEdges":
        """A copy with edge (i, o) set to ``name`` (None: no function) and params (a, b, c, d)."""
        names = [list(row) for row in self.names]
        names[i][o] = name
        affine = to_numpy(self.affine).copy()
        affine[i, o] = params if name is not None else 0.0
        return SymbolicEdges(names, self.xp.asarray(affine, dtype=self.affine.dtype), self.xp)

    def copy(self) -> "SymbolicEdges":
        return SymbolicEdges(self.names, self.xp.asarray(self.affine, copy=True), self.xp)

    def moved(self, xp, dtype) -> "SymbolicEdges":
        return SymbolicEdges(self.names, xp.asarray(np.ascontiguousarray(to_numpy(self.affine)), dtype=dtype), xp)

    def subset(self, rows, cols) -> "SymbolicEdges":
        names = [[self.names[i][o] for o in cols] for i in rows]
        affine = to_numpy(self.affine)[np.ix_(rows, cols)]
        return SymbolicEdges(names, self.xp.asarray(np.ascontiguousarray(affine), dtype=self.affine.dtype), self.xp)

    # -- computation ----------------------------------------------------------------------------
    def groups(self, x):
        """The symbolic edges grouped by function (built once per names and dtype): objects with fn (the
        library row), gather (n, E), scatter (E, m) and place (E, n m) 0/1 matrices."""
        key = (self.names, x.dtype)
        if self._plan is None or self._plan[0] != key:
            by_name: dict = {}
            for i, o, name in self.edges():
                by_name.setdefault(name, ([], []))
                by_name[name][0].append(i)
                by_name[name][1].append(o)
            n, m = self.affine.shape[:2]
            device = device_of(x)
            groups = [_Group(get_function(name), rows, cols, n, m, self.xp, x.dtype, device)
                      for name, (rows, cols) in by_name.items()]
            self._plan = (key, groups)
        return self._plan[1]

    def group_params(self, group):
        """(a, b, c, d), each (E,), of a group's edges."""
        flat = self.xp.reshape(self.affine, (-1, 4))
        p = self.xp.matmul(group.place, flat)  # (E, 4)
        return p[:, 0], p[:, 1], p[:, 2], p[:, 3]

    def forward(self, x):
        """x (B, in_dim) -> (y (B, out_dim), context for ``backward``); y is the sum of the
        symbolic edges into each output (0 if there are none)."""
        xp = self.xp
        y = None
        ctx = []
        for g in self.groups(x):
            a, b, c, d = self.group_params(g)
            xg = xp.matmul(x, g.gather)  # (B, E)
            z = xg * a + b
            fz = g.fn.fn(z, xp)
            contrib = xp.matmul(fz * c + d, g.scatter)
            y = contrib if y is None else y + contrib
            ctx.append((g, xg, z, fz, a, c))
        return y, ctx

    def edge_values(self, x):
        """Every edge's symbolic activation: x (B, in_dim) -> (in_dim, B, out_dim), zero on the
        non-symbolic edges (for attribution and plots)."""
        xp = self.xp
        n, m = self.affine.shape[:2]
        out = xp.zeros((n, x.shape[0], m), dtype=x.dtype, device=device_of(x))
        for g in self.groups(x):
            a, b, c, d = self.group_params(g)
            val = g.fn.fn(xp.matmul(x, g.gather) * a + b, xp) * c + d  # (B, E)
            # place column e of val at (i_e, :, o_e)
            dense = xp.matmul(val, g.place)  # (B, n m)
            out = out + xp.permute_dims(xp.reshape(dense, (x.shape[0], n, m)), (1, 0, 2))
        return out

    def backward(self, ctx, gy, *, need_dx: bool):
        """gy = dL/dy (B, out_dim) -> (dL/daffine (in_dim, out_dim, 4), dL/dx (B, in_dim) or None)."""
        xp = self.xp
        n, m = self.affine.shape[:2]
        gflat = None
        dx = None
        for g, xg, z, fz, a, c in ctx:
            ge = xp.matmul(gy, xp.matrix_transpose(g.scatter))  # (B, E)
            gz = ge * c * g.fn.deriv(z, xp)
            per_edge = xp.stack([xsum(xp, gz * xg, axis=0), xsum(xp, gz, axis=0),
                                 xsum(xp, ge * fz, axis=0), xsum(xp, ge, axis=0)], axis=1)  # (E, 4)
            placed = xp.matmul(xp.matrix_transpose(g.place), per_edge)  # (n m, 4)
            gflat = placed if gflat is None else gflat + placed
            if need_dx:
                part = xp.matmul(gz * a, xp.matrix_transpose(g.gather))
                dx = part if dx is None else dx + part
        grad = xp.zeros_like(self.affine) if gflat is None else xp.reshape(gflat, (n, m, 4))
        return grad, dx

