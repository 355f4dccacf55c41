"""sympy expressions as functions of arrays on any array-API namespace (sympy imported here, on use).

``array_function(expr, symbols)`` prints the expression once with sympy's NumPy printer and
returns a callable ``f(xp, *arrays)``; the printed ``numpy.<name>`` calls resolve to the array-API
functions of ``xp`` (``arcsin`` -> ``asin``, ``select`` -> nested ``where``, ...), compiled once per
namespace.  A result that does not depend on the arrays (a constant) is broadcast to their shape.
"""

from __future__ import annotations

import functools
import math

__all__ = ["array_function", "UnsupportedFunction"]

_RENAMED = {"arcsin": "asin", "arccos": "acos", "arctan": "atan", "arctan2": "atan2", "arcsinh": "asinh",
            "arccosh": "acosh", "arctanh": "atanh", "absolute": "abs", "power": "pow", "mod": "remainder",
            "fmod": "remainder", "amax": "max", "amin": "min"}
_CONSTANTS = {"pi": math.pi, "e": math.e, "inf": math.inf, "nan": math.nan, "euler_gamma": 0.5772156649015329}


class UnsupportedFunction(ValueError):
    """An expression uses a function the array namespace does not have."""


class _Shim:
    """``numpy.<name>`` for sympy's printed code, answered by the namespace xp."""

    def __init__(self, xp):
        self._xp = xp

    def __getattr__(self, name):
        if name in _CONSTANTS:
            return _CONSTANTS[name]
        if name == "select":
            return self._select
        fn = getattr(self._xp, _RENAMED.get(name, name), None)
        if fn is None:
            raise UnsupportedFunction(f"the expression uses numpy.{name}, which the array namespace "
                                      f"{getattr(self._xp, '__name__', self._xp)!r} does not provide")
        return fn

    def _select(self, conditions, choices, default=math.nan):
        """numpy.select (sympy's Piecewise) as nested where, the last condition first."""
        xp = self._xp
        out = default
        for cond, choice in reversed(list(zip(conditions, choices))):
            if cond is True:
                out = choice
            else:
                out = xp.where(cond, choice if hasattr(choice, "shape") else xp.asarray(choice),
                               out if hasattr(out, "shape") else xp.asarray(out))
        return out


def array_function(expr, symbols):
    """expr (sympy) in ``symbols`` (a list of sympy Symbols) -> f(xp, *arrays) of the same shape
    as the arrays (broadcast), evaluated with namespace xp."""
    import sympy
    from sympy.printing.numpy import NumPyPrinter

    compiled: dict = {}

    def f(xp, *arrays):
        key = id(xp)
        if key not in compiled:
            compiled[key] = sympy.lambdify(list(symbols), expr, modules=[{"numpy": _Shim(xp), "functools": functools}],
                                           printer=NumPyPrinter, cse=True)
        out = compiled[key](*arrays)
        ref = arrays[0]
        if not hasattr(out, "shape") or tuple(out.shape) != tuple(ref.shape):
            out = xp.zeros_like(ref) + out
        return out

    return f
