"""``KAN.fit``: the training loop (pykan's ``fit`` semantics) with grid updates, validation,
minibatches, a progress bar, and recovery from divergence or Ctrl-C."""

from __future__ import annotations

import contextlib
import functools
import math
import sys
import time
import warnings
from dataclasses import dataclass

import numpy as np

from . import recovery, resources, start_probe
from ._namespace import to_numpy
from .distributed import as_communicator, parameters_digest
from .early_stopping import BestValidation
from .fit_settings import OPTIMIZERS, FitSettings, trainable_parameters
from .grids import adapt_grids
from .history import History
from .losses import accuracy
from .objective import Evaluation, check_targets, evaluate
from .optim import LBFGS, NonFiniteError, Optimizer
from .prediction import task_of_loss
from .recovery import GROWTH_FACTOR, GROWTH_STEPS, TrainingDiverged

__all__ = ["History", "TrainingDiverged", "fit", "trainable_parameters"]


def _make_optimizer(model, settings: FitSettings):
    params = trainable_parameters(model, settings.frozen)
    opt = settings.opt
    if isinstance(opt, Optimizer):
        opt.check_bound(params)
        return opt
    lr = settings.lr_or_default
    if opt == "lbfgs":  # pykan's settings
        return LBFGS(params, lr=lr, history_size=10, max_iter=20, tolerance_grad=1e-32, tolerance_change=1e-32,
                     tolerance_ys=1e-32)
    return OPTIMIZERS[opt](params, lr=lr)


def _batches(n: int, batch_size, rng):
    """Endless stream of index arrays (None = full batch): shuffled epochs."""
    if batch_size is None:
        while True:
            yield None
    while True:
        perm = rng.permutation(n)
        for start in range(0, n - batch_size + 1, batch_size):
            yield perm[start : start + batch_size]


@dataclass
class _Setup:
    """fit's inputs validated: the data (x (N, width[0]) as the first layer sees it, y, validation
    pair or None; or a physics problem), the settings, the optimizer and the shuffling generator; ``totals`` (train
    batch, validation samples over all ranks) and ``baseline`` (``recovery.baseline_loss``) are
    filled in afterwards with comm."""

    x: object
    y: object
    n: int
    settings: FitSettings
    validation: tuple | None
    optimizer: Optimizer
    rng: np.random.Generator
    totals: tuple | None = None
    baseline: float | None = None
    problem: object = None  # a ``kanarray.pde.Problem`` (x: its collocation points, y: None), or None


def fit(model, x, y, settings: FitSettings | None = None, *, validation=None, comm=None, **options) -> History:
    """See ``KAN.fit``."""
    comm = as_communicator(comm)
    if getattr(x, "is_physics_problem", False):
        if comm is not None:
            raise ValueError("fit(problem) runs on one process: physics-informed problems do not take comm yet")
        setup = _setup_problem(model, x, settings, options, validation)
        show = _interactive() if setup.settings.progress == "auto" else setup.settings.progress
        history = _train(model, setup, progress=show, comm=None)
        model.task = "regression"
        return history
    # ---- validate everything before anything changes (the settings too: a rank refusing them
    # must not leave the others waiting); with several ranks, all agree first
    prepare = functools.partial(_setup, model, x, y, settings, options, validation, comm)
    if comm is None:
        setup = prepare()
    else:
        setup = comm.agreed(prepare)
        # ranks that disagree on the settings or start from different parameters would run
        # different collectives (a hang) or drift apart: refuse that on every rank
        comm.check_same(_settings_digest(model, setup), "the fit settings or the initial parameters")
        setup.totals = comm.agreed(lambda: _global_sizes(comm, setup, model))
    probe = start_probe.applies(model, setup.settings)
    if comm is not None:  # a rank whose model was loaded, not drawn, would not probe: all or none
        probe = bool(comm.allreduce_scalar(float(probe), op="min"))
    # on copies, after every check: the model changes only if the second start wins
    probed = start_probe.choose_start(model, x, y, setup.settings, comm) if probe else None
    progress = setup.settings.progress
    show = (comm is None or comm.is_root) and (_interactive() if progress == "auto" else progress)
    # a rank failing or stopping early in training stops every rank (the others would wait in a
    # collective); the objective is global, so every rank diverges at the same step
    with contextlib.nullcontext() if comm is None else comm.guarded(raised_together=(TrainingDiverged,)) as ranks:
        history = _train(model, setup, progress=show, comm=ranks)
    history.start_probe = probed
    if comm is not None:
        comm.check_same(parameters_digest(model), "the parameters after fit")
    model.task = task_of_loss(setup.settings.loss)  # what predict / score read (``kanarray.prediction``)
    return history


