"""How fit fails (issue 25): huge data, exceptions in the middle of a step, divergence by
growth, a last update gone non-finite, bad settings.  Every failure is a clear error and
leaves the model with the last parameters whose objective was finite (and within the growth
bound): bit-identical to before the fit where it fails at the first step."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from helpers import host, mpi_environment, mpiexec
from hypothesis import given, settings
from hypothesis import strategies as st

import kanarray as ka
from kanarray import recovery, start_probe, training
from kanarray.optim import LBFGS, SGD, NonFiniteError
from kanarray.optim.lbfgs import _cubic_min


def data(n=60, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (n, 2))
    return x, np.sin(np.pi * x[:, :1]) * x[:, 1:]


def state(model):
    """Every layer array (grids, masks and biases too) as host copies, and fit_inputs."""
    arrays = {f"{l}.{n}": host(a).copy() for l, layer in enumerate(model.layers) for n, a in layer.arrays().items()}
    return arrays, None if model.fit_inputs is None else host(model.fit_inputs).copy()


def assert_same_state(model, before, *, fit_inputs_too=True):
    arrays, fit_inputs = state(model)
    assert arrays.keys() == before[0].keys()
    for name, a in arrays.items():
        np.testing.assert_array_equal(a, before[0][name], err_msg=name)  # bit for bit (NaN-free)
    if not fit_inputs_too:
        return
    if before[1] is None:
        assert fit_inputs is None
    else:
        np.testing.assert_array_equal(fit_inputs, before[1])


# -- huge data: the reproduction ---------------------------------------------------------------------


def _huge(case):
    x, y = data()
    magnitude = float(case.split()[-1])
    if case.startswith("one input"):
        x[3, 0] = magnitude
    elif case.startswith("inputs"):
        x = x * magnitude
    elif case.startswith("one target"):
        y[5, 0] = magnitude
    else:
        y = y * magnitude
    return x, y


@pytest.mark.parametrize("opt", ["lbfgs", "adam", "sgd"])
@pytest.mark.parametrize("case", ["one input 1e308", "inputs 1e160", "one target 1e308", "targets 1e160"])
def test_data_whose_squares_overflow_is_refused_before_any_work(opt, case):
    """The issue's reproduction.  Was: L-BFGS divided by zero in _cubic_min (ZeroDivisionError)
    and kept a NaN trial point; Adam and SGD diverged at step 0 but kept the grid update's
    fit_inputs.  Now fit refuses |x| or |y| >= sqrt(float64 max) = 1.3e154 up front."""
    x, y = _huge(case)
    model = ka.KAN([2, 3, 1], grid=3, seed=0)
    before = state(model)
    name = "x" if "input" in case else "y"
    with pytest.raises(ValueError, match=rf"^{name} holds values up to \S+ in magnitude .*overflows float64 beyond "
                                         r"1.34e\+154: rescale the data"):
        model.fit(x, y, steps=3, opt=opt, progress=False)
    assert_same_state(model, before)


def test_validation_data_whose_squares_overflow_is_refused():
    x, y = data()
    xv, yv = _huge("one target 1e308")
    model = ka.KAN([2, 3, 1], grid=3, seed=0)
    with pytest.raises(ValueError, match="^y_val holds values up to 1e"):
        model.fit(x, y, validation=(xv, yv), steps=2, progress=False)


def test_float32_bounds_the_magnitude_by_its_own_range():
    x, y = _huge("one input 1e20")
    with pytest.raises(ValueError, match="overflows float32 beyond 1.84e\\+19"):
        ka.KAN([2, 3, 1], grid=3, seed=0, dtype="float32").fit(x, y, steps=2, progress=False)


@pytest.mark.parametrize("case", ["one input 1e150", "inputs 1e100"])
def test_lbfgs_with_a_gradient_too_large_to_step_along_restores_the_model_bit_identical(case):
    """Below the up-front bound the objective is finite but g . g overflows.  Was: a zero or
    -inf slope and a line search that did nothing (1e100) or a ZeroDivisionError; now
    TrainingDiverged at step 0 with the model as before the fit (grids and fit_inputs too)."""
    x, y = _huge(case)
    model = ka.KAN([2, 3, 1], grid=3, seed=0)
    before = state(model)
    with pytest.raises(ka.TrainingDiverged, match=r"too large to step along .* at step 0 \(LBFGS\)") as info:
        model.fit(x, y, steps=3, progress=False)
    text = str(info.value)
    assert "restored to the parameters it had before fit" in text and "no lr plays a part: rescale" in text
    assert f"|x| = {np.abs(x).max():.3g}" in text
    assert_same_state(model, before)
    assert info.value.history["train_loss"] == []


def test_a_failure_after_the_first_step_restores_the_last_finite_parameters_and_their_grids():
    """SGD on inputs of 1e150: the objective is finite at step 0 (after its grid update) and
    not at step 1.  The model holds step 0's parameters: those of a grid update from the start."""
    x, y = _huge("one input 1e150")
    model = ka.KAN([2, 3, 1], grid=3, seed=0)
    with pytest.raises(ka.TrainingDiverged, match=r"NaN or infinite at step 1 \(SGD\).*parameters of step 0"):
        model.fit(x, y, steps=3, opt="sgd", progress=False)
    twin = ka.KAN([2, 3, 1], grid=3, seed=0)
    twin.update_grid(x)
    assert_same_state(model, state(twin))


