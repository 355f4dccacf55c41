"""Optimizers acting on dicts of parameter arrays (``model.parameters()``), updated in place so
the model's live arrays follow, with gradient dicts from ``KAN.value_and_grad``.

* ``SGD`` (momentum, Nesterov), ``Adam``, ``AdamW``: ``opt.step(grads)``.
* ``LBFGS`` with a strong-Wolfe line search: ``opt.step(closure)``, closure() -> (loss, grads).

Every optimizer has ``state_dict()`` / ``load_state_dict()`` (saved with the model by
``model.save(path, optimizer=opt)``) and ``transferred(new_params)`` to carry its state to a
refined model: state of parameters whose shape is unchanged is kept, state of the others
(the coefficients after ``refine``) is reset; LBFGS drops its whole curvature history.
``LBFGS.step`` raises ``NonFiniteError`` (a ``FloatingPointError``), changing nothing, when the
objective or gradient it starts from is NaN or infinite.
"""

from ._base import NonFiniteError, Optimizer, optimizer_from_state
from .first_order import SGD, Adam, AdamW
from .lbfgs import LBFGS

__all__ = ["NonFiniteError", "Optimizer", "SGD", "Adam", "AdamW", "LBFGS", "optimizer_from_state"]
