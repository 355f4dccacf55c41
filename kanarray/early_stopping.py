"""``fit``'s watch on the validation loss: the best step so far, its loss, early stopping after
``patience`` steps without improvement, and (``restore_best``) a ``recovery.Snapshot`` of the
best step's parameters to end on."""

from __future__ import annotations

import math

from .recovery import Snapshot

__all__ = ["BestValidation"]


class BestValidation:
    """The best validation step of a fit.

    patience: None (never stop early) or the number of consecutive steps without a strictly
    lower validation loss after which ``record`` says to stop.  restore: keep a snapshot of the
    best step's parameters (grids, ``fit_inputs`` and all: ``Snapshot``) for ``restore``.
    step, loss: the best step (0-based, an index into the history's curves) and its validation
    loss (RMSE for mse, cross-entropy otherwise), None before the first finite one."""

    def __init__(self, model, *, patience: int | None, restore: bool):
        self.patience = patience
        self.snapshot = Snapshot(model) if restore else None
        self.step = self.loss = None
        self.waited = 0  # steps since the best one

    def record(self, step: int, val_loss: float, objective: float) -> bool:
        """Record the validation loss of ``step``, measured at the parameters the model holds now
        (taken into the snapshot if it is the best); whether fit should stop after this step.
        A NaN or infinite validation loss is never an improvement."""
        if math.isfinite(val_loss) and (self.loss is None or val_loss < self.loss):
            self.step, self.loss, self.waited = step, val_loss, 0
            if self.snapshot is not None:
                self.snapshot.take(step, objective)
        else:
            self.waited += 1
        return self.patience is not None and self.waited >= self.patience

    def restore(self) -> None:
        """Write the best step's parameters back into the model (in place), if they were kept."""
        if self.snapshot is not None:
            self.snapshot.restore()
