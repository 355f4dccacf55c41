"""``InputMap``: the affine map x' = (x - shift) * scale of a model's raw inputs
(``KAN.scale_inputs``), kept on the host in float64 and in the model's namespace."""

from __future__ import annotations

import numpy as np

from ._namespace import from_host_like, namespace_of, to_numpy

__all__ = ["InputMap", "host_vector"]


def host_vector(value, n: int, name: str) -> np.ndarray:
    """value as a NumPy float64 vector of shape (n,), finite; else ValueError."""
    if namespace_of(value) is not None:
        value = to_numpy(value)
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be {n} real numbers (one per input, shape ({n},)), got {value!r}") from None
    if arr.dtype.kind not in "iuf":
        raise ValueError(f"{name} must be real numbers (one per input, shape ({n},)), got dtype {arr.dtype}")
    if arr.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), one value per input, got shape {arr.shape}")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must hold finite numbers, got {arr.tolist()}")
    return arr


class InputMap:
    """x' = (x - shift) * scale for inputs (B, n).

    shift, scale: (n,) numbers, kept as host float64 copies (checked: finite, scale > 0);
    ``shift_x`` and ``scale_x`` are their copies in namespace xp with the dtype and device of
    ``like`` (an array of the model, e.g. its first layer's grid)."""

    def __init__(self, shift, scale, n: int, xp, like):
        shift, scale = host_vector(shift, n, "shift").copy(), host_vector(scale, n, "scale").copy()
        if not np.all(scale > 0):
            raise ValueError(f"input scales must be positive, got {scale.tolist()}")
        self.shift, self.scale = shift, scale
        self.shift_x, self.scale_x = from_host_like(xp, shift, like), from_host_like(xp, scale, like)

    @staticmethod
    def onto(lo, hi, target, n: int) -> tuple:
        """(shift, scale) host float64 (n,) of the map taking [lo_i, hi_i] onto target =
        (g_lo, g_hi); a constant column gets scale 1 and the centre of the target.  ValueError
        for wrong shapes, non-finite values, lo > hi, or ranges float64 cannot map."""
        lo, hi = host_vector(lo, n, "lo"), host_vector(hi, n, "hi")
        g_lo, g_hi = target
        bad = np.nonzero(lo > hi)[0]
        if bad.size:
            raise ValueError(f"lo must be <= hi for every input, but inputs {bad.tolist()} have lo > hi "
                             f"(lo {lo[bad].tolist()}, hi {hi[bad].tolist()})")
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            span = hi - lo
            scale = np.where(span > 0, (g_hi - g_lo) / np.where(span > 0, span, 1.0), 1.0)
            shift = (0.5 * lo + 0.5 * hi) - 0.5 * (g_lo + g_hi) / scale
        if not (np.all(np.isfinite(scale)) and np.all(scale > 0) and np.all(np.isfinite(shift))):
            raise ValueError(f"the ranges [lo, hi] = {np.stack([lo, hi], axis=1).tolist()} cannot be mapped "
                             f"onto the grid range {(g_lo, g_hi)} in float64 (too wide or too narrow)")
        return shift, scale

    def apply(self, x):
        """x (B, n) -> (x - shift) * scale."""
        return (x - self.shift_x) * self.scale_x

    def undo(self, x):
        """The raw inputs of mapped inputs x (B, n)."""
        return x / self.scale_x + self.shift_x

    def host(self) -> tuple:
        """(shift, scale): NumPy float64 copies."""
        return self.shift.copy(), self.scale.copy()

    def moved(self, xp, like) -> "InputMap":
        return InputMap(self.shift, self.scale, self.shift.shape[0], xp, like)
