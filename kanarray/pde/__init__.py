"""Physics-informed training: PDE problems written in sympy (``Problem``, ``Term``, ``on``), trained
with ``model.fit(problem, ...)`` on a KAN or the MLP baseline.  docs/pde.md is the manual."""

from .problem import PhysicsEvaluation, Problem, Term, on

__all__ = ["PhysicsEvaluation", "Problem", "Term", "on"]
