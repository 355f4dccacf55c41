"""kanarray.sklearn: KANRegressor and KANClassifier as scikit-learn estimators (scikit-learn's
own estimator checks, Pipeline, GridSearchCV, pickling, feature names in formulas)."""

from __future__ import annotations

import pickle
import subprocess
import sys

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from kanarray.sklearn import KANClassifier, KANRegressor

# every check of scikit-learn's suite, on tiny models (each fit takes milliseconds); the only check
# not run is check_array_api_input, which scikit-learn itself skips unless SCIPY_ARRAY_API=1
TINY = {"steps": 5, "grid": 3}


@parametrize_with_checks([KANRegressor(**TINY), KANClassifier(**TINY)])
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


def _regression(n=160, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-3, 3, (n, 2)) * [1.0, 100.0]  # raw features of different ranges
    return x, 50 + 20 * np.sin(x[:, 0]) + 0.1 * x[:, 1]


def _classification(n=160, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (n, 2)) * [1000.0, 0.01]
    return x, np.where(x[:, 0] / 1000 + x[:, 1] * 100 > 0, "yes", "no")


def test_the_regressor_fits_raw_features_and_targets():
    x, y = _regression()
    est = KANRegressor(width=(3,), grid=5, steps=20).fit(x, y)
    assert est.n_features_in_ == 2 and est.model_.width == [2, 3, 1]
    assert est.predict(x).shape == (160,)
    assert est.score(x, y) > 0.99
    np.testing.assert_allclose(est.target_mean_, [y.mean()])


def test_the_classifier_keeps_its_labels_and_probabilities():
    x, y = _classification()
    est = KANClassifier(width=(2,), grid=3, steps=10).fit(x, y)
    np.testing.assert_array_equal(est.classes_, ["no", "yes"])
    assert est.model_.width == [2, 2, 2] and est.model_.task == "classification"
    proba = est.predict_proba(x)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(est.predict(x), est.classes_[np.argmax(proba, axis=1)])
    # the KAN's own predict agrees with the estimator's (labels are indices into classes_)
    np.testing.assert_array_equal(est.classes_[np.asarray(est.model_.predict(x))], est.predict(x))
    assert est.score(x, y) > 0.95


def test_a_refine_schedule_extends_the_grid():
    x, y = _regression()
    est = KANRegressor(width=(3,), grid=3, steps=5, refine=(5, 8)).fit(x, y)
    assert est.model_.grid == [8, 8]
    with pytest.raises(ValueError, match="increasing grid sizes"):
        KANRegressor(grid=5, refine=(4,)).fit(x, y)


def test_pickle_round_trip_predicts_the_same():
    x, y = _classification()
    est = KANClassifier(width=(2,), grid=3, steps=5).fit(x, y)
    state = est.__getstate__()
    assert "model_" not in state and state["_model_checkpoint"][:2] == b"PK"  # kanarray's checkpoint (a zip)
    back = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(back.predict_proba(x), est.predict_proba(x))
    assert back.model_.task == "classification"
    unfitted = pickle.loads(pickle.dumps(KANRegressor(steps=3)))
    assert unfitted.get_params() == KANRegressor(steps=3).get_params()


def test_pipeline_and_grid_search():
    x, y = _regression(120)
    pipe = make_pipeline(StandardScaler(), KANRegressor(width=(2,), grid=3, steps=5, scale_inputs=False))
    search = GridSearchCV(pipe, {"kanregressor__grid": [3, 5]}, cv=2).fit(x, y)
    assert search.best_params_["kanregressor__grid"] in (3, 5)
    assert search.best_estimator_[-1].model_.grid[0] == search.best_params_["kanregressor__grid"]
    assert search.score(x, y) > 0.5


def test_feature_names_from_a_dataframe_become_the_formula_symbols():
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"dose (mg)": rng.uniform(0, 10, 100), "age": rng.uniform(20, 80, 100)})
    y = 3.0 * frame["dose (mg)"] + 0.5 * frame["age"]
    est = KANRegressor(width=(), grid=3, steps=10).fit(frame, y)  # one layer: [2, 1]
    np.testing.assert_array_equal(est.feature_names_in_, ["dose (mg)", "age"])
    assert est.variable_names() == ["dose__mg_", "age"]
    est.model_.auto_symbolic(lib=["x"])
    (expr,) = est.symbolic_formula(on_mismatch="ignore")
    assert sorted(s.name for s in expr.free_symbols) == ["age", "dose__mg_"]
    # the formula is in the target's units: it reproduces y on the training data
    values = [float(expr.subs({"dose__mg_": d, "age": a})) for d, a in frame.to_numpy()[:5]]
    np.testing.assert_allclose(values, y.to_numpy()[:5], rtol=1e-2, atol=0.1)
    # and the plot's input nodes carry the columns' names
    assert est.model_.input_names == ("dose (mg)", "age")
    figure = est.model_.plot()
    texts = {t.get_text() for ax in figure.axes for t in ax.texts} | {t.get_text() for t in figure.texts}
    assert {"dose (mg)", "age"} <= texts


def test_bad_parameters_are_refused_at_fit():
    x, y = _regression(20)
    with pytest.raises(ValueError, match="hidden layer sizes"):
        KANRegressor(width=(0,)).fit(x, y)
    with pytest.raises(ValueError, match="at least 2 classes"):
        KANClassifier().fit(x, np.zeros(20, dtype=int))


def test_importing_kanarray_does_not_import_scikit_learn():
    code = "import sys, kanarray; sys.exit(1 if 'sklearn' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
