"""Checkpoints: one zip file holding ``kanarray.json`` (format tag, version, model config,
array manifest, optional optimizer config) and one ``.npy`` member per array.

The model config may name the variables (``input_names``, ``output_names``: lists of distinct
non-empty strings, ``kanarray.names``) and say what its last fit trained for (``task``:
"regression" or "classification", ``kanarray.prediction``); the fields are optional, written
only when the model has them, and readers that predate them ignore them.

Version 2 adds the input scaling (``KAN.scale_inputs``): arrays ``model/input_shift`` and
``model/input_scale`` (float64, (width[0],)).  A model without one is written as version 1,
which older kanarray versions read too; both versions are read.

Version 3 adds node stages (multiplication nodes and pykan's node affine, ``kanarray.nodes``):
``nodes``, one entry per layer, null or {"n_add", "arities", "trainable"}, and per stage arrays
``model/layers.{l}.nodes.{subnode_scale, subnode_bias, node_scale, node_bias}``.  A layer with
a stage has n_add + sum(arities) sums ("sub-nodes") and width[l + 1] = n_add + len(arities)
nodes.  It is written only when some layer has a stage.

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
import math
import os
import zipfile

import numpy as np

from ._atomic import atomic_write
from ._namespace import resolve_backend, to_numpy

__all__ = ["CheckpointError", "save", "read_model", "load_optimizer", "FORMAT", "VERSION"]

FORMAT = "kanarray-checkpoint"
VERSION = 3  # the newest version, written when some layer has a node stage; 2 with an input scaling; 1 otherwise
_READABLE = (1, 2, 3)
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
        for name, a in layer.state().items():  # the arrays, sym_affine and any node stage's "nodes.<name>"
            arrays[f"model/layers.{l}.{name}"] = a
    staged = any(layer.nodes is not None for layer in model.layers)
    scaling = model.input_scaling
    if scaling is not None:
        arrays["model/input_shift"], arrays["model/input_scale"] = scaling
    header = {
        "format": FORMAT,
        "version": 3 if staged else 2 if scaling is not None else 1,
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
    if staged:
        header["model"]["nodes"] = [None if layer.nodes is None else {
            "n_add": layer.nodes.n_add, "arities": list(layer.nodes.arities), "trainable": layer.nodes.trainable}
            for layer in model.layers]
    for key in ("input_names", "output_names"):
        if getattr(model, key) is not None:
            header["model"][key] = list(getattr(model, key))
    if model.task is not None:
        header["model"]["task"] = model.task
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


# -- reading: nothing is decompressed before its declared size is checked ---------------------

#: the header is at most this big, and at most _HEADER_BASE + _HEADER_PER_BYTE times the declared
#: size of the arrays (its symbolic-name table grows with the edges, like the arrays do)
_HEADER_CAP = 64 * 2**20
_HEADER_BASE = 2**20
_HEADER_PER_BYTE = 4
#: an .npy member is its data plus at most this much: magic, version, length, header dict
_NPY_OVERHEAD = 12 + 65536
_COMPRESSIONS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate", zipfile.ZIP_BZIP2: "bzip2",
                 zipfile.ZIP_LZMA: "lzma"}
_FLOAT_DTYPES = ("float16", "float32", "float64")


class _Archive:
    """An open checkpoint: its members by name (duplicates refused) and its header, read with
    every declared size checked before decompressing."""

    def __init__(self, path):
        self.path = os.fspath(path)
        if not os.path.isfile(self.path):
            raise FileNotFoundError(f"no checkpoint at {self.path!r}")
        try:
            self.zf = zipfile.ZipFile(self.path)
            infos = self.zf.infolist()
        except (zipfile.BadZipFile, EOFError, ValueError) as exc:
            raise CheckpointError(f"{self.path!r} is not a kanarray checkpoint (not a zip archive, or truncated)") \
                from exc
        self.members = {}
        for info in infos:
            if info.filename in self.members:
                self.zf.close()
                raise self.error(f"the archive holds two members named {info.filename!r}")
            self.members[info.filename] = info

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.zf.close()

    def error(self, message: str) -> CheckpointError:
        return CheckpointError(f"{self.path!r}: {message}")

    def read(self, name: str, limit: int, what: str) -> bytes:
        """Member ``name``'s bytes, refused unless it declares at most ``limit`` bytes, is not
        encrypted and uses a compression zipfile reads; never more than ``limit`` bytes are
        decompressed."""
        info = self.members[name]
        if info.flag_bits & 0x1:
            raise self.error(f"{what} is encrypted; checkpoints are not")
        if info.compress_type not in _COMPRESSIONS:
            raise self.error(f"{what} uses unsupported compression method {info.compress_type}; expected one of "
                             f"{sorted(_COMPRESSIONS.values())}")
        if info.file_size > limit:
            raise self.error(f"{what} declares {info.file_size} bytes, more than the {limit} it can hold")
        try:
            with self.zf.open(info) as fh:
                data = fh.read(limit + 1)
        except Exception as exc:  # zipfile raises BadZipFile, zlib/lzma/bz2 errors, EOFError, RuntimeError...
            raise self.error(f"{what} is corrupted ({type(exc).__name__}: {exc})") from exc
        if len(data) != info.file_size:
            raise self.error(f"{what} is corrupted (truncated: {len(data)} of {info.file_size} bytes)")
        return data

    def header(self) -> dict:
        if _HEADER not in self.members:
            raise CheckpointError(f"{self.path!r} is not a kanarray checkpoint (no {_HEADER} inside)")
        arrays = sum(info.file_size for name, info in self.members.items() if name != _HEADER)
        limit = min(_HEADER_CAP, _HEADER_BASE + _HEADER_PER_BYTE * arrays)
        raw = self.read(_HEADER, limit, "the checkpoint header")
        try:
            header = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise self.error(f"the checkpoint header is corrupted ({exc})") from exc
        except RecursionError:
            raise self.error("the checkpoint header is nested too deeply") from None
        if not isinstance(header, dict):
            raise self.error("malformed checkpoint header (not a JSON object)")
        if header.get("format") != FORMAT:
            raise CheckpointError(f"{self.path!r} is not a kanarray checkpoint (format tag "
                                  f"{_short(header.get('format'))})")
        version = header.get("version")
        if isinstance(version, bool) or version not in _READABLE:
            raise self.error(f"has checkpoint format version {_short(version)}; this kanarray reads versions "
                             f"{', '.join(map(str, _READABLE))}")
        manifest = header.get("arrays")
        if not isinstance(manifest, dict) or not isinstance(header.get("model"), dict):
            raise self.error("malformed checkpoint header (no model or array manifest)")
        for name, meta in manifest.items():
            _check_entry(self, name, meta)
        return header

    def array(self, manifest: dict, name: str) -> np.ndarray:
        """Array ``name`` of the manifest, after every check: the member's declared size against
        the manifest's shape and dtype, the .npy header against them, real floating point, finite."""
        meta = manifest.get(name)
        if meta is None or name + ".npy" not in self.members:
            raise self.error(f"array {name!r} is missing")
        shape, dtype = tuple(meta["shape"]), np.dtype(meta["dtype"])
        nbytes = math.prod(shape) * dtype.itemsize
        raw = self.read(name + ".npy", nbytes + _NPY_OVERHEAD, f"array {name!r}")
        return _parse_npy(self, raw, name, shape, meta["dtype"])


