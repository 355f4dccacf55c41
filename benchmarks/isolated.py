"""Run a measurement in a fresh process on a chosen kanarray package (this checkout, or another
one for ``--against DIR``), so that peak memory is the measurement's own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile


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
    """The shared options: --against DIR (another kanarray package) and --repeats."""
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
    this = measure_in(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), child, payload, env)
    row = "| " + " | ".join([*cells, f"{this['ms']:.2f}", f"{this['peak_mb']:.0f}"]) + " |"
    if against:
        other = measure_in(against, child, payload, env)
        row += f" {other['ms']:.2f} | {other['peak_mb']:.0f} | {other['ms'] / this['ms']:.2f}x |"
    return row
