"""``kanarray reproduce feynman``: the paper's Feynman table (section 3.3, Table 2).

For each dimensionless equation of ``kanarray.datasets.FEYNMAN`` (default: the six the paper
reports numbers for; ``names="all"`` for all 27):

* accuracy: the paper's pruned KAN shape fitted by grid extension (grid chosen on a
  validation draw), test RMSE next to the paper's;
* symbolic recovery: the hello-KAN loop on the same shape (G = 5 with the sparsity penalty,
  prune, refine to G = 20, fit, ``auto_symbolic`` with pykan's hello-KAN library, fit the formula's
  parameters), then ``formulas_agree`` with the ground truth (numbers to 4 significant digits);
  each seed in ``seeds`` is tried until one recovers the formula.  With ``mult`` = N > 0 the
  recovery starts from the same shape with N multiplication nodes (``kanarray.nodes``) added to
  its first hidden layer (``mult_shape``): [2, 2, 1] -> [2, [2, 1], 1].

``recovery_table`` runs the recovery alone, without and with multiplication nodes, on the
product-type equations (``PRODUCT_EQUATIONS``): docs/reproductions.md's recovery table.
"""

from __future__ import annotations

import time

from ..datasets import FEYNMAN
from ..demo import HELLOKAN_LIB
from . import tuned
from ._plan import Plan
from ._report import Report, machine, markdown_table, rmse, rmse_figure, sci

GRIDS = (3, 5, 10, 20, 50, 100)
# ``reproduce("feynman", tuned=True)``, ``kanarray reproduce feynman --tuned``: see ``tuned``
TUNED = tuned.FEYNMAN
# pykan's hello-KAN library: the whole library lets cos(0.2 a) stand in for a^2 at equal complexity
SYMBOLIC_LIB = HELLOKAN_LIB
PAPER_SIX = ("I.6.2", "I.16.6", "I.9.18", "I.44.4", "I.37.4", "III.17.37")
# equations whose formula multiplies (or divides) functions of different variables
PRODUCT_EQUATIONS = ("I.12.11", "I.13.12", "I.18.4", "I.27.6", "I.40.1", "I.44.4", "II.2.42", "II.11.7", "II.11.27",
                     "II.35.18", "II.36.38", "II.38.3", "III.17.37")


def mult_shape(shape, mult: int) -> list:
    """The width of a KAN of ``shape`` with ``mult`` multiplication nodes after the first hidden
    layer's addition nodes ([2, 2, 1], 1 -> [2, [2, 1], 1]); the shape itself for mult = 0."""
    shape = list(shape)
    if isinstance(mult, bool) or not isinstance(mult, int) or mult < 0:
        raise ValueError(f"mult must be a non-negative int (multiplication nodes to add), got {mult!r}")
    return shape if mult == 0 else [shape[0], [shape[1], mult], *shape[2:]]


def variables(entry) -> list:
    """The entry's sympy symbols, positive (nonnegative) where its range is, so |sigma| is sigma."""
    import sympy

    return [sympy.Symbol(v, positive=True) if lo > 0 else sympy.Symbol(v, nonnegative=True) if lo == 0
            else sympy.Symbol(v, real=True) for v, (lo, _) in zip(entry.variables, entry.ranges)]


def ground_truth(entry):
    """The entry's formula in ``variables(entry)``."""
    by_name = {s.name: s for s in variables(entry)}
    expr = entry.formula()
    return expr.xreplace({s: by_name[s.name] for s in expr.free_symbols})


def recovery_model(entry, data, seed: int, *, steps: int, lamb: float = 1e-3, refine_to: int = 20, mult: int = 0):
    """The first half of the symbolic loop: a KAN of the entry's shape (with ``mult`` multiplication
    nodes: ``mult_shape``) at G = 5 fitted with the sparsity penalty, pruned, refined to
    ``refine_to`` and fitted again (``steps`` per fit)."""
    from ..model import KAN

    x, y = data["train_input"], data["train_label"]
    model = KAN(mult_shape(entry.shape, mult), grid=5, k=3, seed=seed)
    model.fit(x, y, steps=steps, lamb=lamb, progress=False)
    model = model.prune().refine(refine_to)
    model.fit(x, y, steps=steps, progress=False)
    return model


