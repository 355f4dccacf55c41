"""Multiplication nodes: the stage after a layer's sums (pykan's MultKAN).

A layer with a node stage has ``n_sub`` outputs ("sub-nodes") and ``n_nodes`` nodes:
the first ``n_add`` sub-nodes are addition nodes as they are, and each multiplication
node j multiplies ``arities[j]`` consecutive sub-nodes after them, in order.  With affine
maps on both sides (identity by default, and trained only when ``trainable``):

    s     = subnode_scale * y + subnode_bias                 y (B, n_sub): the layer's sums
    p_j   = s_j                           for j < n_add
    p_j   = prod of s over node j's sub-nodes  for the multiplication nodes
    out   = node_scale * p + node_bias                       (B, n_nodes)

which is pykan 0.2.8's MultKAN forward (its ``subnode_*`` and ``node_*`` parameters).  The
backward is by hand: the derivative of a product with respect to one factor is the product
of the others (formed directly, never by division, so a zero factor is exact).
"""

from __future__ import annotations

import numpy as np

from ._checks import check_positive_int
from ._namespace import from_host_like, to_numpy, xsum

__all__ = ["NodeStage", "AFFINE_NAMES", "parse_width", "node_width", "display_width", "mult_arity_of"]

AFFINE_NAMES = ("subnode_scale", "subnode_bias", "node_scale", "node_bias")
MAX_ARITY = 64


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def parse_width(width, mult_arity=2) -> tuple:
    """pykan's width and mult_arity checked -> (nodes per layer [int], additions per layer [int],
    arities per layer [tuple of int, one per multiplication node]).

    width: entries are ints (addition nodes only) or pairs [n_add, n_mult]; mult_arity: an int
    >= 2 for every multiplication node, or pykan's per-layer list (one entry per width entry,
    each an int or a list with one arity per multiplication node of that layer)."""
    if isinstance(width, (str, bytes)) or not hasattr(width, "__len__"):
        raise ValueError(f"width must be a list of layer sizes such as [2, 5, 1] or [2, [5, 2], 1], got {width!r}")
    width = list(width)
    if len(width) < 2:
        raise ValueError(f"width needs at least two entries (inputs and outputs), got {width}")
    pairs = []
    for i, w in enumerate(width):
        if isinstance(w, (list, tuple)):
            if len(w) != 2:
                raise ValueError(f"width[{i}] = {w!r}: an entry is an int (addition nodes) or a pair [n_add, n_mult]")
            n_add, n_mult = (check_positive_int(v, f"width[{i}][{j}]", minimum=0) for j, v in enumerate(w))
            if n_add + n_mult < 1:
                raise ValueError(f"width[{i}] = {w!r}: a layer needs at least one node")
            pairs.append((n_add, n_mult))
        else:
            pairs.append((check_positive_int(w, f"width[{i}]"), 0))
    if pairs[0][1]:
        raise ValueError(f"width[0] = {width[0]!r}: the inputs cannot hold multiplication nodes (pykan's MultKAN "
                         "allows them in the hidden and output layers only)")
    arities = [_arities_of(l, pairs[l][1], mult_arity, len(width)) for l in range(len(width))]
    return [a + m for a, m in pairs], [a for a, _ in pairs], arities


def node_width(model) -> list:
    """pykan's width of a model: [n_add, n_mult] per width entry (``KAN.node_width``)."""
    stages = [None] + [layer.nodes for layer in model.layers]
    return [[w, 0] if stage is None else [stage.n_add, stage.n_mult] for w, stage in zip(model.width, stages)]


def display_width(model) -> list:
    """The width as the constructor takes it: ints, and [n_add, n_mult] where there are multiplication nodes."""
    return [w if m == 0 else [a, m] for w, (a, m) in zip(model.width, node_width(model))]


def mult_arity_of(model) -> list:
    """pykan's per-layer mult_arity of a model: one list of arities per width entry (``KAN.mult_arity``)."""
    return [[]] + [[] if layer.nodes is None else list(layer.nodes.arities) for layer in model.layers]


def _check_arity(value, where: str) -> int:
    if not _is_int(value) or not 2 <= value <= MAX_ARITY:
        raise ValueError(f"{where} must be an int from 2 to {MAX_ARITY} (the number of sub-nodes a multiplication node "
                         f"multiplies), got {value!r}")
    return int(value)


