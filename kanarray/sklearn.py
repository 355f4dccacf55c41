"""scikit-learn estimators around KAN: ``KANRegressor`` and ``KANClassifier``.

They take raw features of any range (``scale_inputs``, on by default, maps each feature's
training range onto the first grid) and, for the regressor, raw targets (``scale_targets``
standardizes them for training; predictions are in the original units).  The fitted KAN is
``model_``: prune it, fix symbolic edges on it, plot it; ``symbolic_formula`` then gives the
formulas in the feature names (``feature_names_in_`` from a DataFrame, else x0, x1, ...) and,
for the regressor, in the original target units.

The network's width is [n_features_in_, *width, n_outputs]: ``width`` lists the hidden layers
only (as MLP's hidden_layer_sizes), the input and output sizes come from the data.  A
classifier has one output (logit) per class, two for a binary problem, trained with
loss="cross_entropy".  Training: ``steps`` steps of ``opt`` (lr, lamb), then, for each grid in
``refine`` (increasing), the model is refined to that grid (``KAN.refine``) and trained
``steps`` steps more.

Pickling follows scikit-learn's convention (``pickle.dumps(estimator)``); the fitted KAN travels
inside it as kanarray checkpoint bytes (``KAN.save``: arrays and a JSON header, no pickle), so
kanarray's own checkpoints stay pickle-free.  ``fit_inputs`` are not kept across a pickle: pass
the samples to plot or prune an unpickled model.

Needs scikit-learn (``pip install kanarray[sklearn]``); ``import kanarray`` does not import this module.
"""

from __future__ import annotations

import keyword
import os
import re
import tempfile

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from .checkpoint import read_model
from .model import KAN

__all__ = ["KANClassifier", "KANRegressor"]


def _model_bytes(model: KAN) -> bytes:
    """The checkpoint of ``model`` (``KAN.save``) as bytes, through a temporary file."""
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "model.kan")
        model.save(path)
        with open(path, "rb") as f:
            return f.read()


def _model_from_bytes(data: bytes) -> KAN:
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "model.kan")
        with open(path, "wb") as f:
            f.write(data)
        return read_model(path, build=KAN.from_layers)


def _identifier(name, index: int) -> str:
    """A feature name as a Python identifier (formulas need them): other characters become _."""
    text = re.sub(r"\W", "_", str(name))
    if not text or text[0].isdigit() or keyword.iskeyword(text):
        text = f"x_{text}" if text else f"x{index}"
    return text


def variable_names(feature_names, n: int) -> list:
    """n distinct identifiers: the feature names made identifiers (``_identifier``), else x0, ..., x{n-1}."""
    if feature_names is None:
        return [f"x{i}" for i in range(n)]
    names, seen = [], set()
    for i, name in enumerate(feature_names):
        text = _identifier(name, i)
        while text in seen:
            text = f"{text}_{i}"
        seen.add(text)
        names.append(text)
    return names


class _KANEstimator(BaseEstimator):
    """What the two estimators share: the parameters, the network's construction and training,
    the pickled form and the formulas.  Subclasses give ``_loss`` and the target encoding."""

    _loss = "mse"

    def __init__(self, width=(5,), grid=5, k=3, *, steps=50, opt="lbfgs", lr=None, lamb=0.0, refine=(),
                 scale_inputs=True, update_grid=True, seed=0, dtype="float64"):
        self.width = width
        self.grid = grid
        self.k = k
        self.steps = steps
        self.opt = opt
        self.lr = lr
        self.lamb = lamb
        self.refine = refine
        self.scale_inputs = scale_inputs
        self.update_grid = update_grid
        self.seed = seed
        self.dtype = dtype

    # -- construction and training -----------------------------------------------------------
    def _hidden(self) -> list:
        hidden = [self.width] if isinstance(self.width, (int, np.integer)) else list(self.width)
        if any(isinstance(h, bool) or not isinstance(h, (int, np.integer)) or h < 1 for h in hidden):
            raise ValueError(f"width must list the hidden layer sizes (positive integers), e.g. (5,), "
                             f"got {self.width!r}")
        return [int(h) for h in hidden]

    def _schedule(self) -> list:
        grids = [self.refine] if isinstance(self.refine, (int, np.integer)) else list(self.refine or ())
        previous = self.grid
        for g in grids:
            if isinstance(g, bool) or not isinstance(g, (int, np.integer)) or g <= previous:
                raise ValueError(f"refine must list increasing grid sizes above grid={self.grid}, "
                                 f"got {self.refine!r}")
            previous = g
        return [int(g) for g in grids]

    def _train(self, x: np.ndarray, y: np.ndarray, n_outputs: int) -> None:
        """Build and train ``model_`` on x (N, d) float64 and encoded targets y."""
        if x.shape[0] < 2:
            raise ValueError(f"{type(self).__name__} needs at least 2 samples, got n_samples = {x.shape[0]}")
        schedule = self._schedule()
        model = KAN([x.shape[1], *self._hidden(), n_outputs], grid=self.grid, k=self.k, seed=self.seed,
                    dtype=self.dtype)
        if self.scale_inputs:
            model.scale_inputs(x.min(axis=0), x.max(axis=0))
        names = getattr(self, "feature_names_in_", None)
        if names is not None:  # a DataFrame's columns name the plot's nodes (and predict's CSV columns)
            model.input_names = [str(name) for name in names]
        settings = {"steps": self.steps, "opt": self.opt, "lr": self.lr, "lamb": self.lamb, "loss": self._loss,
                    "update_grid": self.update_grid, "progress": False}
        x_model = x.astype(model.dtype_name, copy=False)
        model.fit(x_model, y, **settings)
        for g in schedule:
            model = model.refine(g)
            model.fit(x_model, y, **settings)
        self.model_ = model

    def _outputs(self, x) -> np.ndarray:
        """The model's outputs (N, n_outputs) as float64 on validated features x."""
        check_is_fitted(self, "model_")
        x = validate_data(self, x, reset=False, dtype=np.float64)
        return np.asarray(self.model_(x.astype(self.model_.dtype_name, copy=False)), dtype=np.float64)

    # -- the formula in the features' names -------------------------------------------------------
    def variable_names(self) -> list:
        """The formula symbols: ``feature_names_in_`` made identifiers, else x0, x1, ..."""
        check_is_fitted(self, "model_")
        return variable_names(getattr(self, "feature_names_in_", None), self.n_features_in_)

    def symbolic_formula(self, digits: int = 4, simplify: bool = True, *, on_mismatch: str = "warn") -> list:
        """``KAN.symbolic_formula`` of ``model_`` (fix its edges first: ``model_.auto_symbolic()``) in
        ``variable_names()``; one sympy expression per output (the regressor's in the target's units)."""
        check_is_fitted(self, "model_")
        exprs = self.model_.symbolic_formula(self.variable_names(), digits, simplify, on_mismatch=on_mismatch)
        return self._formula_units(exprs, digits)

    def _formula_units(self, exprs: list, digits: int) -> list:
        return exprs

    # -- pickling: the KAN as checkpoint bytes ---------------------------------------------------
    def __getstate__(self):
        state = super().__getstate__()
        if "model_" in state:
            state = dict(state)
            model = state.pop("model_")
            state["_model_checkpoint"] = _model_bytes(model)
            state["_model_task"] = model.task
        return state

    def __setstate__(self, state):
        state = dict(state)
        data = state.pop("_model_checkpoint", None)
        task = state.pop("_model_task", None)
        super().__setstate__(state)
        if data is not None:
            self.model_ = _model_from_bytes(data)
            self.model_.task = task


