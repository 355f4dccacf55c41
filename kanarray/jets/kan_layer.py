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

GATHER_OUTPUTS = 2  # up to this many outputs the local path gathers weights; beyond, one dense GEMM pays


class LayerTape(NamedTuple):
    """What ``layer_jet`` keeps for ``layer_jet_backward``: the lifted features phi (C B, n F), the
    features' derivatives fs (each (B, n, F)), the input's derivative channels x1, x2 (with a trailing
    axis), the folded weight W (n F, m), the masked scales, the symbolic context, and ``place``: None
    (dense), or on the local path (NumPy, fs (B, n, k + 2): each input's non-zero features) ("gather", the
    rows (B, n, k + 2) of those features in W (n F + 1, m; the last row zero, for bases that do not
    exist)) with phi (C, B, n, k + 2) and W gathered to (B, n, k + 2, m), or ("scatter", their flat
    positions (C, B, n, k + 2) in phi (C B, n F + 1)) with W (n F + 1, m)."""

    phi: object
    fs: list
    x1: object
    x2: object
    W: object
    mask_sp: object
    shape: tuple
    symbolic: object
    place: object


def _features(layer, x, order: int, xp):
    """[F, F', ..., F^(order)] each (B, n, nb + 1): the bases (continued as lines with
    extrapolate="linear") and the base function, and their x-derivatives."""
    tail = tails(x, layer.grid, layer.k, xp) if layer.extrapolate == "linear" else None
    at = x if tail is None else tail.clipped
    bases = get_kernels(xp).basis_derivatives(at, layer.grid, layer.k, order)
    if tail is not None:
        lines = tail.below[:, :, None] * tail.d_lo[None, :, :] + tail.above[:, :, None] * tail.d_hi[None, :, :]
        bases[0] = bases[0] + lines
        # curvature only strictly inside: at the upper end the clipped point would select the piece beyond it
        hi = layer.grid[:, layer.grid.shape[1] - layer.k - 1]
        inside = xp.astype((tail.below == 0) & (x < hi), x.dtype)[:, :, None]
        bases = bases[:2] + [b * inside for b in bases[2:]]
    base = base_derivatives(layer.base_fun, x, xp, order)
    return [xp.concat([b, f[:, :, None]], axis=2) for b, f in zip(bases, base)]


