"""Running exported graphs with onnxruntime: ``OnnxModel`` (load once, call on NumPy arrays)
and ``predict_file`` (the ``kanarray predict`` command), which also serves a checkpoint
(``CheckpointModel``: the native model, no onnxruntime)."""

from __future__ import annotations

import csv
import io
import json
import os
import warnings

import numpy as np

from .._atomic import atomic_write, check_output_paths
from .._namespace import to_numpy
from ..names import check_names, default_output_names
from ..tabular import read_inputs, read_prediction_inputs

__all__ = ["CheckpointModel", "NonFiniteInputWarning", "OnnxModel", "available_providers", "predict_file",
           "predict_rows", "read_inputs"]

_PROVIDERS = {"cuda": "CUDAExecutionProvider", "cpu": "CPUExecutionProvider"}


def _ort():
    try:
        import onnxruntime
    except ImportError as exc:
        raise ImportError("running ONNX models needs onnxruntime: pip install 'kanarray[onnx]' (CPU) or "
                          "'kanarray[onnx-gpu]' (CUDA); never both") from exc
    return onnxruntime


def available_providers() -> list[str]:
    """Execution providers of the installed onnxruntime, as short names ('cuda', 'cpu')."""
    have = _ort().get_available_providers()
    return [short for short, full in _PROVIDERS.items() if full in have]


THREADS_PER_CPU = 4  # the most intra-op threads OnnxModel asks for, per CPU of the machine


def _thread_limit() -> int:
    return THREADS_PER_CPU * (os.cpu_count() or 1)


def _check_threads(threads):
    """None, or an int from 1 to ``_thread_limit()``: onnxruntime starts that many threads
    when the session is created, and crashes the process (segfault) on absurd counts."""
    if threads is None:
        return None
    limit = _thread_limit()
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or not 1 <= threads <= limit:
        raise ValueError(f"threads must be an integer from 1 to {limit} ({THREADS_PER_CPU} per CPU of this machine), "
                         f"or None for onnxruntime's default; got {threads!r}")
    return int(threads)


def _describe(values) -> str:
    return ", ".join(f"{v.name!r} {v.type} {list(v.shape)}" for v in values) or "none"


def _check_signature(session, path: str) -> None:
    """The graph must have what ``OnnxModel`` feeds and reads: one float32 or float64 input of
    shape (batch, n) and one float output of shape (batch, m), as ``to_onnx`` writes (any graph
    of that form is served, whatever produced it)."""
    inputs, outputs = session.get_inputs(), session.get_outputs()
    floats = ("tensor(float)", "tensor(double)")
    if not (len(inputs) == 1 and len(outputs) == 1 and inputs[0].type in floats and outputs[0].type in floats
            and len(inputs[0].shape) == 2 and len(outputs[0].shape) == 2):
        raise ValueError(f"{path!r} is not a graph OnnxModel can serve: expected one float32 or float64 input of "
                         "shape (batch, n) and one float output of shape (batch, m), as kanarray.export.to_onnx "
                         f"writes; it has inputs {_describe(inputs)} and outputs {_describe(outputs)}")


def _graph_names(session, path: str, n_inputs, n_outputs) -> tuple:
    """(input_names, output_names) from the graph's metadata (``to_onnx`` writes them when the
    model has names), each None when absent; ValueError when present but malformed."""
    props = session.get_modelmeta().custom_metadata_map
    found = []
    for key, count in (("input_names", n_inputs), ("output_names", n_outputs)):
        if key not in props:
            found.append(None)
            continue
        try:
            names = json.loads(props[key])
            found.append(check_names(names, len(names) if count is None and isinstance(names, list) else count, key))
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{path!r}: malformed {key} metadata ({exc})") from None
    return tuple(found)


def _is_checkpoint(path: str) -> bool:
    """Whether ``path`` is meant as a checkpoint (``KAN.save``): named .kan, or a zip archive (an ONNX
    protobuf never starts so)."""
    if path.lower().endswith(".kan"):
        return True
    try:
        with open(path, "rb") as fh:
            return fh.read(4) == b"PK\x03\x04"
    except OSError:
        return False


class CheckpointModel:
    """A checkpoint (``KAN.save``, loaded by ``kanarray.load``) served like ``OnnxModel``: the native
    forward pass on NumPy in the checkpoint's dtype; ``model(x)`` (batch, n_inputs) -> (batch, n_outputs)."""

    provider = "native"

    def __init__(self, path):
        from ..model import load

        self.model = load(path)
        self.n_inputs, self.n_outputs = self.model.width[0], self.model.width[-1]
        self.dtype = np.float64 if self.model.dtype_name == "float64" else np.float32
        self.input_names, self.output_names = self.model.input_names, self.model.output_names

    def __call__(self, x, *, batch_size: int = 65536):
        x = np.asarray(x, dtype=self.dtype)
        parts = [np.asarray(to_numpy(self.model(x[i : i + batch_size]))) for i in range(0, x.shape[0], batch_size)]
        return np.concatenate(parts)


