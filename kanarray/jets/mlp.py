"""Input jets through the MLP baseline (``kanarray.mlp.MLP``), forward and reverse.

A dense layer is linear, so every channel of the jet goes through the same GEMM (the bias only
on the value channel); the activation is an elementwise function (``rule.lift``).  Shapes:
channels C, batch B, the layer's n inputs and m outputs.
"""

from __future__ import annotations

from ..base import base_derivatives
from .rule import lift, lift_backward, split

__all__ = ["activation_derivatives", "mlp_jet", "mlp_jet_backward"]


def activation_derivatives(name: str, z, xp, order: int) -> list:
    """[a(z), a'(z), ..., a^(order)(z)] for the MLP's activation ("silu" or "tanh"), order <= 3."""
    if name == "silu":
        return base_derivatives("silu", z, xp, order)
    t = xp.tanh(z)
    s = 1.0 - t * t
    out = [t, s, -2.0 * t * s, s * (6.0 * t * t - 2.0)]
    return out[: order + 1]


def _bias_on_value(xp, Y, b):
    return xp.concat([Y[:1, ...] + b, Y[1:, ...]], axis=0)


def mlp_jet(model, X, spec, idx, *, grad: bool):
    """X (C, B, width[0]) -> (output jet (C, B, width[-1]), per-layer tapes (empty without grad))."""
    xp = model.xp
    params = model.parameters()
    n_layers = len(model.width) - 1
    tapes = []
    for l in range(n_layers):
        W, b = params[f"layers.{l}.weight"], params[f"layers.{l}.bias"]
        Z = _bias_on_value(xp, xp.matmul(X, W), b)
        fs = None
        if l < n_layers - 1:
            z0, z1, z2 = split(Z, spec)
            fs = activation_derivatives(model.activation, z0, xp, spec.order + (1 if grad else 0))
            H = lift(fs, z1, z2, idx, xp)
        else:
            H = Z
        if grad:
            tapes.append((X, Z, fs))
        X = H
    return X, tapes


def mlp_jet_backward(model, tapes, gY, spec, idx) -> dict:
    """gY (C, B, width[-1]) -> gradients by parameter name ("layers.{l}.weight", "layers.{l}.bias")."""
    xp = model.xp
    params = model.parameters()
    grads = {}
    g = gY
    for l in range(len(tapes) - 1, -1, -1):
        X, Z, fs = tapes[l]
        if fs is not None:
            _, z1, z2 = split(Z, spec)
            g0, g1, g2 = lift_backward(fs, z1, z2, g, idx, xp)
            g = xp.concat([g0[None, ...]] + [p for p in (g1, g2) if p is not None], axis=0)
        C, B, n = X.shape
        m = g.shape[2]
        flat_x, flat_g = xp.reshape(X, (C * B, n)), xp.reshape(g, (C * B, m))
        grads[f"layers.{l}.weight"] = xp.matmul(xp.matrix_transpose(flat_x), flat_g)
        grads[f"layers.{l}.bias"] = xp.sum(g[0, ...], axis=0)
        if l:
            g = xp.matmul(g, xp.matrix_transpose(params[f"layers.{l}.weight"]))
    return grads
