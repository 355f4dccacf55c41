"""Training tables from disk, as float64 NumPy arrays, for ``kanarray fit DATA --target COL``.

``load_table(path, target, features=None)`` reads

- ``.csv``: comma-separated UTF-8, the first row a header of column names.  Only the columns used are
  parsed, and each of their cells must be a finite number (ASCII digits with an optional sign, decimal
  point and exponent: no ``1_000``) or empty (a missing value: an error naming the rows, or with
  ``dropna=True`` the row is dropped).  Without ``features`` the feature columns are the numeric ones;
  the others (IDs, dates, categories) are skipped and listed in ``Table.skipped`` with the reason;
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
import re
import warnings
import zipfile
import zlib
from dataclasses import dataclass

import numpy as np

__all__ = ["SUPPORTED_EXTENSIONS", "Table", "load_table", "read_inputs", "read_prediction_inputs", "split",
           "split_rows"]

SUPPORTED_EXTENSIONS = (".csv", ".npy", ".npz")
MIN_ROWS = 4


@dataclass(frozen=True, eq=False)
class Table:
    """A loaded table: ``x`` (N, d) and ``y`` (N, t) float64, the column names of each, the source path;
    ``skipped``: (column, reason) of the CSV columns left out of the default features for not being
    numeric; ``dropped_lines``: the CSV lines dropped for empty cells (``dropna=True``)."""

    x: np.ndarray
    y: np.ndarray
    features: tuple[str, ...]
    targets: tuple[str, ...]
    path: str
    skipped: tuple[tuple[str, str], ...] = ()
    dropped_lines: tuple[int, ...] = ()


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


# A CSV number: ASCII digits with an optional sign, decimal point and exponent, or nan / inf /
# infinity in any case.  float() alone would also take 1_000 and non-ASCII digits; on ASCII text
# without underscores it takes exactly these forms, which is how _parse_number checks them (at
# float()'s speed: tables have millions of cells).
_FINITE = r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
_INTEGER = re.compile(r"[+-]?[0-9]+")
_FRACTIONAL = re.compile(_FINITE)  # with fullmatch and not an _INTEGER: has a decimal point or an exponent
HEADER_SCAN_ROWS = 100  # rows below a row of integers looked at to tell a header of numbers from data


def _parse_number(cell: str) -> float | None:
    """The value of a CSV cell that is a number (surrounding blanks allowed), else None."""
    text = cell.strip()
    if not text.isascii() or "_" in text:
        return None
    try:
        return float(text)
    except ValueError:
        return None


def _float_or_none(cell: str) -> float | None:
    try:
        return float(cell)
    except ValueError:
        return None


def _csv_rows(path: str) -> list[tuple[int, list[str]]]:
    """(1-based line number, cells) of every non-blank row; ValueError naming the file and the line
    for text that is not UTF-8 or not readable as CSV (e.g. a cell over csv's field size limit)."""
    rows = []
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            for row in reader:
                if "".join(row).strip():
                    rows.append((reader.line_num, row))
    except UnicodeDecodeError:
        raise ValueError(_not_utf8(path)) from None
    except csv.Error as exc:
        limit = f" (a cell holds at most {csv.field_size_limit()} characters)" if "field limit" in str(exc) else ""
        raise ValueError(f"{path} line {reader.line_num}: not readable as CSV: {exc}{limit}") from None
    return rows


def _not_utf8(path: str) -> str:
    with open(path, "rb") as f:
        data = f.read()
    start = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    try:
        data[start:].decode("utf-8")
    except UnicodeDecodeError as exc:
        at = start + exc.start
        line = data.count(b"\n", 0, at) + 1
        return (f"{path} line {line}: byte 0x{data[at]:02x} (offset {at}) is not UTF-8 text; save the file as UTF-8 "
                "(or ASCII)")
    return f"{path}: not UTF-8 text; save the file as UTF-8 (or ASCII)"  # pragma: no cover - changed meanwhile


class NumericHeaderWarning(UserWarning):
    """A first row of numbers was read as a header (``header="auto"``): say so, since it could be data."""


def _numbers_as_header(first: list[str], rows: list) -> bool:
    """Whether a first row of numbers is a header: the column numbers 0, 1, ..., d - 1 or 1, ..., d
    (pandas' and R's labels) over a column whose next rows (up to HEADER_SCAN_ROWS) are all written
    with a decimal point or an exponent, as every float column that numpy and pandas write is.
    Any other row of numbers is data."""
    if not all(_INTEGER.fullmatch(cell.strip()) for cell in first):
        return False
    labels = [int(cell) for cell in first]
    if labels not in (list(range(len(first))), list(range(1, len(first) + 1))):
        return False
    below = [row for _, row in rows[1 : 1 + HEADER_SCAN_ROWS]]
    for j in range(len(first)):
        column = [row[j].strip() for row in below if j < len(row)]
        if column and all(_FRACTIONAL.fullmatch(c) and not _INTEGER.fullmatch(c) for c in column):
            return True
    return False


def _read_csv(path: str, *, header=True, finite: bool = True) -> tuple[list[str], np.ndarray]:
    """(column names, (N, columns) float64 values) of a comma-separated file.  header: True (the
    first row is a header of column names), False (every row is data, the columns are named "0",
    "1", ...) or "auto" (a header unless the first row is numbers; a row of integers over decimals
    is a header too, see ``_numbers_as_header``).  finite=False accepts nan and inf cells."""
    names, has_header, rows = _csv_layout(path, header)
    return names, _csv_values(path, names, has_header, rows, range(len(names)), finite)


def _csv_layout(path: str, header) -> tuple[list[str], bool, list]:
    """(column names, whether the file has a header, the data rows (line, cells)) of a CSV file,
    every row checked to have one cell per column; header as in ``_read_csv``."""
    rows = _csv_rows(path)
    if not rows:
        what = "a header row of column names" if header is True else "rows of numbers"
        raise ValueError(f"{path} is empty: expected {what}")
    head_line, header_cells = rows[0][0], [cell.strip() for cell in rows[0][1]]
    if header == "auto":  # a row that float() takes whole is data, and 1_000 in it is then refused as data
        has_header = not all(_float_or_none(cell) is not None for cell in header_cells) or (
            all(_parse_number(cell) is not None for cell in header_cells) and _numbers_as_header(header_cells, rows))
        if has_header and all(_parse_number(cell) is not None for cell in header_cells):
            warnings.warn(NumericHeaderWarning(
                f"{path}: the first row ({','.join(header_cells)}) is read as a header of column numbers, not as "
                "data; pass header=False (kanarray predict --header no) if it is data"), stacklevel=4)
    else:
        has_header = bool(header)
    if has_header:
        if "" in header_cells:
            raise ValueError(f"{path} line {head_line}: column {header_cells.index('') + 1} of the header has no "
                             "name")
        dup = sorted({h for h in header_cells if header_cells.count(h) > 1})
        if dup:
            raise ValueError(f"{path} line {head_line}: duplicate column names {dup}")
        rows = rows[1:]
    if len(header_cells) == 1 and any(sep in header_cells[0] for sep in ";\t|"):
        raise ValueError(f"{path}: only comma-separated files are supported (first row {header_cells[0]!r})")
    names = header_cells if has_header else [str(j) for j in range(len(header_cells))]
    width_of = "the header has" if has_header else "the first row has"
    for line, row in rows:
        if len(row) != len(names):
            raise ValueError(f"{path} line {line}: {len(row)} cells, but {width_of} {len(names)} columns")
    return names, has_header, rows


def _csv_values(path: str, names, has_header: bool, rows, columns, finite: bool) -> np.ndarray:
    """(N, len(columns)) float64 values of the given column indices of ``_csv_layout``'s rows."""
    columns = list(columns)
    values = np.empty((len(rows), len(columns)), dtype=np.float64)
    for r, (line, row) in enumerate(rows):
        for out, c in enumerate(columns):
            cell = row[c]
            v = _parse_number(cell)
            if v is None or (finite and not math.isfinite(v)):
                where = (f"{path} line {line}, column {names[c]!r}" if has_header
                         else f"{path} line {line}, column {c + 1}")
                kind = "a number" if v is None else "a finite number"
                raise ValueError(f"{where}: {cell!r} is not {kind}") from None
            values[r, out] = v
    return values


def _csv_column(rows, j: int) -> tuple[np.ndarray, np.ndarray, tuple[int, str] | None]:
    """(values (N,) float64, empty (N,) bool, the first (line, cell) that is not a number or None) of
    column j; values are nan at empty cells and unset from the first non-number on."""
    values, empty = np.empty(len(rows), dtype=np.float64), np.zeros(len(rows), dtype=bool)
    for r, (line, row) in enumerate(rows):
        cell = row[j]
        v = _parse_number(cell)
        if v is None:
            if cell.strip():
                return values, empty, (line, cell)
            empty[r], v = True, math.nan
        values[r] = v
    return values, empty, None


def _csv_table(path: str, names: list[str], rows, targets: list[str], feats: list[str] | None, dropna: bool):
    """(x (N, d), y (N, t), features, skipped, dropped lines) of the parsed CSV rows: only the target
    and feature columns are parsed; feats None: every other column that is numeric (the rest go to
    skipped with the reason).  Empty cells in a used column: ValueError naming the lines, or with
    dropna those rows are dropped."""
    index = {c: j for j, c in enumerate(names)}
    columns, skipped = {}, []
    auto = feats is None
    for name in targets + ([c for c in names if c not in targets] if auto else feats):
        values, empty, bad = _csv_column(rows, index[name])
        if auto and name not in targets and (bad is not None or (len(rows) and empty.all())):
            skipped.append((name, f"{bad[1]!r} at line {bad[0]} is not a number" if bad else "all its cells are empty"))
            continue
        if bad is not None:
            raise ValueError(f"{path} line {bad[0]}, column {name!r}: {bad[1]!r} is not a number")
        infinite = ~empty & ~np.isfinite(values)
        if infinite.any():
            r = int(np.argmax(infinite))
            raise ValueError(f"{path} line {rows[r][0]}, column {name!r}: {rows[r][1][index[name]]!r} is not a finite "
                             "number")
        columns[name] = (values, empty)
    feats = [c for c in columns if c not in targets] if auto else feats
    if not feats:
        why = "; ".join(f"{c!r}: {reason}" for c, reason in skipped)
        raise ValueError(f"{path}: no numeric feature columns besides the target(s) {targets}"
                         + (f" (skipped {why})" if why else ""))
    missing = np.zeros(len(rows), dtype=bool)
    for _, empty in columns.values():
        missing |= empty
    lines = [rows[r][0] for r in np.flatnonzero(missing)]
    if lines and not dropna:
        cols = sorted((c for c, (_, empty) in columns.items() if empty.any()), key=index.get)  # in file order
        shown = ", ".join(map(str, lines[:10])) + (f", ... ({len(lines)} rows in all)" if len(lines) > 10 else "")
        raise ValueError(f"{path}: empty cells (missing values) in column(s) {', '.join(map(repr, cols))} at line(s) "
                         f"{shown}; fill them in, or drop those rows with --dropna (load_table(..., dropna=True))")
    keep = ~missing
    def stack(cols):
        return np.column_stack([columns[c][0][keep] for c in cols]) if cols else np.empty((int(keep.sum()), 0))

    return stack(feats), stack(targets), feats, tuple(skipped), tuple(lines)


def _numeric_2d(arr: np.ndarray, where: str) -> np.ndarray:
    if arr.ndim != 2:
        raise ValueError(f"{where}: expected a 2-D array (rows, columns), got shape {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise ValueError(f"{where}: expected a numeric array, got dtype {arr.dtype}")
    return arr.astype(np.float64)


def _no_pickle(load, where: str) -> np.ndarray:
    """load() -- an np.load or an npz member -- with numpy's refusal of pickled data, and a corrupt or
    truncated file, made a ValueError that names ``where``."""
    try:
        return load()
    except ValueError as e:
        if "pickle" in str(e) or "Object arrays" in str(e):
            raise ValueError(f"{where}: holds object (pickled) data or is not a NumPy file; "
                             "pickle is never loaded") from None
        raise ValueError(f"{where}: not a readable NumPy file ({e})") from None
    except (zipfile.BadZipFile, zlib.error, EOFError) as e:
        raise ValueError(f"{where}: a corrupt or truncated NumPy file ({e or type(e).__name__})") from None


def _read_array(path: str, ext: str) -> tuple[list[str], np.ndarray, list[str] | None]:
    """(column names, (N, columns) float64 values, default targets or None) of a .npy or .npz file."""
    if ext == ".npy":
        data = _numeric_2d(_no_pickle(lambda: np.load(path, allow_pickle=False), path), path)
        return [str(j) for j in range(data.shape[1])], data, None
    with open(path, "rb") as f, _no_pickle(lambda: np.load(f, allow_pickle=False), path) as z:  # f: closed on
        arrays = {k: _no_pickle(lambda k=k: z[k], f"{path}, array {k!r}") for k in z.files}  # a corrupt zip too
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


def load_table(path, target=None, features=None, *, dropna: bool = False) -> Table:
    """Read ``path`` (.csv, .npy or .npz) into a Table of ``x`` (N, d) and ``y`` (N, t) float64.

    ``target``: a column name, an int (a .npy column), a comma-separated string "a,b" or a list; None only
    for a .npz with arrays ``x`` and ``y`` (the ``y`` columns are then the targets).  ``features``: the same
    forms, or None for every other column (but no ``y`` column of such a .npz; of a .csv only the numeric
    columns, the others listed in ``Table.skipped``).  Columns come out in the order given.  dropna (.csv):
    drop the rows with an empty cell in a column used (listed in ``Table.dropped_lines``) instead of
    refusing them.
    """
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext not in SUPPORTED_EXTENSIONS:
        raise ValueError(f"{path}: unsupported file type {ext or '(none)'!r}; supported: "
                         + ", ".join(SUPPORTED_EXTENSIONS))
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such file: {path}")
    if ext == ".csv":
        (columns, _, rows), default = _csv_layout(path, True), None  # a header row, checked
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
    if ext == ".csv":
        x, y, feats, skipped, dropped = _csv_table(path, columns, rows, targets, None if features is None else feats,
                                                   dropna)
        return Table(x=x, y=y, features=tuple(feats), targets=tuple(targets), path=path, skipped=skipped,
                     dropped_lines=dropped)
    index = {c: j for j, c in enumerate(columns)}
    return Table(x=np.ascontiguousarray(data[:, [index[c] for c in feats]]),
                 y=np.ascontiguousarray(data[:, [index[c] for c in targets]]),
                 features=tuple(feats), targets=tuple(targets), path=path)


def read_inputs(path, header="auto") -> np.ndarray:
    """(N, d) float64 model inputs for prediction (``kanarray predict``): a ``.npy`` array (2-D, or 1-D
    as one row) or a ``.csv`` of comma-separated numbers.  header (.csv): "auto" (default: the first
    row is a header unless it is numbers; a row of integers over a column of decimals, such as
    pandas' 0,1,2 labels, is a header too), True or False.  Every column is an input; nan and inf
    are passed through (``kanarray predict`` gives such rows nan outputs)."""
    path = os.fspath(path)
    if header not in ("auto", True, False):
        raise ValueError(f"header must be 'auto', True or False, got {header!r}")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no input file at {path!r}")
    ext = os.path.splitext(path)[1].lower()
    if ext == ".csv":
        x = _read_csv(path, header=header, finite=False)[1]
        if not len(x):
            raise ValueError(f"{path} holds no data rows")
        return x
    if ext != ".npy":
        raise ValueError(f"input {path!r}: expected a .npy or .csv file")
    x = _no_pickle(lambda: np.load(path, allow_pickle=False), path)
    return _numeric_2d(x.reshape(1, -1) if x.ndim == 1 else x, path)


def _shown_columns(columns) -> str:
    shown = ", ".join(map(repr, columns[:30]))
    return shown + (f", ... ({len(columns)} in all)" if len(columns) > 30 else "")


def read_prediction_inputs(path, header="auto", *, names=None, id_column=None):
    """(x (N, d) float64, ids: the ``id_column``'s cells as str (N,) or None) for ``kanarray predict``.

    A ``.csv`` with a header and a model with input ``names`` (``KAN.input_names``): the columns of
    those names, in the model's order (ValueError naming the missing ones); other columns (a target,
    an ID, notes that are not numbers) are ignored.  Otherwise every column but ``id_column`` is an
    input, in file order.  ``id_column`` (a header name; needs a .csv with a header) is passed through
    as text.  header and the cells' rules: as in ``read_inputs``."""
    path = os.fspath(path)
    if os.path.splitext(path)[1].lower() != ".csv" or header is False:
        if id_column is not None:
            raise ValueError(f"an ID column ({id_column!r}) needs a .csv input with a header row of column names; "
                             f"{path!r} has none")
        return read_inputs(path, header=header), None
    if header not in ("auto", True):
        raise ValueError(f"header must be 'auto', True or False, got {header!r}")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no input file at {path!r}")
    columns, has_header, rows = _csv_layout(path, header)
    if not rows:
        raise ValueError(f"{path} holds no data rows")
    if id_column is not None and not has_header:
        raise ValueError(f"an ID column ({id_column!r}) needs a header row of column names; the first row of {path} "
                         "is data")
    if id_column is not None and id_column not in columns:
        raise ValueError(f"{path}: no ID column {id_column!r}; available columns: {_shown_columns(columns)}")
    index = {c: j for j, c in enumerate(columns)}
    if has_header and names is not None:
        missing = [n for n in names if n not in index]
        if missing:
            raise ValueError(f"{path}: no column(s) {', '.join(map(repr, missing))} that the model takes as inputs "
                             f"(its inputs: {', '.join(names)}); available columns: {_shown_columns(columns)}")
        chosen = [index[n] for n in names]
    else:
        chosen = [j for j, c in enumerate(columns) if c != id_column]
    x = _csv_values(path, columns, has_header, rows, chosen, finite=False)
    ids = None if id_column is None else [row[index[id_column]].strip() for _, row in rows]
    return x, ids


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
