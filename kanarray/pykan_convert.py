"""Moving models between pykan 0.2.8 and kanarray: ``from_pykan``, ``from_pykan_checkpoint``, ``to_pykan``.

pykan's MultKAN (the class its tutorials call KAN) holds per layer l, with n inputs, m sums
("sub-nodes") and n_nodes nodes:

    act_fun[l]        grid (n, G + 2k + 1), coef (n, m, G + k), scale_base, scale_sp, mask (n, m)
    symbolic_fun[l]   funs_name [m][n], affine (m, n, 4) of (a, b, c, d), mask (m, n): indexed (out, in)
    subnode_scale[l], subnode_bias[l] (m,), node_scale[l], node_bias[l] (n_nodes,)

around the multiplication nodes of width[l + 1] = [n_add, n_mult] and ``mult_arity``.  kanarray's
``KANLayer`` holds the spline arrays as they are, the symbolic edges (in, out)-indexed
(``SymbolicEdges``, names mapped by ``FROM_PYKAN_NAMES``) and a ``NodeStage``.  Per layer:

    no multiplication nodes, scales 1, subnode_bias 0, affine not trainable
        -> no node stage, bias = node_bias
    otherwise
        -> NodeStage(the four arrays, trainable = affine_trainable), bias = 0

and back (``to_pykan``): node_bias = bias without a stage; with one, subnode_bias = subnode_scale *
bias + subnode_bias (the stage's own when bias is 0), the rest copied.  So kanarray -> pykan ->
kanarray gives the same arrays bit for bit (a stage that does nothing comes back as none).

What kanarray cannot hold is refused with a ``PykanConversionError`` naming it: an edge whose
spline and symbolic function are both live, ``input_id`` other than the identity (after
``prune_input``), a base function other than SiLU / identity / zero, a symbolic function with no
kanarray counterpart (``anonymous`` ones passed as callables); and the other way, input scaling,
``extrapolate="linear"`` and library functions pykan does not have.

torch, PyYAML and pykan are imported inside the functions: importing kanarray imports none of them.
A checkpoint's state is read with ``torch.load(weights_only=True)``: tensors only, never arbitrary
pickled objects.
"""

from __future__ import annotations

import dataclasses
import os
import random
import tempfile

import numpy as np

from . import nodes
from ._checks import check_grid_range, check_order
from ._namespace import resolve_backend, to_numpy
from .layer import KANLayer
from .nodes import NodeStage
from .symbolic.edges import SymbolicEdges

__all__ = ["PykanConversionError", "FROM_PYKAN_NAMES", "TO_PYKAN_NAMES", "from_pykan", "from_pykan_checkpoint",
           "to_pykan"]


class PykanConversionError(ValueError):
    """A pykan model or checkpoint (or a kanarray model bound for pykan) holds something the other
    side cannot represent; the message names it."""


# pykan's SYMBOLIC_LIB names with the same function in kanarray's LIBRARY (where both are defined:
# at a singularity kanarray's safe versions stay finite where pykan's give inf or nan)
_SHARED_NAMES = ("x", "x^2", "x^3", "x^4", "x^5", "1/x", "1/x^2", "1/x^3", "1/x^4", "1/x^5", "sqrt", "x^1.5",
                 "1/sqrt(x)", "exp", "log", "abs", "sin", "cos", "tan", "tanh", "sgn", "arcsin", "arccos", "arctan",
                 "arctanh", "gaussian", "0")
FROM_PYKAN_NAMES = {**{name: name for name in _SHARED_NAMES}, "x^0.5": "sqrt", "1/x^0.5": "1/sqrt(x)"}
TO_PYKAN_NAMES = {name: name for name in _SHARED_NAMES}

_BASE_FUNS = ("silu", "identity", "zero")
# the torch modules pykan's checkpoints name when base_fun was stored as an object (after prune_input)
_BASE_MODULES = {"torch.nn.modules.activation.SiLU": "silu", "torch.nn.modules.linear.Identity": "identity"}
_SPLINE_ARRAYS = ("grid", "coef", "scale_base", "scale_sp", "mask")
_NODE_ARRAYS = ("subnode_scale", "subnode_bias", "node_scale", "node_bias")


