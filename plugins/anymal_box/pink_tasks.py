"""Pink's referential-comprehension (RC) instruction data from box annotations (Pink §3.2, A4.1 of the notes).

From COCO / Visual Genome / Objects365-style annotations of one image (objects with classes and boxes, optional
region phrases and relation triplets) the generator draws one RC task per call, uniformly among the tasks the
annotations allow, then one sub-type uniformly, then one template:

- relation: predict the predicate; locate / classify / locate-and-classify the objects in a relation (frequent
  predicates ``on, has, wearing, of, in`` are accepted with probability 0.2, up to 100 retries);
- coarse location: objects whose box centre is strictly to the top-left/top-right/bottom-left/bottom-right of an
  anchor's centre (the anchor is an object box or, with probability 0.5 when regions exist, a region phrase);
- counting by class name or by exemplar box (a count value is drawn uniformly first, then a class with it);
- detection by class name, or by exemplar box (only classes with more than one instance);
- grounding (phrase -> box) and region caption (box -> phrase).

Boxes are written in Pink's text (``anymal_box.pink``), normalised by the image size; answers with several boxes
are sorted by area, smallest first; an empty answer is ``N/A``. With ``markers=True`` box and phrase arguments are
wrapped in Pink's ``<loc>..</loc>`` and ``<des>..</des>`` marker tokens.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from anymal.errors import DataError, InputError
from anymal_box import pink
from anymal_box.boxes import Boxes
from anymal_box.frames import PixelFrame
from anymal_box.pink_templates import TEMPLATES

FREQUENT_PREDICATES = frozenset({"on", "has", "wearing", "of", "in"})
POSITIONS = ("top left", "top right", "bottom left", "bottom right")

TASKS: dict[str, tuple[str, ...]] = {
    "relation": ("relation_predict", "relation_locate", "relation_classify", "relation_locate_classify"),
    "coarse_location": ("coarse_location_box_category", "coarse_location_category", "coarse_location_box"),
    "counting": ("counting_by_name", "counting_by_exemplar"),
    "detection": ("detection_by_name", "detection_by_exemplar"),
    "grounding": ("grounding",),
    "region_caption": ("region_caption",),
}


@dataclass(frozen=True)
class AnnotatedImage:
    """One image's annotations: ``objects`` as (category, pixel xyxy), ``regions`` as (phrase, pixel xyxy),
    ``relations`` as (subject index, predicate, object index) into ``objects``."""

    width: float
    height: float
    objects: tuple[tuple[str, tuple[float, float, float, float]], ...]
    regions: tuple[tuple[str, tuple[float, float, float, float]], ...] = ()
    relations: tuple[tuple[int, str, int], ...] = ()

    def __post_init__(self) -> None:
        try:
            frame = PixelFrame(self.width, self.height)
            for what, rows in (("objects", self.objects), ("regions", self.regions)):
                if rows:
                    Boxes([box for _, box in rows], frame).validate(what)
        except InputError as exc:
            raise DataError(f"AnnotatedImage: {exc}") from None
        for i, (s, _, o) in enumerate(self.relations):
            if not (0 <= s < len(self.objects) and 0 <= o < len(self.objects)):
                raise DataError(f"relations[{i}]: object index out of range (have {len(self.objects)} objects)")

    @classmethod
    def from_coco(
        cls, annotations: Sequence[Mapping], categories: Mapping[int, str], width: float, height: float
    ) -> AnnotatedImage:
        """From COCO instance annotations (``bbox`` as ``[x, y, w, h]``); crowd annotations are left out."""
        objects = []
        for a in annotations:
            if a.get("iscrowd", 0):
                continue
            x, y, w, h = (float(v) for v in a["bbox"])
            objects.append((categories[a["category_id"]], (x, y, x + w, y + h)))
        return cls(width, height, tuple(objects))

    @property
    def frame(self) -> PixelFrame:
        return PixelFrame(self.width, self.height)


@dataclass(frozen=True)
class TaskSample:
    """One generated instruction/answer pair and the task it came from."""

    task: str
    subtype: str
    instruction: str
    answer: str


class PinkTaskGenerator:
    """Draws Pink RC tasks from ``AnnotatedImage``s (see the module docstring for the rules).

    Args:
        templates: one pool per sub-type (the keys of ``TEMPLATES``); missing keys fall back to ours.
        markers: wrap box arguments in ``<loc>..</loc>`` and phrases in ``<des>..</des>``.
        frequent_keep: acceptance probability of a relation with a frequent predicate.
        max_retries: draws before a frequent predicate is accepted anyway.
    """

    def __init__(
        self,
        templates: Mapping[str, Sequence[str]] | None = None,
        markers: bool = False,
        frequent_keep: float = 0.2,
        max_retries: int = 100,
    ) -> None:
        self.templates = {**TEMPLATES, **{k: tuple(v) for k, v in (templates or {}).items()}}
        empty = [k for k, v in self.templates.items() if not v]
        if empty:
            raise DataError(f"PinkTaskGenerator: empty template pool(s) {empty}")
        self.markers = markers
        self.frequent_keep = frequent_keep
        self.max_retries = max_retries

    # --- what the annotations allow ----------------------------------------------------------------------------
    def subtypes(self, image: AnnotatedImage) -> dict[str, tuple[str, ...]]:
        """The tasks (and their sub-types) that ``image``'s annotations can support."""
        out: dict[str, tuple[str, ...]] = {}
        if image.relations:
            out["relation"] = TASKS["relation"]
        if len(image.objects) >= 2 or (image.objects and image.regions):
            out["coarse_location"] = TASKS["coarse_location"]
        if image.objects:
            out["counting"] = TASKS["counting"]
            counts = Counter(c for c, _ in image.objects)
            by_exemplar = any(n > 1 for n in counts.values())
            out["detection"] = TASKS["detection"] if by_exemplar else ("detection_by_name",)
        if image.regions:
            out["grounding"] = TASKS["grounding"]
            out["region_caption"] = TASKS["region_caption"]
        return out

    def generate(
        self, image: AnnotatedImage, rng: random.Random, task: str | None = None, subtype: str | None = None
    ) -> TaskSample:
        """One sample: a uniformly drawn task (or ``task``), sub-type (or ``subtype``) and template."""
        allowed = self.subtypes(image)
        if not allowed:
            raise DataError("PinkTaskGenerator: the image has no objects or regions to build a task from")
        if task is None:
            task = rng.choice(sorted(allowed))
        if task not in allowed:
            raise DataError(f"task {task!r} is not possible for this image; possible: {sorted(allowed)}")
        if subtype is None:
            subtype = rng.choice(allowed[task])
        if subtype not in allowed[task]:
            raise DataError(f"subtype {subtype!r} is not possible for task {task!r}; possible: {allowed[task]}")
        slots, answer = getattr(self, f"_{task}")(image, rng, subtype)
        instruction = rng.choice(self.templates[subtype])
        for key, value in slots.items():
            instruction = instruction.replace(f"<{key}>", value)
        return TaskSample(task, subtype, instruction, answer)

    # --- text pieces -------------------------------------------------------------------------------------------
    def _box(self, image: AnnotatedImage, box: Sequence[float]) -> str:
        text = pink.format_box(Boxes(box, image.frame).normalized().clip().data[0])
        return f"<loc>{text}</loc>" if self.markers else text

    def _phrase(self, phrase: str) -> str:
        return f"<des>{phrase}</des>" if self.markers else phrase

    @staticmethod
    def _answer_boxes(image: AnnotatedImage, indices: Sequence[int], with_labels: bool) -> str:
        if not indices:
            return pink.EMPTY
        boxes = Boxes([image.objects[i][1] for i in indices], image.frame)
        labels = [image.objects[i][0] for i in indices] if with_labels else None
        return pink.format_boxes(boxes, labels=labels)

    @staticmethod
    def _answer_categories(image: AnnotatedImage, indices: Sequence[int]) -> str:
        if not indices:
            return pink.EMPTY
        boxes = Boxes([image.objects[i][1] for i in indices], image.frame)
        order = boxes.sorted_by_area()[1]
        return ", ".join(image.objects[indices[k]][0] for k in order)

    # --- the six tasks -----------------------------------------------------------------------------------------
    def _pick_relation(self, image: AnnotatedImage, rng: random.Random) -> tuple[int, str, int]:
        relation = rng.choice(image.relations)
        for _ in range(self.max_retries):
            if relation[1] not in FREQUENT_PREDICATES or rng.random() < self.frequent_keep:
                break
            relation = rng.choice(image.relations)
        return relation

    def _relation(self, image: AnnotatedImage, rng: random.Random, subtype: str) -> tuple[dict[str, str], str]:
        subject, predicate, obj = self._pick_relation(image, rng)
        slots = {"subject": self._box(image, image.objects[subject][1]), "relation": predicate}
        if subtype == "relation_predict":
            slots["object"] = self._box(image, image.objects[obj][1])
            return slots, predicate
        related = sorted({o for s, p, o in image.relations if s == subject and p == predicate})
        if subtype == "relation_classify":
            return slots, self._answer_categories(image, related)
        return slots, self._answer_boxes(image, related, with_labels=subtype == "relation_locate_classify")

    def _coarse_location(self, image: AnnotatedImage, rng: random.Random, subtype: str) -> tuple[dict[str, str], str]:
        use_region = bool(image.regions) and (len(image.objects) < 2 or rng.random() < 0.5)
        if use_region:
            phrase, anchor_box = rng.choice(image.regions)
            anchor, anchor_text = None, self._phrase(phrase)
        else:
            anchor = rng.randrange(len(image.objects))
            anchor_box = image.objects[anchor][1]
            anchor_text = self._box(image, anchor_box)
        position = rng.choice(POSITIONS)
        ax, ay = (anchor_box[0] + anchor_box[2]) / 2, (anchor_box[1] + anchor_box[3]) / 2
        want_left, want_top = position.endswith("left"), position.startswith("top")
        hits = []
        for i, (_, box) in enumerate(image.objects):
            if i == anchor:
                continue
            cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
            if ((cx < ax) if want_left else (cx > ax)) and ((cy < ay) if want_top else (cy > ay)):
                hits.append(i)
        slots = {"object": anchor_text, "position": position}
        if subtype == "coarse_location_category":
            return slots, self._answer_categories(image, hits)
        return slots, self._answer_boxes(image, hits, with_labels=subtype == "coarse_location_box_category")

    @staticmethod
    def _balanced_class(image: AnnotatedImage, rng: random.Random, min_count: int = 1) -> str:
        counts = Counter(c for c, _ in image.objects)
        values = sorted({n for n in counts.values() if n >= min_count})
        value = rng.choice(values)
        return rng.choice(sorted(c for c, n in counts.items() if n == value))

    def _counting(self, image: AnnotatedImage, rng: random.Random, subtype: str) -> tuple[dict[str, str], str]:
        category = self._balanced_class(image, rng)
        members = [i for i, (c, _) in enumerate(image.objects) if c == category]
        answer = str(len(members))
        if subtype == "counting_by_name":
            return {"category": category}, answer
        return {"object": self._box(image, image.objects[rng.choice(members)][1])}, answer

    def _detection(self, image: AnnotatedImage, rng: random.Random, subtype: str) -> tuple[dict[str, str], str]:
        if subtype == "detection_by_name":
            category = rng.choice(sorted({c for c, _ in image.objects}))
            members = [i for i, (c, _) in enumerate(image.objects) if c == category]
            return {"category": category}, self._answer_boxes(image, members, with_labels=False)
        counts = Counter(c for c, _ in image.objects)
        category = rng.choice(sorted(c for c, n in counts.items() if n > 1))
        members = [i for i, (c, _) in enumerate(image.objects) if c == category]
        exemplar = image.objects[rng.choice(members)][1]
        return {"object": self._box(image, exemplar)}, self._answer_boxes(image, members, with_labels=False)

    def _grounding(self, image: AnnotatedImage, rng: random.Random, subtype: str) -> tuple[dict[str, str], str]:
        phrase, box = rng.choice(image.regions)
        return {"expr": self._phrase(phrase)}, pink.format_boxes(Boxes(box, image.frame))

    def _region_caption(self, image: AnnotatedImage, rng: random.Random, subtype: str) -> tuple[dict[str, str], str]:
        phrase, box = rng.choice(image.regions)
        return {"object": self._box(image, box)}, phrase


def generate_samples(
    images: Sequence[AnnotatedImage], seed: int, generator: PinkTaskGenerator | None = None
) -> list[TaskSample]:
    """One task per image, reproducible from ``seed`` (Pink draws one RC task each time an image is sampled)."""
    rng = random.Random(seed)
    generator = generator or PinkTaskGenerator()
    return [generator.generate(image, rng) for image in images]


__all__ = ["POSITIONS", "TASKS", "AnnotatedImage", "PinkTaskGenerator", "TaskSample", "generate_samples"]
