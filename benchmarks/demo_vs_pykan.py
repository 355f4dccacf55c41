"""The interpretability pipeline of ``kanarray demo`` next to the same pipeline in pykan, each
run in a fresh process of its own.

    python benchmarks/demo_vs_pykan.py [--seeds 1] [--repeats 2] [--no-pykan]

The problem (pykan's hello-KAN): f = exp(sin(pi x1) + x2^2), x uniform in [-1, 1]^2, 1000
training and 1000 test points, float64.  Pipeline, the same in both libraries: [2, 5, 1] KAN
with G = 3, k = 3 -> 50 LBFGS steps with lamb = 1e-3 -> prune() -> refine(10) -> 50 steps ->
auto_symbolic(lib = the tutorial's 10 functions) -> 50 steps -> the formula rounded to 4
digits (pykan's formula goes through the same rounding and tidying as kanarray's: pykan's
own ``ex_round`` leaves some numbers unrounded).  pykan (PyPI ``pykan`` on the CPU build of
torch, ``auto_save=False``, its checkpoint directory in a temp directory) is not a kanarray
dependency.  Plots are not part of the timing in either.

Method: for each seed, ``--repeats`` rounds; in each round this script runs itself once per
library in worker mode (``--worker LIB``), each worker alone in a fresh process
(``common.run_alone``), kanarray first in even rounds and pykan first in odd ones
(``common.alternate``).  One library per process, because NumPy's OpenBLAS threads keep
spinning after a call and starve torch's threads in the same process; kanarray keeps its
default threads, pykan's worker calls ``torch.set_num_threads(os.cpu_count())``.  A worker
times each stage; its pipeline total is their sum, and its fresh-process total adds the time
from the script's first line (before numpy, kanarray or torch is imported) to the start of the
pipeline: imports and data.  pykan's worker reads the data from a file the parent wrote, and
imports kanarray (to tidy and check its formula) only after the pipeline.  One untimed kanarray
worker runs first (it fills numba's on-disk compile cache, as any earlier run would have).
Prints, per library, the median over rounds of each stage, of the pipeline total and of the
fresh-process total, the final test RMSE, the formula and whether it equals the target after
rounding (the last run's); then the ratios of the medians (pykan / kanarray).  A run that
raises is reported as failed and left out of the medians.
"""

from __future__ import annotations

import time

T0 = time.perf_counter()  # a worker's fresh-process total starts here: before numpy, kanarray or torch

import argparse  # noqa: E402
import contextlib  # noqa: E402
import io  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402

from common import alternate, installed, kanarray_root, run_alone, torch_threads, worker_output  # noqa: E402

sys.path.insert(0, kanarray_root())

STAGES = ("fit G=3 lamb=1e-3", "prune", "refine(10) + fit", "auto_symbolic", "fit symbolic")
LIBS = ("kanarray", "pykan")


def kanarray_worker(seed):
    """{'stages': seconds per stage, 'total', 'fresh_total', 'test_rmse', 'formula', 'exact'}."""
    import kanarray
    from kanarray.demo import run_demo

    before = time.perf_counter() - T0
    result = run_demo(function="expsin", seed=seed, out_dir=None, echo=lambda *a: None)
    seconds = [s for _, _, s in result["stages"]]
    return {"stages": seconds, "total": result["seconds"], "fresh_total": before + result["seconds"],
            "test_rmse": result["test_rmse"], "formula": str(result["formula"]), "exact": bool(result["exact"]),
            "package": kanarray.__file__}


