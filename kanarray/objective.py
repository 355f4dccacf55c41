"""The training objective: loss(model(x), y) + lamb * reg, with its gradients.

Without regularization the fast path runs (backend kernels, no per-edge tensors); with it
every layer is evaluated edge by edge (``KANLayer.forward_edges``) because the penalty needs
the standard deviation of each edge's activation, and its gradient flows back through the
activations of earlier layers as well -- except the first layer inside ``fit``, whose inputs
are fixed data: its spreads come from a per-batch Gram matrix (``regularization.GramSpread``).
"""

from __future__ import annotations

from dataclasses import dataclass

from . import losses, stack
from ._checks import as_batch, as_labels
from ._namespace import is_numpy_namespace
from .prediction import BINARY_HINT
from .regularization import EdgeSpread, GramSpread, Regularization, gram_stats, penalty

__all__ = ["Evaluation", "evaluate", "check_targets", "check_outputs"]


@dataclass
class Evaluation:
    """objective = loss + lamb * reg (0-d arrays; reg is None without regularization);
    pred (B, width[-1]) or None; grads keyed like ``model.parameters()`` (None if not asked for);
    terms: a physics problem's 0-d mean squared residual per term (``kanarray.pde``), else ()."""

    objective: object
    loss: object
    reg: object
    pred: object
    grads: dict | None
    terms: tuple = ()


def check_outputs(model, y, batch: int):
    """y validated as (batch, width[-1]) values in the model's namespace and dtype."""
    y = as_batch(y, xp=model.xp, dtype=model.dtype, n_features=model.width[-1], name="y")
    if y.shape[0] != batch:
        raise ValueError(f"y must have shape ({batch}, {model.width[-1]}) to match x, got {tuple(y.shape)}")
    return y


def check_targets(model, y, batch: int, loss: str):
    """Validate y for ``loss``: (batch, width[-1]) values for mse, or (batch,) with one output (taken
    as a column, as cross_entropy takes labels); integer labels in [0, width[-1]) of shape (batch,)
    or (batch, 1) for cross_entropy."""
    if loss == "mse":
        if model.width[-1] == 1 and getattr(y, "ndim", None) == 1 and hasattr(y, "shape"):
            y = y[:, None]
        return check_outputs(model, y, batch)
    if loss != "cross_entropy":
        raise ValueError(f"loss must be 'mse' or 'cross_entropy', got {loss!r}")
    try:
        return as_labels(y, xp=model.xp, batch=batch, n_classes=model.width[-1])
    except ValueError as exc:
        if model.width[-1] == 1:  # most likely a binary problem on one output: say how to set it up
            raise ValueError(f"{exc}; {BINARY_HINT}") from None
        raise


def _use_gram(layer, batch: int) -> bool:
    """The Gram form costs n m (nb + 1)^2 per call against about B n m (k + 1) edge by edge."""
    nb = layer.coef.shape[2]
    return batch >= 2 and (nb + 1) ** 2 <= batch * (layer.k + 1)


