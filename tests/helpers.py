"""What the tests share: random models with everything switched on (non-uniform grids, masks,
biases, scales), edge-by-edge references, host copies, central finite differences, dtype-derived
tolerances, and the skips for CuPy/GPU and MPI.  Test modules import from here, never from each
other."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.interpolate import BSpline
from scipy.special import expit

import kanarray as ka
from kanarray._namespace import to_numpy
from kanarray.nodes import AFFINE_NAMES


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


def random_model(backend, width, *, grid=4, k=3, base_fun="silu", seed=0, dtype="float64", extrapolate="spline"):
    """Biases trainable, so that gradient checks cover them too."""
    model = ka.KAN(width, grid=grid, k=k, base_fun=base_fun, seed=seed, dtype=dtype, backend=backend,
                   bias_trainable=True, extrapolate=extrapolate)
    return perturb(model, seed)


def host(a):
    """Any backend's array -> NumPy array (through ``to_numpy``, DLPack for device arrays)."""
    return np.asarray(to_numpy(a))


def asarray(xp, a, dtype=None):
    """Host array -> array of namespace xp (float64 unless said)."""
    a = np.asarray(a)
    return xp.asarray(a, dtype=getattr(xp, dtype or "float64"))


def tol(dtype, ulps: float) -> float:
    """``ulps`` machine epsilons of ``dtype`` (float64: 2.2e-16, float32: 1.2e-7): the tolerance
    of a comparison between two evaluations of the same computation in that precision, so that
    one factor serves both precisions.  ``dtype``: a NumPy dtype, a scalar type or its name."""
    return float(ulps * np.finfo(np.dtype(dtype)).eps)


# -- central finite differences (float64) ------------------------------------------------------

FD_EPS = 1e-6  # relative step of fd_grad
FD_RTOL = 1e-6  # what assert_grad_close admits: the step's truncation and rounding errors, not eps-sized


def fd_grad(loss_of, values: np.ndarray) -> np.ndarray:
    """Central differences of a scalar function of a host array."""
    grad = np.zeros_like(values)
    flat = values.reshape(-1)
    for j in range(flat.size):
        old = flat[j]
        step = FD_EPS * max(1.0, abs(old))
        flat[j] = old + step
        up = loss_of(values)
        flat[j] = old - step
        down = loss_of(values)
        flat[j] = old
        grad.reshape(-1)[j] = (up - down) / (2 * step)
    return grad


def assert_grad_close(got, ref, what):
    scale = max(np.abs(ref).max(), np.abs(got).max(), 1e-12)
    err = np.abs(got - ref).max() / scale
    assert err <= FD_RTOL, f"{what}: relative error {err:.2e} > {FD_RTOL:.0e}"


def _owner(layer, attr):
    """The object holding a layer's parameter ``attr``: the layer, or its node stage."""
    return layer.nodes if attr in AFFINE_NAMES else layer


def set_param(model, name, values):
    _, l, attr = name.split(".")
    layer = model.layers[int(l)]
    setattr(_owner(layer, attr), attr, model.xp.asarray(values, dtype=model.dtype))


def assert_parameter_gradients(model, value_of, grads):
    """Check ``grads`` (name -> array, every parameter's) against central differences of
    ``value_of()`` (a float at the model's current parameters)."""
    assert set(grads) == set(model.parameters())
    for name, param in model.parameters().items():
        assert grads[name].shape == param.shape, name
        start = host(param).astype(np.float64).copy()

        def loss_of(values, name=name):
            set_param(model, name, values)
            return value_of()

        ref = fd_grad(loss_of, start.copy())
        set_param(model, name, start)
        assert_grad_close(host(grads[name]), ref, name)


def _silu(x):
    return x * expit(x)


def reference_edges(layer, h):
    """Every edge activation phi_io(h_bi) of one layer, edge by edge with scipy's BSpline:
    (B, n, m) float64."""
    h = np.asarray(h, dtype=np.float64)
    base = {"silu": _silu, "identity": lambda v: v, "zero": np.zeros_like}[layer.base_fun]
    grid, coef = host(layer.grid), host(layer.coef)
    sb, ssp, mask = host(layer.scale_base), host(layer.scale_sp), host(layer.mask)
    k = layer.k
    phi = np.zeros((h.shape[0], layer.in_dim, layer.out_dim))
    for i in range(layer.in_dim):
        xi = h[:, i]
        inside = (xi >= grid[i, 0]) & (xi < grid[i, -1])
        for o in range(layer.out_dim):
            s = np.zeros_like(xi)
            for j in range(coef.shape[2]):
                knots = grid[i, j : j + k + 2]
                on = inside & (xi >= knots[0]) & (xi < knots[-1])
                if on.any() and knots[-1] > knots[0]:
                    s[on] += coef[i, o, j] * BSpline.basis_element(knots, extrapolate=False)(xi[on])
            phi[:, i, o] = mask[i, o] * (sb[i, o] * base(xi) + ssp[i, o] * s)
    return phi


