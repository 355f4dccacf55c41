"""Changing a layer's grid while keeping its edge functions: adaptation to samples
(``update_layer_grid``, pykan's ``update_grid_from_samples``) and extension to a finer grid
(``refine_layer``, pykan's ``refine``); ``adapt_grids`` and ``refine`` do it for a whole model,
``update_grid`` and ``refine_model`` check ``KAN.update_grid``'s and ``KAN.refine``'s arguments
first (with comm: on every rank, agreed before any collective; see ``kanarray.distributed``).

Both refit the spline coefficients by weighted least squares against the old spline, on
two kinds of points: the samples (weight 1 each), and a sweep of k + 1 points inside every
interval of the new grid (small total weight, 1% of the samples').  The sweep makes the
system full rank whatever the samples are (duplicates, empty intervals, fewer samples than
bases), so the solve never fails, and it keeps the old function where no samples fall.
The normal equations are accumulated and solved in float64 with a tiny ridge, on any
backend, and the result is cast back to the layer's dtype.
"""

from __future__ import annotations

from . import resources, spline, stack
from ._checks import check_grid, check_grid_range, check_number
from ._namespace import device_of
from .backends import get_kernels
from .distributed import agreed_call, as_communicator, guarded_call
from .extrapolation import continued_edge_forward, tails
from .layer import KANLayer

__all__ = ["adaptive_interior", "refined_interior", "fit_coef", "update_layer_grid", "refine_layer", "adapt_grids",
           "refine", "refit_bytes", "update_grid", "refine_model"]

GRID_EPS = 0.02
_SWEEP_SHARE = 0.01
MIN_SPAN = 1e-3
HIDDEN_RELATIVE_SPAN = 0.05
_RIDGE = 1e-12


def _device(a):
    return device_of(a)


def adaptive_interior(x_sorted, num: int, *, grid_eps: float = GRID_EPS, relative_floor: float = 0.0,
                      margin: float = 0.0, xp):
    """pykan's sample grid: order statistics mixed with a uniform grid over the samples' range.

    margin > 0 moves each end knot out by that fraction of its interval (pykan: 0): inputs a
    little beyond the samples' range then fall in an interval that samples constrain, instead of
    in the extension intervals, whose polynomial pieces no sample determines.

    x_sorted: (S, n) sorted along axis 0 -> (n, num + 1).  A row whose samples span less than
    ``MIN_SPAN * max(1, |x|)`` (a constant input, or a hidden node that has died) gets a
    uniform grid of that span around its samples instead: knots squeezed onto a range of
    rounding size would make the edge function arbitrarily steep and training ill-conditioned.
    """
    S = x_sorted.shape[0]
    ids = [int(S / num * i) for i in range(num)] + [S - 1]
    adaptive = xp.permute_dims(xp.take(x_sorted, xp.asarray(ids, device=_device(x_sorted)), axis=0), (1, 0))
    lo, hi = adaptive[:, :1], adaptive[:, -1:]
    steps = xp.arange(num + 1, dtype=x_sorted.dtype, device=_device(x_sorted))[None, :]
    uniform = lo + (hi - lo) / num * steps
    grid = grid_eps * uniform + (1 - grid_eps) * adaptive
    if margin:
        grid = xp.concat([grid[:, :1] - margin * (grid[:, 1:2] - grid[:, :1]), grid[:, 1:-1],
                          grid[:, -1:] + margin * (grid[:, -1:] - grid[:, -2:-1])], axis=1)
    scale = xp.maximum(xp.maximum(xp.abs(lo), xp.abs(hi)), xp.ones_like(lo))
    min_span = MIN_SPAN * scale
    if relative_floor:
        min_span = xp.maximum(min_span, relative_floor * xp.max(hi - lo))
    narrow = (hi - lo) < min_span
    centre = (lo + hi) / 2
    widened = centre - min_span / 2 + min_span / num * steps
    return xp.where(narrow, widened, grid)