def _check_task(task):
    """None (older checkpoints, unfitted models) or one of ``prediction.TASKS``' values."""
    from .prediction import TASKS

    if task is not None and task not in TASKS.values():
        raise ValueError(f"task must be one of {sorted(TASKS.values())}, got {_short(task)}")
    return task


def _short(value) -> str:
    """repr(value) cut to 80 characters, for messages about hostile headers."""
    try:
        text = repr(value)
    except RecursionError:
        return "<nested too deeply>"
    return text if len(text) <= 80 else text[:77] + "..."


def _check_entry(archive: _Archive, name, meta) -> None:
    """A manifest entry: a name and {"shape": [non-negative ints], "dtype": a float dtype name}."""
    ok = (isinstance(name, str) and isinstance(meta, dict) and isinstance(meta.get("shape"), list)
          and len(meta["shape"]) <= 8
          and all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 2**40 for d in meta["shape"])
          and meta.get("dtype") in _FLOAT_DTYPES)
    if not ok:
        raise archive.error(f"malformed manifest entry {_short(name)}: {_short(meta)} (expected "
                            f"{{'shape': [sizes], 'dtype': one of {list(_FLOAT_DTYPES)}}})")


def _parse_npy(archive: _Archive, raw: bytes, name: str, shape: tuple, dtype_name: str) -> np.ndarray:
    """The array in the .npy bytes ``raw``, which must hold ``shape`` and ``dtype_name`` (the manifest's)."""
    fh = io.BytesIO(raw)
    try:
        version = np.lib.format.read_magic(fh)
    except ValueError as exc:
        raise archive.error(f"array {name!r} is corrupted (not an .npy array: {exc})") from exc
    try:
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
            np.lib.format.read_array_header_2_0
        got_shape, fortran, dtype = read_header(fh, max_header_size=_NPY_OVERHEAD)
    except ValueError as exc:
        if b"'O'" in raw[:_NPY_OVERHEAD] or b"|O" in raw[:_NPY_OVERHEAD]:
            raise archive.error(f"array {name!r} cannot be read without pickle ({exc})") from exc
        raise archive.error(f"array {name!r} is corrupted (bad .npy header: {exc})") from exc
    if dtype.hasobject:
        raise archive.error(f"array {name!r} holds Python objects and cannot be read without pickle")
    if dtype.kind != "f":
        raise archive.error(f"array {name!r} has dtype {dtype}; expected floating point")
    if tuple(got_shape) != shape or str(dtype) != dtype_name:
        raise archive.error(f"array {name!r} has shape {tuple(got_shape)} and dtype {dtype}, but the manifest says "
                            f"{shape} and {dtype_name}")
    data = raw[fh.tell():]
    if len(data) != math.prod(shape) * dtype.itemsize:
        raise archive.error(f"array {name!r} is corrupted (truncated: {len(data)} bytes of data for shape {shape})")
    a = np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C").copy()
    if not np.all(np.isfinite(a)):
        raise archive.error(f"array {name!r} holds NaN or infinite values")
    return a


