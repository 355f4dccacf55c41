"""kanarray reproduce: tiny versions of the paper's four experiments, so the code paths keep working."""

from __future__ import annotations

import importlib
import re

import numpy as np
import pytest

from kanarray.cli import main

pytest.importorskip("scipy")
pytest.importorskip("sympy")
pytest.importorskip("matplotlib")


@pytest.mark.parametrize("name, rows", [
    ("scaling", ["| j0 | [1, 1] |", "| exp_sin | [2, 1, 1] |"]),
    ("special", ["| jv | [2, 2, 1] |", "| sph_harm_m0_n1 | [2, 1, 1] |"]),
    ("feynman", ["| I.6.2 |", "| II.38.3 |"]),
    ("continual", ["| 5 | KAN |", "| 5 | MLP |"]),
    ("pde", ["| 0* |", "| KAN [2,3,1] G=5 |", "| MLP [2,10,10,10,1] tanh |"]),
])
def test_quick_reproduction_writes_its_table_and_figure(tmp_path, capsys, name, rows):
    assert main(["reproduce", name, "--quick", "--out", str(tmp_path)]) == 0
    text = (tmp_path / f"{name}.md").read_text()
    assert all(row in text for row in rows), text
    assert "Machine:" in text
    png = (tmp_path / f"{name}.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    printed = capsys.readouterr().out
    assert rows[0] in printed and f"{name}.md" in printed


@pytest.mark.parametrize("name, only", [("scaling", "j0"), ("special", "jv"), ("feynman", "II.38.3")])
def test_reproduction_takes_the_number_of_training_points(tmp_path, name, only):
    argv = ["reproduce", name, "--quick", "--only", only, "--train", "300", "--out", str(tmp_path)]
    assert main(argv) == 0
    assert "300 training / 1000 test points" in (tmp_path / f"{name}.md").read_text()


def test_reproduction_takes_a_grid_margin(tmp_path):
    argv = ["reproduce", "special", "--quick", "--only", "jv", "--grid-margin", "0.5", "--out", str(tmp_path)]
    assert main(argv) == 0
    assert "end knots moved out by 0.5 of their interval" in (tmp_path / "special.md").read_text()


def test_margin_is_chosen_with_the_grid_on_the_validation_draw():
    from kanarray.datasets import SPECIAL
    from kanarray.reproduce._plan import Plan

    both = Plan((3, 5), 5, (0,), grid_margin=(0.0, 0.5)).fit(SPECIAL["jv"])
    best_val = min(r.val for r in both["rows"])
    for margin in (0.0, 0.5):
        alone = Plan((3, 5), 5, (0,), grid_margin=margin).fit(SPECIAL["jv"])
        assert best_val <= min(r.val for r in alone["rows"])
        if margin == both["margin"]:
            assert alone["test"] == both["test"] and alone["G"] == both["G"]


def test_continuations_are_chosen_with_the_grid_and_the_linear_runs_train_linear_kans(tmp_path):
    from kanarray.datasets import SPECIAL
    from kanarray.reproduce._plan import Plan

    both = Plan((3, 5), 5, (0,), extrapolate=("spline", "linear")).fit(SPECIAL["jv"])
    assert both["model"].extrapolate == both["extrapolate"]
    for mode in ("spline", "linear"):
        alone = Plan((3, 5), 5, (0,), extrapolate=mode).fit(SPECIAL["jv"])
        assert alone["model"].extrapolate == mode
        assert min(r.val for r in both["rows"]) <= min(r.val for r in alone["rows"])
        if mode == both["extrapolate"]:
            assert alone["test"] == both["test"] and alone["G"] == both["G"]
    argv = ["reproduce", "special", "--quick", "--only", "jv", "--extrapolate", "linear", "--out", str(tmp_path)]
    assert main(argv) == 0
    text = (tmp_path / "special.md").read_text()
    assert "splines continued as lines beyond their grids (extrapolate='linear')" in text


def test_margin_from_trains_the_earlier_grids_without_the_margin():
    from kanarray.datasets import SPECIAL, special_dataset
    from kanarray.model import KAN
    from kanarray.reproduce._plan import Plan, grid_extension

    data = special_dataset("jv", n_train=200, n_test=200)

    def make(G, seed, _):
        return KAN([2, 2, 1], grid=G, k=3, seed=seed)

    def run(**options):
        rows, models, _ = grid_extension(make, data, (3, 5), 5, **options)
        return [(r.train, r.test) for r in rows], models

    plain, _ = run()
    early, _ = run(grid_margin=0.5)
    late, models = run(grid_margin=0.5, margin_from=5)
    assert late[0] == plain[0] and early[0] != plain[0]  # G = 3: no margin
    assert late[1] != plain[1]  # G = 5: the margin moved the end knots out
    last = models[-1].layers[0]
    assert float(last.grid[0, 3]) < float(data["train_input"][:, 0].min()) - 1e-3
    assert "from G = 5 on" in Plan((3, 5), 5, (0,), grid_margin=0.5, margin_from=5).schedule_text()
    # the Plan passes it on, to the pruned start's wide fit as well
    plain, late = (Plan((3, 5), 5, (0,), grid_margin=m, starts=("pruned",), margin_from=5).fit(SPECIAL["jv"])["rows"]
                   for m in (0.0, 0.5))
    assert late[0].test == plain[0].test and late[1].test != plain[1].test
    with pytest.raises(ValueError, match="margin_from must be an integer >= 0"):
        Plan((3, 5), 5, (0,), margin_from=-1)


@pytest.mark.slow
def test_plan_trains_the_grids_before_margin_from_once_and_matches_separate_runs():
    from kanarray.datasets import SPECIAL
    from kanarray.reproduce._plan import Plan, grid_extension, start_model

    entry, grids, margins = SPECIAL["jv"], (3, 5, 10), (0.0, 0.5)
    both = Plan(grids, 3, (0, 1), grid_margin=margins, starts=("scratch", "pruned"), margin_from=5).fit(entry)
    data = both["data"]
    # each (start, margin) as its own whole run from the first grid, without any sharing
    separate = {}
    for start in ("scratch", "pruned"):
        def make(G, seed, options, start=start):
            return start_model(start, entry.shape, G, seed, data, 3, options.get("grid_margin", 0.0))
        for m in margins:
            rows, _, _ = grid_extension(make, data, grids, 3, seeds=(0, 1), grid_margin=m, margin_from=5)
            separate[start, m] = [r.test for r in rows]
    assert separate["scratch", 0.0][0] == separate["scratch", 0.5][0]  # G = 3 is before margin_from
    assert separate["scratch", 0.0][1] != separate["scratch", 0.5][1]
    assert [r.test for r in both["rows"]] == separate[both["start"], both["margin"]]
    assert both["lowest"]["test"] == min(min(t) for t in separate.values())


def test_runner_up_leaves_out_the_grids_a_run_shares_with_the_chosen_one():
    from kanarray.datasets import SPECIAL
    from kanarray.reproduce._plan import Plan

    # two margins from G = 5 on: both runs hold the same G = 3 model; the runner-up is the other G = 5
    both = Plan((3, 5), 3, (0,), grid_margin=(0.0, 0.5), margin_from=5).fit(SPECIAL["jv"])
    other = 0.5 if both["margin"] == 0.0 else 0.0
    alone = Plan((3, 5), 3, (0,), grid_margin=other, margin_from=5).fit(SPECIAL["jv"])
    assert both["rows"][0].val == alone["rows"][0].val  # the shared model
    assert both["runner_up"] == alone["rows"][1].val
    # a margin from beyond the last grid: the two runs are one model per grid, so no runner-up
    assert Plan((3, 5), 3, (0,), grid_margin=(0.0, 0.5), margin_from=10).fit(SPECIAL["jv"])["runner_up"] is None


def test_every_seed_chooses_the_seed_on_validation_and_lowest_is_the_least_test_rmse():
    from kanarray.datasets import SPECIAL
    from kanarray.reproduce._plan import Plan

    runs = {s: Plan((3, 5), 5, (s,)).fit(SPECIAL["jv"]) for s in (0, 1, 2)}
    every = Plan((3, 5), 5, (0, 1, 2), every_seed=True).fit(SPECIAL["jv"])
    # the validation choice runs over seeds and grids; each seed alone reproduces its own run
    assert min(r.val for r in every["rows"]) == min(min(r.val for r in f["rows"]) for f in runs.values())
    chosen = runs[every["seed"]]
    assert every["test"] == chosen["test"] and every["G"] == chosen["G"]
    # the paper's selection: the least test RMSE over everything trained, never above the chosen one
    tests = {(s, r.G): r.test for s, f in runs.items() for r in f["rows"]}
    assert every["lowest"]["test"] == min(tests.values()) <= every["test"]
    assert tests[every["lowest"]["seed"], every["lowest"]["G"]] == every["lowest"]["test"]


def test_pruned_start_is_the_papers_shape_and_the_start_is_chosen_on_validation():
    from kanarray.datasets import FEYNMAN, feynman_dataset
    from kanarray.reproduce._plan import Plan, start_model

    entry = FEYNMAN["III.17.37"]  # [3, 3, 1]
    model = start_model("pruned", entry.shape, 3, 0, feynman_dataset("III.17.37"), steps=3)
    assert model.width == [3, 3, 1] and model.grid == [3, 3]
    runs = {start: Plan((3, 5), 3, (0,), starts=(start,)).fit(entry) for start in ("scratch", "pruned")}
    both = Plan((3, 5), 3, (0,), starts=("scratch", "pruned")).fit(entry)
    assert runs["pruned"]["model"].width == [3, 3, 1]
    winner = min(runs, key=lambda s: min(r.val for r in runs[s]["rows"]))
    assert both["start"] == winner and both["test"] == runs[winner]["test"]
    # the chosen run's validation RMSE, and the other run's as the runner-up
    assert both["val"] == min(r.val for r in runs[winner]["rows"])
    assert both["runner_up"] == min(min(r.val for r in f["rows"]) for s, f in runs.items() if s != winner)
    assert runs["pruned"]["runner_up"] is None  # a single run has none
    assert both["lowest"]["test"] == min(f["lowest"]["test"] for f in runs.values())


def test_a_larger_validation_draw_extends_the_default_one():
    from kanarray.datasets import SPECIAL
    from kanarray.reproduce._plan import Plan

    small = Plan((3, 5), 3, (0,)).fit(SPECIAL["jv"])
    large = Plan((3, 5), 3, (0,), n_validation=3000).fit(SPECIAL["jv"])
    # the same training: identical test errors; the validation RMSE now over 3000 points
    assert [r.test for r in small["rows"]] == [r.test for r in large["rows"]]
    assert [r.val for r in small["rows"]] != [r.val for r in large["rows"]]
    for bad in (0, -5, 2.5, True, "1000"):
        with pytest.raises(ValueError, match="n_validation must be an integer >= 1"):
            Plan((3, 5), 3, (0,), n_validation=bad)


def test_feynman_report_shows_the_papers_selection_next_to_the_validation_choice(tmp_path):
    argv = ["reproduce", "feynman", "--quick", "--only", "I.6.2", "--every-seed", "--seeds", "0,1", "--out",
            str(tmp_path)]
    assert main(argv) == 0
    text = (tmp_path / "feynman.md").read_text()
    assert "every seed of 0, 1 grid-extended" in text and "over the grids and seeds trained here" in text
    assert "lowest test RMSE (the paper's selection)" in text and "with the paper's selection" in text
    # two seeds, two runs: the chosen run's validation RMSE, then the other's, never lower
    head = next(line for line in text.splitlines() if line.startswith("| equation"))
    row = next(line for line in text.splitlines() if line.startswith("| I.6.2"))
    cell = row.split(" | ")[head.split(" | ").index("validation RMSE (next-best run)")]
    chosen, other = re.fullmatch(r"(\S+) \((\S+)\)", cell).groups()
    assert float(chosen) <= float(other)


def test_pde_reproduction_solves_every_equation_to_its_exact_solution():
    """Short runs: Poisson (pykan's example), the KAN/MLP comparison, heat and nonlinear Poisson all end far
    below the error of the zero function (MSE 0.25 for Poisson and nonlinear Poisson, about 0.1 for heat)."""
    from kanarray.reproduce import pde

    report = pde.run(steps=15, grids=(3, 6), seeds=(0,), mlp_widths=(8,), kan_width=4, symbolic_steps=3,
                     echo=lambda *a: None)
    assert report.results["kan"][-1][2] < 5e-3 and report.results["kan"][-1][0] == 6
    assert report.results["kan_fixed_grid"][-1][2] < 5e-3
    assert report.results["mlp"][0][2] < 0.05
    assert report.results["poisson"][0][-1][2] < 0.125  # [2, 2, 1] needs more steps: half the zero function's
    heat, nonlinear = report.results["extra"]
    assert float(heat[2]) < 5e-3 and float(nonlinear[2]) < 5e-3
    assert "### 3. Heat and nonlinear Poisson" in report.markdown


def test_continual_learning_kan_keeps_earlier_peaks_and_the_mlp_forgets():
    from kanarray.reproduce import continual

    report = continual.run(steps=20, echo=lambda *a: None)
    errors = report.results["errors"]
    assert report.results["earlier"]["KAN"] <= 1e-3
    assert np.all(np.diag(errors["KAN"]) < 1e-3)  # each phase fits its own peak
    assert report.results["earlier"]["MLP"] > 100 * report.results["earlier"]["KAN"]


@pytest.mark.slow
def test_feynman_recovery_finds_a_formula_and_checks_it_against_the_ground_truth():
    from kanarray.datasets import FEYNMAN, feynman_dataset
    from kanarray.reproduce.feynman import recover

    ok, formula, seed, test_rmse = recover(FEYNMAN["II.38.3"], feynman_dataset("II.38.3"), seeds=(2,), steps=50)
    assert ok and seed == 2 and test_rmse < 1e-8, formula
    ok, formula, _, _ = recover(FEYNMAN["II.38.3"], feynman_dataset("II.38.3"), seeds=(0,), steps=50)
    assert not ok and formula is not None  # a formula was found, but it is not a / b


@pytest.mark.slow
def test_feynman_recovery_table_runs_with_and_without_multiplication_nodes(tmp_path):
    from kanarray.reproduce.feynman import mult_shape

    assert mult_shape((2, 2, 1), 1) == [2, [2, 1], 1] and mult_shape((3, 3, 1, 1), 0) == [3, 3, 1, 1]
    with pytest.raises(ValueError, match="mult must be a non-negative int"):
        mult_shape((2, 2, 1), -1)
    argv = ["reproduce", "feynman", "--recovery-only", "--only", "II.38.3", "--seeds", "2", "--out", str(tmp_path)]
    assert main(argv) == 0
    text = (tmp_path / "feynman_mult.md").read_text()
    row = [line for line in text.splitlines() if line.startswith("| II.38.3 |")][0]
    assert "| [2,1,1] | yes (seed 2) | `a/b` |" in row and "| [2,[1,1],1] |" in row


def test_scaling_slopes_stop_at_the_lowest_test_error():
    from kanarray.reproduce._plan import GridRow
    from kanarray.reproduce._report import loglog_slope
    from kanarray.reproduce.scaling import _slopes

    n = np.array([10.0, 20, 40, 80, 160])
    test = 3 * n ** -4.0
    test[-1] = test[-2] * 10  # overfitting at the last grid is not part of the fit
    rows = [GridRow(G, int(p), 0.0, 0.0, float(t), float(t) / 2, 0.0) for G, p, t in zip([3, 5, 10, 20, 50], n, test)]
    s_rmse, s_median, upto = _slopes(rows)
    assert upto == 20 and s_rmse == pytest.approx(-4) and s_median == pytest.approx(-4)
    assert np.isnan(loglog_slope([1.0], [2.0]))


@pytest.mark.parametrize("argv, message", [
    (["continual", "--grids", "3"], "--grids does not apply"),
    (["continual", "--only", "j0"], "--only applies"),
    (["special", "--only", "nope"], "unknown special functions"),
    (["feynman", "--only", "I.99"], "unknown Feynman"),
    (["scaling", "--only", "nope"], "unknown toy functions"),
    (["continual", "--train", "5000"], "--train does not apply to continual"),
    (["continual", "--grid-margin", "0.5"], "--grid-margin does not apply to continual"),
    (["pde", "--train", "500"], "--train does not apply to pde"),
    (["pde", "--grid-margin", "0.5"], "--grid-margin does not apply to pde"),
    (["pde", "--only", "heat"], "--only applies"),
    (["special", "--grid-margin", "-1"], "grid_margin must be a finite number >= 0"),
    (["scaling", "--grid-margin", "0,0.5"], "scaling takes one --grid-margin"),
    (["scaling", "--every-seed"], "--every-seed applies to special and feynman"),
    (["continual", "--start", "pruned"], "--start applies to special and feynman"),
    (["scaling", "--validation", "5000"], "--validation applies to special and feynman"),
    (["scaling", "--margin-from", "50"], "--margin-from applies to special and feynman"),
    (["special", "--start", "pruned,nope"], "starts must be one or more of ('scratch', 'pruned')"),
    (["scaling", "--extrapolate", "linear"], "--extrapolate applies to special and feynman"),
    (["special", "--extrapolate", "linear,cubic"], "extrapolate must be one or more of ('spline', 'linear')"),
    (["scaling", "--tuned"], "--tuned applies to special and feynman"),
    (["special", "--tuned", "--quick"], "--tuned and --quick exclude each other"),
    (["special", "--mult", "1"], "--mult applies to feynman"),
    (["scaling", "--recovery-only"], "--recovery-only applies to feynman"),
])
def test_reproduce_refuses_bad_options_with_a_clear_message(tmp_path, capsys, argv, message):
    assert main(["reproduce", *argv, "--out", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # nothing written


@pytest.mark.parametrize("name", ["special", "feynman"])
def test_tuned_runs_the_documented_settings_and_flags_override_them(tmp_path, monkeypatch, name):
    """--tuned: the settings of docs/reproductions.md's headline tables (pinned here), under any flag given."""
    import importlib

    module = importlib.import_module(f"kanarray.reproduce.{name}")
    seen = {}

    class Stop(Exception):
        pass

    def fake_run(**options):
        seen.clear()
        seen.update(options)
        raise Stop

    monkeypatch.setattr(module, "run", fake_run)
    with pytest.raises(Stop):
        main(["reproduce", name, "--tuned", "--out", str(tmp_path)])
    assert seen["grids"] == (3, 5, 10, 20, 30, 40, 50, 70, 100)
    assert seen["starts"] == ("scratch", "pruned") and seen["grid_margin"] == (0.0, 0.25)
    assert seen["margin_from"] == 50 and seen["n_validation"] == 10000
    if name == "feynman":
        assert seen["every_seed"] is True and seen["seeds"] == (0, 1, 2) and seen["extrapolate"] == ("spline", "linear")
    else:
        assert "extrapolate" not in seen and "every_seed" not in seen
    with pytest.raises(Stop):
        main(["reproduce", name, "--tuned", "--validation", "2000", "--grids", "3,5", "--out", str(tmp_path)])
    assert seen["n_validation"] == 2000 and list(seen["grids"]) == [3, 5] and seen["margin_from"] == 50


@pytest.mark.parametrize("name", ["special", "feynman"])
def test_tuned_flags_in_the_help_ask_for_the_tuned_settings(name):
    """The flags that --tuned's help prints (rendered from reproduce.tuned) parse back to exactly
    the settings --tuned runs."""
    from kanarray.cli import _reproduce_options, build_parser
    from kanarray.reproduce import EXPERIMENTS, tuned

    settings = {"special": tuned.SPECIAL, "feynman": tuned.FEYNMAN}[name]
    flags = tuned.as_flags(settings)
    reproduce = build_parser()._subparsers._group_actions[0].choices["reproduce"]
    assert flags in next(action.help for action in reproduce._actions if action.dest == "tuned")
    parsed = _reproduce_options(build_parser().parse_args(["reproduce", name, *flags.split()]))
    assert parsed == settings == importlib.import_module(f"kanarray.reproduce.{name}").TUNED
    assert name in EXPERIMENTS
