"""Forward and training-step time of kanarray next to pykan, on the core issue's cases.

    python benchmarks/bench_step.py [--repeats 20] [--cases toy,mnist,fine,deep] [--no-pykan]
                                    [--backend numpy|cupy] [--contraction auto|dense|sparse]

A training step is forward + backward + an Adam update, full batch, MSE loss, for both
libraries.  pykan (PyPI ``pykan``, not a kanarray dependency) is run in the same process
after ``model.speed()``, its calls interleaved with kanarray's in short blocks (see
``interleaved_medians``), so both see the same machine load; times are medians over
``--repeats`` samples after warm-up, and the ratio column is pykan / kanarray.  Prints a
markdown table.  ``--nonuniform`` jitters the knots of both models the same way, as a grid
update would.

``--backend cupy``: kanarray on CuPy and pykan on torch's CUDA device, each call followed by a
device synchronisation so that the host clock measures the GPU's work; by default the four
cases plus two large ones (``GPU_CASES``).  Two more columns give the peak GPU memory of one
training step: CuPy's memory pool (a ``MemoryHook`` reading the pool's used bytes after every
allocation) and torch's ``max_memory_allocated``, both including the model and the data.
``--contraction`` forces the CuPy kernels' dense (cuBLAS) or sparse (fused) contraction.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
import traceback

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import kanarray as ka  # noqa: E402
from kanarray.objective import evaluate  # noqa: E402
from kanarray.optim import Adam  # noqa: E402
from kanarray.regularization import Regularization  # noqa: E402

CASES = {
    "toy": dict(width=[2, 5, 1], grid=5, batch=1000, dtype="float64"),
    "mnist": dict(width=[784, 64, 10], grid=5, batch=1024, dtype="float32"),
    "fine": dict(width=[4, 16, 1], grid=100, batch=4096, dtype="float32"),
    "deep": dict(width=[16, 64, 64, 1], grid=10, batch=4096, dtype="float32"),
}
GPU_CASES = {  # the CuPy issue's large cases, too heavy for the CPU runs
    "wide": dict(width=[1000, 1000, 1], grid=5, batch=100, dtype="float32"),
    "big": dict(width=[64, 256, 256, 64], grid=100, batch=16384, dtype="float32"),
}
ALL_CASES = {**CASES, **GPU_CASES}


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


def kanarray_ops(case, backend="numpy", nonuniform=False, extrapolate="spline", regularized=False, graph=False):
    """{'forward': fn, 'step': fn} for kanarray on this case (on CuPy each call ends with a
    device synchronisation); extrapolate: ``KAN``'s.  regularized: also 'reg step', the
    sparsification-regularized objective and its gradients (lamb 0.01, the batch fixed as in
    ``fit``: the first layer through the Gram shortcut, later ones edge by edge) and Adam."""
    model = ka.KAN(case["width"], grid=case["grid"], k=3, dtype=case["dtype"], backend=backend, seed=0,
                   extrapolate=extrapolate)
    if nonuniform:
        for layer, grid in zip(model.layers, jittered_grids(case)):
            layer.grid[...] = model.xp.asarray(grid)
    x, y = (model.xp.asarray(a) for a in data(case))
    opt = Adam(model.parameters(), lr=1e-4)
    sync = _cupy_sync if backend == "cupy" else (lambda: None)

    def forward():
        model(x)
        sync()

    def step():
        _, grads = model.value_and_grad(x, y)
        opt.step(grads)
        sync()

    ops = {"forward": forward, "step": step}
    if backend == "cupy" and graph:
        from kanarray.backends.cuda_graph import GraphedEvaluation

        cache = {}
        opt.step(evaluate(model, x, y, cache=cache).grads)  # eager first, as fit does
        replay = GraphedEvaluation(lambda: evaluate(model, x, y, cache=cache), model, (x, y))

        def graph_step():
            opt.step(replay().grads)
            sync()

        ops["graph step"] = graph_step
    if regularized:
        reg, cache = Regularization(lamb=0.01), {}

        def reg_step():
            opt.step(evaluate(model, x, y, reg=reg, cache=cache).grads)
            sync()

        ops["reg step"] = reg_step
    return ops


def _cupy_sync():
    import cupy

    cupy.cuda.get_current_stream().synchronize()


def pykan_ops(case, nonuniform=False, device="cpu"):
    """{'forward': fn, 'step': fn} for pykan on this case; torch's default dtype must be the
    case's while they run.  device "cuda": each call ends with torch.cuda.synchronize()."""
    import torch
    from kan import KAN as PyKAN

    with tempfile.TemporaryDirectory() as tmp:
        # pykan rewrites the width list it is given: pass a copy
        model = PyKAN(list(case["width"]), grid=case["grid"], k=3, seed=0, auto_save=False,
                      ckpt_path=os.path.join(tmp, "ckpt"), device=device)
    model.speed()
    if nonuniform:
        for layer, grid in zip(model.act_fun, jittered_grids(case)):
            layer.grid.data = torch.from_numpy(grid).to(device)
    x, y = (torch.from_numpy(a).to(device) for a in data(case))
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def forward():
        with torch.no_grad():
            model(x)
        sync()

    def step():
        opt.zero_grad()
        loss = torch.mean((model(x) - y) ** 2)
        loss.backward()
        opt.step()
        sync()

    return {"forward": forward, "step": step}


