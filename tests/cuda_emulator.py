"""Run the CuPy backend's CUDA kernels on the CPU, for machines without a GPU.

The kernel source (``kanarray.backends.cuda_source``) is compiled as C++20 with g++ next to a
small shim: ``blockIdx``/``threadIdx`` are thread-locals, every block runs its threads as
real threads (std::thread) with std::barrier for ``__syncthreads`` and per-warp barriers for
``__shfl_down_sync``, and ``atomicAdd`` takes a mutex.  Blocks run one after another.  This
checks what the kernels compute (indexing, de Boor's triangle, accumulation, reductions), not
their speed or anything specific to the hardware's memory model.

``fake_cupy()`` returns a module that stands in for ``cupy`` inside ``kanarray.backends.cupy``:
NumPy arrays, and ``RawModule`` kernels that launch on this emulator.
"""

from __future__ import annotations

import ctypes
import hashlib
import shutil
import subprocess
import tempfile
import types
from pathlib import Path

import numpy as np

_SHIM = r"""
#include <barrier>
#include <cmath>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

struct dim3 { unsigned x, y, z; };
static thread_local dim3 threadIdx, blockIdx;
static dim3 blockDim, gridDim;
#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__
alignas(16) unsigned char smem[1 << 16];
static std::mutex atomic_mutex;
template <class T> inline T atomicAdd(T* p, T v) {
    std::lock_guard<std::mutex> lock(atomic_mutex);
    T old = *p;
    *p = old + v;
    return old;
}
static std::barrier<>* block_barrier = nullptr;
inline void __syncthreads() { block_barrier->arrive_and_wait(); }
static std::vector<double> shfl_slots;
static std::vector<std::unique_ptr<std::barrier<>>> warp_barriers;
inline unsigned linear_tid() { return threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z); }
template <class T> inline T __shfl_down_sync(unsigned, T v, int off) {
    unsigned t = linear_tid(), w = t / 32, lane = t % 32;
    shfl_slots[t] = (double)v;
    warp_barriers[w]->arrive_and_wait();
    T r = lane + off < 32 ? (T)shfl_slots[w * 32 + lane + off] : v;
    warp_barriers[w]->arrive_and_wait();
    return r;
}
"""

_DISPATCH = r"""
template <class F> static void launch(dim3 grid, dim3 block, bool threaded, F body) {
    gridDim = grid;
    blockDim = block;
    unsigned nt = block.x * block.y * block.z;
    shfl_slots.assign(nt, 0.0);
    warp_barriers.clear();
    for (unsigned w = 0; w * 32 < nt; ++w)
        warp_barriers.emplace_back(new std::barrier<>(nt - w * 32 < 32 ? nt - w * 32 : 32));
    for (unsigned bz = 0; bz < grid.z; ++bz)
    for (unsigned by = 0; by < grid.y; ++by)
    for (unsigned bx = 0; bx < grid.x; ++bx) {
        std::barrier<> bar(nt);
        block_barrier = &bar;
        auto one = [&, bx, by, bz](unsigned tx, unsigned ty, unsigned tz) {
            blockIdx = dim3{bx, by, bz};
            threadIdx = dim3{tx, ty, tz};
            body();
        };
        if (!threaded) {
            for (unsigned tz = 0; tz < block.z; ++tz)
            for (unsigned ty = 0; ty < block.y; ++ty)
            for (unsigned tx = 0; tx < block.x; ++tx) one(tx, ty, tz);
            continue;
        }
        std::vector<std::thread> threads;
        for (unsigned tz = 0; tz < block.z; ++tz)
        for (unsigned ty = 0; ty < block.y; ++ty)
        for (unsigned tx = 0; tx < block.x; ++tx) threads.emplace_back(one, tx, ty, tz);
        for (auto& t : threads) t.join();
    }
}

#define R(i) ((real*)a[i])
#define I(i) ((int*)a[i])
#define LL(i) (*(long long*)a[i])
#define N(i) (*(int*)a[i])
#define D(i) (*(double*)a[i])

extern "C" int emu_launch(const char* name, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                          unsigned bz, void** a) {
    dim3 g{gx, gy, gz}, b{bx, by, bz};
    std::string s(name);
@CASES@
    return 1;
}
"""

