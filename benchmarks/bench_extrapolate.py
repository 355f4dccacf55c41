"""What the linear continuation beyond the grids costs: forward and training-step time of
``KAN(extrapolate="linear")`` against the default ``"spline"``, same model, same data.

    python benchmarks/bench_extrapolate.py [--repeats 20] [--cases toy,mnist,fine,deep] [--backend numpy|cupy]

The cases and the step (forward + backward + Adam, full batch) are ``bench_step.py``'s; 'reg step'
is the same with the sparsification penalty (``bench_step.kanarray_ops(regularized=True)``).  The
two modes' calls are interleaved in short blocks (``bench_step.interleaved_medians``) so both see
the same machine load.  Prints a markdown table of medians and the ratio linear / spline.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_step import ALL_CASES, CASES, interleaved_medians, kanarray_ops  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--cases", default=None, help=f"comma-separated, from {list(ALL_CASES)}")
    parser.add_argument("--backend", default="numpy", choices=["numpy", "cupy"])
    args = parser.parse_args(argv)
    names = (args.cases or ",".join(ALL_CASES if args.backend == "cupy" else CASES)).split(",")
    print(f"{platform.machine()} {platform.system()}, {os.cpu_count()} CPUs, NumPy {np.__version__}, "
          f"backend {args.backend}, median of {args.repeats}")
    print("| case | op | spline ms | linear ms | linear / spline |")
    print("|---|---|---|---|---|")
    for name in names:
        case = ALL_CASES[name]
        ops = {}
        for mode in ("spline", "linear"):
            ops.update({(mode, op): fn for op, fn in kanarray_ops(case, backend=args.backend,
                                                                  extrapolate=mode, regularized=True).items()})
        got = interleaved_medians(ops, args.repeats)
        for op in ("forward", "step", "reg step"):
            a, b = got[("spline", op)], got[("linear", op)]
            print(f"| {name} {case['width']} G={case['grid']} | {op} | {a:.2f} | {b:.2f} | {b / a:.2f}x |",
                  flush=True)


if __name__ == "__main__":
    main()
