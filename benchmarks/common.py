"""What the benchmark scripts share: the cases, the operations they time, interleaved medians,
one library per fresh process for the peer comparisons (``run_alone``, ``alternate``), process
isolation for peak-memory measurements, and the machine-readable ``--json`` output.

A script in this folder imports it as ``import common`` / ``from common import ...``: a script's
own folder is first on ``sys.path`` when it runs as ``python benchmarks/NAME.py``, so no path
edit is needed for that.  This module imports kanarray (and pykan, efficient-kan, torch, CuPy)
only inside the functions that use them, so a script puts its checkout (``kanarray_root()``) on
``sys.path`` before or after importing it, as it likes.  Not a script: nothing runs here.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the checkout holding this folder

# -- the cases -------------------------------------------------------------------------------

CASES = {
    "toy": dict(width=[2, 5, 1], grid=5, batch=1000, dtype="float64"),
    "mnist": dict(width=[784, 64, 10], grid=5, batch=1024, dtype="float32"),
    "fine": dict(width=[4, 16, 1], grid=100, batch=4096, dtype="float32"),
    "deep": dict(width=[16, 64, 64, 1], grid=10, batch=4096, dtype="float32"),
}
GPU_CASES = {  # the CuPy issue's large cases, too heavy for the CPU runs
    "wide": dict(width=[1000, 1000, 1], grid=5, batch=100, dtype="float32"),
    "big": dict(width=[64, 256, 256, 64], grid=100, batch=16384, dtype="float32"),
}
ALL_CASES = {**CASES, **GPU_CASES}


def data(case, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (case["batch"], case["width"][0])).astype(case["dtype"])
    y = rng.uniform(-1, 1, (case["batch"], case["width"][-1])).astype(case["dtype"])
    return x, y


def jittered_grids(case, seed=1):
    """Sorted knots moved by up to 20% of a cell: what a grid update leaves (non-uniform rows)."""
    rng = np.random.default_rng(seed)
    G, k, w = case["grid"], 3, case["width"]
    h = 2.0 / G
    base = np.linspace(-1 - k * h, 1 + k * h, G + 2 * k + 1)
    return [np.sort(base + rng.uniform(-0.2 * h, 0.2 * h, (w[l], base.size)), axis=1).astype(case["dtype"])
            for l in range(len(w) - 1)]


# -- the operations timed --------------------------------------------------------------------

def kanarray_ops(case, backend="numpy", nonuniform=False, extrapolate="spline", regularized=False, graph=False):
    """{'forward': fn, 'step': fn} for kanarray on this case (on CuPy each call ends with a
    device synchronisation); extrapolate: ``KAN``'s.  regularized: also 'reg step', the
    sparsification-regularized objective and its gradients (lamb 0.01, the batch fixed as in
    ``fit``: the first layer through the Gram shortcut, later ones edge by edge) and Adam."""
    import kanarray as ka
    from kanarray.objective import evaluate
    from kanarray.optim import Adam
    from kanarray.regularization import Regularization

    model = ka.KAN(case["width"], grid=case["grid"], k=3, dtype=case["dtype"], backend=backend, seed=0,
                   extrapolate=extrapolate)
    if nonuniform:
        for layer, grid in zip(model.layers, jittered_grids(case)):
            layer.grid[...] = model.xp.asarray(grid)
    x, y = (model.xp.asarray(a) for a in data(case))
    opt = Adam(model.parameters(), lr=1e-4)
    sync = _cupy_sync if backend == "cupy" else (lambda: None)

    def forward():
        model(x)
        sync()

    def step():
        _, grads = model.value_and_grad(x, y)
        opt.step(grads)
        sync()

    ops = {"forward": forward, "step": step}
    if backend == "cupy" and graph:
        from kanarray.backends.cuda_graph import GraphedEvaluation

        cache = {}
        opt.step(evaluate(model, x, y, cache=cache).grads)  # eager first, as fit does
        replay = GraphedEvaluation(lambda: evaluate(model, x, y, cache=cache), model, (x, y))

        def graph_step():
            opt.step(replay().grads)
            sync()

        ops["graph step"] = graph_step
    if regularized:
        reg, cache = Regularization(lamb=0.01), {}

        def reg_step():
            opt.step(evaluate(model, x, y, reg=reg, cache=cache).grads)
            sync()

        ops["reg step"] = reg_step
    return ops


def _cupy_sync():
    import cupy

    cupy.cuda.get_current_stream().synchronize()


def pykan_ops(case, nonuniform=False, device="cpu"):
    """{'forward': fn, 'step': fn} for pykan on this case; torch's default dtype must be the
    case's while they run.  device "cuda": each call ends with torch.cuda.synchronize()."""
    import torch
    from kan import KAN as PyKAN

    with tempfile.TemporaryDirectory() as tmp:
        # pykan rewrites the width list it is given: pass a copy
        model = PyKAN(list(case["width"]), grid=case["grid"], k=3, seed=0, auto_save=False,
                      ckpt_path=os.path.join(tmp, "ckpt"), device=device)
    model.speed()
    if nonuniform:
        for layer, grid in zip(model.act_fun, jittered_grids(case)):
            layer.grid.data = torch.from_numpy(grid).to(device)
    return _torch_ops(model, case, device)


