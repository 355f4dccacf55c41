"""The command line and the demo behind it."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np
import pytest

import kanarray as ka
from kanarray.cli import main
from kanarray.demo import run_demo

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_demo_recovers_the_formula_exactly(tmp_path):
    """The issue's acceptance: exp(x2^2 + sin(pi x1)) to 4 digits, final test RMSE <= 1e-9 in float64."""
    import sympy

    lines = []
    result = run_demo(out_dir=str(tmp_path), echo=lines.append)
    x1, x2 = sympy.symbols("x_1 x_2")
    assert result["formula"] == sympy.exp(x2**2 + sympy.sin(sympy.Float("3.1416", 15) * x1))
    assert result["exact"] and result["test_rmse"] <= 1e-9
    assert [name for name, _, _ in result["stages"]][1].startswith("prune -> [2, 1, 1]")
    for png in ("1-trained.png", "2-pruned-refined.png", "3-symbolic.png", "loss.png"):
        assert (tmp_path / png).read_bytes()[:4] == b"\x89PNG"
    assert any("recovered formula" in line for line in lines)
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        assert result["onnx"] == {"spline": None, "symbolic": None}
    else:  # both models exported and checked on onnxruntime
        for name in ("spline", "symbolic"):
            assert result["onnx"][name]["max_gap"] <= 1e-10 and (tmp_path / f"{name}.onnx").exists()


@pytest.mark.slow
def test_demo_recovers_relativistic_addition():
    result = run_demo(function="relativistic", out_dir=None, echo=lambda *a: None)
    assert result["exact"] and result["test_rmse"] <= 1e-9


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_demo_recovers_the_product_with_a_multiplication_node(tmp_path, seed):
    """x1 * x2 through pykan's [2, [0, 1]]: exact after rounding, test RMSE <= 1e-9, ONNX and plots too."""
    import sympy

    result = run_demo(function="xy", seed=seed, out_dir=str(tmp_path) if seed == 1 else None, echo=lambda *a: None)
    x1, x2 = sympy.symbols("x_1 x_2")
    assert sympy.simplify(result["formula"] - x1 * x2) == 0
    assert result["exact"] and result["test_rmse"] <= 1e-9
    assert result["stages"][1][0] == "prune -> [2, [0, 1]]"
    if seed == 1 and result["onnx"]["symbolic"] is not None:
        assert result["onnx"]["symbolic"]["max_gap"] <= 1e-10 and (tmp_path / "3-symbolic.png").exists()


