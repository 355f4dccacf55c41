"""kanarray.tabular: loading .csv/.npy/.npz training tables and splitting their rows."""

from __future__ import annotations

import re

import numpy as np
import pytest

from kanarray.tabular import Table, load_table, split, split_rows


def _write(path, text: str):
    path.write_text(text)
    return path


@pytest.fixture
def csv_data(tmp_path):
    """A (50, 4) table written by np.savetxt at full precision, columns a, b, c, d."""
    data = np.random.default_rng(1).normal(size=(50, 4)) * np.array([1e-8, 1.0, 1e6, 3.0])
    path = tmp_path / "data.csv"
    np.savetxt(path, data, delimiter=",", header="a,b,c,d", comments="", fmt="%.17g")
    return path, data


# ---------------------------------------------------------------- CSV


def test_csv_round_trip_default_features(csv_data):
    path, data = csv_data
    t = load_table(path, "c")
    assert isinstance(t, Table)
    assert t.features == ("a", "b", "d") and t.targets == ("c",)
    assert t.x.dtype == np.float64 and t.y.dtype == np.float64
    assert t.x.shape == (50, 3) and t.y.shape == (50, 1)
    np.testing.assert_array_equal(t.x, data[:, [0, 1, 3]])  # bit-exact
    np.testing.assert_array_equal(t.y, data[:, [2]])
    assert t.path == str(path)


def test_csv_column_selection_order_and_multiple_targets(csv_data):
    path, data = csv_data
    t = load_table(path, target="d,a", features=["c", "b"])
    assert t.targets == ("d", "a") and t.features == ("c", "b")
    np.testing.assert_array_equal(t.y, data[:, [3, 0]])
    np.testing.assert_array_equal(t.x, data[:, [2, 1]])
    t2 = load_table(path, target=["b", "a"])
    assert t2.features == ("c", "d")
    np.testing.assert_array_equal(t2.y, data[:, [1, 0]])


def test_csv_whitespace_and_trailing_blank_lines(tmp_path):
    path = _write(tmp_path / "t.csv", " x1 , y \n 1.5 , -2e3\n3,4\n\n\n")
    t = load_table(path, "y")
    np.testing.assert_array_equal(t.x, [[1.5], [3.0]])
    np.testing.assert_array_equal(t.y, [[-2000.0], [4.0]])
    assert t.features == ("x1",)


def test_csv_non_numeric_cell_names_line_and_column(tmp_path):
    rows = "\n".join(f"{i},{i * 2}" for i in range(5))
    path = _write(tmp_path / "data.csv", f"x1,x2\n{rows}\n5,abc\n")
    with pytest.raises(ValueError, match=r"data\.csv line 7, column 'x2': 'abc' is not a number"):
        load_table(path, "x2")


@pytest.mark.parametrize("cell", ["nan", "NaN", "inf", "-Infinity"])
def test_csv_non_finite_cell(tmp_path, cell):
    path = _write(tmp_path / "d.csv", f"a,b\n1,2\n3,{cell}\n")
    with pytest.raises(ValueError, match=rf"line 3, column 'b': '{cell}' is not a finite number"):
        load_table(path, "b")


@pytest.mark.parametrize("text,target,message", [
    ("a,b\n1,\n", "b", r"empty cells \(missing values\) in column\(s\) 'b' at line\(s\) 2; .*--dropna"),  # empty cell
    ("a,b,c\n1,2,3\n4,5\n", "c", r"d\.csv line 3: 2 cells, but the header has 3 columns"),  # ragged row
    ("a,b\n1,2\n\n3,x\n", "b", r"line 4, column 'b': 'x' is not a number"),  # line numbers count blank lines
])
def test_csv_malformed_rows(tmp_path, text, target, message):
    path = _write(tmp_path / "d.csv", text)
    with pytest.raises(ValueError, match=message):
        load_table(path, target)


def test_csv_blank_lines_are_skipped_as_numpy_and_pandas_do(tmp_path):
    table = load_table(_write(tmp_path / "d.csv", "a,b\n\n1,2\n\n3,4\n\n"), "b")
    np.testing.assert_array_equal(table.x, [[1.0], [3.0]])
    np.testing.assert_array_equal(table.y, [[2.0], [4.0]])


