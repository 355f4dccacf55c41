"""``kanarray fit DATA --target COL``: train a KAN on a table from disk, report, save.

Steps: load the table (``kanarray.tabular``), split off a validation set, map every input
column's training range onto the grid range (``KAN.scale_inputs``, recorded in the model and
its ONNX export), standardize the targets (``--scale-target``, the default: train on
(y - mean) / std, then fold the map into the last layer, ``output_scaling``), fit, refine and
fit again for each ``--refine`` grid, print one line per stage, write the model (``--out``),
its ONNX graph (``--onnx``) and the loss curves (``--plot``).

Under ``mpiexec -n N`` every rank reads the table, takes its block of the training and
validation rows (``distributed.shard_rows``) and trains data-parallel; only rank 0 prints and
writes files.  An error on any rank stops every rank with the message.
"""

from __future__ import annotations

import argparse
import math
import os
import time

from .fit_formula import formula_lines, interpretation_stages
from .output_scaling import fold_output_map, standardization

__all__ = ["add_parser", "run_fit", "world_communicator"]

# set by mpiexec/mpirun of MPICH, Open MPI, Intel MPI and PMIx launchers
_LAUNCH_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS")


def world_communicator():
    """mpi4py's COMM_WORLD when this process was started by an MPI launcher with more than one
    rank, else None.  ImportError when launched that way without mpi4py."""
    if not any(v in os.environ for v in _LAUNCH_VARIABLES):
        return None
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise ImportError("started by an MPI launcher but mpi4py is missing: pip install 'kanarray[mpi]'") from exc
    return MPI.COMM_WORLD if MPI.COMM_WORLD.Get_size() > 1 else None


def _width(spec, n_features: int, n_targets: int) -> list[int]:
    if spec is None:
        return [n_features, 2 * n_features + 1, n_targets]
    width = list(spec)
    if len(width) < 2 or width[0] != n_features or width[-1] != n_targets:
        raise ValueError(f"--width must start with the number of feature columns ({n_features}) and end with the "
                         f"number of targets ({n_targets}), e.g. {n_features},{2 * n_features + 1},{n_targets}; "
                         f"got {','.join(map(str, width))}")
    return width


def _check_magnitudes(table, dtype: str, *, targets: bool = True) -> None:
    """ValueError, before any work, for columns that the fit cannot handle in ``dtype``: a feature
    whose range max - min overflows, or a target whose squared error summed over the rows does
    (it would diverge at the first step)."""
    import numpy as np

    largest = float(np.finfo(dtype).max)
    checks = ((table.features, table.x, largest / 2, "its range max - min overflows"),
              (table.targets, table.y, math.sqrt(largest / len(table.y)), "the squared error overflows"))
    for names, values, limit, why in checks if targets else checks[:1]:
        peaks = np.abs(values).max(axis=0)
        for name, peak in zip(names, peaks):
            if peak > limit:
                raise ValueError(f"{table.path}: column {name!r} reaches {peak:.3g}; beyond {limit:.3g} {why} in "
                                 f"{dtype}: rescale the column (divide it by a constant, or take a logarithm)")


DEFAULT_PRUNE_LAMB = 1e-3  # --lamb with --prune: the demo's (pykan's tutorials use 1e-3 to 1e-2)


def _settings(args, root: bool) -> dict:
    """The ``KAN.fit`` settings of the options."""
    lamb = args.lamb if args.lamb is not None else DEFAULT_PRUNE_LAMB if args.prune else 0.0
    return dict(steps=args.steps, opt=args.opt, lr=args.lr, lamb=lamb, batch_size=args.batch_size,
                grid_margin=args.grid_margin, progress="auto" if root and not args.quiet else False)


