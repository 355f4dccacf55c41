"""Early stopping and restore_best: ``fit(..., validation=..., patience=N, restore_best=...)``
ends on the parameters of the step with the lowest validation loss, and ``History`` records
that step (``best_step``, ``best_val_loss``)."""

from __future__ import annotations

import numpy as np
import pytest

import kanarray as ka
from kanarray import FitSettings

from helpers import host


def overfit_regression(seed=0):
    """12 noisy samples of sin(pi x) for a [1, 4, 1] KAN with G=10 (which fits the noise), and
    the clean curve on 101 points as validation."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (12, 1))
    y = np.sin(np.pi * x) + 0.3 * rng.standard_normal((12, 1))
    xv = np.linspace(-1, 1, 101)[:, None]
    return x, y, xv, np.sin(np.pi * xv)


def overfit_classification(seed=0):
    """20 samples of the sign of x1 * x2 with a fifth of the labels flipped, and 200 clean ones."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (20, 2))
    y = (x[:, 0] * x[:, 1] > 0).astype(int)
    flip = rng.random(20) < 0.2
    y[flip] = 1 - y[flip]
    xv = rng.uniform(-1, 1, (200, 2))
    return x, y, xv, (xv[:, 0] * xv[:, 1] > 0).astype(int)


def val_loss(model, xv, yv, loss):
    """RMSE (mse) or mean cross-entropy of the model on the validation set, computed here."""
    out = host(model(xv))
    if loss == "mse":
        return float(np.sqrt(np.mean((out - yv) ** 2)))
    shifted = out - out.max(axis=1, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(-np.mean(logp[np.arange(len(yv)), yv]))


def params(model):
    return {name: host(a).copy() for name, a in model.parameters().items()} | {
        f"grid{l}": host(layer.grid).copy() for l, layer in enumerate(model.layers)}


# (opt, lr): Adam's validation loss is lowest at step 9 of 80 and grows 1.2x by the end;
# L-BFGS's at step 1 and grows 15x while the train RMSE reaches 2e-6
@pytest.mark.parametrize("opt,lr,steps", [("adam", 0.05, 80), ("lbfgs", 0.3, 30)])
def test_restore_best_ends_on_the_parameters_of_the_best_step(opt, lr, steps):
    x, y, xv, yv = overfit_regression()
    model = ka.KAN([1, 4, 1], grid=10, seed=0)
    # the seeded start alone (start_probe=False), here and in the reference: the reference's
    # short fit would not be probed, and the case is built to overfit from this start
    history = model.fit(x, y, steps=steps, opt=opt, lr=lr, validation=(xv, yv), progress=False, restore_best=True,
                        start_probe=False)
    curve = np.asarray(history["val_loss"])
    assert len(curve) == steps and not history.stopped_early
    best = int(np.argmin(curve))
    assert curve[-1] > 1.1 * curve[best] and 0 < best < steps - 1  # the case overfits
    assert history.best_step == best and history.best_val_loss == curve[best]
    assert val_loss(model, xv, yv, "mse") == pytest.approx(curve[best], rel=1e-12)
    # the parameters at the best step, from an independent fit that stops there: Adam evaluates
    # step s at the parameters after s updates, L-BFGS at those after step s
    reference = ka.KAN([1, 4, 1], grid=10, seed=0)
    reference.fit(x, y, steps=best if opt == "adam" else best + 1, opt=opt, lr=lr, progress=False, start_probe=False)
    expected, got = params(reference), params(model)
    for name in expected:
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)


@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_patience_stops_after_that_many_steps_without_improvement(loss):
    if loss == "mse":
        x, y, xv, yv = overfit_regression()
        model = ka.KAN([1, 4, 1], grid=10, seed=0)
    else:  # L-BFGS drives the train cross-entropy to ~1e-14 while the validation loss grows 7x
        x, y, xv, yv = overfit_classification()
        model = ka.KAN([2, 4, 2], grid=8, seed=0)
    patience = 4
    history = model.fit(x, y, steps=30, loss=loss, validation=(xv, yv), progress=False, patience=patience)
    best = history.best_step
    assert history.stopped_early
    assert len(history["val_loss"]) == best + patience + 1  # the best step, then `patience` worse ones
    assert min(history["val_loss"][best + 1:]) >= history["val_loss"][best] == history.best_val_loss
    # restore_best defaults to True with patience: the model holds the best step's parameters
    assert val_loss(model, xv, yv, loss) == pytest.approx(history.best_val_loss, rel=1e-10)
    assert model.fit_inputs.shape == x.shape