def test_read_inputs_takes_csv_with_or_without_header_and_npy(tmp_path):
    from kanarray.tabular import read_inputs

    expected = np.array([[1.0, 2.5], [-3.0, 4e-3]])
    for i, text in enumerate(["u,v\n1,2.5\n-3,4e-3\n", "1,2.5\n\n-3,4e-3\n"]):
        np.testing.assert_array_equal(read_inputs(_write(tmp_path / f"x{i}.csv", text)), expected)
    np.save(tmp_path / "x.npy", expected.astype(np.float32))
    np.testing.assert_array_equal(read_inputs(tmp_path / "x.npy"), expected.astype(np.float32))
    np.save(tmp_path / "row.npy", np.array([1, 2, 3]))
    assert read_inputs(tmp_path / "row.npy").shape == (1, 3)
    assert np.isnan(read_inputs(_write(tmp_path / "n.csv", "1,nan\n"))[0, 1])  # passed through for prediction
    cases = [("ragged.csv", "1,2\n3\n", r"line 2: 1 cells, but the first row has 2 columns"),
             ("bad.csv", "a,b\n1,zz\n", r"line 2, column 'b': 'zz' is not a number"),
             ("noheader.csv", "1,2\n3,zz\n", r"line 2, column 2: 'zz' is not a number"),
             ("empty.csv", "\n\n", r"is empty: expected rows of numbers"),
             ("onlyhead.csv", "a,b\n", r"holds no data rows"),
             ("x.txt", "1,2\n", r"expected a \.npy or \.csv file")]
    for name, text, message in cases:
        with pytest.raises(ValueError, match=message):
            read_inputs(_write(tmp_path / name, text))
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="pickle is never loaded"):
        read_inputs(tmp_path / "obj.npy")
    with pytest.raises(FileNotFoundError, match="no input file"):
        read_inputs(tmp_path / "missing.csv")


def test_csv_missing_column_lists_available(csv_data):
    path, _ = csv_data
    with pytest.raises(ValueError, match=r"no column 'z'; available columns: 'a', 'b', 'c', 'd'"):
        load_table(path, "z")
    with pytest.raises(ValueError, match=r"no column 'q'; available columns: 'a', 'b'"):
        load_table(path, "a", features=["b", "q"])


def test_csv_duplicate_and_empty_header(tmp_path):
    with pytest.raises(ValueError, match=r"line 1: duplicate column names \['a'\]"):
        load_table(_write(tmp_path / "d.csv", "a,b,a\n1,2,3\n"), "b")
    with pytest.raises(ValueError, match=r"line 1: column 2 of the header has no name"):
        load_table(_write(tmp_path / "e.csv", "a, ,c\n1,2,3\n"), "a")


def test_csv_other_delimiter_is_explained(tmp_path):
    with pytest.raises(ValueError, match="only comma-separated"):
        load_table(_write(tmp_path / "d.csv", "a;b\n1;2\n"), "b")


def test_target_also_feature_and_no_feature_left(csv_data, tmp_path):
    path, _ = csv_data
    with pytest.raises(ValueError, match=r"\['b'\] given both as target and as feature"):
        load_table(path, "b", features="a,b")
    with pytest.raises(ValueError, match="no feature columns left"):
        load_table(path, ["a", "b", "c", "d"])
    with pytest.raises(ValueError, match="listed twice"):
        load_table(path, "a,a")
    with pytest.raises(ValueError, match="no target column given"):
        load_table(path, None)


def test_empty_file_and_header_only(tmp_path):
    with pytest.raises(ValueError, match=r"empty\.csv is empty"):
        load_table(_write(tmp_path / "empty.csv", ""), "y")
    with pytest.raises(ValueError, match="is empty"):
        load_table(_write(tmp_path / "blank.csv", "\n\n"), "y")
    t = load_table(_write(tmp_path / "head.csv", "x,y\n"), "y")
    assert t.x.shape == (0, 1) and t.y.shape == (0, 1)
    with pytest.raises(ValueError, match=r"too few rows: the table has 0, but at least 4 are needed"):
        split(t)


def test_unknown_extension_and_missing_file(tmp_path):
    with pytest.raises(ValueError, match=r"unsupported file type '\.xlsx'; supported: \.csv, \.npy, \.npz"):
        load_table(_write(tmp_path / "d.xlsx", "a,b\n1,2\n"), "a")
    with pytest.raises(ValueError, match=r"unsupported file type '\(none\)'"):
        load_table(_write(tmp_path / "noext", "a,b\n1,2\n"), "a")
    missing = tmp_path / "nope.csv"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        load_table(missing, "a")


