"""KAN: the facade over a stack of KANLayers.

The class validates what users pass and hands the work to the modules that do it: the
network passes (``stack``), the objective and its gradients (``objective``), training
(``training``), grids (``grids``), attribution and pruning (``pruning``), symbolic edges
(``symbolic``), plots, checkpoints and ONNX.  It is the only module that touches a model's
private members; everything else uses the public interface (``layers``, ``parameters``,
``prepare_inputs``, ``fit_inputs``, ``from_layers``, ...).
"""

from __future__ import annotations

import dataclasses
import inspect
import math

import numpy as np

from . import (checkpoint, copying, datasets, grids, jets, nodes, plotting, prediction, pruning, pykan_convert,
               resources, seeding, stack, start_probe, training)
from ._checks import (as_batch, check_base_fun, check_bias_trainable, check_grid, check_grid_range, check_init_constant,
                      check_order, check_seed)
from ._namespace import backend_name, dtype_of, from_host_like, resolve_backend, to_numpy
from .base import BASE_FUNCTIONS
from .extrapolation import check_mode as check_extrapolation
from .fit_settings import FitSettings
from .input_map import InputMap
from .layer import KANLayer
from .names import check_names, inherited
from .objective import check_outputs, check_targets, evaluate
from .regularization import Regularization
from .symbolic import api as symbolic, formula

__all__ = ["KAN", "load", "from_pykan", "from_pykan_checkpoint"]


def _per_layer(value, n_layers: int, name: str) -> list:
    """A scalar applies to every layer; a list gives one value per layer."""
    if isinstance(value, (list, tuple)) and not (name == "grid_range" and _is_range(value)):
        if len(value) != n_layers:
            raise ValueError(f"{name} has {len(value)} entries but the model has {n_layers} layers")
        return list(value)
    return [value] * n_layers


def _is_range(value) -> bool:
    return len(value) == 2 and all(isinstance(v, (int, float, np.floating, np.integer)) for v in value)


def _dtype_name_of(xp, dtype) -> str:
    for name in ("float64", "float32"):
        if dtype_of(xp, name) == dtype:
            return name
    raise ValueError(f"layers must hold float32 or float64 arrays, got {dtype}")


_FROM_LAYERS = ("base_fun", "grid_range", "seed", "dtype_name", "bias_trainable", "input_scaling", "fit_inputs",
                "task", "input_names", "output_names")


def _names_of(width, base: dict, attributes: dict) -> tuple:
    """(input_names, output_names) of ``from_layers``: given ones as they are, inherited ones only
    when the count still fits (``kanarray.names.inherited``)."""
    return tuple(base[key] if key in attributes else inherited(base[key], n)
                 for key, n in (("input_names", width[0]), ("output_names", width[-1])))


def _layer_ranges(grid_range, nums, ks, dtype_name) -> list:
    """One checked (lo, hi) per layer (``check_grid_range``) from a pair or a list of pairs."""
    ranges = _per_layer(grid_range, len(nums), "grid_range")
    return [check_grid_range(r, f"grid_range of layer {l}", num=nums[l], k=ks[l], dtype=dtype_name)
            for l, r in enumerate(ranges)]


def _layout(width, mult_arity, grid, k, grid_range, extrapolate, dtype_name, *, seed, base_fun, bias_trainable,
            **constants):
    """The constructor's arguments checked, and the model's memory (``resources``) against the
    cap: (nodes per layer, the sub-nodes each layer outputs, the node stages' (n_add, arities) per
    layer output (None: additions only), G per layer, k per layer, (lo, hi) per layer, the
    constants as floats)."""
    width, n_add, arities = nodes.parse_width(width, mult_arity)
    n_layers = len(width) - 1
    subnodes = [n_add[l] + sum(arities[l]) for l in range(1, n_layers + 1)]
    stages = [(n_add[l], arities[l]) if arities[l] else None for l in range(1, n_layers + 1)]
    grids = [check_grid(g) for g in _per_layer(grid, n_layers, "grid")]
    ks = [check_order(kk) for kk in _per_layer(k, n_layers, "k")]
    dtype_of(np, dtype_name)  # a ValueError for an unknown dtype name
    ranges = _layer_ranges(grid_range, grids, ks, dtype_name)
    for kk in ks:
        check_extrapolation(extrapolate, kk)
    constants = {name: check_init_constant(name, value) for name, value in constants.items()}
    check_seed(seed), check_base_fun(base_fun, BASE_FUNCTIONS), check_bias_trainable(bias_trainable)
    shapes = [(width[l], subnodes[l], grids[l], ks[l]) for l in range(n_layers)]
    resources.check(f"KAN(width={width}, grid={grids}, k={ks})",
                  resources.construction_bytes(shapes, np.dtype(dtype_name).itemsize))
    return width, subnodes, stages, grids, ks, ranges, constants


