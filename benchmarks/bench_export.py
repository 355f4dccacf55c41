"""Time and peak memory of ``kanarray.export.to_onnx`` (building the graph; nothing runs it).

    python benchmarks/bench_export.py [--against DIR] [--repeats 5]

Cases: ``common.ALL_CASES``, the six (the core issue's four and the CuPy issue's two large ones), with
their dtypes, on freshly initialized models.  Each case runs in its own process (so peak memory is its
own; one BLAS thread).  ``--against DIR``: also measure the kanarray package found in DIR (e.g.
an older commit unpacked with ``git archive OLD kanarray | tar -x -C DIR``), alternating with this
checkout, and print the ratio.  Prints a markdown table of medians.
"""

from __future__ import annotations

from common import ALL_CASES, compared_row, parse_args, print_header

CHILD = r"""
import json, resource, statistics, sys, time
import kanarray as ka
from kanarray.export import to_onnx
width, G, dtype, repeats = json.loads(sys.argv[1])
model = ka.KAN(width, grid=G, seed=0, dtype=dtype)
to_onnx(model, dtype=dtype)  # warm-up: imports onnx and onnxruntime (for the opset)
times = []
for _ in range(repeats):
    t = time.perf_counter()
    to_onnx(model, dtype=dtype)
    times.append(time.perf_counter() - t)
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"ms": 1e3 * statistics.median(times), "peak_mb": peak_mb, "package": ka.__file__}))
"""


def main() -> None:
    args = parse_args(__doc__)
    print_header(["case"], args.against)
    for name, case in ALL_CASES.items():
        label = f"{name} {case['width']} G={case['grid']} {case['dtype']}"
        print(compared_row([label], CHILD, [case["width"], case["grid"], case["dtype"], args.repeats], args.against),
              flush=True)


if __name__ == "__main__":
    main()
