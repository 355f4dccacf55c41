"""``kanarray fit DATA --target COL``: one process in-process, two ranks under mpiexec."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import kanarray as ka
from helpers import mpi_environment, mpiexec
from kanarray.cli import main


def target(x):
    """A function of raw inputs far from the grid range: a in [100, 300], b in [-0.01, 0.01]."""
    return np.exp(np.sin(np.pi * (x[:, :1] - 200) / 100) + (100 * x[:, 1:]) ** 2)


@pytest.fixture
def table(tmp_path):
    rng = np.random.default_rng(0)
    x = np.column_stack([rng.uniform(100, 300, 600), rng.uniform(-0.01, 0.01, 600)])
    path = tmp_path / "data.csv"
    np.savetxt(path, np.column_stack([x, target(x), rng.normal(size=600)]), delimiter=",", header="a,b,y,noise",
               comments="", fmt="%.17g")
    return path


def test_fit_trains_on_raw_columns_and_writes_model_and_onnx(table, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    out, onnx_path = tmp_path / "m.kan", tmp_path / "m.onnx"
    code = main(["fit", str(table), "--target", "y", "--features", "a,b", "--width", "2,5,1", "--steps", "30",
                 "--refine", "10", "--quiet", "--out", str(out), "--onnx", str(onnx_path)])
    assert code == 0
    text = capsys.readouterr().out
    assert "480 training and 120 validation rows" in text and "refine" in text
    model = ka.load(out)
    assert model.input_scaling is not None and model.grid == [10, 10]
    rng = np.random.default_rng(1)
    x = np.column_stack([rng.uniform(110, 290, 400), rng.uniform(-0.009, 0.009, 400)])
    rmse = float(np.sqrt(np.mean((np.asarray(model(x)) - target(x)) ** 2)))
    assert rmse < 1e-2  # a [2, 5, 1] KAN on G = 10; without the input map it cannot resolve b at all
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    served = session.run(None, {name: x.astype(np.float32)})[0]
    np.testing.assert_allclose(served, np.asarray(model(x)), rtol=1e-4, atol=1e-4)
    last_val = float(text.strip().splitlines()[-3].split()[4])
    assert last_val < 2e-2


@pytest.mark.parametrize("argv,message", [
    (["--target", "z"], "column.*'z'.*available"),
    (["--target", "y", "--width", "2,5,1"], "--width must start with the number of feature columns \\(3\\)"),
    (["--target", "y", "--refine", "0"], "--refine grids must be positive"),
    (["--target", "y", "--val-fraction", "1.5"], "--val-fraction must be in"),
    (["--target", "y", "--plot", "/nonexistent-folder/c.png"], "--plot .*the folder /nonexistent-folder does not"),
    (["--target", "y", "--grid-margin", "-0.5"], "grid_margin must be a finite number >= 0"),
    (["--target", "y", "--k", "1", "--extrapolate", "linear"], "extrapolate='linear' needs spline order k >= 2"),
])
def test_fit_errors_are_clear_and_write_nothing(table, tmp_path, capsys, argv, message):
    out = tmp_path / "never.kan"
    assert main(["fit", str(table), *argv, "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("kanarray fit: error:")
    assert __import__("re").search(message, err), err
    assert not out.exists()


def test_fit_with_linear_ends_keeps_them_in_the_checkpoint_and_the_onnx_file(table, tmp_path):
    pytest.importorskip("onnxruntime")
    import onnxruntime as ort

    out, onnx_path = tmp_path / "m.kan", tmp_path / "m.onnx"
    assert main(["fit", str(table), "--target", "y", "--features", "a,b", "--width", "2,3,1", "--steps", "5",
                 "--extrapolate", "linear", "--quiet", "--out", str(out), "--onnx", str(onnx_path)]) == 0
    model = ka.load(out)
    assert model.extrapolate == "linear"
    x = np.column_stack([np.linspace(0, 400, 50), np.linspace(-0.03, 0.03, 50)])  # well beyond the training range
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    served = session.run(None, {session.get_inputs()[0].name: x.astype(np.float32)})[0]
    np.testing.assert_allclose(served, np.asarray(model(x)), rtol=1e-4, atol=1e-4)


def test_fit_refuses_non_numeric_cells_and_too_few_rows(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,y\n1,2\n3,x\n")
    assert main(["fit", str(bad), "--target", "y", "--quiet", "--out", ""]) == 2
    assert "line 3, column 'y': 'x' is not a number" in capsys.readouterr().err
    few = tmp_path / "few.csv"
    few.write_text("a,y\n1,2\n3,4\n")
    assert main(["fit", str(few), "--target", "y", "--quiet", "--out", ""]) == 2
    assert "too few rows" in capsys.readouterr().err


def _mpi_fit(table, tmp_path, *extra):
    cmd = [mpiexec(), "-n", "2", sys.executable, "-m", "kanarray", "fit", str(table), "--quiet", *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=mpi_environment(), cwd=tmp_path)


@pytest.mark.slow
def test_fit_under_mpiexec_matches_one_process(table, tmp_path, capsys):
    options = ["--target", "y", "--features", "a,b", "--width", "2,4,1", "--opt", "adam", "--steps", "15"]
    proc = _mpi_fit(table, tmp_path, *options, "--out", "two.kan", "--plot", "curves.png", "--refine", "6")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("wrote two.kan") == 1  # rank 0 alone writes and prints
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert proc.stdout.count("stage") == 1 and "on 2 ranks" in proc.stdout
    assert main(["fit", str(table), *options, "--refine", "6", "--quiet", "--out", str(tmp_path / "one.kan")]) == 0
    two, one = ka.load(tmp_path / "two.kan"), ka.load(tmp_path / "one.kan")
    for name, p in one.parameters().items():
        np.testing.assert_allclose(np.asarray(two.parameters()[name]), np.asarray(p), rtol=0, atol=1e-10)
    np.testing.assert_array_equal(two.input_scaling[1], one.input_scaling[1])


@pytest.mark.slow
def test_fit_error_under_mpiexec_stops_both_ranks_with_one_message(table, tmp_path):
    proc = _mpi_fit(table, tmp_path, "--target", "nope", "--out", "x.kan")
    assert proc.returncode == 2
    assert proc.stderr.count("kanarray fit: error:") == 1 and "'nope'" in proc.stderr
    assert not (tmp_path / "x.kan").exists()


@pytest.mark.parametrize("tty", [True, False])
def test_progress_bar_only_on_a_terminal(table, tmp_path, capsys, monkeypatch, tty):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: tty)
    argv = ["fit", str(table), "--target", "y", "--width", "3,2,1", "--steps", "3", "--out", str(tmp_path / "m.kan")]
    assert main(argv) == 0
    assert ("3/3" in capsys.readouterr().err) == tty


def _fails_before_training(argv, capsys) -> str:
    """Run ``kanarray fit``; it must stop with status 2 and one error line, before printing the stage table."""
    assert main(["fit", *argv, "--quiet"]) == 2
    captured = capsys.readouterr()
    assert "stage" not in captured.out, "it trained first"
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kanarray fit: error:"), captured.err
    return lines[0]


def test_fit_refuses_outputs_over_its_input_or_each_other(table, tmp_path, capsys):
    before = table.read_bytes()
    line = _fails_before_training([str(table), "--target", "y", "--out", str(table)], capsys)
    assert f"--out {table} is the input DATA ({table})" in line
    link = tmp_path / "link.kan"
    link.symlink_to(table)
    line = _fails_before_training([str(table), "--target", "y", "--out", str(tmp_path / ".." / tmp_path.name /
                                                                         "data.csv"), "--plot", str(link)], capsys)
    assert "is the input DATA" in line
    line = _fails_before_training([str(table), "--target", "y", "--out", str(tmp_path / "m.kan"), "--onnx",
                                   str(tmp_path / "." / "m.kan")], capsys)
    assert "--onnx" in line and "and --out" in line and "are the same file" in line
    line = _fails_before_training([str(table), "--target", "y", "--out", str(tmp_path / "c.png"), "--plot",
                                   str(tmp_path / "c.png")], capsys)
    assert "are the same file" in line
    assert table.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["data.csv", "link.kan"]


def test_fit_checks_where_it_writes_before_training(table, tmp_path, capsys):
    (tmp_path / "folder").mkdir()
    line = _fails_before_training([str(table), "--target", "y", "--out", str(tmp_path / "folder")], capsys)
    assert "--out" in line and "is a directory; kanarray writes only regular files" in line
    os.mkfifo(tmp_path / "pipe")
    line = _fails_before_training([str(table), "--target", "y", "--out", "", "--onnx", str(tmp_path / "pipe")],
                                  capsys)
    assert "is a FIFO" in line
    if os.path.isdir("/proc/self"):  # a folder where no file can be created, even by root
        line = _fails_before_training([str(table), "--target", "y", "--out", "/proc/m.kan"], capsys)
        assert "--out /proc/m.kan: cannot write in the folder /proc" in line


def test_fit_unreadable_tables_are_one_line_errors(tmp_path, capsys):
    wide = tmp_path / "wide.csv"
    wide.write_text("a,y\n1,2\n" + "1" * 140_000 + ",3\n")
    latin = tmp_path / "latin.csv"
    latin.write_bytes("a,y\n\u00e9,1\n".encode("latin-1"))
    np.savez(tmp_path / "cut.npz", x=np.ones((50, 2)), y=np.ones(50))
    data = (tmp_path / "cut.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    for argv, message in [([str(wide), "--target", "y"], "wide.csv line 3: not readable as CSV"),
                          ([str(latin), "--target", "y"], "latin.csv line 2: byte 0xe9"),
                          ([str(tmp_path / "cut.npz")], "cut.npz: a corrupt or truncated NumPy file")]:
        assert message in _fails_before_training([*argv, "--out", str(tmp_path / "m.kan")], capsys)
    assert not (tmp_path / "m.kan").exists()


def test_fit_huge_targets_are_refused_up_front_and_a_divergence_is_one_line(tmp_path, capsys):
    """Without the target standardization (--no-scale-target), targets whose squared error overflows are
    refused before training; with it (the default) they train (tests/test_target_scaling.py)."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (50, 2))
    path = tmp_path / "big.csv"
    np.savetxt(path, np.column_stack([x, 1e200 * x[:, 0]]), delimiter=",", header="a,b,y", comments="")
    line = _fails_before_training([str(path), "--target", "y", "--no-scale-target", "--out", str(tmp_path / "m.kan")],
                                  capsys)
    assert "column 'y' reaches 9.94e+199" in line and "the squared error overflows in float64" in line
    np.savetxt(path, np.column_stack([x, 1e30 * x[:, 0]]), delimiter=",", header="a,b,y", comments="")
    line = _fails_before_training([str(path), "--target", "y", "--no-scale-target", "--dtype", "float32",
                                   "--out", ""], capsys)
    assert "overflows in float32" in line
    np.savetxt(path, np.column_stack([x, x[:, 0]]), delimiter=",", header="a,b,y", comments="")
    assert main(["fit", str(path), "--target", "y", "--opt", "adam", "--lr", "1e300", "--steps", "3", "--quiet",
                 "--out", str(tmp_path / "m.kan")]) == 2  # trains, diverges: TrainingDiverged's message, no traceback
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("kanarray fit: error: the objective became NaN or infinite")
    assert not (tmp_path / "m.kan").exists()


@pytest.mark.parametrize("value", ["0", "-1", "2.5", "1_000", "x"])
def test_fit_bad_batch_size_is_a_one_line_error(table, capsys, value):
    with pytest.raises(SystemExit) as exc:
        main(["fit", str(table), "--target", "y", "--batch-size", value])
    assert exc.value.code == 2
    assert f"kanarray fit: error: argument --batch-size: expected a positive integer, got '{value}'" in \
        capsys.readouterr().err


def test_fit_settings_errors_come_before_the_data_is_read(tmp_path, capsys):
    """A ValueError of FitSettings becomes an error line, and is raised before the table is even read."""
    line = _fails_before_training([str(tmp_path / "absent.csv"), "--target", "y", "--lr", "nan", "--out", ""],
                                  capsys)
    assert line == "kanarray fit: error: lr must be a finite number > 0.0, got nan"