# ---------------------------------------------------------------- .npy / .npz


def test_npy_columns_by_index(tmp_path):
    data = np.arange(24, dtype=np.int32).reshape(6, 4)
    np.save(tmp_path / "d.npy", data)
    for target in (3, "3", [3]):
        t = load_table(tmp_path / "d.npy", target)
        assert t.features == ("0", "1", "2") and t.targets == ("3",)
        assert t.x.dtype == np.float64
        np.testing.assert_array_equal(t.x, data[:, :3])
        np.testing.assert_array_equal(t.y, data[:, 3:])
    t = load_table(tmp_path / "d.npy", [np.int64(0), 2], features=[3])
    np.testing.assert_array_equal(t.y, data[:, [0, 2]])
    np.testing.assert_array_equal(t.x, data[:, [3]])
    with pytest.raises(ValueError, match=r"no column '7'; available columns: '0', '1', '2', '3'"):
        load_table(tmp_path / "d.npy", 7)


@pytest.mark.parametrize("shape", [(5,), (2, 3, 4)])
def test_npy_wrong_ndim(tmp_path, shape):
    np.save(tmp_path / "d.npy", np.zeros(shape))
    with pytest.raises(ValueError, match=re.escape(f"expected a 2-D array (rows, columns), got shape {shape}")):
        load_table(tmp_path / "d.npy", 0)


def test_npy_non_numeric_and_non_finite(tmp_path):
    np.save(tmp_path / "s.npy", np.array([["a", "b"], ["c", "d"]]))
    with pytest.raises(ValueError, match="expected a numeric array"):
        load_table(tmp_path / "s.npy", 0)
    data = np.ones((5, 3))
    data[2, 1] = np.nan
    data[4, 0] = np.inf
    np.save(tmp_path / "n.npy", data)
    with pytest.raises(ValueError, match=r"2 non-finite values .*first at row 2 \(0-based\), column '1'"):
        load_table(tmp_path / "n.npy", 2)


def test_npz_xy_layout_1d_and_2d_y(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(8, 3)), rng.normal(size=8)
    np.savez(tmp_path / "a.npz", x=x, y=y)
    t = load_table(tmp_path / "a.npz")
    assert t.features == ("x0", "x1", "x2") and t.targets == ("y",)
    np.testing.assert_array_equal(t.x, x)
    np.testing.assert_array_equal(t.y, y[:, None])

    y2 = rng.normal(size=(8, 2))
    np.savez(tmp_path / "b.npz", x=x, y=y2)
    t = load_table(tmp_path / "b.npz")
    assert t.features == ("x0", "x1", "x2") and t.targets == ("y0", "y1")
    np.testing.assert_array_equal(t.y, y2)
    t = load_table(tmp_path / "b.npz", target="y1")  # one output; y0 does not become a feature
    assert t.features == ("x0", "x1", "x2")
    np.testing.assert_array_equal(t.y, y2[:, [1]])
    t = load_table(tmp_path / "b.npz", target="y1", features="x2,y0")
    np.testing.assert_array_equal(t.x, np.column_stack([x[:, 2], y2[:, 0]]))

    np.savez(tmp_path / "c.npz", x=x, y=y[:5])
    with pytest.raises(ValueError, match="array 'x' has 8 rows but 'y' has 5"):
        load_table(tmp_path / "c.npz")


def test_npz_single_array_and_bad_layouts(tmp_path):
    data = np.random.default_rng(2).normal(size=(7, 3))
    np.savez(tmp_path / "one.npz", table=data)
    t = load_table(tmp_path / "one.npz", 0)
    assert t.features == ("1", "2") and t.targets == ("0",)
    np.testing.assert_array_equal(t.x, data[:, 1:])
    with pytest.raises(ValueError, match="no target column given"):
        load_table(tmp_path / "one.npz")
    np.savez(tmp_path / "two.npz", a=data, b=data)
    with pytest.raises(ValueError, match=r"expected arrays 'x' and 'y', or a single 2-D array; found \['a', 'b'\]"):
        load_table(tmp_path / "two.npz", 0)
    x = np.ones((4, 2))
    x[3, 1] = np.nan
    np.savez(tmp_path / "nan.npz", x=x, y=np.zeros(4))
    with pytest.raises(ValueError, match=r"1 non-finite values .*row 3 \(0-based\), column 'x1'"):
        load_table(tmp_path / "nan.npz")