def test_a_second_fit_that_fails_at_once_leaves_the_first_fits_result():
    x, y = data()
    model = ka.KAN([2, 3, 1], grid=3, seed=0)
    model.fit(x, y, steps=3, progress=False)
    before = state(model)
    huge, _ = _huge("inputs 1e100")
    with pytest.raises(ka.TrainingDiverged, match="LBFGS"):
        model.fit(huge, y, steps=3, progress=False)
    assert_same_state(model, before)


# -- L-BFGS' line search --------------------------------------------------------------------------------------


def test_cubic_min_of_a_zero_step_or_a_degenerate_cubic_is_the_midpoint():
    """Was ZeroDivisionError: t1 == t2 (a zero step) and a zero denominator in eq. 3.59."""
    assert _cubic_min(0.0, 1.0, -1.0, 0.0, 1.0, -1.0, 0.0, 2.0) == 1.0
    # g1 = g2 = -3 and f2 - f1 = g / 3: d1 = g, disc = 0, so d2 = 0 and g2 - g1 + 2 d2 == 0
    assert _cubic_min(0.0, 0.0, -3.0, 1.0, -1.0, -3.0, 0.0, 1.0) == 0.5
    assert _cubic_min(0.0, 0.0, -1.0, 1e-300, math.inf, math.nan, 0.0, 4.0) == 2.0
    # an ordinary cubic still gives its minimiser (f = (t - 1)^2: exact)
    assert _cubic_min(0.0, 1.0, -2.0, 3.0, 4.0, 4.0, 0.0, 3.0) == pytest.approx(1.0)


@pytest.mark.parametrize("bad", ["objective", "gradient"])
def test_lbfgs_refuses_a_non_finite_start_without_changing_anything(bad):
    p = {"x": np.array([0.5, -0.25])}
    start = p["x"].copy()

    def closure():
        f = math.inf if bad == "objective" else float(p["x"] @ p["x"])
        g = 2 * p["x"] if bad == "objective" else np.array([1.0, math.nan])
        return f, {"x": g}

    opt = LBFGS(p)
    with pytest.raises(NonFiniteError, match="NaN or infinite") as info:
        opt.step(closure)
    assert isinstance(info.value, FloatingPointError)
    np.testing.assert_array_equal(p["x"], start)
    assert opt.n_iter == 0 and opt.d is None


def test_lbfgs_refuses_a_gradient_whose_squared_norm_overflows():
    """Was: a zero first step (1 / sum|g| -> 0) or a slope of -inf, and no progress."""
    p = {"x": np.full(4, 1e200)}
    opt = LBFGS(p)
    with pytest.raises(NonFiniteError, match="too large"), np.errstate(over="ignore"):  # NumPy's warning on g . g
        opt.step(lambda: (float(np.sum(p["x"])), {"x": np.full(4, 1e200)}))
    np.testing.assert_array_equal(p["x"], np.full(4, 1e200))


