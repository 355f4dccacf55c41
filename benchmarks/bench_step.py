"""Forward and training-step time of kanarray next to pykan, on the core issue's cases.

    python benchmarks/bench_step.py [--repeats 20] [--cases toy,mnist,fine,deep] [--no-pykan]
                                    [--backend numpy|cupy] [--contraction auto|dense|sparse] [--json PATH]

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
``--json PATH`` also writes the medians there (``common.write_json``; read by compare_versions.py).
The cases and the timed operations are in ``common.py``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import traceback

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from common import ALL_CASES, CASES, interleaved_medians, kanarray_ops, pykan_ops, write_json  # noqa: E402


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
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the medians to PATH as JSON")
    args = parser.parse_args(argv)
    names = (args.cases or ",".join(ALL_CASES if args.backend == "cupy" else CASES)).split(",")
    unknown = [n for n in names if n not in ALL_CASES]
    if unknown:
        parser.error(f"unknown cases {unknown}; choose from {list(ALL_CASES)}")
    _force_contraction(args.backend, args.contraction)
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
    times, values, rows = {}, {}, []
    for name in names:
        case = ALL_CASES[name]
        try:
            got = bench_case(case, args.repeats, with_pykan=not args.no_pykan, nonuniform=args.nonuniform,
                             backend=args.backend)
        except Exception as error:  # one failing case (e.g. out of GPU memory) must not lose the others
            traceback.print_exc()
            print(f"| {name} | {case['width']} | {case['grid']} | {case['batch']} | {case['dtype']} "
                  f"| failed: {type(error).__name__}: {str(error)[:120]} |", flush=True)
            rows.append({"case": name, "failed": f"{type(error).__name__}: {error}"})
            continue
        kf, ks = got[("kanarray", "forward")], got[("kanarray", "step")]
        pf, ps = got[("pykan", "forward")], got[("pykan", "step")]
        print(f"| {name} | {case['width']} | {case['grid']} | {case['batch']} | {case['dtype']} | {kf:.2f} | {ks:.2f} "
              f"| {pf:.2f} | {ps:.2f} | {pf / kf:.1f}x | {ps / ks:.1f}x | {got[('kanarray', 'peak MiB')]:.0f} "
              f"| {got[('pykan', 'peak MiB')]:.0f} | {got[('kanarray', 'graph step')]:.2f} "
              f"| {ps / got[('kanarray', 'graph step')]:.1f}x |", flush=True)
        for op in ("forward", "step", "graph step"):
            if np.isfinite(got[("kanarray", op)]):
                times[f"{name} {op}"] = got[("kanarray", op)]
        if np.isfinite(got[("kanarray", "peak MiB")]):
            values[f"{name} peak MiB"] = got[("kanarray", "peak MiB")]
        rows.append({"case": name, **{f"{lib} {op}": v for (lib, op), v in got.items()}})
    write_json(args.json, "bench_step", times, values=values, rows=rows)


def _force_contraction(backend, mode):
    """Set the backend's kernels to the contraction ``mode`` ('auto' is their default)."""
    try:
        import kanarray.backends as backends
        from kanarray._namespace import resolve_backend
    except ImportError:  # a kanarray without these internals (compare_versions.py may time another checkout)
        if mode != "auto":
            raise
        return
    backends.get_kernels(resolve_backend(backend)).contraction = mode


if __name__ == "__main__":
    main()
