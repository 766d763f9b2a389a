"""Constants of the real COCO image 39769 used by the box tests (see ../shared/assets/MANIFEST.md)."""

from __future__ import annotations

import json

from anymal.testing import require_asset

COCO_IMAGE = "images/coco_000000039769.png"
COCO_ANNOTATIONS = "eval/coco_000000039769_annotations.txt"
COCO_SIZE = (640, 480)
# COCO category ids of the image's annotations
COCO_CATEGORIES = {17: "cat", 63: "couch", 65: "bed", 75: "remote"}


def load_coco_annotations() -> list[dict]:
    """The six annotation dicts (bbox as ``[x, y, w, h]`` in pixels, polygons, area, category_id); skips if absent."""
    return json.loads(require_asset(COCO_ANNOTATIONS).read_text())