def test_lbfgs_never_accepts_a_trial_point_without_a_finite_slope():
    """The value is finite everywhere but the gradient is NaN near the minimum.  Was: the step
    accepted x = 1 (NaN gradient), and the next one set x to NaN."""
    p = {"x": np.array([0.0])}

    def closure():
        x = p["x"][0]
        return (x - 1) ** 2, {"x": np.array([2 * (x - 1) if abs(x - 1) > 0.1 else math.nan])}

    opt = LBFGS(p, lr=2.0)
    for _ in range(3):
        opt.step(closure)
        assert np.isfinite(p["x"][0]) and abs(p["x"][0] - 1) >= 0.1
    assert p["x"][0] == pytest.approx(0.9, abs=1e-3)


def test_lbfgs_with_its_guards_still_solves_rosenbrock():
    """The guards act only on zero steps and non-finite values (tests/test_optim.py checks the
    iterates against torch.optim.LBFGS where torch is installed)."""
    from scipy.optimize import rosen, rosen_der

    p = {"x": np.array([-1.2, 1.0])}
    opt = LBFGS(p, lr=1.0, max_iter=100)
    for _ in range(3):
        opt.step(lambda: (rosen(p["x"]), {"x": rosen_der(p["x"])}))
    np.testing.assert_allclose(p["x"], np.ones(2), atol=1e-5)
    assert np.abs(rosen_der(p["x"])).max() <= 1e-4


# -- an exception in the middle of a step -----------------------------------------------------------------------