def _open_model(path, provider):
    """An ``OnnxModel``, or a ``CheckpointModel`` for a checkpoint (which runs natively: no provider)."""
    if not _is_checkpoint(os.fspath(path)):
        return OnnxModel(path, provider=provider)
    if provider is not None:
        raise ValueError(f"{os.fspath(path)!r} is a checkpoint, which runs natively on NumPy; a provider "
                         f"({provider!r}) applies to ONNX graphs (kanarray export writes one)")
    return CheckpointModel(path)


class OnnxModel:
    """An exported KAN, or any graph of the same form, loaded into onnxruntime.

    provider: "cuda", "cpu" or None (CUDA when onnxruntime offers it, else CPU); threads:
    intra-op threads, 1 to ``THREADS_PER_CPU`` per CPU (None: onnxruntime's default).  The
    graph must have one float32 or float64 input (batch, n) and one float output (batch, m)
    (else ValueError).  ``model(x)`` takes (batch, n_inputs) array-likes, casts them to the
    graph's dtype (values beyond float32's range become +-inf there), runs them in chunks of
    ``batch_size`` rows and returns a NumPy array (batch, n_outputs).  Rows with a NaN or an
    infinity give NaN outputs in kanarray's graphs.  ``input_names``, ``output_names``: the
    variables' names from the graph's metadata (``KAN.input_names``), or None.
    """

    def __init__(self, path, *, provider: str | None = None, threads: int | None = None):
        ort = _ort()
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no ONNX model at {path!r}")
        threads = _check_threads(threads)
        have = available_providers()
        if provider is None:
            provider = "cuda" if "cuda" in have else "cpu"
        if provider not in _PROVIDERS:
            raise ValueError(f"provider must be one of {sorted(_PROVIDERS)}, got {provider!r}")
        if provider not in have:
            hint = " (install kanarray[onnx-gpu] instead of kanarray[onnx])" if provider == "cuda" else ""
            raise ValueError(f"onnxruntime here offers {have}, not {provider!r}{hint}")
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(path, options, providers=[_PROVIDERS[provider]])
        except Exception as exc:  # onnxruntime raises its own classes for corrupt files
            raise ValueError(f"{path!r} is not a loadable ONNX model ({exc})") from exc
        self.provider = provider
        _check_signature(self.session, path)
        (inp,), (out,) = self.session.get_inputs(), self.session.get_outputs()
        self.input_name, self.output_name = inp.name, out.name
        self.n_inputs = inp.shape[1] if isinstance(inp.shape[1], int) else None
        self.n_outputs = out.shape[1] if len(out.shape) == 2 and isinstance(out.shape[1], int) else None
        self.dtype = np.float64 if inp.type == "tensor(double)" else np.float32
        self.input_names, self.output_names = _graph_names(self.session, path, self.n_inputs, self.n_outputs)

    def __call__(self, x, *, batch_size: int = 65536):
        x = np.asarray(x)
        if x.ndim == 1 and self.n_inputs is not None and x.shape[0] == self.n_inputs:
            x = x[None, :]
        if x.ndim != 2 or (self.n_inputs is not None and x.shape[1] != self.n_inputs):
            raise ValueError(f"inputs must have shape (batch, {self.n_inputs}), got {x.shape}")
        if x.dtype.kind not in "fiub":
            raise ValueError(f"inputs must be numeric, got dtype {x.dtype}")
        with np.errstate(over="ignore"):  # float64 beyond float32's range: +-inf, whose rows give NaN
            x = np.ascontiguousarray(x, dtype=self.dtype)
        if x.shape[0] == 0:
            raise ValueError("inputs are empty (0 rows)")
        parts = [self.session.run([self.output_name], {self.input_name: x[i : i + batch_size]})[0]
                 for i in range(0, x.shape[0], batch_size)]
        return np.concatenate(parts)


def _write_outputs(y: np.ndarray, path: str, columns: list[str], ids=None) -> None:
    """y (N, m) to a .npy, or to a .csv under a header row ``columns`` (the ID column first when ``ids``
    (N,) are given, then one name per output)."""
    with atomic_write(path, os.path.splitext(path)[1] + ".tmp") as fh:
        if path.endswith(".npy"):
            np.save(fh, y, allow_pickle=False)
            return
        fh.write(_csv_line(columns))
        if ids is None:
            np.savetxt(fh, y, delimiter=",", fmt="%.17g")
            return
        for start in range(0, len(y), _CSV_CHUNK):
            fh.write(b"".join(_csv_line([ident, *(format(float(v), ".17g") for v in row)])
                              for ident, row in zip(ids[start : start + _CSV_CHUNK], y[start : start + _CSV_CHUNK])))


