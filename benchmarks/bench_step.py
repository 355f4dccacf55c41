"""Forward and training-step time of kanarray next to pykan, on the core issue's cases.

    python benchmarks/bench_step.py [--repeats 20] [--cases toy,mnist,fine,deep] [--no-pykan]

A training step is forward + backward + an Adam update, full batch, MSE loss, for both
libraries.  pykan (PyPI ``pykan`` on the CPU build of torch, not a kanarray dependency) is
run in the same process after ``model.speed()``, its calls interleaved with kanarray's in
short blocks (see ``interleaved_medians``), so both see the same machine load; times are
medians over ``--repeats`` samples after warm-up, and the ratio column is pykan / kanarray.
Prints a markdown table.
``--nonuniform`` jitters the knots of both models the same way, as a grid update would.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import kanarray as ka  # noqa: E402
from kanarray.optim import Adam  # noqa: E402

CASES = {
    "toy": dict(width=[2, 5, 1], grid=5, batch=1000, dtype="float64"),
    "mnist": dict(width=[784, 64, 10], grid=5, batch=1024, dtype="float32"),
    "fine": dict(width=[4, 16, 1], grid=100, batch=4096, dtype="float32"),
    "deep": dict(width=[16, 64, 64, 1], grid=10, batch=4096, dtype="float32"),
}


def data(case, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (case["batch"], case["width"][0])).astype(case["dtype"])
    y = rng.uniform(-1, 1, (case["batch"], case["width"][-1])).astype(case["dtype"])
    return x, y


def jittered_grids(case, seed=1):
    """Sorted knots moved by up to 20% of a cell: what a grid update leaves (non-uniform rows)."""
    rng = np.random.default_rng(seed)
    G, k, w = case["grid"], 3, case["width"]
    h = 2.0 / G
    base = np.linspace(-1 - k * h, 1 + k * h, G + 2 * k + 1)
    return [np.sort(base + rng.uniform(-0.2 * h, 0.2 * h, (w[l], base.size)), axis=1).astype(case["dtype"])
            for l in range(len(w) - 1)]


def kanarray_ops(case, backend="numpy", nonuniform=False):
    """{'forward': fn, 'step': fn} for kanarray on this case."""
    model = ka.KAN(case["width"], grid=case["grid"], k=3, dtype=case["dtype"], backend=backend, seed=0)
    if nonuniform:
        for layer, grid in zip(model.layers, jittered_grids(case)):
            layer.grid[...] = grid
    x, y = data(case)
    opt = Adam(model.parameters(), lr=1e-4)

    def step():
        _, grads = model.value_and_grad(x, y)
        opt.step(grads)

    return {"forward": lambda: model(x), "step": step}


def pykan_ops(case, nonuniform=False):
    """{'forward': fn, 'step': fn} for pykan on this case; torch's default dtype must be the
    case's while they run."""
    import torch
    from kan import KAN as PyKAN

    with tempfile.TemporaryDirectory() as tmp:
        # pykan rewrites the width list it is given: pass a copy
        model = PyKAN(list(case["width"]), grid=case["grid"], k=3, seed=0, auto_save=False,
                      ckpt_path=os.path.join(tmp, "ckpt"), device="cpu")
    model.speed()
    if nonuniform:
        for layer, grid in zip(model.act_fun, jittered_grids(case)):
            layer.grid.data = torch.from_numpy(grid)
    x, y = (torch.from_numpy(a) for a in data(case))
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)

    def forward():
        with torch.no_grad():
            model(x)

    def step():
        opt.zero_grad()
        loss = torch.mean((model(x) - y) ** 2)
        loss.backward()
        opt.step()

    return {"forward": forward, "step": step}


def interleaved_medians(ops: dict, repeats: int, warmup: int = 3, block: int = 3) -> dict:
    """Median ms of each callable over ``repeats`` samples.

    The operations take turns in blocks of ``block`` consecutive calls (in a rotating order),
    so that both libraries see the same machine load; the first call of each block only
    re-warms the caches after the other operations and is not timed.
    """
    for fn in ops.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in ops}
    names = list(ops)
    rounds = -(-repeats // (block - 1))
    for r in range(rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:
            ops[name]()
            for _ in range(block - 1):
                t = time.perf_counter()
                ops[name]()
                times[name].append(time.perf_counter() - t)
    return {name: 1e3 * statistics.median(ts[:repeats]) for name, ts in times.items()}


def bench_case(case, repeats, *, with_pykan=True, nonuniform=False):
    """(kanarray fwd, kanarray step, pykan fwd, pykan step) medians in ms (pykan NaN if skipped)."""
    ops = {("kanarray", op): fn for op, fn in kanarray_ops(case, nonuniform=nonuniform).items()}
    if not with_pykan:
        got = interleaved_medians(ops, repeats)
        return got[("kanarray", "forward")], got[("kanarray", "step")], float("nan"), float("nan")
    import torch

    previous = torch.get_default_dtype()
    torch.set_default_dtype(getattr(torch, case["dtype"]))
    try:
        ops.update({("pykan", op): fn for op, fn in pykan_ops(case, nonuniform=nonuniform).items()})
        got = interleaved_medians(ops, repeats)
    finally:
        torch.set_default_dtype(previous)
    return tuple(got[(lib, op)] for lib in ("kanarray", "pykan") for op in ("forward", "step"))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--no-pykan", action="store_true", help="time kanarray alone")
    parser.add_argument("--nonuniform", action="store_true",
                        help="jitter the knots (as after a grid update) in both libraries")
    args = parser.parse_args(argv)
    names = args.cases.split(",")
    unknown = [n for n in names if n not in CASES]
    if unknown:
        parser.error(f"unknown cases {unknown}; choose from {list(CASES)}")
    if not args.no_pykan:
        import torch

        torch.set_num_threads(os.cpu_count() or 1)
    print(f"# {time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} cores, numpy {np.__version__}, "
          f"median of {args.repeats}, {'non-uniform' if args.nonuniform else 'uniform'} grids")
    print("| case | shape | G | batch | dtype | kanarray fwd ms | kanarray step ms | pykan fwd ms | pykan step ms "
          "| fwd ratio | step ratio |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name in names:
        case = CASES[name]
        kf, ks, pf, ps = bench_case(case, args.repeats, with_pykan=not args.no_pykan, nonuniform=args.nonuniform)
        print(f"| {name} | {case['width']} | {case['grid']} | {case['batch']} | {case['dtype']} | {kf:.2f} | {ks:.2f} "
              f"| {pf:.2f} | {ps:.2f} | {pf / kf:.1f}x | {ps / ks:.1f}x |", flush=True)


if __name__ == "__main__":
    main()
