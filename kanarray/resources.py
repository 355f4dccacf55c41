"""Memory estimates, checked before allocating: a model, its construction, a forward or
training step on a batch, a refine or grid update, a checkpoint load.

Each estimate is a handful of integer multiplications over the layers' shapes, so checking it
costs nothing next to the work it guards.  ``check`` compares an estimate with the cap,
``limit()``: ``kanarray.config``'s ``max_memory`` (``KANARRAY_MAX_MEMORY``: bytes, or ``auto``
for the machine's physical memory, or ``none`` for no cap), overridable for a block with
``kanarray.config.override(max_memory=...)``.  Over the cap, ``MemoryLimitError`` names the
operation, the estimate and the cap, before anything is allocated.

The estimates are of the arrays an operation holds at its peak, for the dense array-API
path of the generic kernels or the local bases of the NumPy kernels; tests compare them with
tracemalloc's peak.  Shapes per layer: n inputs, m outputs, G intervals, order k,
nb = G + k bases, L = G + 2k + 1 knots; B the batch, S the samples of a refit.
"""

from __future__ import annotations

import functools
import math
import os

from . import config
from ._namespace import is_numpy_namespace
from .backends.numpy import choose_contraction

__all__ = [
    "MemoryLimitError",
    "check",
    "check_forward",
    "checked_batch",
    "construction_bytes",
    "format_bytes",
    "forward_bytes",
    "layer_shapes",
    "limit",
    "model_bytes",
    "physical_memory",
    "refit_bytes",
]

_FALLBACK_MEMORY = 16 * 2**30  # where the OS does not say how much memory there is


class MemoryLimitError(ValueError, MemoryError):
    """An operation whose estimated memory exceeds the cap (``limit()``): raised before it
    allocates anything.  Both a ValueError (bad input) and a MemoryError."""


@functools.lru_cache(maxsize=1)
def physical_memory() -> int:
    """The machine's physical memory in bytes (16 GiB where the OS does not tell)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return _FALLBACK_MEMORY


def limit() -> float:
    """The cap in bytes: ``config.current().max_memory``, or the physical memory when that is
    None (the default); ``math.inf`` means no cap."""
    cap = config.current().max_memory
    return physical_memory() if cap is None else cap


def format_bytes(n: float) -> str:
    if n == math.inf:
        return "unlimited"
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{int(n)} bytes"


def check(what: str, nbytes: int) -> None:
    """MemoryLimitError if ``nbytes`` (the estimate for ``what``, e.g. "KAN(width=[1, 1],
    grid=100000)") exceeds the cap."""
    cap = limit()
    if nbytes > cap:
        raise MemoryLimitError(
            f"{what} would need about {format_bytes(nbytes)} of memory, more than the limit of {format_bytes(cap)} "
            "(KANARRAY_MAX_MEMORY, the physical memory by default; raise it for a block with "
            "kanarray.config.override(max_memory=...) if the machine has the memory)"
        )


def check_forward(layers, batch: int, *, training: bool = False, per_edge: bool | str = False) -> None:
    """``check`` of ``forward_bytes`` for a batch through a stack of layers (the layers' dtype
    and kernels): a forward (or, with training, a value-and-gradient evaluation) of ``batch``
    samples.  A few integer operations per layer; the message is built only on failure."""
    first = layers[0]
    itemsize = first.coef.dtype.itemsize if hasattr(first.coef.dtype, "itemsize") else _itemsize(first.coef.dtype)
    nbytes = forward_bytes(layer_shapes(layers), batch, itemsize, training=training, per_edge=per_edge,
                           local_basis=is_numpy_namespace(first.xp))
    if nbytes > limit():
        what = "a training step" if training else "a forward pass"
        check(f"{what} on a batch of {batch} samples through layers {[layer.in_dim for layer in layers]} -> "
              f"{layers[-1].n_nodes}", nbytes)


def checked_batch(layers, x):
    """x (B, n) itself, after ``check_forward(layers, B)``: a plain forward of x fits the cap."""
    check_forward(layers, x.shape[0])
    return x


def _itemsize(dtype) -> int:
    """Bytes per element of a floating dtype of any namespace (array_api_strict's have no itemsize)."""
    return 4 if "32" in str(dtype) else 8


