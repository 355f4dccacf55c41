"""A multilayer perceptron with hand-written gradients: the baseline of the paper's comparisons.

It shares kanarray's machinery (array-API namespaces, the optimizers in ``kanarray.optim``,
pykan's LBFGS settings) so that a KAN and an MLP are trained the same way, e.g. in the
continual-learning reproduction.
"""

from __future__ import annotations

import math

import numpy as np

from ._checks import as_batch, check_positive_int, check_width
from ._namespace import dtype_of, resolve_backend
from .base import base_with_grad

__all__ = ["MLP"]

ACTIVATIONS = ("silu", "tanh")


class MLP:
    """Dense layers h_{l+1} = act(h_l W_l + b_l), no activation after the last.

    width: layer sizes, e.g. [1, 32, 32, 1]; activation: "silu" or "tanh"; the weights are
    drawn like PyTorch's nn.Linear (uniform in +-1/sqrt(fan_in)) from ``seed``.
    ``model(x)`` maps (batch, width[0]) -> (batch, width[-1]).
    """

    def __init__(self, width, *, activation: str = "silu", seed: int = 0, dtype: str = "float64",
                 backend="numpy"):
        width = check_width(width)
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
        self.width, self.activation = width, activation
        self.xp = resolve_backend(backend)
        self.dtype = dtype_of(self.xp, str(dtype))
        rng = np.random.default_rng(seed)
        self._params = {}
        for l, (n_in, n_out) in enumerate(zip(width[:-1], width[1:])):
            bound = 1 / math.sqrt(n_in)
            self._params[f"layers.{l}.weight"] = self.xp.asarray(rng.uniform(-bound, bound, (n_in, n_out)),
                                                                 dtype=self.dtype)
            self._params[f"layers.{l}.bias"] = self.xp.asarray(rng.uniform(-bound, bound, (n_out,)),
                                                               dtype=self.dtype)

    def parameters(self) -> dict:
        """The trainable arrays by name ("layers.0.weight" (n_in, n_out), "layers.0.bias" (n_out,)); live."""
        return self._params

    def num_parameters(self) -> int:
        return sum(math.prod(a.shape) for a in self._params.values())

    def _act(self, z, need_grad: bool):
        xp = self.xp
        if self.activation == "tanh":
            a = xp.tanh(z)
            return a, (1 - a * a if need_grad else None)
        return base_with_grad("silu", z, xp, need_grad=need_grad)

    def _forward(self, x, need_cache: bool):
        h, caches = x, []
        n = len(self.width) - 1
        for l in range(n):
            z = h @ self._params[f"layers.{l}.weight"] + self._params[f"layers.{l}.bias"]
            if l < n - 1:
                out, dact = self._act(z, need_cache)
            else:
                out, dact = z, None
            if need_cache:
                caches.append((h, dact))
            h = out
        return h, caches

    def prepare_inputs(self, x):
        """x (batch, width[0]) validated (ValueError) into the model's namespace and dtype."""
        return as_batch(x, xp=self.xp, dtype=self.dtype, n_features=self.width[0], name="x")

    def forward(self, x):
        return self._forward(self.prepare_inputs(x), need_cache=False)[0]

    # input derivatives (``kanarray.jets``), as on a KAN
    def derivatives(self, x, order: int = 2, mixed: bool = False):
        from . import jets

        return jets.derivatives(self, x, order, mixed)

    def derivatives_vjp(self, x, gu=None, gdu=None, gd2u=None, *, order: int = 2, mixed: bool = False):
        from . import jets

        return jets.derivatives_vjp(self, x, gu, gdu, gd2u, order=order, mixed=mixed)

    __call__ = forward

    def value_and_grad(self, x, y):
        """Mean squared error over every output and its gradients (dict like ``parameters()``).

        x: (batch, width[0]); y: (batch, width[-1]).
        """
        xp = self.xp
        x = as_batch(x, xp=xp, dtype=self.dtype, n_features=self.width[0], name="x")
        y = as_batch(y, xp=xp, dtype=self.dtype, n_features=self.width[-1], name="y")
        if y.shape[0] != x.shape[0]:
            raise ValueError(f"y must have {x.shape[0]} rows to match x, got {y.shape[0]}")
        out, caches = self._forward(x, need_cache=True)
        diff = out - y
        loss = xp.mean(diff * diff)
        g = 2 * diff / math.prod(diff.shape)
        grads = {}
        for l in reversed(range(len(caches))):
            h, dact = caches[l]
            if dact is not None:
                g = g * dact
            grads[f"layers.{l}.weight"] = h.T @ g
            grads[f"layers.{l}.bias"] = xp.sum(g, axis=0)
            if l:
                g = g @ self._params[f"layers.{l}.weight"].T
        return loss, grads

    def fit(self, x, y=None, *, steps: int = 100, opt: str = "lbfgs", lr: float | None = None) -> list:
        """Full-batch training in place; returns the training RMSE after each step, or, for a physics
        problem as x (``kanarray.pde.Problem``, y None), its loss after each step.

        opt: "lbfgs" (pykan's settings, as ``KAN.fit``) or "adam" (lr 1e-3 by default)."""
        from .optim import LBFGS, Adam

        steps = check_positive_int(steps, "steps")
        if opt not in ("lbfgs", "adam"):
            raise ValueError(f"opt must be 'lbfgs' or 'adam', got {opt!r}")
        problem = x if getattr(x, "is_physics_problem", False) else None
        if problem is not None:
            if y is not None:
                raise ValueError("fit got a physics problem and y: the problem's terms are the targets")
            problem.check_model(self)
            objective = lambda: problem.value_and_grad(self)  # noqa: E731
        else:
            if y is None:
                raise ValueError("fit needs targets y (or a physics problem as x)")
            x = as_batch(x, xp=self.xp, dtype=self.dtype, n_features=self.width[0], name="x")
            y = as_batch(y, xp=self.xp, dtype=self.dtype, n_features=self.width[-1], name="y")
            objective = lambda: self.value_and_grad(x, y)  # noqa: E731
        if opt == "lbfgs":
            optimizer = LBFGS(self._params, lr=1.0 if lr is None else lr, history_size=10, max_iter=20,
                              tolerance_grad=1e-32, tolerance_change=1e-32, tolerance_ys=1e-32)
        else:
            optimizer = Adam(self._params, lr=1e-3 if lr is None else lr)
        losses = []
        for _ in range(steps):
            if opt == "lbfgs":
                optimizer.step(objective)
            else:
                optimizer.step(objective()[1])
            if problem is not None:
                losses.append(problem.loss(self))
            else:
                diff = self._forward(x, need_cache=False)[0] - y  # the loss only: no backward pass
                losses.append(math.sqrt(float(self.xp.mean(diff * diff))))
        return losses

    def __repr__(self) -> str:
        return f"MLP(width={self.width}, activation={self.activation!r})"
