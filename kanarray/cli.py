"""The ``kanarray`` command."""

from __future__ import annotations

import argparse
import math
import re
import sys
import warnings

from . import __version__


def _positive_int(text: str) -> int:
    value = int(text) if re.fullmatch(r"\s*\+?[0-9]+\s*", text) else 0  # int() would take 1_000 too
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _positive_int_or_zero(text: str) -> int:
    if not re.fullmatch(r"\s*\+?[0-9]+\s*", text):
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return int(text)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
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
                    "of each stage; with --out DIR it also writes plots of the network (and ONNX files when onnx is "
                    "installed) to DIR, and without it writes nothing.")
    demo.add_argument("--function", choices=sorted(TOYS), default="expsin",
                      help="target: " + "; ".join(f"{k}: {t.text}" for k, t in TOYS.items()) + " (default expsin)")
    demo.add_argument("--seed", type=int, default=1, help="seed for data and initialization (default 1)")
    demo.add_argument("--out", default=None, metavar="DIR", help="write the plots (and ONNX files) to this "
                      "directory, made if missing (default: write nothing)")
    demo.add_argument("--no-plots", action="store_true", help="write nothing, even with --out")
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
    predict = commands.add_parser("predict", help="run an ONNX model (or a .kan checkpoint) on a .npy or .csv file",
                                  description="Batched inference through onnxruntime: CUDA when onnxruntime-gpu "
                                              "offers it, CPU otherwise; a .kan checkpoint runs natively on NumPy. "
                                              "A model trained by kanarray fit knows its input columns and takes "
                                              "them from a .csv's header by name (a target or other columns may "
                                              "stay in the file). A .csv output has a header row.")
    predict.add_argument("model", help="the .onnx file (kanarray export), or a .kan checkpoint")
    predict.add_argument("input", help="inputs: .npy, or .csv with one row per sample (optional header); rows "
                                       "with nan or inf get nan outputs and are listed in a warning")
    predict.add_argument("-o", "--output", required=True, help="outputs: .npy or .csv (not the model or the "
                                                                "input)")
    predict.add_argument("--header", choices=["auto", "yes", "no"], default="auto",
                         help="whether the .csv's first row is a header: auto (default) reads it as one unless it is "
                              "numbers (integers over columns of decimals, such as 0,1,2 from pandas, are a header)")
    predict.add_argument("--id", default=None, metavar="COLUMN",
                         help="a column of the .csv input (by header name) copied as the first column of the .csv "
                              "output, e.g. a row ID; it is not an input")
    predict.add_argument("--provider", choices=["cuda", "cpu"], default=None,
                         help="force an execution provider (ONNX graphs only)")
    predict.add_argument("--batch-size", type=_positive_int, default=65536, help="rows per run (default 65536)")
    _add_reproduce(commands)
    from .fit_command import add_parser as add_fit

    add_fit(commands, _positive_int, _int_list)
    return parser


def _number_list(kind, example: str, minimum=None):
    """An argparse type: comma-separated values of ``kind`` (int or float), each >= minimum if given."""
    noun = "integers" if kind is int else "numbers"

    def parse(text: str) -> tuple:
        try:
            values = tuple(kind(v) for v in text.split(","))
        except ValueError:
            msg = f"expected comma-separated {noun} such as {example}, got {text!r}"
            raise argparse.ArgumentTypeError(msg) from None
        if minimum is not None and any(v < minimum for v in values):
            raise argparse.ArgumentTypeError(f"expected {noun} >= {minimum}, got {text!r}")
        return values

    return parse


_float_list = _number_list(float, "0,0.5")
_int_list = _number_list(int, "3,5,10", minimum=0)


