"""The cost of input derivatives: a second-order jet step (forward and reverse) next to a plain training
step on the same model and batch, on NumPy.

    python benchmarks/bench_jets.py [--repeats 30] [--backend numpy|cupy] [--json PATH]

Per case (one library, kanarray, in this process; one BLAS thread so the ratio measures the work, not
thread scheduling): the plain step ``model.value_and_grad(x, y)`` (mse); the first-order jet step
``model.derivatives_vjp(x, gu, gdu, order=1)`` and the second-order one (``order=2``, the diagonal, what a
Laplacian needs; "mixed": every d2/dx_a dx_b) with random cotangents; for the PDE cases also one
evaluation of pykan's Poisson problem (``problem.value_and_grad``: the second-order jets on 441 interior
points, the values on 84 boundary points, the first layer's features kept between calls as in ``fit``).
Medians of interleaved calls (``common.interleaved_medians``), in ms, and the ratio to the plain step.
With ``--backend cupy`` every call ends with a device synchronisation (the jets' generic array-API path).
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from common import interleaved_medians, write_json  # noqa: E402

import kanarray as ka  # noqa: E402
from kanarray.mlp import MLP  # noqa: E402

CASES = {
    "poisson [2,2,1] G5": dict(width=[2, 2, 1], grid=5, batch=441, pde=True),
    "poisson [2,2,1] G20": dict(width=[2, 2, 1], grid=20, batch=441, pde=True),
    "poisson [2,10,1] G20": dict(width=[2, 10, 1], grid=20, batch=441, pde=True),
    "toy [2,5,1] G5": dict(width=[2, 5, 1], grid=5, batch=1000),
    "3-d [3,16,16,1] G10": dict(width=[3, 16, 16, 1], grid=10, batch=4096),
    "MLP [2,100,100,100,1]": dict(width=[2, 100, 100, 100, 1], batch=441, mlp=True),
}


def operations(case, backend="numpy") -> dict:
    rng = np.random.default_rng(0)
    n, m, B = case["width"][0], case["width"][-1], case["batch"]
    if case.get("mlp"):
        model = MLP(case["width"], activation="tanh", seed=0, backend=backend)
    else:
        model = ka.KAN(case["width"], grid=case["grid"], k=3, seed=0, backend=backend)
    put = model.xp.asarray
    x, y = put(rng.uniform(-1, 1, (B, n))), put(rng.uniform(-1, 1, (B, m)))
    gu, gdu, gd2u = put(rng.normal(size=(B, m))), put(rng.normal(size=(B, m, n))), put(rng.normal(size=(B, m, n)))
    gmix = put(rng.normal(size=(B, m, n, n)))
    sync = (lambda: None) if backend == "numpy" else __import__("cupy").cuda.Device().synchronize

    def synced(fn):
        return lambda: (fn(), sync())

    ops = {"plain step": synced(lambda: model.value_and_grad(x, y)),
           "jets order 1": synced(lambda: model.derivatives_vjp(x, gu, gdu, order=1)),
           "jets order 2": synced(lambda: model.derivatives_vjp(x, gu, gdu, gd2u, order=2)),
           "jets order 2 mixed": synced(lambda: model.derivatives_vjp(x, gu, gdu, gmix, order=2, mixed=True))}
    if case.get("pde"):
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from kanarray.reproduce.pde import poisson_problem, square_points

        interior, boundary, _ = square_points()
        problem = poisson_problem(interior, boundary)
        ops["Poisson objective"] = synced(lambda: problem.value_and_grad(model))
    return ops


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--backend", default="numpy", choices=("numpy", "cupy"))
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    print(f"backend {args.backend}\n")
    names = ["plain step", "jets order 1", "jets order 2", "jets order 2 mixed", "Poisson objective"]
    print("| case | batch | " + " | ".join(f"{n} ms" for n in names) + " | order 2 / plain |")
    print("|---|---|" + "---|" * len(names) + "---|")
    times, rows = {}, []
    for label, case in CASES.items():
        med = interleaved_medians(operations(case, args.backend), args.repeats)
        times.update({f"{label}: {k}": v for k, v in med.items()})
        cells = [f"{med[n]:.2f}" if n in med else "-" for n in names]
        ratio = med["jets order 2"] / med["plain step"]
        rows.append([label, case["batch"], *cells, ratio])
        print(f"| {label} | {case['batch']} | " + " | ".join(cells) + f" | {ratio:.1f}x |", flush=True)
    write_json(args.json, "bench_jets", times, rows=rows)


if __name__ == "__main__":
    main()