def _import(module: str, purpose: str, pip: str):
    try:
        return __import__(module)
    except ImportError:
        raise ImportError(f"{purpose} needs {module}, which is not installed: pip install {pip}") from None


# -- what is read from pykan, from a live model or a checkpoint --------------------------------
@dataclasses.dataclass
class _Layer:
    """One pykan layer's arrays as float64 NumPy copies, pykan's indexing (see the module docstring)."""

    arrays: dict  # grid, coef, scale_base, scale_sp, mask, sym_mask, sym_affine, and the node arrays
    funs_name: list  # [m][n]
    k: int
    base_fun: str


@dataclasses.dataclass
class _Peer:
    source: str  # "the pykan model" or "pykan checkpoint <path>", for messages
    width: list  # [[n_add, n_mult], ...]
    mult_arity: object
    layers: list
    affine_trainable: bool
    symbolic_enabled: bool
    grid_range: object
    cache_data: object  # (S, width[0]) float64 or None


def _host(torch, t, where: str) -> np.ndarray:
    if not isinstance(t, torch.Tensor):
        raise PykanConversionError(f"{where} must be a torch tensor, got {type(t).__name__}")
    if not (t.is_floating_point() or t.dtype in (torch.int32, torch.int64)):
        raise PykanConversionError(f"{where} must hold real numbers, got {t.dtype}")
    return np.array(t.detach().to(device="cpu", dtype=torch.float64).numpy(), dtype=np.float64)


def _int(value, where: str) -> int:
    try:
        out = int(value)
    except (TypeError, ValueError):
        raise PykanConversionError(f"{where} must be an int, got {value!r}") from None
    if out != value:
        raise PykanConversionError(f"{where} must be an int, got {value!r}")
    return out


def _width(width, where: str) -> list:
    """pykan's width (entries [n_add, n_mult], or ints) as a list of int pairs."""
    if not isinstance(width, (list, tuple)) or len(width) < 2:
        raise PykanConversionError(f"{where}: width must list at least two entries, got {width!r}")
    return [[_int(w[0], f"{where}: width[{i}][0]"), _int(w[1], f"{where}: width[{i}][1]")]
            if isinstance(w, (list, tuple)) and len(w) == 2 else [_int(w, f"{where}: width[{i}]"), 0]
            for i, w in enumerate(width)]


def _mult_arity(value, where: str):
    if isinstance(value, (list, tuple)):
        return [_mult_arity(v, where) for v in value]
    return _int(value, f"{where}: mult_arity")


def _live_base_fun(torch, fn, where: str) -> str:
    """pykan stores base_fun as a torch module (SiLU, Identity) or, for "zero", a function x * 0."""
    if isinstance(fn, torch.nn.SiLU) or fn is torch.nn.functional.silu:
        return "silu"
    if isinstance(fn, torch.nn.Identity):
        return "identity"
    try:
        probe = fn(torch.linspace(-3.0, 3.0, 13, dtype=torch.float64))
        zero = isinstance(probe, torch.Tensor) and probe.shape == (13,) and not bool(torch.any(probe != 0))
    except Exception:  # noqa: BLE001 - any failure means it is not pykan's zero function
        zero = False
    if zero:
        return "zero"
    raise PykanConversionError(f"{where}: base_fun {fn!r} has no kanarray counterpart; kanarray's base functions "
                               "are SiLU (torch.nn.SiLU()), identity (torch.nn.Identity()) and zero")


