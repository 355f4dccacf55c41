"""CUDA C++ source of the CuPy kernels, one translation unit per (k, dtype).

Pure Python (no CuPy import), so that CPU-only machines can compile the same text to PTX
with nvcc (``tests/test_cupy_kernels.py``) and catch syntax errors without a GPU.

Shapes: batch B, inputs n, outputs m, knots L + 1 per input (L = G + 2k intervals), bases
nb = L - k.  Per (b, i) the kernels keep the first basis index ``cols[b, i] = v - k`` of
the input's interval v and the k + 1 values ``vals[b, i, q]`` of bases v - k + q (zero for
bases that do not exist, and all zero off the grid, where ``cols`` is 0).  Weights are
taken transposed, ``wt[i, j, o]`` (n, nb, m), so that threads of a warp, which run along
o, read consecutive addresses.

Kernels:

* ``locate_bases``: one thread per (b, i); binary search for v, de Boor's triangle for the
  k + 1 bases and, optionally, their derivatives;
* ``spline_fwd``: y[b, o] = sum_i sum_q vals[b, i, q] wt[i, cols + q, o], one thread per (b, o);
* ``edge_fwd``: the per-edge terms phi[i, b, o] (and their derivatives), one thread per (i, b, o);
* ``coef_grad_shared`` / ``coef_grad_global``: dwt[i, cols + q, o] += vals[b, i, q] g[b, o]
  over the batch.  Rows that share an interval add into the same entries, so the sums go
  through atomicAdd: into a per-block (nb, 32) tile in shared memory, flushed once per
  block, when the tile fits (``shared_tile_fits``), else straight into global memory;
* ``spline_dx``: dx[b, i] = sum_q dvals[b, i, q] sum_o wt[i, cols + q, o] gy[b, o], one
  warp per (b, i) with a shuffle reduction;
* ``scatter_dense``: the dense (B, n nb) basis matrix for the cuBLAS path.

``elementwise_source(dtype)`` holds element-wise kernels that replace chains of array
operations (each a launch on a GPU), one translation unit per dtype:

* ``adam_update``: a whole Adam/AdamW step of one parameter (the array-API form takes about
  fifteen operations);
* ``silu``: the SiLU base function and/or its derivative (five and eight operations).
"""

from __future__ import annotations

__all__ = ["cuda_source", "elementwise_source", "KERNEL_NAMES", "ELEMENTWISE_KERNEL_NAMES", "THREADS", "O_TILE",
           "ROW_LANES", "SHARED_LIMIT", "shared_tile_fits", "blocks_for", "choose_contraction",
           "coef_grad_launch"]

KERNEL_NAMES = ("locate_bases", "spline_fwd", "edge_fwd", "coef_grad_shared", "coef_grad_global", "spline_dx",
                "scatter_dense")
ELEMENTWISE_KERNEL_NAMES = ("adam_update", "silu", "matmul_tiled")
MATMUL_TILE = 16  # matmul_tiled's blocks are MATMUL_TILE x MATMUL_TILE threads
MATMUL_BLOCKS = 1024  # split K until about this many blocks run (an H200 has 132 SMs)

THREADS = 256  # threads per block of the 1-D launches (a multiple of 32: spline_dx runs a warp per row)
O_TILE = 32  # outputs per block in coef_grad (one warp across o)
ROW_LANES = 8  # warps per block in coef_grad, each walking its own rows
SHARED_LIMIT = 48 * 1024  # bytes of dynamic shared memory a block may use without opting in

_TYPES = {"float32": "float", "float64": "double"}


def shared_tile_fits(nb: int, itemsize: int) -> bool:
    """Whether coef_grad's (nb, O_TILE) accumulator fits in a block's shared memory."""
    return nb * O_TILE * itemsize <= SHARED_LIMIT


