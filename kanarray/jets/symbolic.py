"""Input jets through a layer's symbolic edges psi(x) = c f(a x + b) + d (``SymbolicEdges``).

Per function group of E edges: the inputs' jet gathered to (C, B, E), z = a x + b (its jet is a
times the input's, plus b on the value), f's jet by ``rule.lift``, then c times it plus d on the
value, scattered onto the outputs.  f and f' are the library's (safe) functions; f'' and f''' are
the sympy function's derivatives (``library_derivatives``, compiled once per function).
"""

from __future__ import annotations

import functools

import numpy as np

from .rule import lift, lift_backward

__all__ = ["library_derivatives", "symbolic_jet", "symbolic_jet_backward"]


@functools.lru_cache(maxsize=None)
def _higher(name: str, sympy_fn):
    """The exact first, second and third derivatives of a library function (from its sympy form), as
    ``sympy_arrays`` functions."""
    import sympy

    from ..sympy_arrays import array_function

    z = sympy.Symbol("z", real=True)
    f = sympy_fn(z)
    return tuple(array_function(sympy.diff(f, z, r), [z]) for r in (1, 2, 3))


def library_derivatives(row, z, xp, order: int) -> list:
    """[f(z), f1(z), ..., f_order(z)] (the derivatives) of library row ``row`` (``SymbolicFunction``), order <= 3.

    f and f1 are the library's safe functions; f2 and f3 the exact ones where the safe f1 equals the exact
    one (and is finite), and 0 where the safe function is clamped (its slope is 0 there), so that no NaN or
    infinity reaches training from a singular function's curvature."""
    out = [row.fn(z, xp), row.deriv(z, xp)]
    if order >= 2:
        exact1, f2, f3 = _higher(row.name, row.sympy_fn)
        with np.errstate(all="ignore"):
            e1 = exact1(xp, z)
            kept = xp.isfinite(e1) & (xp.abs(out[1] - e1) <= 1e-9 * (1.0 + xp.abs(e1)))
            for fn in (f2, f3)[: order - 1]:
                v = fn(xp, z)
                out.append(xp.where(kept & xp.isfinite(v), v, xp.zeros_like(v)))
    return out[: order + 1]


def symbolic_jet(edges, X, spec, idx, *, need_dx: bool):
    """The symbolic edges' contribution to a layer's output jet: X (C, B, n) -> ((C, B, m), context).
    The context holds one more derivative of f (the parameters' gradients need it)."""
    del need_dx  # the gradients of (a, b) need f's next derivative either way
    xp = edges.xp
    D = len(spec.dirs)
    out, ctx = None, []
    for g in edges.groups(X[0, ...]):
        a, b, c, d = edges.group_params(g)
        Xg = xp.matmul(X, g.gather)  # (C, B, E)
        Z = Xg * a
        z0 = Z[0, ...] + b
        fs = library_derivatives(g.fn, z0, xp, spec.order + 1)
        Gj = lift(fs, Z[1 : 1 + D, ...], Z[1 + D :, ...], idx, xp)
        psi = Gj * c
        psi = xp.concat([psi[:1, ...] + d, psi[1:, ...]], axis=0)
        contrib = xp.matmul(psi, g.scatter)
        out = contrib if out is None else out + contrib
        ctx.append((g, Xg, Z, fs, Gj, a, c))
    return out, ctx


def symbolic_jet_backward(edges, ctx, gY, spec, idx, *, need_dx: bool):
    """gY (C, B, m) -> (dL/daffine (n, m, 4), dL/dX (C, B, n) or None)."""
    xp = edges.xp
    n, m = edges.affine.shape[:2]
    D = len(spec.dirs)
    gflat, gX = None, None
    for g, Xg, Z, fs, Gj, a, c in ctx:
        gpsi = xp.matmul(gY, xp.matrix_transpose(g.scatter))  # (C, B, E)
        gc = xp.sum(xp.sum(gpsi * Gj, axis=0), axis=0)
        gd = xp.sum(gpsi[0, ...], axis=0)
        gz0, gz1, gz2 = lift_backward(fs, Z[1 : 1 + D, ...], Z[1 + D :, ...], gpsi * c, idx, xp)
        parts = [gz0[None, ...]] + [p for p in (gz1, gz2) if p is not None]
        gZ = parts[0] if len(parts) == 1 else xp.concat(parts, axis=0)
        ga = xp.sum(xp.sum(gZ * Xg, axis=0), axis=0)
        gb = xp.sum(gz0, axis=0)
        placed = xp.matmul(xp.matrix_transpose(g.place), xp.stack([ga, gb, gc, gd], axis=1))  # (n m, 4)
        gflat = placed if gflat is None else gflat + placed
        if need_dx:
            part = xp.matmul(gZ * a, xp.matrix_transpose(g.gather))
            gX = part if gX is None else gX + part
    grad = xp.zeros_like(edges.affine) if gflat is None else xp.reshape(gflat, (n, m, 4))
    return grad, gX