def refined_interior(old_interior, num: int, *, xp):
    """Knots of a finer (or coarser) grid at equally spaced positions along the old knots,
    linearly interpolated, so an adapted grid keeps its shape: (n, G_old + 1) -> (n, num + 1)."""
    g_old = old_interior.shape[1] - 1
    pos = [g_old * i / num for i in range(num + 1)]
    left = [min(int(p), g_old - 1) for p in pos]
    dev = _device(old_interior)
    frac = xp.asarray([p - j for p, j in zip(pos, left)], dtype=old_interior.dtype, device=dev)
    lo = xp.take(old_interior, xp.asarray(left, device=dev), axis=1)
    hi = xp.take(old_interior, xp.asarray([j + 1 for j in left], device=dev), axis=1)
    return lo + frac[None, :] * (hi - lo)


def _cover(interior, samples, xp, comm=None):
    """Move the end knots out to the samples' range where samples lie beyond them: a finer
    grid has narrower extension intervals, whose incomplete bases could not follow the old
    function there.  comm: the range of every rank's samples."""
    s_lo, s_hi = xp.min(samples, axis=0), xp.max(samples, axis=0)
    if comm is not None:
        s_lo, s_hi = comm.allreduce(s_lo, op="min"), comm.allreduce(s_hi, op="max")
    lo = xp.minimum(interior[:, :1], s_lo[:, None])
    hi = xp.maximum(interior[:, -1:], s_hi[:, None])
    return xp.concat([lo, interior[:, 1:-1], hi], axis=1)


def _sweep(grid, k: int, xp):
    """k + 1 points inside each interior interval of every row: (num * (k + 1), n)."""
    interior = grid[:, k : grid.shape[1] - k]
    left, right = interior[:, :-1], interior[:, 1:]  # (n, num)
    fracs = [(j + 0.5) / (k + 1) for j in range(k + 1)]
    pts = [left + f * (right - left) for f in fracs]  # each (n, num)
    stacked = xp.stack(pts, axis=2)  # (n, num, k+1)
    return xp.permute_dims(xp.reshape(stacked, (grid.shape[0], -1)), (1, 0))


def fit_coef(new_grid, k: int, old_grid, old_coef, samples=None, *, xp, comm=None, extrapolate: str = "spline"):
    """Coefficients on ``new_grid`` whose spline best matches the old spline.

    new_grid (n, G' + 2k + 1), old_grid (n, G + 2k + 1), old_coef (n, m, G + k), samples
    (S, n) or None; all float64 -> coef (n, m, G' + k) float64.  comm: samples is this
    rank's shard; the normal equations are summed over the ranks (the sweep counted once).
    extrapolate: how the old spline continues beyond its grid (``kanarray.extrapolation``);
    the new grid covers the points, so the new spline needs no continuation there.
    """
    sweep = _sweep(new_grid, k, xp)
    P = sweep.shape[0]
    if samples is None:
        points = sweep
        weights = xp.ones((P,), dtype=sweep.dtype, device=_device(sweep))
    else:
        S = samples.shape[0] if comm is None else int(comm.allreduce_scalar(samples.shape[0]))
        w_sweep = _SWEEP_SHARE * S / P
        points, weights = samples, xp.ones((samples.shape[0],), dtype=sweep.dtype, device=_device(sweep))
        if comm is None or comm.is_root:
            points = xp.concat([samples, sweep], axis=0)
            weights = xp.concat([weights, xp.full((P,), w_sweep, dtype=sweep.dtype, device=_device(sweep))])
    kernels = get_kernels(xp)
    tail = tails(points, old_grid, k, xp) if extrapolate == "linear" else None
    target, _, _ = continued_edge_forward(kernels, points, old_grid, old_coef, k, xp, tail, need_dx=False)  # (n, N, m)
    A = kernels.dense_basis(points, new_grid, k)  # (n, N, nb)
    Aw = A * weights[None, :, None]
    At = xp.permute_dims(Aw, (0, 2, 1))
    M = xp.matmul(At, A)  # (n, nb, nb)
    rhs = xp.matmul(At, target)  # (n, nb, m)
    if comm is not None and samples is not None:
        M, rhs = comm.allreduce_each(M, rhs)
    nb = M.shape[-1]
    eye = xp.eye(nb, dtype=M.dtype, device=_device(M))
    trace = xp.sum(M * eye, axis=(1, 2))
    M = M + (_RIDGE * trace / nb)[:, None, None] * eye
    coef = xp.linalg.solve(M, rhs)  # (n, nb, m)
    return xp.permute_dims(coef, (0, 2, 1))


