"""Second-order input jets and the chain rule through an elementwise function.

A jet of an array h (B, n) that depends on the raw inputs x holds, stacked on a leading
*channel* axis (C = 1 + D + P, shape (C, B, n)):

* channel 0: the value h;
* channels 1 .. D: the first derivatives dh/dx_a along the D directions ``dirs`` (raw input
  columns);
* channels 1 + D .. C - 1: the P second derivatives d2h / dx_a dx_b of ``pairs`` (a, b
  positions into dirs: (a, a) for the diagonal, a < b for the mixed ones).

For an elementwise f with derivatives f1, f2 at the value (and f3 for the reverse pass):

    f(h)_a  = f1 h_a,            f(h)_ab = f2 h_a h_b + f1 h_ab

``lift`` applies that rule, ``lift_backward`` its transpose.  A KAN edge is such an f (the
spline, the base function, a library function), so jets travel through a layer edge by edge.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["Directions", "directions", "split", "lift", "lift_backward"]


class Directions(NamedTuple):
    """dirs: the raw input columns of the first derivatives (D); pairs: ((a, b), ...) positions into
    dirs of the second derivatives (P); n_inputs: the model's input count."""

    dirs: tuple
    pairs: tuple
    n_inputs: int

    @property
    def channels(self) -> int:
        return 1 + len(self.dirs) + len(self.pairs)

    @property
    def order(self) -> int:
        return 2 if self.pairs else 1 if self.dirs else 0

    def index_arrays(self, xp, device=None):
        """(pa, pb, Ma, Mb): pa, pb (P,) int arrays of the pairs' positions, Ma, Mb (D, P) 0/1 host
        float64 incidences (Ma[a, p] = 1 where pairs[p][0] == a)."""
        pa = [p for p, _ in self.pairs]
        pb = [q for _, q in self.pairs]
        D, P = len(self.dirs), len(self.pairs)
        Ma, Mb = np.zeros((D, P)), np.zeros((D, P))
        Ma[pa, np.arange(P)] = 1.0
        Mb[pb, np.arange(P)] = 1.0
        as_int = lambda v: xp.asarray(np.asarray(v, dtype=np.int64), device=device)  # noqa: E731
        return as_int(pa), as_int(pb), Ma, Mb


def directions(n_inputs: int, order: int, mixed: bool = False) -> Directions:
    """Every input as a direction: order 0 (values), 1 (gradients) or 2 (also the diagonal second
    derivatives, or with mixed every pair a <= b)."""
    dirs = tuple(range(n_inputs)) if order >= 1 else ()
    if order < 2:
        pairs = ()
    elif mixed:
        pairs = tuple((a, b) for a in range(n_inputs) for b in range(a, n_inputs))
    else:
        pairs = tuple((a, a) for a in range(n_inputs))
    return Directions(dirs, pairs, n_inputs)


def split(X, spec: Directions):
    """A stacked jet (C, ...) -> (value (...), first (D, ...), second (P, ...))."""
    D = len(spec.dirs)
    return X[0, ...], X[1 : 1 + D, ...], X[1 + D :, ...]


class _Index:
    """The pair indices of a spec on one namespace, built once per call of the network pass."""

    def __init__(self, spec: Directions, xp, like):
        self.spec = spec
        pa, pb, Ma, Mb = spec.index_arrays(xp, getattr(like, "device", None))
        self.pa, self.pb = pa, pb
        self.Ma = xp.asarray(Ma, dtype=like.dtype, device=getattr(like, "device", None))
        self.Mb = xp.asarray(Mb, dtype=like.dtype, device=getattr(like, "device", None))


def index_of(spec: Directions, xp, like) -> _Index:
    return _Index(spec, xp, like)


def _pairs_of(x1, idx, xp):
    """(x1 at the pairs' first positions, at their second), each (P, ...)."""
    return xp.take(x1, idx.pa, axis=0), xp.take(x1, idx.pb, axis=0)


def lift(fs, x1, x2, idx, xp):
    """The jet of f(h) (C, *S): fs = [f(h), f'(h), f''(h)...] each of shape S; x1 (D, *S'), x2 (P, *S')
    the derivative channels of h, broadcastable against S."""
    out = [fs[0][None, ...]]
    if x1.shape[0]:
        out.append(fs[1][None, ...] * x1)
    if x2.shape[0]:
        a, b = _pairs_of(x1, idx, xp)
        out.append(fs[2][None, ...] * (a * b) + fs[1][None, ...] * x2)
    return out[0] if len(out) == 1 else xp.concat(out, axis=0)


def lift_backward(fs, x1, x2, g, idx, xp):
    """The transpose of ``lift``: g = dL/d(f(h)'s jet) (C, *S) -> (dL/dh (S), dL/dh' (D, *S),
    dL/dh'' (P, *S)), unreduced over axes where x1, x2 broadcast.  fs needs one derivative more
    than ``lift`` used (f'' with first derivatives, f''' with second)."""
    D, P = x1.shape[0], x2.shape[0]
    g0, g1, g2 = g[0, ...], g[1 : 1 + D, ...], g[1 + D :, ...]
    gh = g0 * fs[1]
    gh1 = gh2 = None
    if D:
        gh = gh + fs[2] * xp.sum(g1 * x1, axis=0)
        gh1 = g1 * fs[1][None, ...]
    if P:
        a, b = _pairs_of(x1, idx, xp)
        gh = gh + fs[2] * xp.sum(g2 * x2, axis=0) + fs[3] * xp.sum(g2 * (a * b), axis=0)
        r = g2 * fs[2][None, ...]
        gh1 = gh1 + xp.tensordot(idx.Ma, r * b, axes=1) + xp.tensordot(idx.Mb, r * a, axes=1)
        gh2 = g2 * fs[1][None, ...]
    return gh, gh1, gh2
