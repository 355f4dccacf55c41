"""Checkpoints: one zip file holding ``kanarray.json`` (format tag, version, model config,
array manifest, optional optimizer config) and one ``.npy`` member per array.

Version 2 adds the input scaling (``KAN.scale_inputs``): arrays ``model/input_shift`` and
``model/input_scale`` (float64, (width[0],)).  A model without one is written as version 1,
which older kanarray versions read too; both versions are read.

No pickle anywhere: arrays are written and read by ``numpy.lib.format`` with
``allow_pickle=False`` and must be real floating point.  ``save`` writes a temporary file in
the target directory and renames it over the target, so an interrupted save leaves any
previous file intact.  ``read_model`` (``kanarray.load``) checks the format tag, the version, every member's CRC (zip),
dtype, shape (against the manifest and against each other) and finiteness before building
anything, and raises ``CheckpointError`` (a ValueError) naming what was wrong.
"""

from __future__ import annotations

import io
import json
import os
import zipfile

import numpy as np

from ._atomic import atomic_write
from ._namespace import resolve_backend, to_numpy

__all__ = ["CheckpointError", "save", "read_model", "load_optimizer", "FORMAT", "VERSION"]

FORMAT = "kanarray-checkpoint"
VERSION = 2  # the newest version, written when the model has an input scaling; 1 otherwise
_READABLE = (1, 2)
_HEADER = "kanarray.json"


class CheckpointError(ValueError):
    """A file that is not a readable kanarray checkpoint."""


def _npy_bytes(a) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.ascontiguousarray(to_numpy(a)), allow_pickle=False)
    return buf.getvalue()


def save(model, path, optimizer=None) -> None:
    """Write ``model`` (and ``optimizer``'s state, if given) to ``path`` atomically."""
    path = os.fspath(path)
    if optimizer is not None:
        optimizer.check_bound(model.parameters())
    arrays = {}
    for l, layer in enumerate(model.layers):
        for name, a in layer.arrays().items():
            arrays[f"model/layers.{l}.{name}"] = a
        arrays[f"model/layers.{l}.sym_affine"] = layer.symbolic.affine
    scaling = model.input_scaling
    if scaling is not None:
        arrays["model/input_shift"], arrays["model/input_scale"] = scaling
    header = {
        "format": FORMAT,
        "version": VERSION if scaling is not None else 1,
        "model": {
            "width": list(model.width),
            "k": list(model.k),
            "base_fun": model.base_fun,
            "grid_range": [list(r) for r in model.grid_range],
            "seed": model.seed,
            "dtype": model.dtype_name,
            "bias_trainable": model.bias_trainable,
            "extrapolate": model.extrapolate,
            # per layer, (in_dim, out_dim) library names of the symbolic edges, null elsewhere
            "symbolic": [[list(row) for row in layer.symbolic.names] for layer in model.layers],
        },
        "optimizer": None,
    }
    if optimizer is not None:
        config, opt_arrays = optimizer.state_dict()
        header["optimizer"] = config
        for name, a in opt_arrays.items():
            arrays[f"optimizer/{name}"] = a
    header["arrays"] = {name: {"shape": list(a.shape), "dtype": str(to_numpy(a).dtype)} for name, a in arrays.items()}
    payload = {name: _npy_bytes(a) for name, a in arrays.items()}  # everything converted before writing

    with atomic_write(path) as fh:
        with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_STORED) as zf:
            zf.writestr(_HEADER, json.dumps(header, indent=1))
            for name, data in payload.items():
                zf.writestr(name + ".npy", data)