def pykan_worker(seed, data_path):
    import numpy as np
    import torch
    from kan import KAN

    torch_threads()
    torch.set_default_dtype(torch.float64)
    with np.load(data_path) as f:
        x, y, xt, yt = (f[k] for k in ("x", "y", "xt", "yt"))
        lib = [str(s) for s in f["lib"]]
    ds = {"train_input": torch.tensor(x), "train_label": torch.tensor(y),
          "test_input": torch.tensor(xt), "test_label": torch.tensor(yt)}
    seconds = []
    quiet = io.StringIO()
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(quiet), \
            open(os.devnull, "w") as null, contextlib.redirect_stderr(null):
        before = time.perf_counter() - T0
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
        model.auto_symbolic(lib=lib)
        seconds.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        model.fit(ds, opt="LBFGS", steps=50)
        seconds.append(time.perf_counter() - t0)
        total = sum(seconds)
        raw_formula = model.symbolic_formula()[0][0]
        with torch.no_grad():
            rmse = float(torch.sqrt(torch.mean((model(ds["test_input"]) - ds["test_label"]) ** 2)))
    # after the timing: pykan's formula, tidied like kanarray's (expand, round to 4 decimals, recombine exp)
    from kanarray.demo import TOYS, formula_matches
    from kanarray.symbolic.formula import tidy

    formula = tidy(raw_formula, 4)
    exact, _ = formula_matches(formula, TOYS["expsin"], xt)
    return {"stages": seconds, "total": total, "fresh_total": before + total, "test_rmse": rmse,
            "formula": str(formula), "exact": bool(exact)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="1", help="comma-separated seeds (data and model)")
    parser.add_argument("--repeats", type=int, default=2, help="rounds (fresh processes per library) per seed")
    parser.add_argument("--no-pykan", action="store_true")
    parser.add_argument("--worker", default=None, choices=LIBS, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--data", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker == "kanarray":
        worker_output(kanarray_worker(args.seed))
        return
    if args.worker == "pykan":
        worker_output(pykan_worker(args.seed, args.data))
        return

    import numpy as np

    from kanarray.demo import HELLOKAN_LIB, TOYS, make_data

    seeds = [int(s) for s in args.seeds.split(",")]
    libs = ["kanarray"]
    if not args.no_pykan:
        if installed("kan") and installed("torch"):
            libs.append("pykan")
        else:
            print("pykan is not installed: running kanarray only", file=sys.stderr)
    print(f"# demo pipeline vs pykan: {platform.node()}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cpus, python {platform.python_version()}; each run in a fresh process, "
          f"median over {args.repeats} round(s)")
    script = os.path.abspath(__file__)
    t0 = time.perf_counter()
    try:
        run_alone(script, ["--worker", "kanarray", "--seed", str(seeds[0])])
        print(f"untimed warm-up process of kanarray: {time.perf_counter() - t0:.2f} s", flush=True)
    except Exception as exc:  # the timed runs will report it
        print(f"untimed warm-up process of kanarray failed: {exc}", file=sys.stderr, flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            data_path = os.path.join(tmp, f"data-{seed}.npz")
            x, y, xt, yt = make_data(TOYS["expsin"], seed)
            np.savez(data_path, x=x, y=y, xt=xt, yt=yt, lib=np.array(HELLOKAN_LIB))

            def run_one(lib, r, seed=seed, data_path=data_path):
                options = ["--worker", lib, "--seed", str(seed)] + (["--data", data_path] if lib == "pykan" else [])
                got = run_alone(script, options)
                print(f"seed {seed} {lib}: {got['total']:.2f} s (stages " + ", ".join(f"{v:.2f}" for v in got["stages"])
                      + f"), fresh process {got['fresh_total']:.2f} s, spawn to exit {got['wall_s']:.2f} s, "
                      f"test RMSE {got['test_rmse']:.2e}, formula equal: {got['exact']}", flush=True)
                return got

            runs = alternate(libs, args.repeats, run_one)
            medians = {}
            for lib in libs:
                ok = [r for r in runs[lib] if "failed" not in r]
                for r in runs[lib]:
                    if "failed" in r:  # a peer's crash is a result too: report it and go on
                        last = r["failed"].strip().splitlines()[-1]
                        print(f"seed {seed} {lib}: failed: {last}", flush=True)
                        rows.append((seed, lib, None, f"failed: {last[:80]}", None, None, None, None))
                if not ok:
                    continue
                stage_medians = [statistics.median(r["stages"][s] for r in ok) for s in range(len(STAGES))]
                total = statistics.median(r["total"] for r in ok)
                fresh = statistics.median(r["fresh_total"] for r in ok)
                medians[lib] = (total, fresh)
                rows.append((seed, lib, stage_medians, total, fresh, ok[-1]["test_rmse"], ok[-1]["formula"],
                             ok[-1]["exact"]))
            if len(medians) == 2:
                (kt, kf), (pt, pf) = medians["kanarray"], medians["pykan"]
                rows.append((seed, "ratio pykan/kanarray", None, pt / kt, pf / kf, None, None, None))
    print()
    print("| seed | library | " + " | ".join(f"{s} (s)" for s in STAGES) + " | total (s) | fresh process (s) "
          "| test RMSE | formula | equal to target |")
    print("|" + "---|" * (len(STAGES) + 8))
    for seed, lib, stages, total, fresh, rmse, formula, exact in rows:
        if stages is None:
            if isinstance(total, str):
                print(f"| {seed} | {lib} |" + " |" * len(STAGES) + f" {total} | | | | |")
            else:
                print(f"| {seed} | {lib} |" + " |" * len(STAGES) + f" **{total:.1f}x** | **{fresh:.1f}x** | | | |")
            continue
        print(f"| {seed} | {lib} | " + " | ".join(f"{s:.2f}" for s in stages)
              + f" | {total:.2f} | {fresh:.2f} | {rmse:.2e} | `{formula}` | {'yes' if exact else 'no'} |")


if __name__ == "__main__":
    main()
