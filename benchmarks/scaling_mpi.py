"""Data-parallel training step time on 1 and N MPI ranks, and the efficiency.

    python benchmarks/scaling_mpi.py [--ranks 1,2] [--samples 131072] [--width 16,64,64,1] [--grid 10]
                                     [--steps 3] [--repeats 3] [--lamb 0] [--dtype float64] [--backend numpy]

Runs itself under ``mpiexec -n R`` for each R (the mpiexec next to this Python, from
``pip install kanarray[mpi]``), each rank with one BLAS thread.  The problem is fixed
(strong scaling): ``--samples`` rows in all, split across the ranks.  A step is one Adam
update on the full batch (one evaluation: forward, backward, the gradient all-reduce); L-BFGS
makes about 20-25 such evaluations per step.  Each rank count reports the median over
``--repeats`` fits of ``--steps`` steps of the time per step (after a warm-up fit), the
median time of one all-reduce of the gradient buffer alone (1 + number of parameters
numbers), and the efficiency T_1 / (R T_R).  Prints a markdown table.  ``--backend cupy``: each
rank on GPU rank % devices (the all-reduce through NCCL with a GPU per rank, else through MPI
via host memory), the clock read after a device synchronisation.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def _ints(text):
    return [int(v) for v in text.split(",")]


def parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ranks", type=_ints, default=[1, 2])
    parser.add_argument("--samples", type=int, default=2**17)
    parser.add_argument("--width", type=_ints, default=[16, 64, 64, 1])
    parser.add_argument("--grid", type=int, default=10)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--lamb", type=float, default=0.0)
    parser.add_argument("--dtype", default="float64")
    parser.add_argument("--backend", choices=["numpy", "cupy"], default="numpy")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def worker(args) -> None:
    from mpi4py import MPI

    import kanarray as ka
    from kanarray.distributed import Communicator, shard_rows
    from kanarray.optim import Adam

    world = MPI.COMM_WORLD

    def settle():  # the device's queued work done (NumPy: nothing queued)
        pass

    if args.backend == "cupy":
        import cupy

        cupy.cuda.Device(world.Get_rank() % cupy.cuda.runtime.getDeviceCount()).use()
        settle = cupy.cuda.get_current_stream().synchronize

    def sync():
        settle()
        world.Barrier()
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (args.samples, args.width[0]))
    y = np.sum(np.sin(np.pi * x), axis=1, keepdims=True) / np.sqrt(args.width[0])
    mine = shard_rows(args.samples, world)
    x, y = x[mine].astype(args.dtype), y[mine].astype(args.dtype)
    model = ka.KAN(args.width, grid=args.grid, seed=0, dtype=args.dtype, backend=args.backend)
    x, y = model.xp.asarray(x), model.xp.asarray(y)
    opt = Adam(model.parameters(), lr=1e-3)
    kw = dict(opt=opt, lamb=args.lamb, update_grid=False, progress=False, comm=world)
    model.fit(x, y, steps=1, **kw)  # warm-up
    per_step = []
    for _ in range(args.repeats):
        sync()
        start = time.perf_counter()
        model.fit(x, y, steps=args.steps, **kw)
        sync()
        per_step.append((time.perf_counter() - start) / args.steps)
    n_numbers = 1 + model.num_parameters()
    buffer = model.xp.ones(n_numbers, dtype=model.dtype)
    reduce_times = []
    if world.Get_size() > 1:
        comm = Communicator(world)
        for _ in range(20):
            sync()
            start = time.perf_counter()
            comm.allreduce(buffer)
            settle()
            reduce_times.append(time.perf_counter() - start)
    if world.Get_rank() == 0:
        print(json.dumps({"ranks": world.Get_size(), "step_s": statistics.median(per_step),
                          "steps_s": per_step, "allreduce_s": statistics.median(reduce_times) if reduce_times else 0.0,
                          "bytes": n_numbers * np.dtype(args.dtype).itemsize, "parameters": model.num_parameters()}))


def mpiexec() -> str:
    local = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return local if os.path.exists(local) else "mpiexec"


def main(argv=None) -> None:
    args = parse(argv)
    if args.worker:
        worker(args)
        return
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    forwarded = [a for a in (argv if argv is not None else sys.argv[1:]) if a != "--worker"]
    results = []
    for ranks in args.ranks:
        cmd = [mpiexec(), "-n", str(ranks), sys.executable, os.path.abspath(__file__), *forwarded, "--worker"]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(f"# {ranks} rank(s): {results[-1]}", file=sys.stderr)
    base = results[0]["step_s"] * results[0]["ranks"]
    machine = platform.processor() or platform.machine()
    print(f"\n{machine}, {os.cpu_count()} cores, python {platform.python_version()}; "
          f"width {args.width}, G={args.grid}, {args.samples} samples, {args.dtype}, {args.backend}, lamb {args.lamb}, "
          f"{results[0]['parameters']} parameters, gradient all-reduce {results[0]['bytes'] / 1e3:.0f} kB\n")
    print("| ranks | samples per rank | step ms (median) | steps ms (repeats) | all-reduce ms | speed-up "
          "| efficiency |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        speedup = base / r["step_s"]
        steps = ", ".join(f"{1e3 * s:.0f}" for s in r["steps_s"])
        reduce = f"{1e3 * r['allreduce_s']:.2f}" if r["ranks"] > 1 else "-"
        print(f"| {r['ranks']} | {args.samples // r['ranks']} | {1e3 * r['step_s']:.0f} | {steps} | {reduce} | "
              f"{speedup:.2f}x | {speedup / r['ranks']:.0%} |")


if __name__ == "__main__":
    main()
