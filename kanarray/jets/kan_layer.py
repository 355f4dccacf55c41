"""Input jets through one ``KANLayer``, forward and reverse (``kanarray.jets.rule``).

Shapes: channels C = 1 + D + P, batch B, inputs n, outputs m, nb = G + k bases, F = nb + 1
features per input (the bases and the base function b).

Every edge is phi_io(x) = sum_f W[i, f, o] F_f(x_i): the features are the bases and b(x), the
weights the folded ``coef * mask * scale_sp`` and ``mask * scale_base``.  So the jet of a layer is
the jet of its features (``rule.lift`` on the features' derivatives, (C, B, n, F)) times W, all
channels in one GEMM (C B, n F) @ (n F, m), plus the bias on the value channel and the symbolic
edges' jets.  With ``extrapolate="linear"`` the spline features are those of the input clipped to
the interior grid, plus the lines on the value; the lines' slope is the clipped point's, and their
second and higher derivatives vanish beyond the ends.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._namespace import is_numpy_namespace
from ..backends import get_kernels
from ..base import base_derivatives
from ..extrapolation import tails
from ..layer import layer_gradients
from .rule import lift, lift_backward, split
from .symbolic import symbolic_jet, symbolic_jet_backward

__all__ = ["LayerTape", "layer_jet", "layer_jet_backward"]


class LayerTape(NamedTuple):
    """What ``layer_jet`` keeps for ``layer_jet_backward``: the lifted features phi (C B, n F), the
    features' derivatives fs (each (B, n, F)), the input's derivative channels x1, x2 (with a
    trailing axis), the folded weight W (n F, m) and the masked scales, the symbolic context."""

    phi: object
    fs: list
    x1: object
    x2: object
    W: object
    mask_sp: object
    shape: tuple
    symbolic: object


def _features(layer, x, order: int, xp):
    """[F, F', ..., F^(order)] each (B, n, nb + 1): the bases (continued as lines with
    extrapolate="linear") and the base function, and their x-derivatives."""
    tail = tails(x, layer.grid, layer.k, xp) if layer.extrapolate == "linear" else None
    at = x if tail is None else tail.clipped
    bases = get_kernels(xp).basis_derivatives(at, layer.grid, layer.k, order)
    if tail is not None:
        bases[0] = bases[0] + tail.below[:, :, None] * tail.d_lo[None, :, :] + tail.above[:, :, None] * tail.d_hi[None, :, :]
        inside = xp.astype((tail.below == 0) & (tail.above == 0), x.dtype)[:, :, None]
        bases = bases[:2] + [b * inside for b in bases[2:]]
    base = base_derivatives(layer.base_fun, x, xp, order)
    return [xp.concat([b, f[:, :, None]], axis=2) for b, f in zip(bases, base)]


def _cached_features(layer, cache, spec, order):
    """(fs, phi) kept in ``cache`` for this layer's grid, or None (NumPy only: the check is a host
    comparison of the grid, so editing it in place is safe)."""
    if cache is None or not is_numpy_namespace(layer.xp):
        return None
    hit = cache.get("first")
    if (hit is not None and hit[0] == (spec, order, layer.extrapolate, layer.base_fun) and hit[1].shape == layer.grid.shape
            and np.array_equal(hit[1], layer.grid)):
        return hit[2], hit[3]
    return None


def layer_jet(layer, X, spec, idx, *, need_dx: bool, keep: bool = True, cache: dict | None = None):
    """The jet X (C, B, n) through ``layer`` -> (Y (C, B, m), ``LayerTape`` or None).

    need_dx: keep what the input's cotangent needs (one more feature derivative); keep: whether a
    reverse pass follows at all; cache: a dict the caller keeps for a first layer whose input X stays
    the same (collocation points): its lifted features are reused while the grid is unchanged."""
    xp = layer.xp
    layer.check_consistent()
    C, B, n = X.shape
    m, nb = layer.out_dim, layer.coef.shape[2]
    x0, x1, x2 = split(X, spec)
    order = spec.order + (1 if need_dx else 0)
    x1e, x2e = x1[..., None], x2[..., None]
    hit = _cached_features(layer, cache, spec, order)
    if hit is None:
        fs = _features(layer, x0, order, xp)
        phi = xp.reshape(lift(fs, x1e, x2e, idx, xp), (C * B, n * (nb + 1)))
        if cache is not None and is_numpy_namespace(xp):
            cache["first"] = ((spec, order, layer.extrapolate, layer.base_fun), np.array(layer.grid, copy=True), fs, phi)
    else:
        fs, phi = hit
    mask_sp = layer.mask * layer.scale_sp
    W = xp.concat([layer.coef * mask_sp[:, :, None], (layer.mask * layer.scale_base)[:, :, None]], axis=2)
    W = xp.reshape(xp.permute_dims(W, (0, 2, 1)), (n * (nb + 1), m))
    Y = xp.reshape(xp.matmul(phi, W), (C, B, m))
    bias = xp.concat([layer.bias[None, None, :], xp.zeros((C - 1, 1, m), dtype=X.dtype, device=getattr(X, "device", None))])
    Y = Y + bias
    sym = None
    if layer.symbolic.active:
        ys, sym = symbolic_jet(layer.symbolic, X, spec, idx, need_dx=need_dx)
        Y = Y + ys
    if not keep:
        return Y, None
    return Y, LayerTape(phi, fs, x1e, x2e, W, mask_sp, (C, B, n, m, nb), sym)


def layer_jet_backward(layer, tape: LayerTape, gY, spec, idx, *, need_dx: bool):
    """gY = dL/dY (C, B, m) -> (grads keyed like ``layer.parameters()``, dL/dX (C, B, n) or None)."""
    xp = layer.xp
    C, B, n, m, nb = tape.shape
    g2d = xp.reshape(gY, (C * B, m))
    gW = xp.permute_dims(xp.reshape(xp.matmul(xp.matrix_transpose(tape.phi), g2d), (n, nb + 1, m)), (0, 2, 1))
    dweight = gW[:, :, :nb]
    grads = layer_gradients(xp, gY[0, ...], dweight, xp.sum(layer.coef * dweight, axis=2), gW[:, :, nb], tape.mask_sp,
                            layer.mask)
    gX = None
    if need_dx:
        gphi = xp.reshape(xp.matmul(g2d, xp.matrix_transpose(tape.W)), (C, B, n, nb + 1))
        g0, g1, g2 = lift_backward(tape.fs, tape.x1, tape.x2, gphi, idx, xp)
        parts = [xp.sum(g0, axis=-1)[None, ...]]
        if g1 is not None:
            parts.append(xp.sum(g1, axis=-1))
        if g2 is not None:
            parts.append(xp.sum(g2, axis=-1))
        gX = parts[0] if len(parts) == 1 else xp.concat(parts, axis=0)
    if tape.symbolic is not None:
        grads["sym_affine"], gs = symbolic_jet_backward(layer.symbolic, tape.symbolic, gY, spec, idx, need_dx=need_dx)
        if need_dx:
            gX = gX + gs
    return grads, gX