def test_patience_without_restore_keeps_the_last_parameters():
    x, y, xv, yv = overfit_regression()
    kept, last = ka.KAN([1, 4, 1], grid=10, seed=0), ka.KAN([1, 4, 1], grid=10, seed=0)
    h = kept.fit(x, y, steps=30, opt="lbfgs", lr=0.3, validation=(xv, yv), progress=False, patience=3,
                 restore_best=False)
    assert h.stopped_early and len(h["val_loss"]) == h.best_step + 4
    last.fit(x, y, steps=len(h["val_loss"]), opt="lbfgs", lr=0.3, progress=False)
    for name, a in params(last).items():
        np.testing.assert_array_equal(params(kept)[name], a, err_msg=name)
    assert val_loss(kept, xv, yv, "mse") == pytest.approx(h["val_loss"][-1], rel=1e-12)


def test_without_patience_fit_ends_where_it_always_did():
    """restore_best defaults to False without patience: the result of a fit does not change."""
    x, y, xv, yv = overfit_regression()
    plain, explicit = ka.KAN([1, 4, 1], grid=10, seed=0), ka.KAN([1, 4, 1], grid=10, seed=0)
    h = plain.fit(x, y, steps=10, validation=(xv, yv), progress=False)
    explicit.fit(x, y, steps=10, progress=False)
    for name, a in params(explicit).items():
        np.testing.assert_array_equal(params(plain)[name], a, err_msg=name)
    assert FitSettings().restore_best is False and FitSettings(patience=2).restore_best is True
    assert h.best_step == int(np.argmin(h["val_loss"])) and h.best_val_loss == min(h["val_loss"])
    no_val = ka.KAN([1, 4, 1], grid=10, seed=0).fit(x, y, steps=2, progress=False)
    assert no_val.best_step is None and no_val.best_val_loss is None and not no_val.stopped_early


@pytest.mark.parametrize("options", [dict(patience=3), dict(restore_best=True), dict(patience=3, restore_best=False)])
def test_patience_or_restore_best_without_validation_is_refused_before_training(options):
    x, y, _, _ = overfit_regression()
    model = ka.KAN([1, 4, 1], grid=10, seed=0)
    before = params(model)
    with pytest.raises(ValueError, match="validation=\\(x_val, y_val\\)"):
        model.fit(x, y, steps=3, progress=False, **options)
    for name, a in before.items():
        np.testing.assert_array_equal(params(model)[name], a)
    assert model.fit_inputs is None


@pytest.mark.parametrize("options,match", [
    (dict(patience=0), "patience must be an integer >= 1"),
    (dict(patience=-2), "patience must be an integer >= 1"),
    (dict(patience=2.5), "patience must be an integer >= 1"),
    (dict(patience=True), "patience must be an integer >= 1"),
    (dict(restore_best="yes"), "restore_best must be True, False or None"),
    (dict(restore_best=1), "restore_best must be True, False or None"),
])
def test_bad_patience_and_restore_best_are_refused(options, match):
    with pytest.raises(ValueError, match=match):
        FitSettings(**options)


@pytest.mark.slow
def test_diabetes_lbfgs_stops_near_the_best_validation_step():
    """scikit-learn's diabetes table: L-BFGS overfits within a few steps (validation RMSE
    lowest at step 1, 2.2x higher by step 60 while the train RMSE falls to 12)."""
    datasets = pytest.importorskip("sklearn.datasets")
    x, y = datasets.load_diabetes(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order], y[order][:, None]
    lo, hi = x.min(axis=0), x.max(axis=0)
    train, val = slice(0, 300), slice(300, None)
    models = [ka.KAN([10, 5, 1], grid=5, seed=0) for _ in range(2)]
    for model in models:
        model.scale_inputs(lo, hi)
    full = models[0].fit(x[train], y[train], validation=(x[val], y[val]), steps=60, progress=False)
    history = models[1].fit(x[train], y[train], validation=(x[val], y[val]), steps=60, patience=5, progress=False)
    assert full.best_step <= 16 and full["val_loss"][-1] > 1.7 * full.best_val_loss  # it overfits
    assert history.stopped_early and len(history["val_loss"]) == history.best_step + 6
    assert history.best_step == full.best_step and history.best_val_loss == full.best_val_loss
    assert history["val_loss"][-1] > history.best_val_loss
    assert val_loss(models[1], x[val], y[val], "mse") == pytest.approx(history.best_val_loss, rel=1e-12)


def test_ctrl_c_with_restore_best_restores_the_best_step(monkeypatch):
    import kanarray.training as training

    x, y, xv, yv = overfit_regression()
    model = ka.KAN([1, 4, 1], grid=10, seed=0)
    real, calls = training.evaluate, {"n": 0}

    def interrupting(*args, **kwargs):  # two evaluations a step (train, validation): stop in step 30
        calls["n"] += 1
        if calls["n"] == 61:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(training, "evaluate", interrupting)
    history = model.fit(x, y, steps=80, opt="adam", lr=0.05, validation=(xv, yv), progress=False, patience=50)
    monkeypatch.undo()
    assert history.interrupted and not history.stopped_early and len(history["val_loss"]) == 30
    assert history.best_step == int(np.argmin(history["val_loss"])) < 29
    assert val_loss(model, xv, yv, "mse") == pytest.approx(history.best_val_loss, rel=1e-12)
