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
    demo = commands.add_parser("demo", help="train and evaluate a [2, 5, 1] KAN on exp(sin(pi x) + y^2)")
    demo.add_argument("--steps", type=_positive_int, default=2000, help="Adam steps (default 2000)")
    demo.add_argument("--lr", type=_positive_float, default=0.01, help="learning rate (default 0.01)")
    demo.add_argument("--seed", type=int, default=0, help="seed for data and initialization (default 0)")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        from .demo import run_demo

        run_demo(steps=args.steps, lr=args.lr, seed=args.seed)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
