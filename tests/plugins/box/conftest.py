"""Fixtures of the box tests: the six real COCO annotations of image 39769 (640x480, two cats on a couch)."""

from __future__ import annotations

import pytest
from box_assets import load_coco_annotations


@pytest.fixture(scope="session")
def coco_annotations() -> list[dict]:
    return load_coco_annotations()
