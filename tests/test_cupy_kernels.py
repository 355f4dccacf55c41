"""The CuPy kernels (``kanarray/backends/cupy.py``): their CUDA source compiles to PTX with nvcc
wherever nvcc is installed (no GPU needed), and on a GPU they agree with the NumPy kernels
call by call, for both contractions, duplicate intervals, inputs off the grid, and the
global-atomics path of the weight gradient.  The rest of the numerical suite runs on CuPy
through the ``backend`` fixture (marker ``gpu``)."""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest
from helpers import expsin_data, gpu_cupy, tol

from kanarray.backends.cuda_source import (ELEMENTWISE_KERNEL_NAMES, KERNEL_NAMES, MATMUL_BLOCKS, MATMUL_TILE,
                                           cuda_source, elementwise_source, matmul_split, shared_tile_fits)


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not on PATH")
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("k", [0, 1, 2, 3, 5])
def test_cuda_source_compiles_to_ptx(tmp_path, k, dtype):
    src = tmp_path / f"kan_k{k}_{dtype}.cu"
    src.write_text(cuda_source(k, dtype))
    ptx = tmp_path / "out.ptx"
    run = subprocess.run(["nvcc", "--ptx", "-arch=compute_75", "-std=c++14", str(src), "-o", str(ptx)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    text = ptx.read_text()
    entries = set(re.findall(r"\.entry\s+(\w+)", text))
    assert entries == set(KERNEL_NAMES)
    assert ("f64" if dtype == "float64" else "f32") in text


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not on PATH")
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_elementwise_source_compiles_to_ptx(tmp_path, dtype):
    src = tmp_path / f"optim_{dtype}.cu"
    src.write_text(elementwise_source(dtype))
    ptx = tmp_path / "out.ptx"
    run = subprocess.run(["nvcc", "--ptx", "-arch=compute_75", "-std=c++14", str(src), "-o", str(ptx)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert set(re.findall(r"\.entry\s+(\w+)", ptx.read_text())) == set(ELEMENTWISE_KERNEL_NAMES)


def test_cuda_source_rejects_bad_arguments():
    with pytest.raises(ValueError, match="dtype"):
        cuda_source(3, "float16")
    with pytest.raises(ValueError, match="k must be"):
        cuda_source(-1, "float32")
    with pytest.raises(ValueError, match="k must be"):
        cuda_source(True, "float32")
    assert shared_tile_fits(100, 8) and not shared_tile_fits(1000, 4)
    with pytest.raises(ValueError, match="dtype"):
        elementwise_source("float16")


# -- on a GPU -------------------------------------------------------------------------------


def _case(G, k, n, m, B, dtype, seed, *, jitter=True, same_interval=False):
    rng = np.random.default_rng(seed)
    h = 2.0 / G
    grid = np.tile(np.linspace(-1 - k * h, 1 + k * h, G + 2 * k + 1), (n, 1))
    if jitter:
        grid = np.sort(grid + rng.uniform(-0.2 * h, 0.2 * h, grid.shape), axis=1)
    x = rng.uniform(-1.3, 1.3, (B, n))  # some inputs off the grid
    x[:3] = grid[:, :1].T  # on the first knot
    x[3:6] = grid[:, -1:].T  # on the last knot (off the grid: half-open)
    if same_interval:  # every row in one interval: the gradient sums B duplicates
        x[:] = 0.5 * (grid[:, G // 2 + k] + grid[:, G // 2 + k + 1])
    weight = rng.standard_normal((n, m, G + k))
    return x.astype(dtype), grid.astype(dtype), weight.astype(dtype)


SHAPES = [(5, 3, 4, 7, 300, False), (10, 1, 3, 40, 257, False), (7, 2, 2, 33, 1000, True), (3, 0, 5, 2, 64, False),
          (20, 5, 3, 3, 129, False), (400, 3, 2, 5, 200, False)]  # G, k, n, m, B, all rows in one interval


def _check_against_numpy(gpu, to_device, to_host, dtype, G, k, n, m, B, same):
    """Every call of the CuPy kernel object ``gpu`` against the NumPy kernels."""
    from kanarray.backends.numpy import NumpyKernels

    x, grid, weight = _case(G, k, n, m, B, dtype, seed=G + k, same_interval=same)
    gy = np.random.default_rng(1).standard_normal((B, m)).astype(dtype)
    ref = NumpyKernels(fused=False)
    rtol = tol(dtype, 84)  # float32: 1e-5, as the GPU run passed it
    d, h = to_device, to_host

    def close(got, want, atol_scale=1.0):
        scale = max(1.0, float(np.abs(want).max()))
        np.testing.assert_allclose(h(got) / scale, want / scale, rtol=rtol, atol=rtol * atol_scale)

    y_ref, ctx_ref = ref.spline_forward(x, grid, weight, k, need_dx=True)
    y, ctx = gpu.spline_forward(d(x), d(grid), d(weight), k, need_dx=True)
    close(y, y_ref)
    dw_ref, dx_ref = ref.spline_backward(ctx_ref, gy, need_dx=True)
    dw, dx = gpu.spline_backward(ctx, d(gy), need_dx=True)
    close(dw, dw_ref)
    close(dx, dx_ref)
    spl_ref, dspl_ref, ectx_ref = ref.edge_forward(x, grid, weight, k, need_dx=True)
    spl, dspl, ectx = gpu.edge_forward(d(x), d(grid), d(weight), k, need_dx=True)
    close(spl, spl_ref)
    close(dspl, dspl_ref)
    ge = np.random.default_rng(2).standard_normal(spl_ref.shape).astype(dtype)
    close(gpu.edge_backward(ectx, d(ge)), ref.edge_backward(ectx_ref, ge))
    close(gpu.dense_basis(d(x), d(grid), k), ref.dense_basis(x, grid, k))
    y2, _ = gpu.spline_forward(d(x), d(grid), d(2 * weight), k, need_dx=False, reuse=ctx)  # reused bases
    close(y2, 2 * y_ref)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("contraction", ["sparse", "dense"])
@pytest.mark.parametrize("G,k,n,m,B,same", SHAPES)
def test_cupy_kernels_match_numpy(dtype, contraction, G, k, n, m, B, same):
    cupy = gpu_cupy()
    from kanarray._namespace import resolve_backend
    from kanarray.backends.cupy import CupyKernels

    gpu = CupyKernels(resolve_backend("cupy"), contraction=contraction)
    _check_against_numpy(gpu, cupy.asarray, cupy.asnumpy, dtype, G, k, n, m, B, same)


@pytest.fixture
def emulated_cupy_kernels():
    """``kanarray.backends.cupy`` imported against ``cuda_emulator.fake_cupy()``: the CUDA
    kernels run on the CPU through g++.  The real module (if any) is put back afterwards."""
    import importlib
    import sys

    import cuda_emulator

    if not cuda_emulator.available():
        pytest.skip("g++ is not on PATH")
    import kanarray.backends as backends

    saved = {name: sys.modules.pop(name, None) for name in ("cupy", "kanarray.backends.cupy")}
    saved_attr = backends.__dict__.pop("cupy", None)
    sys.modules["cupy"] = cuda_emulator.fake_cupy()
    try:
        yield importlib.import_module("kanarray.backends.cupy").CupyKernels
    finally:
        for name, mod in saved.items():
            sys.modules.pop(name, None)
            if mod is not None:
                sys.modules[name] = mod
        backends.__dict__.pop("cupy", None)
        if saved_attr is not None:
            backends.cupy = saved_attr


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("contraction", ["sparse", "dense"])
@pytest.mark.parametrize("G,k,n,m,B,same", [(G, k, n, m, min(B, 48), same) for G, k, n, m, B, same in SHAPES])
@pytest.mark.slow
def test_emulated_cuda_kernels_match_numpy(emulated_cupy_kernels, dtype, contraction, G, k, n, m, B, same):
    gpu = emulated_cupy_kernels(None, contraction=contraction)
    _check_against_numpy(gpu, np.ascontiguousarray, np.asarray, dtype, G, k, n, m, B, same)


@pytest.mark.parametrize("B,n,m,nb,itemsize", [(48, 2, 5, 403, 8), (48, 2, 5, 403, 4), (16384, 256, 64, 103, 4),
                                                 (100, 1000, 1000, 8, 4), (7, 3, 40, 9, 8)])
def test_weight_gradient_launch_covers_every_row_and_output(B, n, m, nb, itemsize):
    from kanarray.backends.cuda_source import coef_grad_launch

    plan = coef_grad_launch(B, n, m, nb, itemsize)
    if plan["kernel"] == "coef_grad_global":  # one thread per (b, i, o)
        assert not shared_tile_fits(nb, itemsize) and plan["grid"][0] * plan["block"][0] >= B * n * m
        return
    tiles, inputs, chunks = plan["grid"]
    assert tiles * 32 >= m and inputs == n and chunks * plan["rows"] >= B > (chunks - 1) * plan["rows"]
    assert plan["shared_mem"] == nb * 32 * itemsize <= 48 * 1024 and chunks <= 65535


@pytest.mark.gpu
def test_model_on_cupy_uses_the_cuda_kernels_and_matches_numpy():
    cupy = gpu_cupy()
    import kanarray as ka
    from kanarray.backends import get_kernels

    model = ka.KAN([3, 5, 2], grid=7, k=3, seed=0)
    x = np.random.default_rng(0).uniform(-1, 1, (500, 3))
    on_gpu = ka.KAN([3, 5, 2], grid=7, k=3, seed=0).to("cupy")  # to() moves in place
    assert get_kernels(on_gpu.xp).name == "cupy"
    np.testing.assert_allclose(cupy.asnumpy(on_gpu(cupy.asarray(x))), np.asarray(model(x)), rtol=1e-12, atol=1e-12)


@pytest.mark.slow
def test_emulated_cuda_kernels_train_like_numpy(emulated_cupy_kernels):
    """The layers calling the CUDA kernels (emulated, on NumPy arrays) where they would on CuPy:
    a regularised objective and its gradients, a grid update and a refine give what the NumPy
    kernels give, and a short fit ends at the same parameters up to rounding."""
    import kanarray as ka
    from kanarray import backends
    from kanarray._namespace import resolve_backend

    x, y = expsin_data(40, seed=0)

    def run():
        model = ka.KAN([2, 3, 1], grid=4, k=3, seed=0)
        value, grads = model.value_and_grad(x, y, lamb=1e-2)
        model.update_grid(x)
        fine = model.refine(7)
        value2, grads2 = fine.value_and_grad(x, y, lamb=1e-2)
        fine.fit(x, y, steps=1, progress=False, update_grid=False)
        return (value, grads, value2, grads2), fine

    want, want_model = run()
    xp = resolve_backend("numpy")
    key = xp.__name__
    saved = backends._cache.get(key)
    backends._cache[key] = emulated_cupy_kernels(xp)
    try:
        assert backends.get_kernels(xp).name == "cupy"
        got, got_model = run()
    finally:
        backends._cache.pop(key)
        if saved is not None:
            backends._cache[key] = saved
    for g, w in zip(got, want):
        if isinstance(w, dict):
            assert g.keys() == w.keys()
            for name in w:
                np.testing.assert_allclose(np.asarray(g[name]), np.asarray(w[name]), rtol=1e-9, atol=1e-12)
        elif isinstance(w, (list, tuple)):
            for a, b in zip(g, w):
                for name in b:
                    np.testing.assert_allclose(np.asarray(a[name]), np.asarray(b[name]), rtol=1e-9, atol=1e-12)
        else:
            np.testing.assert_allclose(float(g), float(w), rtol=1e-12)
    for a, b in zip(got_model.layers, want_model.layers):
        np.testing.assert_allclose(np.asarray(a.grid), np.asarray(b.grid), rtol=0, atol=1e-12)
        np.testing.assert_allclose(np.asarray(a.coef), np.asarray(b.coef), rtol=1e-7, atol=1e-9)


def _adam_run(opt_name, dtype, *, steps=3, transposed_param=False, to=np.asarray):
    """Parameters after ``steps`` Adam/AdamW steps (weight decay on) on fixed gradients, one of
    them a transposed view; transposed_param: one parameter is not C-contiguous itself;
    to: host array -> array of the backend."""
    from kanarray.optim import Adam, AdamW

    rng = np.random.default_rng(0)
    params = {"coef": rng.standard_normal((3, 4, 6)).astype(dtype), "scale": rng.standard_normal((3, 4)).astype(dtype),
              "bias": rng.standard_normal((4,)).astype(dtype), "empty": np.zeros((0, 3), dtype=dtype)}
    if transposed_param:
        params["scale"] = np.asfortranarray(params["scale"])
    params = {name: to(a) for name, a in params.items()}
    opt = (Adam if opt_name == "adam" else AdamW)(params, lr=0.05, weight_decay=0.1)
    for t in range(steps):
        g = np.random.default_rng(t + 1)
        grads = {"coef": np.transpose(g.standard_normal((3, 6, 4)).astype(dtype), (0, 2, 1)),  # a view
                 "scale": g.standard_normal((3, 4)),  # float64, also for a float32 parameter
                 "bias": g.standard_normal((4,)).astype(dtype),
                 "empty": np.zeros((0, 3), dtype=dtype)}
        opt.step({name: to(a) for name, a in grads.items()})
    return params, opt


@pytest.mark.parametrize("transposed_param", [False, True])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("opt_name", ["adam", "adamw"])
def test_emulated_adam_kernel_matches_the_array_api_adam(emulated_cupy_kernels, opt_name, dtype, transposed_param):
    """optim.Adam/AdamW through the CUDA kernel ``adam_update`` (emulated, on NumPy arrays) end
    where the array-API update ends, moments included; a parameter that is not C-contiguous
    takes the array-API path."""
    from kanarray import backends
    from kanarray._namespace import resolve_backend

    want, want_opt = _adam_run(opt_name, dtype, transposed_param=transposed_param)
    kernels = emulated_cupy_kernels(resolve_backend("numpy"))  # its array-API fallbacks run on NumPy
    calls = []
    original = kernels.adam_update

    def counting(p, *args, **kwargs):
        out = original(p, *args, **kwargs)
        calls.append(out is not None)
        return out

    kernels.adam_update = counting
    key = resolve_backend("numpy").__name__
    saved = backends._cache.get(key)
    backends._cache[key] = kernels
    try:
        got, got_opt = _adam_run(opt_name, dtype, transposed_param=transposed_param)
    finally:
        backends._cache.pop(key)
        if saved is not None:
            backends._cache[key] = saved
    assert len(calls) == 3 * 4 and sum(calls) == 3 * (3 if transposed_param else 4)
    rtol = tol(dtype, 8)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=rtol, atol=rtol)
        for slot in ("m", "v"):
            np.testing.assert_allclose(got_opt.state[slot][name], want_opt.state[slot][name], rtol=rtol, atol=rtol)
    assert got_opt.steps == want_opt.steps


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("opt_name", ["adam", "adamw"])
def test_adam_on_cupy_runs_the_kernel_and_matches_numpy(opt_name, dtype):
    cupy = gpu_cupy()
    from kanarray._namespace import resolve_backend
    from kanarray.backends import get_kernels

    kernels = get_kernels(resolve_backend("cupy"))
    calls = []
    original = kernels.adam_update
    kernels.adam_update = lambda *a, **kw: calls.append(1) or original(*a, **kw)
    try:
        got, got_opt = _adam_run(opt_name, dtype, to=cupy.asarray)
    finally:
        del kernels.adam_update
    want, want_opt = _adam_run(opt_name, dtype)
    assert len(calls) == 3 * 4
    rtol = tol(dtype, 84)  # float32: 1e-5, as the GPU run passed it
    for name in want:
        np.testing.assert_allclose(cupy.asnumpy(got[name]), want[name], rtol=rtol, atol=rtol)
        np.testing.assert_allclose(cupy.asnumpy(got_opt.state["v"][name]), want_opt.state["v"][name], rtol=rtol,
                                   atol=rtol)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_emulated_silu_kernel_matches_the_array_api_silu(emulated_cupy_kernels, dtype):
    """Kernels.base_with_grad / base_grad through the CUDA kernel ``silu`` (emulated) give the
    array-API values, for large |x| (no overflow), a transposed view and an empty array."""
    from kanarray import backends
    from kanarray._namespace import resolve_backend
    from kanarray.base import base_grad, base_with_grad

    xp = resolve_backend("numpy")
    x = np.concatenate([np.linspace(-50, 50, 41), np.linspace(-3, 3, 19)]).reshape(6, 10).astype(dtype)
    inputs = [x, x.T, x[:0]]
    want = [(*base_with_grad("silu", a, xp), base_with_grad("silu", a, xp, need_grad=False)[1],
             base_grad("silu", a, xp)) for a in inputs]
    key = xp.__name__
    saved = backends._cache.get(key)
    backends._cache[key] = emulated_cupy_kernels(xp)
    try:
        kernels = backends.get_kernels(xp)
        got = [(*kernels.base_with_grad("silu", a), kernels.base_with_grad("silu", a, need_grad=False)[1],
                kernels.base_grad("silu", a)) for a in inputs]
        assert kernels.name == "cupy"
    finally:
        backends._cache.pop(key)
        if saved is not None:
            backends._cache[key] = saved
    rtol = tol(dtype, 16)
    for (gv, gg, gnone, gd), (wv, wg, wnone, wd), a in zip(got, want, inputs):
        assert gnone is None and wnone is None
        for g, w in ((gv, wv), (gg, wg), (gd, wd)):
            assert g.shape == a.shape and g.dtype == a.dtype
            np.testing.assert_allclose(g, w, rtol=rtol, atol=rtol)
    assert np.all(np.isfinite(got[0][0])) and got[0][0][0, 0] == 0 and got[0][0][4, 0] == pytest.approx(50)
    assert got[0][0][5, 9] == pytest.approx(3 / (1 + np.exp(-3.0)), rel=rtol)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_silu_on_cupy_runs_the_kernel_and_matches_numpy(dtype):
    cupy = gpu_cupy()
    from kanarray._namespace import resolve_backend
    from kanarray.backends import get_kernels
    from kanarray.base import base_with_grad

    x = np.linspace(-50, 50, 1001).astype(dtype)
    kernels = get_kernels(resolve_backend("cupy"))
    value, grad = kernels.base_with_grad("silu", cupy.asarray(x))
    want_value, want_grad = base_with_grad("silu", x, resolve_backend("numpy"))
    rtol = tol(dtype, 16)
    np.testing.assert_allclose(cupy.asnumpy(value), want_value, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(cupy.asnumpy(grad), want_grad, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(cupy.asnumpy(kernels.base_grad("silu", cupy.asarray(x))), want_grad,
                               rtol=rtol, atol=rtol)


def test_emulated_elementwise_kernels_can_be_switched_off(emulated_cupy_kernels, monkeypatch):
    """elementwise=False (or KANARRAY_CUPY_ELEMENTWISE=0) leaves Adam and SiLU to the array-API
    forms: both methods decline and change nothing."""
    from kanarray import config

    p, g = np.ones(5), np.full(5, 0.5)
    monkeypatch.setenv("KANARRAY_CUPY_ELEMENTWISE", "0")
    try:
        config.reload()  # kanarray.config reads the environment once; read it again
        for kernels in (emulated_cupy_kernels(None), emulated_cupy_kernels(None, elementwise=False)):
            assert kernels.silu(g, need_grad=True) is None
            assert kernels.adam_update(p, g, None, None, lr=0.1, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                                       decoupled=False, step=1) is None
            assert np.all(p == 1)
    finally:
        monkeypatch.delenv("KANARRAY_CUPY_ELEMENTWISE")
        config.reload()
    on = emulated_cupy_kernels(None)
    assert on.adam_update(p, g, None, None, lr=0.1, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, decoupled=False,
                          step=1) is not None
    np.testing.assert_allclose(p, 1 - 0.1, rtol=1e-7)  # the first step moves by lr against the gradient's sign


def test_matmul_split_covers_k_in_whole_tiles():
    for M, N, K in [(64, 64, 131072), (3, 2, 200), (37, 19, 20), (1024, 64, 6272), (1, 1, 1), (5, 5, 10**7)]:
        splits, k_chunk = matmul_split(M, N, K)
        assert k_chunk % MATMUL_TILE == 0 and (splits - 1) * k_chunk < K <= splits * k_chunk and splits <= 65535
        assert splits == 1 or -(-M // MATMUL_TILE) * -(-N // MATMUL_TILE) * splits <= 2 * MATMUL_BLOCKS
    assert matmul_split(64, 64, 131072)[0] == 64  # a weight gradient over a large batch: 1024 blocks, not 16


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_emulated_tiled_matmul_matches_numpy(emulated_cupy_kernels, dtype):
    """``matmul_tiled`` (what ``matmul`` runs while a CUDA graph records) against NumPy's @:
    shapes not multiples of the tile, transposed and strided views, K = 0, empty results; and
    ``matmul`` takes it exactly when the stream says it records."""
    import sys

    kernels = emulated_cupy_kernels(None)
    rng = np.random.default_rng(0)
    a = rng.standard_normal((37, 20)).astype(dtype)
    b = rng.standard_normal((20, 19)).astype(dtype)
    wide = rng.standard_normal((19, 40)).astype(dtype)
    tall = rng.standard_normal((200, 5)).astype(dtype)  # K = 200: split into chunks summed afterwards
    assert matmul_split(3, 2, 200)[0] > 1
    cases = [(a, b), (a[:1], b[:, :1]), (b.T, a.T), (a[::2], b), (a, wide[:, ::2].T[:20]), (a[:, :0], b[:0]),
             (a[:0], b), (tall.T[:3], tall[:, 3:]), (tall.T, tall)]
    rtol = tol(dtype, 64)
    for x, y in cases:
        got = kernels.matmul_tiled(x, y)
        assert got.shape == (x.shape[0], y.shape[1]) and got.dtype == np.dtype(dtype)
        np.testing.assert_allclose(got, x @ y, rtol=rtol, atol=rtol * 10)
    with pytest.raises(ValueError, match=r"\(M, K\) and \(K, N\).*\(37, 20\) and \(19, 40\)"):
        kernels.matmul_tiled(a, wide)
    fake = sys.modules["kanarray.backends.cupy"].cupy
    calls = []
    original = kernels.matmul_tiled
    kernels.matmul_tiled = lambda x, y: calls.append(1) or original(x, y)
    kernels.matmul(a, b)
    assert not calls
    fake.recording = True
    try:
        np.testing.assert_allclose(kernels.matmul(a, b), a @ b, rtol=rtol, atol=rtol * 10)
    finally:
        fake.recording = False
    assert calls == [1]


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_tiled_matmul_on_cupy_matches_cublas(dtype):
    cupy = gpu_cupy()
    from kanarray.backends import get_kernels
    from kanarray._namespace import resolve_backend

    kernels = get_kernels(resolve_backend("cupy"))
    rng = np.random.default_rng(1)
    a = cupy.asarray(rng.standard_normal((1000, 70)), dtype=dtype)
    b = cupy.asarray(rng.standard_normal((70, 33)), dtype=dtype)
    rtol = tol(dtype, 840)  # float32: 1e-4, as the GPU run passed it
    for x, y in [(a, b), (a.T, a), (b.T, a.T), (a[:, :0], b[:0])]:
        np.testing.assert_allclose(cupy.asnumpy(kernels.matmul_tiled(x, y)), cupy.asnumpy(x @ y), rtol=rtol,
                                   atol=rtol * 10)