def _manifest_bytes(manifest: dict, names) -> int:
    return sum(math.prod(manifest[n]["shape"]) * np.dtype(manifest[n]["dtype"]).itemsize for n in names
               if n in manifest)


def _model_names(n_layers: int, symbolic: bool, stages) -> list:
    from .layer import KANLayer
    from .nodes import AFFINE_NAMES

    names = [f"model/layers.{l}.{name}" for l in range(n_layers) for name in KANLayer.ARRAY_NAMES]
    if symbolic:
        names += [f"model/layers.{l}.sym_affine" for l in range(n_layers)]
    names += [f"model/layers.{l}.nodes.{name}" for l, stage in enumerate(stages) if stage is not None
              for name in AFFINE_NAMES]
    return names + ["model/input_shift", "model/input_scale"]


def _stages(cfg: dict, width: list) -> list:
    """The node stages' layout, one (n_add, arities, trainable) or None per layer, checked against width."""
    from .nodes import MAX_ARITY

    stages = cfg.get("nodes")  # versions 1 and 2 have none
    if stages is None:
        return [None] * (len(width) - 1)
    if not isinstance(stages, list) or len(stages) != len(width) - 1:
        raise ValueError(f"nodes must list one entry per layer ({len(width) - 1}), got {_short(stages)}")
    out = []
    for l, stage in enumerate(stages):
        if stage is None:
            out.append(None)
            continue
        if not isinstance(stage, dict) or set(stage) != {"n_add", "arities", "trainable"}:
            raise ValueError(f"nodes[{l}] must be null or an object with n_add, arities and trainable")
        n_add, arities, trainable = stage["n_add"], stage["arities"], stage["trainable"]
        ints = isinstance(arities, list) and all(type(a) is int and 2 <= a <= MAX_ARITY for a in arities)
        if type(n_add) is not int or n_add < 0 or not ints or not isinstance(trainable, bool):
            raise ValueError(f"nodes[{l}]: n_add must be an int >= 0, arities a list of ints from 2 to {MAX_ARITY} "
                             f"and trainable a bool, got {_short(stage)}")
        if n_add + len(arities) != width[l + 1]:
            raise ValueError(f"nodes[{l}] has {n_add} + {len(arities)} nodes but width[{l + 1}] is {width[l + 1]}")
        out.append((n_add, tuple(arities), trainable))
    return out


