"""Wall time and accuracy of a whole ``fit`` next to pykan's, on the training issue's first step.

    python benchmarks/fit_vs_pykan.py [--repeats 3] [--seeds 0] [--no-pykan] [--backend numpy|cupy] [--refine]
                                      [--json PATH]

The problem: f(x1, x2) = exp(sin(pi x1) + x2^2), x uniform in [-1, 1]^2, 1000 training and
1000 test points (data seed 0); a [2, 5, 1] KAN with G = 3, k = 3, float64, trained 50 LBFGS
steps with lamb = 1e-3 and pykan's defaults otherwise (grid updates every 5 steps until step
50, test loss evaluated every step).  pykan (PyPI ``pykan`` on the CPU build of torch) runs in
the same process with ``auto_save=False`` and its checkpoint directory in a temp directory;
the two libraries alternate run by run so both see the same machine load.  Reports the
median wall time of each over ``--repeats`` runs per seed, their ratio (pykan / kanarray),
and the final test RMSE of each.  Prints a markdown table.  One fit of each library runs first,
untimed in the table (its time is printed above it): imports, numba's compile cache and torch's
first-call setup happen once per process.  ``--json PATH`` also writes kanarray's times (s) and
test RMSEs there (``common.write_json``; read by compare_versions.py).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import kanarray as ka  # noqa: E402
from common import write_json  # noqa: E402

STEPS, LAMB, GRID = 50, 1e-3, 3


def dataset(seed: int = 0):
    rng = np.random.default_rng(seed)
    f = lambda x: np.exp(np.sin(np.pi * x[:, :1]) + x[:, 1:2] ** 2)  # noqa: E731
    x_train, x_test = rng.uniform(-1, 1, (1000, 2)), rng.uniform(-1, 1, (1000, 2))
    return x_train, f(x_train), x_test, f(x_test)


def run_kanarray(seed, data, backend="numpy", refine=False):
    """(seconds of the first fit, its test RMSE, test RMSE after refine(10) + 50 steps or None)."""
    model = ka.KAN([2, 5, 1], grid=GRID, k=3, seed=seed, backend=backend)
    x, y, xt, yt = (model.xp.asarray(a) for a in data)
    start = time.perf_counter()
    history = model.fit(x, y, steps=STEPS, opt="lbfgs", lamb=LAMB, validation=(xt, yt), progress=False)
    seconds = time.perf_counter() - start
    refined = None
    if refine:
        fine = model.refine(10)
        refined = fine.fit(x, y, steps=STEPS, opt="lbfgs", validation=(xt, yt), progress=False)["val_loss"][-1]
    return seconds, history["val_loss"][-1], refined


def run_pykan(seed, data):
    import torch
    from kan import KAN

    torch.set_default_dtype(torch.float64)
    x, y, xt, yt = data
    ds = {
        "train_input": torch.tensor(x), "train_label": torch.tensor(y),
        "test_input": torch.tensor(xt), "test_label": torch.tensor(yt),
    }
    with tempfile.TemporaryDirectory() as tmp:
        model = KAN(width=[2, 5, 1], grid=GRID, k=3, seed=seed, auto_save=False, ckpt_path=tmp, device="cpu")
        start = time.perf_counter()
        with open(os.devnull, "w") as null, contextlib.redirect_stderr(null):  # pykan's own progress bar
            results = model.fit(ds, opt="LBFGS", steps=STEPS, lamb=LAMB, log=STEPS + 1)
        seconds = time.perf_counter() - start
    return seconds, float(results["test_loss"][-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seeds", default="0", help="comma-separated model seeds")
    parser.add_argument("--no-pykan", action="store_true")
    parser.add_argument("--backend", default="numpy", help="kanarray's backend (numpy or cupy)")
    parser.add_argument("--refine", action="store_true",
                        help="then refine kanarray's model to G = 10 and fit 50 more steps (adds a column)")
    parser.add_argument("--json", default=None, metavar="PATH", help="also write kanarray's results to PATH as JSON")
    args = parser.parse_args(argv)
    data = dataset()
    use_pykan = not args.no_pykan
    if use_pykan:
        try:
            import kan  # noqa: F401
        except ImportError:
            print("pykan is not installed (pip install '.[bench]'); running kanarray only", file=sys.stderr)
            use_pykan = False
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, python {platform.python_version()}, "
          f"kanarray backend {args.backend}")
    # one untimed fit of each first: imports, numba's compile-cache load, torch's first-call setup
    cold_ours = run_kanarray(0, data, args.backend)[0]
    cold_theirs = run_pykan(0, data)[0] if use_pykan else None
    print(f"first fit in this process (not in the table): kanarray {cold_ours:.2f} s"
          + (f", pykan {cold_theirs:.2f} s" if use_pykan else ""))
    extra = " kanarray test RMSE after refine(10) |" if args.refine else ""
    print(f"| seed | kanarray s (median) | pykan s (median) | speed-up | kanarray test RMSE | pykan test RMSE |{extra}")
    print("|---|---|---|---|---|---|" + ("---|" if args.refine else ""))
    times, values, rows = {"first fit": cold_ours}, {}, []
    for seed in (int(s) for s in args.seeds.split(",")):
        ours, theirs = [], []
        for _ in range(args.repeats):
            ours.append(run_kanarray(seed, data, args.backend, refine=args.refine and not ours))
            if use_pykan:
                theirs.append(run_pykan(seed, data))
        t_ours = statistics.median(s for s, _, _ in ours)
        rmse_ours = ours[-1][1]
        tail = f" {ours[0][2]:.3e} |" if args.refine else ""
        times[f"seed {seed} fit"] = t_ours
        values[f"seed {seed} test RMSE"] = rmse_ours
        if args.refine:
            values[f"seed {seed} test RMSE after refine(10)"] = ours[0][2]
        rows.append({"seed": seed, "kanarray s": [s for s, _, _ in ours], "pykan s": [s for s, _ in theirs],
                     "pykan test RMSE": theirs[-1][1] if theirs else None})
        if use_pykan:
            t_theirs = statistics.median(s for s, _ in theirs)
            print(f"| {seed} | {t_ours:.2f} | {t_theirs:.2f} | {t_theirs / t_ours:.1f}x | {rmse_ours:.3e} | "
                  f"{theirs[-1][1]:.3e} |{tail}", flush=True)
        else:
            print(f"| {seed} | {t_ours:.2f} | - | - | {rmse_ours:.3e} | - |{tail}", flush=True)
    write_json(args.json, "fit_vs_pykan", times, unit="s", values=values, rows=rows)


if __name__ == "__main__":
    main()
