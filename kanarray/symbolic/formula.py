"""A fully symbolic KAN as sympy expressions.

Layer by layer, output o of layer l is sum_i c f(a e_i + b) + d over its symbolic edges plus
its bias, where e_i is the expression of input i.  With simplify=True the expression is
expanded (products, powers and exp of sums), its numbers rounded to ``digits`` decimals
(terms whose coefficient rounds to 0 disappear), and exponentials recombined, so constant
factors that the network spread over several parameters end up as one number.  Magnitudes
survive the rounding: a term holding an exponential keeps ``digits`` significant digits in its
coefficient, and an exponential whose expansion would pull out a factor beyond 10**+-digits
(exp(-(x + 7.6)**2) = exp(-57.76) exp(-x**2 - 15.2 x)) is left unexpanded.  The result is
checked against the model (``fidelity``).

A model with an input scaling (``KAN.scale_inputs``) gets its formula in the raw inputs: the
formula of the scaled inputs u_i, tidied and rounded as above, with u_i = (x_i - shift_i) *
scale_i put in afterwards, shift_i and scale_i rounded so that u_i stays within about
10**-digits over the column's range.  Rounding after the substitution instead would lose
what matters when the raw inputs are large (a term 5.6e-5 x^2 rounds to 1e-4 x^2 at 4 decimals).
"""

from __future__ import annotations

import math

import numpy as np

from .. import stack
from .._namespace import to_numpy
from . import fidelity
from .library import get_function

__all__ = ["canonical", "formulas_agree", "input_symbols", "round_magnitudes", "round_numbers", "spline_edges",
           "symbolic_formula", "tidy"]


def spline_edges(model) -> list[tuple[int, int, int]]:
    """The live edges that are still splines: [(l, i, j)]."""
    return [(l, int(i), int(j)) for l, layer in enumerate(model.layers)
            for i, j in zip(*np.nonzero((to_numpy(layer.mask) != 0) & ~layer.symbolic.fixed()))]


def round_numbers(expr, digits: int):
    """expr with every float (and constant such as pi) rounded to ``digits`` decimals; whole
    numbers become integers."""
    import sympy

    expr = expr.xreplace({c: sympy.Float(c.evalf(20), 20) for c in expr.atoms(sympy.NumberSymbol)})
    return expr.xreplace({f: _decimals(float(f), digits) for f in expr.atoms(sympy.Float)})


def _decimals(v: float, digits: int):
    """v rounded to ``digits`` decimals, as a sympy Integer when it is a whole number."""
    import sympy

    v = round(v, digits)
    if not math.isfinite(v):
        return sympy.Float(v)
    # from the shortest decimal that reads back as v: with digits > 13, Float(v, digits + 2)
    # would print v's binary expansion (1.4 -> 1.399999999999999911182)
    return sympy.Integer(int(v)) if v == int(v) else sympy.Float(repr(v), max(15, digits + 2))


def _keeping_magnitude(v: float, digits: int):
    """v rounded to ``digits`` decimals or to ``digits`` significant digits, whichever keeps more
    (so a nonzero v never becomes 0)."""
    if v == 0 or not math.isfinite(v):
        return _decimals(v, digits)
    return _decimals(v, max(digits, digits - 1 - math.floor(math.log10(abs(v)))))


def round_magnitudes(expr, digits: int, unbounded=()):
    """``round_numbers``, except for the coefficient of a term holding an exponential (or one of
    the symbols ``unbounded``): that is rounded by ``_keeping_magnitude``, never to 0.

    Rounding a coefficient to decimals assumes the rest of its term is of order 1: true of
    sin(x) or x**2 for inputs of order 1, false of exp(15 x), whose coefficient 1e-25 carries
    the term.  Other terms whose coefficient rounds to 0 still disappear."""
    import sympy

    expr = expr.xreplace({c: sympy.Float(c.evalf(20), 20) for c in expr.atoms(sympy.NumberSymbol)})
    unbounded = tuple(unbounded)

    def grows(e):
        return e.has(sympy.exp, *unbounded)

    def rounded(e):
        if e.is_Float:
            return _decimals(float(e), digits)
        if e.is_Atom:
            return e
        if e.is_Mul:
            c, rest = e.as_coeff_Mul()
            if c.is_Float and grows(rest):
                return _keeping_magnitude(float(c), digits) * rounded(rest)
        return e.func(*(rounded(a) for a in e.args))

    return rounded(expr)


