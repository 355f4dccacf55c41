"""``FitSettings``: the keyword settings of ``KAN.fit``, named once and validated once.

``model.fit(x, y, steps=50, opt="adam")`` builds one from its keywords; a ``FitSettings``
can also be kept and passed on (``model.fit(x, y, settings)``, ``settings.replace(lr=1e-3)``).
The training loop and the agreement of MPI ranks read the same object.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from ._checks import check_number, check_positive_int
from .optim import LBFGS, SGD, Adam, AdamW, Optimizer
from .regularization import Regularization

__all__ = ["FitSettings", "OPTIMIZERS", "DEFAULT_LR", "frozen_names", "trainable_parameters"]

OPTIMIZERS = {"lbfgs": LBFGS, "adam": Adam, "adamw": AdamW, "sgd": SGD}  # opt="name" -> its class
DEFAULT_LR = {"lbfgs": 1.0, "adam": 1e-2, "adamw": 1e-2, "sgd": 1e-2}
LOSSES = ("mse", "cross_entropy")


@dataclass(frozen=True)
class FitSettings:
    """How ``KAN.fit`` trains.

    steps: optimizer steps.  opt: "lbfgs" (pykan's: history 10, 20 iterations per step,
    strong-Wolfe line search; lr 1), "adam", "adamw", "sgd" (lr 1e-2), or an optimizer built on
    ``model.parameters()`` (its state carries on; lr must then be None).  lr: None for the
    optimizer's default.  batch_size: minibatches drawn from shuffled epochs (reproducible from
    ``seed``, default the model's seed); full batch if None; per rank with MPI.
    loss: "mse" or "cross_entropy" (integer labels, softmax over the outputs).
    lamb and lamb_*: the sparsification penalty (``kanarray.regularization``).
    update_grid: adapt the grids to the batch every stop_grid_update_step // grid_update_num
    steps while step < stop_grid_update_step (the optimizer keeps its state across them, as in
    pykan; resetting LBFGS there measured slightly worse); grid_eps, grid_margin: as in ``KAN.update_grid``
    (grid_eps 1 is a uniform grid over the samples' range, 0 knots at their quantiles).
    progress: a tqdm bar with the losses; "auto" shows it when stderr is a terminal or in
    Jupyter (not in a log file), True always.  frozen: parameters held fixed, by full name
    ("layers.0.scale_sp") or by name in every layer ("scale_base", "scale_sp", "coef"); an
    optimizer passed as ``opt`` must then be built on
    ``kanarray.training.trainable_parameters(model, frozen)``.
    patience: early stopping (needs ``validation``): stop once the validation loss has not
    improved on its best for this many steps in a row; None trains all ``steps``.
    restore_best: end the fit on the parameters of the step with the lowest validation loss
    (needs ``validation``); None (default) means True when patience is set, else False, so a
    fit without early stopping ends where it always did.
    start_probe: before an L-BFGS fit of a model still at its seeded initialization, train
    ``start_probe.PROBE_STEPS`` steps from it and from a second start (every base weight
    1 / sqrt(n_in)) and keep the second only when it is ``MARGIN`` times lower
    (``kanarray.start_probe``; False fits from the seeded start as pykan does).

    Every value is checked on construction (ValueError naming the setting); what depends on
    the data (batch_size against the number of samples, frozen names against the model) is
    checked by ``fit`` before anything changes.
    """

    steps: int = 100
    opt: object = "lbfgs"
    lr: float | None = None
    batch_size: int | None = None
    loss: str = "mse"
    lamb: float = 0.0
    lamb_l1: float = 1.0
    lamb_entropy: float = 2.0
    lamb_coef: float = 0.0
    lamb_coefdiff: float = 0.0
    update_grid: bool = True
    grid_update_num: int = 10
    stop_grid_update_step: int = 50
    grid_eps: float = 0.02
    grid_margin: float = 0.0
    progress: object = "auto"
    seed: int | None = None
    frozen: tuple = ()
    patience: int | None = None
    restore_best: bool | None = None
    start_probe: bool = True
    regularization: Regularization = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        if not (_is_bool(self.progress) or (isinstance(self.progress, str) and self.progress == "auto")):
            raise ValueError(f"progress must be True, False or 'auto', got {self.progress!r}")
        if not _is_bool(self.update_grid):
            raise ValueError(f"update_grid must be True or False, got {self.update_grid!r}")
        if not isinstance(self.loss, str) or self.loss not in LOSSES:
            raise ValueError(f"loss must be 'mse' or 'cross_entropy', got {self.loss!r}")
        put = object.__setattr__.__get__(self)
        put("update_grid", bool(self.update_grid))
        put("steps", check_positive_int(self.steps, "steps"))
        put("regularization", Regularization(self.lamb, self.lamb_l1, self.lamb_entropy, self.lamb_coef,
                                             self.lamb_coefdiff))
        if self.batch_size is not None:
            put("batch_size", check_positive_int(self.batch_size, "batch_size"))
        put("grid_update_num", check_positive_int(self.grid_update_num, "grid_update_num"))
        put("stop_grid_update_step", check_positive_int(self.stop_grid_update_step, "stop_grid_update_step",
                                                        minimum=0))
        put("grid_margin", check_number("grid_margin", self.grid_margin))
        put("grid_eps", check_number("grid_eps", self.grid_eps, maximum=1.0))
        if self.seed is not None:
            put("seed", check_positive_int(self.seed, "seed", minimum=0))
        if isinstance(self.opt, Optimizer):
            if self.lr is not None:
                raise ValueError("lr applies to an optimizer built by fit; set it on your optimizer instead")
        elif not isinstance(self.opt, str) or self.opt.lower() not in OPTIMIZERS:
            raise ValueError(f"opt must be one of {sorted(OPTIMIZERS)} or an optimizer instance, got {self.opt!r}")
        else:
            put("opt", self.opt.lower())
            if self.lr is not None:
                put("lr", check_number("lr", self.lr, strict=True))
        put("frozen", frozen_names(self.frozen))
        if self.patience is not None:
            put("patience", check_positive_int(self.patience, "patience"))
        if self.restore_best is None:
            put("restore_best", self.patience is not None)
        elif not _is_bool(self.restore_best):
            raise ValueError(f"restore_best must be True, False or None (True with patience), got {self.restore_best!r}")
        put("restore_best", bool(self.restore_best))
        if not _is_bool(self.start_probe):
            raise ValueError(f"start_probe must be True or False, got {self.start_probe!r}")
        put("start_probe", bool(self.start_probe))

    def check_validation(self, validation) -> None:
        """ValueError if patience or restore_best is set but there is no validation set to watch."""
        if validation is None and (self.patience is not None or self.restore_best):
            what = "patience (early stopping)" if self.patience is not None else "restore_best"
            raise ValueError(f"{what} watches the validation loss: pass validation=(x_val, y_val) to fit, "
                             "or leave patience=None and restore_best=None")

    @classmethod
    def of(cls, settings: "FitSettings | None" = None, **options) -> "FitSettings":
        """``settings`` with ``options`` replacing some of its values (default settings if None).
        TypeError for an option that is not a setting, listing the settings."""
        unknown = sorted(set(options) - set(cls.names()))
        if unknown:
            raise TypeError(f"fit got unknown settings {unknown}; the settings are {list(cls.names())} "
                            "(and the data arguments x, y, validation, comm)")
        if settings is None:
            return cls(**options)
        if not isinstance(settings, cls):
            raise TypeError(f"settings must be a FitSettings, got {type(settings).__name__}")
        return settings.replace(**options) if options else settings

    @classmethod
    def names(cls) -> tuple:
        """The settings' names, in order."""
        return tuple(f.name for f in dataclasses.fields(cls) if f.init)

    def replace(self, **options) -> "FitSettings":
        """A copy with some values replaced (validated again)."""
        return dataclasses.replace(self, **options)

    @property
    def lr_or_default(self) -> float:
        """lr, or the default of the named optimizer."""
        return DEFAULT_LR[self.opt] if self.lr is None else self.lr

    def collective_key(self) -> tuple:
        """What decides which collectives a distributed fit runs: every rank must agree on it
        (the seed may differ: each rank shuffles its own shard; batch_size is per rank)."""
        return (self.steps, self.loss, self.regularization, self.batch_size is None, bool(self.update_grid),
                self.grid_update_num, self.stop_grid_update_step, self.grid_margin, self.grid_eps, self.patience,
                self.restore_best, self.start_probe)


def _is_bool(value) -> bool:
    """True or False, also as a NumPy bool (not 0 or 1)."""
    kind = type(value)
    return kind is bool or (kind.__module__ == "numpy" and kind.__name__ in ("bool", "bool_"))


def frozen_names(frozen) -> tuple:
    """frozen as a tuple of names (a single name is one); ValueError for anything but names."""
    if isinstance(frozen, str):
        frozen = (frozen,)
    try:
        frozen = tuple(frozen)
    except TypeError:
        raise ValueError(f"frozen must be a list of parameter names, got {frozen!r}") from None
    for name in frozen:
        if not isinstance(name, str):
            raise ValueError(f"frozen must be a list of parameter names, got {name!r} in it")
    return frozen


def trainable_parameters(model, frozen=()) -> dict:
    """``model.parameters()`` without the frozen ones.

    frozen: parameter names ("layers.0.scale_sp") or names within every layer ("scale_sp").
    Raises ValueError for a name that matches no parameter or when nothing is left to train."""
    params = model.parameters()
    frozen = frozen_names(frozen)
    held = set()
    for name in frozen:
        matched = {n for n in params if n == name or n.rsplit(".", 1)[-1] == name}
        if not matched:
            short = sorted({n.rsplit(".", 1)[-1] for n in params})
            raise ValueError(f"frozen name {name!r} matches no trainable parameter; expected one of {short} "
                             f"or a full name such as {next(iter(params))!r}")
        held |= matched
    left = {n: a for n, a in params.items() if n not in held}
    if not left:
        raise ValueError(f"frozen={list(frozen)} holds every parameter; nothing is left to train")
    return left
