"""``kanarray fit`` on real tables, through the console script in a subprocess: ID, date and category
columns, empty cells and --dropna, Ctrl-C, and ``--prune --symbolic`` to a formula in the column names."""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import kanarray as ka
from kanarray.fit_formula import formula_names

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _env() -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    for name in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS"):
        env.pop(name, None)
    return env


def _kanarray(*argv, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kanarray", *map(str, argv)], capture_output=True, text=True,
                          timeout=300, env=_env(), cwd=cwd, check=False)


def _write_table(path, n=200, seed=0, empty_rows=()):
    """sample_id, date, site (text), temp (C) in [10, 30], 2nd in [-1, 1], yield = 0.5 temp - 3 2nd + 1."""
    rng = np.random.default_rng(seed)
    a, b = rng.uniform(10, 30, n), rng.uniform(-1, 1, n)
    y = 0.5 * a - 3 * b + 1
    lines = ["sample_id,date,site,temp (C),2nd,yield"]
    for i in range(n):
        cell = "" if i in empty_rows else f"{b[i]:.17g}"
        lines.append(f"S{i:05d},2024-01-{1 + i % 28:02d},{'north' if i % 2 else 'south'},{a[i]:.17g},{cell},{y[i]:.17g}")
    path.write_text("\n".join(lines) + "\n")
    return path, a, b, y