def _read_live(torch, peer) -> _Peer:
    source = "the pykan model"
    width = _width(peer.width, source)
    input_id = getattr(peer, "input_id", None)
    if input_id is not None:
        ids = _host(torch, input_id, f"{source}: input_id")
        if ids.shape != (width[0][0],) or np.any(ids != np.arange(width[0][0])):
            raise PykanConversionError(
                f"{source}: input_id is {ids.astype(np.int64).tolist()} (pykan's prune_input keeps inputs by "
                f"selecting columns), but a kanarray model takes its {width[0][0]} inputs as they come; pass "
                f"x[:, input_id] yourself and set model.input_id = torch.arange({width[0][0]}) before converting")
    if not len(peer.act_fun) == len(peer.symbolic_fun) == len(width) - 1:
        raise PykanConversionError(f"{source}: {len(peer.act_fun)} spline layers and {len(peer.symbolic_fun)} "
                                   f"symbolic layers for a width of {len(width)} entries")
    layers = []
    for l, (act, sym) in enumerate(zip(peer.act_fun, peer.symbolic_fun)):
        where = f"{source}, layer {l}"
        arrays = {name: _host(torch, getattr(act, name), f"{where}: act_fun.{name}") for name in _SPLINE_ARRAYS}
        arrays["sym_mask"] = _host(torch, sym.mask, f"{where}: symbolic_fun.mask")
        arrays["sym_affine"] = _host(torch, sym.affine, f"{where}: symbolic_fun.affine")
        for name in _NODE_ARRAYS:
            arrays[name] = _host(torch, getattr(peer, name)[l], f"{where}: {name}")
        layers.append(_Layer(arrays, [list(row) for row in sym.funs_name], _int(act.k, f"{where}: k"),
                             _live_base_fun(torch, act.base_fun, where)))
    cache = getattr(peer, "cache_data", None)
    return _Peer(source, width, _mult_arity(peer.mult_arity, source), layers, bool(peer.affine_trainable),
                 bool(peer.symbolic_enabled), getattr(peer, "grid_range", None),
                 None if cache is None else _host(torch, cache, f"{source}: cache_data"))


# -- checkpoints ---------------------------------------------------------------------------------
class _PythonObject:
    """What a ``!!python/...`` YAML tag named; nothing is constructed (the tag suffix is kept)."""

    def __init__(self, suffix: str):
        self.suffix = suffix

    def __repr__(self) -> str:
        return f"<python object {self.suffix}>"


def _read_config(yaml, path: str) -> dict:
    class Loader(yaml.SafeLoader):
        """SafeLoader that reads pykan's ``!!python/object:torch...`` tags as inert markers."""

    Loader.add_multi_constructor("tag:yaml.org,2002:python/", lambda loader, suffix, node: _PythonObject(suffix))
    try:
        with open(path, encoding="utf-8") as stream:
            config = yaml.load(stream, Loader=Loader)  # a SafeLoader: it constructs no Python objects
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise PykanConversionError(f"{path} is not a pykan config (YAML): {exc}") from None
    if not isinstance(config, dict):
        raise PykanConversionError(f"{path} is not a pykan config: expected a mapping, got {type(config).__name__}")
    missing = [key for key in ("width", "mult_arity", "base_fun_name") if key not in config]
    if missing:
        raise PykanConversionError(f"{path} is not a pykan config: it lacks {missing}")
    return config


def _read_state(torch, path: str) -> dict:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - an unpickling error of any kind names the file
        raise PykanConversionError(f"{path} is not a pykan state file that torch.load(weights_only=True) reads "
                                   f"(tensors only; no other pickled objects are read): {exc}") from None
    if not isinstance(state, dict):
        raise PykanConversionError(f"{path}: expected pykan's state_dict (a mapping), got {type(state).__name__}")
    return state


def _checkpoint_base_fun(value, path: str) -> str:
    if isinstance(value, _PythonObject) and value.suffix.startswith("object:"):
        value = _BASE_MODULES.get(value.suffix[len("object:"):], value)
    if isinstance(value, str) and value in _BASE_FUNS:
        return value
    raise PykanConversionError(f"{path}: base_fun_name {value!r} has no kanarray counterpart; kanarray's base "
                               f"functions are {list(_BASE_FUNS)}")