def _prepare(args, comm):
    """(model, train shard, validation shard, sizes) on this rank; raises before training."""
    import kanarray as ka

    from ._atomic import check_output_paths
    from .distributed import shard_rows
    from .fit_settings import FitSettings
    from .tabular import load_table, split_rows

    FitSettings(**_settings(args, comm is None or comm.is_root))  # a ValueError naming a bad setting, up front
    if any(g < 1 for g in args.refine or ()):
        raise ValueError(f"--refine grids must be positive, got {','.join(map(str, args.refine))}")
    if not 0 <= args.val_fraction < 1:
        raise ValueError(f"--val-fraction must be in [0, 1), got {args.val_fraction}")
    if comm is not None and (args.prune or args.symbolic):
        raise ValueError("--prune and --symbolic run in one process only, not under mpiexec: fit there, then run "
                         "them on the saved model in one process")
    if not 0 < args.r2_threshold <= 1:
        raise ValueError(f"--r2-threshold must be in (0, 1], got {args.r2_threshold}")
    if comm is None or comm.is_root:  # rank 0 alone writes
        check_output_paths({"--out": args.out, "--onnx": args.onnx, "--plot": args.plot}, {"DATA": args.data})
    if args.onnx:
        try:
            import onnx  # noqa: F401
        except ImportError:
            raise ImportError("--onnx needs the onnx package: pip install 'kanarray[onnx]'") from None
    table = load_table(args.data, args.target, args.features, dropna=args.dropna)
    size = 1 if comm is None else comm.size
    train_idx, val_idx = split_rows(table.x.shape[0], args.val_fraction, args.seed)
    if len(train_idx) < 2 * size or (len(val_idx) and len(val_idx) < size):
        raise ValueError(f"{args.data}: {table.x.shape[0]} rows are too few for {size} ranks: each rank needs at "
                         f"least 2 training rows and 1 validation row")
    _check_magnitudes(table, args.dtype, targets=not args.scale_target)
    width = _width(args.width, table.x.shape[1], table.y.shape[1])
    model = ka.KAN(width, grid=args.grid, k=args.k, seed=args.seed, dtype=args.dtype, backend=args.backend,
                   extrapolate=args.extrapolate)
    x_train, y_train = table.x[train_idx], table.y[train_idx]
    model.scale_inputs(x_train.min(axis=0), x_train.max(axis=0))
    if table.path.lower().endswith(".csv"):  # real column names (a .npy's "0", "1"... would only mislead predict)
        model.input_names, model.output_names = table.features, table.targets
    # every rank holds the whole training set here: the same map on every rank
    target_map = standardization(y_train) if args.scale_target else None
    y_all = table.y if target_map is None else (table.y - target_map[0]) / target_map[1]
    mine, mine_val = shard_rows(len(train_idx), comm), shard_rows(len(val_idx), comm)
    train = (x_train[mine], y_all[train_idx][mine])
    val = (table.x[val_idx][mine_val], y_all[val_idx][mine_val]) if len(val_idx) else None
    return model, train, val, table, (len(train_idx), len(val_idx)), target_map


