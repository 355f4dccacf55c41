"""Input jets of a whole network (KAN or MLP), forward and reverse, and the public calls.

``jet_forward(model, x, spec)`` runs the jet of the raw inputs x (B, n) -- value x, first
derivatives the unit vectors of ``spec.dirs`` (times the input map's scale on a KAN), second
derivatives zero -- through every layer and returns the output's jet (C, B, m) with a tape;
``jet_backward(tape, gY)`` turns a cotangent of that jet into the gradients of every trainable
parameter, named like ``model.parameters()``.  No autograd: each layer's reverse pass is the
transpose of its forward (``kan_layer``, ``mlp``).

``derivatives`` and ``derivatives_vjp`` are ``KAN.derivatives`` / ``KAN.derivatives_vjp`` (and the
MLP's): u (B, m), du (B, m, n), d2u (B, m, n) on the diagonal or (B, m, n, n) with mixed.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .. import resources, stack
from .._namespace import device_of
from . import kan_layer, mlp, nodes
from .rule import Directions, directions, index_of

__all__ = ["Derivatives", "Tape", "check_spec", "jet_forward", "jet_backward", "derivatives", "derivatives_vjp",
           "check_order_of"]


class Derivatives(NamedTuple):
    """u (B, m); du (B, m, n) = du_o/dx_a or None (order 0); d2u (B, m, n) = d2u_o/dx_a^2, or
    (B, m, n, n) with mixed, or None (order < 2)."""

    u: object
    du: object
    d2u: object


class Tape(NamedTuple):
    """What ``jet_backward`` needs: the model, the spec, the pair index, one tape per layer (for a KAN:
    (the layer's ``LayerTape``, its node stage's ``NodeTape`` or None))."""

    model: object
    spec: Directions
    idx: object
    layers: list


def _is_kan(model) -> bool:
    return hasattr(model, "layers") and hasattr(model, "prepare_inputs") and hasattr(model, "input_scaling")


def check_order_of(model, order: int) -> None:
    """ValueError unless every layer of a KAN can give derivatives of ``order`` (k >= 2 for order 2)."""
    if order >= 2 and _is_kan(model):
        low = [l for l, k in enumerate(model.k) if k < 2]
        if low:
            raise ValueError(f"second derivatives need spline order k >= 2 in every layer (a k = 1 spline is "
                             f"piecewise linear: its second derivative is zero), but layer {low[0]} has "
                             f"k = {model.k[low[0]]}; build the model with k=2 or more")


def check_spec(model, spec: Directions) -> None:
    """ValueError for directions outside the model's inputs or pairs outside the directions."""
    n = model.width[0]
    if spec.n_inputs != n or any(not 0 <= a < n for a in spec.dirs):
        raise ValueError(f"derivative directions {spec.dirs} must be input columns of the model's {n} inputs")
    if any(not (0 <= a < len(spec.dirs) and 0 <= b < len(spec.dirs)) for a, b in spec.pairs):
        raise ValueError(f"second-derivative pairs {spec.pairs} must be positions into the directions {spec.dirs}")
    check_order_of(model, spec.order)


def _input_jet(model, x, spec: Directions, xp):
    """(C, B, n): the prepared inputs and their derivatives along spec.dirs."""
    B, n = x.shape
    D, P = len(spec.dirs), len(spec.pairs)
    scale = np.ones(n)
    if _is_kan(model) and model.input_scaling is not None:
        scale = model.input_scaling[1]
    first = np.zeros((D, 1, n))
    for d, a in enumerate(spec.dirs):
        first[d, 0, a] = scale[a]
    dev = device_of(x)
    rest = xp.asarray(np.concatenate([first, np.zeros((P, 1, n))]), dtype=x.dtype, device=dev)
    rest = rest + xp.zeros((D + P, B, n), dtype=x.dtype, device=dev)
    return xp.concat([x[None, ...], rest], axis=0)


def _check_memory(model, B: int, spec: Directions) -> None:
    """Refuse (``resources.MemoryLimitError``) a jet pass whose lifted features would not fit the cap."""
    C = spec.channels
    item = 4 if "32" in str(getattr(model, "dtype", "float64")) else 8
    if _is_kan(model):
        per = sum(C * B * (n * (G + k + 1) * (spec.order + 3) + 2 * m)
                  for n, m, G, k in resources.layer_shapes(model.layers))
    else:
        per = sum(C * B * (n + m) * 6 for n, m in zip(model.width[:-1], model.width[1:]))
    resources.check(f"the input derivatives of order {spec.order} on {B} samples", per * item)


def jet_forward(model, x, spec: Directions, *, grad: bool = True, prepared: bool = False, cache: dict | None = None):
    """Raw inputs x (B, width[0]) -> (output jet (C, B, width[-1]), ``Tape`` or None without grad).
    prepared: x already went through ``model.prepare_inputs``; cache: a dict the caller keeps for one
    fixed x (a problem's point set): a KAN's first-layer features are reused while its grid stays."""
    xp = model.xp
    check_spec(model, spec)
    x = x if prepared else model.prepare_inputs(x)
    _check_memory(model, x.shape[0], spec)
    X = _input_jet(model, x, spec, xp)
    idx = index_of(spec, xp, x)
    tapes = []
    if _is_kan(model):
        for l, layer in enumerate(model.layers):
            X, t = kan_layer.layer_jet(layer, X, spec, idx, need_dx=grad and l > 0, keep=grad,
                                       cache=cache if l == 0 else None)
            node_tape = None
            if layer.nodes is not None:  # multiplication nodes and the node affine (``jets.nodes``)
                X, node_tape = nodes.node_jet(layer.nodes, X, spec, idx, keep=grad)
            tapes.append((t, node_tape))
    else:
        X, tapes = mlp.mlp_jet(model, X, spec, idx, grad=grad)
    return X, (Tape(model, spec, idx, tapes) if grad else None)