def _read_checkpoint(torch, yaml, path: str) -> _Peer:
    config = _read_config(yaml, path + "_config.yml")
    state = _read_state(torch, path + "_state")
    source = f"pykan checkpoint {path!r}"
    width = _width(config["width"], source)
    base_fun = _checkpoint_base_fun(config["base_fun_name"], path + "_config.yml")
    layers = []
    for l in range(len(width) - 1):
        keys = {**{name: f"act_fun.{l}.{name}" for name in _SPLINE_ARRAYS}, "sym_mask": f"symbolic_fun.{l}.mask",
                "sym_affine": f"symbolic_fun.{l}.affine", **{name: f"{name}_{l}" for name in _NODE_ARRAYS}}
        missing = [key for key in keys.values() if key not in state]
        names = config.get(f"symbolic.funs_name.{l}")
        if missing or not isinstance(names, list):
            raise PykanConversionError(f"{source} is incomplete for layer {l}: "
                                       + (f"the state lacks {missing}" if missing else
                                          f"the config lacks symbolic.funs_name.{l}"))
        arrays = {name: _host(torch, state[key], f"{source}: {key}") for name, key in keys.items()}
        if arrays["grid"].ndim != 2 or arrays["coef"].ndim != 3:
            raise PykanConversionError(f"{source}: layer {l}'s grid must be 2-d and coef 3-d, got shapes "
                                       f"{arrays['grid'].shape} and {arrays['coef'].shape}")
        k = arrays["grid"].shape[1] - arrays["coef"].shape[2] - 1
        layers.append(_Layer(arrays, [list(row) if isinstance(row, list) else row for row in names], k, base_fun))
    cache = None
    if os.path.isfile(path + "_cache_data"):
        loaded = _read_state_value(torch, path + "_cache_data")
        cache = None if loaded is None else _host(torch, loaded, f"{source}: cache_data")
    affine_trainable = config.get("affine_trainable", False)
    if not isinstance(affine_trainable, bool):
        raise PykanConversionError(f"{source}: affine_trainable must be true or false, got {affine_trainable!r}")
    return _Peer(source, width, _mult_arity(config["mult_arity"], source), layers, affine_trainable,
                 bool(config.get("symbolic_enabled", True)), config.get("grid_range"), cache)


def _read_state_value(torch, path: str):
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        raise PykanConversionError(f"{path} is not a tensor file that torch.load(weights_only=True) reads: "
                                   f"{exc}") from None


# -- building the kanarray model ------------------------------------------------------------------
def _symbolic(peer: _Peer, l: int, layer: _Layer, xp):
    """(names (n, m) with None off the symbolic edges, affine (n, m, 4)) of layer l."""
    a = layer.arrays
    n, m = a["mask"].shape
    where = f"{peer.source}, layer {l}"
    if a["sym_mask"].shape != (m, n) or a["sym_affine"].shape != (m, n, 4):
        raise PykanConversionError(f"{where}: symbolic_fun's mask {a['sym_mask'].shape} and affine "
                                   f"{a['sym_affine'].shape} must be {(m, n)} and {(m, n, 4)} (out, in)")
    on = a["sym_mask"].T if peer.symbolic_enabled else np.zeros((n, m))
    odd = np.argwhere((on != 0) & (on != 1))
    if odd.size:
        i, o = odd[0]
        raise PykanConversionError(f"{where}: edge ({i}, {o}) has symbolic mask {float(on[i, o])!r}; kanarray takes 0 "
                                   "(no function) or 1")
    if len(layer.funs_name) != m or any(not isinstance(row, list) or len(row) != n for row in layer.funs_name):
        raise PykanConversionError(f"{where}: symbolic funs_name must be {m} lists of {n} names (out, in)")
    both = np.argwhere((on == 1) & (a["mask"] != 0))
    if both.size:
        i, o = both[0]
        raise PykanConversionError(
            f"{where}: edge ({i}, {o}) computes both its spline (mask {float(a['mask'][i, o])!r}) and its symbolic "
            f"function {layer.funs_name[o][i]!r} (pykan's mode 'sn'), which kanarray does not support: its symbolic "
            f"edges have the spline off (mask 0); set act_fun[{l}].mask[{i}, {o}] = 0 or symbolic_fun[{l}].mask"
            f"[{o}, {i}] = 0 first")
    names = [[None] * m for _ in range(n)]
    for i, o in np.argwhere(on == 1):
        name = layer.funs_name[o][i]
        if name not in FROM_PYKAN_NAMES:
            raise PykanConversionError(f"{where}: edge ({i}, {o}) is the symbolic function {name!r}, which has no "
                                       f"kanarray counterpart; supported: {sorted(FROM_PYKAN_NAMES)}")
        names[i][o] = FROM_PYKAN_NAMES[name]
    affine = np.where((on == 1)[:, :, None], a["sym_affine"].transpose(1, 0, 2), 0.0)
    return SymbolicEdges(names, xp.asarray(np.ascontiguousarray(affine)), xp)