def run_fit(args) -> int:
    """The ``kanarray fit`` command on parsed arguments; returns the exit status."""
    from .distributed import as_communicator

    comm = as_communicator(world_communicator())
    root = comm is None or comm.is_root
    if args.backend == "cupy" and comm is not None:
        import cupy

        cupy.cuda.Device(comm.rank % cupy.cuda.runtime.getDeviceCount()).use()
    if comm is None:
        prepared = _prepare(args, comm)
    else:
        try:  # every rank stops, rank 0 reports (its error or the failing rank's)
            prepared = comm.agreed(lambda: _prepare(args, comm))
        except Exception:
            if root:
                raise
            return 2
    model, (x, y), val, table, (n_train, n_val), target_map = prepared
    unit = 1.0 if target_map is None or len(target_map[1]) > 1 else float(target_map[1][0])
    raw = (lambda m: m) if target_map is None else (lambda m: fold_output_map(m, *target_map))
    say = print if root else (lambda *a, **k: None)
    ranks = "" if comm is None else f" on {comm.size} ranks"
    say(f"{args.data}: {n_train} training and {n_val} validation rows{ranks}; features "
        f"{', '.join(table.features)} -> {', '.join(table.targets)}")
    if table.skipped:
        say("skipped columns that are not numeric (not features): "
            + "; ".join(f"{name} ({why})" for name, why in table.skipped))
    if table.dropped_lines:
        say(f"--dropna: dropped {len(table.dropped_lines)} rows with empty cells")
    say(f"model: {model}")
    if target_map is not None:
        say("targets standardized for training (" + ", ".join(
            f"{name}: mean {shift:.4g}, std {scale:.4g}" for name, shift, scale in zip(table.targets, *target_map))
            + "); the saved model computes raw targets" + ("; RMSE in standardized units" if unit == 1.0 and
                                                           len(target_map[1]) > 1 else ", and RMSE is in their units"))
    say(f"{'stage':<10}{'grid':>6}{'steps':>7}{'train RMSE':>14}{'val RMSE':>14}{'time s':>9}")
    fit_kw = dict(_settings(args, root), validation=val, comm=comm)
    reports: list = []
    stages = [("fit", lambda m: m)] + [("refine", lambda m, g=g: m.refine(g, comm=comm)) for g in args.refine or ()]
    stages += interpretation_stages(args.r2_threshold, args.prune, args.symbolic, reports)
    curves, done = None, None
    try:
        for name, step in stages:
            model = step(model)
            start = time.perf_counter()
            history = model.fit(x, y, **(fit_kw if name in ("fit", "refine") else {**fit_kw, "lamb": 0.0}))
            elapsed = time.perf_counter() - start
            curves = history if curves is None else curves.extend(history)  # one stage per fit
            val_text = f"{history['val_loss'][-1] * unit:>14.4e}" if history["val_loss"] else f"{'-':>14}"
            train_text = f"{history['train_loss'][-1] * unit:>14.4e}" if history["train_loss"] else f"{'-':>14}"
            steps = len(history["train_loss"]) if history.interrupted else args.steps
            say(f"{name:<10}{max(model.grid):>6}{steps:>7}{train_text}{val_text}{elapsed:>9.1f}"
                + (f"  width {model.width}" if name == "prune" else ""))
            if history.interrupted:
                return _interrupted(args, raw(model), name, root, done)
            done = name
    except KeyboardInterrupt:  # outside a fit (which stops on Ctrl-C by itself): the last finished stage's model
        return _interrupted(args, raw(model), name, root, done)
    model = raw(model)  # from here on: raw targets (the formula, the checkpoint, the graph)
    for report in reports:
        say(str(report))
    status = 0
    if args.symbolic:
        try:
            for line in formula_lines(model, table.features, table.targets):
                say(line)
        except ValueError as exc:  # edges that stayed splines: no formula, but the model is kept
            say(f"no formula: {exc} (lower --r2-threshold to accept worse fits)")
            status = 1
    if root:
        if args.out:
            model.save(args.out)
            say(f"wrote {args.out}")
        if args.onnx:
            from .export import to_onnx

            to_onnx(model, args.onnx)
            say(f"wrote {args.onnx}")
        if args.plot:
            curves.plot(args.plot)
            say(f"wrote {args.plot}")
    return status


INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for a command ended by Ctrl-C


def _interrupted(args, model, stage: str, root: bool, done: str | None) -> int:
    """Ctrl-C in ``stage`` (after the stage ``done``, if any, finished): save the model trained so far
    (an interrupted fit's best parameters) to --out, say so, and return INTERRUPTED; no later stage
    runs and --onnx and --plot are not written."""
    import sys

    if root:
        after = f", after the {done} stage finished" if done else ""
        print(f"kanarray fit: interrupted (Ctrl-C) in the {stage} stage{after}", file=sys.stderr)
        if args.out:
            model.save(args.out)  # atomic: an earlier file is replaced whole or kept
            print(f"kanarray fit: saved the model trained so far to {args.out}; --onnx and --plot not written",
                  file=sys.stderr)
        else:
            print("kanarray fit: nothing saved (--out '')", file=sys.stderr)
    return INTERRUPTED


