"""How far a 2-rank data-parallel fit is from the 1-process full-batch fit of the same data.

    python benchmarks/mpi_agreement.py [--ranks 2] [--cases adam:0:50,lbfgs:0:1,...]

Runs itself under ``mpiexec -n RANKS``; every case ``opt:lamb:steps`` fits the hello-KAN
problem ([2, 5, 1], G = 5, 301 samples, a grid update at every step, validation) on the
ranks' shards and, on rank 0, the same fit on all the data in one process.  Prints the
largest parameter and knot differences and both final training RMSEs, as a markdown table.
The two runs differ only in how the sums over samples are split (halves added vs one pass),
so the differences measure how the optimizer amplifies rounding.  The control column is the
same measure between two 1-process fits whose rows come in different orders.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

CASES = ("adam:0:50,adam:0.001:50,lbfgs:0:1,lbfgs:0:2,lbfgs:0:3,lbfgs:0.001:2,lbfgs:0.001:3,lbfgs:0.001:4,lbfgs:0:5,"
         "lbfgs:0:20")


def worker(cases) -> None:
    from mpi4py import MPI

    import kanarray as ka
    from kanarray.distributed import shard_rows

    world = MPI.COMM_WORLD
    rng = np.random.default_rng(0)
    x, xv = rng.uniform(-1, 1, (301, 2)), rng.uniform(-1, 1, (101, 2))

    def f(a):
        return np.exp(np.sin(np.pi * a[:, :1]) + a[:, 1:] ** 2)

    y, yv = f(x), f(xv)

    def run(comm, opt, lamb, steps, order=slice(None)):
        model = ka.KAN([2, 5, 1], grid=5, seed=1)
        rows, val_rows = shard_rows(len(x), comm), shard_rows(len(xv), comm)
        history = model.fit(x[order][rows], y[order][rows], steps=steps, opt=opt, lamb=lamb, progress=False, comm=comm,
                            validation=(xv[val_rows], yv[val_rows]), stop_grid_update_step=steps,
                            grid_update_num=steps)
        return model, history

    lines = []
    for case in cases:
        opt, lamb, steps = case.split(":")
        lamb, steps = float(lamb), int(steps)
        parallel, hp = run(world, opt, lamb, steps)
        if world.Get_rank() == 0:
            serial, hs = run(None, opt, lamb, steps)
            dp = max(float(np.max(np.abs(serial.parameters()[k] - p))) for k, p in parallel.parameters().items())
            dg = max(float(np.max(np.abs(a.grid - b.grid))) for a, b in zip(serial.layers, parallel.layers))
            shuffled, _ = run(None, opt, lamb, steps, np.random.default_rng(5).permutation(len(x)))
            dc = max(float(np.max(np.abs(serial.parameters()[k] - p))) for k, p in shuffled.parameters().items())
            lines.append(f"| {opt} | {lamb:g} | {steps} | {dp:.1e} | {dg:.1e} | {hs['train_loss'][-1]:.10f} | "
                         f"{hp['train_loss'][-1]:.10f} | {dc:.1e} |")
    if world.Get_rank() == 0:
        print(f"| opt | lamb | steps | max param diff | max knot diff | train RMSE, 1 process | train RMSE, "
              f"{world.Get_size()} ranks | control: 1 process, rows reordered, max param diff |")
        print("|---|---|---|---|---|---|---|---|")
        print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--cases", default=CASES)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    cases = args.cases.split(",")
    if args.worker:
        worker(cases)
        return
    local = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    cmd = [local if os.path.exists(local) else "mpiexec", "-n", str(args.ranks), sys.executable,
           os.path.abspath(__file__), "--cases", args.cases, "--worker"]
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", KANARRAY_NUMBA="0")
    subprocess.run(cmd, check=True, env=env)


if __name__ == "__main__":
    main()
