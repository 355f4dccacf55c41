"""KAN: a stack of KANLayers with a validated forward, value_and_grad and backend moves."""

from __future__ import annotations

import math

import numpy as np

from ._checks import as_batch, check_number, check_positive_int, check_width
from ._namespace import backend_name, dtype_of, from_host_like, namespace_of, resolve_backend, to_numpy
from .base import BASE_FUNCTIONS
from .extrapolation import check_mode as check_extrapolation
from .layer import KANLayer
from .objective import check_targets, evaluate
from .regularization import Regularization

__all__ = ["KAN"]


def _per_layer(value, n_layers: int, name: str) -> list:
    """A scalar applies to every layer; a list gives one value per layer."""
    if isinstance(value, (list, tuple)) and not (name == "grid_range" and _is_range(value)):
        if len(value) != n_layers:
            raise ValueError(f"{name} has {len(value)} entries but the model has {n_layers} layers")
        return list(value)
    return [value] * n_layers


def _is_range(value) -> bool:
    return len(value) == 2 and all(isinstance(v, (int, float, np.floating, np.integer)) for v in value)


def _check_range(r, layer: int) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in r)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"grid_range of layer {layer} must be a pair (lo, hi), got {r!r}") from exc
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"grid_range of layer {layer} must be finite with lo < hi, got {r!r}")
    return lo, hi


def _host_vector(value, n: int, name: str) -> np.ndarray:
    """value as a NumPy float64 vector of shape (n,), finite; else ValueError."""
    if namespace_of(value) is not None:
        value = to_numpy(value)
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be {n} real numbers (one per input, shape ({n},)), got {value!r}") from None
    if arr.dtype.kind not in "iuf":
        raise ValueError(f"{name} must be real numbers (one per input, shape ({n},)), got dtype {arr.dtype}")
    if arr.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), one value per input, got shape {arr.shape}")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must hold finite numbers, got {arr.tolist()}")
    return arr


