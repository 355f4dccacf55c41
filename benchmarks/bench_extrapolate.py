"""What the linear continuation beyond the grids costs: forward and training-step time of
``KAN(extrapolate="linear")`` against the default ``"spline"``, same model, same data.

    python benchmarks/bench_extrapolate.py [--repeats 20] [--cases toy,mnist,fine,deep] [--backend numpy|cupy]

The cases and the step (forward + backward + Adam, full batch) are ``bench_step.py``'s; 'reg step'
is the same with the sparsification penalty (``common.kanarray_ops(regularized=True)``).  The
two modes' calls are interleaved in short blocks (``common.interleaved_medians``) so both see
the same machine load.  Prints a markdown table of medians and the ratio linear / spline; on
NumPy with numba, also the linear model's regularized step with the compiled per-edge passes
switched off (the path such models took before those passes knew the lines).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from common import ALL_CASES, CASES, interleaved_medians, kanarray_ops  # noqa: E402

import array_api_compat.numpy as npx  # noqa: E402

from kanarray.backends import get_kernels  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--cases", default=None, help=f"comma-separated, from {list(ALL_CASES)}")
    parser.add_argument("--backend", default="numpy", choices=["numpy", "cupy"])
    args = parser.parse_args(argv)
    names = (args.cases or ",".join(ALL_CASES if args.backend == "cupy" else CASES)).split(",")
    print(f"{platform.machine()} {platform.system()}, {os.cpu_count()} CPUs, NumPy {np.__version__}, "
          f"backend {args.backend}, median of {args.repeats}")
    kernels = get_kernels(npx) if args.backend == "numpy" else None
    compiled = kernels is not None and getattr(kernels, "fused", False)
    print("| case | op | spline ms | linear ms | linear / spline |"
          + (" linear, NumPy passes ms | NumPy passes / compiled |" if compiled else ""))
    print("|---|---|---|---|---|" + ("---|---|" if compiled else ""))
    for name in names:
        case = ALL_CASES[name]
        ops = {}
        for mode in ("spline", "linear"):
            ops.update({(mode, op): fn for op, fn in kanarray_ops(case, backend=args.backend,
                                                                  extrapolate=mode, regularized=True).items()})
        if compiled:  # the regularized step of a linear model without numba's per-edge passes
            ops[("unfused", "reg step")] = _without_compiled_passes(
                kanarray_ops(case, extrapolate="linear", regularized=True)["reg step"], kernels)
        got = interleaved_medians(ops, args.repeats)
        for op in ("forward", "step", "reg step"):
            a, b = got[("spline", op)], got[("linear", op)]
            row = f"| {name} {case['width']} G={case['grid']} | {op} | {a:.2f} | {b:.2f} | {b / a:.2f}x |"
            if compiled:
                c = got.get(("unfused", op))
                row += " - | - |" if c is None else f" {c:.2f} | {c / b:.2f}x |"
            print(row, flush=True)


def _without_compiled_passes(fn, kernels):
    """fn run with the NumPy kernels' compiled per-edge passes switched off."""
    def run():
        kernels.fused = False
        try:
            fn()
        finally:
            kernels.fused = True
    return run


if __name__ == "__main__":
    main()
