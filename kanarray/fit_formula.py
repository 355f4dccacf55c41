"""``kanarray fit --prune --symbolic``: the stages after the fits that turn a table's model into a
formula in the table's column names.

``interpretation_stages(r2_threshold, prune, symbolic)`` gives the (name, step) pairs that
``kanarray fit`` runs, each followed by a fit without the sparsity penalty: ``prune`` (``KAN.prune``
on the last fit's inputs) and ``symbolic`` (``KAN.auto_symbolic``).  ``formula_names(columns)``
makes the column names usable as sympy symbols.
"""

from __future__ import annotations

import keyword
import re

__all__ = ["formula_lines", "formula_names", "interpretation_stages"]


def formula_names(columns) -> list[str]:
    """Distinct Python identifiers for ``columns`` (strings), for ``KAN.symbolic_formula(var_names=...)``.

    A name that is an identifier already (and no keyword) is kept.  Any other gets every character
    that cannot be in an identifier replaced by ``_``, ``x_`` in front when it would start with a digit,
    ``_`` after it when it is a keyword, and ``_2``, ``_3``, ... after it when another column has that
    name already: ``["temp (C)", "2nd", "class", "a b", "a_b"]`` -> ``temp__C_, x_2nd, class_, a_b_2, a_b``.
    """
    columns = [str(c) for c in columns]
    kept = {c for c in columns if c.isidentifier() and not keyword.iskeyword(c)}
    taken, names = set(kept), []
    for col in columns:
        if col in kept:
            names.append(col)
            continue
        name = re.sub(r"\W", "_", col)
        if not name.isidentifier():  # empty, or a leading digit
            name = "x_" + name
        if keyword.iskeyword(name):
            name += "_"
        base, n = name, 2
        while name in taken:
            name, n = f"{base}_{n}", n + 1
        taken.add(name)
        names.append(name)
    return names


def interpretation_stages(r2_threshold: float, prune: bool, symbolic: bool, reports: list) -> list:
    """(stage name, model -> model) for ``--prune`` and ``--symbolic``, in that order; the symbolic
    stage appends its ``AutoSymbolicReport`` to ``reports``."""
    def fix_symbolic(model):
        reports.append(model.auto_symbolic(r2_threshold=r2_threshold))
        return model

    stages = [("prune", lambda model: model.prune())] if prune else []
    return stages + ([("symbolic", fix_symbolic)] if symbolic else [])


def formula_lines(model, features, targets) -> list[str]:
    """``target = formula`` per output, in the (sanitized) feature names, and a line naming the columns
    that were renamed; ValueError (listing the spline edges) when some edges are not symbolic."""
    names = formula_names(features)
    formulas = model.symbolic_formula(var_names=names)
    lines = [f"{target} = {expr}" for target, expr in zip(targets, formulas)]
    renamed = [f"{col!r} -> {name}" for col, name in zip(features, names) if col != name]
    if renamed:
        lines.append("(columns renamed to be symbols: " + ", ".join(renamed) + ")")
    return lines