def _failing_evaluate(monkeypatch, at_call):
    real = training.evaluate
    calls = {"n": 0}

    def evaluate(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == at_call:
            raise RuntimeError("boom")
        return real(*args, **kwargs)

    monkeypatch.setattr(training, "evaluate", evaluate)
    return calls


@pytest.mark.parametrize("opt", ["lbfgs", "adam"])
def test_an_unexpected_error_restores_the_last_finite_parameters(monkeypatch, opt):
    """Was: only TrainingDiverged and Ctrl-C restored; any other exception inside an L-BFGS
    step left the model at the line search's last trial point."""
    x, y = data()
    # restored: the parameters of step 1, the last evaluated (finite) ones.  An L-BFGS step ends on
    # an evaluated point (2 steps' result); Adam evaluates before it updates (1 step's result)
    reference = ka.KAN([2, 3, 1], grid=3, seed=0)
    reference.fit(x, y, steps=2 if opt == "lbfgs" else 1, opt=opt, progress=False)
    calls = _failing_evaluate(monkeypatch, at_call=None)
    model = ka.KAN([2, 3, 1], grid=3, seed=0)
    model.fit(x, y, steps=2, opt=opt, progress=False)
    two_steps = calls["n"]
    model = ka.KAN([2, 3, 1], grid=3, seed=0)
    # the third step's evaluations: L-BFGS fails inside its line search, Adam in its one evaluation
    _failing_evaluate(monkeypatch, at_call=two_steps + (3 if opt == "lbfgs" else 1))
    with pytest.raises(RuntimeError, match="boom") as info:
        model.fit(x, y, steps=5, opt=opt, progress=False)
    assert_same_state(model, state(reference))
    if sys.version_info >= (3, 11):
        assert any("restored to the parameters of step 1" in note for note in info.value.__notes__)


def test_an_error_at_the_first_evaluation_leaves_the_model_as_before(monkeypatch):
    x, y = data()
    model = ka.KAN([2, 3, 1], grid=3, seed=0)
    before = state(model)
    _failing_evaluate(monkeypatch, at_call=2)  # inside the first line search, after the grid update
    with pytest.raises(RuntimeError, match="boom"):
        model.fit(x, y, steps=3, progress=False)
    assert_same_state(model, before)


@pytest.mark.parametrize("update_grid", [False, True], ids=["uniform grid", "adapted grid"])
def test_sgd_with_a_large_lr_ends_in_training_diverged_not_an_index_error(update_grid):
    """Was IndexError from the NumPy kernels: a NaN hidden activation became an index through its
    cast (uniform grids) or its bin (adapted ones); it now gives NaN bases, a NaN objective and
    TrainingDiverged."""
    x, y = data(100)
    model = ka.KAN([2, 3, 1], grid=3, seed=0)
    with pytest.raises(ka.TrainingDiverged, match=r"at step \d+ \(SGD\).*smaller lr"):
        model.fit(x, y, steps=30, opt="sgd", lr=30.0, update_grid=update_grid, progress=False)
    assert all(np.all(np.isfinite(host(p))) for p in model.parameters().values())


def test_a_nan_input_to_a_hidden_layer_gives_nan_outputs_in_its_rows_only():
    rng = np.random.default_rng(0)
    model = ka.KAN([12, 3, 1], grid=3, seed=0)
    model.update_grid(rng.uniform(-1, 1, (50, 12)))  # non-uniform knots: the binned lookup
    for layer in (model.layers[0], ka.KAN([12, 3, 1], grid=3, seed=0).layers[0]):
        h = rng.uniform(-1, 1, (5, 12))
        h[2, 3] = math.nan
        with np.errstate(invalid="ignore"):
            out, _ = layer.forward(h, need_dx=False)
        np.testing.assert_array_equal(np.isnan(host(out)).any(axis=1), [False, False, True, False, False])


# -- divergence by growth ----------------------------------------------------------------------------------------


def test_growth_rule_fires_after_the_documented_number_of_steps_above_the_factor():
    growth = recovery.Growth(baseline=0.5)
    assert growth.within(2.0)  # the first objective sets the reference: max(2.0, 0.5)
    assert growth.reference == 2.0 and growth.limit == 2.0 * recovery.GROWTH_FACTOR
    over = 2.0 * recovery.GROWTH_FACTOR * 1.01
    for _ in range(recovery.GROWTH_STEPS - 1):
        assert not growth.within(over) and not growth.diverged
    assert growth.within(2.0)  # back within the bound: the count starts again
    for _ in range(recovery.GROWTH_STEPS):
        assert not growth.within(over)
    assert growth.diverged
    tiny = recovery.Growth(baseline=0.3)
    tiny.within(1e-20)  # a start near a perfect fit is held to the baseline, not to 1e-20
    assert tiny.limit == 0.3 * recovery.GROWTH_FACTOR
    off = recovery.Growth(baseline=0.0)
    off.within(0.0)
    assert off.limit == math.inf


@pytest.mark.parametrize("opt, lr", [("adam", 1e10), ("adamw", 1e10), ("adam", 1e4)])
def test_a_growing_loss_raises_and_restores_the_last_parameters_within_the_bound(opt, lr):
    """Was: Adam with lr=1e10 grew the loss to ~1e60 and fit returned without an error."""
    x, y = data(100)
    model = ka.KAN([2, 3, 1], grid=3, seed=0)
    before = state(model)
    with pytest.raises(ka.TrainingDiverged, match=r"at step \d+.*smaller lr") as info:
        model.fit(x, y, steps=30, opt=opt, lr=lr, update_grid=False, progress=False)
    text = str(info.value)
    assert "grew without bound" in text or "NaN or infinite" in text
    assert "restored to the parameters of step 0" in text
    # every step after the first was beyond the bound: the parameters are those of step 0, the initial ones
    assert_same_state(model, before)
    curve = info.value.history["train_loss"]
    assert curve[0] ** 2 < 1 and all(v ** 2 > recovery.GROWTH_FACTOR * curve[0] ** 2 for v in curve[1:])


def test_adam_lr_1e10_is_stopped_by_the_growth_rule_at_the_documented_step():
    x, y = data(100)
    model = ka.KAN([2, 3, 1], grid=3, seed=0)
    with pytest.raises(ka.TrainingDiverged, match="grew without bound") as info:
        model.fit(x, y, steps=30, opt="adam", lr=1e10, update_grid=False, progress=False)
    assert f"at step {recovery.GROWTH_STEPS}" in str(info.value)
    assert len(info.value.history["train_loss"]) == recovery.GROWTH_STEPS


def test_a_fit_from_a_near_perfect_start_does_not_count_as_growth():
    """The first objective is ~1e-24 and Adam moves away from it by orders of magnitude: the
    reference is the loss of predicting zeros, so this is no divergence."""
    x, _ = data(100)
    model = ka.KAN([2, 3, 1], grid=3, seed=0)
    y = host(model(x)) + 1e-12
    history = model.fit(x, y, steps=15, opt="adam", lr=0.05, update_grid=False, progress=False)
    assert history["train_loss"][0] < 1e-11 and max(history["train_loss"]) > 1e-6  # grew 1e5 x in RMSE


def test_the_growth_rule_leaves_ordinary_fits_alone():
    """The rule's margin on the package's own fits: the demo's settings and a refine run stay
    far below the factor (tests/test_fit.py and the reproductions' tests run with it too)."""
    x, y = data(200)
    model = ka.KAN([2, 5, 1], grid=3, seed=0)
    seen = []
    within = recovery.Growth.within

    def spying(self, objective):
        out = within(self, objective)
        seen.append(objective / self.reference)
        return out

    mp = pytest.MonkeyPatch()
    mp.setattr(recovery.Growth, "within", spying)
    try:
        model.fit(x, y, steps=20, lamb=1e-3, progress=False)
        model.refine(6).fit(x, y, steps=10, progress=False)
        ka.KAN([2, 5, 1], grid=3, seed=1).fit(x, y, steps=40, opt="adam", lr=0.05, batch_size=50, progress=False)
    finally:
        mp.undo()
    # the first fit starts from the seeded initialization: its start probe trains 2 * PROBE_STEPS steps more
    assert len(seen) == 70 + 2 * start_probe.PROBE_STEPS and max(seen) < 10


# -- the last update -----------------------------------------------------------------------------------------------


class _PoisonedSGD(SGD):
    """SGD whose update number ``bad`` writes NaN into the first parameter."""

    def __init__(self, params, bad, **kwargs):
        super().__init__(params, **kwargs)
        self.bad, self.calls = bad, 0

    def step(self, grads):
        super().step(grads)
        self.calls += 1
        if self.calls == self.bad:
            next(iter(self.params.values()))[...] = math.nan


def test_a_last_update_that_makes_parameters_nan_is_caught():
    """No further step evaluates the last update: was a silent NaN model."""
    x, y = data()
    reference = ka.KAN([2, 3, 1], grid=3, seed=0)
    reference.fit(x, y, steps=2, opt=SGD(reference.parameters(), lr=0.05), update_grid=False, progress=False)
    model = ka.KAN([2, 3, 1], grid=3, seed=0)
    with pytest.raises(ka.TrainingDiverged, match="update of step 2 made parameters NaN or infinite"):
        model.fit(x, y, steps=3, opt=_PoisonedSGD(model.parameters(), bad=3, lr=0.05), update_grid=False,
                  progress=False)
    assert_same_state(model, state(reference), fit_inputs_too=False)
    assert model.fit_inputs is None  # as after any failed fit without a grid update


# -- settings: clear errors before any work ------------------------------------------------------------------------


@pytest.mark.parametrize("name, value", [
    ("batch_size", 0), ("batch_size", -1), ("batch_size", 2.5), ("batch_size", "8"), ("batch_size", True),
    ("batch_size", np.zeros(2)), ("steps", 0), ("steps", 1.5), ("steps", np.array([3, 4])),
    ("grid_update_num", 0), ("stop_grid_update_step", -1), ("lr", 0.0), ("lr", -1e-3), ("lr", math.inf),
    ("lr", "1e-3"), ("lamb", -0.1), ("lamb", math.nan), ("lamb_l1", "1"), ("lamb_entropy", -2.0),
    ("lamb_coef", math.inf), ("lamb_coefdiff", -1), ("grid_margin", -0.5), ("seed", -1), ("seed", 2.5),
    ("seed", "0"), ("update_grid", "no"), ("update_grid", 1), ("progress", 1), ("progress", "yes"),
    ("loss", np.zeros(2)), ("opt", "rmsprop"), ("frozen", [1]),
])
def test_bad_settings_are_refused_by_name_before_any_work(name, value):
    """Was: seed=-1 / 2.5 failed inside NumPy's SeedSequence after the checks ("expected
    non-negative integer"), update_grid="no" and progress=1 were taken as truthy, and
    steps=np.array([3, 4]) raised NumPy's TypeError."""
    x, y = data()
    model = ka.KAN([2, 3, 1], grid=3, seed=0)
    before = state(model)
    with pytest.raises(ValueError, match=name):
        ka.FitSettings(**{name: value})
    with pytest.raises(ValueError, match=name):
        model.fit(x, y, **{"progress": False, name: value})
    assert_same_state(model, before)


_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-10**20, 10**20), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=4), st.lists(st.integers(-3, 3), max_size=3), st.sampled_from(
        [np.int64(3), np.float64(0.5), np.bool_(True), np.zeros(2), np.array(2), np.array([1.5]), object()]),
)


