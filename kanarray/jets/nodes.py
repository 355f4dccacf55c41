"""Jets through a node stage (multiplication nodes and the node affine, ``kanarray.nodes``).

A jet (C, B, q) stacks the value, the D first derivatives and the P second derivatives of q
quantities (``rule.Directions``).  The affine maps scale every channel and shift the value; a
product of two jets follows Leibniz's rule,

    (uv)   = u v
    (uv)_d = u_d v + u v_d
    (uv)_p = u_p v + u v_p + u_a v_b + u_b v_a        for the pair p = (a, b),

and a multiplication node of arity a is a - 1 such products, left to right.  The reverse pass is
the transpose of each step, written by hand like the rest of ``kanarray.jets``.
"""

from __future__ import annotations

from typing import NamedTuple

from .._namespace import xsum
from .rule import _pairs_of

__all__ = ["NodeTape", "node_jet", "node_jet_backward"]


class NodeTape(NamedTuple):
    """What ``node_jet_backward`` needs: the stage's input jet Y (C, B, n_sub), the sums' jet after
    their affine map S, the runs of multiplication nodes [(first node, arity, [factor jets], [partial
    products])] and the nodes' jet before their affine map Pn (C, B, n_nodes)."""

    Y: object
    S: object
    runs: list
    Pn: object


def _shifted(Z, shift, xp):
    """Z (C, B, q) with shift (q,) added to the value channel only."""
    return xp.concat([(Z[0, ...] + shift)[None, ...], Z[1:, ...]], axis=0)


def _product(A, B, idx, D: int, xp):
    """The jet of the product of jets A and B (C, B, q)."""
    out = [A[0, ...] * B[0, ...]]
    if D:
        out.append(A[1:1 + D, ...] * B[0:1, ...] + A[0:1, ...] * B[1:1 + D, ...])
    if A.shape[0] > 1 + D:
        a_first, a_second = _pairs_of(A[1:1 + D, ...], idx, xp)
        b_first, b_second = _pairs_of(B[1:1 + D, ...], idx, xp)
        out.append(A[1 + D:, ...] * B[0:1, ...] + A[0:1, ...] * B[1 + D:, ...] + a_first * b_second
                   + a_second * b_first)
    return out[0][None, ...] if len(out) == 1 else xp.concat([out[0][None, ...], *out[1:]], axis=0)


def _product_backward(A, B, G, idx, D: int, xp):
    """(dL/dA, dL/dB) from G = dL/d(the product's jet), all (C, B, q).  The product is symmetric in
    its factors (the pair term u_a v_b + u_b v_a too), so each side's gradient has the same form in
    the other factor."""
    g0, g1, g2 = G[0, ...], G[1:1 + D, ...], G[1 + D:, ...]
    P = g2.shape[0]

    def given(V):  # dL/dU for the product U V
        v0, v1, v2 = V[0, ...], V[1:1 + D, ...], V[1 + D:, ...]
        parts = [g0 * v0 + (xp.sum(g1 * v1, axis=0) if D else 0) + (xp.sum(g2 * v2, axis=0) if P else 0)]
        if D:
            first = g1 * v0[None, ...]
            if P:
                v_first, v_second = _pairs_of(v1, idx, xp)
                first = first + xp.tensordot(idx.Ma, g2 * v_second, axes=1) + xp.tensordot(idx.Mb, g2 * v_first,
                                                                                           axes=1)
            parts.append(first)
        if P:
            parts.append(g2 * v0[None, ...])
        return xp.concat([parts[0][None, ...], *parts[1:]], axis=0) if len(parts) > 1 else parts[0][None, ...]

    return given(B), given(A)


def node_jet(stage, Y, spec, idx, *, keep: bool = True):
    """The stage on the sums' jet Y (C, B, n_sub) -> (the nodes' jet (C, B, n_nodes), ``NodeTape`` or None)."""
    xp = stage.xp
    D = len(spec.dirs)
    S = _shifted(Y * stage.subnode_scale, stage.subnode_bias, xp)
    parts, runs = [S[:, :, :stage.n_add]], []
    for j, a, count, start in stage.runs():
        block = S[:, :, start:start + a * count]
        factors = [block[:, :, i::a] for i in range(a)]  # (C, B, count) each: factor i of every node of the run
        partial = [factors[0]]
        for f in factors[1:]:
            partial.append(_product(partial[-1], f, idx, D, xp))
        parts.append(partial[-1])
        runs.append((j, a, factors, partial))
    Pn = xp.concat(parts, axis=2) if runs else parts[0]
    Z = _shifted(Pn * stage.node_scale, stage.node_bias, xp)
    return Z, (NodeTape(Y, S, runs, Pn) if keep else None)


def node_jet_backward(stage, tape: NodeTape, gZ, spec, idx):
    """gZ = dL/d(the nodes' jet) (C, B, n_nodes) -> (the affine arrays' gradients (empty unless
    trainable), dL/d(the sums' jet) (C, B, n_sub))."""
    xp = stage.xp
    D = len(spec.dirs)
    gP = gZ * stage.node_scale
    C, B = gZ.shape[0], gZ.shape[1]
    pieces = [gP[:, :, :stage.n_add]]
    for j, a, factors, partial in tape.runs:
        count = factors[0].shape[2]
        g = gP[:, :, stage.n_add + j:stage.n_add + j + count]
        grads = [None] * a
        for i in range(a - 1, 0, -1):  # partial[i] = partial[i - 1] * factors[i]
            g, grads[i] = _product_backward(partial[i - 1], factors[i], g, idx, D, xp)
        grads[0] = g
        pieces.append(xp.reshape(xp.stack(grads, axis=3), (C, B, count * a)))  # back to consecutive sub-nodes
    gS = xp.concat(pieces, axis=2) if tape.runs else pieces[0]
    out = {}
    if stage.trainable:
        out = {"subnode_scale": xsum(xp, xsum(xp, gS * tape.Y, axis=0), axis=0),
               "subnode_bias": xsum(xp, gS[0, ...], axis=0),
               "node_scale": xsum(xp, xsum(xp, gZ * tape.Pn, axis=0), axis=0),
               "node_bias": xsum(xp, gZ[0, ...], axis=0)}
    return out, gS * stage.subnode_scale
