"""The ``kanarray`` command."""

from __future__ import annotations

import argparse
import sys

from . import __version__


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kanarray", description="Kolmogorov-Arnold Networks on the array API.")
    parser.add_argument("--version", action="version", version=f"kanarray {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    from .demo import TOYS

    demo = commands.add_parser(
        "demo", help="recover a formula from samples: fit, prune, refine, auto_symbolic, fit",
        description="The interpretability loop end to end on a built-in toy function: [2, 5, 1] KAN on G = 3, fit "
                    "with the sparsity penalty, prune, refine to G = 10, fit, replace every edge by a library "
                    "function, fit the formula's parameters; prints the recovered formula, the test RMSE and time "
                    "of each stage, and writes plots of the network.")
    demo.add_argument("--function", choices=sorted(TOYS), default="expsin",
                      help="target: " + "; ".join(f"{k}: {t.text}" for k, t in TOYS.items()) + " (default expsin)")
    demo.add_argument("--seed", type=int, default=1, help="seed for data and initialization (default 1)")
    demo.add_argument("--out", default="kanarray-demo", help="directory for the plots (default ./kanarray-demo)")
    demo.add_argument("--no-plots", action="store_true", help="write no plots")
    demo.add_argument("--steps", type=_positive_int, default=50, help="LBFGS steps per fit (default 50)")
    demo.add_argument("--lamb", type=_positive_float, default=1e-3, help="sparsity penalty of the first fit "
                      "(default 1e-3)")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        from .demo import run_demo

        result = run_demo(function=args.function, seed=args.seed, out_dir=None if args.no_plots else args.out,
                          steps=args.steps, lamb=args.lamb)
        return 0 if result["formula"] is not None else 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