def _add_reproduce(commands) -> None:
    from .reproduce import EXPERIMENTS, tuned  # tuned: constants only

    rep = commands.add_parser(
        "reproduce", help="rerun one of the paper's experiments and write its table and figure",
        description="scaling: scaling laws of the five toy functions; special: the special-function table; feynman: "
                    "the Feynman table with symbolic recovery; continual: continual learning, KAN against an MLP; pde: "
                    "physics-informed KANs (Poisson, heat, nonlinear Poisson) against MLPs. "
                    "Writes NAME.md and NAME.png into --out and prints the table. Defaults are the paper's settings "
                    "(scaling: an hour or more on two cores); --quick runs a tiny version in seconds.")
    rep.add_argument("name", choices=EXPERIMENTS)
    rep.add_argument("--out", default="kanarray-reproduce", help="output folder (default ./kanarray-reproduce)")
    rep.add_argument("--steps", type=_positive_int, default=None,
                     help="LBFGS steps per grid or phase (default: scaling/special/feynman 200, continual 100)")
    rep.add_argument("--grids", type=_int_list, default=None, help="grid sizes, e.g. 3,5,10,20 (not for continual)")
    rep.add_argument("--seeds", type=_int_list, default=None,
                     help="initializations tried at the first grid (default 0-15 for scaling and special, 0,1,2 "
                          "for feynman; continual: the first is used)")
    rep.add_argument("--only", default=None,
                     help="comma-separated subset: toy functions, special functions or Feynman equations "
                          "(feynman: 'all' for all 27; default the six with the paper's numbers)")
    rep.add_argument("--train", type=_positive_int, default=None,
                     help="training points (not for continual; default 1000, as in the paper): more data shows "
                          "whether an error is limited by the data or by the fit")
    rep.add_argument("--grid-margin", type=_float_list, default=None,
                     help="move the end knots of every grid update out by this fraction of their interval (not for "
                          "continual; default 0, pykan's rule): inputs a little beyond the training range then "
                          "stay where the splines were fitted; special and feynman take several, e.g. 0,0.5, and "
                          "choose among them with the grid on the validation draw")
    rep.add_argument("--every-seed", action="store_true",
                     help="special and feynman: grid-extend every seed of --seeds (as the paper did with its 3) and "
                          "choose the seed with the grid on the validation draw, instead of keeping the seed with the "
                          "lowest training RMSE at the first grid")
    rep.add_argument("--start", default=None,
                     help="special and feynman: scratch (default: a new KAN of the paper's shape), pruned (as the "
                          "paper's pruned KANs: hidden widths 5 fitted with the sparsity penalty, pruned to the "
                          "shape), or scratch,pruned (each a whole run, chosen with the grid on the validation draw)")
    rep.add_argument("--validation", type=_positive_int, default=None,
                     help="special and feynman: points in the validation draw that chooses the grid (default 1000; "
                          "more make the choice among many runs less noisy)")
    rep.add_argument("--margin-from", type=_positive_int, default=None,
                     help="special and feynman: apply --grid-margin only from this grid on (default: from the "
                          "first); half an interval is a sixth of the range at G = 3 but little at G = 50")
    rep.add_argument("--extrapolate", default=None,
                     help="special and feynman: spline (default, pykan's: the B-splines run on a few intervals beyond "
                          "the grid, then vanish), linear (splines continued as lines beyond their grids), or "
                          "spline,linear (each a whole run, chosen with the grid on the validation draw)")
    rep.add_argument("--tuned", action="store_true",
                     help="special and feynman: the settings of the headline tables in docs/reproductions.md, where "
                          f"every entry is at or below the paper (special: {tuned.as_flags(tuned.SPECIAL)}; feynman: "
                          f"{tuned.as_flags(tuned.FEYNMAN)}); other flags override them. Hours on two cores")
    rep.add_argument("--mult", type=_positive_int_or_zero, default=None,
                     help="feynman: start the symbolic recovery from the paper's shape with this many multiplication "
                          "nodes added to its first hidden layer ([2, 2, 1] -> [2, [2, N], 1]; default 0)")
    rep.add_argument("--recovery-only", action="store_true",
                     help="feynman: only the symbolic recovery, from the paper's shape and from it with --mult "
                          "(default 1) multiplication nodes, side by side; on the product-type equations unless --only")
    rep.add_argument("--quick", action="store_true",
                     help="tiny settings to check that it runs: grids 3,5, 5 steps, one seed, two entries")