def efficient_kan_ops(case, device="cpu", nonuniform=False):
    """{'forward': fn, 'step': fn} for efficient-kan (``efficient_kan.KAN(width, grid_size=G,
    spline_order=3)``, a torch module; not a kanarray dependency) on this case, the same data and
    step as ``pykan_ops`` (full batch, MSE, backward, Adam lr 1e-4); torch's default dtype must be
    the case's while they run.  device "cuda": each call ends with torch.cuda.synchronize()."""
    import efficient_kan
    import torch

    torch.manual_seed(0)  # efficient-kan takes no seed: its initialisation draws from torch's generator
    model = efficient_kan.KAN(list(case["width"]), grid_size=case["grid"], spline_order=3).to(device)
    if nonuniform:
        with torch.no_grad():
            for layer, grid in zip(model.layers, jittered_grids(case)):
                layer.grid.copy_(torch.from_numpy(grid))
    return _torch_ops(model, case, device)


def _torch_ops(model, case, device):
    """The timed forward and training step of a torch KAN module (shared by the torch peers)."""
    import torch

    x, y = (torch.from_numpy(a).to(device) for a in data(case))
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def forward():
        with torch.no_grad():
            model(x)
        sync()

    def step():
        opt.zero_grad()
        loss = torch.mean((model(x) - y) ** 2)
        loss.backward()
        opt.step()
        sync()

    return {"forward": forward, "step": step}


# -- timing ----------------------------------------------------------------------------------

