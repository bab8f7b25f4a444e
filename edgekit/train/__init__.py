"""Training and evaluation of any zoo model on any dataset reader (or the synthetic street scenes).

One module per seam: ``config`` (what a run is asked, what it leaves), ``distributed`` (torchrun ranks), ``data``
(splits, class weights, loaders), ``model`` (network, optimizer, checkpoints), ``schedule`` (learning rate),
``evaluate`` (per-class IoU), ``folder`` (the run's output folder) and ``loop`` (the epochs, exact resume).
"""

from edgekit.train.config import TrainConfig, TrainResult
from edgekit.train.data import espnet_class_weights
from edgekit.train.evaluate import EvalReport, evaluate
from edgekit.train.folder import RUN_FILES, is_training_run
from edgekit.train.loop import TrainState, train
from edgekit.train.schedule import learning_rate

__all__ = [
    "RUN_FILES",
    "EvalReport",
    "TrainConfig",
    "TrainResult",
    "TrainState",
    "espnet_class_weights",
    "evaluate",
    "is_training_run",
    "learning_rate",
    "train",
]