def add_parser(commands, positive_int, int_list) -> None:
    """The ``fit`` subcommand's options."""
    fit = commands.add_parser(
        "fit", help="train a KAN on a CSV/.npy/.npz table and save it (runs data-parallel under mpiexec)",
        description="Load DATA, split off a validation set, map each input column's training range onto the grid "
                    "range (recorded in the model and its ONNX export), fit, refine to each --refine grid and fit "
                    "again, print train and validation RMSE per stage, and write the model. Under mpiexec -n N the "
                    "rows are sharded across the ranks (needs kanarray[mpi]); only rank 0 prints and writes.")
    fit.add_argument("data", help="a .csv with a header row, a .npy 2-D array (columns named 0, 1, ...) or a .npz "
                                  "with arrays x and y")
    fit.add_argument("--target", default=None, help="target column name(s), comma-separated (.npz with x and y: "
                                                    "optional)")
    fit.add_argument("--features", default=None,
                     help="feature columns, comma-separated (default: all other numeric columns; the columns skipped "
                          "are listed)")
    fit.add_argument("--dropna", action="store_true",
                     help="drop the rows with an empty cell in a column used (default: refuse them, naming the lines)")
    fit.add_argument("--width", type=int_list, default=None,
                     help="layer widths from inputs to outputs, e.g. 8,16,1 (default: d, 2d+1, targets)")
    fit.add_argument("--grid", type=positive_int, default=5, help="grid intervals G (default 5)")
    fit.add_argument("--k", type=positive_int, default=3, help="spline order (default 3)")
    fit.add_argument("--steps", type=positive_int, default=100, help="steps per fit (default 100)")
    fit.add_argument("--opt", choices=["lbfgs", "adam"], default="lbfgs", help="optimizer (default lbfgs)")
    fit.add_argument("--lr", type=float, default=None, help="learning rate (default: lbfgs 1, adam 1e-2)")
    fit.add_argument("--lamb", type=float, default=None,
                     help=f"sparsification penalty of the fit and refine stages (default 0; {DEFAULT_PRUNE_LAMB:g} "
                          "with --prune)")
    fit.add_argument("--prune", action="store_true",
                     help="after the fits (with the sparsity penalty): prune the small nodes and edges, fit again")
    fit.add_argument("--symbolic", action="store_true",
                     help="then fix every edge to its best library function (auto_symbolic), fit the functions' "
                          "parameters and print the formula in the column names (status 1 if edges stay splines)")
    fit.add_argument("--r2-threshold", type=float, default=0.99,
                     help="--symbolic: the least R^2 an edge's function must reach (default 0.99)")
    fit.add_argument("--grid-margin", type=float, default=0.0,
                     help="grid updates move the end knots out by this fraction of their interval, so inputs a "
                          "little beyond the training range stay where the splines were fitted (default 0: pykan)")
    fit.add_argument("--extrapolate", choices=["spline", "linear"], default="spline",
                     help="beyond the grids: spline (default, pykan's) or linear (splines continued as lines; inputs "
                          "beyond the training range get no undetermined polynomial pieces)")
    fit.add_argument("--batch-size", type=positive_int, default=None, help="minibatch rows per rank (default: all)")
    fit.add_argument("--refine", type=int_list, default=None, help="grids to refine to, each followed by a fit, "
                                                                   "e.g. 10,20")
    fit.add_argument("--scale-target", action=argparse.BooleanOptionalAction, default=True,
                     help="train on standardized targets and fold the map into the saved model (default: on)")
    fit.add_argument("--val-fraction", type=float, default=0.2, help="share of rows held out (default 0.2)")
    fit.add_argument("--seed", type=int, default=0, help="seed of the split and the initialization (default 0)")
    fit.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    fit.add_argument("--backend", choices=["numpy", "cupy"], default="numpy",
                     help="cupy: one GPU per rank (rank modulo the devices)")
    fit.add_argument("--out", default="model.kan", help="checkpoint to write (default model.kan; '' for none)")
    fit.add_argument("--onnx", default=None, help="also export the model to this ONNX file")
    fit.add_argument("--plot", default=None, help="also write the loss curves of every stage to this PNG")
    fit.add_argument("--quiet", action="store_true",
                     help="no progress bar (there is none either when stderr is not a terminal, e.g. in a batch log)")