def interleaved_medians(ops: dict, repeats: int, warmup: int = 3, block: int = 3) -> dict:
    """Median ms of each callable over ``repeats`` samples.

    The operations take turns in blocks of ``block`` consecutive calls (in a rotating order),
    so that both libraries see the same machine load; the first call of each block only
    re-warms the caches after the other operations and is not timed.
    """
    for fn in ops.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in ops}
    names = list(ops)
    rounds = -(-repeats // (block - 1))
    for r in range(rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:
            ops[name]()
            for _ in range(block - 1):
                t = time.perf_counter()
                ops[name]()
                times[name].append(time.perf_counter() - t)
    return {name: 1e3 * statistics.median(ts[:repeats]) for name, ts in times.items()}


# -- one library per fresh process (the peer comparisons) ------------------------------------
#
# Timing two libraries in one process is unfair to the second: on a small machine NumPy's
# OpenBLAS workers keep spinning after a call and take the cores from torch's threads (on 2
# cores, efficient-kan's toy step went from 16 ms to 414 ms after a block of NumPy calls).  So
# a comparison script runs itself again in "worker" mode, once per library and round, each
# worker alone in a fresh process (``run_alone``), the libraries in a rotated order each round
# (``alternate``); the parent reports the median over rounds of each worker's own figures.
# The torch workers need the machine otherwise idle: with another process busy on one of the 2
# cores, efficient-kan's toy step took 530 ms with torch's 2 threads and 3 ms with one.

ROOT_ENV = "KANARRAY_BENCH_ROOT"  # run_alone's children take kanarray from this folder


class WorkerFailed(RuntimeError):
    """A worker process exited with an error, or printed no JSON object as its last line."""


def kanarray_root() -> str:
    """The folder a script puts first on ``sys.path`` for kanarray: ``$KANARRAY_BENCH_ROOT``
    (``run_alone`` sets it to the parent's kanarray, so that a worker measures the same package,
    e.g. under compare_versions.py) or the checkout holding this folder."""
    return os.environ.get(ROOT_ENV) or ROOT


def _parent_kanarray_root() -> str:
    module = sys.modules.get("kanarray")
    if module is not None and getattr(module, "__file__", None):
        return os.path.dirname(os.path.dirname(os.path.realpath(module.__file__)))
    return os.path.realpath(kanarray_root())


def installed(module: str) -> bool:
    """Whether ``module`` can be imported here (checked without importing it)."""
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def run_alone(script_path: str, argv: list[str], timeout: float | None = None) -> dict:
    """Run ``sys.executable script_path *argv`` in a fresh process, its working directory a new
    temp dir, and return the JSON object it prints as its last stdout line, with "wall_s": the
    seconds from spawn to exit, seen from outside.  The child inherits the environment (no
    thread settings are added) plus ``$KANARRAY_BENCH_ROOT`` = this process's kanarray; if the
    child reports "package" (``kanarray.__file__``), it is checked to lie there.  Raises
    ``WorkerFailed`` with the tail of the child's stderr if it fails."""
    root = _parent_kanarray_root()
    env = dict(os.environ, **{ROOT_ENV: root})
    cmd = [sys.executable, os.path.abspath(script_path), *map(str, argv)]
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        try:
            proc = subprocess.run(cmd, env=env, cwd=tmp, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise WorkerFailed(f"{os.path.basename(script_path)} {' '.join(map(str, argv))}: "
                               f"timed out after {timeout} s") from exc
        wall = time.perf_counter() - start
    tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise WorkerFailed(f"{os.path.basename(script_path)} {' '.join(map(str, argv))}: exit status "
                           f"{proc.returncode}; stderr ends:\n{tail}")
    try:
        result = json.loads(lines[-1])
    except ValueError as exc:
        raise WorkerFailed(f"{os.path.basename(script_path)} {' '.join(map(str, argv))}: last line is not "
                           f"JSON: {lines[-1][:200]!r}; stderr ends:\n{tail}") from exc
    package = result.get("package")
    if package and not os.path.realpath(package).startswith(root + os.sep):
        raise WorkerFailed(f"the worker measured the kanarray in {package}, not the one in {root}")
    result["wall_s"] = wall
    return result


def alternate(labels: list[str], rounds: int, run_one) -> dict:
    """{label: [run_one(label, r) for each round r]}, round r running the labels in the order
    rotated by r (a, b, c; b, c, a; c, a, b; ...), so each library sees every stretch of machine
    load and every position.  A run that raises ``WorkerFailed`` is kept as {"failed": message}
    (and its message printed to stderr)."""
    results = {label: [] for label in labels}
    for r in range(rounds):
        k = r % len(labels) if labels else 0
        for label in labels[k:] + labels[:k]:
            try:
                results[label].append(run_one(label, r))
            except WorkerFailed as exc:
                print(f"round {r + 1} {label}: failed: {exc}", file=sys.stderr, flush=True)
                results[label].append({"failed": str(exc)})
    return results


def median_of(runs: list[dict], key: str) -> float:
    """The median of ``run[key]`` over the runs that did not fail and have a finite value; NaN if none."""
    got = [r[key] for r in runs if "failed" not in r and r.get(key) is not None and math.isfinite(r[key])]
    return statistics.median(got) if got else float("nan")


def first_failure(runs: list[dict]) -> str | None:
    return next((r["failed"] for r in runs if "failed" in r), None)


def torch_threads() -> None:
    """In a torch library's worker: all cores for torch's intra-op threads, as a user would."""
    import torch

    torch.set_num_threads(os.cpu_count() or 1)


def worker_output(result: dict) -> None:
    """A worker's answer to ``run_alone``: one JSON object on the last stdout line (NaN as null)."""
    print(json.dumps(_clean(result)), flush=True)


def ratio(a: float, b: float) -> float:
    return a / b if math.isfinite(a) and math.isfinite(b) and b > 0 else float("nan")


def fmt(v: float, spec: str = ".2f", suffix: str = "") -> str:
    """``v`` formatted, or "-" where it is missing (None, NaN)."""
    return "-" if v is None or not math.isfinite(v) else f"{v:{spec}}{suffix}"


# -- one measurement per process (peak memory of its own) ------------------------------------

def measure_in(src: str, child: str, payload, env: dict | None = None) -> dict:
    """Run the Python source ``child`` with ``json.dumps(payload)`` as argv[1] and the kanarray in
    ``src`` first on the path; one BLAS thread.  The child prints one JSON object as its last line,
    with "package" (``kanarray.__file__``), checked to lie in src.  Returns that object."""
    full_env = dict(os.environ, PYTHONPATH=src, OPENBLAS_NUM_THREADS="1", **(env or {}))
    # run outside any checkout, so that the package comes from src (PYTHONPATH), not the working directory
    out = subprocess.run([sys.executable, "-c", child, json.dumps(payload)], env=full_env, check=True,
                         capture_output=True, text=True, cwd=tempfile.gettempdir()).stdout
    result = json.loads(out.strip().splitlines()[-1])
    if not os.path.realpath(result["package"]).startswith(os.path.realpath(src)):
        raise RuntimeError(f"measured {result['package']}, not the package in {src}")
    return result


def parse_args(doc: str):
    """The shared options of the isolated scripts: --against DIR (another kanarray package) and --repeats."""
    import argparse

    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--against", default=None, help="a folder holding another kanarray package")
    parser.add_argument("--repeats", type=int, default=5)
    return parser.parse_args()


def print_header(columns: list[str], against) -> None:
    """A markdown header: the given columns, ms and peak MB, and the other package's when comparing."""
    columns = [*columns, "ms (median)", "peak MB"] + (["other ms", "other peak MB", "other / this"] if against else [])
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))


def compared_row(cells: list[str], child: str, payload, against, env: dict | None = None) -> str:
    """Measure this checkout (and the package in ``against``) and format the row after ``cells``."""
    this = measure_in(ROOT, child, payload, env)
    row = "| " + " | ".join([*cells, f"{this['ms']:.2f}", f"{this['peak_mb']:.0f}"]) + " |"
    if against:
        other = measure_in(against, child, payload, env)
        row += f" {other['ms']:.2f} | {other['peak_mb']:.0f} | {other['ms'] / this['ms']:.2f}x |"
    return row


# -- machine-readable output -----------------------------------------------------------------

def write_json(path, script: str, times: dict, unit: str = "ms", values: dict | None = None,
               rows: list | None = None) -> None:
    """Write a script's results to ``path`` (nothing if path is None), for compare_versions.py.

    times: {label: kanarray's time in ``unit``}, lower is better (the ones a before/after
    comparison reads); values: {label: number} of other outputs that a change of code should
    leave as they are (errors, losses, peak memory); rows: anything else, e.g. the table's rows
    with the peer's columns.  NaN becomes null.  "package" is the kanarray that was measured."""
    if path is None:
        return
    import kanarray

    out = {"script": script, "package": os.path.abspath(kanarray.__file__), "argv": sys.argv[1:], "unit": unit,
           "times": _clean(times), "values": _clean(values or {}), "rows": _clean(rows or [])}
    with open(path, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=1)
        f.write("\n")


def _clean(v):
    """v with NumPy/CuPy scalars as floats and NaN as None: plain JSON."""
    if isinstance(v, dict):
        return {str(k): _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if v is None or isinstance(v, (str, bool, int)):
        return v
    if hasattr(v, "__float__"):  # floats, NumPy and CuPy scalars and 0-d arrays
        v = float(v)
        return v if math.isfinite(v) else None
    return str(v)