def cupy_peak_bytes(fn):
    """Peak bytes in use in CuPy's default memory pool while fn() runs (after a warm call)."""
    import cupy

    pool = cupy.get_default_memory_pool()

    class Peak(cupy.cuda.MemoryHook):
        name = "Peak"

        def __init__(self):
            super().__init__()
            self.peak = pool.used_bytes()

        def malloc_postprocess(self, **kwargs):
            self.peak = max(self.peak, pool.used_bytes())

    fn()
    hook = Peak()
    with hook:
        fn()
    return hook.peak


def torch_peak_bytes(fn):
    """torch.cuda.max_memory_allocated over one fn() call (after a warm call)."""
    import torch

    fn()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    fn()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated()


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


def bench_case(case, repeats, *, with_pykan=True, nonuniform=False, backend="numpy"):
    """{(library, 'forward' | 'step'): median ms} (pykan NaN if skipped); on CuPy also
    {(library, 'peak MiB'): peak GPU memory of one training step}."""
    nan = float("nan")
    ours = kanarray_ops(case, backend=backend, nonuniform=nonuniform, graph=backend == "cupy")
    ops = {("kanarray", op): fn for op, fn in ours.items()}
    got = {("pykan", "forward"): nan, ("pykan", "step"): nan, ("kanarray", "peak MiB"): nan, ("pykan", "peak MiB"): nan,
           ("kanarray", "graph step"): nan}
    if backend == "cupy":
        got[("kanarray", "peak MiB")] = cupy_peak_bytes(ours["step"]) / 2**20
    if not with_pykan:
        got.update(interleaved_medians(ops, repeats))
        return got
    import torch

    previous = torch.get_default_dtype()
    torch.set_default_dtype(getattr(torch, case["dtype"]))
    try:
        theirs = pykan_ops(case, nonuniform=nonuniform, device="cuda" if backend == "cupy" else "cpu")
        if backend == "cupy":
            try:
                got[("pykan", "peak MiB")] = torch_peak_bytes(theirs["step"]) / 2**20
            except torch.cuda.OutOfMemoryError:  # pykan does not fit: time kanarray alone, pykan NaN
                theirs = {}
                torch.cuda.empty_cache()
        ops.update({("pykan", op): fn for op, fn in theirs.items()})
        got.update(interleaved_medians(ops, repeats))
    finally:
        torch.set_default_dtype(previous)
    return got


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--cases", default=None, help=f"comma-separated, from {list(ALL_CASES)}; default: "
                        f"{list(CASES)} on numpy, all on cupy")
    parser.add_argument("--no-pykan", action="store_true", help="time kanarray alone")
    parser.add_argument("--nonuniform", action="store_true",
                        help="jitter the knots (as after a grid update) in both libraries")
    parser.add_argument("--backend", default="numpy", choices=["numpy", "cupy"])
    parser.add_argument("--contraction", default="auto", choices=["auto", "dense", "sparse"],
                        help="force the kernels' contraction (numpy and cupy)")
    args = parser.parse_args(argv)
    names = (args.cases or ",".join(ALL_CASES if args.backend == "cupy" else CASES)).split(",")
    unknown = [n for n in names if n not in ALL_CASES]
    if unknown:
        parser.error(f"unknown cases {unknown}; choose from {list(ALL_CASES)}")
    import kanarray.backends as backends
    from kanarray._namespace import resolve_backend

    backends.get_kernels(resolve_backend(args.backend)).contraction = args.contraction
    device = "CPU"
    if args.backend == "cupy":
        import cupy

        device = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.runtime.getDevice())["name"].decode()
    if not args.no_pykan:
        import torch

        torch.set_num_threads(os.cpu_count() or 1)
    print(f"# {time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} cores, {device}, numpy "
          f"{np.__version__}, backend {args.backend}, contraction {args.contraction}, median of {args.repeats}, "
          f"{'non-uniform' if args.nonuniform else 'uniform'} grids")
    print("| case | shape | G | batch | dtype | kanarray fwd ms | kanarray step ms | pykan fwd ms | pykan step ms "
          "| fwd ratio | step ratio | kanarray peak MiB | pykan peak MiB | kanarray graph step ms | graph step ratio |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name in names:
        case = ALL_CASES[name]
        try:
            got = bench_case(case, args.repeats, with_pykan=not args.no_pykan, nonuniform=args.nonuniform,
                             backend=args.backend)
        except Exception as error:  # one failing case (e.g. out of GPU memory) must not lose the others
            traceback.print_exc()
            print(f"| {name} | {case['width']} | {case['grid']} | {case['batch']} | {case['dtype']} "
                  f"| failed: {type(error).__name__}: {str(error)[:120]} |", flush=True)
            continue
        kf, ks = got[("kanarray", "forward")], got[("kanarray", "step")]
        pf, ps = got[("pykan", "forward")], got[("pykan", "step")]
        print(f"| {name} | {case['width']} | {case['grid']} | {case['batch']} | {case['dtype']} | {kf:.2f} | {ks:.2f} "
              f"| {pf:.2f} | {ps:.2f} | {pf / kf:.1f}x | {ps / ks:.1f}x | {got[('kanarray', 'peak MiB')]:.0f} "
              f"| {got[('pykan', 'peak MiB')]:.0f} | {got[('kanarray', 'graph step')]:.2f} "
              f"| {ps / got[('kanarray', 'graph step')]:.1f}x |", flush=True)


if __name__ == "__main__":
    main()