_CSV_CHUNK = 4096  # rows formatted at a time


def _csv_line(cells) -> bytes:
    """One CSV row, quoted where a cell needs it (a comma or a quote in a name or an ID), as UTF-8."""
    text = io.StringIO(newline="")
    csv.writer(text, lineterminator="\n").writerow(cells)
    return text.getvalue().encode("utf-8")


class NonFiniteInputWarning(UserWarning):
    """Some input rows hold nan or inf (or values beyond the graph's dtype); ``predict_file`` wrote
    nan predictions for them."""


SHOWN_ROWS = 10  # row numbers listed in the warning


def predict_rows(model: OnnxModel, x: np.ndarray, *, batch_size: int = 65536) -> tuple[np.ndarray, np.ndarray]:
    """(predictions (N, n_outputs) in the graph's dtype, indices of the non-finite rows): the graph runs
    on the rows whose inputs are all finite in its dtype (float32 turns 1e39 into inf) and the others get
    nan, whatever the graph would have made of them."""
    with np.errstate(over="ignore", invalid="ignore"):
        cast = np.asarray(x, dtype=model.dtype)
    finite = np.isfinite(cast).all(axis=1)
    bad = np.flatnonzero(~finite)
    if not len(bad):
        return np.asarray(model(cast, batch_size=batch_size)), bad
    good = model(cast[finite], batch_size=batch_size) if finite.any() else None
    n_outputs = model.n_outputs if good is None else good.shape[1]
    if n_outputs is None:
        raise ValueError("no input row is finite, and the graph does not declare its number of outputs")
    y = np.full((len(cast), n_outputs), np.nan, dtype=model.dtype)
    if good is not None:
        y[finite] = good
    return y, bad


def _columns_hint(model, id_column) -> str:
    """Why the columns were taken by position, for the column-count error."""
    if model.input_names is not None:
        return f" ({', '.join(model.input_names)}); give the file a header row of column names to pick them by name"
    but = " but the --id column" if id_column is not None else ""
    return f" (the model stores no input names, so every column{but} is an input)"


def _nonfinite_message(bad: np.ndarray, rows: int, path: str, dtype) -> str:
    shown = ", ".join(str(int(i)) for i in bad[:SHOWN_ROWS]) + (", ..." if len(bad) > SHOWN_ROWS else "")
    return (f"{path}: {len(bad)} of {rows} rows have inputs that are nan, inf or beyond {np.dtype(dtype).name}; "
            f"their predictions are nan: rows {shown} (0-based)")


def predict_file(model_path, input_path, output_path, *, provider: str | None = None,
                 batch_size: int = 65536, header="auto", id_column: str | None = None) -> tuple[int, str]:
    """Run the model (an ONNX graph, or a checkpoint: natively, ``CheckpointModel``) on the inputs in
    a .npy/.csv file and write the outputs (.npy, or .csv with a header row: ``id_column``, then the
    model's output names or y0, y1, ...) atomically.  Returns (rows, provider used: "cpu", "cuda" or
    "native").  A model with input names takes a headed .csv's columns by name, whatever else the
    file holds (``read_prediction_inputs``); header: of a .csv input, as in ``read_inputs``;
    id_column: a column of a headed .csv copied to the output's first column (needs a .csv output).
    Rows with non-finite inputs get nan outputs and a ``NonFiniteInputWarning`` lists them; the
    output must not be the model or the input file (ValueError, checked before any work)."""
    output_path = os.fspath(output_path)
    if not output_path.endswith((".npy", ".csv")):
        raise ValueError(f"output {output_path!r}: expected a .npy or .csv file name")
    if id_column is not None and not output_path.endswith(".csv"):
        raise ValueError(f"an ID column ({id_column!r}) is written only to a .csv output, not {output_path!r}")
    check_output_paths({"output_path": output_path}, {"model_path": model_path, "input_path": input_path})
    model = _open_model(model_path, provider)
    x, ids = read_prediction_inputs(input_path, header=header, names=model.input_names, id_column=id_column)
    if model.n_inputs is not None and x.shape[1] != model.n_inputs:
        raise ValueError(f"{os.fspath(input_path)!r} has {x.shape[1]} columns but the model takes {model.n_inputs} "
                         "inputs" + _columns_hint(model, id_column))
    y, bad = predict_rows(model, x, batch_size=batch_size)
    outputs = list(model.output_names or default_output_names(y.shape[1]))
    _write_outputs(y, output_path, ([] if id_column is None else [id_column]) + outputs, ids)
    if len(bad):
        warnings.warn(_nonfinite_message(bad, len(x), os.fspath(input_path), model.dtype), NonFiniteInputWarning,
                      stacklevel=2)
    return x.shape[0], model.provider
