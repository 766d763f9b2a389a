"""Training: ``python -m anymal.train --config configs/....yaml key=value ...`` or :func:`train` from Python."""

from anymal.train.config import DataSpec, LoRASpec, TrainConfig, load_train_config
from anymal.train.loop import TrainResult, train

__all__ = ["DataSpec", "LoRASpec", "TrainConfig", "TrainResult", "load_train_config", "train"]
