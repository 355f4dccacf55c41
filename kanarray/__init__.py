"""kanarray: Kolmogorov-Arnold Networks on the Python array API, with hand-written gradients."""

from . import optim
from .checkpoint import CheckpointError, load_optimizer
from .fit_settings import FitSettings
from .layer import KANLayer
from .model import KAN, load
from .training import History, TrainingDiverged

__version__ = "0.1.0"

__all__ = [
    "KAN", "KANLayer", "FitSettings", "optim", "load", "load_optimizer", "CheckpointError", "History",
    "TrainingDiverged", "__version__",
]
