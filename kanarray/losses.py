"""Loss values with their gradients with respect to the prediction."""

from __future__ import annotations

__all__ = ["mse"]


def mse(pred, target, xp):
    """Mean squared error over all entries.

    pred, target: (B, m) -> (loss as a 0-d array, dloss/dpred (B, m)).
    """
    diff = pred - target
    size = diff.shape[0] * diff.shape[1]
    return xp.sum(diff * diff) / size, (2.0 / size) * diff