def recovered_formula(model, entry, data, *, steps: int, lib=SYMBOLIC_LIB):
    """The second half, in place: auto_symbolic, fit, and the formula with 8 decimals as found
    (ValueError where edges stay splines)."""
    model.auto_symbolic(lib=list(lib), r2_threshold=0.99)
    model.fit(data["train_input"], data["train_label"], steps=steps, progress=False)
    # 8 decimals: a constant such as 0.0018 inside a sqrt needs more than 4 to compare
    return model.symbolic_formula(var_names=list(variables(entry)), digits=8)[0]


def recover(entry, data, *, seeds, steps: int, lamb: float = 1e-3, refine_to: int = 20, lib=SYMBOLIC_LIB,
            mult: int = 0):
    """Try the symbolic loop (``recovery_model``, then ``recovered_formula``) from each seed;
    returns (recovered, formula or None, seed, test RMSE), the formula with 8 decimals as found."""
    from ..symbolic.formula import formulas_agree

    symbols = variables(entry)
    xt, yt = data["test_input"], data["test_label"]
    last = (False, None, None, float("nan"))
    for seed in seeds:
        try:
            model = recovery_model(entry, data, seed, steps=steps, lamb=lamb, refine_to=refine_to, mult=mult)
            formula = recovered_formula(model, entry, data, steps=steps, lib=lib)
        except (ValueError, FloatingPointError):  # edges left as splines, or a diverged fit
            continue
        ok, _ = formulas_agree(formula, ground_truth(entry), symbols, xt)
        last = (ok, formula, seed, rmse(model, xt, yt))
        if ok:
            break
    return last


def run(*, names=PAPER_SIX, grids=GRIDS, steps: int = 200, seeds=(0, 1, 2), symbolic_steps: int = 50,
        data_seed: int = 0, n_train: int = 1000, mult: int = 0, recovery_only: bool = False, echo=print,
        **plan_options) -> Report:
    """The table for ``names``; grids, steps, seeds and plan_options (``Plan``'s other fields:
    grid_margin, every_seed, starts, n_validation, margin_from): the ``Plan`` of runs for each
    equation (seeds also serve the symbolic recovery); mult: multiplication nodes in the recovery's
    starting KAN (``mult_shape``).  recovery_only: ``recovery_table`` instead (mult default 1, the
    product-type equations unless names are given)."""
    mult_shape((2, 2, 1), mult)  # a ValueError for a bad mult before any run
    if recovery_only:
        return recovery_table(names=PRODUCT_EQUATIONS if names is PAPER_SIX else tuple(names), seeds=seeds,
                              steps=symbolic_steps, mult=mult or 1, data_seed=data_seed, n_train=n_train, echo=echo)
    from ..symbolic.formula import canonical

    names = tuple(FEYNMAN) if names == "all" or names == ("all",) else tuple(names)
    unknown = [n for n in names if n not in FEYNMAN]
    if unknown:
        raise ValueError(f"unknown Feynman equations {unknown}; choose from {list(FEYNMAN)} or 'all'")
    plan = Plan(grids, steps, seeds, **plan_options)
    t_all = time.perf_counter()
    rows, recovered, below, below_lowest, with_paper, hits = [], 0, 0, 0, 0, []
    for name in names:
        entry = FEYNMAN[name]
        t0 = time.perf_counter()
        fit = plan.fit(entry, data_seed=data_seed, n_train=n_train)
        ok, formula, seed, sym_rmse = recover(entry, fit["data"], seeds=seeds, steps=symbolic_steps, mult=mult)
        recovered += ok
        hits.append(ok)
        if entry.paper_rmse is not None:
            with_paper += 1
            below += fit["test"] <= entry.paper_rmse
            below_lowest += fit["lowest"]["test"] <= entry.paper_rmse
        seconds = time.perf_counter() - t0
        shown = "-" if formula is None else f"`{canonical(formula)}`"
        rows.append((name, f"`{ground_truth(entry)}`", list(entry.shape), sci(fit["test"]), sci(fit["inside"]),
                     *plan.paper_cells(fit, entry.paper_rmse),
                     ("yes" if ok else "no") + ("" if seed is None else f" (seed {seed})"), shown, sci(sym_rmse),
                     f"{seconds:.0f}"))
        echo(f"{name}: test RMSE {fit['test']:.2e} (G={plan.grid_cell(fit)}), lowest "
             f"{plan.lowest_cell(fit)}, paper {sci(entry.paper_rmse)}; "
             f"recovered: {'yes' if ok else 'no'} {'' if formula is None else formula}; {seconds:.0f} s")
    seconds = time.perf_counter() - t_all
    head = (f"## Feynman equations (paper section 3.3, Table 2, dimensionless)\n\n"
            f"Accuracy: the paper's pruned KAN shapes, {plan.schedule_text()}, "
            f"grid chosen on {plan.validation_text()}, {n_train} training / 1000 test points, float64, ranges from "
            f"pykan's feynman module (see each dataset's note). Recovery"
            + (f" (from the shape with {mult} multiplication node(s) in the first hidden layer)" if mult else "")
            + f": G = 5 fit with lamb = 1e-3, prune, refine "
            f"to 20, fit, auto_symbolic (library {', '.join(SYMBOLIC_LIB)}; R^2 >= 0.99), fit; {symbolic_steps} LBFGS "
            f"steps per fit; recovered when the formula equals the ground truth with numbers rounded to 4 significant "
            f"digits (``formulas_agree``).\n\n"
            f"{plan.validation_column_text()} {plan.lowest_text()}\n\n"
            f"**Recovery rate: {recovered} of {len(names)}.** Test RMSE at or below the paper's: {below} of "
            f"{with_paper} with the grid chosen on validation, {below_lowest} of {with_paper} with the paper's "
            f"selection. Machine: {machine()}; {seconds:.0f} s in all.\n\n")
    table = markdown_table(("equation", "ground truth", "shape", "test RMSE", "inside the training box",
                            *Plan.PAPER_COLUMNS, "recovered", "formula found (4 significant digits)",
                            "its test RMSE", "seconds"), rows)
    figure = rmse_figure(list(names), [float(r[3]) for r in rows], [FEYNMAN[n].paper_rmse for n in names], hits)
    return Report("feynman", head + table, figure,
                  results={"rows": rows, "recovered": recovered, "below": below, "below_lowest": below_lowest},
                  seconds=seconds)