def reference_forward(model, x):
    """The model's function computed edge by edge with scipy's BSpline, loops and all."""
    h = np.asarray(x, dtype=np.float64)
    for layer in model.layers:
        h = reference_edges(layer, h).sum(axis=1) + host(layer.bias)
    return h


def expsin_data(n: int, seed: int):
    """(x (n, 2), y (n, 1)): the hello-KAN target exp(sin(pi x1) + x2^2) on inputs uniform on
    [-1, 1]^2, the first draws of default_rng(seed) (``kanarray.datasets.toy_dataset``)."""
    from kanarray.datasets import toy_dataset

    d = toy_dataset("exp_sin", n_train=n, n_test=1, seed=seed)
    return d["train_input"], d["train_label"]


def pruned_expsin_model():
    """A [2, 5, 1] KAN fitted with the sparsity penalty on the hello-KAN data and pruned (fewer than 5
    hidden nodes): the pruned model of the export tests."""
    import kanarray as ka

    x, y = expsin_data(300, seed=1)
    model = ka.KAN([2, 5, 1], grid=3, seed=1)
    model.fit(x, y, steps=20, lamb=1e-2, progress=False)
    pruned = model.prune()
    assert pruned.width[1] < 5
    return pruned


def mpiexec() -> str:
    """The mpiexec next to this Python (the mpich wheel's), else on PATH.  Skips the test where
    mpi4py or mpiexec is missing, unless KANARRAY_REQUIRE_MPI=1 (set by .ci/run): then it fails."""
    required = os.environ.get("KANARRAY_REQUIRE_MPI") == "1"
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        if required:
            pytest.fail("KANARRAY_REQUIRE_MPI=1 but mpi4py is not installed")
        pytest.skip("mpi4py is not installed")
    local = Path(sys.executable).parent / "mpiexec"
    found = str(local) if local.exists() else shutil.which("mpiexec")
    if found is None:
        if required:
            pytest.fail("KANARRAY_REQUIRE_MPI=1 but no mpiexec was found")
        pytest.skip("no mpiexec")
    return found


def mpi_environment(numba: bool = False) -> dict:
    """The environment for MPI runs: one BLAS thread per rank; numba off unless asked for (each
    rank would compile on a first run)."""
    return dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", KANARRAY_NUMBA="1" if numba else "0")


def gpu_cupy():
    """The cupy module where CuPy and a CUDA device are present; skips the test otherwise.  The
    one place that decides whether a test can run on a GPU: the ``backend`` fixture's cupy
    parameter and every ``gpu``-marked test call it."""
    cupy = pytest.importorskip("cupy")
    try:
        cupy.cuda.runtime.getDeviceCount()
    except Exception:  # pragma: no cover - depends on the machine
        pytest.skip("no CUDA device")
    return cupy


# -- ONNX runtimes (the callers skip where onnx / onnxruntime are missing) --------------------


def run_ort(proto, x):
    """Run an exported model (input ``x``) on onnxruntime's CPU provider."""
    import onnxruntime as ort

    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def run_onnx_reference(proto, x):
    """Run an exported model (input ``x``) on onnx's own ReferenceEvaluator, unpatched."""
    from onnx.reference import ReferenceEvaluator

    with np.errstate(all="ignore"):  # its Sigmoid overflows in exp for large |x| (the result is right)
        return ReferenceEvaluator(proto).run(None, {"x": x})[0]


def set_parameter(model, name: str, host, xp) -> None:
    """Write host values into parameter ``name`` of a KAN ("layers.0.coef", "layers.1.sym_affine") or an MLP,
    as new arrays (array_api_strict arrays cannot be edited in place): finite-difference checks."""
    if not hasattr(model, "layers"):  # the MLP: its parameters are the arrays themselves
        model.parameters()[name][...] = host
        return
    _, index, attr = name.split(".")
    layer = model.layers[int(index)]
    if attr == "sym_affine":
        layer.symbolic.affine = xp.asarray(host.copy())
    else:
        setattr(_owner(layer, attr), attr, xp.asarray(host.copy()))
