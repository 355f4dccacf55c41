"""Derivatives of a network's outputs with respect to its inputs ("jets"), with hand-written
reverse passes, for physics-informed training (``kanarray.pde``).

``model.derivatives(x, order=2, mixed=False)`` -> ``Derivatives`` (u, du, d2u);
``model.derivatives_vjp(x, gu, gdu, gd2u, ...)`` -> (``Derivatives``, parameter gradients).
``jet_forward`` / ``jet_backward`` take any set of directions and pairs (``Directions``).
"""

from .network import Derivatives, Tape, check_spec, derivatives, derivatives_vjp, jet_backward, jet_forward
from .rule import Directions, directions

__all__ = ["Derivatives", "Directions", "Tape", "check_spec", "derivatives", "derivatives_vjp", "directions",
           "jet_backward", "jet_forward"]