def _initialize(model, width, mult_arity, grid, k, *, grid_range, extrapolate, dtype, seed, base_fun, bias_trainable,
                backend, affine_trainable, init, **constants) -> None:
    """``KAN.__init__``: every argument checked, then the layers drawn from the seed's stream
    (``kanarray.seeding``) in pykan's order: per layer the spline noise, then scale_base."""
    width, subnodes, stages, grids, ks, ranges, constants = _layout(
        width, mult_arity, grid, k, grid_range, extrapolate, dtype, seed=seed, base_fun=base_fun,
        bias_trainable=bias_trainable, **constants)
    if not isinstance(affine_trainable, bool):
        raise ValueError(f"affine_trainable must be True or False, got {affine_trainable!r}")
    rng = seeding.initial_rng(check_seed(seed), init)
    xp = resolve_backend(backend)
    model._set_state(width=width, base_fun=base_fun, grid_range=ranges, seed=seed, xp=xp, dtype=dtype,
                     bias_trainable=bias_trainable)
    layers = []
    for l in range(len(width) - 1):
        layer = KANLayer.initialize(width[l], subnodes[l], num=grids[l], k=ks[l], grid_range=ranges[l],
                                    base_fun=base_fun, rng=rng, xp=xp, dtype=model.dtype, extrapolate=extrapolate,
                                    **constants)
        if stages[l] is not None or affine_trainable:
            n_add, arities = stages[l] or (width[l + 1], ())
            layer.nodes = nodes.NodeStage.identity(n_add, arities, xp, layer.bias, trainable=affine_trainable)
        layers.append(layer)
    model.layers = layers
    if init == "kanarray" and constants["scale_base_mu"] == 0 and constants["scale_base_sigma"] == 1:
        model.initial_fingerprint = start_probe.fingerprint(model)  # what ``fit``'s start probe compares with


def _checked_attributes(layers, base: dict) -> dict:
    """``from_layers``' attributes with grid_range checked (one pair per layer), after checking
    that the layers use base_fun and hold the values of a model (``KANLayer.check_values``)."""
    if not isinstance(base["grid_range"], (list, tuple)):
        raise ValueError(f"grid_range must list one (lo, hi) per layer ({len(layers)}), got {base['grid_range']!r}")
    if len(base["grid_range"]) != len(layers):
        raise ValueError(f"grid_range lists {len(base['grid_range'])} ranges for {len(layers)} layers")
    check_base_fun(base["base_fun"], BASE_FUNCTIONS)
    ranges = _layer_ranges(list(base["grid_range"]), [layer.num for layer in layers], [layer.k for layer in layers],
                           base["dtype_name"])
    for l, layer in enumerate(layers):
        if layer.base_fun != base["base_fun"]:
            raise ValueError(f"layer {l} uses base_fun {layer.base_fun!r}, but the model is to use "
                             f"{base['base_fun']!r}")
        try:
            layer.check_values()
        except ValueError as exc:
            raise ValueError(f"layer {l}: {exc}") from None
    return {**base, "grid_range": ranges}


def _names_property(key: str, end: int) -> property:
    """``KAN.input_names`` (end 0) or ``output_names`` (end -1), settable: None or a tuple of
    width[end] distinct non-empty str, checked when set (``kanarray.names.check_names``)."""
    private = "_" + key

    def get(model):
        return getattr(model, private)

    def set_names(model, names) -> None:
        setattr(model, private, check_names(names, model.width[end], key))

    return property(get, set_names, doc=f"None or the {key.split('_')[0]}s' names: a tuple of width[{end}] distinct "
                    "non-empty str (``kanarray.names``); kept by save/load, refine, pruning, to() and ONNX export.")