@settings(max_examples=400, deadline=None)
@given(name=st.sampled_from(ka.FitSettings.names()), value=_VALUES)
def test_any_value_of_any_setting_is_accepted_or_refused_by_name(name, value):
    """FitSettings raises only ValueError, naming the setting, whatever a value is."""
    try:
        built = ka.FitSettings(**{name: value})
    except ValueError as error:
        assert name in str(error)
    else:
        assert built.replace() == built  # what it accepted validates again


# -- several ranks ----------------------------------------------------------------------------------------------------

_MPI_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    from mpi4py import MPI
    import kanarray as ka

    mode, out = sys.argv[1], sys.argv[2]
    world = MPI.COMM_WORLD
    rank = world.Get_rank()
    rng = np.random.default_rng(rank)
    x = rng.uniform(-1, 1, (40, 2))
    y = np.sin(np.pi * x[:, :1]) * x[:, 1:]
    if mode == "huge" and rank == 1:
        x[3, 0] = 1e150  # on one rank only: the global gradient is too large to step along on both
    model = ka.KAN([2, 3, 1], grid=3, seed=0)
    before = [a.copy() for layer in model.layers for a in layer.arrays().values()]
    opt, lr = ("lbfgs", None) if mode == "huge" else ("adam", 1e10)
    try:
        model.fit(x, y, steps=20, opt=opt, lr=lr, update_grid=mode == "huge", progress=False, comm=world)
        text = "no error"
    except ka.TrainingDiverged as error:
        text = str(error)
    after = [a for layer in model.layers for a in layer.arrays().values()]
    same = all(np.array_equal(a, b) for a, b in zip(before, after))
    with open(f"{out}/rank{rank}.txt", "w") as f:
        f.write(f"{same}\\n{text}")
