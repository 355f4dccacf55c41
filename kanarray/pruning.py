"""Attribution scores and pruning (pykan's ``attribute``, ``prune_node``, ``prune_edge``).

For samples x, with phi_io the activation of edge (i, o) of layer l (spline and symbolic
branches) and y_o the sum at node o:

    edge score  E_l[k, i, o] = std(phi_io) * S_{l+1}[k, o] / (std(y_o) + 1e-4)
    node score  S_l[k, i]    = sum_o E_l[k, i, o],    S_L = identity (one row k per output)

and the reported scores average over k (std over the batch with ddof=1, like torch.std).
With multiplication nodes (``kanarray.nodes``) the edges feed sums ("sub-nodes"): y_o is the
sum, and a multiplication node's score S_{l+1}[k, j] is given to each of its factors, as in
pykan's MultKAN; pruning keeps or removes a multiplication node whole.

Pruning returns a new model; the one it was called on is never changed.  What a removed
edge contributed on average over the samples is added to the bias of its output node
(pykan drops it), so a pruned model starts from nearly the same function: the kept edges
compute exactly what they did, and the removed ones are replaced by their means.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import stack
from ._checks import check_number
from ._namespace import from_host_like, to_numpy

__all__ = ["Attribution", "edge_activations", "attribute", "prune_node", "prune_to_width", "prune_edge", "prune"]

_NODE_EPS = 1e-4


@dataclass
class Attribution:
    """edge_scores[l]: (width[l], sums of layer l: width[l+1] without multiplication nodes); node_scores[l]:
    (width[l],) for l = 0..L; edge_means[l]: like edge_scores[l], each edge's mean activation (NumPy float64)."""

    edge_scores: list
    node_scores: list
    edge_means: list


def edge_activations(layer, x):
    """(every edge's activation (n, B, m), the layer's output (B, m))."""
    y, phi, _ = layer.forward_edges(x, need_dx=False)
    if layer.symbolic.active:
        phi = phi + layer.symbolic.edge_values(x)
    return phi, y


def attribute(model, x) -> Attribution:
    """Scores of every edge and node on samples x (batch >= 2, validated)."""
    if x.shape[0] < 2:
        raise ValueError("attribution needs at least 2 samples (it uses standard deviations over the batch)")
    edge_std, node_std, edge_mean = [], [], []

    def visit(l, layer, h):
        phi, out = edge_activations(layer, h)
        phi = np.asarray(to_numpy(phi), dtype=np.float64)
        edge_std.append(np.std(phi, axis=1, ddof=1))
        edge_mean.append(phi.mean(axis=1))
        sums = np.asarray(to_numpy(out), dtype=np.float64) if layer.nodes is None else phi.sum(axis=0)
        node_std.append(np.std(sums, axis=0, ddof=1))  # of each sum (sub-node with a node stage)
        return out, None

    stack.traverse(model.layers, x, visit)
    L = len(model.layers)
    score = np.eye(model.width[-1])  # (k, m)
    node_scores = [None] * (L + 1)
    edge_scores = [None] * L
    node_scores[L] = score.mean(axis=0)
    for l in range(L - 1, -1, -1):
        score = score[:, node_of_sum(model.layers[l])]  # a multiplication node's score goes to each factor
        e = edge_std[l][None, :, :] * score[:, None, :] / (node_std[l] + _NODE_EPS)[None, None, :]  # (k, n, m)
        score = e.sum(axis=2)
        edge_scores[l] = e.mean(axis=0)
        node_scores[l] = score.mean(axis=0)
    return Attribution(edge_scores, node_scores, edge_mean)


def node_of_sum(layer) -> np.ndarray:
    """(out_dim,) int: the node each of a layer's sums feeds (the identity without a node stage)."""
    return np.array([j for j, group in enumerate(layer.node_groups()) for _ in group], dtype=np.intp)


def _threshold(name, value) -> float:
    return check_number(name, value, minimum=0.0)


def _rebuild(model, layers):
    """A model like ``model`` (input scaling, fit inputs, ...) around the pruned layers."""
    return model.from_layers(layers, like=model)


def prune_node(model, x, threshold: float = 1e-2):
    """A new model without the hidden nodes whose score is <= threshold (inputs and outputs
    are kept).  ValueError if a hidden layer would lose every node."""
    threshold = _threshold("node_th", threshold)
    attribution = attribute(model, x)
    scores = attribution.node_scores
    keep = []
    for l in range(1, len(model.layers)):
        kept = [int(v) for v in np.nonzero(scores[l] > threshold)[0]]
        if not kept:
            raise ValueError(
                f"pruning with node_th={threshold:g} would remove every node of hidden layer {l} (scores "
                f"{np.array2string(scores[l], precision=3)}); lower node_th"
            )
        keep.append(kept)
    return _keep_nodes(model, attribution, keep)


