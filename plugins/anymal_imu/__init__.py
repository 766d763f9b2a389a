"""anymal_imu: the ``imu`` modality plugin (6-axis accelerometer + gyroscope motion recordings).

Input schema (details in ``anymal_imu.recording`` and README.md): channels are accelerometer x, y, z then gyroscope
x, y, z; ``imu=`` takes ``(array, sample_rate)`` with the array in ``[T, 6]`` (time-first) layout,
``IMURecording(data, sample_rate, layout="TC" | "CT")``, a ``.npy``/``.csv`` path (read at the config's
``default_sample_rate``; or ``IMURecording.from_file(path, sample_rate=...)``), or a bare ``[T, 6]`` numpy
array / torch tensor (also at ``default_sample_rate``). Inputs are resampled to the encoder's rate, centre-cropped
or zero-padded to its window and normalised per channel. The encoder is an IMU2CLIP-style network of our own,
pretrained by the ``imu_text_contrastive`` task against a frozen CLIP text tower.
"""

from anymal_imu.checkpoint import load_encoder, read_metadata, save_encoder
from anymal_imu.config import IMUPluginConfig
from anymal_imu.contrastive import ContrastiveResult, info_nce, retrieval_accuracy, train_contrastive
from anymal_imu.encoder import IMUEncoder
from anymal_imu.plugin import IMUPlugin
from anymal_imu.pretrain import IMUContrastiveConfig, pretrain_encoder, run_contrastive_pretraining
from anymal_imu.projector import IMUProjector
from anymal_imu.recording import IMURecording, read_imu_file
from anymal_imu.text_tower import FrozenTextTower, build_text_tower

__all__ = [
    "ContrastiveResult",
    "FrozenTextTower",
    "IMUContrastiveConfig",
    "IMUEncoder",
    "IMUPlugin",
    "IMUPluginConfig",
    "IMUProjector",
    "IMURecording",
    "build_text_tower",
    "info_nce",
    "load_encoder",
    "pretrain_encoder",
    "read_imu_file",
    "read_metadata",
    "retrieval_accuracy",
    "run_contrastive_pretraining",
    "save_encoder",
    "train_contrastive",
]