def _rescale_inputs(model, lo, hi) -> None:
    """``KAN.scale_inputs``: the new map built and ``fit_inputs`` re-mapped before either is swapped in."""
    if (lo is None) != (hi is None):
        raise ValueError("lo and hi must both be given, or both be None to remove the input scaling")
    new = None
    if lo is not None:
        shift, scale = InputMap.onto(lo, hi, model.grid_range[0], model.width[0])
        new = InputMap(shift, scale, model.width[0], model.xp, model.layers[0].grid)
    samples = model._fit_inputs
    if samples is not None:
        if model._input_map is not None:
            samples = model._input_map.undo(samples)
        if new is not None:
            samples = new.apply(samples)
    model._input_map, model._fit_inputs = new, samples


def _move(model, backend, dtype):
    """``KAN.to``: every array moved (and cast, refusing values the cast makes infinite) first."""
    xp = model.xp if backend is None else resolve_backend(backend)
    name = model._dtype_name if dtype is None else str(dtype)
    dt = dtype_of(xp, name)
    new_layers = [layer.moved(xp, dt, name=f"to(dtype={name!r}): layer {l}") for l, layer in enumerate(model.layers)]
    like = new_layers[0].grid
    new_map = None if model._input_map is None else model._input_map.moved(xp, like)
    samples = None if model._fit_inputs is None else from_host_like(xp, to_numpy(model._fit_inputs), like)
    model.layers, model.xp, model._dtype_name, model._input_map, model._fit_inputs = (
        new_layers, xp, name, new_map, samples)
    return model


