"""Run under ``mpiexec -n N python tests/mpi_script.py MODE OUT [options]`` by tests/test_distributed.py.

Each rank writes OUT/rank{r}.npz (no pickle): the model's parameters and grids after MODE,
its parameters' digest, and what else the mode records.  MODE is one of:
  fit       fit on this rank's shard (options: --opt, --lamb, --steps, --batch-size, --lr, --patience, --mult)
  grid      update_grid on the shard
  refine    fit 2 steps, then refine(10) with comm
  gather    gather_sorted with a small cap: the merged columns
  badinput  rank 1 passes inputs with 3 columns instead of 2
  badsetting  rank 1 passes steps=0
  crash     rank 1's objective raises at its third evaluation (every rank records its error)
  agree     update_grid or refine (--call) where rank 1's inputs or model are bad (--case: nan, width,
            grid: a NaN in x, 3 columns, G = 7 instead of 5); every rank records its error
  callback  a fit whose optimizer (user code run on every rank) raises on rank 1 at its third step
            (--raise: interrupt, a KeyboardInterrupt; error, a RuntimeError)
  guard     a Communicator.guarded block: one all-reduce on every rank, then rank 1 raises (--raise)
            while rank 0 leaves normally
  mismatch  rank 1 starts from another seed
  patience  rank 1 passes patience=5, rank 0 patience=2 (early stopping decides which collectives run)
  ctrlc     a long fit that a SIGINT to the ranks stops (rank 0 writes OUT/started once training runs)
  quiet     fit with progress=True; records how many characters each rank wrote to stderr
"""

from __future__ import annotations

import argparse
import io
import os
import sys

import numpy as np

import kanarray as ka
from kanarray._namespace import to_numpy
from kanarray.distributed import Communicator, parameters_digest, shard_rows


def problem(n: int = 301, seed: int = 0):
    """The hello-KAN data: x (n, 2), y (n, 1), and validation (101, 2), (101, 1)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (n, 2))
    xv = rng.uniform(-1, 1, (101, 2))

    def f(a):
        return np.exp(np.sin(np.pi * a[:, :1]) + a[:, 1:] ** 2)

    return x, f(x), xv, f(xv)


def new_model(backend="numpy", mult: bool = False):
    """The hello-KAN model, or (mult) one with two multiplication nodes and trainable node affine."""
    if mult:
        return ka.KAN([2, [3, 2], 1], grid=5, seed=1, backend=backend, affine_trainable=True)
    return ka.KAN([2, 5, 1], grid=5, seed=1, backend=backend)


def fit_kwargs(opt: str, lamb: float, steps: int, batch_size):
    """fit's arguments shared by the MPI run and the serial reference: a grid update at every step."""
    return dict(steps=steps, opt=opt, lamb=lamb, progress=False, batch_size=batch_size,
                stop_grid_update_step=steps, grid_update_num=steps)


class FailingStep(ka.optim.Adam):
    """Adam whose step raises ``error`` at step number ``fail_on`` (None: never), standing for
    any user code that runs inside a fit on one rank."""

    fail_on, error, calls = None, RuntimeError, 0

    def step(self, grads):
        self.calls += 1
        if self.calls == self.fail_on:
            raise self.error(f"the optimizer's step raised at step {self.calls}")
        super().step(grads)


