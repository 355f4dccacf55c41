"""What the ranks' agreement and guard cost: per fit step, per update_grid and per refine.

    python benchmarks/mpi_guard_cost.py [--ranks 2] [--repeats 7] [--source DIR] [--small]

Runs itself under ``mpiexec -n RANKS``.  Measures, on the hello-KAN problem ([2, 5, 1], G = 5,
301 samples in all: a step is mostly fixed cost, where waiting in the collectives weighs most)
and on [16, 64, 64, 1], G = 10, 8,192 samples: the time per Adam step of a full-batch fit
without grid updates (every collective of the step waited for while watching for ranks that
leave), the time of ``update_grid(x, comm=comm)`` and of ``refine(10, x, comm=comm)`` (their
agreement, one all-gather, and their guard included), and the guard alone (a block without
collectives: the duplicate communicator, the notices and the closing all-gather).  Medians over
``--repeats`` runs after a warm-up.  ``--source`` imports kanarray from another checkout (e.g.
the commit before the guard) to compare; ``--small``: the hello-KAN problem only.  Prints a
markdown table from rank 0.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

import numpy as np


def _timed(fn, repeats: int, barrier) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        barrier()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


PROBLEMS = (([2, 5, 1], 5, 301, 200), ([16, 64, 64, 1], 10, 8192, 10))  # width, G, samples, steps


def _problem(world, width, grid, samples, steps, repeats) -> tuple:
    """(seconds per Adam step, per update_grid, per refine(10)) on this problem."""
    import kanarray as ka
    from kanarray.distributed import shard_rows

    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (samples, width[0]))
    y = np.sin(np.pi * x[:, :1]) + x[:, -1:] ** 2
    mine = shard_rows(samples, world)
    xs, ys = x[mine], y[mine]

    def fit():
        model = ka.KAN(width, grid=grid, seed=1)
        model.fit(xs, ys, steps=steps, opt="adam", update_grid=False, progress=False, comm=world)

    step = _timed(fit, repeats, world.Barrier) / steps
    model = ka.KAN(width, grid=grid, seed=1)
    update = _timed(lambda: model.update_grid(xs, comm=world), repeats, world.Barrier)
    refine = _timed(lambda: model.refine(10, xs, comm=world), repeats, world.Barrier)
    return step, update, refine


def worker(repeats: int, problems) -> None:
    from mpi4py import MPI

    from kanarray.distributed import as_communicator

    world = MPI.COMM_WORLD
    comm = as_communicator(world)
    rows = [(f"{width} G={grid}, {samples} samples", *_problem(world, width, grid, samples, steps, repeats))
            for width, grid, samples, steps in problems]
    guard = None
    if hasattr(comm, "guarded"):
        def block():
            with comm.guarded():
                pass

        guard = _timed(block, 50, world.Barrier)
    if world.Get_rank() == 0:
        print(f"| problem ({world.Get_size()} ranks) | Adam step | update_grid | refine(10) |")
        print("|---|---|---|---|")
        for name, step, update, refine in rows:
            print(f"| {name} | {step * 1e3:.3f} ms | {update * 1e3:.2f} ms | {refine * 1e3:.2f} ms |")
        print(f"\nguard alone (a block without collectives): {'-' if guard is None else f'{guard * 1e6:.0f} us'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--source", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."),
                        help="the checkout whose kanarray is measured")
    parser.add_argument("--small", action="store_true", help="the hello-KAN problem only")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        sys.path.insert(0, os.path.abspath(args.source))
        worker(args.repeats, PROBLEMS[:1] if args.small else PROBLEMS)
        return
    local = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    cmd = [local if os.path.exists(local) else "mpiexec", "-n", str(args.ranks), sys.executable,
           os.path.abspath(__file__), "--repeats", str(args.repeats), "--source", args.source, "--worker"]
    if args.small:
        cmd.append("--small")
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", KANARRAY_NUMBA="0")
    subprocess.run(cmd, check=True, env=env)


if __name__ == "__main__":
    main()