@pytest.mark.slow
def test_cli_demo_prints_the_stages(capsys, tmp_path):
    assert main(["demo", "--out", str(tmp_path / "plots"), "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert "exp(sin(pi x1) + x2^2)" in out and "test RMSE" in out and "exp(x_2**2 + sin(3.1416*x_1))" in out
    assert (tmp_path / "plots" / "3-symbolic.png").exists()


def test_cli_demo_help_lists_the_options(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for option in ("--seed", "--out", "--function", "expsin", "xy", "relativistic"):
        assert option in out


@pytest.mark.parametrize("argv", [["demo", "--steps", "0"], ["demo", "--lamb", "-1"], ["demo", "--function", "nope"],
                                  ["nonsense"], []])
def test_cli_rejects_bad_arguments(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert "error" in capsys.readouterr().err


def test_module_entry_point_reports_version():
    out = subprocess.run([sys.executable, "-m", "kanarray", "--version"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0 and ka.__version__ in out.stdout


def test_import_stays_light():
    code = (
        "import sys, kanarray, numpy as np; kanarray.KAN([2, 3, 1])(np.zeros((4, 2)));"
        "heavy = [m for m in ('scipy', 'cupy', 'matplotlib', 'sympy', 'onnxruntime', 'onnx', 'torch', 'sklearn')"
        " if m in sys.modules];"
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.slow
@pytest.mark.parametrize("extra", [[], ["--nonuniform"]])
def test_benchmark_script_runs_without_the_peer(extra):
    script = os.path.join(ROOT, "benchmarks", "bench_step.py")
    out = subprocess.run([sys.executable, script, "--no-pykan", "--repeats", "1", "--cases", "toy,fine", *extra],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr
    rows = [line for line in out.stdout.splitlines() if line.startswith("| toy") or line.startswith("| fine")]
    assert len(rows) == 2



# -- export and predict: their files -------------------------------------------------------------


@pytest.fixture
def served(tmp_path):
    """(the model, its float64 ONNX file) of a small [2, 3, 1] KAN."""
    pytest.importorskip("onnxruntime")
    model = ka.KAN([2, 3, 1], grid=5, seed=0)
    model.save(tmp_path / "m.kan")
    assert main(["export", str(tmp_path / "m.kan"), "-o", str(tmp_path / "m.onnx"), "--dtype", "float64"]) == 0
    return model, tmp_path / "m.onnx"


def _one_error_line(capsys, command: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"kanarray {command}: error:"), err
    return err[0]


def test_export_and_predict_refuse_to_write_over_their_inputs(served, tmp_path, capsys):
    _, onnx_path = served
    kan_bytes, onnx_bytes = (tmp_path / "m.kan").read_bytes(), onnx_path.read_bytes()
    assert main(["export", str(tmp_path / "m.kan"), "-o", str(tmp_path / "." / "m.kan")]) == 2
    line = _one_error_line(capsys, "export")
    assert line.startswith("kanarray export: error: -o ") and "is the input MODEL" in line
    np.save(tmp_path / "x.npy", np.zeros((3, 2)))
    x_bytes = (tmp_path / "x.npy").read_bytes()
    (tmp_path / "alias.npy").symlink_to(tmp_path / "x.npy")
    os.link(tmp_path / "x.npy", tmp_path / "hard.npy")
    for output, what in [("x.npy", "INPUT"), ("alias.npy", "INPUT"), ("hard.npy", "INPUT"), ("m.onnx", "MODEL")]:
        assert main(["predict", str(onnx_path), str(tmp_path / "x.npy"), "-o", str(tmp_path / output)]) == 2
        assert f"is the input {what}" in _one_error_line(capsys, "predict")
    assert main(["predict", str(onnx_path), str(tmp_path / "x.npy"), "-o", str(tmp_path)]) == 2
    assert "is a directory" in _one_error_line(capsys, "predict")
    assert (tmp_path / "m.kan").read_bytes() == kan_bytes and onnx_path.read_bytes() == onnx_bytes
    assert (tmp_path / "x.npy").read_bytes() == x_bytes


def test_predict_gives_nan_rows_for_non_finite_inputs_and_names_them(served, tmp_path, capsys):
    model, onnx_path = served
    x = np.random.default_rng(0).uniform(-1, 1, (40, 2))
    bad = [2, 5, 6, 9, 11, 17, 20, 22, 25, 30, 31, 39]
    x[bad, np.arange(len(bad)) % 2] = [np.nan, np.inf, -np.inf] * 4
    np.save(tmp_path / "x.npy", x)
    assert main(["predict", str(onnx_path), str(tmp_path / "x.npy"), "-o", str(tmp_path / "y.npy")]) == 0
    captured = capsys.readouterr()
    assert "wrote" in captured.out and "40 rows" in captured.out
    warning, = captured.err.strip().splitlines()
    assert warning == (f"kanarray predict: warning: {tmp_path / 'x.npy'}: 12 of 40 rows have inputs that are nan, "
                       "inf or beyond float64; their predictions are nan: rows 2, 5, 6, 9, 11, 17, 20, 22, 25, 30, "
                       "... (0-based)")
    y = np.load(tmp_path / "y.npy")
    good = np.setdiff1d(np.arange(40), bad)
    assert np.isnan(y[bad]).all()
    np.testing.assert_allclose(y[good], np.asarray(model(x[good])), rtol=1e-12, atol=1e-12)


def test_predict_counts_values_beyond_a_float32_graph_as_non_finite(tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    from kanarray.export import predict_file
    from kanarray.export.serving import NonFiniteInputWarning

    model = ka.KAN([2, 3, 1], grid=5, seed=0)
    model.save(tmp_path / "m.kan")
    assert main(["export", str(tmp_path / "m.kan"), "-o", str(tmp_path / "m.onnx")]) == 0  # float32
    (tmp_path / "x.csv").write_text("0.5,0.25\n1e39,0\nnan,nan\n")
    with pytest.warns(NonFiniteInputWarning, match=r"2 of 3 rows .* beyond float32.*rows 1, 2 \(0-based\)"):
        assert predict_file(tmp_path / "m.onnx", tmp_path / "x.csv", tmp_path / "y.csv") == (3, "cpu")
    y = np.loadtxt(tmp_path / "y.csv", delimiter=",", ndmin=2, skiprows=1)  # a header row: y0
    assert np.isnan(y[1:]).all()
    np.testing.assert_allclose(y[0], np.asarray(model(np.array([[0.5, 0.25]])))[0], rtol=1e-5, atol=1e-6)
    (tmp_path / "all.csv").write_text("nan,1\n")  # no finite row: the graph never runs
    with pytest.warns(NonFiniteInputWarning, match="1 of 1 rows"):
        predict_file(tmp_path / "m.onnx", tmp_path / "all.csv", tmp_path / "all.npy")
    assert np.load(tmp_path / "all.npy").shape == (1, 1) and np.isnan(np.load(tmp_path / "all.npy")).all()


def test_predict_reads_a_header_of_numbers_as_a_header(served, tmp_path, capsys):
    model, onnx_path = served
    x = np.array([[0.5, -0.25], [0.125, 0.75]])
    (tmp_path / "labels.csv").write_text("0,1\n" + "\n".join(",".join(repr(float(v)) for v in row) for row in x) + "\n")
    assert main(["predict", str(onnx_path), str(tmp_path / "labels.csv"), "-o", str(tmp_path / "y.npy")]) == 0
    assert "2 rows" in capsys.readouterr().out
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), np.asarray(model(x)), rtol=1e-12, atol=1e-12)
    (tmp_path / "ints.csv").write_text("1,2\n3,4\n")
    assert main(["predict", str(onnx_path), str(tmp_path / "ints.csv"), "-o", str(tmp_path / "y.npy")]) == 0
    assert "2 rows" in capsys.readouterr().out  # integers over integers: data
    assert main(["predict", str(onnx_path), str(tmp_path / "ints.csv"), "-o", str(tmp_path / "y.npy"),
                 "--header", "yes"]) == 0
    assert "1 rows" in capsys.readouterr().out
    (tmp_path / "under.csv").write_text("1_000,2\n")
    assert main(["predict", str(onnx_path), str(tmp_path / "under.csv"), "-o", str(tmp_path / "y.npy")]) == 2
    assert "line 1, column 1: '1_000' is not a number" in _one_error_line(capsys, "predict")


@pytest.mark.parametrize("value", ["0", "-1", "2.5"])
def test_predict_bad_batch_size_is_a_one_line_error(value, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["predict", "m.onnx", "x.npy", "-o", "y.npy", "--batch-size", value])
    assert exc.value.code == 2
    assert f"error: argument --batch-size: expected a positive integer, got '{value}'" in capsys.readouterr().err

# Code blocks that the tests run are marked in the Markdown by an HTML comment on the line
# before the fence: <!-- test: NAME -->.  The tests find them by name, not by position.
TESTED_BLOCKS = {  # marker -> the file that holds it
    "readme-example": "README.md",
    "interpretability-example": os.path.join("docs", "interpretability.md"),
    "mpi-example": os.path.join("docs", "distributed.md"),
}
_MARKED_BLOCK = re.compile(r"^<!-- test: ([\w.-]+) -->\n(`{3,}|~{3,})[^\n]*\n(.*?)^\2[ \t]*$", re.DOTALL | re.MULTILINE)


def _markdown_files() -> list[str]:
    """README.md and every page under docs/, relative to the repository root."""
    docs = os.path.join(ROOT, "docs")
    pages = sorted(os.path.join("docs", name) for name in os.listdir(docs) if name.endswith(".md"))
    return ["README.md", *pages]


def _read(relpath: str) -> str:
    with open(os.path.join(ROOT, relpath), encoding="utf-8") as f:
        return f.read()


def marked_block(name: str) -> str:
    """The code of the one block marked <!-- test: name --> in its file; fails if there is none or
    more than one."""
    relpath = TESTED_BLOCKS[name]
    found = [code for marker, _, code in _MARKED_BLOCK.findall(_read(relpath)) if marker == name]
    assert len(found) == 1, f"{relpath}: expected one code block marked <!-- test: {name} -->, found {len(found)}"
    assert found[0].strip(), f"{relpath}: the block marked <!-- test: {name} --> is empty"
    return found[0]


def test_every_marked_block_is_one_the_tests_run():
    """A marker the tests do not know (a typo, a moved block) would leave a block untested."""
    for relpath in _markdown_files():
        text = _read(relpath)
        for marker in re.findall(r"<!-- test: ([^ ]*) -->", text):
            assert TESTED_BLOCKS.get(marker) == relpath, f"{relpath}: marker {marker!r} is not run by any test here"
        # a marker must sit right before a fence, or its block would be silently skipped
        assert len(re.findall(r"<!-- test:", text)) == len(_MARKED_BLOCK.findall(text)), relpath


@pytest.mark.slow
def test_readme_examples_run_as_documented(tmp_path, monkeypatch):
    """The README's example and the interpretability page's, executed as written."""
    import sympy

    example, interpret = marked_block("readme-example"), marked_block("interpretability-example")
    namespace = {}
    monkeypatch.chdir(tmp_path)
    exec(compile(example, "README.md", "exec"), namespace)
    assert namespace["history"]["val_loss"][-1] <= 1e-3
    assert (tmp_path / "hello.kan").exists() and (tmp_path / "curves.png").exists()
    namespace = {}
    exec(compile(interpret, TESTED_BLOCKS["interpretability-example"], "exec"), namespace)
    model = namespace["model"]
    x1, x2 = sympy.symbols("x_1 x_2")
    assert model.width == [2, 1, 1]  # as the comments there say
    assert model.symbolic_formula() == [sympy.exp(x2**2 + sympy.sin(sympy.Float("3.1416", 15) * x1))]
    assert (tmp_path / "network.png").exists()


@pytest.mark.slow
def test_readme_parallel_example_runs_under_mpiexec(tmp_path):
    """The data-parallel block of docs/distributed.md, as written, on 2 ranks."""
    from helpers import mpi_environment, mpiexec

    parallel = marked_block("mpi-example")
    assert "comm=comm" in parallel
    script = tmp_path / "parallel.py"
    script.write_text(parallel)
    run = subprocess.run([mpiexec(), "-n", "2", sys.executable, str(script)], capture_output=True, text=True,
                         cwd=tmp_path, env=mpi_environment(), timeout=300)
    assert run.returncode == 0, run.stderr
    trained = ka.load(tmp_path / "parallel.kan")
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, (500, 2))
    rmse = float(np.sqrt(np.mean((np.asarray(trained(x)) - np.exp(np.sin(np.pi * x[:, :1]) + x[:, 1:] ** 2)) ** 2)))
    assert trained.grid == [10, 10] and rmse < 1e-2


def _outside_code(text: str) -> list[str]:
    """The lines of a Markdown text outside fenced code blocks, with inline code spans blanked."""
    lines, fence = [], None
    for line in text.splitlines():
        opener = re.match(r"\s*(`{3,}|~{3,})", line)
        if fence is None and opener:
            fence = opener.group(1)
        elif fence is not None:
            if line.strip().startswith(fence) and not line.strip().strip(fence[0]):
                fence = None
        else:
            lines.append(re.sub(r"(`+).*?\1", "", line))
    return lines


def github_anchors(text: str) -> set[str]:
    """The heading anchors GitHub gives a Markdown text: the heading's text (link targets dropped),
    lowercased, punctuation other than '-' and '_' removed, each space a '-'; a repeated anchor
    gets -1, -2, ..."""
    anchors, seen = set(), {}
    fence = None
    for line in text.splitlines():
        opener = re.match(r"\s*(`{3,}|~{3,})", line)
        if fence is None and opener:
            fence = opener.group(1)
            continue
        if fence is not None:
            if line.strip().startswith(fence) and not line.strip().strip(fence[0]):
                fence = None
            continue
        heading = re.match(r" {0,3}#{1,6}[ \t]+(.*?)[ \t]*#*[ \t]*$", line)
        if heading is None:
            continue
        title = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading.group(1))
        slug = re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def test_github_anchors_follow_githubs_rules():
    text = ("# GPU: NVIDIA H200 (2026-11-30, 00:40 UTC)\n```\n# not a heading\n```\n"
            "## `fit` and G = 3\n## `fit` and G = 3\n")
    assert github_anchors(text) == {"gpu-nvidia-h200-2026-11-30-0040-utc", "fit-and-g--3", "fit-and-g--3-1"}


def test_relative_links_in_readme_and_docs_resolve():
    """Every relative link (and image) in README.md and docs/*.md names a file that exists, and a
    #anchor into a Markdown file names one of its headings (e.g. a table of benchmarks/RESULTS.md)."""
    broken = []
    for relpath in _markdown_files():
        base = os.path.dirname(os.path.join(ROOT, relpath))
        for line in _outside_code(_read(relpath)):
            for target in re.findall(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)", line):
                if re.match(r"[a-zA-Z][a-zA-Z0-9+.-]*:", target):  # https:, mailto:, ...
                    continue
                path, _, anchor = target.partition("#")
                full = os.path.normpath(os.path.join(base, path)) if path else os.path.join(ROOT, relpath)
                if not os.path.exists(full):
                    broken.append(f"{relpath}: {target} (no such file)")
                elif anchor and full.endswith(".md"):
                    with open(full, encoding="utf-8") as f:
                        if anchor not in github_anchors(f.read()):
                            broken.append(f"{relpath}: {target} (no such heading)")
    assert not broken, "broken links:\n" + "\n".join(broken)


@pytest.mark.slow
def test_fit_and_scaling_benchmarks_run_without_the_peer(tmp_path):
    fit = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "fit_vs_pykan.py"), "--no-pykan",
                          "--repeats", "1"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert fit.returncode == 0, fit.stderr
    assert any(line.startswith("| 0 |") for line in fit.stdout.splitlines())
    png = tmp_path / "scaling.png"
    scaling = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "scaling.py"), "--grids", "3,6",
                              "--steps", "3", "--png", str(png)], capture_output=True, text=True, cwd=ROOT,
                             timeout=300)
    assert scaling.returncode == 0, scaling.stderr
    assert "slope" in scaling.stdout and png.read_bytes()[:4] == b"\x89PNG"
    demo = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "demo_vs_pykan.py"), "--no-pykan"],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert demo.returncode == 0, demo.stderr
    assert any(line.startswith("| 1 | kanarray |") and line.endswith("| yes |") for line in demo.stdout.splitlines())


def test_demo_with_an_unusable_out_is_a_one_line_error(capsys, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert main(["demo", "--out", str(blocker), "--steps", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("kanarray demo: error:") and str(blocker) in err and "\n" not in err


def test_another_ranks_failure_is_a_one_line_error(capsys, tmp_path, monkeypatch):
    """Under mpiexec, the ranks that did not fail get ``RankFailed``: one line, status 2."""
    import kanarray.cli as cli
    from kanarray.distributed import RankFailed

    def failing(args):
        raise RankFailed("rank 1 failed in fit: ValueError: bad\nsecond line")

    monkeypatch.setattr(cli, "_run_fit", failing)
    assert main(["fit", str(tmp_path / "data.csv")]) == 2
    assert capsys.readouterr().err.strip() == "kanarray fit: error: rank 1 failed in fit: ValueError: bad second line"