def prune_to_width(model, x, width):
    """A new model of the given width: each hidden layer keeps its highest-scoring nodes (in
    their order), as many as ``width`` asks; inputs and outputs are kept.  width: the full
    list, e.g. [2, 2, 1] for a [2, 5, 1] model; each hidden size between 1 and the current one.
    With multiplication nodes a hidden entry may be a pair [n_add, n_mult] (as ``KAN`` takes
    them): the best n_add addition and n_mult multiplication nodes are kept; an int counts both
    kinds together.  Use it to prune to a known shape (the paper's pruned KAN shapes) rather than by threshold."""
    wanted = _target_width(model, width)
    attribution = attribute(model, x)
    keep = []
    for l, target in enumerate(wanted, start=1):
        scores, (n_add, _) = attribution.node_scores[l], model.node_width[l]
        if isinstance(target, int):
            pools = [(range(model.width[l]), target)]
        else:
            pools = [(range(n_add), target[0]), (range(n_add, model.width[l]), target[1])]
        kept = [j for pool, count in pools for j in sorted(pool, key=lambda j: -scores[j])[:count]]
        keep.append(sorted(int(j) for j in kept))
    return _keep_nodes(model, attribution, keep)


def _target_width(model, width) -> list:
    """The hidden entries of ``prune_to_width``'s width checked: ints, or [n_add, n_mult] pairs."""
    message = (f"width must keep the inputs and outputs of {model.width} and have hidden sizes between 1 and the "
               f"current ones (ints, or [n_add, n_mult] pairs up to {model.node_width[1:-1]}), got {width!r}")
    width = list(width) if isinstance(width, (list, tuple)) else None
    if width is None or len(width) != len(model.width):
        raise ValueError(message)
    ends = [width[0], width[-1]]
    if any(isinstance(w, (list, tuple)) or isinstance(w, bool) for w in ends) or [int(w) for w in ends] != [
            model.width[0], model.width[-1]]:
        raise ValueError(message)
    out = []
    for l, w in enumerate(width[1:-1], start=1):
        (n_add, n_mult), total = model.node_width[l], model.width[l]
        if isinstance(w, (list, tuple)):
            ok = (len(w) == 2 and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in w)
                  and 0 <= w[0] <= n_add and 0 <= w[1] <= n_mult and w[0] + w[1] >= 1)
            w = (int(w[0]), int(w[1])) if ok else None
        else:
            ok = isinstance(w, (int, np.integer)) and not isinstance(w, bool) and 1 <= w <= total
            w = int(w) if ok else None
        if w is None:
            raise ValueError(message)
        out.append(w)
    return out


def _keep_nodes(model, attribution, hidden):
    """The model with only the ``hidden`` nodes (one index list per hidden layer); what each
    removed node's edges contributed on average moves into the next layer's bias."""
    keep = [list(range(model.width[0]))] + hidden + [list(range(model.width[-1]))]
    layers = []
    for l, layer in enumerate(model.layers):
        removed = np.setdiff1d(np.arange(layer.in_dim), keep[l])
        lost = attribution.edge_means[l][removed].sum(axis=0)  # (out_dim,)
        kept_sums = [s for j in keep[l + 1] for s in layer.node_groups()[j]]  # as ``subset`` keeps them
        layers.append(_with_bias_shift(layer.subset(keep[l], keep[l + 1]), lost[kept_sums]))
    return _rebuild(model, layers)


def _with_bias_shift(layer, shift):
    """layer with ``shift`` (out_dim,) host values added to its bias, in place; returns it."""
    if np.any(shift != 0):
        bias = np.asarray(to_numpy(layer.bias), dtype=np.float64) + shift
        layer.bias = from_host_like(layer.xp, bias, layer.bias)
    return layer


def prune_edge(model, x, threshold: float = 3e-2):
    """A new model in which every edge with score <= threshold is pruned (mask 0; a symbolic
    edge loses its function).  ValueError if a layer would lose every edge."""
    threshold = _threshold("edge_th", threshold)
    attribution = attribute(model, x)
    scores = attribution.edge_scores
    layers = []
    for l, layer in enumerate(model.layers):
        live = (to_numpy(layer.mask) != 0) | layer.symbolic.fixed()
        keep = live & (scores[l] > threshold)
        if not keep.any():
            raise ValueError(
                f"pruning with edge_th={threshold:g} would remove every edge of layer {l} (highest score "
                f"{scores[l].max():.3g}); lower edge_th"
            )
        new = layer.copy()
        for i, j in zip(*np.nonzero(live & ~keep)):
            if new.symbolic.names[i][j] is not None:
                new.symbolic = new.symbolic.with_edge(int(i), int(j), None, None)
        mask = np.where(keep, to_numpy(layer.mask), 0.0)
        new.mask = from_host_like(layer.xp, mask, layer.mask)
        lost = np.where(live & ~keep, attribution.edge_means[l], 0.0).sum(axis=0)
        layers.append(_with_bias_shift(new, lost))
    return _rebuild(model, layers)


def prune(model, x, node_th: float = 1e-2, edge_th: float = 3e-2):
    """prune_node, then prune_edge with scores recomputed on the smaller model (pykan's order)."""
    _threshold("node_th", node_th)
    _threshold("edge_th", edge_th)
    return prune_edge(prune_node(model, x, node_th), x, edge_th)
