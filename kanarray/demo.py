"""``kanarray demo``: the interpretability loop end to end on a built-in toy function.

[2, 5, 1] KAN on G = 3 -> fit with the sparsity penalty -> prune -> refine to G = 10 -> fit
-> auto_symbolic -> fit -> the recovered formula, with the test RMSE and time of each stage;
with an output folder, also plots of the network and (with kanarray[onnx]) ONNX exports of the spline and symbolic
models checked on onnxruntime.  The settings are those of pykan's hello-KAN tutorial (50 LBFGS
steps per fit, lamb = 1e-3, its symbolic library), so ``benchmarks/demo_vs_pykan.py`` can
run the same pipeline with pykan.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numpy as np

from .datasets import TOY, Dataset, make_dataset
from .model import KAN
from .nodes import display_width

__all__ = ["TOYS", "Toy", "run_demo", "HELLOKAN_LIB", "make_data"]

# pykan's hello-KAN tutorial library
HELLOKAN_LIB = ("x", "x^2", "x^3", "x^4", "exp", "log", "sqrt", "tanh", "sin", "abs")


@dataclass(frozen=True)
class Toy:
    """A built-in target: ``data`` (a ``kanarray.datasets.Dataset`` of two inputs on one range)
    holds f and the ground-truth formula; text: how the demo names it; lib: its symbolic library."""

    text: str
    data: Dataset
    lib: tuple = HELLOKAN_LIB
    width: tuple = (2, 5, 1)  # the KAN the demo starts from (pairs: multiplication nodes, ``kanarray.nodes``)

    @property
    def name(self) -> str:
        return self.data.name

    @property
    def lo(self) -> float:
        return float(self.data.ranges[0])

    @property
    def hi(self) -> float:
        return float(self.data.ranges[1])


def _relativistic_formula():
    import sympy

    x1, x2 = sympy.symbols("x_1 x_2", real=True)
    return (x1 + x2) / (1 + x1 * x2)


TOYS = {
    "expsin": Toy("exp(sin(pi x1) + x2^2)", TOY["exp_sin"]),
    "xy": Toy("x1 * x2", TOY["product"], width=(2, (0, 1))),  # pykan's MultKAN: one multiplication node
    "relativistic": Toy("(x1 + x2) / (1 + x1 x2)  (relativistic velocity addition)",
                        Dataset("relativistic", 2, lambda x: (x[:, 0] + x[:, 1]) / (1 + x[:, 0] * x[:, 1]),
                                _relativistic_formula, (2, 5, 1), (-0.9, 0.9)),
                        lib=HELLOKAN_LIB + ("arctanh", "arctan", "1/x", "x^5")),
}


def make_data(toy: Toy, seed: int, n_train: int = 1000, n_test: int = 1000):
    """(x_train, y_train, x_test, y_test), inputs uniform on [lo, hi]^2 (``datasets.make_dataset``)."""
    d = make_dataset(toy.data.f, 2, (toy.lo, toy.hi), n_train=n_train, n_test=n_test, seed=seed)
    return d["train_input"], d["train_label"], d["test_input"], d["test_label"]


def _rmse(model, x, y) -> float:
    return float(np.sqrt(np.mean((np.asarray(model(x)) - y) ** 2)))


def formula_matches(found, toy: Toy, x_test, digits: int = 4) -> tuple[bool, float]:
    """(equal after rounding, max |difference| on the test inputs) between the recovered
    formula and the toy's (``kanarray.symbolic.formula.formulas_agree``)."""
    import sympy

    from .symbolic.formula import formulas_agree

    x1, x2 = sympy.symbols("x_1 x_2")  # as symbolic_formula names them, without assumptions
    truth = toy.data.formula()
    truth = truth.xreplace({s: {"x_1": x1, "x_2": x2}[s.name] for s in truth.free_symbols})
    return formulas_agree(found, truth, (x1, x2), x_test, digits)


def _export_and_check(model, name: str, x_test, out_dir, echo) -> dict | None:
    """Export ``model`` to out_dir/name.onnx (float64), run it with onnxruntime on the test
    inputs and report the largest difference from the native model and the latency."""
    from .export import OnnxModel, to_onnx

    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        echo(f"ONNX export of the {name} model skipped: pip install 'kanarray[onnx]' for it")
        return None
    path = os.path.join(out_dir, f"{name}.onnx")
    to_onnx(model, path, dtype="float64")
    served = OnnxModel(path, provider="cpu")
    gap = float(np.max(np.abs(served(x_test) - np.asarray(model(x_test)))))
    times = []
    for _ in range(20):
        t0 = time.perf_counter()
        served(x_test)
        times.append(time.perf_counter() - t0)
    ms = 1e3 * float(np.median(times))
    echo(f"ONNX ({name}): {path}; onnxruntime vs native max |difference| {gap:.1e}; {ms:.2f} ms per "
         f"{x_test.shape[0]} rows")
    return dict(path=path, max_gap=gap, ms=ms)