def _stage(peer: _Peer, l: int, n_add: int, arities, xp):
    """(bias (m,), NodeStage or None) of layer l (the module docstring's rule)."""
    a = peer.layers[l].arrays
    m = a["coef"].shape[1]
    n_nodes = n_add + len(arities)
    where = f"{peer.source}, layer {l}"
    if n_add + sum(arities) != m:
        raise PykanConversionError(f"{where}: act_fun has {m} sums, but width[{l + 1}] (n_add {n_add}, arities "
                                   f"{list(arities)}) needs {n_add + sum(arities)}")
    for name, size in (("subnode_scale", m), ("subnode_bias", m), ("node_scale", n_nodes), ("node_bias", n_nodes)):
        if a[name].shape != (size,):
            raise PykanConversionError(f"{where}: {name} must have shape {(size,)}, got {a[name].shape}")
    if (not arities and not peer.affine_trainable and np.all(a["subnode_scale"] == 1) and np.all(a["node_scale"] == 1)
            and not np.any(a["subnode_bias"])):
        return xp.asarray(a["node_bias"]), None
    stage = NodeStage(n_add, arities, xp=xp, trainable=peer.affine_trainable,
                      **{name: xp.asarray(a[name]) for name in _NODE_ARRAYS})
    return xp.zeros(m, dtype=xp.float64), stage


def _grid_range(peer: _Peer, layers) -> list:
    """pykan's model-wide grid_range for every layer where it is a valid range there, else (-1, 1)."""
    out = []
    for layer in layers:
        try:
            out.append(check_grid_range(peer.grid_range, "grid_range", num=layer.num, k=layer.k, dtype="float64"))
        except (ValueError, TypeError):
            out.append((-1.0, 1.0))
    return out


def _build(peer: _Peer, build, backend, dtype):
    try:
        counts, n_add, arities = nodes.parse_width(peer.width, peer.mult_arity)
    except ValueError as exc:
        raise PykanConversionError(f"{peer.source}: width {peer.width} with mult_arity {peer.mult_arity!r}: "
                                   f"{exc}") from None
    base_funs = sorted({layer.base_fun for layer in peer.layers})
    if len(base_funs) != 1:
        raise PykanConversionError(f"{peer.source}: its layers use different base functions {base_funs}; a kanarray "
                                   "model has one")
    xp = resolve_backend("numpy")
    layers = []
    for l, layer in enumerate(peer.layers):
        a = layer.arrays
        if a["coef"].ndim != 3 or a["coef"].shape[0] != counts[l]:
            raise PykanConversionError(f"{peer.source}, layer {l}: coef has shape {a['coef'].shape}, but width[{l}] "
                                       f"has {counts[l]} nodes (coef must be (in, sums, G + k))")
        num = a["grid"].shape[1] - 2 * layer.k - 1 if a["grid"].ndim == 2 else 0
        try:
            check_order(layer.k, f"k of layer {l}")
        except ValueError as exc:
            raise PykanConversionError(f"{peer.source}, layer {l}: {exc} (from grid {a['grid'].shape} and coef "
                                       f"{a['coef'].shape})") from None
        if num < 1 or a["grid"].shape[0] != counts[l] or a["coef"].shape[2] != num + layer.k:
            raise PykanConversionError(f"{peer.source}, layer {l}: grid {a['grid'].shape} and coef {a['coef'].shape} "
                                       f"do not form a spline layer of order k = {layer.k} (grid (in, G + 2k + 1), "
                                       "coef (in, sums, G + k), G >= 1)")
        bias, stage = _stage(peer, l, n_add[l + 1], arities[l + 1], xp)
        symbolic = _symbolic(peer, l, layer, xp)
        try:
            layers.append(KANLayer(**{name: xp.asarray(a[name]) for name in _SPLINE_ARRAYS}, bias=bias, k=layer.k,
                                   base_fun=layer.base_fun, xp=xp, symbolic=symbolic, nodes=stage))
        except ValueError as exc:
            raise PykanConversionError(f"{peer.source}, layer {l}: {exc}") from None
    cache = peer.cache_data
    fit_inputs = (xp.asarray(cache) if cache is not None and cache.ndim == 2 and cache.shape[1] == counts[0]
                  and np.all(np.isfinite(cache)) else None)
    try:
        model = build(layers, base_fun=base_funs[0], grid_range=_grid_range(peer, layers), dtype_name="float64",
                      fit_inputs=fit_inputs)
    except ValueError as exc:
        raise PykanConversionError(f"{peer.source}: {exc}") from None
    if not (isinstance(backend, str) and backend.lower() == "numpy" and dtype == "float64"):
        model.to(backend, dtype=dtype)
    return model


