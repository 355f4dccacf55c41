"""How ``fit`` fails safely: snapshots of the last good parameters, divergence by growth, the
bound on the data's magnitude, and the messages of ``TrainingDiverged``."""

from __future__ import annotations

import math

import numpy as np

from ._namespace import xsum
from .optim import LBFGS

__all__ = ["GROWTH_FACTOR", "GROWTH_STEPS", "Growth", "Snapshot", "TrainingDiverged", "all_finite", "baseline_loss",
           "check_magnitude", "data_scale", "diverged_message", "restore_after"]

#: divergence by growth: the objective above GROWTH_FACTOR times its reference for GROWTH_STEPS steps in a row
GROWTH_FACTOR = 1e6
GROWTH_STEPS = 5


class TrainingDiverged(FloatingPointError):
    """Training cannot go on: the objective or its gradient became NaN or infinite, or the
    objective grew without bound (above ``GROWTH_FACTOR`` times its reference for
    ``GROWTH_STEPS`` consecutive steps; see ``Growth``).  The model holds the last parameters
    whose objective was finite and within that bound, and ``history`` the curves up to the failure."""

    def __init__(self, message: str, history: dict):
        super().__init__(message)
        self.history = history


class Snapshot:
    """Copies of every layer array (``KANLayer.state``: grids, symbolic affine and node stages
    included) and the model's ``fit_inputs``; ``restore`` writes them back in place (optimizers keep
    their references to the live arrays).

    step, objective: the step whose parameters were taken and its objective (None before fit)."""

    def __init__(self, model):
        self.model = model
        self.arrays = None
        self.fit_inputs = None
        self.step = self.objective = None

    def take(self, step=None, objective=None):
        self.arrays = [layer.copy().state() for layer in self.model.layers]
        self.fit_inputs = self.model.fit_inputs
        self.step, self.objective = step, objective

    def restore(self):
        if self.arrays is None:
            return
        for layer, saved in zip(self.model.layers, self.arrays):
            live = layer.state()
            for name, a in saved.items():
                live[name][...] = a
        self.model.fit_inputs = self.fit_inputs

    def describe(self) -> str:
        """Which parameters ``restore`` brings back, for messages."""
        if self.step is None:
            return "the parameters it had before fit"
        return f"the parameters of step {self.step} (objective {self.objective:.3g})"


class Growth:
    """Divergence by growth: the objective above ``GROWTH_FACTOR`` times its reference for
    ``GROWTH_STEPS`` consecutive steps.

    The reference is the larger of the first step's objective and ``baseline``, the loss of
    predicting zeros on the training set (mse: mean of y^2; cross-entropy: log of the number of
    classes), so a fit that starts near a perfect fit is not held to its tiny first loss.  The
    rule is off when the reference is 0 or not finite.  The objective is the same on every
    rank of a distributed fit, so every rank decides alike."""

    def __init__(self, baseline: float):
        self.baseline = baseline
        self.reference = self.limit = None
        self.streak = 0

    def within(self, objective: float) -> bool:
        """Record one step's (finite) objective; whether it is within the bound."""
        if self.limit is None:
            self.reference = max(objective, self.baseline)
            self.limit = GROWTH_FACTOR * self.reference if 0 < self.reference < math.inf else math.inf
        self.streak = self.streak + 1 if objective > self.limit else 0
        return self.streak == 0

    @property
    def diverged(self) -> bool:
        return self.streak >= GROWTH_STEPS


def check_magnitude(model, x, name: str, loss: str, y) -> None:
    """ValueError if the inputs x (as the first layer sees them) or, for mse, the targets y reach
    sqrt(the dtype's largest value) (1.3e154 in float64, 1.8e19 in float32): the objective and
    its gradient square values of that order, so they would overflow."""
    xp = model.xp
    limit = math.sqrt(float(xp.finfo(model.dtype).max))
    arrays = [(name, x, "inputs as the first layer sees them")]
    if loss == "mse":
        arrays.append((name.replace("x", "y"), y, "targets"))
    for label, a, what in arrays:
        largest = float(xp.max(xp.abs(a)))
        if largest >= limit:
            raise ValueError(
                f"{label} holds values up to {largest:.3g} in magnitude ({what}); fit squares values of this order, "
                f"which overflows {model.dtype_name} beyond {limit:.3g}: rescale the data (inputs within the grid "
                f"range, e.g. with model.scale_inputs(lo, hi), and outputs of order 1)")


def baseline_loss(model, y, loss: str, comm=None) -> float:
    """The loss of predicting zeros on the training set (all ranks' with comm): the mean of y^2
    for mse, log(classes) for cross-entropy (uniform probabilities); ``Growth``'s floor."""
    if loss == "cross_entropy":
        return math.log(model.width[-1])
    xp = model.xp
    with np.errstate(over="ignore"):  # huge targets: an infinite baseline turns the rule off
        total = float(xsum(xp, y * y))
    count = y.shape[0] * y.shape[1]
    if comm is not None:
        total, count = comm.allreduce_scalar(total), comm.allreduce_scalar(count)
    return total / count


def all_finite(params: dict, xp) -> bool:
    return all(bool(xp.all(xp.isfinite(p))) for p in params.values())


def restore_after(good: Snapshot, exc: BaseException, step: int) -> None:
    """Restore ``good`` after an unexpected exception and say so in a note on it."""
    try:
        good.restore()
        note = f"fit stopped at step {step} by this error; the model was restored to {good.describe()}"
    except Exception as failure:  # noqa: BLE001 - reported on the original error
        note = f"fit stopped at step {step} by this error and could not restore the parameters ({failure!r})"
    if hasattr(exc, "add_note"):  # Python >= 3.11
        exc.add_note(note)


def data_scale(xp, x, y, loss: str) -> str:
    """The largest magnitudes in this rank's data, for TrainingDiverged's message."""
    text = f"the first layer's inputs reach |x| = {float(xp.max(xp.abs(x))):.3g}"
    if loss == "mse":
        text += f" and the targets |y| = {float(xp.max(xp.abs(y))):.3g}"
    return text


def diverged_message(what: str, step: int, optimizer, reg, good: Snapshot, scale: str, at_start: bool) -> str:
    """TrainingDiverged's text: what happened (and at which step), what the model holds now, what to try.

    at_start: the failure came at the parameters fit started from (before any update), where
    no learning rate plays a part: only the data (or the model) can be the cause."""
    name = type(optimizer).__name__
    hint = "a smaller lr" if not isinstance(optimizer, LBFGS) else "opt='adam' with a small lr (e.g. 1e-3)"
    extra = ", a smaller lamb" if reg.active else ""
    if f"step {step}" not in what:
        what = f"{what} at step {step}"
    rescale = ("rescale the data (inputs within the grid range, e.g. with model.scale_inputs(lo, hi), and outputs "
               f"of order 1): {scale}")
    todo = (f"That is at the parameters fit started from, before any update, where no lr plays a part: {rescale}"
            if at_start else f"Try {hint}{extra}, or {rescale}")
    return f"{what} ({name}); the model was restored to {good.describe()}. {todo}."
