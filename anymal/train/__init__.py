"""Training: ``python -m anymal.train --config configs/....yaml key=value ...`` or :func:`train` from Python."""

from anymal.train.config import DataSpec, LoRASpec, TrainConfig, load_train_config
from anymal.train.loop import TrainResult, train
from anymal.train.pretrain import (
    PretrainConfig,
    PretrainResult,
    available_tasks,
    load_pretrain_config,
    run_pretraining,
)

__all__ = [
    "DataSpec",
    "LoRASpec",
    "PretrainConfig",
    "PretrainResult",
    "TrainConfig",
    "TrainResult",
    "available_tasks",
    "load_pretrain_config",
    "load_train_config",
    "run_pretraining",
    "train",
]