def _freeze_shifted_exponentials(expr, digits: int) -> tuple:
    """(expr with some exp(A) replaced by placeholder symbols, {placeholder: exp(A) rounded}).

    Expanding exp(A) pulls the constant k of A's expansion out as a factor e^k, which tidy then
    merges into the term's coefficient.  Where e^k lies outside [10^-digits, 10^digits] (a
    shifted argument: exp(-(x + 7.6)**2) would become 1.2e-25 exp(-x**2 - 15.2 x)) the
    exponential is kept whole instead: its argument expanded only linearly (powers of sums
    stay factored) and its numbers rounded; nested exponentials are handled first."""
    import sympy

    bound = math.log(10.0) * max(digits, 1)
    frozen: dict = {}

    def visit(e):
        if e.is_Atom:
            return e
        e = e.func(*(visit(a) for a in e.args))
        if e.func is not sympy.exp:
            return e
        (arg,) = e.args
        k, _ = sympy.expand(arg).as_coeff_Add()
        if not (k.is_Number and abs(float(k)) > bound):
            return e
        placeholder = sympy.Dummy(f"frozen{len(frozen)}")
        linear = sympy.expand(arg, multinomial=False, power_exp=False)
        frozen[placeholder] = sympy.exp(round_magnitudes(linear, digits, frozen).xreplace(frozen))
        return placeholder

    return visit(expr), frozen


def tidy(expr, digits: int):
    """Expand, round to ``digits`` decimals, recombine exponentials, round again.

    Magnitudes survive: a term with an exponential keeps ``digits`` significant digits in its
    coefficient (``round_magnitudes``), and exponentials of shifted arguments are not expanded
    (``_freeze_shifted_exponentials``), so 1.4 exp(-(x + 7.6)**2) stays as it is."""
    import sympy

    expr, frozen = _freeze_shifted_exponentials(expr, digits)
    expr = round_magnitudes(sympy.expand(expr), digits, frozen)
    expr = sympy.powsimp(expr, combine="exp")
    expr = round_magnitudes(sympy.expand(expr, power_exp=False), digits, frozen)
    if frozen:  # exp(A) of a number-led A comes back as a number times exp: round that product too
        expr = round_magnitudes(sympy.powsimp(expr.xreplace(frozen), combine="exp"), digits)
    return expr


def symbolic_formula(model, var_names=None, digits: int = 4, simplify: bool = True, *,
                     on_mismatch: str = "warn", with_variables: bool = False):
    """One sympy expression per output of ``model``, in the input symbols ``var_names``
    (default x_1, ..., x_n).  ValueError listing the edges that are still splines, if any.
    With an input scaling the symbols are the raw inputs (see the module docstring).

    var_names: width[0] distinct names (Python identifiers, as strings or sympy Symbols).
    The result is checked against the model's forward pass on the stored ``fit_inputs`` (or,
    with none stored, on points spread over the first layer's grid range: ``fidelity``); where
    an output differs by more than the rounding allows, on_mismatch "warn" (the default) issues
    a ``FormulaMismatchWarning`` naming the edges at fault, "raise" raises a
    ``FormulaMismatchError``, and "ignore" skips the check.

    with_variables: return pykan's pair (the list of expressions, the list of input symbols)
    instead of the list alone."""
    import sympy

    if not isinstance(with_variables, bool):
        raise ValueError(f"with_variables must be True or False, got {with_variables!r}")
    if isinstance(digits, bool) or not isinstance(digits, int) or digits < 0:
        raise ValueError(f"digits must be a non-negative integer, got {digits!r}")
    if on_mismatch not in fidelity.ON_MISMATCH:
        raise ValueError(f"on_mismatch must be one of {fidelity.ON_MISMATCH}, got {on_mismatch!r}")
    symbols = input_symbols(var_names, model.width[0])
    left = spline_edges(model)
    if left:
        raise ValueError(f"the model still has {len(left)} spline edges (layer, input, output): {left}; fix them with "
                         "fix_symbolic or auto_symbolic (or prune them) before asking for a formula")

    def visit(l, layer, exprs):  # the layer's outputs as expressions in its inputs'
        affine = np.asarray(to_numpy(layer.symbolic.affine), dtype=np.float64)
        bias = np.asarray(to_numpy(layer.bias), dtype=np.float64)
        outs = []
        for o in range(layer.out_dim):
            total = sympy.Float(bias[o])
            for i in range(layer.in_dim):
                name = layer.symbolic.names[i][o]
                if name is None:
                    continue
                a, b, c, d = (sympy.Float(v) for v in affine[i, o])
                total = total + c * get_function(name).sympy_fn(a * exprs[i] + b) + d
            outs.append(total)
        outs = outs if layer.nodes is None else node_expressions(layer.nodes, outs)
        return outs, outs

    _, nodes = stack.traverse(model.layers, symbols, visit)
    nodes = [symbols, *nodes]

    def round_fn(e):
        return tidy(e, digits) if simplify else round_magnitudes(e, digits)

    exprs = [round_fn(e) for e in nodes[-1]]
    if model.input_scaling is not None:
        raw = _raw_inputs(symbols, *model.input_scaling, digits)
        exprs = [e.xreplace(raw) for e in exprs]
    fidelity.check_formulas(model, exprs, symbols, nodes=nodes, round_fn=round_fn, digits=digits,
                            on_mismatch=on_mismatch)
    return (exprs, list(symbols)) if with_variables else exprs


