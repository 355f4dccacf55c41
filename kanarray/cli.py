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
    export = commands.add_parser("export", help="write a saved model (.kan) as an ONNX graph",
                                 description="Export a checkpoint written by model.save() to ONNX (needs "
                                             "kanarray[onnx]).")
    export.add_argument("model", help="the .kan checkpoint")
    export.add_argument("-o", "--output", required=True, help="the .onnx file to write")
    export.add_argument("--opset", type=int, default=None, help="ONNX opset (default: the newest that onnx and "
                        "onnxruntime here both run)")
    export.add_argument("--dtype", choices=["float32", "float64"], default="float32",
                        help="precision of the graph (default float32)")
    predict = commands.add_parser("predict", help="run an ONNX model on a .npy or .csv file with onnxruntime",
                                  description="Batched inference through onnxruntime: CUDA when onnxruntime-gpu "
                                              "offers it, CPU otherwise.")
    predict.add_argument("model", help="the .onnx file")
    predict.add_argument("input", help="inputs: .npy, or .csv with one row per sample (optional header)")
    predict.add_argument("-o", "--output", required=True, help="outputs: .npy or .csv")
    predict.add_argument("--provider", choices=["cuda", "cpu"], default=None, help="force an execution provider")
    predict.add_argument("--batch-size", type=_positive_int, default=65536, help="rows per run (default 65536)")
    return parser


def _run_export(args) -> int:
    from .checkpoint import load
    from .export import to_onnx

    model = load(args.model)
    proto = to_onnx(model, args.output, opset=args.opset, dtype=args.dtype)
    print(f"wrote {args.output}: {model} as ONNX opset {proto.opset_import[0].version}, {args.dtype}")
    return 0


def _run_predict(args) -> int:
    from .export import predict_file

    rows, provider = predict_file(args.model, args.input, args.output, provider=args.provider,
                                  batch_size=args.batch_size)
    print(f"wrote {args.output}: {rows} rows ({provider})")
    return 0


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        from .demo import run_demo

        result = run_demo(function=args.function, seed=args.seed, out_dir=None if args.no_plots else args.out,
                          steps=args.steps, lamb=args.lamb)
        return 0 if result["formula"] is not None else 1
    runner = {"export": _run_export, "predict": _run_predict}[args.command]
    try:
        return runner(args)
    except (ValueError, FileNotFoundError, ImportError) as exc:  # a clear message, no traceback
        print(f"kanarray {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
