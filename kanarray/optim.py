"""Optimizers acting on dicts of parameter arrays (updated in place, so the model's live
arrays follow) with the gradient dicts from ``KAN.value_and_grad``."""

from __future__ import annotations

import math

import array_api_compat

__all__ = ["Adam"]


class Adam:
    """Adam (Kingma & Ba, 2015) with bias correction.

    params: name -> array (e.g. ``model.parameters()``); ``step(grads)`` takes the same keys.
    """

    def __init__(self, params: dict, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8):
        if not (lr > 0 and math.isfinite(lr)):
            raise ValueError(f"lr must be a positive finite number, got {lr!r}")
        b1, b2 = betas
        if not (0 <= b1 < 1 and 0 <= b2 < 1):
            raise ValueError(f"betas must lie in [0, 1), got {betas!r}")
        if not eps > 0:
            raise ValueError(f"eps must be positive, got {eps!r}")
        self.params = params
        self.lr, self.betas, self.eps = float(lr), (float(b1), float(b2)), float(eps)
        self.t = 0
        self.xp = {name: array_api_compat.array_namespace(p) for name, p in params.items()}
        self.m = {name: None for name in params}
        self.v = {name: None for name in params}

    def step(self, grads: dict) -> None:
        """One update from ``grads`` (same keys and shapes as the parameters); all gradients are
        checked before any parameter changes."""
        missing = set(self.params) - set(grads)
        if missing:
            raise KeyError(f"gradients missing for {sorted(missing)}")
        for name, p in self.params.items():
            g = grads[name]
            if tuple(g.shape) != tuple(p.shape):
                raise ValueError(f"gradient {name} has shape {tuple(g.shape)}, expected {tuple(p.shape)}")
        self.t += 1
        b1, b2 = self.betas
        c1, c2 = 1 - b1**self.t, 1 - b2**self.t
        for name, p in self.params.items():
            g = grads[name]
            xp = self.xp[name]
            if self.m[name] is None:
                self.m[name] = xp.zeros_like(p)
                self.v[name] = xp.zeros_like(p)
            m = b1 * self.m[name] + (1 - b1) * g
            v = b2 * self.v[name] + (1 - b2) * (g * g)
            self.m[name], self.v[name] = m, v
            p[...] = p - self.lr * (m / c1) / (xp.sqrt(v / c2) + self.eps)