class KANRegressor(RegressorMixin, _KANEstimator):
    """A KAN regressor (mse): y (N,) or (N, m).  See the module docstring for the parameters;
    scale_targets standardizes y for training (predictions are in y's units).

    Attributes after fit: model_ (the KAN), n_features_in_, feature_names_in_ (DataFrames),
    target_mean_, target_scale_ ((m,) the standardization, zeros and ones without it)."""

    _loss = "mse"

    def __init__(self, width=(5,), grid=5, k=3, *, steps=50, opt="lbfgs", lr=None, lamb=0.0, refine=(),
                 scale_inputs=True, scale_targets=True, update_grid=True, seed=0, dtype="float64"):
        super().__init__(width, grid, k, steps=steps, opt=opt, lr=lr, lamb=lamb, refine=refine,
                         scale_inputs=scale_inputs, update_grid=update_grid, seed=seed, dtype=dtype)
        self.scale_targets = scale_targets

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True  # y (N, m): one output per column
        return tags

    def fit(self, X, y):
        """Train on X (N, d) and y (N,) or (N, m); returns self."""
        x, y = validate_data(self, X, y, dtype=np.float64, y_numeric=True, multi_output=True)
        y = np.asarray(y, dtype=np.float64)
        self._single_output = y.ndim == 1
        y2 = y.reshape(-1, 1) if y.ndim == 1 else y
        mean, scale = np.zeros(y2.shape[1]), np.ones(y2.shape[1])
        if self.scale_targets:
            mean, spread = y2.mean(axis=0), y2.std(axis=0)
            scale = np.where(spread > 0, spread, 1.0)
        self._train(x, ((y2 - mean) / scale), y2.shape[1])
        self.target_mean_, self.target_scale_ = mean, scale
        return self

    def predict(self, X):
        """Predictions (N,) for a 1-d y, else (N, m), in y's units."""
        out = self._outputs(X) * self.target_scale_ + self.target_mean_
        return out[:, 0] if self._single_output else out

    def _formula_units(self, exprs: list, digits: int) -> list:
        import sympy

        def in_units(expr, scale, mean):
            if (scale, mean) == (1.0, 0.0):
                return expr
            expr = sympy.expand(float(scale) * expr + float(mean))
            return expr.xreplace({n: sympy.Float(round(float(n), digits)) for n in expr.atoms(sympy.Float)})

        return [in_units(e, s, m) for e, s, m in zip(exprs, self.target_scale_, self.target_mean_)]


class KANClassifier(ClassifierMixin, _KANEstimator):
    """A KAN classifier (softmax cross-entropy, one output per class, two for a binary problem).
    See the module docstring for the parameters.

    Attributes after fit: model_ (the KAN; its outputs are the logits of ``classes_`` in order),
    classes_, n_features_in_, feature_names_in_ (DataFrames)."""

    _loss = "cross_entropy"

    def fit(self, X, y):
        """Train on X (N, d) and labels y (N,) of at least two classes; returns self."""
        x, y = validate_data(self, X, y, dtype=np.float64)
        y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        self.classes_, encoded = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"KANClassifier needs samples of at least 2 classes; got 1 class ({self.classes_[0]!r})")
        self._train(x, encoded.astype(np.int64), len(self.classes_))
        return self

    def predict_proba(self, X):
        """Class probabilities (N, n_classes) in the order of ``classes_``."""
        logits = self._outputs(X)
        shifted = logits - logits.max(axis=1, keepdims=True)
        exp = np.exp(shifted)
        return exp / exp.sum(axis=1, keepdims=True)

    def predict(self, X):
        """Labels (N,) from ``classes_``: the largest logit."""
        labels = np.argmax(self._outputs(X), axis=1)  # checks first that the estimator is fitted
        return self.classes_[labels]
