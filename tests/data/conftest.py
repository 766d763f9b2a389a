"""Fixtures for the dataset-reader tests: the real photos and recordings in ../shared/assets."""

from __future__ import annotations

from pathlib import Path

import pytest

ASSETS = Path(__file__).resolve().parents[2] / ".." / "shared" / "assets"


@pytest.fixture(scope="session")
def photos() -> list[Path]:
    """The real COCO photos (skips when the shared assets folder is absent)."""
    found = sorted((ASSETS / "images").glob("COCO_val2014_*.jpg"))
    if len(found) < 3:
        pytest.skip(f"real photos missing: expected COCO_val2014_*.jpg in {ASSETS / 'images'}")
    return [p.resolve() for p in found]


@pytest.fixture(scope="session")
def flac_clip() -> Path:
    path = ASSETS / "audio" / "jfk.flac"
    if not path.is_file():
        pytest.skip(f"real audio clip missing: {path}")
    return path.resolve()


@pytest.fixture(scope="session")
def imu_recordings() -> Path:
    path = ASSETS / "imu" / "BasicMotions_TRAIN.npz"
    if not path.is_file():
        pytest.skip(f"real IMU recordings missing: {path}")
    return path.resolve()
