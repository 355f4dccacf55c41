"""Data-parallel training over MPI: ``mpiexec -n 2`` runs of tests/mpi_script.py against the
same computations in one process.

Skipped where mpi4py or mpiexec is missing, unless KANARRAY_REQUIRE_MPI=1 (set by .ci/run),
where that is a failure."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import kanarray as ka

from kanarray.distributed import as_communicator, parameters_digest, shard_rows
from kanarray.grids import adapt_grids

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
import mpi_script  # noqa: E402
from helpers import gpu_cupy, mpi_environment, mpiexec  # noqa: E402

from kanarray import config  # noqa: E402

TIMEOUT = 120


@pytest.fixture
def kanarray_env(monkeypatch):
    """setenv(name, value) that this process's kanarray sees at once (``config.reload``; MPI
    ranks started after it inherit the variable); afterwards the environment is restored and
    read again."""
    def setenv(name, value):
        monkeypatch.setenv(name, value)
        config.reload()

    yield setenv
    monkeypatch.undo()
    config.reload()


def run_mpi(tmp_path, mode, *options, ranks=2, check=True, numba=False, timeout=TIMEOUT):
    """Run mode on `ranks` ranks; (per-rank dicts of arrays, completed process).  A run still going
    after `timeout` seconds (ranks waiting for each other) is ended and fails the test."""
    cmd = [mpiexec(), "-n", str(ranks), sys.executable, str(HERE / "mpi_script.py"), mode, str(tmp_path), *options]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=mpi_environment(numba)) as launcher:
        try:
            out, err = launcher.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            launcher.terminate()  # mpiexec ends every rank on SIGTERM (SIGINT would reach fit's handler)
            try:
                out, err = launcher.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                launcher.kill()
                out, err = launcher.communicate()
            pytest.fail(f"mpiexec {mode} {' '.join(options)} still ran after {timeout} s (ranks waiting for each "
                        f"other):\n{out}\n{err}")
    proc = subprocess.CompletedProcess(cmd, launcher.returncode, out, err)
    if check and proc.returncode != 0:
        raise AssertionError(f"mpiexec failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    results = []
    for r in range(ranks):
        path = tmp_path / f"rank{r}.npz"
        results.append(dict(np.load(path, allow_pickle=False)) if path.exists() else None)
    return results, proc


def assert_ranks_identical(results):
    first = results[0]
    for other in results[1:]:
        assert bytes(other["digest"]) == bytes(first["digest"])
        for key, value in first.items():
            if key.startswith(("param/", "grid/")):
                np.testing.assert_array_equal(other[key], value)


def assert_matches(result, model, tol):
    for name, p in model.parameters().items():
        np.testing.assert_allclose(result[f"param/{name}"], np.asarray(p), rtol=0, atol=tol, err_msg=name)
    for l, layer in enumerate(model.layers):
        np.testing.assert_allclose(result[f"grid/{l}"], np.asarray(layer.grid), rtol=0, atol=tol)


def serial_fit(opt, lamb, steps, batch_size=None):
    x, y, xv, yv = mpi_script.problem()
    model = mpi_script.new_model()
    history = model.fit(x, y, validation=(xv, yv), **mpi_script.fit_kwargs(opt, lamb, steps, batch_size))
    return model, history


# Adam stays within 1e-11 of the one-process run over 50 steps.  L-BFGS (up to 20 iterations
# with line searches per step) amplifies the rounding differences of the sums (two halves
# added instead of one pass) 30- to 1000-fold per step on this problem, most along directions
# that leave the function unchanged (scale_sp times coef): its comparison stops at 2 and 3
# steps (3.6e-11 and 5.7e-11; 4 steps: 1.3e-9, see docs/distributed.md).
@pytest.mark.parametrize("opt,lamb,steps", [("adam", 0.0, 20), ("adam", 1e-3, 20), ("lbfgs", 0.0, 2),
                                            ("lbfgs", 1e-3, 3)])
@pytest.mark.slow
def test_two_ranks_match_one_process_full_batch(tmp_path, opt, lamb, steps):
    results, _ = run_mpi(tmp_path, "fit", "--opt", opt, "--lamb", str(lamb), "--steps", str(steps))
    assert_ranks_identical(results)
    model, history = serial_fit(opt, lamb, steps)
    assert_matches(results[0], model, 1e-10)
    np.testing.assert_allclose(results[0]["record/train_loss"], history["train_loss"], rtol=1e-9)
    np.testing.assert_allclose(results[0]["record/val_loss"], history["val_loss"], rtol=1e-9)
    if lamb:
        np.testing.assert_allclose(results[0]["record/reg"], history["reg"], rtol=1e-9)


@pytest.mark.slow
def test_two_ranks_match_one_process_with_multiplication_nodes(tmp_path):
    results, _ = run_mpi(tmp_path, "fit", "--opt", "adam", "--lamb", "1e-3", "--steps", "10", "--mult")
    assert_ranks_identical(results)
    x, y, xv, yv = mpi_script.problem()
    model = mpi_script.new_model(mult=True)
    assert any("node_scale" in name for name in model.parameters())
    history = model.fit(x, y, validation=(xv, yv), **mpi_script.fit_kwargs("adam", 1e-3, 10, None))
    assert_matches(results[0], model, 1e-10)
    np.testing.assert_allclose(results[0]["record/train_loss"], history["train_loss"], rtol=1e-9)


@pytest.mark.slow
def test_early_stopping_stops_every_rank_at_the_same_step(tmp_path):
    """The validation loss is global: both ranks stop after the same step and restore the same
    best step, the one a single process restores (Adam lr 0.1: best at step 6, stop after 8)."""
    results, _ = run_mpi(tmp_path, "fit", "--opt", "adam", "--steps", "20", "--lr", "0.1", "--patience", "2")
    assert_ranks_identical(results)
    x, y, xv, yv = mpi_script.problem()
    model = mpi_script.new_model()
    history = model.fit(x, y, validation=(xv, yv), lr=0.1, patience=2, **mpi_script.fit_kwargs("adam", 0.0, 20, None))
    assert history.stopped_early and len(history["val_loss"]) < 20
    for result in results:
        assert int(result["record/best_step"]) == history.best_step
        np.testing.assert_allclose(result["record/val_loss"], history["val_loss"], rtol=1e-9)
    assert_matches(results[0], model, 1e-10)


@pytest.mark.gpu
@pytest.mark.parametrize("nccl", ["1", "0"])
@pytest.mark.slow
def test_cupy_ranks_match_one_process(tmp_path, monkeypatch, nccl):
    """Two CuPy ranks (one GPU each where there are two: NCCL; on one GPU, or with
    KANARRAY_NCCL=0, MPI through host memory) against the NumPy one-process fit."""
    gpu_cupy()
    monkeypatch.setenv("KANARRAY_NCCL", nccl)
    results, _ = run_mpi(tmp_path, "fit", "--opt", "adam", "--lamb", "1e-3", "--steps", "10", "--backend", "cupy")
    assert_ranks_identical(results)
    model, _ = serial_fit("adam", 1e-3, 10)
    assert_matches(results[0], model, 1e-9)


@pytest.mark.slow
def test_compiled_regularization_passes_use_the_global_statistics(tmp_path, kanarray_env):
    """With numba, the penalty's per-edge passes are compiled loops fed the global means."""
    pytest.importorskip("numba")
    kanarray_env("KANARRAY_NUMBA", "1")
    results, _ = run_mpi(tmp_path, "fit", "--opt", "adam", "--lamb", "1e-3", "--steps", "10", numba=True)
    assert_ranks_identical(results)
    model, history = serial_fit("adam", 1e-3, 10)
    assert_matches(results[0], model, 1e-10)
    np.testing.assert_allclose(results[0]["record/reg"], history["reg"], rtol=1e-9)