def _as64(a, xp):
    """a as float64, the array itself when it already is (callers only read it)."""
    return xp.astype(a, xp.float64, copy=False)


def update_layer_grid(layer: KANLayer, x, *, grid_eps: float = GRID_EPS, relative_floor: float = 0.0,
                      margin: float = 0.0, comm=None) -> None:
    """Adapt ``layer``'s grid to the samples x (S, in_dim) in place and refit its coefficients
    so every edge function is preserved on the samples.  G and k are unchanged; margin: see
    ``adaptive_interior``.
    comm: x is this rank's shard; the knots are quantiles of every rank's samples
    (``Communicator.gather_sorted``) and the refit sums the normal equations over ranks."""
    xp, k, num = layer.xp, layer.k, layer.num
    x64 = _as64(x, xp)
    old_grid = _as64(layer.grid, xp)
    ordered = xp.sort(x64, axis=0) if comm is None else comm.gather_sorted(x64)
    interior = adaptive_interior(ordered, num, grid_eps=grid_eps, relative_floor=relative_floor, margin=margin, xp=xp)
    new_grid = spline.extend_grid(interior, k, xp=xp)
    coef = fit_coef(new_grid, k, old_grid, _as64(layer.coef, xp), x64, xp=xp, comm=comm,
                    extrapolate=layer.extrapolate)
    dtype = layer.coef.dtype
    # in place: optimizers hold the live coefficient array
    layer.grid[...] = xp.astype(new_grid, dtype)
    layer.coef[...] = xp.astype(coef, dtype)


def refine_layer(layer: KANLayer, num: int, x=None, *, comm=None) -> KANLayer:
    """A copy of ``layer`` on a grid of ``num`` intervals whose knots follow the old ones, with
    coefficients fitted to the old splines (on the samples x (S, in_dim) if given; the end
    knots move out to cover samples beyond them).  comm: x is this rank's shard of them."""
    xp, k = layer.xp, layer.k
    old_grid = _as64(layer.grid, xp)
    interior = refined_interior(old_grid[:, k : k + layer.num + 1], num, xp=xp)
    samples = None if x is None else _as64(x, xp)
    if samples is not None:
        interior = _cover(interior, samples, xp, comm)
    new_grid = spline.extend_grid(interior, k, xp=xp)
    coef = fit_coef(new_grid, k, old_grid, _as64(layer.coef, xp), samples, xp=xp, comm=comm,
                    extrapolate=layer.extrapolate)
    dtype = layer.coef.dtype
    copy = {name: xp.asarray(a, copy=True) for name, a in layer.arrays().items() if name not in ("grid", "coef")}
    return KANLayer(grid=xp.astype(new_grid, dtype), coef=xp.astype(coef, dtype), **copy, k=k,
                    base_fun=layer.base_fun, xp=xp, symbolic=layer.symbolic.copy(), extrapolate=layer.extrapolate,
                    nodes=None if layer.nodes is None else layer.nodes.copy())


def adapt_grids(model, x, *, grid_eps: float = GRID_EPS, grid_margin: float = 0.0, comm=None) -> None:
    """``KAN.update_grid`` on inputs x (S, width[0]) already through ``model.prepare_inputs``:
    layer by layer on the activations of the adapted layers before it, all computed before any
    layer changes (in place: optimizers hold the live arrays); x becomes ``model.fit_inputs``."""
    def visit(l, layer, h):
        new = layer.copy()
        update_layer_grid(new, h, grid_eps=grid_eps, relative_floor=HIDDEN_RELATIVE_SPAN if l else 0.0,
                          margin=grid_margin, comm=comm)
        return new.forward(h)[0], new

    _, new_layers = stack.traverse(model.layers, x, visit)
    for layer, new in zip(model.layers, new_layers):
        layer.grid[...] = new.grid
        layer.coef[...] = new.coef
    model.fit_inputs = x