def from_pykan(peer, build, *, backend="numpy", dtype: str = "float64"):
    """The kanarray model (``build(layers, **attributes)``: ``KAN.from_layers``) computing what the live pykan
    0.2.8 KAN/MultKAN ``peer`` computes: float64 on NumPy, then moved to ``backend``/``dtype``.  pykan's
    ``cache_data`` (S, width[0]) becomes ``fit_inputs``.  ``PykanConversionError`` names what does not carry."""
    if not all(hasattr(peer, name) for name in ("act_fun", "symbolic_fun", "width", "mult_arity", "node_bias")):
        raise PykanConversionError(f"from_pykan takes a pykan 0.2.8 KAN (MultKAN), got {type(peer).__name__}")
    torch = _import("torch", "from_pykan", "torch")
    return _build(_read_live(torch, peer), build, backend, dtype)


def from_pykan_checkpoint(path, build, *, backend="numpy", dtype: str = "float64"):
    """The kanarray model of the pykan checkpoint that ``saveckpt(path)`` wrote (path + "_config.yml", path +
    "_state", and path + "_cache_data" if there, as ``fit_inputs``), as ``from_pykan`` builds it; needs torch
    and PyYAML, not pykan.  Only tensors are unpickled (``torch.load(weights_only=True)``)."""
    path = os.fspath(path)
    for suffix in ("_config.yml", "_state"):
        if not os.path.isfile(path + suffix):
            raise FileNotFoundError(f"no pykan checkpoint at {path!r}: {path + suffix!r} does not exist (pykan's "
                                    "saveckpt(path) writes path + '_config.yml' and path + '_state')")
    torch = _import("torch", "from_pykan_checkpoint", "torch")
    yaml = _import("yaml", "from_pykan_checkpoint (pykan's config is YAML)", "pyyaml")
    return _build(_read_checkpoint(torch, yaml, path), build, backend, dtype)


# -- to pykan -------------------------------------------------------------------------------------
def _affine_trainable_for_pykan(model) -> bool:
    """pykan's affine_trainable for ``model``; PykanConversionError for what pykan cannot represent."""
    if model.input_scaling is not None:
        raise PykanConversionError("to_pykan: the model maps its inputs (scale_inputs), which pykan cannot; scale "
                                   "the inputs yourself, or train a model without scale_inputs")
    if model.extrapolate != "spline":
        raise PykanConversionError(f"to_pykan: the model's splines continue as {model.extrapolate!r} beyond their "
                                   "grids; pykan's splines run on as B-splines (extrapolate='spline')")
    for l, layer in enumerate(model.layers):
        for i, o, name in layer.symbolic.edges():
            if name not in TO_PYKAN_NAMES:
                raise PykanConversionError(f"to_pykan: edge ({l}, {i}, {o}) is the symbolic function {name!r}, "
                                           f"which pykan's library lacks; pykan has {list(TO_PYKAN_NAMES)}")
    flags = [None if layer.nodes is None else layer.nodes.trainable for layer in model.layers]
    if True in flags and set(flags) != {True}:
        raise PykanConversionError(f"to_pykan: pykan trains the node affine of every layer or of none "
                                   f"(affine_trainable), but the layers' node stages are trainable as {flags} "
                                   "(None: no stage)")
    return True in flags