def _arities_of(l: int, n_mult: int, mult_arity, n_entries: int) -> tuple:
    if _is_int(mult_arity):
        return (_check_arity(mult_arity, "mult_arity"),) * n_mult
    if not isinstance(mult_arity, (list, tuple)):
        raise ValueError(f"mult_arity must be an int or a list with one entry per width entry, got {mult_arity!r}")
    if len(mult_arity) != n_entries:
        raise ValueError(f"mult_arity lists {len(mult_arity)} entries but width has {n_entries}")
    entry = mult_arity[l]
    if _is_int(entry):
        return (_check_arity(entry, f"mult_arity[{l}]"),) * n_mult if n_mult else ()
    if not isinstance(entry, (list, tuple)) or len(entry) != n_mult:
        raise ValueError(f"mult_arity[{l}] = {entry!r}: width[{l}] has {n_mult} multiplication node(s), so it must be "
                         f"an int or a list of {n_mult} arities")
    return tuple(_check_arity(a, f"mult_arity[{l}][{j}]") for j, a in enumerate(entry))


class NodeStage:
    """The node stage of one layer (see the module docstring).

    n_add: addition nodes; arities: one int >= 2 per multiplication node; the affine arrays
    live in the layer's namespace: subnode_scale, subnode_bias (n_sub,), node_scale,
    node_bias (n_nodes,).  trainable: whether the four affine arrays are parameters."""

    def __init__(self, n_add: int, arities, *, subnode_scale, subnode_bias, node_scale, node_bias, xp,
                 trainable: bool = False):
        self.n_add = int(n_add)
        self.arities = tuple(int(a) for a in arities)
        self.subnode_scale, self.subnode_bias = subnode_scale, subnode_bias
        self.node_scale, self.node_bias = node_scale, node_bias
        self.xp = xp
        if not isinstance(trainable, bool):
            raise ValueError(f"the node affine's trainable flag must be True or False, got {trainable!r}")
        self.trainable = trainable

    @classmethod
    def identity(cls, n_add: int, arities, xp, like, *, trainable: bool = False) -> "NodeStage":
        """Scales 1 and biases 0 (pykan's initial values), arrays like ``like`` (dtype, device)."""
        n_sub, n_nodes = n_add + sum(arities), n_add + len(arities)
        host = dict(subnode_scale=np.ones(n_sub), subnode_bias=np.zeros(n_sub), node_scale=np.ones(n_nodes),
                    node_bias=np.zeros(n_nodes))
        return cls(n_add, arities, xp=xp, trainable=trainable,
                   **{k: from_host_like(xp, v, like) for k, v in host.items()})

    # -- facts --------------------------------------------------------------------------------
    @property
    def n_mult(self) -> int:
        return len(self.arities)

    @property
    def n_sub(self) -> int:
        return self.n_add + sum(self.arities)

    @property
    def n_nodes(self) -> int:
        return self.n_add + len(self.arities)

    def groups(self) -> list:
        """The sub-node indices of every node, in node order: [[i] for the additions] + one
        list of consecutive indices per multiplication node."""
        out = [[i] for i in range(self.n_add)]
        start = self.n_add
        for a in self.arities:
            out.append(list(range(start, start + a)))
            start += a
        return out

    def is_identity(self) -> bool:
        """No multiplication nodes and every affine value at identity (the stage does nothing)."""
        host = self.host_arrays()
        return (not self.arities and np.all(host["subnode_scale"] == 1) and np.all(host["node_scale"] == 1)
                and not np.any(host["subnode_bias"]) and not np.any(host["node_bias"]))

    def arrays(self) -> dict:
        return {name: getattr(self, name) for name in AFFINE_NAMES}

    def host_arrays(self) -> dict:
        return {name: np.asarray(to_numpy(a), dtype=np.float64) for name, a in self.arrays().items()}

    def parameters(self) -> dict:
        return self.arrays() if self.trainable else {}

    def expected_shapes(self) -> dict:
        return {"subnode_scale": (self.n_sub,), "subnode_bias": (self.n_sub,), "node_scale": (self.n_nodes,),
                "node_bias": (self.n_nodes,)}

    # -- copies -------------------------------------------------------------------------------
    def _with(self, arrays: dict, xp, n_add=None, arities=None) -> "NodeStage":
        return NodeStage(self.n_add if n_add is None else n_add, self.arities if arities is None else arities,
                         xp=xp, trainable=self.trainable, **arrays)

    def copy(self) -> "NodeStage":
        return self._with({k: self.xp.asarray(v, copy=True) for k, v in self.arrays().items()}, self.xp)

    def moved(self, xp, dtype) -> "NodeStage":
        return self._with({k: xp.asarray(np.ascontiguousarray(to_numpy(v)), dtype=dtype)
                           for k, v in self.arrays().items()}, xp)

    def subset(self, nodes) -> tuple:
        """(the stage keeping ``nodes`` (node indices, in order), the kept sub-node columns)."""
        nodes = [int(j) for j in nodes]
        if nodes != sorted(set(nodes)) or not all(0 <= j < self.n_nodes for j in nodes):
            raise ValueError(f"the nodes kept must be distinct indices below {self.n_nodes} in increasing order, "
                             f"got {nodes}")
        groups = self.groups()
        cols = [i for j in nodes for i in groups[j]]
        host = {k: to_numpy(v) for k, v in self.arrays().items()}
        arrays = dict(subnode_scale=host["subnode_scale"][cols], subnode_bias=host["subnode_bias"][cols],
                      node_scale=host["node_scale"][nodes], node_bias=host["node_bias"][nodes])
        like = self.node_scale
        kept = self._with({k: from_host_like(self.xp, v, like) for k, v in arrays.items()}, self.xp,
                          n_add=sum(1 for j in nodes if j < self.n_add),
                          arities=[self.arities[j - self.n_add] for j in nodes if j >= self.n_add])
        return kept, cols

    # -- computation --------------------------------------------------------------------------
    def runs(self) -> list:
        """The multiplication nodes in runs of consecutive nodes of one arity, each computed at once:
        [(index of its first multiplication node, arity, node count, its first sub-node column)]."""
        runs, start, j = [], self.n_add, 0
        while j < self.n_mult:
            a, count = self.arities[j], 1
            while j + count < self.n_mult and self.arities[j + count] == a:
                count += 1
            runs.append((j, a, count, start))
            start += a * count
            j += count
        return runs

    def _factors(self, s):
        """[(first node, arity, (B, count, arity) view of its factors)] per run (``runs``)."""
        return [(j, a, self.xp.reshape(s[:, start:start + a * count], (s.shape[0], count, a)))
                for j, a, count, start in self.runs()]

    def forward(self, y):
        """y (B, n_sub) -> (out (B, n_nodes), context for ``backward``)."""
        xp = self.xp
        s = y * self.subnode_scale + self.subnode_bias
        runs = self._factors(s)
        parts = [s[:, :self.n_add]] + [xp.prod(block, axis=2) for _, _, block in runs]
        p = xp.concat(parts, axis=1) if runs else parts[0]
        return p * self.node_scale + self.node_bias, (y, runs, p)

    def backward(self, ctx, g):
        """g = dL/d(out) (B, n_nodes) -> (grads of the affine arrays (empty unless trainable),
        dL/dy (B, n_sub))."""
        xp = self.xp
        y, runs, p = ctx
        gp = g * self.node_scale
        parts = [gp[:, :self.n_add]]
        for j, a, block in runs:
            gj = gp[:, self.n_add + j:self.n_add + j + block.shape[1]]  # (B, count)
            others = [xp.prod(xp.concat([block[:, :, :i], block[:, :, i + 1:]], axis=2), axis=2) if a > 2
                      else block[:, :, 1 - i] for i in range(a)]
            parts.append(xp.reshape(xp.stack([gj * o for o in others], axis=2), (y.shape[0], block.shape[1] * a)))
        gs = xp.concat(parts, axis=1) if runs else parts[0]
        grads = {}
        if self.trainable:
            grads = {"subnode_scale": xsum(xp, gs * y, axis=0), "subnode_bias": xsum(xp, gs, axis=0),
                     "node_scale": xsum(xp, g * p, axis=0), "node_bias": xsum(xp, g, axis=0)}
        return grads, gs * self.subnode_scale

    def __repr__(self) -> str:
        return f"NodeStage(n_add={self.n_add}, arities={self.arities}, trainable={self.trainable})"
