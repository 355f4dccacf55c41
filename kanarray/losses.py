"""Loss values with their gradients with respect to the prediction.

Each loss maps (pred (B, m), target) -> (loss as a 0-d array, dloss/dpred (B, m)).  ``rows``:
the number of rows the mean is over when pred is one rank's shard of a larger batch (its
share of the mean; default B).
"""

from __future__ import annotations

from ._namespace import xsum

__all__ = ["mse", "cross_entropy", "accuracy", "LOSSES"]


def mse(pred, target, xp, rows=None):
    """Mean squared error over all entries; target (B, m)."""
    diff = pred - target
    size = (diff.shape[0] if rows is None else rows) * diff.shape[1]
    return xsum(xp, diff * diff) / size, (2.0 / size) * diff


def _one_hot(labels, n_classes: int, dtype, xp):
    classes = xp.arange(n_classes, dtype=labels.dtype, device=getattr(labels, "device", None))
    return xp.astype(labels[:, None] == classes[None, :], dtype)


def cross_entropy(pred, labels, xp, rows=None):
    """Mean softmax cross-entropy of logits pred (B, C) against integer labels (B,)."""
    shifted = pred - xp.max(pred, axis=1, keepdims=True)
    exp = xp.exp(shifted)
    total = xsum(xp, exp, axis=1, keepdims=True)
    log_prob = shifted - xp.log(total)
    target = _one_hot(labels, pred.shape[1], pred.dtype, xp)
    batch = pred.shape[0] if rows is None else rows
    loss = -xsum(xp, target * log_prob) / batch
    return loss, (exp / total - target) / batch


def accuracy(pred, labels, xp):
    """Fraction of rows whose largest logit is the label (0-d array)."""
    hits = xp.astype(xp.argmax(pred, axis=1) == xp.astype(labels, xp.int64), pred.dtype)
    return xp.mean(hits)


LOSSES = {"mse": mse, "cross_entropy": cross_entropy}
