"""Wall time and accuracy of a whole ``fit`` next to pykan's, on the training issue's first step,
each fit in a fresh process of its own.

    python benchmarks/fit_vs_pykan.py [--repeats 3] [--seeds 0] [--lamb 1e-3] [--no-pykan]
                                      [--backend numpy|cupy] [--refine] [--json PATH]

The problem: f(x1, x2) = exp(sin(pi x1) + x2^2), x uniform in [-1, 1]^2, 1000 training and
1000 test points (data seed 0); a [2, 5, 1] KAN with G = 3, k = 3, float64, trained 50 LBFGS
steps with lamb = ``--lamb`` (1e-3) and pykan's defaults otherwise (grid updates every 5 steps
until step 50, test loss evaluated every step).  pykan (PyPI ``pykan`` on the CPU build of
torch, ``auto_save=False``, its checkpoint directory in a temp directory) is not a kanarray
dependency; without it (or with ``--no-pykan``) its columns are "-".

Method: for each seed, ``--repeats`` rounds; in each round this script runs itself once per
library in worker mode (``--worker LIB``), each worker alone in a fresh process
(``common.run_alone``), kanarray first in even rounds and pykan first in odd ones
(``common.alternate``).  One library per process, because NumPy's OpenBLAS threads keep
spinning after a call and starve torch's threads in the same process; kanarray keeps its
default threads, pykan's worker calls ``torch.set_num_threads(os.cpu_count())``.  A worker
measures, with ``time.perf_counter``:

* ``process_s``: from the script's first line (before numpy, kanarray or torch is imported)
  to the end of the first fit: imports, data, model construction and the first fit -- the
  "fresh process" figure, what a user's first fit costs;
* ``fit_s``: the first fit alone (numba's compile-cache load, torch's first-call setup);
* ``warm_s``: a second identical fit (a new model, the same seed) in the same process;

and the test RMSE after the fit.  The parent also records each worker's outside wall time,
spawn to exit (``wall_s``: interpreter start and exit too).  The table gives, per seed, the
median over rounds of the fresh-process and warm-fit seconds of each library, their ratios
pykan / kanarray, and the test RMSEs; a second table the medians of every figure.
``--refine``: one more kanarray worker per seed, left out of the medians, then refines its model
to G = 10 and fits 50 more steps (adds a column).  ``--json PATH`` also writes kanarray's times (s): "seed S fit" (the
warm fit), "seed S fresh process", and "first fit" (the fresh-process figure of the first
worker), and its test RMSEs (``common.write_json``; read by compare_versions.py).
"""

from __future__ import annotations

import time

T0 = time.perf_counter()  # a worker's process_s starts here: before numpy, kanarray or torch is imported

import argparse  # noqa: E402
import contextlib  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402

import numpy as np  # noqa: E402
from common import (  # noqa: E402
    WorkerFailed,
    alternate,
    first_failure,
    fmt,
    installed,
    kanarray_root,
    median_of,
    ratio,
    run_alone,
    torch_threads,
    worker_output,
    write_json,
)

sys.path.insert(0, kanarray_root())

STEPS, GRID = 50, 3
LIBS = ("kanarray", "pykan")
FIGURES = ("process_s", "fit_s", "warm_s", "wall_s")


def dataset(seed: int = 0):
    rng = np.random.default_rng(seed)
    f = lambda x: np.exp(np.sin(np.pi * x[:, :1]) + x[:, 1:2] ** 2)  # noqa: E731
    x_train, x_test = rng.uniform(-1, 1, (1000, 2)), rng.uniform(-1, 1, (1000, 2))
    return x_train, f(x_train), x_test, f(x_test)