@pytest.mark.slow
def test_minibatches_keep_ranks_identical(tmp_path):
    results, _ = run_mpi(tmp_path, "fit", "--opt", "adam", "--lamb", "1e-3", "--steps", "6", "--batch-size", "40")
    assert_ranks_identical(results)
    assert np.all(np.isfinite(results[0]["record/train_loss"]))


@pytest.mark.slow
def test_grid_update_uses_every_rank_samples(tmp_path):
    results, _ = run_mpi(tmp_path, "grid")
    assert_ranks_identical(results)
    x, _, _, _ = mpi_script.problem()
    model = mpi_script.new_model()
    model.update_grid(x)
    # the knots are order statistics of all samples: equal, not merely close
    np.testing.assert_array_equal(results[0]["grid/0"], np.asarray(model.layers[0].grid))
    assert_matches(results[0], model, 1e-12)
    half = mpi_script.new_model()
    half.update_grid(x[shard_rows(len(x), None)][:150])
    assert not np.allclose(results[0]["grid/0"], np.asarray(half.layers[0].grid))


@pytest.mark.slow
def test_refine_over_ranks(tmp_path):
    results, _ = run_mpi(tmp_path, "refine")
    assert_ranks_identical(results)
    x, y, _, _ = mpi_script.problem()
    model = mpi_script.new_model()
    model.fit(x, y, **mpi_script.fit_kwargs("lbfgs", 0.0, 2, None))
    model = model.refine(10)
    assert model.grid == [10, 10]
    # 1.2e-10 measured since the plain objective runs the 5 -> 1 layer edge by edge (issue 29): the
    # ranks' partial sums round differently and L-BFGS amplifies it; issue 30 makes them rank-count independent
    assert_matches(results[0], model, 1e-9)


