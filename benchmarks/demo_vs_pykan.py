"""The interpretability pipeline of ``kanarray demo`` next to the same pipeline in pykan.

    python benchmarks/demo_vs_pykan.py [--seeds 1] [--repeats 1] [--no-pykan]

The problem (pykan's hello-KAN): f = exp(sin(pi x1) + x2^2), x uniform in [-1, 1]^2, 1000
training and 1000 test points, float64.  Pipeline, the same in both libraries: [2, 5, 1] KAN
with G = 3, k = 3 -> 50 LBFGS steps with lamb = 1e-3 -> prune() -> refine(10) -> 50 steps ->
auto_symbolic(lib = the tutorial's 10 functions) -> 50 steps -> the formula rounded to 4
digits (pykan's formula goes through the same rounding and tidying as kanarray's: pykan's
own ``ex_round`` leaves some numbers unrounded).  pykan (PyPI ``pykan`` on the CPU build of
torch) runs in the same process with ``auto_save=False`` and its checkpoint directory in a temp
directory; the libraries alternate run by run.  Plots are not part of the timing in either.
Prints, per library, the median time of each stage and of the whole pipeline, the final test
RMSE, the formula and whether it equals the target after rounding (the last run's); then the
ratio of the medians (pykan / kanarray).  A run that raises is reported as failed and left out of the medians.  One
untimed kanarray run comes first (imports and numba's compile cache).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import platform
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from kanarray.demo import HELLOKAN_LIB, TOYS, formula_matches, make_data, run_demo  # noqa: E402

STAGES = ("fit G=3 lamb=1e-3", "prune", "refine(10) + fit", "auto_symbolic", "fit symbolic")


def run_kanarray(seed):
    """(seconds per stage, total, test RMSE, formula, equal to the target)."""
    result = run_demo(function="expsin", seed=seed, out_dir=None, echo=lambda *a: None)
    seconds = [s for _, _, s in result["stages"]]
    return seconds, result["seconds"], result["test_rmse"], result["formula"], result["exact"]


def run_pykan(seed):
    import torch
    from kan import KAN

    from kanarray.symbolic.formula import tidy

    torch.set_default_dtype(torch.float64)
    toy = TOYS["expsin"]
    x, y, xt, yt = make_data(toy, seed)
    ds = {"train_input": torch.tensor(x), "train_label": torch.tensor(y),
          "test_input": torch.tensor(xt), "test_label": torch.tensor(yt)}
    seconds = []
    quiet = io.StringIO()
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(quiet), \
            open(os.devnull, "w") as null, contextlib.redirect_stderr(null):
        start = time.perf_counter()
        t0 = time.perf_counter()
        model = KAN(width=[2, 5, 1], grid=3, k=3, seed=seed, auto_save=False, ckpt_path=tmp, device="cpu")
        model.fit(ds, opt="LBFGS", steps=50, lamb=1e-3)
        seconds.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        model = model.prune()
        seconds.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        model = model.refine(10)
        model.fit(ds, opt="LBFGS", steps=50)
        seconds.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        model.auto_symbolic(lib=list(HELLOKAN_LIB))
        seconds.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        model.fit(ds, opt="LBFGS", steps=50)
        seconds.append(time.perf_counter() - t0)
        total = time.perf_counter() - start
        # pykan's formula, tidied like kanarray's (expand, round to 4 decimals, recombine exp)
        formula = tidy(model.symbolic_formula()[0][0], 4)
        with torch.no_grad():
            rmse = float(torch.sqrt(torch.mean((model(ds["test_input"]) - ds["test_label"]) ** 2)))
    exact, _ = formula_matches(formula, toy, xt)
    return seconds, total, rmse, formula, exact


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="1", help="comma-separated seeds (data and model)")
    parser.add_argument("--repeats", type=int, default=1, help="runs per library and seed")
    parser.add_argument("--no-pykan", action="store_true")
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    print(f"# demo pipeline vs pykan: {platform.node()}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cpus, python {platform.python_version()}")
    t0 = time.perf_counter()
    run_kanarray(seeds[0])
    print(f"untimed warm-up run of kanarray: {time.perf_counter() - t0:.2f} s", flush=True)
    libs = ["kanarray"] + ([] if args.no_pykan else ["pykan"])
    runners = {"kanarray": run_kanarray, "pykan": run_pykan}
    rows = []
    for seed in seeds:
        runs = {lib: [] for lib in libs}
        for _ in range(args.repeats):
            for lib in libs:
                try:
                    runs[lib].append(runners[lib](seed))
                except Exception as exc:  # a peer's crash is a result too: report it and go on
                    print(f"seed {seed} {lib}: failed with {type(exc).__name__}: {exc}", flush=True)
                    rows.append((seed, lib, None, f"failed: {type(exc).__name__}", None, None, None))
                    continue
                seconds, total, rmse, _, exact = runs[lib][-1]
                print(f"seed {seed} {lib}: {total:.2f} s (stages " + ", ".join(f"{v:.2f}" for v in seconds)
                      + f"), test RMSE {rmse:.2e}, formula equal: {exact}", flush=True)
        medians = {}
        for lib in libs:
            if not runs[lib]:
                continue
            stage_medians = [statistics.median(r[0][s] for r in runs[lib]) for s in range(len(STAGES))]
            total = statistics.median(r[1] for r in runs[lib])
            rmse, formula, exact = runs[lib][-1][2:]
            medians[lib] = total
            rows.append((seed, lib, stage_medians, total, rmse, formula, exact))
        if len(medians) == 2:
            rows.append((seed, "ratio pykan/kanarray", None, medians["pykan"] / medians["kanarray"], None, None, None))
    print()
    print("| seed | library | " + " | ".join(f"{s} (s)" for s in STAGES) + " | total (s) | test RMSE | formula | "
          "equal to target |")
    print("|" + "---|" * (len(STAGES) + 7))
    for seed, lib, stages, total, rmse, formula, exact in rows:
        if stages is None:
            cell = total if isinstance(total, str) else f"**{total:.1f}x**"
            print(f"| {seed} | {lib} |" + " |" * len(STAGES) + f" {cell} | | | |")
            continue
        print(f"| {seed} | {lib} | " + " | ".join(f"{s:.2f}" for s in stages)
              + f" | {total:.2f} | {rmse:.2e} | `{formula}` | {'yes' if exact else 'no'} |")


if __name__ == "__main__":
    main()
