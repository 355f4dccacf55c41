"""Forward and training-step time of kanarray next to pykan and efficient-kan, on the core
issue's cases, each library timed alone in a fresh process.

    python benchmarks/bench_step.py [--repeats 20] [--rounds 3] [--cases toy,mnist,fine,deep]
                                    [--no-pykan] [--no-efficient-kan] [--nonuniform]
                                    [--backend numpy|cupy] [--contraction auto|dense|sparse] [--json PATH]

A training step is forward + backward + an Adam update (lr 1e-4), full batch, MSE loss, in all
three libraries; the forward is the model's call (torch's under ``no_grad``).  pykan (PyPI
``pykan``, after ``model.speed()``) and efficient-kan (``efficient_kan.KAN(width, grid_size=G,
spline_order=3)``) are not kanarray dependencies; a peer that is not installed, or is turned
off by ``--no-pykan`` / ``--no-efficient-kan``, gets "-".

Method: for each case and each of ``--rounds`` rounds, this script runs itself once per library
in worker mode (``--worker LIB``), each worker alone in a fresh process (``common.run_alone``),
the libraries in an order rotated by one each round (``common.alternate``).  A worker builds
its library's model and data, times forward and step with ``common.interleaved_medians``
(the two take turns in short blocks, after warm-up; median of ``--repeats`` samples) and prints
them as JSON.  One library per process because NumPy's OpenBLAS threads keep spinning after a
call and starve torch's threads in the same process.  kanarray's workers keep their default
threads; the torch peers' call ``torch.set_num_threads(os.cpu_count())``.  The table gives
the median over rounds of each worker's medians (ms), and the step ratios peer / kanarray of
those.  ``--nonuniform`` jitters the knots of every model the same way, as a grid update would.

``--backend cupy``: kanarray on CuPy and the torch peers on device "cuda", each call followed by
a device synchronisation so that the host clock measures the GPU's work; by default the four
cases plus two large ones (``GPU_CASES``).  Extra columns there: the peak GPU memory of one
training step, CuPy's memory pool (a ``MemoryHook`` reading the pool's used bytes after every
allocation) and pykan's ``torch.cuda.max_memory_allocated``, both including the model and the
data; kanarray's step replayed as a CUDA graph, and pykan's step / that.  ``--contraction``
forces kanarray's kernels' dense (BLAS) or sparse (fused) contraction.  ``--json PATH`` also
writes kanarray's medians there as ``times`` (``common.write_json``; read by
compare_versions.py) and every library's figures, per round too, as ``rows``.  The cases and
the timed operations are in ``common.py``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import numpy as np
from common import (
    ALL_CASES,
    CASES,
    alternate,
    efficient_kan_ops,
    first_failure,
    fmt,
    installed,
    interleaved_medians,
    kanarray_ops,
    kanarray_root,
    median_of,
    pykan_ops,
    ratio,
    run_alone,
    torch_threads,
    worker_output,
    write_json,
)

sys.path.insert(0, kanarray_root())

LIBS = ("kanarray", "pykan", "efficient-kan")
PEER_MODULES = {"pykan": "kan", "efficient-kan": "efficient_kan"}
OPS = ("forward", "step", "graph step", "peak MiB")


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


def worker(lib, case, repeats, *, nonuniform=False, backend="numpy", contraction="auto"):
    """In a worker process: {'forward', 'step' (ms), on CuPy also 'peak MiB' and kanarray's
    'graph step'} of one library on one case."""
    got = {}
    if lib == "kanarray":
        import kanarray

        _force_contraction(backend, contraction)
        ops = kanarray_ops(case, backend=backend, nonuniform=nonuniform, graph=backend == "cupy")
        if backend == "cupy":
            got["peak MiB"] = cupy_peak_bytes(ops["step"]) / 2**20
        got["package"] = kanarray.__file__
    else:
        import torch

        torch_threads()
        torch.set_default_dtype(getattr(torch, case["dtype"]))
        device = "cuda" if backend == "cupy" else "cpu"
        make = pykan_ops if lib == "pykan" else efficient_kan_ops
        ops = make(case, nonuniform=nonuniform, device=device)
        if device == "cuda":
            got["peak MiB"] = torch_peak_bytes(ops["step"]) / 2**20
    got.update(interleaved_medians(ops, repeats))
    return got


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=20, help="samples per operation in each worker")
    parser.add_argument("--rounds", type=int, default=3, help="fresh processes per library and case")
    parser.add_argument("--cases", default=None, help=f"comma-separated, from {list(ALL_CASES)}; default: "
                        f"{list(CASES)} on numpy, all on cupy")
    parser.add_argument("--no-pykan", action="store_true", help="leave pykan out")
    parser.add_argument("--no-efficient-kan", action="store_true", help="leave efficient-kan out")
    parser.add_argument("--nonuniform", action="store_true",
                        help="jitter the knots (as after a grid update) in every library")
    parser.add_argument("--backend", default="numpy", choices=["numpy", "cupy"])
    parser.add_argument("--contraction", default="auto", choices=["auto", "dense", "sparse"],
                        help="force the kernels' contraction (numpy and cupy)")
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the medians to PATH as JSON")
    parser.add_argument("--worker", default=None, choices=LIBS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    names = (args.cases or ",".join(ALL_CASES if args.backend == "cupy" else CASES)).split(",")
    unknown = [n for n in names if n not in ALL_CASES]
    if unknown:
        parser.error(f"unknown cases {unknown}; choose from {list(ALL_CASES)}")
    if args.worker:
        if len(names) != 1:
            parser.error("--worker takes one case")
        worker_output(worker(args.worker, ALL_CASES[names[0]], args.repeats, nonuniform=args.nonuniform,
                             backend=args.backend, contraction=args.contraction))
        return

    libs = ["kanarray"]
    for peer, off in (("pykan", args.no_pykan), ("efficient-kan", args.no_efficient_kan)):
        if off:
            continue
        if installed(PEER_MODULES[peer]) and installed("torch"):
            libs.append(peer)
        else:
            print(f"{peer} is not installed here: its columns are '-'", file=sys.stderr)
    device = "CPU"
    if args.backend == "cupy":
        import cupy

        device = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.runtime.getDevice())["name"].decode()
    cupy_cols = args.backend == "cupy"
    print(f"# {time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} cores, {device}, numpy "
          f"{np.__version__}, backend {args.backend}, contraction {args.contraction}, "
          f"{'non-uniform' if args.nonuniform else 'uniform'} grids; each library alone in a fresh process, "
          f"median over {args.rounds} round(s) of each process's median of {args.repeats}")
    columns = ["case", "shape", "G", "batch", "dtype", "kanarray fwd ms", "kanarray step ms", "pykan fwd ms",
               "pykan step ms", "efficient-kan fwd ms", "efficient-kan step ms", "step pykan / kanarray",
               "step efficient-kan / kanarray"]
    if cupy_cols:
        columns += ["kanarray peak MiB", "pykan peak MiB", "kanarray graph step ms", "pykan step / graph step"]
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns), flush=True)
    script = os.path.abspath(__file__)
    times, values, rows = {}, {}, []
    for name in names:
        case = ALL_CASES[name]
        options = ["--cases", name, "--repeats", str(args.repeats), "--backend", args.backend,
                   "--contraction", args.contraction] + (["--nonuniform"] if args.nonuniform else [])
        runs = alternate(libs, args.rounds, lambda lib, r: run_alone(script, ["--worker", lib, *options]))
        got = {(lib, op): median_of(runs.get(lib, []), op) for lib in LIBS for op in OPS}
        cells = f"| {name} | {case['width']} | {case['grid']} | {case['batch']} | {case['dtype']} "
        row = {"case": name, **{f"{lib} {op}": v for (lib, op), v in got.items()},
               **{f"{lib} rounds": [{k: v for k, v in r.items() if k != "package"} for r in runs[lib]]
                  for lib in libs}}
        # one failing case (e.g. out of GPU memory) must not lose the others
        if not np.isfinite(got[("kanarray", "step")]):
            reason = first_failure(runs["kanarray"]) or "no result"
            print(cells + f"| failed: {reason.splitlines()[-1][:160]} |", flush=True)
            rows.append({**row, "failed": reason})
            continue
        ks = got[("kanarray", "step")]
        line = (cells + f"| {fmt(got[('kanarray', 'forward')])} | {fmt(ks)} "
                f"| {fmt(got[('pykan', 'forward')])} | {fmt(got[('pykan', 'step')])} "
                f"| {fmt(got[('efficient-kan', 'forward')])} | {fmt(got[('efficient-kan', 'step')])} "
                f"| {fmt(ratio(got[('pykan', 'step')], ks), '.1f', 'x')} "
                f"| {fmt(ratio(got[('efficient-kan', 'step')], ks), '.1f', 'x')} |")
        if cupy_cols:
            gs = got[("kanarray", "graph step")]
            line += (f" {fmt(got[('kanarray', 'peak MiB')], '.0f')} | {fmt(got[('pykan', 'peak MiB')], '.0f')} "
                     f"| {fmt(gs)} | {fmt(ratio(got[('pykan', 'step')], gs), '.1f', 'x')} |")
        print(line, flush=True)
        for op in ("forward", "step", "graph step"):
            if np.isfinite(got[("kanarray", op)]):
                times[f"{name} {op}"] = got[("kanarray", op)]
        if np.isfinite(got[("kanarray", "peak MiB")]):
            values[f"{name} peak MiB"] = got[("kanarray", "peak MiB")]
        rows.append(row)
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