def test_pickled_data_is_refused(tmp_path):
    obj = np.array([1.0, "x", None], dtype=object)
    np.savez(tmp_path / "o.npz", x=np.ones((3, 1)), y=obj)
    with pytest.raises(ValueError, match=r"array 'y'.*pickle is never loaded"):
        load_table(tmp_path / "o.npz")
    np.save(tmp_path / "o.npy", obj.reshape(3, 1), allow_pickle=True)
    with pytest.raises(ValueError, match="pickle is never loaded"):
        load_table(tmp_path / "o.npy", 0)


# ---------------------------------------------------------------- split_rows / split


@pytest.mark.parametrize("n, frac, n_val", [(100, 0.2, 20), (10, 0.25, 2), (4, 0.01, 1), (9, 0.0, 0), (7, 0.5, 4)])
def test_split_rows_partition_and_sizes(n, frac, n_val):
    train, val = split_rows(n, frac, seed=3)
    assert len(val) == n_val and len(train) == n - n_val
    assert np.intersect1d(train, val).size == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([train, val])), np.arange(n))
    assert train.dtype.kind == "i" and val.dtype.kind == "i"


def test_split_rows_deterministic_by_seed():
    a, b, c = split_rows(200, 0.3, seed=7), split_rows(200, 0.3, seed=7), split_rows(200, 0.3, seed=8)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])
    expected = np.sort(np.random.default_rng(7).permutation(200)[:60])
    np.testing.assert_array_equal(a[1], expected)


def test_split_rows_errors():
    with pytest.raises(ValueError, match=r"too few rows: the table has 3, but at least 4 are needed"):
        split_rows(3, 0.2)
    split_rows(4, 0.6)  # round(2.4) = 2 validation rows leave 2 for training: allowed
    with pytest.raises(ValueError, match=r"too few rows: the table has 4, but at least 6 are needed"):
        split_rows(4, 0.7)  # round(2.8) = 3 would leave 1; 6 rows leave 6 - round(4.2) = 2
    with pytest.raises(ValueError, match=r"too few rows: the table has 5, but at least 8 are needed"):
        split_rows(5, 0.8)  # 8 rows leave 8 - round(6.4) = 2
    split_rows(8, 0.8)
    for bad in (-0.1, 1.0, 1.5, float("nan")):
        with pytest.raises(ValueError, match=r"val_fraction must be in \[0, 1\)"):
            split_rows(100, bad)


def test_split_table(csv_data):
    path, data = csv_data
    t = load_table(path, "d")
    train, val = split(t, val_fraction=0.2, seed=5)
    tr_idx, va_idx = split_rows(50, 0.2, seed=5)
    np.testing.assert_array_equal(train.x, data[tr_idx][:, :3])
    np.testing.assert_array_equal(val.y, data[va_idx][:, 3:])
    assert val.x.shape == (10, 3) and train.y.shape == (40, 1)
    assert train.features == t.features and val.targets == t.targets


# ---------------------------------------------------------------- strict numbers, headers, unreadable files


@pytest.mark.parametrize("cell", ["1_000", "\u0661\u0662", "\uff11", "1e", "--1", "0x10", "1 2", "e5"])
def test_csv_numbers_are_only_what_a_csv_number_is(tmp_path, cell):
    """float() takes 1_000, Arabic-Indic and full-width digits; a CSV number is ASCII digits with an optional
    sign, point and exponent."""
    path = _write(tmp_path / "d.csv", f"a,y\n1,2\n{cell},3\n")
    with pytest.raises(ValueError, match=rf"d\.csv line 3, column 'a': {re.escape(repr(cell))} is not a number"):
        load_table(path, "y", features="a")  # named: a non-number in it is an error


def test_csv_number_forms_that_are_accepted(tmp_path):
    path = _write(tmp_path / "d.csv", "a,y\n +1.5 ,2\n.5,-3.\n1E+3,4e-2\n-0,7\n")
    t = load_table(path, "y")
    np.testing.assert_array_equal(t.x[:, 0], [1.5, 0.5, 1000.0, 0.0])
    np.testing.assert_array_equal(t.y[:, 0], [2.0, -3.0, 0.04, 7.0])


