"""Training tables from disk, as float64 NumPy arrays, for ``kanarray fit DATA --target COL``.

``load_table(path, target, features=None)`` reads

- ``.csv``: comma-separated, the first row a header of column names, every other cell a finite number;
- ``.npy``: one 2-D numeric array, its columns named ``"0"``, ``"1"``, ...;
- ``.npz``: arrays ``x`` (N, d) and ``y`` (N,) or (N, t), columns named ``x0``.. and ``y0``.. (or ``y``
  when ``y`` is 1-D; ``target`` may then be None), or a single 2-D array, read like ``.npy``;

and returns a ``Table`` with ``x`` (N, d) and ``y`` (N, t).  ``split_rows(n, val_fraction, seed)`` draws
a train/validation split of the row indices and ``split(table, ...)`` applies it.  Every malformed input
gives a ValueError that names the file and the place; nothing is unpickled.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass

import numpy as np

__all__ = ["SUPPORTED_EXTENSIONS", "Table", "load_table", "read_inputs", "split", "split_rows"]

SUPPORTED_EXTENSIONS = (".csv", ".npy", ".npz")
MIN_ROWS = 4


@dataclass(frozen=True, eq=False)
class Table:
    """A loaded table: ``x`` (N, d) and ``y`` (N, t) float64, the column names of each, the source path."""

    x: np.ndarray
    y: np.ndarray
    features: tuple[str, ...]
    targets: tuple[str, ...]
    path: str


def _names(spec, what: str) -> list[str]:
    """Column names from a name, an int, a comma-separated string or a list of those."""
    if isinstance(spec, str):
        items = spec.split(",")
    else:
        items = [spec] if isinstance(spec, (int, np.integer)) else list(spec)
    names = [str(item).strip() for item in items]
    if not names or "" in names:
        raise ValueError(f"{what}: empty column name in {spec!r}")
    if len(set(names)) != len(names):
        raise ValueError(f"{what}: column listed twice in {spec!r}")
    return names


def _read_csv(path: str, *, header_optional: bool = False, finite: bool = True) -> tuple[list[str], np.ndarray]:
    """(column names, (N, columns) float64 values) of a comma-separated file whose first row is a header
    of column names; with ``header_optional`` a first row of numbers is data and the columns are named
    "0", "1", ...; with ``finite=False`` nan and inf cells are accepted."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        rows = [(reader.line_num, row) for row in reader if "".join(row).strip()]  # line_num: 1-based
    if not rows:
        what = "rows of numbers" if header_optional else "a header row of column names"
        raise ValueError(f"{path} is empty: expected {what}")
    head_line, header = rows[0][0], [cell.strip() for cell in rows[0][1]]
    has_header = not (header_optional and all(_is_number(cell) for cell in header))
    if has_header:
        if "" in header:
            raise ValueError(f"{path} line {head_line}: column {header.index('') + 1} of the header has no name")
        dup = sorted({h for h in header if header.count(h) > 1})
        if dup:
            raise ValueError(f"{path} line {head_line}: duplicate column names {dup}")
        rows = rows[1:]
    if len(header) == 1 and any(sep in header[0] for sep in ";\t|"):
        raise ValueError(f"{path}: only comma-separated files are supported (first row {header[0]!r})")
    names = header if has_header else [str(j) for j in range(len(header))]
    width_of = "the header has" if has_header else "the first row has"
    values = np.empty((len(rows), len(names)), dtype=np.float64)
    for r, (line, row) in enumerate(rows):
        if len(row) != len(names):
            raise ValueError(f"{path} line {line}: {len(row)} cells, but {width_of} {len(names)} columns")
        for c, cell in enumerate(row):
            where = f"{path} line {line}, column {names[c]!r}" if has_header else f"{path} line {line}, column {c + 1}"
            try:
                v = float(cell.strip())
            except ValueError:
                raise ValueError(f"{where}: {cell!r} is not a number") from None
            if finite and not math.isfinite(v):
                raise ValueError(f"{where}: {cell!r} is not a finite number")
            values[r, c] = v
    return names, values


def _is_number(cell: str) -> bool:
    try:
        float(cell)
        return True
    except ValueError:
        return False


