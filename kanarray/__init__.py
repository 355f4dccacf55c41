"""kanarray: Kolmogorov-Arnold Networks on the Python array API, with hand-written gradients."""

from .layer import KANLayer
from .model import KAN

__version__ = "0.1.0"

__all__ = ["KAN", "KANLayer", "__version__"]