def _config(archive: _Archive, cfg: dict, dtype) -> dict:
    """The model config checked with the constructor's validators (``kanarray._checks``)."""
    from ._checks import check_base_fun, check_bias_trainable, check_order, check_seed, check_width
    from ._namespace import dtype_of
    from .base import BASE_FUNCTIONS
    from .names import check_names

    try:
        width = check_width(cfg["width"])
        ks = cfg["k"]
        if not isinstance(ks, list) or len(ks) != len(width) - 1:
            raise ValueError(f"k must list one order per layer ({len(width) - 1}), got {_short(ks)}")
        ks = [check_order(k, f"k of layer {l}") for l, k in enumerate(ks)]
        ranges = cfg["grid_range"]
        if not isinstance(ranges, list) or len(ranges) != len(ks):
            raise ValueError(f"grid_range must list one (lo, hi) per layer ({len(ks)}), got {_short(ranges)}")
        dtype_name = cfg["dtype"] if dtype is None else dtype
        dtype_of(np, dtype_name)
        symbolic = cfg.get("symbolic")  # older checkpoints have no symbolic branch
        if symbolic is not None and not (isinstance(symbolic, list) and len(symbolic) == len(ks)):
            raise ValueError(f"symbolic must list one table of names per layer ({len(ks)})")
        names = {key: check_names(cfg.get(key), width[end], key)  # older checkpoints have no names
                 for key, end in (("input_names", 0), ("output_names", -1))}
        return dict(width=width, ks=ks, grid_range=ranges, dtype_name=dtype_name, **names, stages=_stages(cfg, width),
                    base_fun=check_base_fun(cfg["base_fun"], BASE_FUNCTIONS),
                    seed=check_seed(cfg["seed"]), bias_trainable=check_bias_trainable(cfg.get("bias_trainable", False)),
                    extrapolate=cfg.get("extrapolate", "spline"),  # older checkpoints: pykan's continuation
                    task=_check_task(cfg.get("task")),
                    symbolic=symbolic)
    except KeyError as exc:
        raise archive.error(f"malformed model config (no {exc})") from None
    except (TypeError, ValueError) as exc:
        raise archive.error(f"malformed model config ({exc})") from exc