def _one_or_list(values: list):
    return values[0] if len(set(values)) == 1 else list(values)


def _pykan_mult_arity(model):
    arities = {a for layer in model.layers if layer.nodes is not None for a in layer.nodes.arities}
    return (arities.pop() if arities else 2) if len(arities) <= 1 else model.mult_arity


def _fill(torch, peer, model) -> None:
    """Copy ``model``'s arrays into the new pykan model (under torch.no_grad)."""
    def tensor(a):
        return torch.from_numpy(np.array(to_numpy(a), dtype=np.float64, order="C"))

    from kan.utils import SYMBOLIC_LIB

    for l, layer in enumerate(model.layers):
        act, sym = peer.act_fun[l], peer.symbolic_fun[l]
        for name in _SPLINE_ARRAYS:
            getattr(act, name).data = tensor(getattr(layer, name))
        bias = np.asarray(to_numpy(layer.bias), dtype=np.float64)
        if layer.nodes is None:
            arrays = dict(subnode_scale=np.ones_like(bias), subnode_bias=np.zeros_like(bias),
                          node_scale=np.ones_like(bias), node_bias=bias)
        else:
            arrays = layer.nodes.host_arrays()
            if np.any(bias):
                arrays["subnode_bias"] = arrays["subnode_scale"] * bias + arrays["subnode_bias"]
        for name in _NODE_ARRAYS:
            getattr(peer, name)[l].data = tensor(arrays[name])
        on = np.zeros((layer.out_dim, layer.in_dim))
        for i, o, name in layer.symbolic.edges():
            pykan_name = TO_PYKAN_NAMES[name]
            on[o, i] = 1.0
            sym.funs_name[o][i] = pykan_name
            sym.funs[o][i], sym.funs_sympy[o][i], _, sym.funs_avoid_singularity[o][i] = SYMBOLIC_LIB[pykan_name]
        sym.mask.data = torch.from_numpy(on)
        sym.affine.data = tensor(np.asarray(to_numpy(layer.symbolic.affine)).transpose(1, 0, 2))
    if model.fit_inputs is not None:
        peer.cache_data = tensor(model.fit_inputs)


def to_pykan(model, ckpt_path=None):
    """A pykan 0.2.8 MultKAN computing what ``model`` computes: float64 parameters, auto_save=False,
    ckpt_path (default: a folder under the temp dir, created only if pykan saves there), ``fit_inputs`` as
    its ``cache_data``.  The random state of torch, NumPy and ``random`` (which pykan's constructor
    reseeds) is restored.  ``PykanConversionError`` for input scaling, extrapolate="linear", symbolic
    functions pykan lacks, and node stages trainable on some layers only."""
    torch = _import("torch", "to_pykan", "torch")
    kan = _import("kan", "to_pykan", "pykan==0.2.8")
    affine_trainable = _affine_trainable_for_pykan(model)
    if ckpt_path is None:
        ckpt_path = os.path.join(tempfile.gettempdir(), "kanarray-pykan")
    previous, states = torch.get_default_dtype(), (torch.get_rng_state(), np.random.get_state(), random.getstate())
    try:
        torch.set_default_dtype(torch.float64)
        peer = kan.MultKAN(width=[list(w) for w in model.node_width], grid=_one_or_list(model.grid),
                           k=_one_or_list(model.k), mult_arity=_pykan_mult_arity(model), base_fun=model.base_fun,
                           affine_trainable=affine_trainable, grid_range=list(model.grid_range[0]),
                           symbolic_enabled=True, auto_save=False, ckpt_path=os.fspath(ckpt_path), device="cpu")
        with torch.no_grad():
            _fill(torch, peer, model)
    finally:
        torch.set_default_dtype(previous)
        torch.set_rng_state(states[0])
        np.random.set_state(states[1])
        random.setstate(states[2])
    return peer
