"""What multiplication nodes cost: a KAN with them against one with addition nodes in their place.

    python benchmarks/bench_nodes.py [--repeats 30]

For each case, the model with multiplication nodes (``kanarray.nodes``, e.g. [2, [5, 2], 1]) and two
KANs of addition nodes only are timed in this process, interleaved: "same sums" has as many addition
nodes as the first has sums ([2, 9, 1]: the same edges into each layer, more out of it), and "same
nodes" as many as it has nodes ([2, 7, 1]: the same edges out, fewer in).  The node stage's own cost
is the gap to the nearer of the two (``common.interleaved_medians``): the forward pass, the training step's objective and
gradients (``value_and_grad``) and the same with the sparsity penalty (lamb = 1e-3, the per-edge
path).  One library in one process, so the ratio is fair; medians in ms and the ratio printed.
"""

from __future__ import annotations

import argparse

import numpy as np
from common import interleaved_medians

import kanarray as ka

CASES = {  # (width with multiplication nodes, batch): the node stage against the sums it reads
    "toy [2,[5,2],1]": ([2, [5, 2], 1], 1000),
    "wide [8,[32,16],1]": ([8, [32, 16], 1], 4096),
    "deep [4,[8,4],[8,4],1]": ([4, [8, 4], [8, 4], 1], 4096),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    print("| case | op | multiplication nodes (ms) | same sums (ms) | same nodes (ms) | ratio to same sums | "
          "ratio to same nodes |")
    print("|---|---|---|---|---|---|---|")
    for name, (width, batch) in CASES.items():
        model = ka.KAN(width, grid=5, seed=0)
        sums = [model.width[0]] + [layer.out_dim for layer in model.layers]
        same_sums = ka.KAN(sums, grid=5, seed=0)
        same_nodes = ka.KAN(model.width, grid=5, seed=0)
        rng = np.random.default_rng(0)
        x = rng.uniform(-1, 1, (batch, model.width[0]))
        y = rng.uniform(-1, 1, (batch, 1))
        ops = {}
        for label, m in (("nodes", model), ("sums", same_sums), ("plain", same_nodes)):
            ops[("forward", label)] = lambda m=m: m(x)
            ops[("step", label)] = lambda m=m: m.value_and_grad(x, y)
            ops[("step lamb=1e-3", label)] = lambda m=m: m.value_and_grad(x, y, lamb=1e-3)
        times = interleaved_medians(ops, args.repeats)
        for op in ("forward", "step", "step lamb=1e-3"):
            a, b, c = (times[(op, label)] for label in ("nodes", "sums", "plain"))
            print(f"| {name} | {op} | {a:.3f} | {b:.3f} | {c:.3f} | {a / b:.2f} | {a / c:.2f} |")


if __name__ == "__main__":
    main()