def layer_shapes(layers) -> list:
    """[(n, m, G, k)] of a stack of layers."""
    return [(layer.in_dim, layer.out_dim, layer.num, layer.k) for layer in layers]


def model_bytes(shapes, itemsize: int) -> int:
    """The arrays of a model: per layer grid n L, coef n m nb, scale_base, scale_sp, mask n m
    each, sym_affine 4 n m, bias m, in the model's dtype."""
    return itemsize * sum(n * (G + 2 * k + 1) + n * m * (G + k + 7) + m for n, m, G, k in shapes)


def construction_bytes(shapes, itemsize: int) -> int:
    """``KAN(...)``: the model, plus the peak of the largest layer's initialization, drawn on the
    host in float64: the basis at the G + 1 interior points (G + 1, n, L) through the Cox-de Boor
    recursion (about 6 such arrays alive), its pseudo-inverse (an SVD: about 4 arrays of
    n (G + 1) nb) and the noise and coefficients, 3 arrays of n m (G + 1)."""
    init = max(8 * n * (G + 1) * (6 * (G + 2 * k + 1) + 4 * (G + k) + 3 * m) for n, m, G, k in shapes)
    return model_bytes(shapes, itemsize) + init


def forward_bytes(shapes, batch: int, itemsize: int, *, training: bool = False, per_edge: bool | str = False,
                  local_basis: bool = False) -> int:
    """A forward pass of ``batch`` samples.  Per layer, the bases: on the dense path (generic
    kernels) (B, n, L), of which the Cox-de Boor recursion keeps about 6 arrays alive (8 with the
    x-derivatives a backward needs); with local_basis (the NumPy kernels) the k + 1 non-zero bases
    per input, their columns and derivatives (about 6 arrays of (B, n, k + 1)) and, where the
    kernels contract densely (``choose_contraction``), the basis matrix (B, n nb + 1).  Plus the
    input and output (B, n + m), and with per_edge (the regularized objective, attribution) 6
    arrays of (n, B, m): the edge activations and their derivatives.  A plain forward frees each
    layer's arrays before the next (the largest layer counts); training keeps every layer's for
    the backward (they add up, and the gradients add a model's worth).  per_edge="hidden": the
    per-edge arrays of every layer but the first (``fit``, whose first layer's spread comes from a
    Gram matrix of its basis, ``regularization.GramSpread``, at the cost of a plain step).

    Bytes = itemsize * B * (basis + c_e n m + n + m), basis = c_b n L (dense) or
    6 n (k + 1) + [n nb + 1] (local; 0 with per_edge, whose NumPy pass works interval by
    interval), c_b = 6 (8 training), c_e = 6 with per_edge, else 0."""
    c_basis = 8 if training else 6
    per_layer = []
    for l, (n, m, G, k) in enumerate(shapes):
        edges = per_edge is True or (per_edge == "hidden" and l > 0)
        if local_basis and edges:
            basis = 0  # the NumPy kernels' per-edge pass evaluates the bases interval by interval
        elif local_basis:
            nb = G + k
            basis = 6 * n * (k + 1) + (n * nb + 1 if choose_contraction(batch, n, m, nb, k) == "dense" else 0)
        else:
            basis = c_basis * n * (G + 2 * k + 1)
        per_layer.append(batch * (basis + (6 * n * m if edges else 0) + n + m))
    if training:
        return itemsize * sum(per_layer) + model_bytes(shapes, itemsize)
    return itemsize * max(per_layer)


def refit_bytes(shapes, nums, n_samples: int) -> int:
    """``refine`` (nums: the new G per layer) or ``update_grid`` (the same G): per layer, in
    float64, the dense basis of the N = S + G'(k + 1) points on the new grid and its weighted copy
    (2 arrays of n N nb'), the old spline there (n N m, with the old basis n N nb), the normal
    equations (n nb'^2 and n nb' m) and the new layer, plus the layer's output on the samples.
    The largest layer counts: the layers are refitted one after another."""
    peak = 0
    for (n, m, G, k), new_g in zip(shapes, nums):
        points = n_samples + new_g * (k + 1)
        nb_new, nb_old = new_g + k, G + k
        layer = (n * points * (3 * nb_new + nb_old + 6 * (G + 2 * k + 1) // 2 + 2 * m)
                 + n * nb_new * (2 * nb_new + 2 * m))
        peak = max(peak, 8 * (layer + n_samples * (n + m)))
    return peak
