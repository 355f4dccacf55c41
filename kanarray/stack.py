"""The walk over a stack of layers, written once.

``traverse`` runs inputs through the layers and lets a visitor do one thing per layer (the
forward, the cached forward for training, grid updates, refine, symbolic sampling and
attribution all use it); ``backpropagate`` runs a gradient back through them and names each
layer's gradients as ``KAN.parameters()`` does.  ``forward``, ``forward_cached`` and
``backward`` are the plain network passes built on the two.

Shapes: x (B, width[0]) as the first layer sees it (after ``KAN.prepare_inputs``).
"""

from __future__ import annotations

from .layer import KANLayer

__all__ = ["check_stack", "traverse", "backpropagate", "forward", "forward_cached", "backward", "layer_inputs",
           "parameter_name"]


def parameter_name(l: int, name: str) -> str:
    """The model-level name of layer l's parameter ``name`` ("layers.0.coef")."""
    return f"layers.{l}.{name}"


def check_stack(layers) -> list:
    """The width [in_dim, n_nodes of each layer] of a list of layers that follow each other on
    one backend; ValueError otherwise."""
    if not layers or not all(isinstance(layer, KANLayer) for layer in layers):
        raise ValueError("a model needs a non-empty list of KANLayer")
    for l in range(1, len(layers)):
        if layers[l].in_dim != layers[l - 1].n_nodes or layers[l].xp is not layers[0].xp:
            raise ValueError(f"layer {l} does not follow layer {l - 1}: it takes {layers[l].in_dim} inputs "
                             f"from {layers[l - 1].n_nodes} outputs, or lives on another backend")
    return [layers[0].in_dim] + [layer.n_nodes for layer in layers]


def traverse(layers, x, visit):
    """Run x through ``layers``: ``visit(l, layer, h) -> (h_next, item)`` for each layer in
    order, h the layer's input.  Returns (the last h_next, [item per layer])."""
    items = []
    h = x
    for l, layer in enumerate(layers):
        h, item = visit(l, layer, h)
        items.append(item)
    return h, items


def backpropagate(layers, gy, step, names=None):
    """Run dL/d(output) gy back through ``layers``: ``step(l, layer, gy) -> (grads of layer l
    (dict by parameter name), dL/d(input of layer l))`` from the last layer to the first.

    Returns (gradients named "layers.{l}.{name}", ordered like ``names`` when given (e.g.
    ``model.parameters()``) and else by layer, dL/dx of the first layer)."""
    grads = {}
    for l in range(len(layers) - 1, -1, -1):
        layer_grads, gy = step(l, layers[l], gy)
        for name, g in layer_grads.items():
            grads[parameter_name(l, name)] = g
    if names is not None:
        grads = {name: grads[name] for name in names}
    return grads, gy


def forward(layers, x):
    """x (B, width[0]) -> (B, width[-1])."""
    return traverse(layers, x, lambda l, layer, h: (layer.forward(h)[0], None))[0]


def layer_inputs(layers, x) -> list:
    """The input of every layer for x: [(B, width[l]) for each layer]."""
    return traverse(layers, x, lambda l, layer, h: (layer.forward(h)[0] if l < len(layers) - 1 else None, h))[1]


def forward_cached(layers, x, *, need_dx: bool, backward: bool = True, reuse_first=None):
    """(output, per-layer ``LayerCache``).  Hidden layers keep the x-derivatives a backward
    pass needs (unless backward=False); need_dx: the first layer keeps them too (for dL/dx);
    reuse_first: the first layer's cache of an earlier call with the same x and grid."""
    def visit(l, layer, h):
        return layer.forward(h, need_dx=need_dx or (backward and l > 0), reuse=reuse_first if l == 0 else None)

    return traverse(layers, x, visit)


def backward(layers, caches, gy, *, need_dx: bool, names=None):
    """(gradients named "layers.{l}.{name}" ordered like ``names``, dL/dx or None) from the
    caches of ``forward_cached`` and gy = dL/d(output) (B, width[-1])."""
    return backpropagate(layers, gy, lambda l, layer, g: layer.backward(caches[l], g, need_dx=need_dx or l > 0),
                         names)
