"""pykan's sparsification penalty (metric ``edge_forward_spline_n``) with hand-derived gradients.

Per layer, with edge activations phi (n, B, m) (base + spline branch, masked) and inputs x (B, n):

    v_io   = std_b(phi_bio) / (std_b(x_bi) + 0.1)          (std with ddof=1, like torch.std)
    p_row  = v / (sum_i v_io + 1)      H_row = -mean_o sum_i p_row log2(p_row + 1e-4)
    p_col  = v / (sum_o v_io + 1)      H_col = -mean_i sum_o p_col log2(p_col + 1e-4)
    reg    = sum_layers lamb_l1 * sum(v) + lamb_entropy * (H_row + H_col)
           + lamb_coef * sum_layers sum_ij mean_o |coef_ioj|
           + lamb_coefdiff * sum_layers sum_ij mean_o |coef_io(j+1) - coef_ioj|

("rows" are output nodes, as in pykan's (out, in) layout; the coefficient terms average over
outputs and sum over inputs and bases, as pykan does.)  Where a standard deviation is zero
(a masked or constant edge) its gradient is taken as zero rather than NaN.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from . import spline
from ._checks import check_number
from ._namespace import xmean, xsum
from .backends import get_kernels
from .backends.generic import SpreadGradient
from .spline import safe_reciprocal

__all__ = ["Regularization", "EdgeSpread", "SpreadGradient", "GramSpread", "gram_stats", "penalty"]

X_OFFSET = 0.1


@dataclass(frozen=True)
class Regularization:
    """Weights of the penalty; objective = loss + lamb * reg."""

    lamb: float = 0.0
    lamb_l1: float = 1.0
    lamb_entropy: float = 2.0
    lamb_coef: float = 0.0
    lamb_coefdiff: float = 0.0

    def __post_init__(self):
        for f in fields(self):
            check_number(f.name, getattr(self, f.name))

    @property
    def active(self) -> bool:
        return self.lamb > 0

    def check_batch(self, batch: int) -> None:
        """The penalty uses standard deviations over the batch: it needs two samples."""
        if self.active and batch < 2:
            raise ValueError(
                "regularization (lamb > 0) needs batches of at least 2 samples (it uses std over the batch)"
            )


def _std(a, axis: int, xp):
    """(std with ddof=1 along axis, centred a, reciprocal of (B-1) std with 0 where std == 0)."""
    n = a.shape[axis]
    centred = a - xmean(xp, a, axis=axis, keepdims=True)
    std = xp.sqrt(xsum(xp, centred * centred, axis=axis) / (n - 1))
    return std, centred, safe_reciprocal((n - 1) * std, xp)


class EdgeSpread:
    """std over the batch of every edge activation, from the activations phi (n, B, m) and
    the inputs transposed, xt (n, B); ``backward`` gives dL/dphi and dL/dxt.

    compiled: the layer ran through the compiled per-edge passes (``backends.numba_edges``);
    the statistics then come from one compiled pass, and ``backward`` returns a
    ``SpreadGradient`` for the layer's compiled backward to apply, with no dL/dxt array.
    comm, n_total: a ``distributed.Communicator`` and the number of samples over all ranks;
    the statistics are then those of the global batch (this rank's phi and xt are its shard)."""

    def __init__(self, xt, phi, xp, *, compiled: bool = False, comm=None, n_total: int | None = None):
        self.xp = xp
        self.compiled = compiled
        if comm is not None:
            stats = _global_spread(phi, xt, comm, n_total, xp, keep_centred=not compiled)
            self.sphi, self._inv_phi, self._phi_mean, sx0, self._inv_x, self._x_mean, cphi, cx = stats
            if compiled:
                self._phi, self._xt = phi, xt
            else:
                self._cphi, self._cx = cphi, cx
        elif compiled:
            from .backends.numba_edges import spread_stats

            self._phi, self._xt = phi, xt
            self.sphi, self._inv_phi, self._phi_mean, sx0, self._inv_x, self._x_mean = spread_stats(phi, xt)
        else:
            self.sphi, self._cphi, self._inv_phi = _std(phi, 1, xp)  # (n, m), (n, B, m), (n, m)
            sx0, self._cx, self._inv_x = _std(xt, 1, xp)  # (n,), (n, B), (n,)
        self.sx = sx0 + X_OFFSET

    def backward(self, dsphi, dsx):
        """dL/dsphi (n, m), dL/dsx (n,) -> (dL/dphi (n, B, m), dL/dxt (n, B)), or
        (``SpreadGradient``, None) when compiled."""
        if self.compiled:
            return SpreadGradient(self._phi, dsphi * self._inv_phi, self._phi_mean, self._xt, dsx * self._inv_x,
                                  self._x_mean), None
        gphi = (dsphi * self._inv_phi)[:, None, :] * self._cphi
        gxt = (dsx * self._inv_x)[:, None] * self._cx
        return gphi, gxt


def _global_spread(phi, xt, comm, n_total: int, xp, *, keep_centred: bool = True):
    """std (ddof 1) over all ranks' samples of phi (n, B, m) along B and xt (n, B) along B:
    (std phi, 1 / ((N - 1) std phi) or 0, mean phi, std x, 1 / ((N - 1) std x) or 0, mean x,
    centred phi, centred xt); two all-reduces, each of n m + n numbers.  keep_centred=False:
    the centred arrays are None, and phi is centred one input row at a time (no (n, B, m)
    temporary)."""
    n = phi.shape[0]
    phi_sum, x_sum = comm.allreduce_each(xsum(xp, phi, axis=1), xsum(xp, xt, axis=1))
    phi_mean, x_mean = phi_sum / n_total, x_sum / n_total
    cx = xt - x_mean[:, None]
    if keep_centred:
        cphi = phi - phi_mean[:, None, :]
        phi_squares = xsum(xp, cphi * cphi, axis=1)
    else:
        cphi = None
        phi_squares = xp.stack([xsum(xp, (phi[i] - phi_mean[i][None, :]) ** 2, axis=0) for i in range(n)])
    phi_squares, x_squares = comm.allreduce_each(phi_squares, xsum(xp, cx * cx, axis=1))
    sphi = xp.sqrt(phi_squares / (n_total - 1))
    sx = xp.sqrt(x_squares / (n_total - 1))
    inv_phi = safe_reciprocal((n_total - 1) * sphi, xp)
    inv_x = safe_reciprocal((n_total - 1) * sx, xp)
    return sphi, inv_phi, phi_mean, sx, inv_x, x_mean, cphi, (cx if keep_centred else None)


def gram_stats(layer, x, *, comm=None, n_total: int | None = None):
    """For a layer whose inputs x (B, n) are fixed data: the centred covariance over the batch
    of each input's features [b(x_i), B_i1(x_i), ..., B_inb(x_i)] (n, nb + 1, nb + 1), and
    std(x_i) + 0.1 (n,).  Every edge's activation is phi_io = w_io . features_i, so its
    variance is w_io^T C_i w_io whatever the parameters: computed once per batch and grid.
    comm, n_total: over all ranks' samples (x is this rank's shard; two all-reduces)."""
    from .base import BASE_FUNCTIONS

    xp = layer.xp
    B = x.shape[0]
    if layer.extrapolate == "linear":
        from .extrapolation import extended_basis

        bases = extended_basis(x, layer.grid, layer.k, xp)
    else:
        bases = spline.basis(x, layer.grid, layer.k, xp=xp)
    basis_t = xp.permute_dims(bases, (1, 0, 2))  # (n, B, nb)
    xt = xp.permute_dims(x, (1, 0))
    base = BASE_FUNCTIONS[layer.base_fun][0](xt, xp) if layer.base_fun != "zero" else xp.zeros_like(xt)
    feats = xp.concat([base[:, :, None], basis_t], axis=2)  # (n, B, nb + 1)
    if comm is None:
        feats = feats - xmean(xp, feats, axis=1, keepdims=True)
        cov = xp.matmul(xp.permute_dims(feats, (0, 2, 1)), feats) / (B - 1)
        sx = xp.std(x, axis=0, correction=1) + X_OFFSET
        return cov, sx
    feat_sum, x_sum = comm.allreduce_each(xsum(xp, feats, axis=1), xsum(xp, xt, axis=1))
    feats = feats - feat_sum[:, None, :] / n_total
    cx = xt - (x_sum / n_total)[:, None]
    cov, x_squares = comm.allreduce_each(xp.matmul(xp.permute_dims(feats, (0, 2, 1)), feats),
                                         xsum(xp, cx * cx, axis=1))
    return cov / (n_total - 1), xp.sqrt(x_squares / (n_total - 1)) + X_OFFSET


class GramSpread:
    """std of every edge activation of a layer with fixed inputs, from ``gram_stats``:
    sphi_io = sqrt(w_io^T C_i w_io) with w_io = mask_io (scale_base_io, scale_sp_io coef_io).
    ``backward`` gives the gradients with respect to the layer's parameters directly; the
    cost per call is independent of the batch size."""

    def __init__(self, layer, stats):
        xp = self.xp = layer.xp
        self.layer = layer
        cov, self.sx = stats
        w = xp.concat([layer.scale_base[:, :, None], layer.scale_sp[:, :, None] * layer.coef], axis=2)
        self._w = layer.mask[:, :, None] * w  # (n, m, nb + 1)
        self._cw = xp.matmul(self._w, cov)  # (n, m, nb + 1); C is symmetric
        var = xsum(xp, self._cw * self._w, axis=2)
        self.sphi = xp.sqrt(xp.maximum(var, xp.zeros_like(var)))

    def backward(self, dsphi):
        """dL/dsphi (n, m) -> dL/d{coef, scale_base, scale_sp}."""
        xp, layer = self.xp, self.layer
        dw = (dsphi * safe_reciprocal(self.sphi, xp))[:, :, None] * self._cw * layer.mask[:, :, None]
        return {
            "scale_base": dw[:, :, 0],
            "scale_sp": xsum(xp, dw[:, :, 1:] * layer.coef, axis=2),
            "coef": dw[:, :, 1:] * layer.scale_sp[:, :, None],
        }


def penalty(spreads, coefs, reg: Regularization, xp, *, grad: bool = True):
    """The penalty and its gradients.

    spreads: per layer (sphi (n, m) = std of each edge activation, sx (n,) = std of each input
    + 0.1); coefs: per layer coef (n, m, nb).  Returns (reg as a 0-d array, per layer
    (dreg/dsphi (n, m), dreg/dsx (n,)), per layer dreg/dcoef (n, m, nb) or None); the
    gradients are None when grad=False.
    """
    total = None
    spread_grads, coef_grads = [], []
    kernels = get_kernels(xp)
    for (sphi, sx), coef in zip(spreads, coefs):
        term, spread_grad = kernels.spread_penalty(sphi, sx, reg.lamb_l1, reg.lamb_entropy, grad=grad)
        spread_grads.append(spread_grad)
        gcoef = None
        if reg.lamb_coef or reg.lamb_coefdiff:
            m = coef.shape[1]
            diff = coef[:, :, 1:] - coef[:, :, :-1]
            term = term + reg.lamb_coef * xsum(xp, xp.abs(coef)) / m + reg.lamb_coefdiff * xsum(xp, xp.abs(diff)) / m
            if grad:
                gcoef = _coef_grad(coef, diff, reg, m, xp)
        coef_grads.append(gcoef)
        total = term if total is None else total + term
    if not grad:
        return total, None, None
    return total, spread_grads, coef_grads


def _coef_grad(coef, diff, reg: Regularization, m: int, xp):
    """d/dcoef of lamb_coef sum|coef| / m + lamb_coefdiff sum|diff(coef)| / m."""
    gcoef = (reg.lamb_coef / m) * xp.sign(coef)
    if reg.lamb_coefdiff:
        s = (reg.lamb_coefdiff / m) * xp.sign(diff)
        zero = xp.zeros_like(coef[:, :, :1])
        gcoef = gcoef + xp.concat([zero, s], axis=2) - xp.concat([s, zero], axis=2)
    return gcoef
