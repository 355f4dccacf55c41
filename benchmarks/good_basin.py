"""How often a default fit finds the good basin, kanarray next to pykan, on the paper's toy functions.

    python benchmarks/good_basin.py [--toys exp_sin,product,two_sines,mean_sin2_100d,j0] [--seeds 0,1,2,3]
                                    [--draws 0,1,2] [--grid 5] [--steps 50] [--no-pykan] [--json PATH]

For every toy function (``kanarray.datasets.TOY``, its minimal shape), model seed and data draw
(``toy_dataset(name, seed=draw)``: 1000 training and 1000 test points, uniform), one fit with
each library's defaults: 50 L-BFGS steps, lamb 0, grid updates every 5 steps (pykan 0.2.8
``model.fit(dataset, opt="LBFGS", steps=50)``; kanarray ``model.fit(x, y, steps=50)``, its start
probe on).  A fit counts as a success when its test RMSE is below 10% of the test labels'
standard deviation (99% of the variance explained; the poor minima measured sit at 30% to 90%).
``--kanarray-seeded`` also runs kanarray with ``start_probe=False`` (the seeded start alone,
as before the probe existed).  Each library runs in its own process (this script with
``--worker``), one after the other; nothing is timed against the other library.  Prints a
table of successes per toy and library and the test RMSEs per seed and draw.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

from common import kanarray_root, run_alone, worker_output

sys.path.insert(0, kanarray_root())
THRESHOLD = 0.1  # success: test RMSE < THRESHOLD * std(test labels)


def _data(name, draw):
    from kanarray.datasets import toy_dataset

    return toy_dataset(name, seed=draw)


def run_kanarray(name, seeds, draws, grid, steps, probe=True):
    import numpy as np

    import kanarray as ka
    from kanarray.datasets import TOY

    out = []
    for draw in draws:
        ds = _data(name, draw)
        scale = float(np.std(ds["test_label"]))
        for seed in seeds:
            model = ka.KAN(list(TOY[name].shape), grid=grid, k=3, seed=seed)
            start = time.perf_counter()
            history = model.fit(ds["train_input"], ds["train_label"], steps=steps, start_probe=probe,
                                validation=(ds["test_input"], ds["test_label"]), progress=False)
            probed = history.start_probe
            out.append({"seed": seed, "draw": draw, "rmse": history["val_loss"][-1], "scale": scale,
                        "seconds": time.perf_counter() - start, "start": probed and probed["chosen"]})
    return out


def run_pykan(name, seeds, draws, grid, steps):
    import contextlib
    import io

    import numpy as np
    import torch
    from kan import KAN

    from kanarray.datasets import TOY

    torch.set_default_dtype(torch.float64)
    out = []
    for draw in draws:
        ds = _data(name, draw)
        scale = float(np.std(ds["test_label"]))
        data = {key: torch.tensor(np.asarray(value)) for key, value in ds.items()}
        for seed in seeds:
            with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()), \
                    open(os.devnull, "w") as null, contextlib.redirect_stderr(null):
                model = KAN(width=list(TOY[name].shape), grid=grid, k=3, seed=seed, auto_save=False, ckpt_path=tmp,
                            device="cpu")
                start = time.perf_counter()
                results = model.fit(data, opt="LBFGS", steps=steps)
                seconds = time.perf_counter() - start
            out.append({"seed": seed, "draw": draw, "rmse": float(results["test_loss"][-1]), "scale": scale,
                        "seconds": seconds, "start": None})
    return out


def _worker(args):
    seeds = [int(s) for s in args.seeds.split(",")]
    draws = [int(d) for d in args.draws.split(",")]
    if args.worker == "pykan":
        runs = run_pykan(args.toys, seeds, draws, args.grid, args.steps)
    else:
        runs = run_kanarray(args.toys, seeds, draws, args.grid, args.steps, probe=args.worker == "kanarray")
    import kanarray

    worker_output({"package": kanarray.__file__, "runs": runs})


def _alone(library, toy, args):
    """One library on one toy in a fresh process (``common.run_alone``): its list of runs."""
    argv = ["--worker", library, "--toys", toy, "--seeds", args.seeds, "--draws", args.draws, "--grid", args.grid,
            "--steps", args.steps]
    return run_alone(__file__, argv)["runs"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--toys", default="exp_sin,product,two_sines,mean_sin2_100d,j0")
    parser.add_argument("--seeds", default="0,1,2,3")
    parser.add_argument("--draws", default="0,1,2")
    parser.add_argument("--grid", type=int, default=5)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--no-pykan", action="store_true")
    parser.add_argument("--kanarray-seeded", action="store_true", help="also kanarray with start_probe=False")
    parser.add_argument("--json", default=None, metavar="PATH")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return _worker(args)
    libraries = ["kanarray"] + (["kanarray-seeded"] if args.kanarray_seeded else []) + ([] if args.no_pykan else
                                                                                          ["pykan"])
    if "pykan" in libraries:
        try:
            import kan  # noqa: F401
        except ImportError:
            print("pykan is not installed: kanarray only", file=sys.stderr)
            libraries.remove("pykan")
    print(f"# {time.strftime('%Y-%m-%d')}, G={args.grid}, {args.steps} L-BFGS steps, seeds {args.seeds}, "
          f"data draws {args.draws}; success: test RMSE < {THRESHOLD:g} std(y)")
    results = {}
    for toy in args.toys.split(","):
        for library in libraries:
            results[(toy, library)] = _alone(library, toy, args)
    print("| toy | library | successes | test RMSE / std(y) per (draw, seed) | s per fit (median) |")
    print("|---|---|---|---|---|")
    for (toy, library), runs in results.items():
        ok = sum(r["rmse"] < THRESHOLD * r["scale"] for r in runs)
        cells = " ".join(f"{r['rmse'] / r['scale']:.0e}" + ("*" if r["start"] == "second" else "") for r in runs)
        seconds = sorted(r["seconds"] for r in runs)[len(runs) // 2]
        print(f"| {toy} | {library} | {ok}/{len(runs)} | {cells} | {seconds:.2f} |", flush=True)
    print("(* : the start probe chose the second start)")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump([{"toy": t, "library": lib, "runs": runs} for (t, lib), runs in results.items()], f, indent=1)


if __name__ == "__main__":
    main()
