"""How an edge's spline continues beyond the ends of its grid.

``"spline"`` (pykan's): the B-spline basis runs on over the k extension intervals on each side
and vanishes beyond them.  An input a little outside the range the grid was fitted to meets
polynomial pieces that no sample determined (at a fine grid they swing far within a fraction
of the range), and further out only the base branch is left.

``"linear"``: beyond the interior grid [t_k, t_(G+k)] each spline continues as the straight
line with its value and slope at that end.  Computed as the spline at the input clipped to
the interior, plus the slope times the distance beyond it; the base branch sees the input
itself either way.  Inside the interior grid both modes are the same function.  The slope at
the clipped point is the line's slope, so the x-derivative of the spline kernels evaluated at
the clipped input is already the right one; only the line's term and its coefficient gradient
are added here.  Needs k >= 2, where splines have a continuous slope at the ends.

Shapes: batch B, inputs n, outputs m, nb = G + k bases per input.
"""

from __future__ import annotations

import numpy as np

from . import spline
from ._namespace import is_numpy_namespace

__all__ = ["MODES", "check_mode", "Tails", "tails", "continued_edge_forward", "interior_ends", "end_slopes",
           "extended_basis"]

MODES = ("spline", "linear")


def check_mode(mode, k: int) -> str:
    """``mode`` if it is one of MODES and fits the spline order k, else ValueError."""
    if mode not in MODES:
        raise ValueError(f"extrapolate must be one of {MODES}, got {mode!r}")
    if mode == "linear" and k < 2:
        raise ValueError(f"extrapolate='linear' needs spline order k >= 2 (a continuous slope at the grid's ends), "
                         f"got k={k}")
    return mode


class Tails:
    """The parts of a batch beyond the interior grid.

    clipped (B, n): the inputs clipped to the interior [lo, hi]; below (B, n): min(x - lo, 0);
    above (B, n): max(x - hi, 0); d_lo, d_hi (n, nb): the bases' slopes at lo and hi."""

    __slots__ = ("clipped", "below", "above", "d_lo", "d_hi")

    def __init__(self, clipped, below, above, d_lo, d_hi):
        self.clipped, self.below, self.above, self.d_lo, self.d_hi = clipped, below, above, d_lo, d_hi

    def slopes(self, weight, xp):
        """weight (n, m, nb) -> the splines' slopes at lo and at hi, each (n, m)."""
        return _slopes(weight, self.d_lo, self.d_hi, xp)

    def summed(self, weight, xp):
        """The lines' contribution to y[b, o] = sum_i (lines of edge i -> o): (B, m)."""
        s_lo, s_hi = self.slopes(weight, xp)
        return xp.matmul(self.below, s_lo) + xp.matmul(self.above, s_hi)

    def per_edge(self, coef, xp):
        """The lines' contribution to each edge's spline (unweighted coef (n, m, nb)): (n, B, m)."""
        s_lo, s_hi = self.slopes(coef, xp)
        below, above = xp.permute_dims(self.below, (1, 0)), xp.permute_dims(self.above, (1, 0))
        return below[:, :, None] * s_lo[:, None, :] + above[:, :, None] * s_hi[:, None, :]

    def weight_grad(self, gy, xp):
        """dL/dweight (n, m, nb) of ``summed`` for gy = dL/dy (B, m)."""
        return self.onto_bases(xp.matmul(xp.matrix_transpose(self.below), gy),
                                xp.matmul(xp.matrix_transpose(self.above), gy))

    def coef_grad_edges(self, g, xp):
        """dL/dcoef (n, m, nb) of ``per_edge`` for g = dL/d(edge spline) (n, B, m)."""
        below, above = xp.permute_dims(self.below, (1, 0)), xp.permute_dims(self.above, (1, 0))
        return self.onto_bases(xp.matmul(below[:, None, :], g)[:, 0, :], xp.matmul(above[:, None, :], g)[:, 0, :])

    def onto_bases(self, g_lo, g_hi):
        """dL/d(slope at lo), dL/d(slope at hi), each (n, m) -> dL/dcoef (n, m, nb)."""
        return g_lo[:, :, None] * self.d_lo[:, None, :] + g_hi[:, :, None] * self.d_hi[:, None, :]


def interior_ends(grid, k: int):
    """(lo, hi), each (n,): the ends t_k and t_(G+k) of the interior grid of knots grid (n, G + 2k + 1)."""
    return grid[:, k], grid[:, grid.shape[1] - k - 1]


def _end_derivatives(grid, k: int, xp, memo=None):
    """The bases' slopes at the interior ends, (d_lo, d_hi) each (n, nb).  memo: a dict the caller
    keeps; on NumPy the result is reused while the grid's values stay the same (checked each call,
    so editing the grid in place is safe)."""
    numpy = memo is not None and is_numpy_namespace(xp)
    if numpy:
        hit = memo.get("ends")
        if hit is not None and hit[0].shape == grid.shape and np.array_equal(hit[0], grid):
            return hit[1], hit[2]
    lo, hi = interior_ends(grid, k)
    _, d_ends = spline.basis_with_derivative(xp.stack([lo, hi], axis=0), grid, k, xp=xp)  # (2, n, nb)
    d_lo, d_hi = d_ends[0, ...], d_ends[1, ...]
    if numpy:
        memo["ends"] = (np.array(grid, copy=True), d_lo, d_hi)
    return d_lo, d_hi


def end_slopes(grid, weight, k: int, xp):
    """The splines' slopes at the interior ends: weight (n, m, nb) -> (slope at lo, slope at hi), each (n, m)."""
    return _slopes(weight, *_end_derivatives(grid, k, xp), xp)


def _slopes(weight, d_lo, d_hi, xp):
    return xp.sum(weight * d_lo[:, None, :], axis=2), xp.sum(weight * d_hi[:, None, :], axis=2)


def tails(x, grid, k: int, xp, memo=None) -> Tails:
    """``Tails`` of x (B, n) for a layer with knots grid (n, G + 2k + 1); memo: see ``_end_derivatives``."""
    lo, hi = interior_ends(grid, k)
    clipped = xp.minimum(xp.maximum(x, lo), hi)
    below = xp.minimum(x - lo, xp.zeros_like(x))
    above = xp.maximum(x - hi, xp.zeros_like(x))
    return Tails(clipped, below, above, *_end_derivatives(grid, k, xp, memo))


def continued_edge_forward(kernels, x, grid, coef, k: int, xp, tail=None, *, need_dx: bool, ctx=None):
    """Each edge's spline at x (B, n), continued as lines when ``tail`` (``tails(x, ...)``) is given:
    ``kernels.edge_forward``'s (spl (n, B, m), dspl (n, B, m) or None, ctx).  With a tail the kernels
    run at the clipped input, whose x-derivative is already the line's slope."""
    spl, dspl, ctx = kernels.edge_forward(x if tail is None else tail.clipped, grid, coef, k, need_dx=need_dx, ctx=ctx)
    if tail is not None:
        spl = spl + tail.per_edge(coef, xp)
    return spl, dspl, ctx


def extended_basis(x, grid, k: int, xp):
    """The bases of the linearly continued splines at x (B, n): (B, n, nb), linear in the coefficients
    like ``spline.basis``, which they equal inside the interior grid."""
    t = tails(x, grid, k, xp)
    return (spline.basis(t.clipped, grid, k, xp=xp) + t.below[:, :, None] * t.d_lo[None, :, :]
            + t.above[:, :, None] * t.d_hi[None, :, :])