""")


@pytest.mark.slow
@pytest.mark.parametrize("mode, expected", [("huge", "could not take a step"), ("grow", "grew without bound")])
def test_every_rank_raises_the_same_divergence_and_restores(tmp_path, mode, expected):
    """The objective is global, so every rank fails at the same step (no rank waits in a
    collective) and restores the same parameters."""
    script = tmp_path / "script.py"
    script.write_text(_MPI_SCRIPT)
    proc = subprocess.run([mpiexec(), "-n", "2", sys.executable, str(script), mode, str(tmp_path)],
                          capture_output=True, text=True, timeout=120, env=mpi_environment(), check=False)
    assert proc.returncode == 0, proc.stderr
    texts = [(tmp_path / f"rank{r}.txt").read_text().split("\n", 1) for r in range(2)]
    assert all(same == "True" for same, _ in texts), texts
    assert expected in texts[0][1]
    if mode == "huge":
        assert "at step 0" in texts[0][1]
    # the same step and the same restored parameters on both ranks (the data magnitudes are each rank's own)
    assert texts[0][1].split(": the first layer")[0] == texts[1][1].split(": the first layer")[0]


def test_every_backend_refuses_huge_data_and_stops_growth(backend):
    """The checks use only the array API (array-api-strict's arrays here live on a non-host device)."""
    model = ka.KAN([2, 3, 1], grid=3, seed=0, backend=backend)
    xp = model.xp
    x, y = data(100)
    before = state(model)
    huge, y_huge = _huge("one input 1e308")
    with pytest.raises(ValueError, match="^x holds values up to 1e\\+308"):
        model.fit(xp.asarray(huge), xp.asarray(y_huge), steps=2, progress=False)
    with pytest.raises(ka.TrainingDiverged, match="grew without bound"):
        model.fit(xp.asarray(x), xp.asarray(y), steps=30, opt="adam", lr=1e10, update_grid=False, progress=False)
    assert_same_state(model, before)