def _read(path):
    """(header, {name: numpy array}) after every check."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no checkpoint at {path!r}")
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise CheckpointError(f"{path!r} is not a kanarray checkpoint (not a zip archive, or truncated)") from exc
    with zf:
        try:
            header = json.loads(zf.read(_HEADER).decode("utf-8"))
        except KeyError:
            raise CheckpointError(f"{path!r} is not a kanarray checkpoint (no {_HEADER} inside)") from None
        except (zipfile.BadZipFile, UnicodeDecodeError, json.JSONDecodeError, OSError) as exc:
            raise CheckpointError(f"{path!r}: the checkpoint header is corrupted ({exc})") from exc
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise CheckpointError(f"{path!r} is not a kanarray checkpoint (format tag {header.get('format')!r})"
                                  if isinstance(header, dict) else f"{path!r}: malformed checkpoint header")
        version = header.get("version")
        if version not in _READABLE:
            raise CheckpointError(
                f"{path!r} has checkpoint format version {version!r}; this kanarray reads versions "
                f"{', '.join(map(str, _READABLE))}"
            )
        manifest = header.get("arrays")
        if not isinstance(manifest, dict) or not isinstance(header.get("model"), dict):
            raise CheckpointError(f"{path!r}: malformed checkpoint header (no model or array manifest)")
        arrays = {}
        for name, meta in manifest.items():
            try:
                raw = zf.read(name + ".npy")
            except KeyError:
                raise CheckpointError(f"{path!r}: array {name!r} is missing") from None
            except (zipfile.BadZipFile, OSError, EOFError) as exc:
                raise CheckpointError(f"{path!r}: array {name!r} is corrupted ({exc})") from exc
            try:
                a = np.lib.format.read_array(io.BytesIO(raw), allow_pickle=False)
            except ValueError as exc:
                raise CheckpointError(f"{path!r}: array {name!r} cannot be read without pickle ({exc})") from exc
            except Exception as exc:
                raise CheckpointError(f"{path!r}: array {name!r} is corrupted ({exc})") from exc
            if a.dtype.kind != "f":
                raise CheckpointError(f"{path!r}: array {name!r} has dtype {a.dtype}; expected floating point")
            if list(a.shape) != list(meta.get("shape", [])) or str(a.dtype) != meta.get("dtype"):
                raise CheckpointError(
                    f"{path!r}: array {name!r} has shape {a.shape} and dtype {a.dtype}, but the manifest says "
                    f"{tuple(meta.get('shape', []))} and {meta.get('dtype')}"
                )
            if not np.all(np.isfinite(a)):
                raise CheckpointError(f"{path!r}: array {name!r} holds NaN or infinite values")
            arrays[name] = a
    return header, arrays


def read_model(path, *, build, backend="numpy", dtype=None):
    """The model saved at ``path``, on ``backend`` (any backend, whichever it was saved from) in
    ``dtype`` (default: the saved one), bit-exact when the dtype is unchanged:
    ``build(layers, **attributes)`` (``KAN.from_layers``) of its layers and attributes
    (base_fun, grid_range, seed, dtype_name, bias_trainable, input_scaling).  ``kanarray.load``
    calls this; a ValueError of ``build`` (the input scaling) becomes a ``CheckpointError``."""
    from ._namespace import dtype_of
    from .layer import KANLayer
    from .symbolic.edges import SymbolicEdges
    from .symbolic.library import LIBRARY

    header, arrays = _read(path)
    cfg = header["model"]
    try:
        width = [int(w) for w in cfg["width"]]
        ks = [int(k) for k in cfg["k"]]
        base_fun, seed = cfg["base_fun"], cfg["seed"]
        grid_range = [tuple(float(v) for v in r) for r in cfg["grid_range"]]
        dtype_name = str(dtype or cfg["dtype"])
        bias_trainable = bool(cfg.get("bias_trainable", False))
        extrapolate = cfg.get("extrapolate", "spline")  # older checkpoints: pykan's continuation
        symbolic = cfg.get("symbolic")
        symbolic = None if symbolic is None else [[[None if v is None else str(v) for v in row] for row in names]
                                                  for names in symbolic]
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{os.fspath(path)!r}: malformed model config ({exc})") from exc
    n_layers = len(width) - 1
    if len(ks) != n_layers or len(grid_range) != n_layers:
        raise CheckpointError(f"{os.fspath(path)!r}: model config lists {len(ks)} orders for {n_layers} layers")
    xp = resolve_backend(backend)
    dt = dtype_of(xp, dtype_name)
    layers = []
    for l in range(n_layers):
        parts = {}
        for name in KANLayer.ARRAY_NAMES:
            key = f"model/layers.{l}.{name}"
            if key not in arrays:
                raise CheckpointError(f"{os.fspath(path)!r}: array {key!r} is missing")
            parts[name] = xp.asarray(arrays[key], dtype=dt)
        sym = None
        if symbolic is not None:  # older checkpoints have no symbolic branch
            names = symbolic[l] if l < len(symbolic) else None
            key = f"model/layers.{l}.sym_affine"
            if key not in arrays or names is None:
                raise CheckpointError(f"{os.fspath(path)!r}: layer {l}: symbolic edges are listed incompletely")
            shape = tuple(parts["coef"].shape[:2])
            if (len(names), len(names[0]) if names else 0) != shape or any(len(r) != shape[1] for r in names):
                raise CheckpointError(f"{os.fspath(path)!r}: layer {l}: symbolic names do not form a {shape} table")
            unknown = sorted({v for row in names for v in row if v is not None and v not in LIBRARY})
            if unknown:
                raise CheckpointError(f"{os.fspath(path)!r}: layer {l} uses symbolic functions {unknown} that are not "
                                      "in the library; register them (kanarray.symbolic.register) before loading")
            sym = SymbolicEdges(names, xp.asarray(arrays[key], dtype=dt), xp)
        try:
            layer = KANLayer(**parts, k=ks[l], base_fun=base_fun, xp=xp, symbolic=sym, extrapolate=extrapolate)
            layer.check_consistent()
        except ValueError as exc:
            raise CheckpointError(f"{os.fspath(path)!r}: layer {l}: {exc}") from exc
        if (layer.in_dim, layer.out_dim) != (width[l], width[l + 1]):
            raise CheckpointError(
                f"{os.fspath(path)!r}: layer {l} maps {layer.in_dim} -> {layer.out_dim}, but width is {width}"
            )
        layers.append(layer)
    scaling = [arrays.get(f"model/input_{name}") for name in ("shift", "scale")]
    if (scaling[0] is None) != (scaling[1] is None):
        raise CheckpointError(f"{os.fspath(path)!r}: the input scaling is incomplete (input_shift and "
                              "input_scale must both be present or both absent)")
    try:
        return build(layers, base_fun=base_fun, grid_range=grid_range, seed=seed, dtype_name=dtype_name,
                     bias_trainable=bias_trainable, input_scaling=None if scaling[0] is None else scaling)
    except ValueError as exc:  # only the input scaling is checked there
        raise CheckpointError(f"{os.fspath(path)!r}: bad input scaling ({exc})") from exc


def load_optimizer(path, model):
    """The optimizer saved with ``model.save(path, optimizer=...)``, rebuilt on
    ``model.parameters()``; None if the checkpoint holds no optimizer."""
    from .optim import optimizer_from_state

    header, arrays = _read(path)
    config = header.get("optimizer")
    if config is None:
        return None
    state = {name[len("optimizer/"):]: a for name, a in arrays.items() if name.startswith("optimizer/")}
    try:
        return optimizer_from_state(model.parameters(), config, state)
    except (KeyError, TypeError) as exc:
        raise CheckpointError(f"{os.fspath(path)!r}: optimizer state does not fit this model ({exc})") from exc