def _setup(model, x, y, settings, options: dict, validation, comm) -> _Setup:
    """The settings (``FitSettings.of(settings, **options)``, which check themselves) and the
    data checked against the model."""
    settings = FitSettings.of(settings, **options)
    settings.check_validation(validation)
    x = model.prepare_inputs(x)
    n = x.shape[0]
    y = check_targets(model, y, n, settings.loss)
    recovery.check_magnitude(model, x, "x", settings.loss, y)
    batch_size = settings.batch_size
    if batch_size is not None and batch_size > n:
        where = "" if comm is None else f" on rank {comm.rank} (batch_size is per rank)"
        raise ValueError(f"batch_size must be at most the number of samples ({n}){where}, got {batch_size}")
    if comm is None:
        settings.regularization.check_batch(batch_size or n)
    _check_memory(model, batch_size or n, settings)
    if validation is not None:
        x_val, y_val = _validation_pair(validation)
        x_val = model.prepare_inputs(x_val)
        y_val = check_targets(model, y_val, x_val.shape[0], settings.loss)
        recovery.check_magnitude(model, x_val, "x_val", settings.loss, y_val)
        validation = (x_val, y_val)
    optimizer = _make_optimizer(model, settings)
    if settings.update_grid and any(name.endswith(".coef") and name not in optimizer.params
                                    for name in model.parameters()):
        raise ValueError("frozen coefficients cannot stay fixed while the grid updates (it refits them); "
                         "pass update_grid=False with frozen coef")
    seed = model.seed if settings.seed is None else settings.seed
    # each rank shuffles its own shard
    rng = np.random.default_rng(seed if comm is None else [seed, comm.rank])
    setup = _Setup(x=x, y=y, n=n, settings=settings, validation=validation, optimizer=optimizer, rng=rng)
    if comm is None:
        setup.baseline = recovery.baseline_loss(model, y, settings.loss)
    return setup


def _setup_problem(model, problem, settings, options: dict, validation) -> _Setup:
    """``_setup`` for a physics problem: its collocation points are the grid updates' samples and the
    fit's ``fit_inputs``; a validation pair (x_val, u_val) compares with a known solution (RMSE)."""
    settings = FitSettings.of(settings, **options)
    settings.check_validation(validation)
    for name, bad in (("batch_size", settings.batch_size is not None), ("lamb", settings.regularization.active),
                      ("loss", settings.loss != "mse")):
        if bad:
            raise ValueError(f"fit(problem) takes no {name}: the problem's terms define the loss over all their points")
    clash = sorted(set(problem.term_names) & set(_RESERVED))
    if clash:
        raise ValueError(f"term names {clash} clash with the history's own keys {list(_RESERVED)}: rename the terms")
    problem.check_model(model)
    x = model.prepare_inputs(problem.points())
    recovery.check_magnitude(model, x, "the problem's points", "pde", None)
    if validation is not None:
        x_val, y_val = _validation_pair(validation)
        x_val = model.prepare_inputs(x_val)
        validation = (x_val, check_targets(model, y_val, x_val.shape[0], "mse"))
    optimizer = _make_optimizer(model, settings)
    if settings.update_grid and any(name.endswith(".coef") and name not in optimizer.params
                                    for name in model.parameters()):
        raise ValueError("frozen coefficients cannot stay fixed while the grid updates (it refits them); "
                         "pass update_grid=False with frozen coef")
    rng = np.random.default_rng(model.seed if settings.seed is None else settings.seed)
    return _Setup(x=x, y=None, n=x.shape[0], settings=settings, validation=validation, optimizer=optimizer, rng=rng,
                  baseline=0.0, problem=problem)


