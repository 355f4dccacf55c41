"""What every optimizer shares: parameter and gradient checks, state save/restore, and the
carry-over of state to new parameter arrays (after a grid extension)."""

from __future__ import annotations

from .._checks import check_number as check_hyper
from .._namespace import get_namespace

__all__ = ["NonFiniteError", "Optimizer", "check_hyper", "optimizer_from_state"]

_REGISTRY: dict[str, type] = {}


class NonFiniteError(FloatingPointError):
    """An optimizer met a NaN or infinite value where it needs a finite one (``LBFGS.step``: the
    objective or gradient at the current parameters, or a gradient too large to step along);
    raised before any parameter changes.  ``KAN.fit`` turns it into ``TrainingDiverged``."""


class Optimizer:
    """Base class. ``params``: name -> array, updated in place."""

    #: hyper-parameter names saved in ``state_dict`` and passed back to ``__init__``
    HYPER: tuple[str, ...] = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _REGISTRY[cls.__name__] = cls

    def __init__(self, params: dict):
        if not isinstance(params, dict) or not params:
            raise ValueError("params must be a non-empty dict name -> array, such as model.parameters()")
        self.params = params
        self.xp = get_namespace(*params.values())

    def check_bound(self, params: dict) -> None:
        """ValueError unless this optimizer updates exactly the arrays in ``params``."""
        if set(self.params) != set(params) or any(self.params[n] is not params[n] for n in params):
            raise ValueError(
                "the optimizer is bound to other arrays than this model's parameters; build it on "
                "model.parameters() (after refine: opt.transferred(new_model.parameters()); with fit's frozen: on "
                "kanarray.training.trainable_parameters(model, frozen))"
            )

    def hyper(self) -> dict:
        return {name: getattr(self, name) for name in self.HYPER}

    def check_grads(self, grads: dict) -> None:
        """Raise before any update if a gradient is missing or has the wrong shape."""
        missing = set(self.params) - set(grads)
        if missing:
            raise KeyError(f"gradients missing for {sorted(missing)}")
        for name, p in self.params.items():
            g = grads[name]
            if tuple(g.shape) != tuple(p.shape):
                raise ValueError(f"gradient {name} has shape {tuple(g.shape)}, expected {tuple(p.shape)}")

    # -- state ----------------------------------------------------------------------------
    def state_dict(self) -> tuple[dict, dict]:
        """(JSON-able config, name -> array) describing the optimizer completely."""
        config = {"class": type(self).__name__, "hyper": self.hyper(), "scalars": self._scalars()}
        return config, self._arrays()

    def load_state_dict(self, config: dict, arrays: dict) -> None:
        """Restore from ``state_dict()`` output (arrays may come from another backend)."""
        if config.get("class") != type(self).__name__:
            raise ValueError(f"state is for {config.get('class')!r}, not {type(self).__name__}")
        self._restore(config.get("scalars", {}), {k: self._to_param_space(v) for k, v in arrays.items()})

    def _to_param_space(self, a):
        import numpy as np

        from .._namespace import to_numpy

        sample = next(iter(self.params.values()))
        return self.xp.asarray(np.ascontiguousarray(to_numpy(a)), dtype=sample.dtype)

    def transferred(self, new_params: dict, reset=None) -> "Optimizer":
        """A new optimizer of the same kind and hyper-parameters on ``new_params``.

        State of a name in both dicts with an unchanged shape is copied; names in ``reset``
        (default: none beyond those whose shape changed) start fresh.
        """
        successor = type(self)(new_params, **self.hyper())
        reset = set(reset or ())
        keep = {
            name
            for name, p in new_params.items()
            if name in self.params and name not in reset and tuple(p.shape) == tuple(self.params[name].shape)
        }
        successor._adopt(self, keep)
        return successor

    # hooks for subclasses
    def _scalars(self) -> dict:
        return {}

    def _arrays(self) -> dict:
        return {}

    def _restore(self, scalars: dict, arrays: dict) -> None:
        pass

    def _adopt(self, previous: "Optimizer", keep: set) -> None:
        pass


def optimizer_from_state(params: dict, config: dict, arrays: dict) -> Optimizer:
    """Rebuild an optimizer saved by ``state_dict()`` on ``params``."""
    cls = _REGISTRY.get(config.get("class"))
    if cls is None:
        raise ValueError(f"unknown optimizer class {config.get('class')!r}; expected one of {sorted(_REGISTRY)}")
    opt = cls(params, **config.get("hyper", {}))
    opt.load_state_dict(config, arrays)
    return opt
