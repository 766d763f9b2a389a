"""First-party box outputs for anymal: typed boxes with their frame, both grounding text grammars, metrics, data.

- ``Boxes`` / ``Points`` carry their coordinate frame (``PixelFrame``, ``NORMALIZED``, Qwen-VL's ``QWEN_GRID``).
- ``Geometry`` maps them through the image plugin's resize / pad / crop and back to the original photo.
- ``anymal_box.pink`` and ``anymal_box.qwen``: format and leniently parse ``[x0,y0,x1,y1]`` and
  ``<ref>..</ref><box>(x1,y1),(x2,y2)</box>`` text.
- ``anymal_box.metrics``: IoU, GIoU, REC Acc@0.5 in the Pink and Qwen-VL conventions, mask cIoU/gIoU.
- ``anymal_box.refcoco`` and ``anymal_box.pink_tasks``: RefCOCO-format data and Pink's RC task generator.
"""

from anymal_box import pink, qwen
from anymal_box.boxes import Boxes, Points
from anymal_box.frames import NORMALIZED, QWEN_EVAL_GRID, QWEN_GRID, GridFrame, NormalizedFrame, PixelFrame
from anymal_box.geometry import Geometry
from anymal_box.metrics import (
    MaskIoUResult,
    RECResult,
    box_iou,
    generalized_box_iou,
    mask_iou,
    paired_iou,
    rec_accuracy,
)
from anymal_box.parsed import Grounding, ParseProblem, ParseResult

__all__ = [
    "NORMALIZED",
    "QWEN_EVAL_GRID",
    "QWEN_GRID",
    "Boxes",
    "Geometry",
    "GridFrame",
    "Grounding",
    "MaskIoUResult",
    "NormalizedFrame",
    "ParseProblem",
    "ParseResult",
    "PixelFrame",
    "Points",
    "RECResult",
    "box_iou",
    "generalized_box_iou",
    "mask_iou",
    "paired_iou",
    "pink",
    "qwen",
    "rec_accuracy",
]