_RESERVED = ("train_loss", "val_loss", "reg", "val_acc", *History.ALIASES)


def _validation_pair(validation):
    try:
        x_val, y_val = validation
    except (TypeError, ValueError):
        raise ValueError("validation must be a pair (x_val, y_val)") from None
    return x_val, y_val


def _objective(model, setup, global_):
    """The evaluation of one step: ``evaluate`` on a batch, or the physics problem's loss (which
    ignores the batch: its terms hold their points).  (xb, yb, cache) -> ``Evaluation``."""
    settings = setup.settings
    if setup.problem is None:
        return lambda xb, yb, cache: evaluate(model, xb, yb, loss=settings.loss, reg=settings.regularization,
                                              cache=cache, **global_)

    def physics(xb, yb, cache):
        ev = setup.problem.evaluate(model)
        return Evaluation(ev.objective, ev.objective, None, None, ev.grads, tuple(ev.terms))

    return physics


def _check_memory(model, batch: int, settings: FitSettings) -> None:
    """Refuse (``resources.MemoryLimitError``) a fit whose steps on batches of ``batch`` samples, or
    whose grid updates on them, would need more memory than the cap."""
    # fit's regularized steps take the first layer's spread from a Gram matrix (a cache in evaluate)
    resources.check_forward(model.layers, batch, training=True,
                            per_edge="hidden" if settings.regularization.active else False)
    if settings.update_grid:
        resources.check(f"fit's grid update on batches of {batch} samples",
                        resources.refit_bytes(resources.layer_shapes(model.layers), model.grid, batch))


def _settings_digest(model, setup: _Setup) -> bytes:
    """What every rank of a distributed fit must share: the settings that decide which
    collectives run, and the model's parameters (``distributed.parameters_digest``)."""
    import hashlib

    opt = setup.optimizer
    text = repr((setup.settings.collective_key(), type(opt).__name__, sorted(opt.hyper().items()), sorted(opt.params),
                 setup.validation is None, model.width, model.grid, model.k, model.backend))
    return hashlib.sha256(text.encode() + parameters_digest(model)).digest()


def _global_sizes(comm, setup, model) -> tuple:
    """(samples in a training batch, validation samples), summed over the ranks; sets
    ``setup.baseline`` (over the ranks too)."""
    batch = comm.allreduce_scalar(setup.settings.batch_size or setup.n)
    setup.settings.regularization.check_batch(int(batch))
    n_val = None if setup.validation is None else int(comm.allreduce_scalar(setup.validation[0].shape[0]))
    setup.baseline = recovery.baseline_loss(model, setup.y, setup.settings.loss, comm)
    return int(batch), n_val


