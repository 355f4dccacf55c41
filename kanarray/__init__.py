"""kanarray: Kolmogorov-Arnold Networks on the Python array API, with hand-written gradients."""

from . import datasets, optim
from .checkpoint import CheckpointError, load_optimizer
from .datasets import create_dataset, make_dataset
from .fit_settings import FitSettings
from .layer import KANLayer
from .model import KAN, from_pykan, from_pykan_checkpoint, load
from .pykan_convert import PykanConversionError
from .training import History, TrainingDiverged

__version__ = "0.1.0"

__all__ = [
    "KAN", "KANLayer", "FitSettings", "optim", "datasets", "make_dataset", "create_dataset", "load",
    "load_optimizer", "CheckpointError", "History",
    "TrainingDiverged", "from_pykan", "from_pykan_checkpoint", "PykanConversionError", "__version__",
]

