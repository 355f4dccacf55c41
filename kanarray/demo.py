"""The demo: fit exp(sin(pi x) + y^2) on [-1, 1]^2 with a [2, 5, 1] KAN (the paper's hello-KAN)."""

from __future__ import annotations

import time

import numpy as np

from .model import KAN
from .optim import Adam

__all__ = ["target", "run_demo"]


def target(x):
    """exp(sin(pi x0) + x1^2): (batch, 2) -> (batch, 1)."""
    return np.exp(np.sin(np.pi * x[:, :1]) + x[:, 1:2] ** 2)


def _rmse(model, x, y) -> float:
    return float(np.sqrt(np.mean((model(x) - y) ** 2)))


def run_demo(*, steps: int = 2000, lr: float = 0.01, seed: int = 0, n_train: int = 1000, n_test: int = 1000,
             report_every: int = 500, echo=print) -> dict:
    """Train and evaluate; returns {'train_rmse', 'test_rmse', 'initial_test_rmse', 'seconds', 'model'}."""
    rng = np.random.default_rng(seed)
    x_train = rng.uniform(-1, 1, (n_train, 2))
    x_test = rng.uniform(-1, 1, (n_test, 2))
    y_train, y_test = target(x_train), target(x_test)
    model = KAN([2, 5, 1], grid=5, k=3, seed=seed)
    opt = Adam(model.parameters(), lr=lr)
    initial = _rmse(model, x_test, y_test)
    echo(f"kanarray demo: fitting exp(sin(pi x) + y^2) with {model}")
    echo(f"{model.num_parameters()} parameters, {n_train} training and {n_test} test samples, Adam lr={lr}")
    echo(f"{'step':>6} {'train RMSE':>12}")
    start = time.perf_counter()
    for step in range(1, steps + 1):
        loss, grads = model.value_and_grad(x_train, y_train)
        opt.step(grads)
        if report_every and (step % report_every == 0 or step == 1):
            echo(f"{step:>6} {float(loss) ** 0.5:>12.3e}")
    seconds = time.perf_counter() - start
    result = dict(
        train_rmse=_rmse(model, x_train, y_train),
        test_rmse=_rmse(model, x_test, y_test),
        initial_test_rmse=initial,
        seconds=seconds,
        model=model,
    )
    echo(f"test RMSE {initial:.3e} -> {result['test_rmse']:.3e} in {steps} steps ({seconds:.1f} s, "
         f"{1e3 * seconds / max(steps, 1):.2f} ms/step)")
    return result