@pytest.mark.slow
def test_gather_sorted_beyond_the_cap_bounds_the_quantile_error(tmp_path):
    cap = 40
    results, _ = run_mpi(tmp_path, "gather", "--cap", str(cap))
    merged = results[0]["record/merged"]
    np.testing.assert_array_equal(merged, results[1]["record/merged"])
    x, _, _, _ = mpi_script.problem()
    full = np.sort(x, axis=0)
    assert merged.shape[0] < len(x) and merged.shape[0] >= cap
    np.testing.assert_array_equal(merged[[0, -1]], full[[0, -1]])  # the range is exact
    # every merged value's position in the full order is within size * S / cap of where its
    # position in the merged order puts it
    bound = 2 * len(x) / cap
    for j in range(x.shape[1]):
        pos = np.searchsorted(full[:, j], merged[:, j])
        expected = np.arange(len(merged)) * (len(x) - 1) / (len(merged) - 1)
        assert np.max(np.abs(pos - expected)) <= bound


@pytest.mark.slow
def test_bad_input_on_one_rank_stops_every_rank(tmp_path):
    results, proc = run_mpi(tmp_path, "badinput")
    errors = [bytes(r["record/error"]).decode() for r in results]
    assert "x must have 2 columns" in errors[1] or "2" in errors[1]
    assert errors[0].startswith("rank 1 of 2 failed, so every rank stops:")
    assert errors[1] in errors[0]
    # nothing changed: both ranks still hold the initial parameters
    fresh = mpi_script.new_model()
    assert bytes(results[0]["digest"]) == parameters_digest(fresh)


@pytest.mark.slow
def test_a_bad_setting_on_one_rank_stops_every_rank(tmp_path):
    """FitSettings are checked inside the ranks' agreement: the rank that refuses them does not
    leave the others waiting in a collective."""
    results, _ = run_mpi(tmp_path, "badsetting")
    errors = [bytes(r["record/error"]).decode() for r in results]
    assert "steps" in errors[1]
    assert errors[0].startswith("rank 1 of 2 failed, so every rank stops:") and errors[1] in errors[0]
    assert bytes(results[0]["digest"]) == parameters_digest(mpi_script.new_model())