def test_read_inputs_tells_a_header_of_numbers_from_data(tmp_path):
    from kanarray.tabular import read_inputs

    from kanarray.tabular import NumericHeaderWarning

    # pandas' DataFrame(x).to_csv(index=False) writes integer column labels over float columns; taken
    # as a header, with a warning (it could be data)
    with pytest.warns(NumericHeaderWarning, match=r"p\.csv: the first row \(0,1\) is read as a header"):
        np.testing.assert_array_equal(read_inputs(_write(tmp_path / "p.csv", "0,1\n0.5,0.25\n-0.1,2.0\n")),
                                      [[0.5, 0.25], [-0.1, 2.0]])
    with pytest.warns(NumericHeaderWarning):  # one column of decimals below is enough
        np.testing.assert_array_equal(read_inputs(_write(tmp_path / "q.csv", "1,2\n3,0.5\n4,1e-3\n")),
                                      [[3.0, 0.5], [4.0, 1e-3]])
    # integers that are not the column numbers are data, whatever lies below (a binary feature row)
    np.testing.assert_array_equal(read_inputs(_write(tmp_path / "b.csv", "1,0\n0.5,0.25\n")), [[1, 0], [0.5, 0.25]])
    np.testing.assert_array_equal(read_inputs(_write(tmp_path / "c.csv", "0,1,1\n0.5,0.25,2\n")),
                                  [[0, 1, 1], [0.5, 0.25, 2]])
    ints = _write(tmp_path / "i.csv", "1,2\n3,4\n")  # integers over integers: data
    np.testing.assert_array_equal(read_inputs(ints), [[1.0, 2.0], [3.0, 4.0]])
    np.testing.assert_array_equal(read_inputs(ints, header=True), [[3.0, 4.0]])
    np.testing.assert_array_equal(read_inputs(_write(tmp_path / "d.csv", "0.5,1\n0,0.25\n")),
                                  [[0.5, 1.0], [0.0, 0.25]])  # a first row with decimals is data
    np.testing.assert_array_equal(read_inputs(_write(tmp_path / "n.csv", "1,nan\n2,0.5\n")),
                                  [[1.0, np.nan], [2.0, 0.5]])  # nan is not an integer: data
    with pytest.raises(ValueError, match=r"line 1, column 1: 'a' is not a number"):
        read_inputs(_write(tmp_path / "h.csv", "a,b\n1,2\n"), header=False)
    with pytest.raises(ValueError, match=r"line 1, column 1: '1_000' is not a number"):
        read_inputs(_write(tmp_path / "u.csv", "1_000,2\n3,4\n"))  # data with a bad number, not a header
    with pytest.raises(ValueError, match="header must be 'auto', True or False"):
        read_inputs(ints, header="yes")


def test_csv_cell_over_the_field_limit_names_the_line(tmp_path):
    path = _write(tmp_path / "wide.csv", "a,y\n1,2\n" + "1" * 140_000 + ",3\n")
    with pytest.raises(ValueError, match=r"wide\.csv line 3: not readable as CSV: field larger than field limit "
                                         r"\(131072\) \(a cell holds at most 131072 characters\)"):
        load_table(path, "y")