class KAN:
    """Kolmogorov-Arnold Network.

    Args:
        width: layer sizes, e.g. [2, 5, 1]; a hidden [n_add, n_mult] adds multiplication nodes (``nodes``).
        mult_arity: the factors of each multiplication node: an int >= 2, or pykan's per-entry list.
        grid: G, the number of grid intervals; an int or one per layer.
        k: spline order; an int or one per layer.
        base_fun: "silu" (default), "identity" or "zero".
        grid_range: (lo, hi) of the initial grid, or one pair per layer.
        noise_scale, scale_base_mu, scale_base_sigma: pykan's initialization constants.
        seed, init: the initial numbers are a function of the seed (the same on every backend), from
            NumPy's stream (init="kanarray") or torch's (init="pykan": pykan's numbers, ``seeding``).
        dtype: "float32" or "float64".
        backend: "numpy", "cupy", or an array-API namespace module (e.g. array_api_strict).
        bias_trainable: whether the node biases are trained (off, as in pykan: with the penalty,
            free biases let LBFGS wander to worse minima).
        extrapolate: "spline" (pykan's: the B-splines run on for k intervals, then vanish) or
            "linear" (lines with the end value and slope, k >= 2; ``kanarray.extrapolation``).
        affine_trainable: train the node stages' scales and biases (pykan's; off by default).

    ``model(x)`` maps (batch, width[0]) -> (batch, width[-1]) in the model's namespace.
    """

    def __init__(self, width, grid=5, k=3, *, mult_arity=2, base_fun: str = "silu", grid_range=(-1.0, 1.0),
                 noise_scale: float = 0.3, scale_base_mu: float = 0.0, scale_base_sigma: float = 1.0, seed: int = 0,
                 dtype: str = "float64", backend="numpy", bias_trainable: bool = False, extrapolate: str = "spline",
                 affine_trainable: bool = False, init: str = "kanarray"):
        _initialize(self, width, mult_arity, grid, k, grid_range=grid_range, extrapolate=extrapolate, dtype=dtype,
                    seed=seed, base_fun=base_fun, bias_trainable=bias_trainable, backend=backend,
                    affine_trainable=affine_trainable, init=init, noise_scale=noise_scale,
                    scale_base_mu=scale_base_mu, scale_base_sigma=scale_base_sigma)

    def _set_state(self, *, width, base_fun, grid_range, seed, xp, dtype, bias_trainable):
        self.bias_trainable = check_bias_trainable(bias_trainable)
        self.width = list(width)
        self.base_fun = check_base_fun(base_fun, BASE_FUNCTIONS)
        self.grid_range = [tuple(r) for r in grid_range]
        self.seed = check_seed(seed)  # an int (or None), also when given as a NumPy integer
        self.xp = xp
        self._dtype_name = str(dtype)
        dtype_of(xp, self._dtype_name)  # a ValueError for an unknown dtype, before anything else
        self._fit_inputs = None  # inputs of the last fit / update_grid, as the first layer sees them
        self._input_map = None  # an InputMap (scale_inputs) or None
        self.task = None  # "regression" / "classification": what the last fit trained for (``prediction``)
        self.initial_fingerprint = None  # the constructor's draw (``start_probe``); None for models built otherwise
        self._input_names = self._output_names = None  # kanarray.names

    @classmethod
    def from_layers(cls, layers, *, like: "KAN | None" = None, **attributes) -> "KAN":
        """A KAN around ``layers`` (used as they are): width, orders and extrapolation come from
        them, the rest from ``like`` or the constructor's defaults, overridden by ``attributes``:
        base_fun, grid_range (a pair per layer), seed, dtype_name, bias_trainable,
        input_scaling ((shift, scale) or None), fit_inputs, task, input_names, output_names; all checked."""
        unknown = sorted(set(attributes) - set(_FROM_LAYERS))
        if unknown:
            raise TypeError(f"from_layers got unknown attributes {unknown}; expected some of {list(_FROM_LAYERS)}")
        layers = list(layers)
        width = stack.check_stack(layers)
        xp = layers[0].xp
        base = {name: getattr(like, name) for name in _FROM_LAYERS} if like is not None else dict(
            base_fun=layers[0].base_fun, grid_range=[(-1.0, 1.0)] * len(layers), seed=0, bias_trainable=False,
            dtype_name=_dtype_name_of(xp, layers[0].coef.dtype), input_scaling=None, fit_inputs=None, task=None,
            input_names=None, output_names=None)
        base = _checked_attributes(layers, {**base, **attributes})
        model = cls.__new__(cls)
        model.layers = layers
        model._set_state(width=width, base_fun=base["base_fun"], grid_range=base["grid_range"], seed=base["seed"],
                         xp=xp, dtype=base["dtype_name"], bias_trainable=base["bias_trainable"])
        if base["input_scaling"] is not None:
            model._input_map = InputMap(*base["input_scaling"], width[0], xp, layers[0].grid)
        model.fit_inputs = base["fit_inputs"]
        model.task = base["task"] and prediction.resolve_task(model, base["task"])
        model.input_names, model.output_names = _names_of(width, base, attributes)
        return model

    # -- input scaling and the stored fit inputs ---------------------------------------------
    def scale_inputs(self, lo, hi) -> None:
        """Map the raw inputs before the first layer: x' = (x - shift) * scale takes [lo_i, hi_i]
        (width[0],) onto the first grid range (``InputMap.onto``); (None, None) removes the map.
        In place; ``fit_inputs`` are re-mapped, the trained edges are not: call it before training."""
        _rescale_inputs(self, lo, hi)

    @property
    def input_scaling(self):
        """None, or (shift, scale): NumPy float64 copies (width[0],) of ``scale_inputs``' map."""
        return None if self._input_map is None else self._input_map.host()

    @property
    def fit_inputs(self):
        """The inputs of the last ``fit`` or ``update_grid`` (S, width[0]) as the first layer sees
        them (after ``scale_inputs``' map), or None: the default samples of ``refine``, pruning,
        the symbolic fits and ``plot``."""
        return self._fit_inputs

    @fit_inputs.setter
    def fit_inputs(self, x) -> None:
        if x is not None and (len(x.shape) != 2 or x.shape[1] != self.width[0]):
            raise ValueError(f"fit_inputs must have shape (S, {self.width[0]}), got {tuple(x.shape)}")
        self._fit_inputs = x

    # -- facts ----------------------------------------------------------------------------
    input_names = _names_property("input_names", 0)
    output_names = _names_property("output_names", -1)
    node_width = property(nodes.node_width, doc="pykan's width: [n_add, n_mult] per entry (``kanarray.nodes``).")
    mult_arity = property(nodes.mult_arity_of, doc="The multiplication nodes' arities: one list per width entry.")

    @property
    def dtype(self):
        return dtype_of(self.xp, self._dtype_name)

    @property
    def dtype_name(self) -> str:
        """"float32" or "float64"."""
        return self._dtype_name

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
        return {stack.parameter_name(l, name): a for l, layer in enumerate(self.layers)
                for name, a in layer.parameters().items() if self.bias_trainable or name != "bias"}

    def num_parameters(self) -> int:
        return sum(math.prod(a.shape) for a in self.parameters().values())

    def __repr__(self) -> str:
        return (f"KAN(width={nodes.display_width(self)}, grid={self.grid}, k={self.k}, base_fun={self.base_fun!r}, "
                f"dtype={self._dtype_name!r}, backend={self.backend!r}"
                + (", bias_trainable=True" if self.bias_trainable else "")
                + (f", extrapolate={self.extrapolate!r}" if self.extrapolate != "spline" else "")
                + (", input_scaling=True)" if self._input_map is not None else ")"))

    # -- computation ----------------------------------------------------------------------
    def prepare_inputs(self, x):
        """Raw inputs (batch, width[0]) validated (ValueError) and mapped to what the first layer
        sees, (x - shift) * scale with ``scale_inputs``' map.  Every method taking raw inputs goes
        through here exactly once; the feature modules pass the result on."""
        x = as_batch(x, xp=self.xp, dtype=self.dtype, n_features=self.width[0], name="x")
        return x if self._input_map is None else self._input_map.apply(x)

    def forward(self, x):
        """(batch, width[0]) -> (batch, width[-1])."""
        x = self.prepare_inputs(x)
        return stack.forward(self.layers, resources.checked_batch(self.layers, x))

    __call__ = forward

    def value_and_grad(self, x, y, *, loss: str = "mse", lamb: float = 0.0, lamb_l1: float = 1.0,
                       lamb_entropy: float = 2.0, lamb_coef: float = 0.0, lamb_coefdiff: float = 0.0):
        """(loss(model(x), y) + lamb * reg as a 0-d array, its gradients keyed like ``parameters()``);
        y (batch, width[-1]), or labels (batch,) for "cross_entropy"; lamb*: ``kanarray.regularization``."""
        reg = Regularization(lamb, lamb_l1, lamb_entropy, lamb_coef, lamb_coefdiff)
        x = self.prepare_inputs(x)
        reg.check_batch(x.shape[0])
        y = check_targets(self, y, x.shape[0], loss)
        resources.check_forward(self.layers, x.shape[0], training=True, per_edge=reg.active)
        ev = evaluate(self, x, y, loss=loss, reg=reg)
        return ev.objective, ev.grads

    def vjp(self, x, gy):
        """Vector-Jacobian product: x (batch, width[0]), gy (batch, width[-1]) -> (y, grads of
        sum(gy * y) by parameter, dx (batch, width[0]) with respect to the raw x)."""
        x = self.prepare_inputs(x)
        gy = check_outputs(self, gy, x.shape[0])
        resources.check_forward(self.layers, x.shape[0], training=True)
        out, caches = stack.forward_cached(self.layers, x, need_dx=True)
        grads, dx = stack.backward(self.layers, caches, gy, need_dx=True, names=self.parameters())
        if self._input_map is not None:
            dx = dx * self._input_map.scale_x
        return out, grads, dx

    # -- training and grids -------------------------------------------------------------------
    def fit(self, x, y=None, settings: FitSettings | None = None, *, validation=None, comm=None, **options):
        """Train in place on x (N, width[0]), y (N, width[-1]) or (N,) (labels (N,) for "cross_entropy"), or on
        pykan's dataset dict as x (the test split validates); returns a ``History`` (``training``).  The settings
        (``FitSettings``: steps, opt, lr, batch_size, loss, lamb..., update_grid, ...) come as
        keywords, or as a ``FitSettings`` that keywords amend.  validation: (x_val, y_val), evaluated
        every step.  Any error restores the last finite parameters; a non-finite or unboundedly
        growing objective (``kanarray.recovery``) raises ``TrainingDiverged``.  comm: mpi4py's."""
        x, y, validation = datasets.fit_arguments(x, y, validation)
        return training.fit(self, x, y, settings, validation=validation, comm=comm, **options)

    # predictions, values or labels by ``task`` (``kanarray.prediction``): predict(x, task=None), predict_proba(x),
    # score(x, y, task=None); scikit-learn's conventions
    predict, predict_proba, score = prediction.predict, prediction.predict_proba, prediction.score
    # input derivatives (``kanarray.jets``): derivatives(x, order=2, mixed=False), derivatives_vjp(x, gu, gdu, gd2u, ...)
    derivatives, derivatives_vjp = jets.derivatives, jets.derivatives_vjp

    def update_grid(self, x, *, grid_eps: float = 0.02, grid_margin: float = 0.0, comm=None) -> None:
        """Adapt every grid to the samples x (batch, width[0]) in place, keeping the edge functions
        (``kanarray.grids``): knots at quantiles mixed with a uniform grid (weight grid_eps);
        grid_margin >= 0 moves the end knots out by that fraction of an interval; comm: shards
        (every rank checks its arguments, and a failure on any stops all: ``kanarray.distributed``)."""
        grids.update_grid(self, x, grid_eps=grid_eps, grid_margin=grid_margin, comm=comm)

    def refine(self, grid, x=None, *, comm=None) -> "KAN":
        """A new KAN with ``grid`` intervals (an int or one per layer) computing the same function
        (grid extension, ``kanarray.grids.refine``), fitted on x (default ``fit_inputs``); carry an
        optimizer over with ``opt.transferred(new.parameters())``.  comm: as in ``update_grid``."""
        return grids.refine_model(self, grid, x, comm=comm)

    # -- interpretation (samples x: (batch, width[0]), default ``fit_inputs``) -----------------
    def _interpret_samples(self, x):
        return symbolic.samples_of(self, x)

    def attribute(self, x=None):
        """pykan's attribution scores: an ``Attribution`` with edge_scores[l] (width[l], layers[l].out_dim,
        its sums) and node_scores[l] (width[l],) (``kanarray.pruning``)."""
        return pruning.attribute(self, self._interpret_samples(x))

    def prune_node(self, x=None, threshold: float = 1e-2) -> "KAN":
        """A new KAN without the hidden nodes whose attribution score is <= threshold."""
        return pruning.prune_node(self, self._interpret_samples(x), threshold)

    def prune_to_width(self, width, x=None) -> "KAN":
        """A new KAN of the given width (e.g. [2, 2, 1]): each hidden layer keeps its
        highest-scoring nodes; for pruning to a known shape rather than by threshold."""
        return pruning.prune_to_width(self, self._interpret_samples(x), width)

    def prune_edge(self, x=None, threshold: float = 3e-2) -> "KAN":
        """A new KAN with the edges whose attribution score is <= threshold masked out."""
        return pruning.prune_edge(self, self._interpret_samples(x), threshold)

    def prune(self, x=None, node_th: float = 1e-2, edge_th: float = 3e-2) -> "KAN":
        """A new, smaller KAN: ``prune_node(node_th)`` then ``prune_edge(edge_th)`` with fresh
        scores; the kept nodes and edges compute what they computed before."""
        return pruning.prune(self, self._interpret_samples(x), node_th, edge_th)

    def suggest_symbolic(self, l, i, j, lib=None, topk: int = 5, *, x=None, weight_simple: float = 0.8):
        """Library functions c * f(a x + b) + d ranked for edge (layer l, input i, output j), best
        first: a list of ``Candidate`` (name, r2, complexity, params (a, b, c, d), score); lib:
        names from ``kanarray.symbolic.LIBRARY`` (default all)."""
        return symbolic.suggest_symbolic(self, l, i, j, lib=lib, topk=topk, x=x, weight_simple=weight_simple)

    def fix_symbolic(self, l, i, j, name, *, x=None, fit_params: bool = True, params=None):
        """Replace edge (l, i, j) by c * f(a x + b) + d, f the library function ``name``, fitted to
        the edge on samples x; returns R^2 of the fit (None if ``params`` = (a, b, c, d) are
        given instead).  In place; (a, b, c, d) are trained by later fits."""
        return symbolic.fix_symbolic(self, l, i, j, name, x=x, fit_params=fit_params, params=params)

    def unfix_symbolic(self, l, i, j) -> None:
        """Give symbolic edge (l, i, j) its spline back."""
        symbolic.unfix_symbolic(self, l, i, j)

    def auto_symbolic(self, lib=None, r2_threshold: float = 0.99, weight_simple: float = 0.8, *, x=None):
        """Fix every spline edge to the best-ranked library function (pykan's score, lower is
        better) among those with R^2 >= r2_threshold; the others stay splines.  In place; returns
        an ``AutoSymbolicReport`` (``.fixed``, ``.kept``, printable)."""
        return symbolic.auto_symbolic(self, lib=lib, r2_threshold=r2_threshold, weight_simple=weight_simple, x=x)

    def symbolic_formula(self, var_names=None, digits: int = 4, simplify: bool = True, *, on_mismatch="warn",
                         with_variables: bool = False):
        """One sympy expression per output (biases included), numbers rounded to ``digits`` decimals and checked
        against the model (on_mismatch "warn", "raise" or "ignore"); ValueError listing any spline edges; pykan's
        (formulas, input symbols) with with_variables=True."""
        return formula.symbolic_formula(self, var_names, digits, simplify, on_mismatch=on_mismatch,
                                        with_variables=with_variables)

    def plot(self, path=None, x=None, *, in_vars=None, out_vars=None, title=None, beta: float = 3.0):
        """The network, each edge's curve over its samples' range (``plotting.plot_model``): a PNG
        at ``path`` (returns None), or, with no path, the matplotlib Figure."""
        return plotting.plot_model(self, path, x=x, in_vars=in_vars, out_vars=out_vars, title=title, beta=beta)

    # -- checkpoints and moves ------------------------------------------------------------
    def save(self, path, *, optimizer=None) -> None:
        """Write the model (and an optimizer's state) to one file, atomically and without
        pickle; read it back with ``kanarray.load(path)`` (``kanarray.checkpoint``)."""
        checkpoint.save(self, path, optimizer=optimizer)

    def copy(self) -> "KAN":
        """An independent copy (also by copy.copy/deepcopy): branch before auto_symbolic, which works in place."""
        return copying.deep_copy(self)

    __copy__, __deepcopy__ = copy, copying.deep_copy
    to_pykan = pykan_convert.to_pykan  # kanarray.pykan_convert: a pykan MultKAN computing the same function

    def to(self, backend=None, *, dtype=None) -> "KAN":
        """Move the model (input scaling and ``fit_inputs`` too) to another backend and/or dtype in
        place, returning it; everything is built before anything is swapped in."""
        return _move(self, backend, dtype)


