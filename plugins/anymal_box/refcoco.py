"""RefCOCO / RefCOCO+ / RefCOCOg in their released layout: ``refs(<split_by>).p`` + COCO ``instances.json``.

Each ref names one COCO annotation (its box and mask) and several referring sentences. The refs are released as
Python pickles, and anymal never unpickles (a pickle can run code). Convert them once, in an environment you
trust, with::

    python -c "import json, pickle; json.dump(pickle.load(open('refs(unc).p', 'rb')), open('refs(unc).json', 'w'))"

The JSON holds the same list of ref dicts (``ref_id``, ``ann_id``, ``image_id``, ``split``, ``category_id``,
``sentences`` with ``sent``/``raw``); ``load_refcoco`` reads it together with the dataset's ``instances.json``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from anymal.errors import DataError
from anymal_box.boxes import Boxes
from anymal_box.frames import PixelFrame
from anymal_box.masks import decode_segmentation

PICKLE_CONVERSION = (
    "python -c \"import json, pickle; json.dump(pickle.load(open('refs(unc).p', 'rb')), open('refs(unc).json', 'w'))\""
)


@dataclass(frozen=True)
class ReferringExpression:
    """One ref: the sentences that describe one object, with that object's box and COCO segmentation."""

    ref_id: int
    ann_id: int
    image_id: int
    file_name: str
    split: str
    category: str
    sentences: tuple[str, ...]
    box: Boxes
    segmentation: Any

    @property
    def image_size(self) -> tuple[int, int]:
        """``(width, height)`` of the image in pixels."""
        frame = self.box.frame
        assert isinstance(frame, PixelFrame)
        return int(frame.width), int(frame.height)

    def mask(self) -> np.ndarray:
        """The object's bool ``[H, W]`` mask, decoded from its polygons or RLE."""
        width, height = self.image_size
        return decode_segmentation(self.segmentation, height, width, where=f"ref {self.ref_id} (ann {self.ann_id})")


def _read_json(path: Path, what: str) -> Any:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read the {what} ({exc.strerror or exc})") from None
    if raw[:1] == b"\x80" or path.suffix == ".p":
        raise DataError(
            f"{path}: a pickle; anymal never unpickles. Convert the refs to JSON once, in an environment you trust: "
            f"{PICKLE_CONVERSION}"
        )
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: the {what} is not valid JSON ({exc})") from None


def _index(items: Any, key: str, path: Path, what: str) -> dict[Any, dict]:
    if not isinstance(items, list):
        raise DataError(f"{path}: '{what}' must be a list")
    out = {}
    for i, item in enumerate(items):
        if not isinstance(item, dict) or key not in item:
            raise DataError(f"{path}: {what}[{i}] has no '{key}'")
        out[item[key]] = item
    return out


def _sentences(ref: dict, where: str) -> tuple[str, ...]:
    sentences = ref.get("sentences")
    if not isinstance(sentences, list) or not sentences:
        raise DataError(f"{where}: 'sentences' must be a non-empty list")
    out = []
    for j, s in enumerate(sentences):
        text = s.get("sent", s.get("raw")) if isinstance(s, dict) else s
        if not isinstance(text, str):
            raise DataError(f"{where}: sentences[{j}] has no 'sent' or 'raw' text")
        out.append(text)
    return tuple(out)


def load_refcoco(
    refs_path: str | Path, instances_path: str | Path, splits: Iterable[str] | None = None
) -> list[ReferringExpression]:
    """All refs (or those of ``splits``, e.g. ``{"val"}`` or ``{"testA", "testB"}``), in file order.

    Raises ``DataError`` naming the file and the ref when a ref points to a missing annotation or image, or a field
    is missing; a refs pickle is refused with the one-line conversion to JSON.
    """
    refs_path, instances_path = Path(refs_path), Path(instances_path)
    refs = _read_json(refs_path, "refs")
    instances = _read_json(instances_path, "instances")
    if not isinstance(refs, list):
        raise DataError(f"{refs_path}: expected a list of refs, got {type(refs).__name__}")
    if not isinstance(instances, dict):
        raise DataError(f"{instances_path}: expected a COCO instances object with images/annotations/categories")
    images = _index(instances.get("images"), "id", instances_path, "images")
    annotations = _index(instances.get("annotations"), "id", instances_path, "annotations")
    categories = {
        c["id"]: c.get("name", str(c["id"]))
        for c in _index(instances.get("categories", []), "id", instances_path, "categories").values()
    }
    wanted = set(splits) if splits is not None else None
    out = []
    for i, ref in enumerate(refs):
        where = f"{refs_path}: refs[{i}]"
        if not isinstance(ref, dict):
            raise DataError(f"{where}: expected a dict, got {type(ref).__name__}")
        missing = [k for k in ("ref_id", "ann_id", "image_id", "split") if k not in ref]
        if missing:
            raise DataError(f"{where}: missing {', '.join(missing)}")
        if wanted is not None and ref["split"] not in wanted:
            continue
        ann = annotations.get(ref["ann_id"])
        if ann is None:
            raise DataError(f"{where}: ann_id {ref['ann_id']} is not in {instances_path}")
        image = images.get(ref["image_id"])
        if image is None or ann.get("image_id") != ref["image_id"]:
            raise DataError(f"{where}: image_id {ref['image_id']} is not in {instances_path} or not the annotation's")
        try:
            frame = PixelFrame(float(image["width"]), float(image["height"]))
            box = Boxes.from_xywh(ann["bbox"], frame)
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(
                f"{where}: image {ref['image_id']} or annotation {ref['ann_id']} is malformed ({exc})"
            ) from None
        category_id = ref.get("category_id", ann.get("category_id"))
        out.append(
            ReferringExpression(
                ref_id=int(ref["ref_id"]),
                ann_id=int(ref["ann_id"]),
                image_id=int(ref["image_id"]),
                file_name=str(image.get("file_name", ref.get("file_name", ""))),
                split=str(ref["split"]),
                category=categories.get(category_id, str(category_id)),
                sentences=_sentences(ref, where),
                box=box,
                segmentation=ann.get("segmentation"),
            )
        )
    return out
