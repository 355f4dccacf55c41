"""``KAN.predict``, ``predict_proba`` and ``score``: what a trained model's outputs mean.

A model's outputs are values (regression, trained with loss="mse") or one logit per class
(classification, loss="cross_entropy", softmax over the outputs).  The model itself cannot
tell which, so ``KAN.fit`` records the loss it trained with as ``model.task``:
"regression" or "classification" (None before any fit; checkpoints keep it, older ones load
with None).  ``predict`` and ``score`` take
``task`` to override it; with neither, the outputs are values.

A binary classifier has two outputs (two logits, softmax): one output cannot carry a
cross-entropy over two classes; fit (labels beyond 0 on one output), predict (task
"classification") and predict_proba on one output say so (``BINARY_HINT``).
"""

from __future__ import annotations

import numpy as np

from ._namespace import to_numpy, xsum

__all__ = ["BINARY_HINT", "TASKS", "check_classifier", "predict", "predict_proba", "resolve_task", "score", "task_of_loss"]

BINARY_HINT = ("a classifier has one output (logit) per class: for a binary problem use width[-1] = 2 and "
               "integer labels 0/1 with loss='cross_entropy'")
# the task each training loss makes
TASKS = {"mse": "regression", "cross_entropy": "classification"}


def task_of_loss(loss: str) -> str:
    """"regression" for loss="mse", "classification" for "cross_entropy"."""
    if loss not in TASKS:
        raise ValueError(f"loss must be one of {list(TASKS)}, got {loss!r}")
    return TASKS[loss]


def resolve_task(model, task=None) -> str:
    """``task`` if given, else the task of the model's last fit (``model.task``), else "regression"."""
    if task is None:
        task = getattr(model, "task", None) or "regression"
    if task not in TASKS.values():
        raise ValueError(f"task must be 'regression' or 'classification' (or None: the model's own, "
                         f"{getattr(model, 'task', None)!r}), got {task!r}")
    return task


def check_classifier(n_outputs: int, what: str) -> None:
    """A ValueError unless the model has one output (logit) per class, at least two."""
    if n_outputs < 2:
        raise ValueError(f"{what} needs at least 2 outputs, the model has {n_outputs}; {BINARY_HINT}")


def _softmax(logits, xp):
    shifted = logits - xp.max(logits, axis=1, keepdims=True)
    exp = xp.exp(shifted)
    return exp / xsum(xp, exp, axis=1, keepdims=True)


def predict(model, x, task=None):
    """x (batch, width[0]) -> class labels (batch,) int64 (the largest logit) for a
    classification model, values (batch, width[-1]) otherwise; in the model's namespace."""
    task = resolve_task(model, task)
    if task == "classification":
        check_classifier(model.width[-1], "predicting class labels")
    out = model(x)
    if task == "regression":
        return out
    xp = model.xp
    return xp.astype(xp.argmax(out, axis=1), xp.int64)


def predict_proba(model, x):
    """x (batch, width[0]) -> class probabilities (batch, width[-1]), the softmax of the logits
    (rows sum to 1).  ValueError for a model trained for regression or with one output."""
    if getattr(model, "task", None) == "regression":
        raise ValueError("predict_proba is for a model trained with loss='cross_entropy'; this one was trained "
                         "with loss='mse' (its outputs are values: use predict)")
    check_classifier(model.width[-1], "predict_proba")
    return _softmax(model(x), model.xp)


def score(model, x, y, task=None) -> float:
    """scikit-learn's score: accuracy (fraction of labels y (batch,) predicted right) for
    classification; the coefficient of determination R^2 for regression, y (batch, width[-1])
    or (batch,) with one output, averaged uniformly over the outputs (1 is perfect; 0 is the
    mean's; an output that is constant in y scores 1 if predicted exactly, else 0)."""
    task = resolve_task(model, task)
    pred = np.asarray(to_numpy(predict(model, x, task)))
    y = np.asarray(to_numpy(y))
    if task == "classification":
        y = y.reshape(-1) if y.ndim == 2 and y.shape[1] == 1 else y
        if y.shape != pred.shape:
            raise ValueError(f"y must hold one class label per sample, shape {pred.shape}, got {y.shape}")
        return float(np.mean(pred == y))
    y = y.reshape(-1, 1) if y.ndim == 1 else y
    if y.shape != pred.shape:
        raise ValueError(f"y must have the outputs' shape {pred.shape} (or ({pred.shape[0]},) with one output), "
                         f"got {y.shape}")
    y = y.astype(np.float64)
    residual = np.sum((y - pred) ** 2, axis=0)
    total = np.sum((y - y.mean(axis=0)) ** 2, axis=0)
    exact = residual == 0
    r2 = np.where(total > 0, 1.0 - residual / np.where(total > 0, total, 1.0), np.where(exact, 1.0, 0.0))
    return float(np.mean(r2))