def _local_features(layer, x, order: int, xp):
    """On NumPy with extrapolate="spline": (cols (B, n, k + 2) of each input's k + 1 non-zero bases and
    its base function in the (n (nb + 1) + 1)-wide feature matrix, [F_r (B, n, k + 2)]); else None.
    The last column collects bases that do not exist and inputs off the grid (values 0)."""
    if layer.extrapolate != "spline":
        return None
    got = get_kernels(xp).local_basis_derivatives(x, layer.grid, layer.k, order)
    if got is None:
        return None
    cols, vals = got
    n, nb = layer.in_dim, layer.coef.shape[2]
    base_cols = np.broadcast_to((np.arange(n) * (nb + 1) + nb)[None, :, None], (x.shape[0], n, 1))
    cols = np.concatenate([cols + cols // nb, base_cols], axis=2)  # input i's basis j -> i (nb + 1) + j
    base = base_derivatives(layer.base_fun, x, xp, order)
    return cols, [np.concatenate([v, b[:, :, None]], axis=2) for v, b in zip(vals, base)]


def _lifted(layer, x0, x1e, x2e, spec, idx, order, xp):
    """(fs, phi, cols): the features' jets.  Dense (cols None): phi (C B, n F).  Local (NumPy): phi
    (C, B, n, k + 2) holds only each input's non-zero features, cols (B, n, k + 2) their rows in W."""
    C, B, n = x1e.shape[0] + x2e.shape[0] + 1, x0.shape[0], layer.in_dim
    nb = layer.coef.shape[2]
    local = _local_features(layer, x0, order, xp)
    if local is None:
        fs = _features(layer, x0, order, xp)
        return fs, xp.reshape(lift(fs, x1e, x2e, idx, xp), (C * B, n * (nb + 1))), None
    cols, fs = local
    return fs, lift(fs, x1e, x2e, idx, xp), cols


def _local_matmul(phi, Wl):
    """Y[c, b, o] = sum_(i, f) phi[c, b, i, f] Wl[b, i, f, o]: phi (C, B, n, F'), Wl (B, n, F', m) -> (C, B, m)."""
    C, B = phi.shape[:2]
    m = Wl.shape[-1]
    if m == 1:
        return np.sum(phi * Wl[None, ..., 0], axis=(2, 3))[..., None]
    return np.matmul(phi.reshape(C, B, -1).transpose(1, 0, 2), Wl.reshape(B, -1, m)).transpose(1, 0, 2)


def _local_backward(phi, Wl, cols, g, width: int, need_dx: bool):
    """The transpose of ``_local_matmul`` for g (C, B, m): (dL/dW (width, m), dL/dphi like phi or None)."""
    C, B, n, F = phi.shape
    m = g.shape[-1]
    if m == 1:
        per = np.sum(phi * g[:, :, None, None, 0], axis=0)  # (B, n, F)
        gW = np.bincount(cols.reshape(-1), weights=per.reshape(-1), minlength=width)[:, None].astype(phi.dtype)
        gphi = Wl[None, ..., 0] * g[:, :, None, None, 0] if need_dx else None
        return gW, gphi
    per = np.matmul(phi.reshape(C, B, -1).transpose(1, 2, 0), g.transpose(1, 0, 2))  # (B, n F, m)
    flat = cols.reshape(-1)
    gW = np.stack([np.bincount(flat, weights=per[:, :, o].reshape(-1), minlength=width) for o in range(m)],
                  axis=1).astype(phi.dtype)  # bincount sums in float64
    gphi = None
    if need_dx:
        gphi = np.matmul(g.transpose(1, 0, 2), Wl.reshape(B, n * F, m).transpose(0, 2, 1))  # (B, C, n F)
        gphi = gphi.transpose(1, 0, 2).reshape(C, B, n, F)
    return gW, gphi


def _cache_key(layer, spec, order) -> tuple:
    return spec, order, layer.k, layer.extrapolate, layer.base_fun


def _cached_features(layer, cache, spec, order, x0):
    """(fs, phi, place) kept in ``cache`` for this layer's grid and input jet x0 (C, B, n: its derivative
    channels carry the input map's scale), or None (NumPy only: the check compares the grid and the jet on
    the host, so editing either in place, or another model with the same grid, is safe)."""
    if cache is None or not is_numpy_namespace(layer.xp):
        return None
    hit = cache.get("first")
    if (hit is not None and hit[0] == _cache_key(layer, spec, order) and hit[1].shape == layer.grid.shape
            and np.array_equal(hit[1], layer.grid) and hit[2].shape == x0.shape and np.array_equal(hit[2], x0)):
        return hit[3]
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
    hit = _cached_features(layer, cache, spec, order, X)
    if hit is None:
        fs, phi, place = _lifted(layer, x0, x1e, x2e, spec, idx, order, xp)
        if cache is not None and is_numpy_namespace(xp):
            cache["first"] = (_cache_key(layer, spec, order), np.array(layer.grid, copy=True), np.array(X, copy=True),
                              (fs, phi, place))
    else:
        fs, phi, place = hit
    mask_sp = layer.mask * layer.scale_sp
    W = xp.concat([layer.coef * mask_sp[:, :, None], (layer.mask * layer.scale_base)[:, :, None]], axis=2)
    W = xp.reshape(xp.permute_dims(W, (0, 2, 1)), (n * (nb + 1), m))
    if place is not None:  # the local path's extra column (bases that do not exist) weighs nothing
        W = xp.concat([W, xp.zeros((1, m), dtype=W.dtype)], axis=0)
    if place is None:
        Y = xp.reshape(xp.matmul(phi, W), (C, B, m))
    elif m <= GATHER_OUTPUTS:
        W = np.take(W, place, axis=0)  # (B, n, k + 2, m): the weights of each input's non-zero features
        Y = _local_matmul(phi, W)
        place = ("gather", place)
    else:  # many outputs: place the non-zero features in the dense matrix and let BLAS do the products
        flat = (np.arange(C * B, dtype=np.intp) * W.shape[0]).reshape(C, B, 1, 1) + place[None]
        dense = np.zeros((C * B, W.shape[0]), dtype=phi.dtype)
        dense.reshape(-1)[flat.reshape(-1)] = phi.reshape(-1)
        phi, place = dense, ("scatter", flat)
        Y = xp.reshape(xp.matmul(phi, W), (C, B, m))
    zeros = xp.zeros((C - 1, 1, m), dtype=X.dtype, device=getattr(X, "device", None))
    bias = xp.concat([layer.bias[None, None, :], zeros])  # on the value channel only
    Y = Y + bias
    sym = None
    if layer.symbolic.active:
        ys, sym = symbolic_jet(layer.symbolic, X, spec, idx, need_dx=need_dx)
        Y = Y + ys
    if not keep:
        return Y, None
    return Y, LayerTape(phi, fs, x1e, x2e, W, mask_sp, (C, B, n, m, nb), sym, place)


def layer_jet_backward(layer, tape: LayerTape, gY, spec, idx, *, need_dx: bool):
    """gY = dL/dY (C, B, m) -> (grads keyed like ``layer.parameters()``, dL/dX (C, B, n) or None)."""
    xp = layer.xp
    C, B, n, m, nb = tape.shape
    g2d = xp.reshape(gY, (C * B, m))
    gphi = None
    if tape.place is None:
        gW = xp.matmul(xp.matrix_transpose(tape.phi), g2d)
    elif tape.place[0] == "gather":
        gW, gphi = _local_backward(tape.phi, tape.W, tape.place[1], gY, n * (nb + 1) + 1, need_dx)
        gW = gW[:-1, ...]
    else:
        gW = xp.matmul(xp.matrix_transpose(tape.phi), g2d)[:-1, ...]
        if need_dx:
            gphi = xp.matmul(g2d, xp.matrix_transpose(tape.W)).reshape(-1)[tape.place[1]]
    gW = xp.permute_dims(xp.reshape(gW, (n, nb + 1, m)), (0, 2, 1))
    dweight = gW[:, :, :nb]
    grads = layer_gradients(xp, gY[0, ...], dweight, xp.sum(layer.coef * dweight, axis=2), gW[:, :, nb], tape.mask_sp,
                            layer.mask)
    gX = None
    if need_dx:
        if tape.place is None:
            # one output: an outer product, which BLAS's GEMM does slowly (a broadcast product runs at memory speed)
            back = g2d * xp.reshape(tape.W, (1, -1)) if m == 1 else xp.matmul(g2d, xp.matrix_transpose(tape.W))
            gphi = xp.reshape(back, (C, B, n, nb + 1))
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
