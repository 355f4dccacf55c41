"""Speed of two checkouts of kanarray, side by side: the same benchmarks, each run in a process of
its own on each version, the versions alternating, over several rounds.

    python benchmarks/compare_versions.py --old /work/old --new /work/main [--rounds 5]
        [--only bench_step,fit_vs_pykan,onnx_bench] [--quick] [--backend numpy|cupy]
        [--args "bench_step=--repeats 40 --cases toy,fine"] [--threshold 0.05] [--log DIR] [--json PATH]

An old checkout of the package, e.g. the commit before a refactor:
``git -C /work/main worktree add /work/old bc18371`` (remove it with ``git worktree remove``).

Each run is ``python benchmarks/NAME.py`` of THIS checkout's benchmarks/ (the same script for both
versions; they call kanarray's public API), started with ``PYTHONPATH`` at the version's root and
kanarray imported from there before the script runs, so that the script's own ``sys.path`` line
(its checkout's root) cannot pick the other version; the child prints ``kanarray.__file__`` and
both it and the script's ``--json`` output are checked to lie in that root.  Only kanarray runs in
these processes: the scripts get their kanarray-only options (``--no-pykan``, and bench_step's
``--no-efficient-kan``), never a peer.  The scripts time kanarray in worker processes of their own
(``common.run_alone``), which take kanarray from the same root (``$KANARRAY_BENCH_ROOT``).

Round r runs every benchmark once per version, old first in even rounds and new first in odd
ones, so both versions see the same stretch of machine load.  The table gives each case's median
over the rounds of the script's own medians (its ``times``: ms, or s for whole fits), the range
over rounds, and new / old; a case slower by more than ``--threshold`` (5%) is flagged.  The
scripts' other outputs that a refactor should leave unchanged (``values``: test RMSEs, export
errors, peak memory) are listed below it, with whether they are equal.  The first round also
fills the old checkout's numba cache (in warm-up calls, untimed, except fit_vs_pykan's "first
fit" and "seed S fresh process"): take 3 rounds or more.

Defaults per benchmark (``--args NAME=OPTIONS`` replaces them; the kanarray-only options are
always added): bench_step ``--no-pykan --no-efficient-kan`` (its four CPU cases, or six on CuPy,
median over its 3 worker processes of their median of 20), fit_vs_pykan ``--no-pykan`` (median
over its 3 worker processes of their warm fit, and of their fresh-process time), onnx_bench (four
cases, batches 1 and 4096, median over its 3 worker processes per way of their median of 30; its
"dense baseline" graph does not depend on kanarray's code and so measures the machine's drift
between versions).  ``--quick``: the smallest options, to check that everything runs.
``--backend cupy`` goes to bench_step and fit_vs_pykan; onnx_bench stays on the CPU.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))

# name: (options always given: no peer in the process, default options, --quick options)
BENCHMARKS = {
    "bench_step": (["--no-pykan", "--no-efficient-kan"], [], ["--repeats", "2", "--cases", "toy"]),
    "fit_vs_pykan": (["--no-pykan"], [], ["--repeats", "1"]),
    "onnx_bench": ([], [], ["--repeats", "2", "--cases", "toy", "--batches", "1"]),
}
TAKES_BACKEND = {"bench_step", "fit_vs_pykan"}

# Runs in the child: kanarray from ROOT first, checked, then the script as `python SCRIPT ARGS` would run it.
BOOT = r"""
import os, runpy, sys
root, script = os.path.realpath(sys.argv[1]), os.path.realpath(sys.argv[2])
sys.path.insert(0, root)
import kanarray
package = os.path.realpath(kanarray.__file__)
if not package.startswith(root + os.sep):
    sys.exit(f"compare_versions: kanarray came from {package}, not from {root}")