@pytest.mark.slow
def test_ranks_with_different_models_are_refused(tmp_path):
    results, _ = run_mpi(tmp_path, "mismatch")
    for r in results:
        assert "differ between rank 0 and rank(s) [1]" in bytes(r["record/error"]).decode()
    assert bytes(results[0]["digest"]) == parameters_digest(ka.KAN([2, 5, 1], grid=5, seed=1))  # untouched


@pytest.mark.slow
def test_ranks_with_different_patience_are_refused(tmp_path):
    """Ranks stopping after different steps would leave one waiting in a collective: refused on every rank."""
    results, _ = run_mpi(tmp_path, "patience", timeout=HANG_TIMEOUT)
    for r in results:
        assert "differ between rank 0 and rank(s) [1]" in bytes(r["record/error"]).decode()
    assert bytes(results[0]["digest"]) == parameters_digest(mpi_script.new_model())  # untouched


HANG_TIMEOUT = 90  # s: these runs take a few seconds; one that hangs fails instead of holding up the suite


def recorded_errors(results) -> list:
    """(type name, message) of the error each rank recorded."""
    return [(bytes(r["record/error_type"]).decode(), bytes(r["record/error"]).decode()) for r in results]


@pytest.mark.slow
def test_failure_inside_training_stops_every_rank(tmp_path):
    """An error on one rank mid-training (rank 0 waits in the gradient all-reduce) raises on
    every rank, naming the rank and quoting the error; no rank is killed."""
    results, _ = run_mpi(tmp_path, "crash", timeout=HANG_TIMEOUT)
    (kind0, text0), (kind1, text1) = recorded_errors(results)
    assert (kind1, text1) == ("RuntimeError", "injected failure on rank 1")
    assert kind0 == "RankFailed"
    assert text0 == "rank 1 of 2 failed, so every rank stops: RuntimeError: injected failure on rank 1"


@pytest.mark.slow
def test_an_error_in_user_code_on_one_rank_stops_every_rank(tmp_path):
    """The optimizer's step (user code: here an Adam subclass) raises on rank 1 while rank 0
    waits at the end of the step."""
    results, _ = run_mpi(tmp_path, "callback", "--raise", "error", timeout=HANG_TIMEOUT)
    (kind0, text0), (kind1, text1) = recorded_errors(results)
    assert (kind1, text1) == ("RuntimeError", "the optimizer's step raised at step 3")
    assert kind0 == "RankFailed" and text0 == f"rank 1 of 2 failed, so every rank stops: RuntimeError: {text1}"


@pytest.mark.slow
def test_a_keyboard_interrupt_from_user_code_on_one_rank_stops_every_rank(tmp_path):
    """A KeyboardInterrupt that no signal sent (raised by the optimizer's step on rank 1 only)
    stops every rank as Ctrl-C does: each returns its history marked interrupted, the
    parameters restored and the same on every rank."""
    results, proc = run_mpi(tmp_path, "callback", "--raise", "interrupt", timeout=HANG_TIMEOUT)
    assert all("record/error" not in r for r in results), proc.stderr
    assert all(bool(r["record/interrupted"]) for r in results)
    # rank 1 stopped inside step 3, rank 0 after it: both hold the parameters before its update
    assert [int(r["record/steps"]) for r in results] == [3, 2]
    assert_ranks_identical(results)
    assert bytes(results[0]["digest"]) != parameters_digest(mpi_script.new_model())  # two steps were kept


@pytest.mark.parametrize("raises,kind,text", [
    ("error", "RankFailed", "rank 1 of 2 failed, so every rank stops: RuntimeError: {}"),
    ("interrupt", "KeyboardInterrupt", "rank 1 of 2 was interrupted, so every rank stops")])