class KAN:
    """Kolmogorov-Arnold Network.

    Args:
        width: layer sizes, e.g. [2, 5, 1].
        grid: G, the number of grid intervals; an int or one per layer.
        k: spline order; an int or one per layer.
        base_fun: "silu" (default), "identity" or "zero".
        grid_range: (lo, hi) of the initial grid, or one pair per layer.
        noise_scale, scale_base_mu, scale_base_sigma: pykan's initialization constants.
        seed: the initialization is a deterministic function of the seed (same numbers on
            every backend).
        dtype: "float32" or "float64".
        backend: "numpy", "cupy", or an array-API namespace module (e.g. array_api_strict).
        bias_trainable: whether the node biases are trained (and listed by ``parameters()``).
            Off by default, as in pykan (its node affine is not trainable unless asked for):
            with the sparsification penalty, free biases let LBFGS wander to worse minima.
        extrapolate: how each spline continues beyond its grid (``kanarray.extrapolation``):
            "spline" (default, pykan's: the B-splines run on for k intervals, then vanish) or
            "linear" (a straight line with the spline's value and slope at the grid's end, so
            inputs outside the fitted range, and hidden activations pushed there, get no
            undetermined polynomial pieces; needs k >= 2).

    ``model(x)`` maps (batch, width[0]) -> (batch, width[-1]) in the model's namespace.
    """

    def __init__(
        self,
        width,
        grid=5,
        k=3,
        *,
        base_fun: str = "silu",
        grid_range=(-1.0, 1.0),
        noise_scale: float = 0.3,
        scale_base_mu: float = 0.0,
        scale_base_sigma: float = 1.0,
        seed: int = 0,
        dtype: str = "float64",
        backend="numpy",
        bias_trainable: bool = False,
        extrapolate: str = "spline",
    ):
        width = check_width(width)
        n_layers = len(width) - 1
        grids = [check_positive_int(g, "grid") for g in _per_layer(grid, n_layers, "grid")]
        ks = [check_positive_int(kk, "k", minimum=0) for kk in _per_layer(k, n_layers, "k")]
        ranges = [_check_range(r, l) for l, r in enumerate(_per_layer(grid_range, n_layers, "grid_range"))]
        if not isinstance(bias_trainable, bool):
            raise ValueError(f"bias_trainable must be True or False, got {bias_trainable!r}")
        for kk in ks:
            check_extrapolation(extrapolate, kk)
        if base_fun not in BASE_FUNCTIONS:
            raise ValueError(f"base_fun must be one of {sorted(BASE_FUNCTIONS)}, got {base_fun!r}")
        for name, value in (("noise_scale", noise_scale), ("scale_base_mu", scale_base_mu),
                            ("scale_base_sigma", scale_base_sigma)):
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        xp = resolve_backend(backend)
        self._dtype_name = str(dtype)
        dt = dtype_of(xp, self._dtype_name)
        rng = np.random.default_rng(seed)
        self.layers = [
            KANLayer.initialize(
                width[l], width[l + 1], num=grids[l], k=ks[l], grid_range=ranges[l], base_fun=base_fun,
                noise_scale=noise_scale, scale_base_mu=scale_base_mu, scale_base_sigma=scale_base_sigma,
                rng=rng, xp=xp, dtype=dt, extrapolate=extrapolate,
            )
            for l in range(n_layers)
        ]
        self._set_state(width=width, base_fun=base_fun, grid_range=ranges, seed=seed, xp=xp,
                        bias_trainable=bias_trainable)

    def _set_state(self, *, width, base_fun, grid_range, seed, xp, bias_trainable):
        self.bias_trainable = bias_trainable
        self.width = width
        self.base_fun = base_fun
        self.grid_range = grid_range
        self.seed = seed
        self.xp = xp
        self._samples = None  # inputs of the last fit / update_grid, used by refine
        self._input_map = None  # (shift, scale) on the host, float64 (width[0],), and in the model's namespace

    @classmethod
    def _assemble(cls, layers, *, width, base_fun, grid_range, seed, xp, dtype_name, bias_trainable,
                  input_scaling=None) -> "KAN":
        """A KAN around existing layers (refine, load, pruning); input_scaling: None or (shift, scale)."""
        model = cls.__new__(cls)
        model.layers = list(layers)
        model._dtype_name = dtype_name
        model._set_state(width=list(width), base_fun=base_fun, grid_range=[tuple(r) for r in grid_range],
                         seed=seed, xp=xp, bias_trainable=bias_trainable)
        if input_scaling is not None:
            shift, scale = input_scaling
            model._input_map = model._input_map_of(shift, scale)
        return model

    # -- input scaling ----------------------------------------------------------------------
    def _input_map_of(self, shift, scale, xp=None, like=None) -> tuple:
        """(shift, scale) host float64 (width[0],) checked (finite, scale > 0), with their copies
        in namespace xp (default the model's) with the dtype and device of ``like`` (default the
        first layer's grid)."""
        n = self.width[0]
        shift, scale = _host_vector(shift, n, "shift").copy(), _host_vector(scale, n, "scale").copy()
        if not np.all(scale > 0):
            raise ValueError(f"input scales must be positive, got {scale.tolist()}")
        xp = self.xp if xp is None else xp
        like = self.layers[0].grid if like is None else like
        return shift, scale, from_host_like(xp, shift, like), from_host_like(xp, scale, like)

    def scale_inputs(self, lo, hi) -> None:
        """Record an affine map of the raw inputs, applied before the first layer by every method
        that takes inputs: the first layer sees x' = (x - shift) * scale, which takes
        [lo_i, hi_i] onto the first layer's grid range (g_lo, g_hi).

        lo, hi: (width[0],) finite numbers with lo <= hi, e.g. the training inputs' column
        minima and maxima.  A constant column (lo_i == hi_i) gets scale 1 and is mapped onto the
        centre of the grid range.  ``scale_inputs(None, None)`` removes the map.  In place; the
        inputs kept from the last fit (for refine and the symbolic fits) are re-mapped.  The
        trained edges are not: call this before training.  ValueError, before anything
        changes, for wrong shapes, non-finite values or lo > hi.
        """
        if lo is None and hi is None:
            new = None
        elif lo is None or hi is None:
            raise ValueError("lo and hi must both be given, or both be None to remove the input scaling")
        else:
            n = self.width[0]
            lo, hi = _host_vector(lo, n, "lo"), _host_vector(hi, n, "hi")
            bad = np.nonzero(lo > hi)[0]
            if bad.size:
                raise ValueError(f"lo must be <= hi for every input, but inputs {bad.tolist()} have lo > hi "
                                 f"(lo {lo[bad].tolist()}, hi {hi[bad].tolist()})")
            g_lo, g_hi = self.grid_range[0]
            with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
                span = hi - lo
                scale = np.where(span > 0, (g_hi - g_lo) / np.where(span > 0, span, 1.0), 1.0)
                shift = (0.5 * lo + 0.5 * hi) - 0.5 * (g_lo + g_hi) / scale
            if not (np.all(np.isfinite(scale)) and np.all(scale > 0) and np.all(np.isfinite(shift))):
                raise ValueError(f"the ranges [lo, hi] = {np.stack([lo, hi], axis=1).tolist()} cannot be mapped "
                                 f"onto the grid range {(g_lo, g_hi)} in float64 (too wide or too narrow)")
            new = self._input_map_of(shift, scale)
        samples = self._samples
        if samples is not None:
            if self._input_map is not None:
                samples = samples / self._input_map[3] + self._input_map[2]
            if new is not None:
                samples = (samples - new[2]) * new[3]
        self._input_map, self._samples = new, samples

    @property
    def input_scaling(self):
        """None, or (shift, scale): NumPy float64 copies (width[0],) of the map x' = (x - shift) * scale
        applied to the raw inputs before the first layer (``scale_inputs``)."""
        if self._input_map is None:
            return None
        return self._input_map[0].copy(), self._input_map[1].copy()

    # -- facts ----------------------------------------------------------------------------
    @property
    def dtype(self):
        return dtype_of(self.xp, self._dtype_name)

    @property
    def backend(self) -> str:
        return backend_name(self.xp)

    @property
    def grid(self) -> list[int]:
        """G of each layer."""
        return [layer.num for layer in self.layers]

    @property
    def k(self) -> list[int]:
        return [layer.k for layer in self.layers]

    @property
    def extrapolate(self) -> str:
        """How the splines continue beyond their grids: "spline" or "linear" (``KAN``'s argument)."""
        return self.layers[0].extrapolate

    def parameters(self) -> dict:
        """The trainable arrays by name ("layers.0.coef", "layers.0.scale_base", "layers.0.scale_sp",
        and "layers.0.bias" if ``bias_trainable``, ...): live, not copies."""
        return {
            f"layers.{l}.{name}": a
            for l, layer in enumerate(self.layers)
            for name, a in layer.parameters().items()
            if self.bias_trainable or name != "bias"
        }

    def num_parameters(self) -> int:
        return sum(math.prod(a.shape) for a in self.parameters().values())

    def __repr__(self) -> str:
        return (
            f"KAN(width={self.width}, grid={self.grid}, k={self.k}, base_fun={self.base_fun!r}, "
            f"dtype={self._dtype_name!r}, backend={self.backend!r}"
            + (", bias_trainable=True" if self.bias_trainable else "")
            + (f", extrapolate={self.extrapolate!r}" if self.extrapolate != "spline" else "")
            + (", input_scaling=True)" if self._input_map is not None else ")")
        )

    # -- computation ----------------------------------------------------------------------
    def _check_x(self, x):
        return as_batch(x, xp=self.xp, dtype=self.dtype, n_features=self.width[0], name="x")

    def _inputs(self, x):
        """Raw inputs (batch, width[0]) validated and mapped to what the first layer sees,
        (x - shift) * scale with ``scale_inputs``' map (x itself, validated, without one).
        Every public method taking raw inputs goes through here exactly once; internal
        paths pass the result on."""
        x = self._check_x(x)
        if self._input_map is None:
            return x
        return (x - self._input_map[2]) * self._input_map[3]

    def _check_y(self, y, batch: int):
        y = as_batch(y, xp=self.xp, dtype=self.dtype, n_features=self.width[-1], name="y")
        if y.shape[0] != batch:
            raise ValueError(f"y must have shape ({batch}, {self.width[-1]}) to match x, got {tuple(y.shape)}")
        return y

    def __call__(self, x):
        return self.forward(x)

    def forward(self, x):
        """(batch, width[0]) -> (batch, width[-1])."""
        return self._forward_plain(self._inputs(x))

    def _forward_plain(self, h):
        for layer in self.layers:
            h, _ = layer.forward(h)
        return h

    def _forward_cached(self, x, need_dx: bool, *, backward: bool = True, reuse_first=None):
        """(output, per-layer caches).  Hidden layers keep the x-derivatives a backward pass
        needs (unless backward=False); reuse_first: the first layer's cache of an earlier
        call with the same x and grid."""
        caches = []
        h = x
        for l, layer in enumerate(self.layers):
            h, cache = layer.forward(h, need_dx=need_dx or (backward and l > 0),
                                     reuse=reuse_first if l == 0 else None)
            caches.append(cache)
        return h, caches

    def _backward(self, caches, gy, need_dx: bool):
        grads = {}
        for l in range(len(self.layers) - 1, -1, -1):
            layer_grads, gy = self.layers[l].backward(caches[l], gy, need_dx=need_dx or l > 0)
            for name, g in layer_grads.items():
                grads[f"layers.{l}.{name}"] = g
        ordered = {name: grads[name] for name in self.parameters()}
        return ordered, gy

    def value_and_grad(self, x, y, *, loss: str = "mse", lamb: float = 0.0, lamb_l1: float = 1.0,
                       lamb_entropy: float = 2.0, lamb_coef: float = 0.0, lamb_coefdiff: float = 0.0):
        """The objective loss(model(x), y) + lamb * reg and its gradients.

        x: (batch, width[0]); y: (batch, width[-1]) for loss="mse" (mean squared error), or
        integer labels (batch,) for loss="cross_entropy" (softmax over the outputs).  The
        regularization weights are those of ``fit`` (see ``kanarray.regularization``).
        Returns (objective as a 0-d array of the model's namespace, dict of gradients with the
        keys and shapes of ``parameters()``).
        """
        reg = Regularization(lamb, lamb_l1, lamb_entropy, lamb_coef, lamb_coefdiff)
        x = self._inputs(x)
        reg.check_batch(x.shape[0])
        y = check_targets(self, y, x.shape[0], loss)
        ev = evaluate(self, x, y, loss=loss, reg=reg)
        return ev.objective, ev.grads

    def vjp(self, x, gy):
        """Vector-Jacobian product: (y, grads of sum(gy * y) w.r.t. parameters, w.r.t. x).

        x: (batch, width[0]); gy: (batch, width[-1]) -> (y (batch, width[-1]), dict, dx (batch, width[0])).
        dx is with respect to the raw x (through ``scale_inputs``' map, if any).
        """
        x = self._inputs(x)
        gy = self._check_y(gy, x.shape[0])
        out, caches = self._forward_cached(x, need_dx=True)
        grads, dx = self._backward(caches, gy, need_dx=True)
        if self._input_map is not None:
            dx = dx * self._input_map[3]
        return out, grads, dx

    # -- training ---------------------------------------------------------------------------
    def fit(self, x, y, *, steps=100, opt="lbfgs", lr=None, batch_size=None, loss="mse", lamb=0.0, lamb_l1=1.0,
            lamb_entropy=2.0, lamb_coef=0.0, lamb_coefdiff=0.0, update_grid=True, grid_update_num=10,
            stop_grid_update_step=50, grid_margin=0.0, validation=None, progress="auto", seed=None, frozen=(),
            comm=None):
        """Train in place; returns a ``History`` (per-step lists, ``.plot(path)``, ``.optimizer``).

        x: (N, width[0]); y: (N, width[-1]) for loss="mse", or integer labels (N,) for
        loss="cross_entropy".  opt: "lbfgs" (pykan's: history 10, 20 iterations per step,
        strong-Wolfe line search; lr 1), "adam", "adamw", "sgd" (lr 1e-2), or an optimizer built on
        ``model.parameters()`` (its state carries on).  batch_size: minibatches drawn from
        shuffled epochs (reproducible from ``seed``, default the model's seed); full batch if
        None.  lamb and lamb_*: the sparsification penalty (``kanarray.regularization``).
        update_grid: adapt the grids to the batch every stop_grid_update_step // grid_update_num
        steps while step < stop_grid_update_step (the optimizer keeps its state across them, as in
        pykan; resetting LBFGS there measured slightly worse); grid_margin: as in ``update_grid``.
        validation: (x_val, y_val), evaluated every step.  progress: a tqdm bar with the losses;
        "auto" shows it when stderr is a terminal or in Jupyter (not in a log file), True always.
        frozen: parameters held fixed, by full name ("layers.0.scale_sp") or by name in every
        layer ("scale_base", "scale_sp", "coef"); an optimizer passed as ``opt`` must then be
        built on ``kanarray.training.trainable_parameters(model, frozen)``.

        history["train_loss"] / ["val_loss"] are RMSE for mse (like pykan) and the cross-entropy
        otherwise; history["val_acc"] for cross_entropy; history["reg"] is the penalty (0 when
        lamb == 0).  If the objective becomes NaN or infinite, the last parameters with a
        finite loss are restored and ``TrainingDiverged`` (a FloatingPointError, with
        ``.history``) is raised; Ctrl-C stops after restoring them too and returns the history
        so far with ``history.interrupted = True``.

        comm: an mpi4py communicator (``mpi4py.MPI.COMM_WORLD``) for data-parallel training: each
        rank passes its shard of x, y (and of validation); the ranks take identical steps on the
        global objective and end with bit-identical parameters (``kanarray.distributed``).
        batch_size is then per rank; only rank 0 shows the progress bar.
        """
        from .training import fit

        return fit(self, x, y, steps=steps, opt=opt, lr=lr, batch_size=batch_size, loss=loss, lamb=lamb,
                   lamb_l1=lamb_l1, lamb_entropy=lamb_entropy, lamb_coef=lamb_coef, lamb_coefdiff=lamb_coefdiff,
                   update_grid=update_grid, grid_update_num=grid_update_num,
                   stop_grid_update_step=stop_grid_update_step, grid_margin=grid_margin, validation=validation,
                   progress=progress, seed=seed, frozen=frozen, comm=comm)

    # -- grids ----------------------------------------------------------------------------
    def update_grid(self, x, *, grid_eps: float = 0.02, grid_margin: float = 0.0, comm=None) -> None:
        """Adapt every layer's grid to the samples x (batch, width[0]), in place.

        Layer by layer on fresh activations: knots at the samples' quantiles mixed with a
        uniform grid over their range (weight grid_eps, pykan's 0.02), extended by k each
        side; the coefficients are refitted so each edge function is preserved on the
        samples (``kanarray.grids``).  G and k do not change.  All layers are computed
        before any is changed.  grid_margin >= 0: each end knot moves out by that fraction of its
        interval (pykan: 0), so inputs a little outside the samples' range -- test points beyond
        the training data, or a hidden layer's activations of them -- land where samples shaped
        the spline rather than in the extension intervals that no sample constrains.  comm: an
        mpi4py communicator whose ranks each pass their shard of the samples
        (``kanarray.distributed``).
        """
        grid_eps = check_number("grid_eps", grid_eps, maximum=1.0)
        grid_margin = check_number("grid_margin", grid_margin)
        from .distributed import as_communicator

        self._adapt_grids(self._inputs(x), grid_eps=grid_eps, grid_margin=grid_margin, comm=as_communicator(comm))

    def _adapt_grids(self, x, *, grid_eps: float = 0.02, grid_margin: float = 0.0, comm=None) -> None:
        """``update_grid`` on inputs already through ``_inputs``."""
        from .grids import HIDDEN_RELATIVE_SPAN, update_layer_grid

        new_layers = []
        h = x
        for l, layer in enumerate(self.layers):
            new = layer.copy()
            update_layer_grid(new, h, grid_eps=grid_eps, relative_floor=HIDDEN_RELATIVE_SPAN if l else 0.0,
                              margin=grid_margin, comm=comm)
            h, _ = new.forward(h)
            new_layers.append(new)
        for layer, new in zip(self.layers, new_layers):
            layer.grid[...] = new.grid
            layer.coef[...] = new.coef
        self._samples = x

    def refine(self, grid, x=None, *, comm=None) -> "KAN":
        """A new KAN on a grid of ``grid`` intervals (an int or one per layer) computing the
        same function (grid extension).

        Each layer's new knots follow its old ones (so an adapted grid keeps its shape); the
        new coefficients are the least-squares transfer of every edge's spline, fitted on the
        layer's activations of x (batch, width[0]) -- by default the inputs of the last
        ``fit`` or ``update_grid`` -- plus a sweep of every new interval.  Scales, masks and
        biases are copied.  To carry an optimizer over: ``opt.transferred(new.parameters())``
        (the coefficients' state is reset, see ``kanarray.optim``).  comm: an mpi4py communicator
        whose ranks each hold a shard of the samples (``kanarray.distributed``).
        """
        from .distributed import as_communicator
        from .grids import refine_layer

        comm = as_communicator(comm)
        nums = [check_positive_int(g, "grid") for g in _per_layer(grid, len(self.layers), "grid")]
        samples = self._samples if x is None else self._inputs(x)
        new_layers = []
        h = samples
        for layer, num in zip(self.layers, nums):
            new_layers.append(refine_layer(layer, num, h, comm=comm))
            if h is not None:
                h, _ = layer.forward(h)
        model = KAN._assemble(new_layers, width=self.width, base_fun=self.base_fun, grid_range=self.grid_range,
                              seed=self.seed, xp=self.xp, dtype_name=self._dtype_name,
                              bias_trainable=self.bias_trainable, input_scaling=self.input_scaling)
        model._samples = samples
        return model

    # -- interpretation ---------------------------------------------------------------------
    def _interpret_samples(self, x):
        from .symbolic.api import samples_of

        return samples_of(self, x)

    def attribute(self, x=None):
        """pykan's attribution scores on samples x (batch, width[0]), by default the inputs of the
        last ``fit``: an ``Attribution`` with edge_scores[l] (width[l], width[l+1]) and
        node_scores[l] (width[l],) (see ``kanarray.pruning``)."""
        from .pruning import attribute

        return attribute(self, self._interpret_samples(x))

    def prune_node(self, x=None, threshold: float = 1e-2) -> "KAN":
        """A new KAN without the hidden nodes whose attribution score is <= threshold."""
        from .pruning import prune_node

        return prune_node(self, self._interpret_samples(x), threshold)

    def prune_to_width(self, width, x=None) -> "KAN":
        """A new KAN of the given width (e.g. [2, 2, 1]): each hidden layer keeps its
        highest-scoring nodes; for pruning to a known shape rather than by threshold."""
        from .pruning import prune_to_width

        return prune_to_width(self, self._interpret_samples(x), width)

    def prune_edge(self, x=None, threshold: float = 3e-2) -> "KAN":
        """A new KAN with the edges whose attribution score is <= threshold masked out."""
        from .pruning import prune_edge

        return prune_edge(self, self._interpret_samples(x), threshold)

    def prune(self, x=None, node_th: float = 1e-2, edge_th: float = 3e-2) -> "KAN":
        """A new, smaller KAN: ``prune_node(node_th)`` then ``prune_edge(edge_th)`` with fresh scores.
        x: samples for the scores (batch, width[0]), by default the inputs of the last ``fit``.
        The kept nodes and edges compute what they computed before."""
        from .pruning import prune

        return prune(self, self._interpret_samples(x), node_th, edge_th)

    def suggest_symbolic(self, l, i, j, lib=None, topk: int = 5, *, x=None, weight_simple: float = 0.8):
        """Library functions c * f(a x + b) + d ranked for edge (layer l, input i, output j), best
        first: a list of ``Candidate`` (name, r2, complexity, params (a, b, c, d), score).  lib:
        names from ``kanarray.symbolic.LIBRARY`` (default all); x: samples (default the inputs
        of the last ``fit``)."""
        from .symbolic.api import suggest_symbolic

        return suggest_symbolic(self, l, i, j, lib=lib, topk=topk, x=x, weight_simple=weight_simple)

    def fix_symbolic(self, l, i, j, name, *, x=None, fit_params: bool = True, params=None):
        """Replace edge (l, i, j) by c * f(a x + b) + d, f the library function ``name``, fitted to
        the edge on samples x (default the inputs of the last ``fit``); returns R^2 of the fit
        (None if ``params`` = (a, b, c, d) are given instead).  In place; (a, b, c, d) are
        trained by later fits."""
        from .symbolic.api import fix_symbolic

        return fix_symbolic(self, l, i, j, name, x=x, fit_params=fit_params, params=params)

    def unfix_symbolic(self, l, i, j) -> None:
        """Give symbolic edge (l, i, j) its spline back."""
        from .symbolic.api import unfix_symbolic

        unfix_symbolic(self, l, i, j)

    def auto_symbolic(self, lib=None, r2_threshold: float = 0.99, weight_simple: float = 0.8, *, x=None):
        """Fix every spline edge to the best-ranked library function (pykan's score
        weight_simple * complexity + (1 - weight_simple) * log2(1 + 1e-5 - R^2), lower is
        better) among those with R^2 >= r2_threshold; edges where none reaches it stay splines.  In place; returns an
        ``AutoSymbolicReport`` (``.fixed``, ``.kept``, printable)."""
        from .symbolic.api import auto_symbolic

        return auto_symbolic(self, lib=lib, r2_threshold=r2_threshold, weight_simple=weight_simple, x=x)

    def symbolic_formula(self, var_names=None, digits: int = 4, simplify: bool = True) -> list:
        """One sympy expression per output (biases included), numbers rounded to ``digits``
        decimals; ValueError listing the edges that are still splines."""
        from .symbolic.formula import symbolic_formula

        return symbolic_formula(self, var_names=var_names, digits=digits, simplify=simplify)

    def plot(self, path, x=None, *, title=None) -> None:
        """Write a PNG of the network: every edge drawn with its learned curve over the samples'
        range (x, default the inputs of the last ``fit``), opacity by attribution score,
        symbolic edges labelled with their formula."""
        from .plotting import plot_model

        plot_model(self, path, x=x, title=title)

    # -- checkpoints ----------------------------------------------------------------------
    def save(self, path, *, optimizer=None) -> None:
        """Write the model (and an optimizer's state) to one file, atomically and without
        pickle; read it back with ``kanarray.load(path)`` (see ``kanarray.checkpoint``)."""
        from .checkpoint import save

        save(self, path, optimizer=optimizer)

    # -- moving ---------------------------------------------------------------------------
    def to(self, backend=None, *, dtype=None) -> "KAN":
        """Move the model to another backend and/or dtype, in place; returns the model.

        The input scaling and the inputs kept from the last fit move with it.  All new arrays
        are built before any is swapped in, so a failure leaves the model as it was.
        """
        xp = self.xp if backend is None else resolve_backend(backend)
        name = self._dtype_name if dtype is None else str(dtype)
        dt = dtype_of(xp, name)
        new_layers = [layer.moved(xp, dt) for layer in self.layers]
        like = new_layers[0].grid
        new_map = None if self._input_map is None else self._input_map_of(*self._input_map[:2], xp=xp, like=like)
        samples = None if self._samples is None else from_host_like(xp, to_numpy(self._samples), like)
        self.layers, self.xp, self._dtype_name, self._input_map, self._samples = new_layers, xp, name, new_map, samples
        return self