def _check_layer_shapes(archive: _Archive, manifest: dict, cfg: dict) -> list:
    """G of every layer, from its grid's manifest shape, after checking that every layer array's
    manifest shape is the one width, k and G imply (before anything is decompressed)."""
    width, ks, nums = cfg["width"], cfg["ks"], []
    for l, k in enumerate(ks):
        grid = manifest.get(f"model/layers.{l}.grid")
        stage = cfg["stages"][l]
        n, m = width[l], width[l + 1] if stage is None else stage[0] + sum(stage[1])
        if grid is None or len(grid["shape"]) != 2 or grid["shape"][0] != n or grid["shape"][1] < 2 * k + 2:
            raise archive.error(f"layer {l}: the grid must have shape ({n}, G + 2k + 1) with G >= 1 and k = {k}, "
                                f"the manifest says {None if grid is None else tuple(grid['shape'])}")
        num = grid["shape"][1] - 2 * k - 1
        expect = dict(coef=(n, m, num + k), scale_base=(n, m), scale_sp=(n, m), mask=(n, m), bias=(m,),
                      sym_affine=(n, m, 4))
        for name, shape in expect.items():
            meta = manifest.get(f"model/layers.{l}.{name}")
            if meta is not None and tuple(meta["shape"]) != shape:
                raise archive.error(f"layer {l}: array {name} must have shape {shape} (width {width}, k = {k}, "
                                    f"G = {num}), the manifest says {tuple(meta['shape'])}")
        if stage is not None:
            for name, size in (("subnode_scale", m), ("subnode_bias", m), ("node_scale", width[l + 1]),
                               ("node_bias", width[l + 1])):
                meta = manifest.get(f"model/layers.{l}.nodes.{name}")
                if meta is None or tuple(meta["shape"]) != (size,):
                    raise archive.error(f"layer {l}: the node stage's {name} must have shape ({size},), the manifest "
                                        f"says {None if meta is None else tuple(meta['shape'])}")
        nums.append(num)
    for name in ("model/input_shift", "model/input_scale"):
        if name in manifest and tuple(manifest[name]["shape"]) != (width[0],):
            raise archive.error(f"array {name!r} must have shape ({width[0]},), the manifest says "
                                f"{tuple(manifest[name]['shape'])}")
    return nums


def _symbolic_names(archive: _Archive, table, l: int, shape: tuple):
    from .symbolic.library import LIBRARY

    if not (isinstance(table, list) and len(table) == shape[0]
            and all(isinstance(row, list) and len(row) == shape[1] for row in table)):
        raise archive.error(f"layer {l}: symbolic names do not form a {shape} table")
    if any(v is not None and not isinstance(v, str) for row in table for v in row):
        raise archive.error(f"layer {l}: symbolic names must be strings or null")
    unknown = sorted({v for row in table for v in row if v is not None and v not in LIBRARY})
    if unknown:
        raise archive.error(f"layer {l} uses symbolic functions {unknown} that are not in the library; register "
                            "them (kanarray.symbolic.register) before loading")
    return table


def _as_dtype(archive: _Archive, a: np.ndarray, dtype_name: str, name: str) -> np.ndarray:
    """a in the model's dtype on the host, refused when the cast overflows."""
    with np.errstate(over="ignore"):
        cast = a.astype(dtype_name, copy=False)
    if cast is not a and not np.all(np.isfinite(cast)):
        raise archive.error(f"array {name!r} holds values too large for {dtype_name}")
    return cast