def test_fit_skips_id_date_and_category_columns_and_says_so(tmp_path):
    data, *_ = _write_table(tmp_path / "real.csv")
    proc = _kanarray("fit", data, "--target", "yield", "--width", "2,3,1", "--steps", "3", "--quiet",
                     "--out", "m.kan", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "features temp (C), 2nd -> yield" in proc.stdout
    assert ("skipped columns that are not numeric (not features): sample_id ('S00000' at line 2 is not a number); "
            "date ('2024-01-01' at line 2 is not a number); site ('south' at line 2 is not a number)") in proc.stdout
    assert ka.load(tmp_path / "m.kan").width[0] == 2
    named = _kanarray("fit", data, "--target", "yield", "--features", "temp (C),2nd", "--width", "2,3,1", "--steps",
                      "3", "--quiet", "--out", "", cwd=tmp_path)
    assert named.returncode == 0, named.stderr
    assert "skipped" not in named.stdout


def test_fit_empty_cells_name_the_lines_and_dropna_drops_them(tmp_path):
    data, *_ = _write_table(tmp_path / "gaps.csv", empty_rows=(3, 10))
    proc = _kanarray("fit", data, "--target", "yield", "--quiet", "--out", "m.kan", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        (f"kanarray fit: error: {data}: empty cells (missing values) in column(s) '2nd' at line(s) 5, 12; fill them "
         "in, or drop those rows with --dropna (load_table(..., dropna=True))")]
    assert not (tmp_path / "m.kan").exists()
    proc = _kanarray("fit", data, "--target", "yield", "--dropna", "--width", "2,3,1", "--steps", "3", "--quiet",
                     "--out", "m.kan", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "--dropna: dropped 2 rows with empty cells" in proc.stdout
    assert "158 training and 40 validation rows" in proc.stdout  # 198 rows left


def test_fit_prune_symbolic_prints_the_formula_in_the_column_names(tmp_path):
    sympy = pytest.importorskip("sympy")
    data, a, b, y = _write_table(tmp_path / "lin.csv")
    proc = _kanarray("fit", data, "--target", "yield", "--width", "2,2,1", "--grid", "3", "--steps", "40",
                     "--lamb", "1e-2", "--prune", "--symbolic", "--quiet", "--out", "m.kan", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert any(line.startswith("prune ") and line.endswith("width [2, 1, 1]") for line in lines), proc.stdout
    assert "(columns renamed to be symbols: 'temp (C)' -> temp__C_, '2nd' -> x_2nd)" in lines
    (formula_line,) = [line for line in lines if line.startswith("yield = ")]
    expr = sympy.sympify(formula_line.removeprefix("yield = "))
    assert {s.name for s in expr.free_symbols} == {"temp__C_", "x_2nd"}
    f = sympy.lambdify([sympy.Symbol("temp__C_"), sympy.Symbol("x_2nd")], expr, "numpy")
    np.testing.assert_allclose(f(a, b), y, atol=2e-2)  # yield = 0.5 temp - 3 2nd + 1, to the printed digits
    model = ka.load(tmp_path / "m.kan")
    assert model.width == [2, 1, 1]
    np.testing.assert_allclose(np.asarray(model(np.column_stack([a, b])))[:, 0], y, atol=1e-6)


def test_fit_symbolic_without_a_formula_keeps_the_model_and_exits_1(tmp_path):
    data, *_ = _write_table(tmp_path / "lin.csv", n=60)
    proc = _kanarray("fit", data, "--target", "yield", "--width", "2,2,1", "--grid", "3", "--steps", "3",
                     "--symbolic", "--r2-threshold", "1", "--quiet", "--out", "m.kan", cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "no formula: the model still has" in proc.stdout and "lower --r2-threshold" in proc.stdout
    assert (tmp_path / "m.kan").exists()


@pytest.mark.slow
def test_one_ctrl_c_ends_the_run_saves_the_model_and_exits_130(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (400, 2))
    data = tmp_path / "t.csv"  # numbers only, as the old kanarray fit read them
    np.savetxt(data, np.column_stack([x, np.sin(3 * x[:, 0]) + x[:, 1]]), delimiter=",", header="a,b,yield",
               comments="", fmt="%.17g")
    (tmp_path / "m.kan").write_bytes(b"an older file")  # replaced whole by the save
    cmd = [sys.executable, "-m", "kanarray", "fit", str(data), "--target", "yield", "--width", "2,5,1", "--opt",
           "adam", "--steps", "1000000", "--refine", "10", "--quiet", "--out", "m.kan", "--onnx", "m.onnx"]
    # Ctrl-C's default action in the child, even where this test runs with SIGINT ignored (a background job of a
    # non-interactive shell, e.g. `nohup .ci/run &`): an ignored SIGINT is inherited, and Python then keeps it ignored
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), cwd=tmp_path,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        head = []
        while not head or not head[-1].startswith("stage"):  # the table header: the fit starts next
            head.append(proc.stdout.readline())
            assert head[-1], "kanarray fit ended before training: " + proc.stderr.read()
        time.sleep(2.0)
        proc.send_signal(signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:  # say where it was, rather than only that it went on
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate()
            raise AssertionError(f"one SIGINT did not end the run within 60 s:\n{''.join(head)}{out}\n{err}") from None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    rows = [line.split()[0] for line in out.splitlines() if line.strip()]
    assert rows == ["fit"], out  # the interrupted fit's row, and no refine stage after it
    assert "kanarray fit: interrupted (Ctrl-C) in the fit stage\n" in err
    assert "saved the model trained so far to m.kan; --onnx and --plot not written" in err
    assert "Traceback" not in err
    model = ka.load(tmp_path / "m.kan")
    assert model.grid == [5, 5] and model.input_scaling is not None
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize("columns,names", [
    (["temp (C)", "2nd", "class", "a b", "a_b"], ["temp__C_", "x_2nd", "class_", "a_b_2", "a_b"]),
    (["x", "y"], ["x", "y"]),
    (["a-b", "a+b", "a*b"], ["a_b", "a_b_2", "a_b_3"]),
    (["température", ""], ["température", "x_"]),
])
def test_formula_names_are_distinct_identifiers(columns, names):
    assert formula_names(columns) == names
    assert all(name.isidentifier() for name in names) and len(set(names)) == len(names)


def test_ctrl_c_between_stages_saves_the_last_finished_stage(tmp_path, monkeypatch, capsys):
    """A Ctrl-C outside a fit (here in the grid extension) ends the run the same way, with the model of the
    last stage that finished."""
    from kanarray.cli import main

    data, *_ = _write_table(tmp_path / "t.csv", n=60)

    def interrupted_refine(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(ka.KAN, "refine", interrupted_refine)
    out = tmp_path / "m.kan"
    code = main(["fit", str(data), "--target", "yield", "--width", "2,3,1", "--steps", "3", "--refine", "10,20",
                 "--quiet", "--out", str(out)])
    assert code == 130
    err = capsys.readouterr().err
    assert "interrupted (Ctrl-C) in the refine stage, after the fit stage finished\n" in err
    assert ka.load(out).grid == [5, 5]


def test_prune_makes_the_sparsity_penalty_default_to_1e_3(tmp_path):
    from kanarray.cli import build_parser
    from kanarray.fit_command import _settings

    def lamb(*argv):
        return _settings(build_parser().parse_args(["fit", "d.csv", "--target", "y", *argv]), True)["lamb"]

    assert lamb() == 0.0 and lamb("--prune") == 1e-3 and lamb("--prune", "--lamb", "0") == 0.0
    assert lamb("--lamb", "0.5") == 0.5


@pytest.mark.slow
def test_prune_and_symbolic_are_refused_under_mpiexec_before_training(tmp_path):
    from helpers import mpi_environment, mpiexec

    data, *_ = _write_table(tmp_path / "t.csv", n=60)
    cmd = [mpiexec(), "-n", "2", sys.executable, "-m", "kanarray", "fit", str(data), "--target", "yield", "--prune",
           "--quiet", "--out", "m.kan"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=tmp_path,
                          env=dict(mpi_environment(), PYTHONPATH=str(ROOT)),
                          check=False)
    assert proc.returncode == 2
    assert proc.stderr.count("kanarray fit: error: --prune and --symbolic run in one process only") == 1
    assert "stage" not in proc.stdout and not (tmp_path / "m.kan").exists()
