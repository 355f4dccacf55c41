"""KANRegressor / KANClassifier next to scikit-learn's MLP and histogram gradient boosting on data
sets that ship with scikit-learn (docs/sklearn.md).

    python benchmarks/sklearn_comparison.py [--seed 0]

Data: diabetes (442 x 10, regression), breast_cancer (569 x 30, binary) and wine (178 x 13,
3 classes), each split once with train_test_split(test_size=0.25, random_state=seed,
stratified for the classifiers).  Every model sees the same split and fixed seeds; nothing is
tuned on the test set (the settings below were fixed before measuring).

* KAN: kanarray.sklearn with its defaults for scaling (raw features mapped onto the grid,
  regression targets standardized); the settings in ``KAN_SETTINGS``.
* MLP: StandardScaler + MLPRegressor/MLPClassifier(hidden_layer_sizes=(64,), max_iter=2000,
  early_stopping=False), the regression targets standardized (TransformedTargetRegressor).
* HGB: HistGradientBoostingRegressor/Classifier with its defaults.
* linear, for scale: StandardScaler + RidgeCV / LogisticRegression(max_iter=1000).

Prints a markdown table: test RMSE and R^2 (regression), test accuracy (classification), and
the fit time of each (s, this machine; the first KAN fit includes kanarray's one-off setup).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout's kanarray

KAN_SETTINGS = {
    "regression": {"width": (2,), "grid": 3, "k": 3, "steps": 20, "lamb": 1e-3},
    "classification": {"width": (2,), "grid": 3, "k": 3, "steps": 20, "lamb": 1e-3},
}


def _models(task: str, seed: int) -> dict:
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.linear_model import LogisticRegression, RidgeCV
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from kanarray.sklearn import KANClassifier, KANRegressor

    mlp = {"hidden_layer_sizes": (64,), "max_iter": 2000, "random_state": seed}
    if task == "regression":
        return {
            "KAN": KANRegressor(seed=seed, **KAN_SETTINGS[task]),
            "MLP": TransformedTargetRegressor(make_pipeline(StandardScaler(), MLPRegressor(**mlp)),
                                              transformer=StandardScaler()),
            "HGB": HistGradientBoostingRegressor(random_state=seed),
            "linear": make_pipeline(StandardScaler(), RidgeCV()),
        }
    return {
        "KAN": KANClassifier(seed=seed, **KAN_SETTINGS[task]),
        "MLP": make_pipeline(StandardScaler(), MLPClassifier(**mlp)),
        "HGB": HistGradientBoostingClassifier(random_state=seed),
        "linear": make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)),
    }


def _datasets():
    from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine

    return [("diabetes", "regression", load_diabetes), ("breast_cancer", "classification", load_breast_cancer),
            ("wine", "classification", load_wine)]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    from sklearn.metrics import accuracy_score, mean_squared_error, r2_score
    from sklearn.model_selection import train_test_split

    print("| data set | model | test RMSE | test R^2 | test accuracy | fit (s) |")
    print("|---|---|---|---|---|---|")
    for name, task, load in _datasets():
        x, y = load(return_X_y=True)
        stratify = y if task == "classification" else None
        x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.25, random_state=args.seed, stratify=stratify)
        for label, model in _models(task, args.seed).items():
            start = time.perf_counter()
            model.fit(x_tr, y_tr)
            seconds = time.perf_counter() - start
            pred = model.predict(x_te)
            if task == "regression":
                rmse = float(np.sqrt(mean_squared_error(y_te, pred)))
                cells = [f"{rmse:.2f}", f"{r2_score(y_te, pred):.3f}", ""]
            else:
                cells = ["", "", f"{accuracy_score(y_te, pred):.3f}"]
            print(" | ".join(["", f"{name} ({x.shape[0]} x {x.shape[1]})", label, *cells, f"{seconds:.2f}", ""]).strip())
            sys.stdout.flush()


if __name__ == "__main__":
    main()
