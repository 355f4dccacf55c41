"""Every library function as standard ONNX operators, computing exactly what the array
functions of ``kanarray.symbolic.library`` compute -- including their safe clamps, so an
exported model behaves like the native one everywhere.

``EMITTERS[name](g, z) -> output`` for a builder g and the name z of the argument a x + b.
onnxruntime's CPU provider has no float64 Asin, Acos, Atan or Atanh; in float64 graphs those
are built from Atan in float32 refined by Newton steps (``_atan2_right``) and from Log.  Atanh
is built from Log in float32 graphs too (onnx2torch has no Atanh converter).
Functions registered by users have no emitter unless one is added with
``register_onnx(name, emitter)``; exporting a model that uses them names them in the error.
"""

from __future__ import annotations

import math

from ..symbolic import library as lib

__all__ = ["EMITTERS", "register_onnx"]


def _ipow(g, z, p: int):
    out = z
    for _ in range(p - 1):
        out = g.mul(out, z)
    return out


def _away_from_zero(g, z, th):
    """(z with |z| >= th, 0 -> +th), as library._away_from_zero."""
    inside = g.op("Less", g.op("Abs", z), g.const(th))
    sign = g.where(g.op("Less", z, g.const(0.0)), g.const(-1.0), g.const(1.0))
    return g.where(inside, g.mul(sign, g.const(th)), z)


def _positive(g, z, th):
    """max(z, th) as library._positive: where(z > th, z, th)."""
    return g.where(g.op("Greater", z, g.const(th)), z, g.const(th))


def _power(p):
    return lambda g, z: _ipow(g, z, p)


def _inverse_power(p):
    th = lib._VALUE_CAP ** (-1.0 / p)
    return lambda g, z: g.op("Div", g.const(1.0), _ipow(g, _away_from_zero(g, z, th), p))


def _sqrt(g, z):
    return g.op("Sqrt", _positive(g, z, 0.0))


def _pow15(g, z):
    zc = _positive(g, z, 0.0)
    return g.mul(zc, g.op("Sqrt", zc))


def _rsqrt(g, z):
    return g.op("Div", g.const(1.0), g.op("Sqrt", _positive(g, z, lib._TINY)))


def _exp(g, z):
    return g.op("Exp", g.op("Min", z, g.const(lib._EXP_CAP)))


def _log(g, z):
    return g.op("Log", _positive(g, z, lib._LOG_FLOOR))


def _tan(g, z):
    return g.op("Div", g.op("Sin", z), _away_from_zero(g, g.op("Cos", z), 1.0 / lib._VALUE_CAP))


def _clip(g, z, lo, hi):
    return g.op("Clip", z, g.const(lo), g.const(hi))


def _float64(g) -> bool:
    return g.dtype.itemsize == 8


def _atan2_right(g, y, x):
    """atan2(y, x) for x >= 0 in float64, from operators onnxruntime runs in float64: a float32
    Atan of y / x as the start (x = 0 gives +-inf there, whose Atan is +-pi/2), then two Newton
    steps on x sin t - y cos t = 0, whose derivative x cos t + y sin t is sqrt(x^2 + y^2) at the
    root -- well conditioned everywhere, so the result is exact to rounding."""
    onnx = g.onnx
    with_ratio = g.op("Div", y, x)
    t = g.op("Cast", g.op("Atan", g.op("Cast", with_ratio, to=onnx.TensorProto.FLOAT)), to=onnx.TensorProto.DOUBLE)
    for _ in range(2):
        s, c = g.op("Sin", t), g.op("Cos", t)
        f = g.op("Sub", g.mul(x, s), g.mul(y, c))
        df = g.add(g.mul(x, c), g.mul(y, s))
        t = g.op("Sub", t, g.op("Div", f, df))
    return t


def _asin(g, z):
    zc = _clip(g, z, -1.0, 1.0)
    if not _float64(g):
        return g.op("Asin", zc)
    return _atan2_right(g, zc, g.op("Sqrt", g.op("Sub", g.const(1.0), g.mul(zc, zc))))


def _acos(g, z):
    if not _float64(g):
        return g.op("Acos", _clip(g, z, -1.0, 1.0))
    return g.op("Sub", g.const(math.pi / 2), _asin(g, z))


def _atan(g, z):
    if not _float64(g):
        return g.op("Atan", z)
    return _atan2_right(g, z, g.add(g.mul(z, g.const(0.0)), g.const(1.0)))


def _atanh(g, z):
    """(1/2) log((1 + z) / (1 - z)) in both dtypes: onnxruntime has no float64 Atanh, and
    onnx2torch has no Atanh converter at all."""
    zc = _clip(g, z, -lib._ARC_EDGE, lib._ARC_EDGE)
    ratio = g.op("Div", g.add(g.const(1.0), zc), g.op("Sub", g.const(1.0), zc))
    return g.mul(g.const(0.5), g.op("Log", ratio))


def _gauss(g, z):
    return g.op("Exp", g.op("Neg", g.mul(z, z)))


def _zero(g, z):
    return g.mul(z, g.const(0.0))


def _unary(op):
    return lambda g, z: g.op(op, z)


EMITTERS = {
    **{("x" if p == 1 else f"x^{p}"): _power(p) for p in range(1, 6)},
    **{("1/x" if p == 1 else f"1/x^{p}"): _inverse_power(p) for p in range(1, 6)},
    "sqrt": _sqrt, "x^1.5": _pow15, "1/sqrt(x)": _rsqrt, "exp": _exp, "log": _log, "abs": _unary("Abs"),
    "sin": _unary("Sin"), "cos": _unary("Cos"), "tan": _tan, "tanh": _unary("Tanh"), "sgn": _unary("Sign"),
    "arcsin": _asin, "arccos": _acos, "arctan": _atan, "arctanh": _atanh,
    "gaussian": _gauss, "0": _zero,
}


def register_onnx(name: str, emitter) -> None:
    """Let models with the user function ``name`` export: emitter(g, z) builds f(z) with
    ``g.op(...)`` (see ``kanarray.export.graph.GraphBuilder``) and returns its output name."""
    lib.get_function(name)
    if not callable(emitter):
        raise ValueError(f"the ONNX emitter of {name!r} must be callable, got {emitter!r}")
    EMITTERS[name] = emitter
