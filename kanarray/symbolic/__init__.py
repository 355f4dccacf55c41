"""Symbolic edges: the function library, fitting c * f(a x + b) + d to an edge, the symbolic
branch of a layer, and formulas.  ``register`` adds a function to the library."""

from .fidelity import FormulaMismatchError, FormulaMismatchWarning
from .fitting import Candidate
from .library import LIBRARY, SymbolicFunction, get_function, register

__all__ = ["LIBRARY", "SymbolicFunction", "register", "get_function", "Candidate", "FormulaMismatchWarning",
           "FormulaMismatchError"]
