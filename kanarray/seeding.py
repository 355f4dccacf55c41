"""The random streams of the initialization: kanarray's own, or pykan's (torch's).

``init="kanarray"`` (the default) draws with NumPy's ``default_rng(seed)``.  ``init="pykan"``
reproduces what pykan 0.2.8 draws after ``torch.manual_seed(seed)`` with torch's default
dtype float64: torch's CPU generator is the 32-bit Mersenne Twister seeded with the seed's
low 32 bits (``init_genrand``), and each float64 of ``torch.rand`` takes the low 53 bits of
two consecutive 32-bit outputs (the first one high), times 2**-53, in C order.  With it a
model built with the same seed starts from pykan's numbers (its ``KAN(..., seed=s)`` after
``torch.set_default_dtype(torch.float64)``); no torch is needed.
"""

from __future__ import annotations

import numpy as np

__all__ = ["INITS", "initial_rng", "TorchStream"]

INITS = ("kanarray", "pykan")
_MT_N = 624


def _init_genrand(seed: int) -> np.ndarray:
    """The Mersenne Twister's key for a 32-bit seed (the reference ``init_genrand``)."""
    key = np.empty(_MT_N, dtype=np.uint32)
    key[0] = seed & 0xFFFFFFFF
    for i in range(1, _MT_N):
        prev = int(key[i - 1])
        key[i] = (1812433253 * (prev ^ (prev >> 30)) + i) & 0xFFFFFFFF
    return key


class TorchStream:
    """``random(shape)`` -> float64 array: the numbers ``torch.rand(*shape, dtype=torch.float64)``
    draws on the CPU after ``torch.manual_seed(seed)``, call after call."""

    def __init__(self, seed: int):
        self._bits = np.random.MT19937(0)
        self._bits.state = {"bit_generator": "MT19937", "state": {"key": _init_genrand(int(seed)), "pos": _MT_N}}

    def random(self, shape) -> np.ndarray:
        count = int(np.prod(shape))
        raw = self._bits.random_raw(2 * count).astype(np.uint64)
        words = (raw[0::2] << np.uint64(32)) | raw[1::2]
        return ((words & np.uint64(2**53 - 1)).astype(np.float64) * 2.0**-53).reshape(shape)


def initial_rng(seed, init: str):
    """The generator ``KANLayer.initialize`` draws from (anything with ``random(shape)``)."""
    if init not in INITS:
        raise ValueError(f"init must be one of {list(INITS)} (kanarray's NumPy stream or pykan's torch stream), "
                         f"got {init!r}")
    if init == "kanarray":
        return np.random.default_rng(seed)
    return TorchStream(int(np.random.default_rng().integers(2**32)) if seed is None else seed)
