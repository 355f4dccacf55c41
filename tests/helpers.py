"""Random models with everything switched on: non-uniform grids, masks, biases, scales."""

from __future__ import annotations

import numpy as np

import kanarray as ka
from kanarray._namespace import to_numpy


def perturb(model, seed: int = 0, *, masks: bool = True):
    """Give every layer non-uniform (still sorted) knots, random biases and scales, and a masked edge."""
    rng = np.random.default_rng(seed)
    xp = model.xp
    for layer in model.layers:
        grid = np.array(to_numpy(layer.grid), dtype=np.float64)
        h = grid[0, 1] - grid[0, 0]
        grid = np.sort(grid + rng.uniform(-0.3 * h, 0.3 * h, grid.shape), axis=1)
        layer.grid[...] = xp.asarray(grid, dtype=model.dtype)
        coef = rng.normal(scale=0.5, size=tuple(layer.coef.shape))
        layer.coef[...] = xp.asarray(coef, dtype=model.dtype)
        layer.bias[...] = xp.asarray(rng.normal(size=tuple(layer.bias.shape)), dtype=model.dtype)
        layer.scale_sp[...] = xp.asarray(rng.uniform(0.5, 1.5, tuple(layer.scale_sp.shape)), dtype=model.dtype)
        if masks and layer.in_dim * layer.out_dim > 1:
            mask = np.ones(tuple(layer.mask.shape))
            mask[rng.integers(layer.in_dim), rng.integers(layer.out_dim)] = 0
            layer.mask[...] = xp.asarray(mask, dtype=model.dtype)
    return model


def random_model(backend, width, *, grid=4, k=3, base_fun="silu", seed=0, dtype="float64"):
    model = ka.KAN(width, grid=grid, k=k, base_fun=base_fun, seed=seed, dtype=dtype, backend=backend)
    return perturb(model, seed)


def host(a):
    return np.asarray(to_numpy(a))