def _fit_signature() -> inspect.Signature:
    """``KAN.fit``'s signature with every ``FitSettings`` field as a keyword (for help() and IDEs)."""
    base = inspect.signature(KAN.fit)
    settings = [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default)
                for f in dataclasses.fields(FitSettings) if f.init]
    fixed = [p for p in base.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    return base.replace(parameters=fixed + settings)


KAN.fit.__signature__ = _fit_signature()


def load(path, *, backend="numpy", dtype=None) -> KAN:
    """The KAN saved at ``path`` (``KAN.save``), on ``backend`` (whichever it was saved from) in
    ``dtype`` (default: the saved one); bit-exact when the dtype is unchanged.  Raises
    ``CheckpointError`` naming what is wrong with a damaged or foreign file (``kanarray.checkpoint``)."""
    return checkpoint.read_model(path, build=KAN.from_layers, backend=backend, dtype=dtype)


def from_pykan(model, *, backend="numpy", dtype: str = "float64") -> KAN:
    """The KAN computing what a live pykan 0.2.8 KAN (MultKAN) computes: grids, coefficients, scales, masks,
    node biases and affine, multiplication nodes and symbolic edges; float64 on NumPy, then moved to
    ``backend``/``dtype``.  Needs torch; raises ``PykanConversionError`` naming what kanarray cannot hold
    (``kanarray.pykan_convert``)."""
    return pykan_convert.from_pykan(model, KAN.from_layers, backend=backend, dtype=dtype)


def from_pykan_checkpoint(path, *, backend="numpy", dtype: str = "float64") -> KAN:
    """The KAN of the files pykan's ``model.saveckpt(path)`` wrote (path + "_config.yml", path + "_state"), as
    ``from_pykan`` converts it.  Needs torch and PyYAML (not pykan); unpickles tensors only."""
    return pykan_convert.from_pykan_checkpoint(path, KAN.from_layers, backend=backend, dtype=dtype)