def _train(model, setup, *, progress: bool, comm) -> History:
    settings = setup.settings
    x, y, optimizer, validation = setup.x, setup.y, setup.optimizer, setup.validation
    loss, reg, steps = settings.loss, settings.regularization, settings.steps
    update_grid, stop_grid_update_step = settings.update_grid, settings.stop_grid_update_step
    n_batch, n_val = setup.totals if comm is not None else (None, None)
    xp = model.xp
    terms = [] if setup.problem is None else setup.problem.term_names
    kind = loss if setup.problem is None else "pde"  # what train_loss is: RMSE (mse), cross-entropy, the physics loss
    keys = ["train_loss", "val_loss", "reg"] + (["val_acc"] if loss == "cross_entropy" else []) + terms
    history = History(keys)
    history.optimizer, history.loss = optimizer, kind
    grid_every = max(1, stop_grid_update_step // settings.grid_update_num)
    batches = _batches(setup.n, settings.batch_size, setup.rng)
    good = recovery.Snapshot(model)  # the last parameters with a finite objective within the growth bound
    good.take()
    growth = recovery.Growth(setup.baseline)
    # the best validation step; its snapshot is taken where ``good``'s is: at the evaluated parameters
    best = BestValidation(model, patience=settings.patience, restore=settings.restore_best)
    step = 0

    def diverged(what: str, at_start: bool = False) -> TrainingDiverged:  # after good.restore()
        scale = recovery.data_scale(xp, x, y, kind)
        text = recovery.diverged_message(what, step, optimizer, reg, good, scale, at_start)
        return TrainingDiverged(text, history)

    bar = _progress(steps) if progress else None
    basis_cache: dict = {}
    val_cache: dict = {}  # the validation inputs' first-layer bases, until the next grid update
    global_ = {"comm": comm, "n_total": n_batch}
    # non-finite values are handled below (restore and raise); NumPy need not warn about them
    errstate = np.errstate(over="ignore", invalid="ignore", divide="ignore")
    errstate.__enter__()
    ctrl_c = _DeferredInterrupt() if comm is not None else None
    # recorded: the plain objective (regularization and linear continuation use cuBLAS calls
    # that have no stand-in while a graph records); one rank (MPI calls are the host's)
    graph = (comm is None and not isinstance(optimizer, LBFGS) and not reg.active and setup.problem is None
             and all(layer.extrapolate == "spline" for layer in model.layers))
    objective_of = _objective(model, setup, global_)
    graphs = _Evaluations(model, objective_of, graph=graph)
    try:
        for step in range(steps):
            idx = next(batches)
            if idx is None:
                xb, yb = x, y
            else:
                basis_cache.clear()
                ids = xp.asarray(idx, device=getattr(x, "device", None))
                xb, yb = graphs.batch(xp.take(x, ids, axis=0), xp.take(y, ids, axis=0))
            if update_grid and step % grid_every == 0 and step < stop_grid_update_step:
                # the optimizer keeps its state, as in pykan
                adapt_grids(model, xb, grid_eps=settings.grid_eps, grid_margin=settings.grid_margin, comm=comm)
                basis_cache.clear()
                val_cache.clear()
                graphs.forget()
            if isinstance(optimizer, LBFGS):
                parts = {}

                def closure():
                    ev = objective_of(xb, yb, basis_cache)
                    parts[id(ev.objective)] = ev
                    return ev.objective, ev.grads

                ev = parts[id(optimizer.step(closure))]  # the evaluation at the point the step ended on
                values = _scalars(model, ev, validation, loss, val_cache, comm, n_val)
            else:
                ev = graphs.evaluate(xb, yb, basis_cache)
                # checked before the update uses them
                values = _scalars(model, ev, validation, loss, val_cache, comm, n_val)
            # values: loss, reg and validation figures at the parameters ev was computed at, in one
            # host transfer per step
            if not all(math.isfinite(v) for v in values[:2]):
                good.restore()
                # first-order steps evaluate before they update: at step 0 that is the starting point
                raise diverged("the objective became NaN or infinite",
                               at_start=good.step is None and not isinstance(optimizer, LBFGS))
            objective = values[0] + reg.lamb * values[1]
            if growth.within(objective):
                good.take(step, objective)
            elif growth.diverged:
                good.restore()
                what = (f"the objective grew without bound: {objective:.3g} at step {step}, above {GROWTH_FACTOR:g} "
                        f"times its reference {growth.reference:.3g} (the larger of its first value and the loss of "
                        f"predicting zeros) for {GROWTH_STEPS} consecutive steps")
                raise diverged(what)
            stop = False
            if validation is not None:
                val = math.sqrt(values[2]) if loss == "mse" else values[2]
                stop = best.record(step, val, objective)
                history.best_step, history.best_val_loss = best.step, best.loss
                if comm is not None and settings.patience is not None:
                    # the validation loss is global, so ranks agree; the max makes sure of it
                    stop = bool(comm.allreduce_scalar(float(stop), op="max"))
            if not isinstance(optimizer, LBFGS):
                optimizer.step(ev.grads)
            train = math.sqrt(values[0]) if kind == "mse" else values[0]
            history["train_loss"].append(train)
            history["reg"].append(values[1])
            for name, value in zip(terms, values[len(values) - len(terms):]):
                history[name].append(value)
            if validation is not None:
                history["val_loss"].append(val)
                if loss == "cross_entropy":
                    history["val_acc"].append(values[3])
            if bar is not None:
                val = history["val_loss"][-1] if validation is not None else None
                bar.set_postfix_str(_postfix(train, val, values[1] if reg.lamb > 0 else None,
                                             dict(zip(terms, values[len(values) - len(terms):]))), refresh=False)
                bar.update(1)
            if ctrl_c is not None and comm.allreduce_scalar(ctrl_c.pressed, op="max"):
                history.interrupted = True  # every rank stops after the same step
                break
            if stop:
                history.stopped_early = True
                break
        if not recovery.all_finite(optimizer.params, xp):  # the last update is evaluated by no further step
            good.restore()
            raise diverged(f"the update of step {step} made parameters NaN or infinite")
        best.restore()
    except KeyboardInterrupt:
        good.restore()
        best.restore()
        history.interrupted = True
    except TrainingDiverged:
        raise  # restored above
    except NonFiniteError as exc:  # LBFGS.step, before it changed anything; the same on every rank
        good.restore()
        raise diverged(f"the optimizer could not take a step ({exc})", at_start=good.step is None) from exc
    except BaseException as exc:
        # anything else (a bug, memory, a failed rank): the model must not keep a trial point.
        # Local only, so a distributed fit stays collective-safe: fit ends every rank after this.
        recovery.restore_after(good, exc, step)
        raise
    finally:
        errstate.__exit__(None, None, None)
        if ctrl_c is not None:
            ctrl_c.release()
        if bar is not None:
            if history.interrupted:
                bar.set_description_str(f"fit interrupted at step {len(history['train_loss'])}", refresh=False)
            bar.close()
    model.fit_inputs = x
    return history


def _graph_recorder(model):
    """The class that records an evaluation as a graph for this model (``GraphedEvaluation`` on
    CuPy unless ``kanarray.config`` switches graphs off), or None: evaluate eagerly."""
    if model.backend != "cupy":
        return None
    from .backends.cuda_graph import GraphedEvaluation, graphs_enabled

    return GraphedEvaluation if graphs_enabled() else None


def _replay_pays(replay_seconds: float, eager_seconds: float) -> bool:
    """Whether a fit keeps its CUDA graph, from one timed replay and one eager evaluation."""
    return replay_seconds < eager_seconds


class _Evaluations:
    """``evaluate`` for ``_train``'s first-order steps; on CuPy, replayed as a CUDA graph.

    The first evaluation after a grid update (or of a new batch shape) runs eagerly, which also
    fills ``evaluate``'s cache; the next one is recorded (``backends.cuda_graph``) and replays
    from then on.  Minibatches are copied into the recorded batch arrays.  If recording fails,
    fit warns once and goes on eagerly.  ``config.current().cuda_graphs`` (KANARRAY_CUDA_GRAPHS) turns them off.

    Graphs pay where launches cost more than the kernels (small models, moderate batches);
    with a large batch cuBLAS beats the kernel that stands in for it in a graph.  So the step
    that records also times one eager evaluation and the first replay (the same evaluation,
    each followed by a device synchronisation) and keeps the graph only if the replay was
    faster (``_replay_pays``); otherwise the fit goes on eagerly."""

    def __init__(self, model, objective, *, graph):
        self.model, self.objective = model, objective
        self.graphed = None
        self.warm = False  # an eager evaluation ran since the last grid update
        self.inputs = None  # the recorded minibatch arrays
        self.recorder = _graph_recorder(model) if graph else None
        self.on = self.recorder is not None

    def forget(self):
        """The model's arrays changed (grid update): record again."""
        self.graphed = None
        self.warm = False

    def batch(self, xb, yb):
        """A minibatch: where graphs are on, copied into the recorded batch arrays."""
        if not self.on:
            return xb, yb
        if self.inputs is None or self.inputs[0].shape != xb.shape or self.inputs[1].shape != yb.shape:
            self.inputs = (xb, yb)
            self.forget()
        else:
            self.inputs[0][...] = xb
            self.inputs[1][...] = yb
        return self.inputs

    def evaluate(self, xb, yb, cache):
        run = lambda: self.objective(xb, yb, cache)  # noqa: E731
        if not self.on:
            return run()
        if self.graphed is not None and self.graphed.matches(self.model, (xb, yb)):
            return self.graphed()
        if not self.warm:  # compiles kernels, fills the cache and per-grid state
            self.warm = True
            return run()
        eager, eager_s = self._timed(run)
        try:
            self.graphed = self.recorder(run, self.model, (xb, yb))
        except Exception as error:  # e.g. an operation CUDA cannot record: go on eagerly
            warnings.warn(f"fit: recording the evaluation as a CUDA graph failed ({type(error).__name__}: "
                          f"{error}); continuing without graphs", RuntimeWarning, stacklevel=4)
            self.on = False
            return eager
        replayed, replay_s = self._timed(self.graphed)
        if not _replay_pays(replay_s, eager_s):
            self.on, self.graphed = False, None
            return eager
        return replayed

    def _timed(self, fn):
        """(fn(), seconds until the device has finished it)."""
        self.recorder.synchronize()
        start = time.perf_counter()
        out = fn()
        self.recorder.synchronize()
        return out, time.perf_counter() - start


class _DeferredInterrupt:
    """Ctrl-C during a distributed fit: remembered until the end of the step, where the ranks
    agree to stop together (a rank leaving on its own would leave the others waiting in a
    collective).  Off the main thread, Ctrl-C is left as it is."""

    def __init__(self):
        import signal

        self.pressed = 0.0
        self._signal = signal
        try:
            self._previous = signal.signal(signal.SIGINT, self._press)
        except ValueError:  # not the main thread
            self._previous = None

    def _press(self, signum, frame):
        self.pressed = 1.0

    def release(self):
        if self._previous is not None:
            self._signal.signal(self._signal.SIGINT, self._previous)


def _scalars(model, ev, validation, loss, val_cache, comm=None, n_val=None):
    """[train loss, reg (0 without), validation loss, validation accuracy] as floats, one transfer.

    val_cache: ``evaluate``'s cache for the validation inputs (cleared on grid updates);
    comm, n_val: validation figures over every rank's validation shard (n_val samples)."""
    xp = model.xp
    items = [ev.loss, xp.zeros((), dtype=model.dtype) if ev.reg is None else ev.reg]
    if validation is not None:
        x_val, y_val = validation
        val = evaluate(model, x_val, y_val, loss=loss, grad=False, cache=val_cache, comm=comm, n_total=n_val)
        items.append(val.loss)
        if loss == "cross_entropy":
            acc = accuracy(val.pred, y_val, xp)
            items.append(acc if comm is None else comm.allreduce(acc * (x_val.shape[0] / n_val)))
    items.extend(ev.terms)  # a physics problem's terms, last
    return [float(v) for v in to_numpy(xp.stack([xp.reshape(a, ()) for a in items]))]


def _interactive() -> bool:
    """Whether a progress bar would be seen: stderr is a terminal, or this is a Jupyter kernel
    (tqdm.auto draws a widget there). A bar redrawn into a log file is only noise."""
    if "ipykernel" in sys.modules:
        return True
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stderr
        return False


def _postfix(train: float, val: float | None, reg: float | None, terms: dict | None = None) -> str:
    """The progress bar's figures: train, val (with validation), reg (only with lamb > 0), a physics
    problem's terms."""
    text = f"train {train:.3e}"
    if val is not None:
        text += f" | val {val:.3e}"
    if reg is not None:
        text += f" | reg {reg:.3e}"
    for name, value in (terms or {}).items():
        text += f" | {name} {value:.3e}"
    return text


def _progress(steps):
    from tqdm.auto import tqdm

    return tqdm(total=steps, desc="fit", leave=True)