@pytest.mark.slow
def test_a_guarded_block_ends_the_same_way_on_every_rank(tmp_path, raises, kind, text):
    """Rank 1 raises after the block's last collective, so rank 0 waits for nothing and leaves
    normally; the closing agreement makes it raise too (a collective after the block would hang)."""
    results, _ = run_mpi(tmp_path, "guard", "--raise", raises, timeout=HANG_TIMEOUT)
    (kind0, text0), (kind1, text1) = recorded_errors(results)
    assert (kind1, text1) == ("RuntimeError" if raises == "error" else "KeyboardInterrupt",
                              "raised after the block's last collective (2 ranks joined it)")
    assert (kind0, text0) == (kind, text.format(text1))


@pytest.mark.parametrize("call", ["update_grid", "refine"])
@pytest.mark.parametrize("case,expected", [("nan", "x contains 1 NaN or infinite value(s); expected finite numbers"),
                                           ("width", "x must have shape (batch, 2), got shape (150, 3)")])
@pytest.mark.slow
def test_bad_grid_inputs_on_one_rank_stop_every_rank(tmp_path, call, case, expected):
    """update_grid and refine check their inputs on every rank, agreed before any collective:
    rank 1 raises its error, rank 0 an error naming rank 1 and quoting it; no model changed."""
    results, _ = run_mpi(tmp_path, "agree", "--call", call, "--case", case, timeout=HANG_TIMEOUT)
    (kind0, text0), (kind1, text1) = recorded_errors(results)
    assert (kind1, text1) == ("ValueError", expected)
    assert (kind0, text0) == ("ValueError", f"rank 1 of 2 failed, so every rank stops: ValueError: {expected}")
    assert all(bool(r["record/unchanged"]) for r in results)


@pytest.mark.parametrize("call", ["update_grid", "refine"])
@pytest.mark.slow
def test_a_different_grid_on_one_rank_is_refused_on_every_rank(tmp_path, call):
    """Rank 1's model has G = 7, rank 0's G = 5: both refuse (update_grid's normal equations
    would differ in size, an MPI "Message truncated"; refine would mix two models)."""
    results, _ = run_mpi(tmp_path, "agree", "--call", call, "--case", "grid", timeout=HANG_TIMEOUT)
    message = (f"the models or the {call} settings differ between rank 0 and rank(s) [1]; every rank must hold the "
               f"same model and call with the same settings")
    assert recorded_errors(results) == [("RuntimeError", message)] * 2
    assert all(bool(r["record/unchanged"]) for r in results)


@pytest.mark.slow
def test_ctrl_c_stops_every_rank_after_the_same_step(tmp_path):
    import signal
    import time

    cmd = [mpiexec(), "-n", "2", sys.executable, str(HERE / "mpi_script.py"), "ctrlc", str(tmp_path)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=mpi_environment())
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "started").exists():
            assert time.monotonic() < deadline and proc.poll() is None, "the fit never started"
            time.sleep(0.05)
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)  # mpiexec forwards it to every rank
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    results = [dict(np.load(tmp_path / f"rank{r}.npz", allow_pickle=False)) for r in range(2)]
    assert all(bool(r["record/interrupted"]) for r in results)
    assert int(results[0]["record/steps"]) == int(results[1]["record/steps"]) < 100000
    assert_ranks_identical(results)


@pytest.mark.slow
def test_only_rank_zero_shows_progress(tmp_path):
    results, _ = run_mpi(tmp_path, "quiet")
    assert int(results[0]["record/stderr_chars"]) > 0
    assert int(results[1]["record/stderr_chars"]) == 0


def test_comm_of_the_wrong_kind_is_refused():
    model = mpi_script.new_model()
    x, y, _, _ = mpi_script.problem()
    with pytest.raises(ValueError, match="comm must be None, an mpi4py communicator"):
        model.fit(x, y, steps=1, comm="world")
    assert as_communicator(None) is None
    assert shard_rows(10, None) == slice(0, 10)