def _reproduce_options(args) -> dict:
    options = {}
    if args.tuned:
        if args.name not in ("special", "feynman"):
            raise ValueError("--tuned applies to special and feynman")
        if args.quick:
            raise ValueError("--tuned and --quick exclude each other (--quick is a seconds-long check)")
        options["tuned"] = True
    if args.quick:
        options.update(steps=5, seeds=(0,))
        if args.name != "continual":
            options["grids"] = (3, 5)
        options.update({"pde": dict(mlp_widths=(10,), symbolic_steps=3, kan_width=3, extra=False),
                        "feynman": dict(symbolic_steps=5, names=("I.6.2", "II.38.3")),
                        "special": dict(names=("jv", "sph_harm_m0_n1")),
                        "scaling": dict(functions=("j0", "exp_sin"))}.get(args.name, {}))
    if args.steps is not None:
        options["steps"] = args.steps
    if args.grids is not None:
        options["grids"] = args.grids
    if args.seeds is not None:
        options["seeds"] = args.seeds
    if args.train is not None:
        if args.name in ("continual", "pde"):
            raise ValueError(f"--train does not apply to {args.name} (its points are fixed: "
                             + ("100 per phase)" if args.name == "continual" else "pykan's 21^2 interior points)"))
        options["n_train"] = args.train
    if args.grid_margin is not None:
        if args.name in ("continual", "pde"):
            raise ValueError(f"--grid-margin does not apply to {args.name}")
        if args.name == "scaling" and len(args.grid_margin) > 1:
            raise ValueError("scaling takes one --grid-margin (it has no validation draw to choose with)")
        options["grid_margin"] = args.grid_margin if len(args.grid_margin) > 1 else args.grid_margin[0]
    # options of the special and Feynman Plans only: (flag, value or None when not given, run() keyword)
    for flag, value, key in (("--start", args.start and tuple(args.start.split(",")), "starts"),
                             ("--validation", args.validation, "n_validation"),
                             ("--margin-from", args.margin_from, "margin_from"),
                             ("--every-seed", args.every_seed or None, "every_seed"),
                             ("--extrapolate", args.extrapolate and tuple(args.extrapolate.split(",")), "extrapolate")):
        if value is not None:
            if args.name not in ("special", "feynman"):
                raise ValueError(f"{flag} applies to special and feynman")
            options[key] = value
    for flag, value, key in (("--mult", args.mult, "mult"), ("--recovery-only", args.recovery_only or None,
                                                               "recovery_only")):
        if value is not None:
            if args.name != "feynman":
                raise ValueError(f"{flag} applies to feynman")
            options[key] = value
    if args.only is not None:
        key = {"scaling": "functions", "special": "names", "feynman": "names"}.get(args.name)
        if key is None:
            raise ValueError("--only applies to scaling, special and feynman")
        options[key] = tuple(args.only.split(","))
    if args.name == "continual":
        if "grids" in options:
            raise ValueError("--grids does not apply to continual (its KAN has G = 200)")
        options["seed"] = options.pop("seeds", (0,))[0]
    return options


def _run_reproduce(args) -> int:
    from .reproduce import reproduce

    reproduce(args.name, args.out, **_reproduce_options(args))
    return 0


def _run_export(args) -> int:
    from ._atomic import check_output_paths
    from .export import to_onnx
    from .model import load

    check_output_paths({"-o": args.output}, {"MODEL": args.model})
    model = load(args.model)
    proto = to_onnx(model, args.output, opset=args.opset, dtype=args.dtype)
    print(f"wrote {args.output}: {model} as ONNX opset {proto.opset_import[0].version}, {args.dtype}")
    return 0


def _run_predict(args) -> int:
    from ._atomic import check_output_paths
    from .export import predict_file
    from .export.serving import NonFiniteInputWarning
    from .tabular import NumericHeaderWarning

    check_output_paths({"-o": args.output}, {"MODEL": args.model, "INPUT": args.input})
    header = {"auto": "auto", "yes": True, "no": False}[args.header]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", NonFiniteInputWarning)
        warnings.simplefilter("always", NumericHeaderWarning)
        rows, provider = predict_file(args.model, args.input, args.output, provider=args.provider,
                                      batch_size=args.batch_size, header=header, id_column=args.id)
    for warning in caught:
        if issubclass(warning.category, (NonFiniteInputWarning, NumericHeaderWarning)):
            print(f"kanarray predict: warning: {_message(warning.message)}", file=sys.stderr)
        else:
            warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno)
    print(f"wrote {args.output}: {rows} rows ({provider})")
    return 0


def _run_fit(args) -> int:
    from .fit_command import run_fit

    return run_fit(args)


def _run_demo(args) -> int:
    from .demo import run_demo

    result = run_demo(function=args.function, seed=args.seed, out_dir=None if args.no_plots else args.out,
                      steps=args.steps, lamb=args.lamb)
    return 0 if result["formula"] is not None else 1


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from .distributed import RankFailed

    runners = {"demo": _run_demo, "export": _run_export, "predict": _run_predict, "reproduce": _run_reproduce,
               "fit": _run_fit}
    runner = runners[args.command]
    try:
        return runner(args)
    # a clear message, no traceback: bad input or settings (ValueError), files (OSError), a missing extra
    # (ImportError), a fit that diverged (kanarray.TrainingDiverged, a FloatingPointError), another MPI
    # rank's failure (RankFailed: that rank prints its own error)
    except (ValueError, OSError, ImportError, FloatingPointError, RankFailed) as exc:
        print(f"kanarray {args.command}: error: {_message(exc)}", file=sys.stderr)
        return 2


def _message(exc: BaseException) -> str:
    """The exception as one line; an OSError from the system as 'FILE: reason'."""
    if isinstance(exc, OSError) and exc.strerror and exc.filename is not None:
        text = f"{exc.filename}: {exc.strerror}"
    else:
        text = str(exc) or type(exc).__name__
    return re.sub(r"\s*\n\s*", " ", text.strip())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