def recorded_error(call) -> dict:
    """call(); {} if it returned, else the error's type and message as arrays."""
    try:
        call()
    except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001 - recorded for the test to check
        return {"error": np.frombuffer(str(exc).encode(), dtype=np.uint8),
                "error_type": np.frombuffer(type(exc).__name__.encode(), dtype=np.uint8)}
    return {}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode")
    parser.add_argument("out")
    parser.add_argument("--opt", default="adam")
    parser.add_argument("--lamb", type=float, default=0.0)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--patience", type=int, default=None, help="early stopping (restore_best follows it)")
    parser.add_argument("--cap", type=int, default=40)
    parser.add_argument("--backend", default="numpy", help="cupy: one GPU per rank where there are enough")
    parser.add_argument("--call", default="update_grid", choices=("update_grid", "refine"))
    parser.add_argument("--case", default="nan", choices=("nan", "width", "grid"))
    parser.add_argument("--mult", action="store_true", help="a model with multiplication nodes")
    parser.add_argument("--raise", dest="raises", default="interrupt", choices=("interrupt", "error"))
    args = parser.parse_args()
    from mpi4py import MPI

    world = MPI.COMM_WORLD
    rank = world.Get_rank()
    x, y, xv, yv = problem()
    sl, sv = shard_rows(len(x), world), shard_rows(len(xv), world)
    if args.backend == "cupy":
        import cupy

        cupy.cuda.Device(rank % cupy.cuda.runtime.getDeviceCount()).use()
    model = new_model(args.backend, args.mult)
    record = {}
    if args.mode == "fit":
        if args.backend != "numpy":  # a model takes arrays of its own backend
            x, y, xv, yv = (model.xp.asarray(a) for a in (x, y, xv, yv))
        history = model.fit(x[sl], y[sl], validation=(xv[sv], yv[sv]), comm=world, lr=args.lr, patience=args.patience,
                            **fit_kwargs(args.opt, args.lamb, args.steps, args.batch_size))
        record = {k: np.asarray(v) for k, v in history.items() if v}
        record["best_step"] = np.asarray(history.best_step)
    elif args.mode == "grid":
        model.update_grid(x[sl], comm=world)
    elif args.mode == "refine":
        model.fit(x[sl], y[sl], comm=world, **fit_kwargs("lbfgs", 0.0, 2, None))
        model = model.refine(10, comm=world)
    elif args.mode == "gather":
        merged = Communicator(world).gather_sorted(x[sl], cap=args.cap)
        record = {"merged": merged}
    elif args.mode == "badinput":
        xs = np.concatenate([x[sl], x[sl, :1]], axis=1) if rank == 1 else x[sl]
        try:
            model.fit(xs, y[sl], steps=2, progress=False, comm=world)
        except ValueError as exc:
            record = {"error": np.frombuffer(str(exc).encode(), dtype=np.uint8)}
    elif args.mode == "badsetting":
        try:
            model.fit(x[sl], y[sl], steps=0 if rank == 1 else 2, progress=False, comm=world)
        except ValueError as exc:
            record = {"error": np.frombuffer(str(exc).encode(), dtype=np.uint8)}
    elif args.mode == "mismatch":
        model = ka.KAN([2, 5, 1], grid=5, seed=1 + rank)
        try:
            model.fit(x[sl], y[sl], steps=2, progress=False, comm=world)
        except RuntimeError as exc:
            record = {"error": np.frombuffer(str(exc).encode(), dtype=np.uint8)}
    elif args.mode == "patience":
        try:
            model.fit(x[sl], y[sl], validation=(xv[sv], yv[sv]), steps=4, patience=5 if rank == 1 else 2,
                      progress=False, comm=world)
        except RuntimeError as exc:
            record = {"error": np.frombuffer(str(exc).encode(), dtype=np.uint8)}
    elif args.mode == "ctrlc":
        import kanarray.training as training

        real = training.evaluate

        def announcing(*a, **kw):
            if rank == 0 and not os.path.exists(os.path.join(args.out, "started")):
                open(os.path.join(args.out, "started"), "w").close()
            return real(*a, **kw)

        training.evaluate = announcing
        history = model.fit(x[sl], y[sl], steps=100000, opt="adam", progress=False, comm=world)
        record = {"interrupted": np.asarray(history.interrupted), "steps": np.asarray(len(history["train_loss"]))}
    elif args.mode == "crash":
        import kanarray.training as training

        real, calls = training.evaluate, [0]

        def failing(*a, **kw):
            calls[0] += 1
            if rank == 1 and calls[0] == 3:
                raise RuntimeError("injected failure on rank 1")
            return real(*a, **kw)

        training.evaluate = failing
        record = recorded_error(lambda: model.fit(x[sl], y[sl], steps=5, opt="adam", progress=False, comm=world))
    elif args.mode == "agree":
        xs = x[sl].copy()
        if rank == 1 and args.case == "nan":
            xs[3, 1] = np.nan
        elif rank == 1 and args.case == "width":
            xs = np.concatenate([xs, xs[:, :1]], axis=1)
        elif rank == 1:
            model = ka.KAN([2, 5, 1], grid=7, seed=1)
        before = parameters_digest(model)
        call = (lambda: model.update_grid(xs, comm=world)) if args.call == "update_grid" else (
            lambda: model.refine(10, xs, comm=world))
        record = recorded_error(call)
        record["unchanged"] = np.asarray(parameters_digest(model) == before)
    elif args.mode == "callback":
        hook = FailingStep(model.parameters(), lr=1e-2)
        hook.fail_on = 3 if rank == 1 else None
        hook.error = KeyboardInterrupt if args.raises == "interrupt" else RuntimeError
        histories = []
        record = recorded_error(lambda: histories.append(model.fit(x[sl], y[sl], steps=6, opt=hook, progress=False,
                                                                   comm=world)))
        if histories:
            record.update(interrupted=np.asarray(histories[0].interrupted),
                          steps=np.asarray(len(histories[0]["train_loss"])))
    elif args.mode == "guard":
        comm = Communicator(world)
        error = KeyboardInterrupt if args.raises == "interrupt" else RuntimeError

        def block():
            with comm.guarded() as ranks:
                total = ranks.allreduce_scalar(1.0)
                if rank == 1:
                    raise error(f"raised after the block's last collective ({total:g} ranks joined it)")

        record = recorded_error(block)
    elif args.mode == "quiet":
        captured = io.StringIO()
        sys.stderr = captured
        model.fit(x[sl], y[sl], steps=3, opt="adam", progress=True, comm=world)
        sys.stderr = sys.__stderr__
        record = {"stderr_chars": np.asarray(len(captured.getvalue()))}
    else:
        raise SystemExit(f"unknown mode {args.mode}")
    arrays = {f"param/{k}": to_numpy(v) for k, v in model.parameters().items()}
    arrays.update({f"grid/{l}": to_numpy(layer.grid) for l, layer in enumerate(model.layers)})
    arrays["digest"] = np.frombuffer(parameters_digest(model), dtype=np.uint8)
    arrays.update({f"record/{k}": to_numpy(v) for k, v in record.items()})
    np.savez(os.path.join(args.out, f"rank{rank}.npz"), **arrays)


if __name__ == "__main__":
    main()