def kanarray_worker(seed, lamb, backend="numpy", refine=False):
    import kanarray as ka

    data = dataset()

    def fit():
        model = ka.KAN([2, 5, 1], grid=GRID, k=3, seed=seed, backend=backend)
        x, y, xt, yt = (model.xp.asarray(a) for a in data)
        start = time.perf_counter()
        history = model.fit(x, y, steps=STEPS, opt="lbfgs", lamb=lamb, validation=(xt, yt), progress=False)
        return model, time.perf_counter() - start, float(history["val_loss"][-1]), (x, y, xt, yt)

    _, fit_s, rmse, _ = fit()
    process_s = time.perf_counter() - T0
    model, warm_s, warm_rmse, (x, y, xt, yt) = fit()
    got = {"process_s": process_s, "fit_s": fit_s, "warm_s": warm_s, "test_rmse": rmse, "warm_test_rmse": warm_rmse,
           "package": ka.__file__}
    if refine:
        fine = model.refine(10)
        got["refined_rmse"] = float(fine.fit(x, y, steps=STEPS, opt="lbfgs", validation=(xt, yt),
                                             progress=False)["val_loss"][-1])
    return got


def pykan_worker(seed, lamb):
    import torch
    from kan import KAN

    torch_threads()
    torch.set_default_dtype(torch.float64)
    x, y, xt, yt = dataset()
    ds = {
        "train_input": torch.tensor(x), "train_label": torch.tensor(y),
        "test_input": torch.tensor(xt), "test_label": torch.tensor(yt),
    }

    def fit():
        with tempfile.TemporaryDirectory() as tmp:
            model = KAN(width=[2, 5, 1], grid=GRID, k=3, seed=seed, auto_save=False, ckpt_path=tmp, device="cpu")
            start = time.perf_counter()
            with open(os.devnull, "w") as null, contextlib.redirect_stderr(null):  # pykan's own progress bar
                results = model.fit(ds, opt="LBFGS", steps=STEPS, lamb=lamb, log=STEPS + 1)
            return time.perf_counter() - start, float(results["test_loss"][-1])

    fit_s, rmse = fit()
    process_s = time.perf_counter() - T0
    warm_s, warm_rmse = fit()
    return {"process_s": process_s, "fit_s": fit_s, "warm_s": warm_s, "test_rmse": rmse, "warm_test_rmse": warm_rmse}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="rounds (fresh processes per library) per seed")
    parser.add_argument("--seeds", default="0", help="comma-separated model seeds")
    parser.add_argument("--lamb", type=float, default=1e-3, help="the sparsification penalty of both fits")
    parser.add_argument("--no-pykan", action="store_true")
    parser.add_argument("--backend", default="numpy", help="kanarray's backend (numpy or cupy)")
    parser.add_argument("--refine", action="store_true",
                        help="then refine kanarray's model to G = 10 and fit 50 more steps (adds a column)")
    parser.add_argument("--json", default=None, metavar="PATH", help="also write kanarray's results to PATH as JSON")
    parser.add_argument("--worker", default=None, choices=LIBS, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker == "kanarray":
        worker_output(kanarray_worker(args.seed, args.lamb, args.backend, args.refine))
        return
    if args.worker == "pykan":
        worker_output(pykan_worker(args.seed, args.lamb))
        return

    libs = ["kanarray"]
    if not args.no_pykan:
        if installed("kan") and installed("torch"):
            libs.append("pykan")
        else:
            print("pykan is not installed (pip install '.[bench]'); running kanarray only", file=sys.stderr)
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, python {platform.python_version()}, "
          f"kanarray backend {args.backend}, lamb {args.lamb:g}; each fit in a fresh process, median over "
          f"{args.repeats} round(s)")
    script = os.path.abspath(__file__)
    times, values, rows, details = {}, {}, [], []
    table = []
    for seed in (int(s) for s in args.seeds.split(",")):
        def run_one(lib, r, seed=seed, refine=False):
            options = ["--worker", lib, "--seed", str(seed), "--lamb", repr(args.lamb)]
            if lib == "kanarray":
                options += ["--backend", args.backend] + (["--refine"] if refine else [])
            return run_alone(script, options)

        runs = alternate(libs, args.repeats, run_one)
        refined = float("nan")
        if args.refine:  # one more kanarray worker, left out of the medians: its refine would lengthen wall_s
            try:
                refined = run_one("kanarray", 0, refine=True)["refined_rmse"]
            except WorkerFailed as exc:
                print(f"seed {seed} refine: failed: {exc}", file=sys.stderr)
        runs.setdefault("pykan", [])
        med = {(lib, k): median_of(runs[lib], k) for lib in LIBS for k in FIGURES}
        ok = {lib: [r for r in runs[lib] if "failed" not in r] for lib in LIBS}
        rmse = {lib: ok[lib][-1]["test_rmse"] if ok[lib] else float("nan") for lib in LIBS}
        if not ok["kanarray"]:
            table.append(f"| {seed} | failed: {(first_failure(runs['kanarray']) or '').splitlines()[-1][:160]} |")
            rows.append({"seed": seed, "failed": first_failure(runs["kanarray"]), "runs": runs})
            continue
        kp, pp = med[("kanarray", "process_s")], med[("pykan", "process_s")]
        kw, pw = med[("kanarray", "warm_s")], med[("pykan", "warm_s")]
        tail = f" {fmt(refined, '.3e')} |" if args.refine else ""
        table.append(f"| {seed} | {fmt(kp)} | {fmt(pp)} | {fmt(ratio(pp, kp), '.1f', 'x')} | {fmt(kw)} | {fmt(pw)} "
                     f"| {fmt(ratio(pw, kw), '.1f', 'x')} | {fmt(rmse['kanarray'], '.3e')} "
                     f"| {fmt(rmse['pykan'], '.3e')} |{tail}")
        for lib in libs:
            details.append(f"| {seed} | {lib} | " + " | ".join(fmt(med[(lib, k)]) for k in FIGURES)
                           + " | " + ", ".join(fmt(r.get("process_s")) for r in ok[lib]) + " |")
            if first_failure(runs[lib]):
                details.append(f"| {seed} | {lib} | failed in {len(runs[lib]) - len(ok[lib])} round(s): "
                               f"{first_failure(runs[lib]).splitlines()[-1][:160]} | | | | |")
        if "first fit" not in times:
            times["first fit"] = ok["kanarray"][0]["process_s"]
        times[f"seed {seed} fit"] = kw
        times[f"seed {seed} fresh process"] = kp
        values[f"seed {seed} test RMSE"] = rmse["kanarray"]
        if args.refine:
            values[f"seed {seed} test RMSE after refine(10)"] = refined
        rows.append({"seed": seed, **{f"{lib} {k}": med[(lib, k)] for lib in LIBS for k in FIGURES},
                     "kanarray test RMSE": rmse["kanarray"], "pykan test RMSE": rmse["pykan"],
                     "runs": {lib: [{k: v for k, v in r.items() if k != "package"} for r in runs[lib]]
                              for lib in libs}})
    extra = " kanarray test RMSE after refine(10) |" if args.refine else ""
    print("| seed | kanarray fresh-process s | pykan fresh-process s | pykan / kanarray | kanarray warm fit s "
          f"| pykan warm fit s | pykan / kanarray | kanarray test RMSE | pykan test RMSE |{extra}")
    print("|---|---|---|---|---|---|---|---|---|" + ("---|" if args.refine else ""))
    print("\n".join(table))
    print()
    print("Medians over rounds: process_s (script start to end of the first fit), fit_s (the first fit), warm_s "
          "(a second fit in the same process), wall_s (spawn to exit, seen from outside):")
    print()
    print("| seed | library | process_s | fit_s | warm_s | wall_s | process_s of each round |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(details), flush=True)
    write_json(args.json, "fit_vs_pykan", times, unit="s", values=values, rows=rows)


if __name__ == "__main__":
    main()
