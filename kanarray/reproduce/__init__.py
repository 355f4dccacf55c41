"""The paper's experiments, one command each: ``kanarray reproduce NAME`` or ``reproduce(NAME)``.

* ``scaling``: neural scaling laws of the five toy functions (``scaling.py``);
* ``special``: the special-function table (``special.py``);
* ``feynman``: the Feynman table and symbolic recovery (``feynman.py``);
* ``continual``: continual learning, KAN against an MLP (``continual.py``);
* ``pde``: physics-informed KANs on Poisson, heat and a nonlinear equation, against MLPs (``pde.py``).

Each writes NAME.md (the tables and the settings) and, where there is one, NAME.png into the
output folder.  ``benchmarks/paper/NAME.py`` runs the same code from a checkout.
"""

from __future__ import annotations

import importlib

__all__ = ["EXPERIMENTS", "reproduce"]

EXPERIMENTS = ("scaling", "special", "feynman", "continual", "pde")


def reproduce(name: str, out_dir: str = "kanarray-reproduce", *, echo=print, tuned: bool = False, **options):
    """Run experiment ``name`` with ``options`` (the keyword arguments of its module's ``run``),
    write its files into ``out_dir`` and return the ``Report``.  tuned (special and feynman):
    start from the settings of docs/reproductions.md's headline tables (the module's ``TUNED``),
    which ``options`` override."""
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; choose from {list(EXPERIMENTS)}")
    module = importlib.import_module(f".{name}", __name__)
    if tuned:
        if not hasattr(module, "TUNED"):
            raise ValueError(f"tuned settings exist for special and feynman, not {name!r}")
        options = {**module.TUNED, **options}
    report = module.run(echo=echo, **options)
    paths = report.write(out_dir)
    echo("")
    echo(report.markdown)
    echo("")
    echo("wrote " + ", ".join(paths))
    return report
