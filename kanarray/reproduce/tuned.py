"""The settings of docs/reproductions.md's headline tables, where every special function and
every Feynman equation is at or below the paper's RMSE: ``reproduce(name, tuned=True)`` and
``kanarray reproduce special|feynman --tuned``.  No imports, so the command line can print them
in its help without loading the experiments."""

from __future__ import annotations

__all__ = ["SPECIAL", "FEYNMAN", "as_flags"]

# both starts, the end knots moved out by 0.25 of an interval from G = 50 on, intermediate grids,
# all chosen on 10,000 validation points.  About 3.5 hours on two cores.
SPECIAL = dict(grids=(3, 5, 10, 20, 30, 40, 50, 70, 100), starts=("scratch", "pruned"), grid_margin=(0.0, 0.25),
               margin_from=50, n_validation=10000)
# special's, every seed of 0, 1, 2 grid-extended, and pykan's continuation beyond the grids against
# lines, each a whole run chosen on validation.  About 4 hours for the six on two cores.
FEYNMAN = dict(SPECIAL, seeds=(0, 1, 2), every_seed=True, extrapolate=("spline", "linear"))

_FLAGS = {"starts": "--start", "grid_margin": "--grid-margin", "margin_from": "--margin-from",
          "n_validation": "--validation", "grids": "--grids", "seeds": "--seeds", "every_seed": "--every-seed",
          "extrapolate": "--extrapolate"}


def as_flags(settings: dict) -> str:
    """The command-line flags that ask for ``settings``, e.g. '--margin-from 50 --grids 3,5'."""
    parts = []
    for key, value in settings.items():
        if value is True:
            parts.append(_FLAGS[key])
        else:
            text = ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value) \
                if isinstance(value, tuple) else str(value)
            parts.append(f"{_FLAGS[key]} {text}")
    return " ".join(parts)
