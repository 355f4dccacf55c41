"""Same function as pykan (PyPI 0.2.8) given the same arrays: skipped where pykan and torch
are not installed (they are no dependency; ``pip install ".[bench]"`` brings them)."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import random_model


@pytest.mark.parametrize("k", [1, 3])
def test_forward_equals_pykan(tmp_path, k):
    torch = pytest.importorskip("torch")
    pykan = pytest.importorskip("kan")
    model = random_model("numpy", [3, 4, 2], grid=5, k=k, seed=k)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        peer = pykan.KAN([3, 4, 2], grid=5, k=k, seed=0, auto_save=False, ckpt_path=str(tmp_path), device="cpu")
        peer.speed()
        for l, (ours, theirs) in enumerate(zip(model.layers, peer.act_fun)):
            for name in ("grid", "coef", "scale_base", "scale_sp", "mask"):
                getattr(theirs, name).data = torch.from_numpy(np.array(getattr(ours, name)))
            peer.node_bias[l].data = torch.from_numpy(np.array(ours.bias))
        x = np.random.default_rng(0).uniform(-2, 2, (300, 3))  # inside and outside the grid
        expected = peer(torch.from_numpy(x)).detach().numpy()
    finally:
        torch.set_default_dtype(previous)
    np.testing.assert_allclose(model(x), expected, atol=1e-12, rtol=0)
