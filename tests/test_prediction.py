"""KAN.predict / predict_proba / score (kanarray.prediction): labels for a model trained with
cross_entropy, values otherwise; the task recorded by fit and kept by refine and pruning."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import asarray, host
from scipy.special import softmax

import kanarray as ka


def _blobs(n=120, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (n, 2))
    return x, (x[:, 0] + x[:, 1] > 0).astype(np.int64)


def test_fit_records_the_task_and_predict_follows_it():
    x, labels = _blobs()
    clf = ka.KAN([2, 3, 2], grid=3, seed=0)
    assert clf.task is None
    clf.fit(x, labels, steps=5, loss="cross_entropy", progress=False)
    assert clf.task == "classification"
    logits = host(clf(x))
    np.testing.assert_array_equal(host(clf.predict(x)), np.argmax(logits, axis=1))
    assert host(clf.predict(x)).dtype == np.int64
    # the override gives the raw outputs back
    np.testing.assert_array_equal(host(clf.predict(x, task="regression")), logits)
    reg = ka.KAN([2, 3, 1], grid=3, seed=0)
    reg.fit(x, x[:, :1] ** 2, steps=3, progress=False)
    assert reg.task == "regression"
    np.testing.assert_array_equal(host(reg.predict(x)), host(reg(x)))


def test_an_untrained_model_predicts_values():
    x, _ = _blobs(10)
    model = ka.KAN([2, 3, 2], grid=3)
    np.testing.assert_array_equal(host(model.predict(x)), host(model(x)))


def test_predict_proba_is_the_softmax_of_the_logits(xp):
    x, _ = _blobs(40)
    model = ka.KAN([2, 3, 3], grid=3, seed=1, backend=xp)
    proba = host(model.predict_proba(asarray(xp, x)))
    np.testing.assert_allclose(proba, softmax(host(model(asarray(xp, x))), axis=1), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)


def test_score_is_accuracy_for_classification():
    x, labels = _blobs()
    model = ka.KAN([2, 3, 2], grid=3, seed=0)
    model.fit(x, labels, steps=5, loss="cross_entropy", progress=False)
    expected = np.mean(np.argmax(host(model(x)), axis=1) == labels)
    assert model.score(x, labels) == pytest.approx(expected)
    assert model.score(x, 1 - labels) == pytest.approx(1 - expected)


def test_score_is_r2_for_regression_against_a_direct_computation():
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, (50, 2))
    model = ka.KAN([2, 3, 2], grid=3, seed=2)
    y = rng.normal(size=(50, 2))
    pred = host(model(x))
    r2 = [1 - np.sum((y[:, j] - pred[:, j]) ** 2) / np.sum((y[:, j] - y[:, j].mean()) ** 2) for j in range(2)]
    assert model.score(x, y, task="regression") == pytest.approx(np.mean(r2), rel=1e-12)
    assert model.score(x, pred) == pytest.approx(1.0)  # the model's own outputs: a perfect score
    single = ka.KAN([2, 3, 1], grid=3)
    assert single.score(x, host(single(x))[:, 0]) == pytest.approx(1.0)  # (batch,) targets with one output


def test_one_output_for_cross_entropy_says_to_use_two():
    x, labels = _blobs(20)
    model = ka.KAN([2, 3, 1], grid=3)
    before = host(model.layers[0].coef).copy()
    with pytest.raises(ValueError, match=r"\[0, 1\).*width\[-1\] = 2"):
        model.fit(x, labels, steps=2, loss="cross_entropy", progress=False)
    np.testing.assert_array_equal(host(model.layers[0].coef), before)
    with pytest.raises(ValueError, match=r"width\[-1\] = 2"):
        model.predict_proba(x)
    with pytest.raises(ValueError, match=r"width\[-1\] = 2"):
        model.predict(x, task="classification")


def test_predict_proba_refuses_a_regression_model_and_bad_tasks():
    x, _ = _blobs(20)
    model = ka.KAN([2, 3, 2], grid=3)
    model.fit(x, np.zeros((20, 2)), steps=2, progress=False)
    with pytest.raises(ValueError, match="loss='mse'"):
        model.predict_proba(x)
    with pytest.raises(ValueError, match="task must be"):
        model.predict(x, task="labels")


def test_refine_and_prune_keep_the_task():
    x, labels = _blobs()
    model = ka.KAN([2, 3, 2], grid=3, seed=0)
    model.fit(x, labels, steps=3, loss="cross_entropy", progress=False)
    assert model.refine(5).task == "classification"
    assert model.prune_edge(threshold=0.0).task == "classification"


def test_a_checkpoint_keeps_the_task_and_refuses_a_bad_one(tmp_path):
    import json
    import zipfile

    from kanarray.checkpoint import CheckpointError

    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (60, 2))
    labels = (x[:, 0] > 0).astype(np.int64)
    model = ka.KAN([2, 2], grid=3, seed=0)
    model.fit(x, labels, loss="cross_entropy", steps=3, progress=False)
    model.save(tmp_path / "c.kan")
    loaded = ka.load(tmp_path / "c.kan")
    assert loaded.task == "classification"
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))  # labels, not values
    assert ka.load(_saved_unfitted(tmp_path)).task is None  # unfitted (and older) checkpoints: no task
    with zipfile.ZipFile(tmp_path / "c.kan") as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    header = json.loads(members["kanarray.json"])
    header["model"]["task"] = "ranking"
    members["kanarray.json"] = json.dumps(header).encode()
    with zipfile.ZipFile(tmp_path / "bad.kan", "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    with pytest.raises(CheckpointError, match="task must be one of"):
        ka.load(tmp_path / "bad.kan")


def _saved_unfitted(tmp_path):
    path = tmp_path / "u.kan"
    ka.KAN([2, 1], grid=3).save(path)
    return path
