"""list_core: the LiST engine — one frozen backbone, many small per-task adapters.

Import torch/transformers only; no web, queue or SQL code lives here so the engine works as a
plain library and from the command line.
"""

from list_core.artifact import AdapterMismatchError, load_task_model, save_task_model
from list_core.backbone import Backbone, load_backbone
from list_core.data import Example
from list_core.field_error import FieldError
from list_core.hyperparams import Hyperparameters, resolve_hyperparameters
from list_core.inference import predict_mixed
from list_core.progress import Progress, TrainingCancelled
from list_core.prompts import TaskSpec
from list_core.training import TrainingResult, train_task

__version__ = "0.1.0"

__all__ = [
    "AdapterMismatchError",
    "Backbone",
    "Example",
    "FieldError",
    "Hyperparameters",
    "Progress",
    "TaskSpec",
    "TrainingCancelled",
    "TrainingResult",
    "__version__",
    "load_backbone",
    "load_task_model",
    "predict_mixed",
    "resolve_hyperparameters",
    "save_task_model",
    "train_task",
]