print(f"compare_versions: kanarray {package}", file=sys.stderr, flush=True)
sys.argv = [script, *sys.argv[3:]]
sys.path.insert(0, os.path.dirname(script))  # as for `python SCRIPT`: the script's folder first
runpy.run_path(script, run_name="__main__")
"""


def describe(root: str) -> str:
    """'abc1234' or 'abc1234 + uncommitted changes in kanarray/' (or 'not a git checkout')."""
    try:
        head = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", root, "status", "--porcelain", "--", "kanarray"], capture_output=True,
                               text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "not a git checkout"
    return head + (" + uncommitted changes in kanarray/" if dirty else "")


def run_once(root: str, name: str, options: list[str], timeout: float, log: str | None, tag: str) -> dict:
    """One process: benchmarks/NAME.py OPTIONS --json TMP on the kanarray in root; its JSON, with
    "wall_s", or {"failed": reason}."""
    script = os.path.join(HERE, f"{name}.py")
    env = dict(os.environ)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    with tempfile.TemporaryDirectory() as tmp:
        out_json = os.path.join(tmp, "out.json")
        cmd = [sys.executable, "-c", BOOT, root, script, *options, "--json", out_json]
        start = time.perf_counter()
        try:
            proc = subprocess.run(cmd, env=env, cwd=tmp, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"failed": f"timed out after {timeout:.0f} s"}
        wall = time.perf_counter() - start
        if log:
            with open(os.path.join(log, f"{tag}.out"), "w", encoding="utf-8") as f:
                f.write(proc.stdout)
            with open(os.path.join(log, f"{tag}.err"), "w", encoding="utf-8") as f:
                f.write(proc.stderr)
        if proc.returncode != 0 or not os.path.exists(out_json):
            tail = " / ".join(line.strip() for line in proc.stderr.strip().splitlines()[-2:]).replace("|", "/")
            return {"failed": f"rc {proc.returncode}: {tail[-300:]}"}
        with open(out_json, encoding="utf-8") as f:
            result = json.load(f)
    package = os.path.realpath(result.get("package", ""))
    if not package.startswith(os.path.realpath(root) + os.sep):
        return {"failed": f"measured the kanarray in {package}, not the one in {root}"}
    result["wall_s"] = wall
    return result


def fmt(v: float) -> str:
    if v is None or not math.isfinite(v):
        return "-"
    return f"{v:.3f}" if abs(v) < 10 else f"{v:.2f}" if abs(v) < 1000 else f"{v:.0f}"


def fmt_value(v) -> str:
    return "-" if v is None else f"{v:.6g}" if isinstance(v, float) else str(v)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old", required=True, help="root of the old checkout (holding kanarray/)")
    parser.add_argument("--new", required=True, help="root of the new checkout")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", default=",".join(BENCHMARKS), help=f"comma-separated, from {list(BENCHMARKS)}")
    parser.add_argument("--quick", action="store_true", help="the smallest options of each benchmark")
    parser.add_argument("--backend", default=None, choices=["numpy", "cupy"],
                        help="for bench_step and fit_vs_pykan (default: theirs, numpy)")
    parser.add_argument("--args", action="append", default=[], metavar="NAME=OPTIONS",
                        help="replace a benchmark's options (repeatable)")
    parser.add_argument("--threshold", type=float, default=0.05, help="flag cases slower than 1 + this")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per process")
    parser.add_argument("--log", default=None, help="a folder for each process's stdout and stderr")
    parser.add_argument("--json", default=None, metavar="PATH", help="also write every round's results to PATH")
    args = parser.parse_args(argv)
    names = args.only.split(",")
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmarks {unknown}; choose from {list(BENCHMARKS)}")
    versions = {"old": os.path.abspath(args.old), "new": os.path.abspath(args.new)}
    for label, root in versions.items():
        if not os.path.isfile(os.path.join(root, "kanarray", "__init__.py")):
            parser.error(f"--{label} {root}: no kanarray/__init__.py there")
    options = {}
    for name in names:
        always, default, quick = BENCHMARKS[name]
        options[name] = always + (quick if args.quick else default)
        if args.backend and name in TAKES_BACKEND:
            options[name] += ["--backend", args.backend]
    for item in args.args:
        name, _, rest = item.partition("=")
        if name not in BENCHMARKS:
            parser.error(f"--args {item!r}: unknown benchmark {name!r}")
        options[name] = BENCHMARKS[name][0] + shlex.split(rest)
    if args.log:
        os.makedirs(args.log, exist_ok=True)

    import numpy as np

    print(f"# compare_versions: {time.strftime('%Y-%m-%d %H:%M %Z')}, {platform.machine()}, {os.cpu_count()} cpus, "
          f"python {platform.python_version()}, numpy {np.__version__}, {args.rounds} round(s)")
    for label, root in versions.items():
        print(f"# {label}: {root} ({describe(root)})")
    for name in names:
        print(f"# {name}.py {shlex.join(options[name])}")
    sys.stdout.flush()

    start = time.perf_counter()
    results = {name: {"old": [], "new": []} for name in names}
    for r in range(args.rounds):
        order = ["old", "new"] if r % 2 == 0 else ["new", "old"]
        for name in names:
            for label in order:
                got = run_once(versions[label], name, options[name], args.timeout, args.log, f"{name}-{label}-{r}")
                results[name][label].append(got)
                state = got["failed"] if "failed" in got else f"{got['wall_s']:.1f} s"
                print(f"# round {r + 1}/{args.rounds} {name} {label}: {state}", file=sys.stderr, flush=True)
    total = time.perf_counter() - start

    print()
    print("| benchmark | case | unit | old (median) | new (median) | new / old | old range | new range | |")
    print("|---|---|---|---|---|---|---|---|---|")
    flagged, logs, value_rows = [], {}, []
    for name in names:
        ok = {label: [g for g in results[name][label] if "failed" not in g] for label in versions}
        failures = {label: [g["failed"] for g in results[name][label] if "failed" in g] for label in versions}
        for label, reasons in failures.items():
            if reasons:
                print(f"| {name} | {label} failed in {len(reasons)} of {args.rounds} rounds: {reasons[0]} "
                      f"| | | | | | | |")
        keys = []
        for label in ("new", "old"):
            for g in ok[label]:
                keys += [k for k in g["times"] if k not in keys]
        unit = next((g["unit"] for label in versions for g in ok[label]), "ms")
        ratios = []
        for key in keys:
            series = {label: [g["times"][key] for g in ok[label] if g["times"].get(key) is not None]
                      for label in versions}
            med = {label: statistics.median(s) if s else float("nan") for label, s in series.items()}
            span = {label: f"{fmt(min(s))}-{fmt(max(s))}" if s else "-" for label, s in series.items()}
            ratio = med["new"] / med["old"] if med["old"] > 0 else float("nan")
            note = ""
            if math.isfinite(ratio):
                ratios.append(ratio)
                if ratio > 1 + args.threshold:
                    note = f"**slower by {100 * (ratio - 1):.0f}%**"
                    flagged.append(f"{name} {key} ({ratio:.2f}x)")
                elif ratio < 1 - args.threshold:
                    note = f"faster by {100 * (1 - ratio):.0f}%"
            print(f"| {name} | {key} | {unit} | {fmt(med['old'])} | {fmt(med['new'])} | "
                  f"{ratio:.3f}x | {span['old']} | {span['new']} | {note} |")
        if ratios:
            logs[name] = math.exp(statistics.fmean(math.log(x) for x in ratios))
        vkeys = []
        for label in ("new", "old"):
            for g in ok[label]:
                vkeys += [k for k in g["values"] if k not in vkeys]
        for key in vkeys:
            seen = {label: [g["values"].get(key) for g in ok[label]] for label in versions}
            same = len({json.dumps(v) for s in seen.values() for v in s}) == 1
            value_rows.append(f"| {name} | {key} | {fmt_value(seen['old'][0] if seen['old'] else None)} | "
                              f"{fmt_value(seen['new'][0] if seen['new'] else None)} | "
                              f"{'yes' if same else '**no**'} |")
    print()
    print("geometric mean of new / old: " + (", ".join(f"{n} {g:.3f}x" for n, g in logs.items()) or "-"))
    limit = f"{100 * args.threshold:.0f}%"
    print(f"slower by more than {limit}: " + (", ".join(flagged) if flagged else "none"))
    if value_rows:
        print()
        print("Outputs that should not change (the first round's; 'equal': the same in every round of both):")
        print()
        print("| benchmark | output | old | new | equal |")
        print("|---|---|---|---|---|")
        print("\n".join(value_rows))
    print()
    for label in versions:
        packages = sorted({g["package"] for per in results.values() for g in per[label] if "failed" not in g})
        print(f"{label}: measured the kanarray in {', '.join(packages) or '-'}")
    print(f"({total:.0f} s: {args.rounds} round(s) of {len(names)} benchmark(s) on 2 versions)")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"versions": {k: [v, describe(v)] for k, v in versions.items()}, "options": options,
                       "results": results}, f, indent=1)
    failed = any("failed" in g for per in results.values() for runs in per.values() for g in runs)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
