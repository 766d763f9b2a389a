"""Fixtures for the dataset-reader tests: the real photos and recordings in the shared assets folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from anymal.testing import require_asset


@pytest.fixture(scope="session")
def photos() -> list[Path]:
    """The real COCO photos (skips when the shared assets folder is absent)."""
    return [p.resolve() for p in require_asset("images", "COCO_val2014_*.jpg", min_count=3)]


@pytest.fixture(scope="session")
def flac_clip() -> Path:
    return require_asset("audio/jfk.flac").resolve()


@pytest.fixture(scope="session")
def imu_recordings() -> Path:
    return require_asset("imu/BasicMotions_TRAIN.npz").resolve()
