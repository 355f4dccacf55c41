"""fit's start probe (kanarray.start_probe): a second start replaces the seeded one only when it
is far ahead after a few steps, only from the constructor's draw, and never half-way."""

import numpy as np
import pytest

import kanarray as ka
from kanarray import start_probe
from kanarray.datasets import toy_dataset
from kanarray.fit_settings import FitSettings


def exp_sin(draw=0):
    ds = toy_dataset("exp_sin", seed=draw)
    return ds["train_input"], ds["train_label"], ds["test_input"], ds["test_label"]


def arrays(model):
    return {f"{l}.{name}": np.array(a) for l, layer in enumerate(model.layers) for name, a in layer.state().items()}


def test_a_seeded_start_headed_for_the_poor_minimum_is_replaced():
    # benchmarks/good_basin.py: with start_probe=False this draw and seed end at a test RMSE of
    # 0.4 std(y) (the poor basin); the second start reaches 5e-3 std(y)
    x, y, xt, yt = exp_sin()
    seeded = ka.KAN([2, 1, 1], grid=5, seed=0)
    h_seeded = seeded.fit(x, y, steps=50, validation=(xt, yt), progress=False, start_probe=False)
    probed = ka.KAN([2, 1, 1], grid=5, seed=0)
    h = probed.fit(x, y, steps=50, validation=(xt, yt), progress=False)
    assert h_seeded.start_probe is None
    assert h.start_probe["chosen"] == "second"
    assert h.start_probe["second"] * start_probe.MARGIN < h.start_probe["seeded"]
    scale = float(np.std(yt))
    assert h_seeded["val_loss"][-1] > 0.2 * scale and h["val_loss"][-1] < 0.02 * scale
    # the second start is the seeded splines with every base weight 1/sqrt(n_in), trained 50 steps
    manual = start_probe.second_start(ka.KAN([2, 1, 1], grid=5, seed=0))
    manual.fit(x, y, steps=50, progress=False, start_probe=False)
    for name, a in arrays(manual).items():
        np.testing.assert_array_equal(arrays(probed)[name], a, err_msg=name)


def test_a_seeded_start_going_well_is_kept_bit_for_bit():
    x, y, xt, yt = exp_sin()
    kept = ka.KAN([2, 1, 1], grid=5, seed=1)
    h = kept.fit(x, y, steps=20, lamb=1e-3, progress=False)
    plain = ka.KAN([2, 1, 1], grid=5, seed=1)
    plain.fit(x, y, steps=20, lamb=1e-3, progress=False, start_probe=False)
    probed = h.start_probe
    assert probed["chosen"] == "seeded" and probed["seeded"] <= start_probe.MARGIN * probed["second"]
    for name, a in arrays(plain).items():
        np.testing.assert_array_equal(arrays(kept)[name], a, err_msg=name)


def test_only_the_constructors_draw_is_probed():
    x, y, _, _ = exp_sin()
    model = ka.KAN([2, 1, 1], grid=5, seed=0)
    assert start_probe.at_initialization(model)
    assert model.fit(x, y, steps=3, progress=False).start_probe is not None
    assert not start_probe.at_initialization(model)
    assert model.fit(x, y, steps=3, progress=False).start_probe is None  # continued training
    edited = ka.KAN([2, 1, 1], grid=5, seed=0)
    edited.layers[0].coef[0, 0, 0] += 1e-3
    assert edited.fit(x, y, steps=3, progress=False).start_probe is None
    refined = ka.KAN([2, 1, 1], grid=5, seed=0).refine(8, x)
    assert refined.fit(x, y, steps=3, progress=False).start_probe is None
    copied = ka.KAN([2, 1, 1], grid=5, seed=0).copy()  # the same draw
    assert copied.fit(x, y, steps=3, progress=False).start_probe is not None


@pytest.mark.parametrize("options", [dict(opt="adam"), dict(frozen="scale_base"), dict(frozen="layers.1.scale_base"),
                                     dict(start_probe=False)])
def test_what_is_not_probed(options):
    x, y, _, _ = exp_sin()
    model = ka.KAN([2, 1, 1], grid=5, seed=0)
    assert model.fit(x, y, steps=3, progress=False, **options).start_probe is None
    zero_base = ka.KAN([2, 1, 1], grid=5, seed=0, base_fun="zero")
    assert zero_base.fit(x, y, steps=3, progress=False).start_probe is None


@pytest.mark.parametrize("draw", [dict(init="pykan"), dict(scale_base_sigma=0.0), dict(scale_base_mu=0.5)])
def test_a_chosen_draw_is_not_probed(draw):
    x, y, _, _ = exp_sin()
    model = ka.KAN([2, 1, 1], grid=5, seed=0, **draw)
    assert not start_probe.at_initialization(model)
    assert model.fit(x, y, steps=3, progress=False).start_probe is None


def test_ctrl_c_during_the_probe_stops_the_fit_with_the_model_unchanged(monkeypatch):
    from kanarray import training

    x, y, _, _ = exp_sin()
    model = ka.KAN([2, 1, 1], grid=5, seed=0)
    before = arrays(model)
    real, calls = training.adapt_grids, []

    def interrupted(*args, **kwargs):  # the first probe's first grid update meets Ctrl-C
        calls.append(1)
        if len(calls) == 1:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(training, "adapt_grids", interrupted)
    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, steps=5, progress=False)
    for name, a in before.items():
        np.testing.assert_array_equal(arrays(model)[name], a, err_msg=name)


def test_history_extend_keeps_the_probe_record():
    x, y, _, _ = exp_sin()
    model = ka.KAN([2, 1, 1], grid=5, seed=0)
    first = model.fit(x, y, steps=3, progress=False)
    joined = ka.History(()).extend(first).extend(model.fit(x, y, steps=2, progress=False))
    assert joined.start_probe == first.start_probe is not None


def test_a_failing_probe_leaves_the_model_as_it_was(monkeypatch):
    x, y, _, _ = exp_sin()
    model = ka.KAN([2, 1, 1], grid=5, seed=0)
    before = arrays(model)
    calls = []
    real = start_probe._objective_after_probe

    def failing(candidate, *args):
        calls.append(candidate)
        if len(calls) == 2:
            raise MemoryError("the second probe ran out of memory")
        return real(candidate, *args)

    monkeypatch.setattr(start_probe, "_objective_after_probe", failing)
    with pytest.raises(MemoryError):
        model.fit(x, y, steps=5, progress=False)
    for name, a in before.items():
        np.testing.assert_array_equal(arrays(model)[name], a, err_msg=name)
    assert start_probe.at_initialization(model)


def test_start_probe_is_checked():
    with pytest.raises(ValueError, match="start_probe must be True or False"):
        FitSettings(start_probe=1)
    assert FitSettings().start_probe is True