def test_csv_that_is_not_utf8_names_the_file_and_line(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("a,y\n1,2\nx\u00e9,3\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin1\.csv line 3: byte 0xe9 \(offset 9\) is not UTF-8 text; save "
                                         "the file as UTF-8"):
        load_table(path, "y")
    bom = tmp_path / "bom.csv"  # a UTF-8 byte order mark is fine
    bom.write_bytes(b"\xef\xbb\xbfa,y\n1,2\n")
    assert load_table(bom, "y").features == ("a",)


def test_corrupt_or_truncated_npz_and_npy_are_value_errors_naming_the_file(tmp_path):
    np.savez(tmp_path / "t.npz", x=np.ones((100, 2)), y=np.ones(100))
    data = (tmp_path / "t.npz").read_bytes()
    (tmp_path / "t.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"t\.npz: a corrupt or truncated NumPy file"):
        load_table(tmp_path / "t.npz")
    np.savez_compressed(tmp_path / "z.npz", x=np.random.default_rng(0).random((100, 2)), y=np.ones(100))
    data = bytearray((tmp_path / "z.npz").read_bytes())
    data[200:210] = b"0123456789"
    (tmp_path / "z.npz").write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"z\.npz, array 'x': a corrupt or truncated NumPy file"):
        load_table(tmp_path / "z.npz")
    np.save(tmp_path / "t.npy", np.ones((100, 2)))
    data = (tmp_path / "t.npy").read_bytes()
    (tmp_path / "t.npy").write_bytes(data[:-80])
    with pytest.raises(ValueError, match=r"t\.npy: not a readable NumPy file"):
        load_table(tmp_path / "t.npy", 0)


# ---------------------------------------------------------------- real tables: IDs, dates, empty cells

REAL = ("sample_id,date,site,temp,pressure,yield\n"
        "S00000,2024-01-03,north,1.5,101.2,3.25\n"
        "S00001,2024-01-04,south,2.5,,4.5\n"
        "S00002,2024-01-05,north,-0.5,99.8,1.0\n"
        "S00003,2024-01-06,east,0.25,100.1,\n")


def test_csv_named_features_leave_id_date_and_category_columns_unparsed(tmp_path):
    path = _write(tmp_path / "real.csv", REAL.replace(",,", ",100.0,").replace(",\n", ",2.0\n"))
    table = load_table(path, "yield", "temp,pressure")
    np.testing.assert_array_equal(table.x, [[1.5, 101.2], [2.5, 100.0], [-0.5, 99.8], [0.25, 100.1]])
    np.testing.assert_array_equal(table.y[:, 0], [3.25, 4.5, 1.0, 2.0])
    assert table.features == ("temp", "pressure") and table.skipped == ()


def test_csv_default_features_are_the_numeric_columns_and_the_others_are_listed(tmp_path):
    path = _write(tmp_path / "real.csv", REAL.replace(",,", ",100.0,").replace(",\n", ",2.0\n"))
    table = load_table(path, "yield")
    assert table.features == ("temp", "pressure")
    assert table.skipped == (("sample_id", "'S00000' at line 2 is not a number"),
                             ("date", "'2024-01-03' at line 2 is not a number"),
                             ("site", "'north' at line 2 is not a number"))
    with pytest.raises(ValueError, match=r"line 2, column 'site': 'north' is not a number"):
        load_table(path, "yield", "temp,site")  # named, so it must be numeric
    with pytest.raises(ValueError, match=r"line 2, column 'date': '2024-01-03' is not a number"):
        load_table(path, "date")  # a target is never skipped
    with pytest.raises(ValueError, match=r"no numeric feature columns besides the target\(s\) \['yield'\] "
                                         r"\(skipped 'sample_id': 'S1' at line 2"):
        load_table(_write(tmp_path / "ids.csv", "sample_id,yield\nS1,1\nS2,2\n"), "yield")


def test_csv_empty_cells_name_the_rows_and_dropna_drops_them(tmp_path):
    path = _write(tmp_path / "real.csv", REAL)
    with pytest.raises(ValueError, match=r"empty cells \(missing values\) in column\(s\) 'pressure', 'yield' at "
                                         r"line\(s\) 3, 5; fill them in, or drop those rows with --dropna"):
        load_table(path, "yield")
    table = load_table(path, "yield", dropna=True)
    np.testing.assert_array_equal(table.x, [[1.5, 101.2], [-0.5, 99.8]])
    np.testing.assert_array_equal(table.y[:, 0], [3.25, 1.0])
    assert table.dropped_lines == (3, 5)
    # empty cells in a column not used do not matter
    assert load_table(_write(tmp_path / "t.csv", "a,b,c\n1,,3\n4,,6\n"), "c", "a").x[:, 0].tolist() == [1.0, 4.0]
    many = "a,y\n" + "".join(f"{i},\n" for i in range(12))
    with pytest.raises(ValueError, match=r"line\(s\) 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, \.\.\. \(12 rows in all\)"):
        load_table(_write(tmp_path / "m.csv", many), "y")


def test_csv_an_all_empty_column_is_skipped_from_the_default_features(tmp_path):
    table = load_table(_write(tmp_path / "e.csv", "a,notes,y\n1,,2\n3,,4\n"), "y")
    assert table.features == ("a",) and table.skipped == (("notes", "all its cells are empty"),)
