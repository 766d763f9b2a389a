"""IMU plugin test fixtures: the real BasicMotions recordings, tiny configs and a single-thread guard."""

from __future__ import annotations

import numpy as np
import pytest

from anymal.testing import require_asset
from anymal_imu import IMUPlugin, IMUPluginConfig


@pytest.fixture(scope="session")
def basic_motions() -> dict[str, np.ndarray]:
    """BasicMotions (UEA): X float32 [40, 6, 100] = [N, C, T] at 10 Hz, y = activity labels."""
    with np.load(require_asset("imu/BasicMotions_TRAIN.npz"), allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def _basic_motions_config(**overrides) -> IMUPluginConfig:
    fields = dict(
        sample_rate=10.0,
        window_samples=100,
        width=32,
        embed_dim=32,
        conv_layers=3,
        rnn_layers=1,
        heads=2,
        transformer_layers=2,
        patch_size=10,
        num_tokens=4,
        projector_rank=8,
    )
    fields.update(overrides)
    return IMUPluginConfig(**fields)


@pytest.fixture(scope="session")
def bm_config():
    """Factory of small encoder configs working at BasicMotions' own rate and length (10 Hz, 100 samples)."""
    return _basic_motions_config


@pytest.fixture
def tiny_plugin() -> IMUPlugin:
    return IMUPlugin(IMUPlugin.tiny_config())