def recovery_table(*, names=PRODUCT_EQUATIONS, seeds=(0, 1, 2), steps: int = 50, mult: int = 1, data_seed: int = 0,
                   n_train: int = 1000, echo=print) -> Report:
    """The symbolic recovery alone (``recover``) on ``names``, from the paper's shape and from it with
    ``mult`` multiplication nodes (``mult_shape``): which equations each recovers exactly."""
    from ..datasets import feynman_dataset
    from ..symbolic.formula import canonical

    mult_shape((2, 2, 1), mult)
    t_all = time.perf_counter()
    rows, counts = [], [0, 0]
    for name in names:
        entry = FEYNMAN[name]
        data = feynman_dataset(name, n_train=n_train, seed=data_seed)
        cells = [name, f"`{ground_truth(entry)}`"]
        for column, m in enumerate((0, mult)):
            t0 = time.perf_counter()
            ok, formula, seed, sym_rmse = recover(entry, data, seeds=seeds, steps=steps, mult=m)
            counts[column] += ok
            cells += [str(mult_shape(entry.shape, m)).replace(" ", ""),
                      ("yes" if ok else "no") + ("" if seed is None else f" (seed {seed})"),
                      "-" if formula is None else f"`{canonical(formula)}`", sci(sym_rmse),
                      f"{time.perf_counter() - t0:.0f}"]
            echo(f"{name} mult={m}: {'yes' if ok else 'no'} {formula}")
        rows.append(tuple(cells))
    seconds = time.perf_counter() - t_all
    head = (f"## Feynman product equations: symbolic recovery with and without multiplication nodes\n\n"
            f"The recovery loop of the Feynman table (G = 5 fit with lamb = 1e-3, prune, refine to 20, fit, "
            f"auto_symbolic with {', '.join(SYMBOLIC_LIB)}, fit; {steps} LBFGS steps per fit; seeds "
            f"{', '.join(map(str, seeds))} tried in turn), from the paper's shape and from it with {mult} "
            f"multiplication node(s) in the first hidden layer; {n_train} training points (data seed {data_seed}).\n\n"
            f"**Recovered: {counts[0]} of {len(names)} without, {counts[1]} of {len(names)} with multiplication "
            f"nodes.** Machine: {machine()}; {seconds:.0f} s in all.\n\n")
    columns = ("equation", "ground truth")
    for label in ("plain", "mult"):
        columns += (f"shape ({label})", f"recovered ({label})", f"formula ({label})", "test RMSE", "s")
    return Report("feynman_mult", head + markdown_table(columns, rows), None,
                  results={"rows": rows, "recovered": tuple(counts)}, seconds=seconds)