def _numeric_2d(arr: np.ndarray, where: str) -> np.ndarray:
    if arr.ndim != 2:
        raise ValueError(f"{where}: expected a 2-D array (rows, columns), got shape {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise ValueError(f"{where}: expected a numeric array, got dtype {arr.dtype}")
    return arr.astype(np.float64)


def _no_pickle(load, where: str) -> np.ndarray:
    """load() -- an np.load or an npz member -- with numpy's refusal of pickled data made readable."""
    try:
        return load()
    except ValueError as e:
        if "pickle" in str(e) or "Object arrays" in str(e):
            raise ValueError(f"{where}: holds object (pickled) data or is not a NumPy file; "
                             "pickle is never loaded") from None
        raise


def _read_array(path: str, ext: str) -> tuple[list[str], np.ndarray, list[str] | None]:
    """(column names, (N, columns) float64 values, default targets or None) of a .npy or .npz file."""
    if ext == ".npy":
        data = _numeric_2d(_no_pickle(lambda: np.load(path, allow_pickle=False), path), path)
        return [str(j) for j in range(data.shape[1])], data, None
    with _no_pickle(lambda: np.load(path, allow_pickle=False), path) as z:
        arrays = {k: _no_pickle(lambda k=k: z[k], f"{path}, array {k!r}") for k in z.files}
    if "x" in arrays and "y" in arrays:
        x, y_raw = _numeric_2d(arrays["x"], f"{path}, array 'x'"), arrays["y"]
        y = _numeric_2d(y_raw.reshape(-1, 1) if y_raw.ndim == 1 else y_raw, f"{path}, array 'y'")
        ys = ["y"] if y_raw.ndim == 1 else [f"y{j}" for j in range(y.shape[1])]
        if len(x) != len(y):
            raise ValueError(f"{path}: array 'x' has {len(x)} rows but 'y' has {len(y)}")
        return [f"x{j}" for j in range(x.shape[1])] + ys, np.hstack([x, y]), ys
    if len(arrays) != 1:
        raise ValueError(f"{path}: expected arrays 'x' and 'y', or a single 2-D array; found {sorted(arrays)}")
    (key, arr), = arrays.items()
    data = _numeric_2d(arr, f"{path}, array {key!r}")
    return [str(j) for j in range(data.shape[1])], data, None


def load_table(path, target=None, features=None) -> Table:
    """Read ``path`` (.csv, .npy or .npz) into a Table of ``x`` (N, d) and ``y`` (N, t) float64.

    ``target``: a column name, an int (a .npy column), a comma-separated string "a,b" or a list; None only
    for a .npz with arrays ``x`` and ``y`` (the ``y`` columns are then the targets).  ``features``: the same
    forms, or None for every other column (but no ``y`` column of such a .npz).  Columns come out in the
    order given.
    """
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext not in SUPPORTED_EXTENSIONS:
        raise ValueError(f"{path}: unsupported file type {ext or '(none)'!r}; supported: "
                         + ", ".join(SUPPORTED_EXTENSIONS))
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such file: {path}")
    if ext == ".csv":
        (columns, data), default = _read_csv(path), None
    else:
        columns, data, default = _read_array(path, ext)
        bad = ~np.isfinite(data)
        if bad.any():
            i, j = np.argwhere(bad)[0]
            raise ValueError(f"{path}: {int(bad.sum())} non-finite values (nan or inf); the first at row {i} "
                             f"(0-based), column {columns[j]!r}")
    if target is None and default is None:
        raise ValueError(f"{path}: no target column given; columns: {', '.join(map(repr, columns))}")
    targets = default if target is None else _names(target, "target")
    others = [c for c in columns if c not in targets and c not in (default or ())]  # x/y npz: y never a feature
    feats = others if features is None else _names(features, "features")
    for col in targets + feats:
        if col not in columns:
            shown = ", ".join(map(repr, columns[:30]))
            if len(columns) > 30:
                shown += f", ... ({len(columns)} in all)"
            raise ValueError(f"{path}: no column {col!r}; available columns: {shown}")
    both = [c for c in feats if c in targets]
    if both:
        raise ValueError(f"{path}: column(s) {both} given both as target and as feature")
    if not feats:
        raise ValueError(f"{path}: no feature columns left besides the target(s) {targets}")
    index = {c: j for j, c in enumerate(columns)}
    return Table(x=np.ascontiguousarray(data[:, [index[c] for c in feats]]),
                 y=np.ascontiguousarray(data[:, [index[c] for c in targets]]),
                 features=tuple(feats), targets=tuple(targets), path=path)


def read_inputs(path) -> np.ndarray:
    """(N, d) float64 model inputs for prediction (``kanarray predict``): a ``.npy`` array (2-D, or 1-D
    as one row) or a ``.csv`` of comma-separated numbers with an optional header row.  Every column is an
    input; nan and inf are passed through (the model's outputs are then nan)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no input file at {path!r}")
    ext = os.path.splitext(path)[1].lower()
    if ext == ".csv":
        x = _read_csv(path, header_optional=True, finite=False)[1]
        if not len(x):
            raise ValueError(f"{path} holds no data rows")
        return x
    if ext != ".npy":
        raise ValueError(f"input {path!r}: expected a .npy or .csv file")
    x = _no_pickle(lambda: np.load(path, allow_pickle=False), path)
    return _numeric_2d(x.reshape(1, -1) if x.ndim == 1 else x, path)


def split_rows(n: int, val_fraction: float = 0.2, seed=0) -> tuple[np.ndarray, np.ndarray]:
    """(train_idx, val_idx): sorted int arrays partitioning range(n), drawn by ``default_rng(seed)``.

    The validation part has max(1, round(val_fraction * n)) rows (none when val_fraction is 0); ValueError
    when n < 4 or the training part would keep fewer than 2 rows.
    """
    if isinstance(val_fraction, bool) or not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
    def n_val(rows: int) -> int:
        return max(1, round(val_fraction * rows)) if val_fraction > 0 else 0

    if n < MIN_ROWS or n - n_val(n) < 2:
        need = max(MIN_ROWS, math.floor(1.5 / (1 - val_fraction)))  # a lower bound; n - n_val(n) never decreases
        while need - n_val(need) < 2:
            need += 1
        raise ValueError(f"too few rows: the table has {n}, but at least {need} are needed "
                         f"(val_fraction={val_fraction})")
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[n_val(n):]), np.sort(perm[:n_val(n)])


def split(table: Table, val_fraction: float = 0.2, seed=0) -> tuple[Table, Table]:
    """(train, validation) Tables of the rows chosen by ``split_rows(len(table.x), val_fraction, seed)``."""
    train, val = split_rows(len(table.x), val_fraction, seed)
    return tuple(Table(table.x[idx], table.y[idx], table.features, table.targets, table.path)
                 for idx in (train, val))