def node_expressions(stage, sums) -> list:
    """A node stage (``kanarray.nodes``) on sympy expressions: the sums' affine map, the products
    of the multiplication nodes, the nodes' affine map; identity scales and zero biases are left out."""
    import sympy

    host = stage.host_arrays()

    def affine(e, scale, shift):
        e = e if scale == 1 else sympy.Float(scale) * e
        return e if shift == 0 else e + sympy.Float(shift)

    s = [affine(e, host["subnode_scale"][i], host["subnode_bias"][i]) for i, e in enumerate(sums)]
    products = [sympy.Mul(*(s[i] for i in group)) for group in stage.groups()]
    return [affine(e, host["node_scale"][j], host["node_bias"][j]) for j, e in enumerate(products)]


def input_symbols(var_names, n: int) -> list:
    """The n input symbols: x_1, ..., x_n (None), or var_names checked: n distinct names, each
    a Python identifier given as a string or a sympy Symbol.  ValueError otherwise."""
    import sympy

    if var_names is None:
        return list(sympy.symbols(f"x_1:{n + 1}")) if n > 1 else [sympy.Symbol("x_1")]
    if isinstance(var_names, (str, bytes)):
        raise ValueError(f"var_names must be a list of {n} names, one per input, got the single string {var_names!r}")
    try:
        names = list(var_names)
    except TypeError:
        raise ValueError(f"var_names must be a list of {n} names, one per input, got {var_names!r}") from None
    if len(names) != n:
        raise ValueError(f"var_names has {len(names)} names but the model has {n} inputs")
    symbols = []
    for k, v in enumerate(names):
        if isinstance(v, sympy.Symbol):
            name = v.name
        elif isinstance(v, str):
            name = v
        else:
            raise ValueError(f"var_names[{k}] must be a string or a sympy Symbol, got {v!r}")
        if not name.isidentifier():
            raise ValueError(f"var_names[{k}] = {name!r} is not a usable name: names must be Python identifiers "
                             "(letters, digits and _, not starting with a digit; not empty)")
        symbols.append(v if isinstance(v, sympy.Symbol) else sympy.Symbol(v))
    seen: dict = {}
    for k, s in enumerate(symbols):
        if s.name in seen:
            raise ValueError(f"var_names must be distinct, but inputs {seen[s.name]} and {k} are both named {s.name!r} "
                             "(their formula would merge them)")
        seen[s.name] = k
    return symbols


def _raw_inputs(symbols, shift, scale, digits: int) -> dict:
    """{s_i: (s_i - shift_i) * scale_i} with scale_i rounded to ``digits`` significant digits
    and shift_i to a multiple of 10**-digits / scale_i (rounded to a power of ten), so that the
    scaled input, of order 1 over the column's range, is off by about 10**-digits at most."""
    import sympy

    out = {}
    for s, a, c in zip(symbols, shift, scale):
        places = digits - math.floor(math.log10(1.0 / c))
        a = round(float(a), places)
        a = sympy.Integer(int(a)) if a == int(a) else sympy.Float(a, max(15, places + 2))
        out[s] = (s - a) * _significant(float(c), max(digits, 1))
    return out


