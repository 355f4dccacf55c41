"""Time and peak memory of one regularized evaluation (objective + gradients with lamb > 0, as
``fit`` runs it every step), on the NumPy backend with and without the compiled passes.

    python benchmarks/bench_regularized.py [--against DIR] [--repeats 5]

Each configuration runs in its own process (so peak memory is its own; one BLAS thread).
``--against DIR``: also time the kanarray package found in DIR (e.g. an older commit unpacked
with ``git archive OLD kanarray | tar -x -C DIR``), in the same invocation, alternating with
this checkout, and print the ratio.  Prints a markdown table of medians.
"""

from __future__ import annotations

from common import compared_row, parse_args, print_header

CASES = [([2, 5, 1], 1000, 5), ([4, 16, 1], 4096, 100), ([16, 64, 64, 1], 16384, 10)]

CHILD = r"""
import json, resource, statistics, sys, time
import numpy as np
import kanarray as ka
from kanarray.objective import evaluate
from kanarray.regularization import Regularization
width, B, G, repeats = json.loads(sys.argv[1])
rng = np.random.default_rng(0)
x = rng.uniform(-1, 1, (B, width[0]))
y = np.sum(np.sin(np.pi * x), axis=1, keepdims=True)
model = ka.KAN(width, grid=G, seed=0)
reg, cache = Regularization(1e-3), {}
evaluate(model, x, y, reg=reg, cache=cache)  # warm-up (and numba's compile or cache load)
start = time.perf_counter()
evaluate(model, x, y, reg=reg, cache=cache)
inner = max(1, int(0.5 / (time.perf_counter() - start)))  # calls per sample: about half a second
times = []
for _ in range(repeats):
    t = time.perf_counter()
    for _ in range(inner):
        evaluate(model, x, y, reg=reg, cache=cache)
    times.append((time.perf_counter() - t) / inner)
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"ms": 1e3 * statistics.median(times), "peak_mb": peak_mb, "package": ka.__file__}))
"""


def main() -> None:
    args = parse_args(__doc__)
    try:
        import numba  # noqa: F401

        settings = [False, True]
    except ImportError:
        settings = [False]
    print_header(["case", "numba"], args.against)
    for case in CASES:
        for numba in settings:
            cells = [f"{case[0]} B={case[1]} G={case[2]}", "on" if numba else "off"]
            print(compared_row(cells, CHILD, [*case, args.repeats], args.against,
                               {"KANARRAY_NUMBA": "1" if numba else "0"}), flush=True)


if __name__ == "__main__":
    main()