def refine(model, nums, samples=None, *, comm=None):
    """``KAN.refine``: a new model whose layer l has nums[l] intervals, fitted on the layers'
    activations of samples (S, width[0]) as the first layer sees them (None: the sweep only)."""
    def visit(l, layer, h):
        new = refine_layer(layer, nums[l], h, comm=comm)
        return (None if h is None else layer.forward(h)[0]), new

    _, new_layers = stack.traverse(model.layers, samples, visit)
    return model.from_layers(new_layers, like=model, fit_inputs=samples)


def refit_bytes(layers, nums, samples) -> int:
    """The estimated peak memory of ``refine`` (nums: the new G per layer) or ``adapt_grids``
    (nums: the layers' own G) on samples (S, width[0]) or None: ``resources.refit_bytes``."""
    n_samples = 0 if samples is None else int(samples.shape[0])
    return resources.refit_bytes(resources.layer_shapes(layers), nums, n_samples)


def check_sample_span(layer: KANLayer, samples, nums: int, dtype_name: str, what: str) -> None:
    """ValueError when a grid of ``nums`` intervals over the samples (S, in_dim) of ``layer``
    would not fit dtype_name (the model's; ``check_grid_range``'s bound: the extended knots within
    +-sqrt of its largest value), before any knot is computed; constant samples always fit."""
    xp = layer.xp
    lo, hi = float(xp.min(samples)), float(xp.max(samples))
    if lo < hi:
        try:
            check_grid_range((lo, hi), f"{what}: the samples' range", num=nums, k=layer.k, dtype=dtype_name)
        except ValueError as exc:
            raise ValueError(f"{exc}; rescale the inputs (e.g. model.scale_inputs(lo, hi))") from None


def update_grid(model, x, *, grid_eps, grid_margin, comm=None) -> None:
    """``KAN.update_grid``: the arguments checked, then ``adapt_grids`` on raw inputs x.  comm (an
    mpi4py communicator, a ``Communicator`` or None): x is this rank's shard; the checks, the
    model and the settings are agreed by every rank first (``distributed.agreed_call``) and the
    update's collectives are guarded (``distributed.guarded_call``)."""
    comm = as_communicator(comm)

    def check():
        eps, margin = check_number("grid_eps", grid_eps, maximum=1.0), check_number("grid_margin", grid_margin)
        inputs = model.prepare_inputs(x)
        check_sample_span(model.layers[0], inputs, model.grid[0], model.dtype_name, "update_grid")
        resources.check(f"update_grid on {inputs.shape[0]} samples", refit_bytes(model.layers, model.grid, inputs))
        return (eps, margin, inputs), (eps, margin)

    eps, margin, inputs = agreed_call(comm, model, check, "update_grid")
    guarded_call(comm, lambda ranks: adapt_grids(model, inputs, grid_eps=eps, grid_margin=margin, comm=ranks))


def refine_model(model, grid, x=None, *, comm=None):
    """``KAN.refine``: grid (an int, or one per layer) checked, then ``refine`` on raw inputs x
    (default ``model.fit_inputs``).  comm: as in ``update_grid``; whether samples are given is
    agreed too (ranks without any do no collectives)."""
    comm = as_communicator(comm)

    def check():
        n_layers = len(model.layers)
        per_layer = list(grid) if isinstance(grid, (list, tuple)) else [grid] * n_layers
        if len(per_layer) != n_layers:
            raise ValueError(f"grid has {len(per_layer)} entries but the model has {n_layers} layers")
        nums = [check_grid(g) for g in per_layer]
        samples = model.fit_inputs if x is None else model.prepare_inputs(x)
        if samples is not None:
            check_sample_span(model.layers[0], samples, nums[0], model.dtype_name, "refine")
        resources.check(f"refine(grid={nums})", refit_bytes(model.layers, nums, samples))
        return (nums, samples), (nums, samples is None)

    nums, samples = agreed_call(comm, model, check, "refine")
    return guarded_call(comm, lambda ranks: refine(model, nums, samples, comm=ranks))
