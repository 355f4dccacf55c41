"""Independent copies of a model (``KAN.copy``, ``copy.deepcopy``, ``copy.copy``).

Everything is copied (layers, symbolic edges, input scaling, ``fit_inputs``, and any other
attribute) except the array namespace module, which is shared: modules cannot be copied
(``copy.deepcopy`` used to fail with "cannot pickle 'module' object")."""

from __future__ import annotations

import copy

__all__ = ["deep_copy"]


def deep_copy(obj, memo: dict | None = None):
    """A copy of ``obj`` sharing nothing with it but ``obj.xp``: the arrays are new arrays on the
    same device.  memo: ``copy.deepcopy``'s."""
    memo = {} if memo is None else memo
    memo[id(obj.xp)] = obj.xp  # the layers, input map and caches refer to the same module
    new = type(obj).__new__(type(obj))
    memo[id(obj)] = new
    vars(new).update(copy.deepcopy(vars(obj), memo))
    return new
