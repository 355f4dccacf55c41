"""The symbolic function library: one row per function an edge can be replaced by.

Each row (``SymbolicFunction``) holds the name, the function and its derivative on any
array-API namespace, the sympy function, a complexity (pykan's values) and two symmetry
facts used to put fitted parameters in a canonical form (so that ``-sin(-3.14 x)`` is
reported as ``sin(3.14 x)``).

The array functions are *safe*: wherever the mathematical function is singular or
undefined (1/x at 0, log and sqrt below 0, tan at pi/2, arcsin beyond 1, exp overflow)
its argument is clamped to the edge of a safe domain and the derivative there is 0, so no
NaN or infinity reaches training.  Inside the safe domain they are the exact functions,
and the sympy column is the exact function.

Users add rows with ``register``; ``LIBRARY`` maps names to rows in library order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

__all__ = ["SymbolicFunction", "LIBRARY", "register", "get_function", "resolve_library"]

# |f| is capped near this value by the safe versions of the singular functions
_VALUE_CAP = 1e6
_EXP_CAP = 50.0  # exp(50) ~ 5e21 is finite in float32 and float64


@dataclass(frozen=True)
class SymbolicFunction:
    """One library row.

    fn(z, xp), deriv(z, xp): the (safe) function and its derivative, elementwise on arrays of
        namespace xp.
    sympy_fn(s): the function of a sympy expression s.
    complexity: pykan's complexity weight (lower is simpler).
    parity: "odd" (f(-z) = -f(z)), "even" (f(-z) = f(z)) or None.
    shift: (P, s) when f(z + P) = s f(z) for all z (sin: (pi, -1), tan: (pi, 1)), else None.
    degree: p when f(s z) = s^p f(z) for s > 0 (powers, abs), so a can be folded into c; None otherwise.
    exponential: f(z + t) = e^t f(z) (exp), so b can be folded into c.
    """

    name: str
    fn: Callable
    deriv: Callable
    sympy_fn: Callable
    complexity: float
    parity: str | None = None
    shift: tuple | None = None
    degree: float | None = None
    exponential: bool = False


LIBRARY: dict[str, SymbolicFunction] = {}


def register(name: str, fn: Callable, deriv: Callable, sympy_fn: Callable, complexity: float, *,
             parity: str | None = None, shift: tuple | None = None, degree: float | None = None,
             exponential: bool = False, overwrite: bool = False) -> SymbolicFunction:
    """Add a function to the library (and return its row).

    fn and deriv take (z, xp) and must return finite values for every finite z (clamp a
    singular function's argument); sympy_fn maps a sympy expression to one.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"a symbolic function needs a non-empty string name, got {name!r}")
    if name in LIBRARY and not overwrite:
        raise ValueError(f"the library already has a function named {name!r}; pass overwrite=True to replace it")
    for label, f in (("fn", fn), ("deriv", deriv), ("sympy_fn", sympy_fn)):
        if not callable(f):
            raise ValueError(f"{label} of {name!r} must be callable, got {f!r}")
    if isinstance(complexity, bool) or not isinstance(complexity, (int, float)) or not complexity >= 0:
        raise ValueError(f"complexity of {name!r} must be a number >= 0, got {complexity!r}")
    if parity not in (None, "odd", "even"):
        raise ValueError(f"parity of {name!r} must be 'odd', 'even' or None, got {parity!r}")
    row = SymbolicFunction(name, fn, deriv, sympy_fn, float(complexity), parity, shift, degree, bool(exponential))
    LIBRARY[name] = row
    return row


def get_function(name) -> SymbolicFunction:
    """The library row called ``name``; ValueError listing the names if there is none."""
    try:
        return LIBRARY[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown symbolic function {name!r}; the library has {list(LIBRARY)} "
                         "(add one with kanarray.symbolic.register)") from None


def resolve_library(lib) -> list[SymbolicFunction]:
    """None (the whole library) or an iterable of names -> rows, in the given order."""
    if lib is None:
        return list(LIBRARY.values())
    if isinstance(lib, str):
        lib = [lib]
    rows = [get_function(name) for name in lib]
    if not rows:
        raise ValueError("lib must name at least one symbolic function")
    return rows


# -- safe building blocks --------------------------------------------------------------------
def _full(z, value, xp):
    return xp.full_like(z, value)


def _away_from_zero(z, th, xp):
    """z with |z| >= th (0 goes to +th), and a 0/1 array marking where z was kept."""
    inside = xp.abs(z) < th
    sign = xp.where(z < 0, _full(z, -1.0, xp), _full(z, 1.0, xp))
    return xp.where(inside, sign * th, z), xp.where(inside, _full(z, 0.0, xp), _full(z, 1.0, xp))


def _ipow(z, p: int):
    """z ** p for a small integer p >= 1 by multiplication (a general pow is several times slower)."""
    out = z
    for _ in range(p - 1):
        out = out * z
    return out


def _power(p: int):
    def fn(z, xp):
        return _ipow(z, p)

    def deriv(z, xp):
        return p * _ipow(z, p - 1) if p > 1 else xp.ones_like(z)

    return fn, deriv


def _inverse_power(p: int):
    th = _VALUE_CAP ** (-1.0 / p)

    def fn(z, xp):
        zc, _ = _away_from_zero(z, th, xp)
        return 1.0 / _ipow(zc, p)

    def deriv(z, xp):
        zc, kept = _away_from_zero(z, th, xp)
        return -p * kept / _ipow(zc, p + 1)

    return fn, deriv


_TINY = 1.0 / _VALUE_CAP**2  # sqrt(_TINY) = 1 / _VALUE_CAP


def _positive(z, th, xp):
    """(max(z, th), 1 where z > th else 0)."""
    above = z > th
    return xp.where(above, z, _full(z, th, xp)), xp.where(above, _full(z, 1.0, xp), _full(z, 0.0, xp))


def _sqrt(z, xp):
    return xp.sqrt(_positive(z, 0.0, xp)[0])


def _sqrt_d(z, xp):
    zc, kept = _positive(z, _TINY, xp)
    return kept * 0.5 / xp.sqrt(zc)


def _pow15(z, xp):
    zc = _positive(z, 0.0, xp)[0]
    return zc * xp.sqrt(zc)


def _pow15_d(z, xp):
    return 1.5 * xp.sqrt(_positive(z, 0.0, xp)[0])


def _rsqrt(z, xp):
    return 1.0 / xp.sqrt(_positive(z, _TINY, xp)[0])


def _rsqrt_d(z, xp):
    zc, kept = _positive(z, _TINY, xp)
    return -0.5 * kept / (zc * xp.sqrt(zc))


def _exp(z, xp):
    return xp.exp(xp.clip(z, None, _EXP_CAP))


def _exp_d(z, xp):
    return xp.where(z < _EXP_CAP, xp.exp(xp.clip(z, None, _EXP_CAP)), _full(z, 0.0, xp))


_LOG_FLOOR = 1.0 / _VALUE_CAP


def _log(z, xp):
    return xp.log(_positive(z, _LOG_FLOOR, xp)[0])


def _log_d(z, xp):
    zc, kept = _positive(z, _LOG_FLOOR, xp)
    return kept / zc


def _abs_d(z, xp):
    return xp.sign(z)


def _tan_parts(z, xp):
    c, kept = _away_from_zero(xp.cos(z), 1.0 / _VALUE_CAP, xp)
    return c, kept


def _tan(z, xp):
    return xp.sin(z) / _tan_parts(z, xp)[0]


def _tan_d(z, xp):
    c, kept = _tan_parts(z, xp)
    return kept / (c * c)


def _tanh_d(z, xp):
    t = xp.tanh(z)
    return 1.0 - t * t


_ARC_EDGE = 1.0 - 1e-7


def _unit(z, xp):
    """(clip(z, -1, 1), 1 where |z| < 1 - 1e-7 else 0)."""
    inside = xp.abs(z) < _ARC_EDGE
    return xp.clip(z, -1.0, 1.0), xp.where(inside, _full(z, 1.0, xp), _full(z, 0.0, xp))


def _arcsin_d(z, xp):
    zc, kept = _unit(z, xp)
    zk = kept * zc
    return kept / xp.sqrt(1.0 - zk * zk)


def _arctanh(z, xp):
    return xp.atanh(xp.clip(z, -_ARC_EDGE, _ARC_EDGE))


def _arctanh_d(z, xp):
    zc, kept = _unit(z, xp)
    zk = kept * zc
    return kept / (1.0 - zk * zk)


def _gauss(z, xp):
    return xp.exp(-z * z)


def _gauss_d(z, xp):
    return -2.0 * z * xp.exp(-z * z)


def _zero(z, xp):
    return xp.zeros_like(z)


def _install_defaults() -> None:
    import operator

    def lazy(name):
        """sympy.<name>, looked up on use so importing kanarray never imports sympy."""
        def fn(s):
            import sympy

            return getattr(sympy, name)(s)

        return fn

    def sympy_power(p):
        return lambda s: operator.pow(s, p)

    def sympy_rational_power(num, den):
        def fn(s):
            import sympy

            return s ** sympy.Rational(num, den)

        return fn

    def sympy_gauss(s):
        import sympy

        return sympy.exp(-s**2)

    pi = math.pi
    for p in range(1, 6):
        fn, deriv = _power(p)
        register("x" if p == 1 else f"x^{p}", fn, deriv, sympy_power(p), (1, 2, 3, 3, 3)[p - 1],
                 parity="odd" if p % 2 else "even", degree=p)
    for p in range(1, 6):
        fn, deriv = _inverse_power(p)
        register("1/x" if p == 1 else f"1/x^{p}", fn, deriv, sympy_power(-p), (2, 2, 3, 4, 5)[p - 1],
                 parity="odd" if p % 2 else "even", degree=-p)
    register("sqrt", _sqrt, _sqrt_d, lazy("sqrt"), 2, degree=0.5)
    register("x^1.5", _pow15, _pow15_d, sympy_rational_power(3, 2), 4, degree=1.5)
    register("1/sqrt(x)", _rsqrt, _rsqrt_d, sympy_rational_power(-1, 2), 2, degree=-0.5)
    register("exp", _exp, _exp_d, lazy("exp"), 2, exponential=True)
    register("log", _log, _log_d, lazy("log"), 2)
    register("abs", lambda z, xp: xp.abs(z), _abs_d, lazy("Abs"), 3, parity="even", degree=1)
    register("sin", lambda z, xp: xp.sin(z), lambda z, xp: xp.cos(z), lazy("sin"), 2, parity="odd",
             shift=(pi, -1.0))
    register("cos", lambda z, xp: xp.cos(z), lambda z, xp: -xp.sin(z), lazy("cos"), 2, parity="even",
             shift=(pi, -1.0))
    register("tan", _tan, _tan_d, lazy("tan"), 3, parity="odd", shift=(pi, 1.0))
    register("tanh", lambda z, xp: xp.tanh(z), _tanh_d, lazy("tanh"), 3, parity="odd")
    register("sgn", lambda z, xp: xp.sign(z), lambda z, xp: xp.zeros_like(z), lazy("sign"), 3, parity="odd")
    register("arcsin", lambda z, xp: xp.asin(_unit(z, xp)[0]), _arcsin_d, lazy("asin"), 4, parity="odd")
    register("arccos", lambda z, xp: xp.acos(_unit(z, xp)[0]), lambda z, xp: -_arcsin_d(z, xp), lazy("acos"), 4)
    register("arctan", lambda z, xp: xp.atan(z), lambda z, xp: 1.0 / (1.0 + z * z), lazy("atan"), 4, parity="odd")
    register("arctanh", _arctanh, _arctanh_d, lazy("atanh"), 4, parity="odd")
    register("gaussian", _gauss, _gauss_d, sympy_gauss, 3, parity="even")
    register("0", _zero, _zero, lambda s: 0 * s, 0)


_install_defaults()