def read_model(path, *, build, backend="numpy", dtype=None):
    """The model saved at ``path``, on ``backend`` (any backend, whichever it was saved from) in
    ``dtype`` (default: the saved one), bit-exact when the dtype is unchanged:
    ``build(layers, **attributes)`` (``KAN.from_layers``) of its layers and attributes
    (base_fun, grid_range, seed, dtype_name, bias_trainable, input_scaling, input_names,
    output_names).  ``kanarray.load`` calls this.

    Every field goes through the constructor's checks (``kanarray._checks``), the manifest's
    shapes are checked against width, k and the grids' G and their total against the memory cap
    (``kanarray.resources``, a ``MemoryLimitError``) before anything is decompressed; only the
    members the model uses are read (not the optimizer's); ``build`` checks the layers' values
    (``KANLayer.check_values``)."""
    from . import resources
    from ._checks import check_grid_range
    from ._namespace import dtype_of
    from .layer import KANLayer
    from .nodes import AFFINE_NAMES, NodeStage
    from .symbolic.edges import SymbolicEdges

    with _Archive(path) as archive:
        header = archive.header()
        manifest = header["arrays"]
        cfg = _config(archive, header["model"], dtype)
        if header["version"] < 3 and any(stage is not None for stage in cfg["stages"]):
            raise archive.error(f"has node stages (model.nodes) but format version {header['version']}; node stages "
                                "came with version 3")
        nums = _check_layer_shapes(archive, manifest, cfg)
        n_layers, dtype_name = len(cfg["ks"]), cfg["dtype_name"]
        try:
            grid_range = [check_grid_range(r, f"grid_range of layer {l}", num=nums[l], k=cfg["ks"][l],
                                           dtype=dtype_name) for l, r in enumerate(cfg["grid_range"])]
        except ValueError as exc:
            raise archive.error(f"malformed model config ({exc})") from exc
        names = _model_names(n_layers, cfg["symbolic"] is not None, cfg["stages"])
        stored = _manifest_bytes(manifest, names)
        elements = sum(math.prod(manifest[name]["shape"]) for name in names if name in manifest)
        # the stored arrays, their cast to the model's dtype and the backend's copy
        resources.check(f"loading {archive.path!r}", stored + 2 * elements * np.dtype(dtype_name).itemsize)
        xp = resolve_backend(backend)
        dt = dtype_of(xp, dtype_name)

        def array(name):
            return xp.asarray(_as_dtype(archive, archive.array(manifest, name), dtype_name, name), dtype=dt)

        layers = []
        for l in range(n_layers):
            parts = {name: array(f"model/layers.{l}.{name}") for name in KANLayer.ARRAY_NAMES}
            sym = stage = None
            if cfg["stages"][l] is not None:
                n_add, arities, trainable = cfg["stages"][l]
                stage = NodeStage(n_add, arities, xp=xp, trainable=trainable,
                                  **{name: array(f"model/layers.{l}.nodes.{name}") for name in AFFINE_NAMES})
            if cfg["symbolic"] is not None:
                table = _symbolic_names(archive, cfg["symbolic"][l], l, tuple(parts["mask"].shape))
                sym = SymbolicEdges(table, array(f"model/layers.{l}.sym_affine"), xp)
            try:
                layer = KANLayer(**parts, k=cfg["ks"][l], base_fun=cfg["base_fun"], xp=xp, symbolic=sym,
                                 extrapolate=cfg["extrapolate"], nodes=stage)
                layer.check_consistent()
            except ValueError as exc:
                raise archive.error(f"layer {l}: {exc}") from exc
            layers.append(layer)
        present = [name in manifest for name in ("model/input_shift", "model/input_scale")]
        if present[0] != present[1]:
            raise archive.error("the input scaling is incomplete (input_shift and input_scale must both be present "
                                "or both absent)")
        scaling = (archive.array(manifest, "model/input_shift"), archive.array(manifest, "model/input_scale")) \
            if present[0] else None
    try:
        return build(layers, base_fun=cfg["base_fun"], grid_range=grid_range, seed=cfg["seed"], dtype_name=dtype_name,
                     bias_trainable=cfg["bias_trainable"], input_scaling=scaling, input_names=cfg["input_names"],
                     output_names=cfg["output_names"], task=cfg["task"])
    except ValueError as exc:
        raise CheckpointError(f"{os.fspath(path)!r}: {exc}") from exc


def load_optimizer(path, model):
    """The optimizer saved with ``model.save(path, optimizer=...)``, rebuilt on
    ``model.parameters()``; None if the checkpoint holds no optimizer."""
    from . import resources
    from .optim import optimizer_from_state

    with _Archive(path) as archive:
        header = archive.header()
        config = header.get("optimizer")
        if config is None:
            return None
        if not isinstance(config, dict):
            raise archive.error("malformed optimizer config (not a JSON object)")
        manifest = header["arrays"]
        names = [name for name in manifest if name.startswith("optimizer/")]
        largest = model.num_parameters()  # every optimizer array is one parameter's state or a flat vector of them
        for name in names:
            if math.prod(manifest[name]["shape"]) > largest:
                raise archive.error(f"array {name!r} of shape {tuple(manifest[name]['shape'])} is larger than the "
                                    f"model's {largest} parameters")
        resources.check(f"loading the optimizer state of {archive.path!r}", 2 * _manifest_bytes(manifest, names))
        state = {name[len("optimizer/"):]: archive.array(manifest, name) for name in names}
    try:
        return optimizer_from_state(model.parameters(), config, state)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CheckpointError(f"{os.fspath(path)!r}: optimizer state does not fit this model ({exc})") from exc