def jet_backward(tape: Tape, gY) -> dict:
    """gY = dL/d(output jet) (C, B, width[-1]) -> gradients named and ordered like ``model.parameters()``."""
    model, spec, idx = tape.model, tape.spec, tape.idx
    names = model.parameters()
    if not _is_kan(model):
        grads = mlp.mlp_jet_backward(model, tape.layers, gY, spec, idx)
        return {name: grads[name] for name in names}

    def step(l, layer, g):
        layer_tape, node_tape = tape.layers[l]
        node_grads = {}
        if node_tape is not None:
            node_grads, g = nodes.node_jet_backward(layer.nodes, node_tape, g, spec, idx)
        grads, gX = kan_layer.layer_jet_backward(layer, layer_tape, g, spec, idx, need_dx=l > 0)
        return grads | node_grads, gX

    grads, _ = stack.backpropagate(model.layers, gY, step)
    return {name: grads[name] for name in names}


# -- the public calls -----------------------------------------------------------------------------

def _spec_of(model, order, mixed) -> Directions:
    if isinstance(order, bool) or order not in (0, 1, 2):
        raise ValueError(f"order must be 0, 1 or 2 (derivatives up to second order), got {order!r}")
    if mixed not in (True, False):
        raise ValueError(f"mixed must be True or False, got {mixed!r}")
    spec = directions(model.width[0], order, mixed)
    check_order_of(model, order)
    return spec


def _full_pairs(spec: Directions):
    """(n * n,) positions of pair (min(a, b), max(a, b)) in spec.pairs for every (a, b), row-major."""
    where = {pair: p for p, pair in enumerate(spec.pairs)}
    n = spec.n_inputs
    return np.array([where[(min(a, b), max(a, b))] for a in range(n) for b in range(n)], dtype=np.int64)


def _unpack(model, Y, spec: Directions, mixed: bool) -> Derivatives:
    xp = model.xp
    D = len(spec.dirs)
    u = Y[0, ...]
    du = xp.permute_dims(Y[1 : 1 + D, ...], (1, 2, 0)) if D else None
    d2u = None
    if spec.pairs:
        second = Y[1 + D :, ...]
        if mixed:
            n = spec.n_inputs
            full = xp.take(second, xp.asarray(_full_pairs(spec), device=device_of(Y)), axis=0)
            d2u = xp.permute_dims(xp.reshape(full, (n, n) + tuple(second.shape[1:])), (2, 3, 0, 1))
        else:
            d2u = xp.permute_dims(second, (1, 2, 0))
    return Derivatives(u, du, d2u)


def derivatives(model, x, order: int = 2, mixed: bool = False) -> Derivatives:
    """The outputs and their derivatives with respect to the raw inputs x (B, width[0]): ``Derivatives``."""
    spec = _spec_of(model, order, mixed)
    Y, _ = jet_forward(model, x, spec, grad=False)
    return _unpack(model, Y, spec, mixed)


def _cotangent(model, B: int, spec: Directions, mixed: bool, gu, gdu, gd2u, dtype):
    """dL/d(u, du, d2u) in ``Derivatives``' shapes (None: zero) -> dL/d(output jet) (C, B, m)."""
    xp = model.xp
    m, n = model.width[-1], model.width[0]
    D, P = len(spec.dirs), len(spec.pairs)

    def checked(g, shape, name):
        if g is None:
            return None
        g = xp.asarray(g, dtype=dtype)
        if tuple(g.shape) != shape:
            raise ValueError(f"{name} must have shape {shape} (like the derivatives it weighs), got {tuple(g.shape)}")
        return g

    gu = checked(gu, (B, m), "gu")
    gdu = checked(gdu, (B, m, n), "gdu") if D else None
    gd2u = checked(gd2u, (B, m, n, n) if mixed else (B, m, n), "gd2u") if P else None
    zeros = lambda k: xp.zeros((k, B, m), dtype=dtype)  # noqa: E731
    parts = [zeros(1) if gu is None else gu[None, ...]]
    if D:
        parts.append(zeros(D) if gdu is None else xp.permute_dims(gdu, (2, 0, 1)))
    if P:
        if gd2u is None:
            parts.append(zeros(P))
        elif mixed:
            flat = xp.reshape(xp.permute_dims(gd2u, (2, 3, 0, 1)), (n * n, B, m))
            ab = np.array([a * n + b for a, b in spec.pairs])
            ba = np.array([b * n + a for a, b in spec.pairs])
            off = np.array([[[float(a != b)]] for a, b in spec.pairs])
            parts.append(xp.take(flat, xp.asarray(ab), axis=0)
                         + xp.take(flat, xp.asarray(ba), axis=0) * xp.asarray(off, dtype=dtype))
        else:
            parts.append(xp.permute_dims(gd2u, (2, 0, 1)))
    return xp.concat(parts, axis=0)


def derivatives_vjp(model, x, gu=None, gdu=None, gd2u=None, *, order: int = 2, mixed: bool = False):
    """(``Derivatives`` at x, the gradient of sum(gu * u) + sum(gdu * du) + sum(gd2u * d2u) with respect
    to every trainable parameter, named like ``model.parameters()``)."""
    spec = _spec_of(model, order, mixed)
    Y, tape = jet_forward(model, x, spec, grad=True)
    gY = _cotangent(model, Y.shape[1], spec, mixed, gu, gdu, gd2u, Y.dtype)
    return _unpack(model, Y, spec, mixed), jet_backward(tape, gY)