def _significant(value: float, digits: int):
    """value rounded to ``digits`` significant digits, as a sympy Integer when it is a whole number."""
    import sympy

    if value == 0:
        return sympy.Integer(0)
    rounded = float(f"{value:.{digits - 1}e}")
    return sympy.Integer(int(rounded)) if rounded == int(rounded) else sympy.Float(rounded, 15)


def canonical(expr, digits: int = 4):
    """expr in a form where equal formulas look equal after rounding: every constant evaluated,
    a constant factor pulled out of each sum inside a power (sqrt(c a + c) -> sqrt(c) sqrt(a + 1),
    taking the constant term's coefficient, else the largest), numbers rounded to ``digits``
    significant digits and whole numbers made integers."""
    import sympy

    expr = expr.xreplace({c: sympy.Float(c.evalf(20), 20) for c in expr.atoms(sympy.NumberSymbol)})
    expr = expr.replace(lambda e: e.is_number and not e.is_Atom, lambda e: sympy.Float(e.evalf(20), 20)
                        if e.is_real else e)

    def scaled(p):
        terms = [t.as_coeff_Mul() for t in p.base.args]
        consts = [c for c, rest in terms if rest == 1]
        c = consts[0] if consts else max((c for c, _ in terms), key=lambda v: abs(float(v)))
        if not c.is_Number or c == 0 or (p.exp.is_Integer is False and c < 0):
            return p
        return sympy.Pow(c, p.exp) * sympy.Pow(sympy.expand(p.base / c), p.exp)

    for _ in range(3):  # nested powers: inner ones first come out on the next pass
        new = expr.replace(lambda e: e.is_Pow and e.base.is_Add, scaled)
        new = new.xreplace({f: _significant(float(f), digits) for f in new.atoms(sympy.Float)})
        if new == expr:
            break
        expr = new
    return expr


def formulas_agree(found, target, symbols, x, digits: int = 4) -> tuple[bool, float]:
    """Whether a recovered formula is the ground truth, up to rounding.

    found, target: sympy expressions in ``symbols`` (matched by name: both are rewritten in
    ``symbols``, whose assumptions, e.g. positive=True, then hold for both); x: (N,
    len(symbols)) NumPy points.  Returns (equal, max |found - target| over x).  Equal when the
    ``canonical`` forms (numbers to ``digits`` significant digits) are identical, or when
    ``sympy.simplify`` reduces the difference of the canonical forms to 0 or to terms with
    coefficients below 10**-(digits - 1) (rounding noise).  simplify is only tried where the two
    agree on x to 1e-2 relative, since it is slow on large expressions.
    """
    import sympy

    by_name = {s.name: s for s in symbols}
    found, target = (e.xreplace({s: by_name[s.name] for s in e.free_symbols if s.name in by_name})
                     for e in (found, target))
    columns = [np.asarray(x, dtype=np.float64)[:, i] for i in range(len(symbols))]
    values = []
    for expr in (found, target):
        fn = sympy.lambdify(list(symbols), expr, modules=["scipy", "numpy"])
        with np.errstate(all="ignore"):
            values.append(np.broadcast_to(np.asarray(fn(*columns), dtype=np.float64), columns[0].shape))
    gap = float(np.max(np.abs(values[0] - values[1]))) if np.all(np.isfinite(values[0])) else float("inf")
    found_c, target_c = canonical(found, digits), canonical(target, digits)
    if sympy.srepr(found_c) == sympy.srepr(target_c):
        return True, gap
    if not gap <= 1e-2 * max(1.0, float(np.max(np.abs(values[1])))):
        return False, gap
    tol = 10.0 ** -(digits - 1)
    for candidate in (found_c, sympy.expand_trig(found_c)):
        diff = sympy.expand(sympy.expand(sympy.simplify(candidate - target_c)).evalf())
        diff = diff.xreplace({f: 0 for f in diff.atoms(sympy.Float) if abs(float(f)) < tol})
        if diff == 0 or sympy.simplify(diff) == 0:
            return True, gap
    return False, gap