def run_demo(*, function: str = "expsin", seed: int = 1, out_dir: str | None = None, steps: int = 50,
             lamb: float = 1e-3, r2_threshold: float = 0.99, progress: bool = False, echo=print) -> dict:
    """Run the pipeline; returns {'formula', 'exact', 'max_gap', 'test_rmse', 'stages', 'model',
    'report', 'seconds', 'onnx'} (stages: [(name, test RMSE, seconds)]; onnx: for the spline
    model after refine and for the symbolic one, {'path', 'max_gap', 'ms'} of the exported graph
    on onnxruntime, or None without onnx installed).  out_dir: the folder for the plots and
    exports, made if missing; None (the default): nothing is written, and a line says so (the
    stage times never include plots or exports)."""
    if function not in TOYS:
        raise ValueError(f"unknown function {function!r}: choose one of {sorted(TOYS)}")
    toy = TOYS[function]
    x, y, x_test, y_test = make_data(toy, seed)
    if out_dir is not None:
        os.makedirs(out_dir, exist_ok=True)
    stages = []
    echo(f"kanarray demo: recovering f = {toy.text} from {x.shape[0]} samples on [{toy.lo:g}, {toy.hi:g}]^2 "
         f"(seed {seed})")
    echo(f"{'stage':<34} {'test RMSE':>10} {'seconds':>8}")

    def stage(name, model, t0):
        seconds = time.perf_counter() - t0
        rmse = _rmse(model, x_test, y_test)
        stages.append((name, rmse, seconds))
        echo(f"{name:<34} {rmse:>10.3e} {seconds:>8.2f}")

    fit = dict(steps=steps, progress=progress)
    t0 = time.perf_counter()
    model = KAN(toy.width, grid=3, k=3, seed=seed)
    history = model.fit(x, y, lamb=lamb, validation=(x_test, y_test), **fit)
    stage(f"{str(display_width(model)).replace(' ', '')} G=3, fit, lamb={lamb:g}", model, t0)
    if out_dir is not None:
        model.plot(os.path.join(out_dir, "1-trained.png"), title="trained with the sparsity penalty")
    t0 = time.perf_counter()
    model = model.prune()
    stage(f"prune -> {display_width(model)}", model, t0)
    t0 = time.perf_counter()
    model = model.refine(10)
    history2 = model.fit(x, y, validation=(x_test, y_test), **fit)
    stage("refine to G=10, fit", model, t0)
    onnx_reports = {}
    if out_dir is not None:
        model.plot(os.path.join(out_dir, "2-pruned-refined.png"), title=f"pruned to {display_width(model)}, G = 10")
        onnx_reports["spline"] = _export_and_check(model, "spline", x_test, out_dir, echo)
    t0 = time.perf_counter()
    report = model.auto_symbolic(lib=list(toy.lib), r2_threshold=r2_threshold)
    stage("auto_symbolic", model, t0)
    t0 = time.perf_counter()
    history3 = model.fit(x, y, validation=(x_test, y_test), **fit)
    stage("fit the symbolic parameters", model, t0)
    seconds = sum(s for _, _, s in stages)  # the stages only: plots and exports in between are not timed
    echo(str(report))
    result = dict(stages=stages, model=model, report=report, seconds=seconds, test_rmse=stages[-1][1],
                  formula=None, exact=False, max_gap=float("nan"))
    try:
        formula = model.symbolic_formula()[0]
    except ValueError as exc:
        echo(f"no formula: {exc}")
    else:
        exact, gap = formula_matches(formula, toy, x_test)
        result.update(formula=formula, exact=exact, max_gap=gap)
        echo(f"recovered formula: {formula}")
        echo(f"target:            {toy.text}; equal after rounding to 4 digits: {'yes' if exact else 'no'}; "
             f"max |formula - f| on the test points: {gap:.2e}")
    echo(f"final test RMSE {result['test_rmse']:.3e}; whole pipeline {seconds:.2f} s")
    if out_dir is not None:
        model.plot(os.path.join(out_dir, "3-symbolic.png"), title="symbolic")
        onnx_reports["symbolic"] = _export_and_check(model, "symbolic", x_test, out_dir, echo)
        from .training import History

        curves = History(())
        for h in (history, history2, history3):
            curves.extend(h)  # one stage per fit, marked on the plot
        curves.pop("reg", None)
        curves.plot(os.path.join(out_dir, "loss.png"))
        echo(f"plots written to {os.path.abspath(out_dir)}")
    else:
        echo("no plots or ONNX files written: kanarray demo --out DIR writes them to DIR")
    result["onnx"] = onnx_reports
    return result