class _OneRank:
    """A communicator of one rank that goes through every distributed code path (the real
    ones bypass them for a single rank): the sums over ranks are the local values."""

    rank, size, is_root = 0, 1, True

    def allreduce(self, a, op="sum"):
        return a

    def allreduce_scalar(self, value, op="sum"):
        return float(value)

    def allreduce_each(self, *arrays):
        from kanarray.distributed import Communicator

        return Communicator.allreduce_each(self, *arrays)

    def gather_sorted(self, x, cap=None):
        import array_api_compat

        return array_api_compat.array_namespace(x).sort(x, axis=0)


@pytest.mark.parametrize("numba", ["0", "1"])
@pytest.mark.parametrize("lamb", [0.0, 1e-3])
def test_distributed_code_paths_on_one_rank_equal_the_plain_ones(kanarray_env, numba, lamb):
    """objective, gradients (edge-by-edge, Gram and compiled spreads) and grid updates written
    for several ranks give the plain results when there is one."""
    from kanarray.objective import evaluate
    from kanarray.regularization import Regularization

    if numba == "1":
        pytest.importorskip("numba")
    kanarray_env("KANARRAY_NUMBA", numba)
    x, y, _, _ = mpi_script.problem()
    model = mpi_script.new_model()
    reg = Regularization(lamb)
    for cache in (None, {}):  # {}: the first layer through its Gram matrix when regularized
        plain = evaluate(model, x, y, reg=reg, cache=None if cache is None else {})
        spread = evaluate(model, x, y, reg=reg, cache=cache, comm=_OneRank(), n_total=len(x))
        np.testing.assert_allclose(float(spread.objective), float(plain.objective), rtol=1e-12)
        for name, g in plain.grads.items():
            np.testing.assert_allclose(np.asarray(spread.grads[name]), np.asarray(g), rtol=1e-9, atol=1e-12)
    twin = mpi_script.new_model()
    model.update_grid(x)
    adapt_grids(twin, twin.prepare_inputs(x), comm=_OneRank())
    for a, b in zip(model.layers, twin.layers):
        np.testing.assert_allclose(np.asarray(b.grid), np.asarray(a.grid), rtol=0, atol=1e-14)
        np.testing.assert_allclose(np.asarray(b.coef), np.asarray(a.coef), rtol=1e-10, atol=1e-12)


@pytest.mark.slow
def test_mpi_benchmarks_run(tmp_path):
    """benchmarks/scaling_mpi.py and mpi_agreement.py, tiny, so they keep working."""
    mpiexec()  # skips (or fails under KANARRAY_REQUIRE_MPI=1) where MPI is missing
    root = HERE.parent
    scaling = subprocess.run([sys.executable, str(root / "benchmarks" / "scaling_mpi.py"), "--samples", "512",
                              "--width", "2,3,1", "--grid", "3", "--steps", "1", "--repeats", "1"],
                             capture_output=True, text=True, timeout=TIMEOUT, env=mpi_environment())
    assert scaling.returncode == 0, scaling.stderr
    rows = [line for line in scaling.stdout.splitlines() if line.startswith(("| 1 |", "| 2 |"))]
    assert len(rows) == 2 and rows[1].split("|")[2].strip() == "256"
    agreement = subprocess.run([sys.executable, str(root / "benchmarks" / "mpi_agreement.py"), "--cases",
                                "adam:0:3"], capture_output=True, text=True, timeout=TIMEOUT, env=mpi_environment())
    assert agreement.returncode == 0, agreement.stderr
    row = [line for line in agreement.stdout.splitlines() if line.startswith("| adam |")][0]
    assert float(row.split("|")[4]) < 1e-10  # the largest parameter difference from one process
    guard = subprocess.run([sys.executable, str(root / "benchmarks" / "mpi_guard_cost.py"), "--small", "--repeats", "1"],
                           capture_output=True, text=True, timeout=TIMEOUT, env=mpi_environment())
    assert guard.returncode == 0, guard.stderr
    assert "| [2, 5, 1] G=5, 301 samples |" in guard.stdout and "guard alone" in guard.stdout
