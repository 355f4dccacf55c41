"""Target standardization for ``kanarray fit``: train on y' = (y - shift) / scale, then fold the
map back into the last layer, so that the saved model and its ONNX graph compute raw targets.

The last layer's output j is a sum over its edges plus a bias,
y_j = sum_i mask_ij (scale_base_ij b(x_i) + scale_sp_ij spline_ij(x_i)) + c_ij f(a_ij x_i + b_ij) + d_ij
+ bias_j, so y_j * scale_j + shift_j is the same layer with scale_base, scale_sp, c and d of
column j times scale_j and bias_j * scale_j + shift_j: exact up to rounding, with no new operation
in the model or the graph.  When the last layer ends in a node stage (multiplication nodes,
``kanarray.nodes``), the map goes into its node_scale and node_bias instead, as exactly.
"""

from __future__ import annotations

import numpy as np

from ._namespace import from_host_like, to_numpy

__all__ = ["standardization", "fold_output_map"]


def standardization(y) -> tuple[np.ndarray, np.ndarray]:
    """(shift, scale), float64 (m,), of targets y (N, m) on the host: the mean and the standard
    deviation of each column, computed on y / max|y| so that targets near 1e200 do not overflow;
    a constant column gets scale 1 (its max |y| when that is larger)."""
    y = np.asarray(y, dtype=np.float64)
    peak = np.max(np.abs(y), axis=0)
    unit = np.where(peak > 0, peak, 1.0)
    scaled = y / unit
    shift = scaled.mean(axis=0) * unit
    spread = scaled.std(axis=0) * unit
    scale = np.where(spread > 0, spread, np.maximum(unit, 1.0))
    return shift, scale


def fold_output_map(model, shift, scale):
    """A new model computing ``model(x) * scale + shift`` (shift, scale: (width[-1],)), the map
    folded into the last layer's arrays (``KAN.from_layers(like=model)``)."""
    shift, scale = (np.asarray(v, dtype=np.float64).reshape(-1) for v in (shift, scale))
    m = model.width[-1]
    if shift.shape != (m,) or scale.shape != (m,) or not (np.all(np.isfinite(shift)) and np.all(scale > 0)
                                                           and np.all(np.isfinite(scale))):
        raise ValueError(f"the output map needs finite shift and positive finite scale of shape ({m},)")
    copy = model.copy()
    last = copy.layers[-1]
    like = last.coef

    def scaled(a, factor, offset=None):
        host = to_numpy(a).astype(np.float64) * factor
        if offset is not None:
            host = host + offset
        with np.errstate(over="raise"):
            return from_host_like(copy.xp, host.astype(to_numpy(a).dtype), like)

    if last.nodes is not None:  # a node stage ends the layer: its node affine takes the map
        stage = last.nodes
        try:
            stage.node_scale, stage.node_bias = (scaled(stage.node_scale, scale),
                                                 scaled(stage.node_bias, scale, shift))
        except FloatingPointError:
            raise ValueError(f"the targets' scale ({scale.max():.3g}) overflows {model.dtype_name} in the last "
                             "layer; use float64") from None
        return copy
    try:
        last.scale_base[...] = scaled(last.scale_base, scale[None, :])
        last.scale_sp[...] = scaled(last.scale_sp, scale[None, :])
        last.bias[...] = scaled(last.bias, scale, shift)
        affine = to_numpy(last.symbolic.affine).astype(np.float64)
        affine[..., 2:] *= scale[None, :, None]  # c and d of every edge into output j
        last.symbolic.affine[...] = from_host_like(copy.xp, affine.astype(to_numpy(last.symbolic.affine).dtype), like)
    except FloatingPointError:
        raise ValueError(f"the targets' scale ({scale.max():.3g}) overflows {model.dtype_name} in the last layer; "
                         "use float64") from None
    return copy