def blocks_for(count: int, threads: int = THREADS) -> tuple:
    """The 1-D grid that covers ``count`` threads in blocks of ``threads``."""
    return (max(1, -(-count // threads)),)


def choose_contraction(B: int, n: int, nb: int, k: int, itemsize: int) -> str:
    """'dense' when the basis matrix holds at most 4 entries per non-zero one (nb <= 4 (k + 1))
    and stays under 1 GiB, else 'sparse'.  A GEMM on the dense matrix runs near the GPU's peak
    while the local kernels gather; the ratio 4 is a first guess to be tuned on a GPU with
    ``benchmarks/bench_step.py --backend cupy --contraction dense|sparse``."""
    if nb <= 4 * (k + 1) and B * n * nb * itemsize <= 1 << 30:
        return "dense"
    return "sparse"


def coef_grad_launch(B: int, n: int, m: int, nb: int, itemsize: int) -> dict:
    """How ``coef_grad`` runs for this shape: kernel name, grid, block, dynamic shared memory
    and rows per block.  The shared-memory kernel gets enough row chunks to fill the GPU
    (about 4096 blocks), each long enough to amortise its flush of nb * O_TILE entries."""
    if not shared_tile_fits(nb, itemsize):
        return dict(kernel="coef_grad_global", grid=blocks_for(B * n * m), block=(THREADS,), shared_mem=0, rows=0)
    tiles = -(-m // O_TILE)
    chunks = max(1, min(-(-B // 256), 4096 // max(1, n * tiles) + 1))
    rows = -(-B // chunks)
    return dict(kernel="coef_grad_shared", grid=(tiles, n, -(-B // rows)), block=(O_TILE, ROW_LANES),
                shared_mem=nb * O_TILE * itemsize, rows=rows)


def cuda_source(k: int, dtype: str) -> str:
    """The kernels for spline order k and element type dtype ('float32' or 'float64')."""
    if dtype not in _TYPES:
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    if not isinstance(k, int) or isinstance(k, bool) or not 0 <= k <= 30:
        raise ValueError(f"k must be an integer in [0, 30], got {k!r}")
    return _TEMPLATE.replace("@REAL@", _TYPES[dtype]).replace("@K@", str(k)).replace(
        "@O_TILE@", str(O_TILE)).replace("@ROW_LANES@", str(ROW_LANES))


def matmul_split(M: int, N: int, K: int) -> tuple[int, int]:
    """(splits, k_chunk) for ``matmul_tiled``: K cut into chunks of k_chunk (a multiple of the
    tile, at least 4 tiles) so that the blocks number about MATMUL_BLOCKS."""
    tile = MATMUL_TILE
    tiles = -(-M // tile) * -(-N // tile)
    splits = max(1, min(-(-K // (4 * tile)), -(-MATMUL_BLOCKS // tiles), 65535))
    k_chunk = -(-(-(-K // splits)) // tile) * tile
    return -(-K // k_chunk), k_chunk


def elementwise_source(dtype: str) -> str:
    """The element-wise kernels for element type dtype ('float32' or 'float64')."""
    if dtype not in _TYPES:
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    return _ELEMENTWISE_TEMPLATE.replace("@REAL@", _TYPES[dtype]).replace("@TILE@", str(MATMUL_TILE))


# Adam as ``Kernels.adam_step`` computes it, operation for operation in the parameter's dtype
# (its Python-float hyper-parameters rounded to that dtype first), so the two agree to rounding.
# c1, c2: the bias corrections 1 - beta1**t and 1 - beta2**t; fresh: no moments yet (m0, v0
# are not read).  p is updated in place; the new moments go to m, v.
_ELEMENTWISE_TEMPLATE = r"""
typedef @REAL@ real;

extern "C" __global__ void adam_update(real* __restrict__ p, const real* __restrict__ g,
                                       const real* __restrict__ m0, const real* __restrict__ v0,
                                       real* __restrict__ m, real* __restrict__ v, long long size,
                                       double lr, double b1, double b2, double eps, double wd,
                                       double c1, double c2, int decoupled, int fresh) {
    long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= size) return;
    real pt = p[t], gt = g[t];
    if (wd != 0.0 && !decoupled) gt = gt + (real)wd * pt;
    real mt = (real)b1 * (fresh ? (real)0 : m0[t]) + (real)(1.0 - b1) * gt;
    real vt = (real)b2 * (fresh ? (real)0 : v0[t]) + (real)(1.0 - b2) * (gt * gt);
    real step = (real)lr * (mt / (real)c1) / (sqrt(vt / (real)c2) + (real)eps);
    if (wd != 0.0 && decoupled) pt = pt * (real)(1.0 - lr * wd);
    m[t] = mt;
    v[t] = vt;
    p[t] = pt - step;
}

// SiLU b(x) = x s(x) with s(x) = 1/2 + tanh(x/2)/2 (no overflow), and b'(x) = s (1 + x - b), as
// base.base_with_grad computes them
extern "C" __global__ void silu(const real* __restrict__ x, long long size, int want_value, int want_grad,
                                real* __restrict__ value, real* __restrict__ grad) {
    long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= size) return;
    real xt = x[t];
    real s = (real)0.5 + (real)0.5 * tanh((real)0.5 * xt);
    real b = xt * s;
    if (want_value) value[t] = b;
    if (want_grad) grad[t] = s * ((real)1 + (xt - b));
}

// C[z] (M, N) = A[:, chunk z] @ B[chunk z, :] for the chunks of k_chunk columns of A (rows of
// B), C C-contiguous (splits, M, N); the caller sums over z (split K: a (M, K) @ (K, N) with a
// long K and a small M N -- a weight gradient over a large batch -- still has enough blocks).
// A and B are read through element strides, so transposed views need no copy.  Tiles of
// MM x MM through dynamic shared memory (2 MM (MM + 1) reals); blockIdx.x runs over rows (up
// to 2^31 - 1 tiles), blockIdx.y over columns, blockIdx.z over chunks.  Used while a CUDA
// graph is recorded, when CuPy refuses cuBLAS calls.
#define MM @TILE@
extern "C" __global__ void matmul_tiled(const real* __restrict__ A, long long a0, long long a1,
                                        const real* __restrict__ B, long long b0, long long b1,
                                        real* __restrict__ C, long long M, long long N, long long K,
                                        long long k_chunk) {
    extern __shared__ unsigned char smem[];
    real* As = (real*)smem;
    real* Bs = As + MM * (MM + 1);
    int tx = threadIdx.x, ty = threadIdx.y;
    long long row = (long long)blockIdx.x * MM + ty, col = (long long)blockIdx.y * MM + tx;
    long long k_begin = (long long)blockIdx.z * k_chunk;
    long long k_end = k_begin + k_chunk < K ? k_begin + k_chunk : K;
    real acc = (real)0;
    for (long long k0 = k_begin; k0 < k_end; k0 += MM) {
        As[ty * (MM + 1) + tx] = (row < M && k0 + tx < k_end) ? A[row * a0 + (k0 + tx) * a1] : (real)0;
        Bs[ty * (MM + 1) + tx] = (k0 + ty < k_end && col < N) ? B[(k0 + ty) * b0 + col * b1] : (real)0;
        __syncthreads();
        for (int q = 0; q < MM; ++q) acc += As[ty * (MM + 1) + q] * Bs[q * (MM + 1) + tx];
        __syncthreads();
    }
    if (row < M && col < N) C[(long long)blockIdx.z * M * N + row * N + col] = acc;
}
"""


_TEMPLATE = r"""
typedef @REAL@ real;
#define K @K@
#define O_TILE @O_TILE@
#define ROW_LANES @ROW_LANES@

// knot idx of a row, extended past its ends with the row's mean spacing (those knots only
// shape bases that do not exist; they must just be finite and increasing)
__device__ __forceinline__ real knot(const real* g, int L, int idx, real step) {
    if (idx < 0) return g[0] + (real)idx * step;
    if (idx > L) return g[L] + (real)(idx - L) * step;
    return g[idx];
}

__device__ __forceinline__ real safe_div(real a, real d) { return d > (real)0 ? a / d : (real)0; }

extern "C" __global__ void locate_bases(const real* __restrict__ x, const real* __restrict__ grid,
                                        long long B, int n, int L, int need_d,
                                        int* __restrict__ cols, real* __restrict__ vals,
                                        real* __restrict__ dvals) {
    long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= B * n) return;
    int i = (int)(t % n);
    const real* g = grid + (long long)i * (L + 1);
    real xv = x[t];
    real* out = vals + t * (K + 1);
    real* dout = dvals + t * (K + 1);
    real t0 = g[0], tL = g[L];
    if (!(xv >= t0 && xv < tL)) {  // off the grid (or NaN): every basis vanishes
        cols[t] = 0;
        for (int q = 0; q <= K; ++q) {
            out[q] = (real)0;
            if (need_d) dout[q] = (real)0;
        }
        return;
    }
    int lo = 0, hi = L;  // g[lo] <= x < g[hi]
    while (hi - lo > 1) {
        int mid = (lo + hi) >> 1;
        if (g[mid] <= xv) lo = mid; else hi = mid;
    }
    int v = lo;
    real step = (tL - t0) / (real)L;
    real N[K + 1];
    real prev[K + 1];  // degree K - 1 bases v - K + 1 .. v, for the derivatives
    real left[K + 1];
    real right[K + 1];
    N[0] = (real)1;
    prev[0] = (real)1;
    for (int j = 1; j <= K; ++j) {
        left[j] = xv - knot(g, L, v + 1 - j, step);
        right[j] = knot(g, L, v + j, step) - xv;
        if (j == K)
            for (int r = 0; r < K; ++r) prev[r] = N[r];
        real saved = (real)0;
        for (int r = 0; r < j; ++r) {
            real temp = safe_div(N[r], right[r + 1] + left[j - r]);
            N[r] = saved + right[r + 1] * temp;
            saved = left[j - r] * temp;
        }
        N[j] = saved;
    }
    int nb = L - K;
    cols[t] = v - K;
    for (int q = 0; q <= K; ++q) {
        int b = v - K + q;  // basis index
        bool exists = b >= 0 && b < nb;
        out[q] = exists ? N[q] : (real)0;
        if (need_d) {
            real d = (real)0;
            if (K > 0 && exists) {
                // N'_{b,K} = K (N_{b,K-1} / (t_{b+K} - t_b) - N_{b+1,K-1} / (t_{b+K+1} - t_{b+1}))
                if (q >= 1) d += safe_div(prev[q - 1], knot(g, L, b + K, step) - knot(g, L, b, step));
                if (q <= K - 1) d -= safe_div(prev[q], knot(g, L, b + K + 1, step) - knot(g, L, b + 1, step));
                d *= (real)K;
            }
            dout[q] = d;
        }
    }
}

extern "C" __global__ void spline_fwd(const int* __restrict__ cols, const real* __restrict__ vals,
                                      const real* __restrict__ wt, long long B, int n, int m, int nb,
                                      real* __restrict__ y) {
    long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= B * m) return;
    int o = (int)(t % m);
    long long b = t / m;
    real acc = (real)0;
    for (int i = 0; i < n; ++i) {
        long long bi = b * n + i;
        int c = cols[bi];
        const real* v = vals + bi * (K + 1);
        const real* w = wt + (long long)i * nb * m + o;
        for (int q = 0; q <= K; ++q) {
            int j = c + q;
            if (j >= 0 && j < nb) acc += v[q] * w[(long long)j * m];
        }
    }
    y[t] = acc;
}

extern "C" __global__ void edge_fwd(const int* __restrict__ cols, const real* __restrict__ vals,
                                    const real* __restrict__ dvals, const real* __restrict__ wt,
                                    long long B, int n, int m, int nb, int need_d,
                                    real* __restrict__ spl, real* __restrict__ dspl) {
    long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;  // over (i, b, o)
    if (t >= (long long)n * B * m) return;
    int o = (int)(t % m);
    long long b = (t / m) % B;
    int i = (int)(t / (m * B));
    long long bi = b * n + i;
    int c = cols[bi];
    const real* v = vals + bi * (K + 1);
    const real* w = wt + (long long)i * nb * m + o;
    real acc = (real)0, dacc = (real)0;
    for (int q = 0; q <= K; ++q) {
        int j = c + q;
        if (j >= 0 && j < nb) {
            real wj = w[(long long)j * m];
            acc += v[q] * wj;
            if (need_d) dacc += dvals[bi * (K + 1) + q] * wj;
        }
    }
    spl[t] = acc;
    if (need_d) dspl[t] = dacc;
}

// g[b, o] of input i sits at g + i * g_stride_i + b * m + o (g_stride_i = 0: one (B, m) array
// for every input, the layer's output gradient; B * m: the per-edge gradients (n, B, m))
extern "C" __global__ void coef_grad_shared(const int* __restrict__ cols, const real* __restrict__ vals,
                                            const real* __restrict__ g, long long g_stride_i, long long B,
                                            int n, int m, int nb, long long rows_per_block,
                                            real* __restrict__ dwt) {
    extern __shared__ unsigned char smem[];
    real* acc = (real*)smem;  // (nb, O_TILE)
    int tx = threadIdx.x, ty = threadIdx.y;
    int lane_id = ty * O_TILE + tx;
    int o = blockIdx.x * O_TILE + tx;
    int i = blockIdx.y;
    for (int s = lane_id; s < nb * O_TILE; s += O_TILE * ROW_LANES) acc[s] = (real)0;
    __syncthreads();
    long long b0 = (long long)blockIdx.z * rows_per_block;
    long long b1 = b0 + rows_per_block < B ? b0 + rows_per_block : B;
    if (o < m) {
        const real* gi = g + (long long)i * g_stride_i + o;
        for (long long b = b0 + ty; b < b1; b += ROW_LANES) {
            long long bi = b * n + i;
            int c = cols[bi];
            const real* v = vals + bi * (K + 1);
            real gb = gi[b * m];
            for (int q = 0; q <= K; ++q) {
                int j = c + q;
                if (j >= 0 && j < nb) atomicAdd(&acc[j * O_TILE + tx], v[q] * gb);
            }
        }
    }
    __syncthreads();
    for (int s = lane_id; s < nb * O_TILE; s += O_TILE * ROW_LANES) {
        int j = s / O_TILE;
        int oo = blockIdx.x * O_TILE + s % O_TILE;
        real a = acc[s];
        if (oo < m && a != (real)0) atomicAdd(&dwt[((long long)i * nb + j) * m + oo], a);
    }
}

extern "C" __global__ void coef_grad_global(const int* __restrict__ cols, const real* __restrict__ vals,
                                            const real* __restrict__ g, long long g_stride_i, long long B,
                                            int n, int m, int nb, real* __restrict__ dwt) {
    long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;  // over (b, i, o)
    if (t >= B * n * m) return;
    int o = (int)(t % m);
    long long bi = t / m;
    int i = (int)(bi % n);
    long long b = bi / n;
    int c = cols[bi];
    const real* v = vals + bi * (K + 1);
    real gb = g[(long long)i * g_stride_i + b * m + o];
    for (int q = 0; q <= K; ++q) {
        int j = c + q;
        if (j >= 0 && j < nb && v[q] != (real)0) atomicAdd(&dwt[((long long)i * nb + j) * m + o], v[q] * gb);
    }
}

extern "C" __global__ void spline_dx(const int* __restrict__ cols, const real* __restrict__ dvals,
                                     const real* __restrict__ wt, const real* __restrict__ gy, long long B,
                                     int n, int m, int nb, real* __restrict__ dx) {
    long long warp = ((long long)blockIdx.x * blockDim.x + threadIdx.x) / 32;  // one warp per (b, i)
    int lane = threadIdx.x % 32;
    if (warp >= B * n) return;  // uniform across the warp
    long long b = warp / n;
    int i = (int)(warp % n);
    int c = cols[warp];
    const real* dv = dvals + warp * (K + 1);
    const real* gb = gy + b * m;
    real acc = (real)0;
    for (int q = 0; q <= K; ++q) {
        int j = c + q;
        if (j < 0 || j >= nb) continue;
        real d = dv[q];
        const real* w = wt + ((long long)i * nb + j) * m;
        for (int o = lane; o < m; o += 32) acc += d * w[o] * gb[o];
    }
    for (int off = 16; off > 0; off >>= 1) acc += __shfl_down_sync(0xffffffffu, acc, off);
    if (lane == 0) dx[warp] = acc;
}

extern "C" __global__ void scatter_dense(const int* __restrict__ cols, const real* __restrict__ vals,
                                         long long B, int n, int nb, real* __restrict__ dense) {
    long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;  // over (b, i, q)
    if (t >= B * n * (K + 1)) return;
    int q = (int)(t % (K + 1));
    long long bi = t / (K + 1);
    int i = (int)(bi % n);
    long long b = bi / n;
    int j = cols[bi] + q;
    if (j >= 0 && j < nb) dense[b * n * nb + (long long)i * nb + j] = vals[t];
}
"""
