"""pykan's PDE example (Poisson on [-1, 1]^2) solved by kanarray's jets and by pykan's own autograd version,
each library alone in its own process, the processes alternating over ``--rounds``.

    python benchmarks/pde_vs_pykan.py [--rounds 3] [--steps 50] [--seed 1] [--grids 5,10,20] [--no-pykan]
                                      [--json PATH]

The problem (pykan 0.2.8's docs, "Example 6: Solving Partial Differential Equation" and its accuracy
version): u_xx + u_yy = -2 pi^2 sin(pi x) sin(pi y), u = 0 on the boundary, exact solution
sin(pi x) sin(pi y); loss alpha * mean(residual^2) + mean(boundary residual^2), alpha = 0.01; 21^2
interior points drawn uniformly (the same points for both libraries, data seed 0), 21 points per side on
the boundary; a [2, 2, 1] KAN (k = 3, the given seed), grids 5 -> 10 -> 20 by refine, ``--steps``
L-BFGS steps per grid (pykan's LBFGS settings), grid updates from the collocation points every 5 steps
in the first 50.  pykan computes the Laplacian by nested ``torch.autograd.functional.jacobian`` (its
example's code, written out here), kanarray by its second-order jets (``model.fit(problem)``).

Reports per library the median over rounds of: seconds per L-BFGS step, seconds end to end (all grids),
and the L2 error (mean squared error against the exact solution on the interior points, pykan's "l2",
and on 2500 fresh test points); then the ratios pykan / kanarray.  torch and NumPy run with 2 threads
(this machine's cores) in their own processes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def points():
    """(interior (441, 2), boundary (84, 2), test (2500, 2)) host float64: the reproduction's points
    (``kanarray.reproduce.pde.square_points``; only NumPy's generator runs, no kanarray computation)."""
    sys.path.insert(0, ROOT)
    from kanarray.reproduce.pde import square_points

    return square_points()


def exact(x):
    return np.sin(np.pi * x[:, :1]) * np.sin(np.pi * x[:, 1:2])


def run_kanarray(args):
    sys.path.insert(0, ROOT)
    import sympy

    import kanarray as ka
    from kanarray.pde import Problem, Term

    interior, boundary, test = points()
    x, y = sympy.symbols("x y")
    u = sympy.Function("u")(x, y)
    source = -2 * sympy.pi**2 * sympy.sin(sympy.pi * x) * sympy.sin(sympy.pi * y)
    problem = Problem([x, y], [u], [Term(sympy.diff(u, x, 2) + sympy.diff(u, y, 2) - source, interior, 0.01,
                                         name="pde"), Term(u, boundary, 1.0, name="bc")])
    start = time.perf_counter()
    model = ka.KAN([2, 2, 1], grid=args.grids[0], k=3, seed=args.seed)
    step_seconds, errors = [], []
    for stage, grid in enumerate(args.grids):
        if stage:
            model = model.refine(grid)
        t0 = time.perf_counter()
        model.fit(problem, steps=args.steps, opt="lbfgs", progress=False)
        step_seconds.append((time.perf_counter() - t0) / args.steps)
        errors.append(float(np.mean((np.asarray(model(interior)) - exact(interior)) ** 2)))
    total = time.perf_counter() - start
    test_error = float(np.mean((np.asarray(model(test)) - exact(test)) ** 2))
    return dict(step_s=step_seconds, total_s=total, l2=errors, test_l2=test_error, package=ka.__file__)


def run_pykan(args):
    import torch
    from kan import KAN
    from kan.LBFGS import LBFGS

    torch.set_default_dtype(torch.float64)
    interior, boundary, test = (torch.tensor(a) for a in points())
    sol = lambda x: torch.sin(torch.pi * x[:, [0]]) * torch.sin(torch.pi * x[:, [1]])  # noqa: E731
    source = lambda x: -2 * torch.pi**2 * sol(x)  # noqa: E731

    def batch_jacobian(func, x, create_graph=False):  # pykan's example
        def summed(x):
            return func(x).sum(dim=0)
        return torch.autograd.functional.jacobian(summed, x, create_graph=create_graph).permute(1, 0, 2)

    start = time.perf_counter()
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        model = KAN(width=[2, 2, 1], grid=args.grids[0], k=3, seed=args.seed, auto_save=False, ckpt_path=tmp)
        step_seconds, errors = [], []
        for stage, grid in enumerate(args.grids):
            if stage:
                model = model.refine(grid)
            optimizer = LBFGS(model.parameters(), lr=1, history_size=10, line_search_fn="strong_wolfe",
                              tolerance_grad=1e-32, tolerance_change=1e-32, tolerance_ys=1e-32)
            t0 = time.perf_counter()
            for step in range(args.steps):
                def closure():
                    optimizer.zero_grad()
                    d1 = lambda x: batch_jacobian(model, x, create_graph=True)[:, 0, :]  # noqa: E731
                    d2 = batch_jacobian(d1, interior, create_graph=True)
                    lap = torch.sum(torch.diagonal(d2, dim1=1, dim2=2), dim=1, keepdim=True)
                    pde_loss = torch.mean((lap - source(interior)) ** 2)
                    bc_loss = torch.mean((model(boundary) - sol(boundary)) ** 2)
                    loss = 0.01 * pde_loss + bc_loss
                    loss.backward()
                    return loss
                if step % 5 == 0 and step < 50:
                    model.update_grid_from_samples(torch.cat([interior, boundary]))
                optimizer.step(closure)
            step_seconds.append((time.perf_counter() - t0) / args.steps)
            with torch.no_grad():
                errors.append(float(torch.mean((model(interior) - sol(interior)) ** 2)))
        total = time.perf_counter() - start
        with torch.no_grad():
            test_error = float(torch.mean((model(test) - sol(test)) ** 2))
    return dict(step_s=step_seconds, total_s=total, l2=errors, test_l2=test_error, package="pykan")


def child(library: str, args) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="2", OPENBLAS_NUM_THREADS="2", MKL_NUM_THREADS="2")
    cmd = [sys.executable, os.path.abspath(__file__), "--child", library, "--steps", str(args.steps), "--seed",
           str(args.seed), "--grids", ",".join(map(str, args.grids))]
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--grids", type=lambda s: [int(g) for g in s.split(",")], default=[5, 10, 20])
    parser.add_argument("--no-pykan", action="store_true")
    parser.add_argument("--child", choices=("kanarray", "pykan"), default=None)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_kanarray(args) if args.child == "kanarray" else run_pykan(args)))
        return
    libraries = ["kanarray"] + ([] if args.no_pykan else ["pykan"])
    runs = {lib: [] for lib in libraries}
    for r in range(args.rounds):
        for lib in (libraries if r % 2 == 0 else libraries[::-1]):
            runs[lib].append(child(lib, args))
            print(f"round {r} {lib}: {json.dumps(runs[lib][-1])}", file=sys.stderr)
    med = {lib: dict(step_ms=1e3 * statistics.median(statistics.mean(run["step_s"]) for run in rs),
                     total_s=statistics.median(run["total_s"] for run in rs),
                     l2=[statistics.median(run["l2"][g] for run in rs) for g in range(len(args.grids))],
                     test_l2=statistics.median(run["test_l2"] for run in rs)) for lib, rs in runs.items()}
    print(f"Poisson, [2, 2, 1] KAN seed {args.seed}, grids {args.grids}, {args.steps} L-BFGS steps per grid, "
          f"{args.rounds} rounds (medians)\n")
    print("| library | ms per step | end to end (s) | " + " | ".join(f"l2 at G={g}" for g in args.grids)
          + " | test l2 |")
    print("|---|---|---|" + "---|" * len(args.grids) + "---|")
    for lib, m in med.items():
        print(f"| {lib} | {m['step_ms']:.1f} | {m['total_s']:.2f} | " + " | ".join(f"{v:.2e}" for v in m["l2"])
              + f" | {m['test_l2']:.2e} |")
    if "pykan" in med:
        a, b = med["kanarray"], med["pykan"]
        print(f"\npykan / kanarray: {b['step_ms'] / a['step_ms']:.1f}x per step, {b['total_s'] / a['total_s']:.1f}x "
              f"end to end; l2 ratio at the last grid {a['l2'][-1] / b['l2'][-1]:.2f} (kanarray / pykan)")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"script": "pde_vs_pykan", "medians": med, "runs": runs}, f, indent=1)


if __name__ == "__main__":
    main()
