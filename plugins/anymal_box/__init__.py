"""First-party box outputs for anymal: typed boxes with their frame, both grounding text grammars, metrics, data.

- ``Boxes`` / ``Points`` carry their coordinate frame (``PixelFrame``, ``NORMALIZED``, Qwen-VL's ``QWEN_GRID``).
- ``Geometry`` maps them through the image plugin's resize / pad / crop and back to the original photo.
- ``anymal_box.pink`` and ``anymal_box.qwen``: format and leniently parse ``[x0,y0,x1,y1]`` and
  ``<ref>..</ref><box>(x1,y1),(x2,y2)</box>`` text; ``anymal_box.rec``: REC pairs and scoring in either grammar.
- ``anymal_box.metrics``: IoU, GIoU, REC Acc@0.5 in the Pink and Qwen-VL conventions, mask cIoU/gIoU.
- Data: ``anymal_box.refcoco`` (RefCOCO/+/g refs + instances), ``anymal_box.masks`` (COCO polygons/RLE),
  ``anymal_box.pink_tasks`` (Pink's RC task generator), ``anymal_box.bootstrap`` (Pink's self-consistency filter).
"""

from anymal_box import pink, qwen
from anymal_box.bootstrap import BootstrapReport, DetectionImage, SelfConsistencyFilter
from anymal_box.boxes import Boxes, Points
from anymal_box.frames import NORMALIZED, QWEN_EVAL_GRID, QWEN_GRID, GridFrame, NormalizedFrame, PixelFrame
from anymal_box.geometry import Geometry
from anymal_box.masks import boxes_from_masks, decode_segmentation, encode_mask
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
from anymal_box.pink_tasks import AnnotatedImage, PinkTaskGenerator, TaskSample, generate_samples
from anymal_box.rec import RECExample, parse_rec_answer, rec_example, score_rec
from anymal_box.refcoco import ReferringExpression, load_refcoco

__all__ = [
    "NORMALIZED",
    "QWEN_EVAL_GRID",
    "QWEN_GRID",
    "AnnotatedImage",
    "BootstrapReport",
    "Boxes",
    "DetectionImage",
    "Geometry",
    "GridFrame",
    "Grounding",
    "MaskIoUResult",
    "NormalizedFrame",
    "ParseProblem",
    "ParseResult",
    "PinkTaskGenerator",
    "PixelFrame",
    "Points",
    "RECExample",
    "RECResult",
    "ReferringExpression",
    "SelfConsistencyFilter",
    "TaskSample",
    "box_iou",
    "boxes_from_masks",
    "decode_segmentation",
    "encode_mask",
    "generalized_box_iou",
    "generate_samples",
    "load_refcoco",
    "mask_iou",
    "paired_iou",
    "parse_rec_answer",
    "pink",
    "qwen",
    "rec_accuracy",
    "rec_example",
    "score_rec",
]