def evaluate(model, x, y, *, loss: str = "mse", reg: Regularization | None = None, grad: bool = True,
             cache: dict | None = None, comm=None, n_total: int | None = None) -> Evaluation:
    """x (B, width[0]) and y already validated (``model.prepare_inputs``, ``check_targets``).

    cache: a dict the caller owns and clears whenever x or the first layer's grid changes
    (``fit`` evaluates one batch many times).  The first layer's basis evaluation is kept
    there, and with regularization its edges' spread is computed from a per-batch Gram
    matrix (``regularization.GramSpread``) instead of edge by edge.
    comm, n_total: a ``distributed.Communicator`` whose ranks each pass their shard of a
    batch of n_total samples; objective, loss, reg and grads are then those of the whole
    batch, the same on every rank (pred stays this rank's).
    """
    xp = model.xp
    loss_fn = losses.LOSSES[loss]
    reg = reg or Regularization()
    layers = model.layers
    if cache is None:
        cache = {}
        first_fixed = False  # nothing to amortise the Gram matrix over
    else:
        first_fixed = True

    if not reg.active:
        if grad and any(_edges_cheaper(layer) for layer in layers[1:]):
            return _plain_with_edges(model, x, y, loss_fn, cache, comm, n_total)
        h, caches = stack.forward_cached(layers, x, need_dx=False, backward=grad, reuse_first=cache.get("first"))
        cache["first"] = caches[0]
        value, gpred = loss_fn(h, y, xp, n_total)  # with comm: this rank's share of the global mean
        if not grad:
            if comm is not None:
                value = comm.allreduce(value)
            return Evaluation(value, value, None, h, None)
        grads, _ = stack.backward(layers, caches, gpred, need_dx=False, names=model.parameters())
        if comm is not None:
            value, grads = _allreduce_with(comm, value, grads, xp)
        return Evaluation(value, value, None, h, grads)

    def visit(l, layer, h):
        # with ranks, the global batch decides, so every rank takes the same path (and collectives)
        if l == 0 and first_fixed and _use_gram(layer, x.shape[0] if comm is None else n_total):
            out, lc = layer.forward(h, need_dx=False, reuse=cache.get("first"))
            cache["first"] = lc
            if "gram" not in cache:
                cache["gram"] = gram_stats(layer, h, comm=comm, n_total=n_total)
            return out, ("gram", lc, GramSpread(layer, cache["gram"]))
        out, phi, lc = layer.forward_edges(h, need_dx=l > 0, basis_ctx=cache.get("edges") if l == 0 else None)
        if l == 0:
            cache["edges"] = lc.basis
        return out, ("edges", lc, EdgeSpread(lc.xt, phi, xp, compiled=lc.compiled, comm=comm, n_total=n_total))

    pred, passes = stack.traverse(layers, x, visit)
    value, gpred = loss_fn(pred, y, xp, n_total)
    coefs = [layer.coef for layer in layers]
    spreads = [spread for _, _, spread in passes]
    reg_value, spread_grads, coef_grads = penalty([(s.sphi, s.sx) for s in spreads], coefs, reg, xp, grad=grad)
    if not grad:
        if comm is not None:
            value = comm.allreduce(value)
        return Evaluation(value + reg.lamb * reg_value, value, reg_value, pred, None)
    # data terms (a sum over samples: this rank's part) and terms the data only enter through
    # global statistics (the Gram spread and the coefficient penalty: added once, after the sum)
    extra = {}

    def step(l, layer, gy):
        kind, lc, spread = passes[l]
        dsphi, dsx = spread_grads[l]
        need_dx = l > 0
        if kind == "gram":
            layer_grads, gx = layer.backward(lc, gy, need_dx=need_dx)
            for name, g in spread.backward(dsphi).items():
                extra[stack.parameter_name(l, name)] = [reg.lamb * g]
        else:
            gphi, gxt_reg = spread.backward(reg.lamb * dsphi, reg.lamb * dsx)
            layer_grads, gx = layer.backward_edges(lc, gy, gphi, need_dx=need_dx)
            if need_dx and gxt_reg is not None:
                gx = gx + xp.permute_dims(gxt_reg, (1, 0))
        if coef_grads[l] is not None:
            extra.setdefault(stack.parameter_name(l, "coef"), []).append(reg.lamb * coef_grads[l])
        return layer_grads, gx

    ordered, _ = stack.backpropagate(layers, gpred, step, names=model.parameters())
    if comm is not None:
        value, ordered = _allreduce_with(comm, value, ordered, xp)
    for name, terms in extra.items():
        if name in ordered:
            for g in terms:
                ordered[name] = ordered[name] + g
    return Evaluation(value + reg.lamb * reg_value, value, reg_value, pred, ordered)


EDGE_MAX_OUT = 4  # layers after the first with at most this many sums run edge by edge in the plain objective


def _edges_cheaper(layer) -> bool:
    """Whether a layer after the first (inputs new at every call) trains faster edge by edge.

    NumPy only: there it was measured, and on CuPy the generic per-edge backward calls cuBLAS,
    which a CUDA-graph recording of the plain objective cannot take.

    Edge by edge costs about B n m (k + 1) multiply-adds in one pass over the edge polynomials;
    the basis path first evaluates the k + 1 local bases of every input (on the non-uniform grids
    a grid update leaves: a gather of (k + 1)^2 polynomial coefficients and Horner's scheme, ~0.3 ms
    for 1000 x 5 inputs), then contracts them.  For few outputs the first is cheaper: the hello
    model's 50-step fit with lamb = 0 (warm) went from 1.21 s to 0.83 s without numba and from 1.14 s
    to 0.60 s with it (benchmarks/RESULTS.md, issue 29).  The two paths agree to rounding
    (tests/test_objective_paths.py)."""
    return layer.out_dim <= EDGE_MAX_OUT and is_numpy_namespace(layer.xp)


def _plain_with_edges(model, x, y, loss_fn, cache, comm, n_total) -> Evaluation:
    """The unregularized objective and its gradients, later layers with few sums edge by edge
    (``_edges_cheaper``), the others (and the first, whose bases ``cache`` keeps) through their bases."""
    xp = model.xp
    layers = model.layers

    def visit(l, layer, h):
        if l > 0 and _edges_cheaper(layer):
            out, _, lc = layer.forward_edges(h, need_dx=True)
            return out, ("edges", lc)
        out, lc = layer.forward(h, need_dx=l > 0, reuse=cache.get("first") if l == 0 else None)
        if l == 0:
            cache["first"] = lc
        return out, ("basis", lc)

    pred, passes = stack.traverse(layers, x, visit)
    value, gpred = loss_fn(pred, y, xp, n_total)

    def step(l, layer, gy):
        kind, lc = passes[l]
        if kind == "edges":
            return layer.backward_edges(lc, gy, None, need_dx=True)
        return layer.backward(lc, gy, need_dx=l > 0)

    grads, _ = stack.backpropagate(layers, gpred, step, names=model.parameters())
    if comm is not None:
        value, grads = _allreduce_with(comm, value, grads, xp)
    return Evaluation(value, value, None, pred, grads)


def _allreduce_with(comm, value, grads: dict, xp):
    """(sum over ranks of value, of each gradient) in one all-reduce."""
    value, *summed = comm.allreduce_each(value, *grads.values())
    return value, dict(zip(grads, summed))
