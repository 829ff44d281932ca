"""nlp182.train: one Trainer for every model (AMP, accumulation, checkpoints, monitors, DDP)."""

from nlp182.train.checkpoint import list_checkpoints, load_checkpoint, save_checkpoint
from nlp182.train.config import TrainerConfig
from nlp182.train.distributed import DistContext, distributed_loader, init_distributed
from nlp182.train.monitors import LayerMonitor
from nlp182.train.trainer import Trainer

__all__ = [
    "DistContext",
    "LayerMonitor",
    "Trainer",
    "TrainerConfig",
    "distributed_loader",
    "init_distributed",
    "list_checkpoints",
    "load_checkpoint",
    "save_checkpoint",
]
