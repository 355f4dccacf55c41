"""Dense (BLAS) against sparse (scipy CSR) contraction in the NumPy kernels, across G.

    python benchmarks/bench_contraction.py [--batch 4096] [--n-in 16] [--n-out 16] [--k 3] [--repeats 15]

Times one forward + backward (with dx) of a layer's spline part for each G, both modes
interleaved, median of ``--repeats``, and prints which contraction ``choose_contraction`` picks.  The rule in
kanarray/backends/numpy.py should pick the faster one, or one within noise of it.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import array_api_compat.numpy as npx  # noqa: E402

from kanarray import spline  # noqa: E402
from kanarray.backends.numpy import NumpyKernels, choose_contraction  # noqa: E402

from common import interleaved_medians  # noqa: E402  (benchmarks/ is on sys.path when run as a script)


def forward_backward(mode, x, grid, weight, gy, k):
    kernels = NumpyKernels(mode)

    def run():
        _, ctx = kernels.spline_forward(x, grid, weight, k, need_dx=True)
        kernels.spline_backward(ctx, gy, need_dx=True)

    return run


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=4096)
    p.add_argument("--n-in", type=int, default=16)
    p.add_argument("--n-out", type=int, default=16)
    p.add_argument("--k", type=int, default=3)
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--grids", default="3,5,10,20,30,50,100,200,500,1000")
    args = p.parse_args(argv)
    rng = np.random.default_rng(0)
    B, n, m, k = args.batch, args.n_in, args.n_out, args.k
    x = rng.uniform(-1, 1, (B, n)).astype(np.float32)
    gy = rng.normal(size=(B, m)).astype(np.float32)
    print(f"# batch {B}, n_in {n}, n_out {m}, k {k}, float32, median of {args.repeats} (forward + backward ms)")
    print("| G | dense ms | sparse ms | faster | auto picks |")
    print("|---|---|---|---|---|")
    for G in (int(g) for g in args.grids.split(",")):
        grid = np.asarray(spline.uniform_grid(n, G, k, (-1, 1), xp=npx, dtype=np.float32))
        weight = rng.normal(size=(n, m, G + k)).astype(np.float32)
        ops = {mode: forward_backward(mode, x, grid, weight, gy, k) for mode in ("dense", "sparse")}
        got = interleaved_medians(ops, args.repeats, warmup=2)
        dense, sparse = got["dense"], got["sparse"]
        faster = "dense" if dense < sparse else "sparse"
        print(f"| {G} | {dense:.2f} | {sparse:.2f} | {faster} | {choose_contraction(B, n, m, G + k, k)} |", flush=True)


if __name__ == "__main__":
    main()
