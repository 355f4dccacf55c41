"""The start probe of ``fit``: before an L-BFGS fit from a model's seeded initialization, a few
steps from a second start tell whether the seeded one is headed for a poor local minimum.

pykan's initialization draws every base weight uniformly from [-1, 1] / sqrt(n_in).  On small
models the draw decides the basin: on exp(sin(pi x1) + x2^2) with a [2, 1, 1] KAN (G = 5, 50
L-BFGS steps), 5 of 12 seed and data draws ended at a test RMSE near 0.6 instead of 7e-3,
because a large tilted base weight makes the first edge monotone and the output edge bends to
make up for it.  The second start keeps the seeded splines and sets every base weight to
1 / sqrt(n_in) (pykan's ``scale_base_mu=1, scale_base_sigma=0``): in those runs it reached the
good basin every time (benchmarks/good_basin.py, docs/training.md).

The rule: both starts train ``PROBE_STEPS`` steps of the same fit (copies of the model, no
validation, no progress bar); the second replaces the seeded one only when its objective is
below the seeded one's by more than ``MARGIN`` times, so a fit that was going well is left
exactly as it was (bit for bit: the real fit then starts from the unchanged seeded state).
The cost is 2 * PROBE_STEPS steps, about 8% of a 50-step fit.

When it runs: L-BFGS by name, for any number of steps (so that a fit stopped early and a
shorter fit start alike), the model still at the state its constructor drew with the default
base-weight draw (``init="kanarray"``, ``scale_base_mu=0``, ``scale_base_sigma=1``; a chosen
draw is the user's and is left alone) (``fingerprint``: any fit, grid update, prune, refine, move,
load or edit ends that), no frozen scale_base and a base function other than "zero".  Physics
problems are not probed.  Ranks of a distributed fit agree on whether to probe (the minimum over
ranks), then probe together (the probes are fits with the same communicator) and so decide alike.
Ctrl-C during a probe raises KeyboardInterrupt from ``fit`` with the model unchanged.
"""

from __future__ import annotations

import math

import numpy as np

from ._namespace import to_numpy
from .fit_settings import trainable_parameters

__all__ = ["MARGIN", "PROBE_STEPS", "applies", "choose_start", "fingerprint", "second_start"]

PROBE_STEPS = 2  # steps per start: enough to separate the basins in the runs measured (module docstring)
MARGIN = 10.0  # the second start's objective must be this many times lower to replace the seeded one


def fingerprint(model) -> tuple:
    """Sums and sums of squares of every layer array (float64): equal again only if nothing changed.

    Cheap (one pass, no hash library: importing hashlib with kanarray was measured to slow NumPy's
    allocator, see ``distributed.parameters_digest``)."""
    out = []
    for layer in model.layers:
        for name, a in sorted(layer.state().items()):
            a = np.asarray(to_numpy(a), dtype=np.float64)  # on the host: the same sums on every backend
            out.append((name, float(np.sum(a)), float(np.sum(a * a))))
    return tuple(out)


def at_initialization(model) -> bool:
    """Whether the model's arrays are still those its constructor drew."""
    recorded = getattr(model, "initial_fingerprint", None)
    return recorded is not None and recorded == fingerprint(model)


def applies(model, settings) -> bool:
    """Whether ``fit`` probes a second start for these settings (the module docstring's conditions)."""
    if not (settings.start_probe and settings.opt == "lbfgs" and model.base_fun != "zero"):
        return False
    trained = trainable_parameters(model, settings.frozen)  # fit has checked the frozen names
    return all(f"layers.{l}.scale_base" in trained for l in range(len(model.layers))) and at_initialization(model)


def second_start(model):
    """A copy of the model with every base weight at 1 / sqrt(n_in) (the splines as drawn)."""
    other = model.copy()
    _set_second_start(other)
    return other


def _set_second_start(model) -> None:
    for layer in model.layers:
        layer.scale_base[...] = 1.0 / math.sqrt(layer.in_dim)


def _objective_after_probe(candidate, x, y, settings, comm) -> float:
    """The candidate's objective after PROBE_STEPS steps of the fit (inf if the probe diverged)."""
    from .recovery import TrainingDiverged

    probe = settings.replace(steps=PROBE_STEPS, progress=False, patience=None, restore_best=False,
                             start_probe=False)
    try:
        history = candidate.fit(x, y, probe, comm=comm)
    except TrainingDiverged:
        return math.inf
    if history.interrupted:  # Ctrl-C in a probe stops the whole fit, the model as it was
        raise KeyboardInterrupt
    train, reg = history["train_loss"][-1], history["reg"][-1]
    loss = train * train if settings.loss == "mse" else train
    return loss + settings.lamb * reg


def choose_start(model, x, y, settings, comm=None) -> dict:
    """Probe both starts and put the second one's base weights into ``model`` if it wins.

    x, y: fit's checked training data.  Returns {"seeded": objective, "second": objective,
    "chosen": "seeded" | "second"}; the model is changed only when the second start is chosen."""
    seeded = _objective_after_probe(model.copy(), x, y, settings, comm)
    second = _objective_after_probe(second_start(model), x, y, settings, comm)
    chosen = "second" if second * MARGIN < seeded else "seeded"
    if chosen == "second":
        _set_second_start(model)
    return {"seeded": seeded, "second": second, "chosen": chosen}