# name -> (threaded: whether the kernel synchronises its threads, the call on the argument array)
_CALLS = {
    "locate_bases": (False, "locate_bases(R(0), R(1), LL(2), N(3), N(4), N(5), I(6), R(7), R(8))"),
    "spline_fwd": (False, "spline_fwd(I(0), R(1), R(2), LL(3), N(4), N(5), N(6), R(7))"),
    "edge_fwd": (False, "edge_fwd(I(0), R(1), R(2), R(3), LL(4), N(5), N(6), N(7), N(8), R(9), R(10))"),
    "coef_grad_shared": (True, "coef_grad_shared(I(0), R(1), R(2), LL(3), LL(4), N(5), N(6), N(7), LL(8), R(9))"),
    "coef_grad_global": (False, "coef_grad_global(I(0), R(1), R(2), LL(3), LL(4), N(5), N(6), N(7), R(8))"),
    "spline_dx": (True, "spline_dx(I(0), R(1), R(2), R(3), LL(4), N(5), N(6), N(7), R(8))"),
    "scatter_dense": (False, "scatter_dense(I(0), R(1), LL(2), N(3), N(4), R(5))"),
    "adam_update": (False, "adam_update(R(0), R(1), R(2), R(3), R(4), R(5), LL(6), D(7), D(8), D(9), D(10), D(11), "
                           "D(12), D(13), N(14), N(15))"),
    "silu": (False, "silu(R(0), LL(1), N(2), N(3), R(4), R(5))"),
    "matmul_tiled": (True, "matmul_tiled(R(0), LL(1), LL(2), R(3), LL(4), LL(5), R(6), LL(7), LL(8), LL(9), LL(10))"),
}


_STRIDED = {"matmul_tiled"}  # kernels that read their arrays through strides they are given


def _dispatch(code: str) -> str:
    """emu_launch for the kernels that ``code`` defines."""
    cases = [f'    if (s == "{name}") {{ launch(g, b, {str(threaded).lower()}, [&] {{ {call}; }}); return 0; }}'
             for name, (threaded, call) in _CALLS.items() if f"void {name}(" in code]
    return _DISPATCH.replace("@CASES@", "\n".join(cases))


_libraries: dict = {}
_build_dir = Path(tempfile.mkdtemp(prefix="kanarray_cuda_emu_"))


def available() -> bool:
    return shutil.which("g++") is not None


def _library(code: str):
    key = hashlib.sha1(code.encode()).hexdigest()[:16]
    lib = _libraries.get(key)
    if lib is None:
        src = _build_dir / f"emu_{key}.cpp"
        out = _build_dir / f"emu_{key}.so"
        src.write_text(_SHIM + code + _dispatch(code))
        run = subprocess.run(["g++", "-std=c++20", "-O1", "-shared", "-fPIC", "-pthread", str(src), "-o", str(out)],
                             capture_output=True, text=True, timeout=300)
        if run.returncode != 0:
            raise RuntimeError(f"g++ failed on the emulated kernels:\n{run.stderr}")
        lib = ctypes.CDLL(str(out))
        lib.emu_launch.restype = ctypes.c_int
        _libraries[key] = lib
    return lib


class _Kernel:
    def __init__(self, lib, name):
        self.lib, self.name = lib, name

    def __call__(self, grid, block, args, shared_mem=0):
        grid = tuple(grid) + (1,) * (3 - len(grid))
        block = tuple(block) + (1,) * (3 - len(block))
        assert block[0] * block[1] * block[2] <= 1024, "more than 1024 threads in a block"
        assert shared_mem <= 1 << 16
        keep, pointers = [], []
        for a in args:
            if isinstance(a, np.ndarray) and a.ndim > 0:
                contiguous = a.flags.c_contiguous or self.name in _STRIDED
                assert contiguous, f"{self.name}: a kernel argument is not C-contiguous"
                pointers.append(a.ctypes.data)
            else:  # a scalar of a fixed-width type, passed by address
                box = np.array(a, dtype=np.asarray(a).dtype)
                assert box.dtype in (np.int32, np.int64, np.float64), f"{self.name}: scalar of type {box.dtype}"
                keep.append(box)
                pointers.append(box.ctypes.data)
        array = (ctypes.c_void_p * len(pointers))(*pointers)
        rc = self.lib.emu_launch(self.name.encode(), *grid, *block, array)
        assert rc == 0, f"unknown kernel {self.name}"


class _RawModule:
    def __init__(self, code, options=()):
        self.lib = _library(code)

    def get_function(self, name):
        return _Kernel(self.lib, name)


def fake_cupy():
    """A stand-in for the ``cupy`` module with what ``kanarray.backends.cupy`` uses."""
    mod = types.ModuleType("cupy")
    for name in ("empty", "empty_like", "zeros", "ascontiguousarray", "transpose", "int32", "int64", "float64",
                 "dtype", "ndarray", "result_type"):
        setattr(mod, name, getattr(np, name))
    mod.RawModule = _RawModule
    stream = types.SimpleNamespace(is_capturing=lambda: mod.recording)  # set mod.recording to pretend
    mod.recording = False
    mod.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDevice=lambda: 0, CUDARuntimeError=RuntimeError),
                                     get_current_stream=lambda: stream)
    return mod
