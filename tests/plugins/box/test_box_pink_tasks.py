"""Pink's RC task generator on the six real boxes of COCO image 39769 (answers worked out by hand below).

Boxes (xyxy, pixels of the 640x480 photo) and centres, from the annotations' [x, y, w, h]:
    0 remote [332.89, 79.57, 371.54, 185.88]   centre (352.215, 132.725)  area 38.65 * 106.31 = 4108.9
    1 remote [41.88, 74.2, 175.03, 119.3]      centre (108.455, 96.75)    area 133.15 * 45.1 = 6004.9
    2 couch  [1.08, 0.0, 639.64, 473.53]       centre (320.36, 236.765)
    3 bed    [1.07, 1.18, 640.0, 479.03]       centre (320.535, 240.105)
    4 cat    [17.5, 54.38, 318.75, 469.38]     centre (168.125, 261.88)   area 301.25 * 415 = 125018.75
    5 cat    [347.5, 25.63, 640.0, 369.38]     centre (493.75, 197.505)   area 292.5 * 343.75 = 100546.875
Pink text (fractions of 640 and 480, 3 decimals):
    remote0 [0.520,0.166,0.581,0.387]  remote1 [0.065,0.155,0.273,0.249]
    cat4    [0.027,0.113,0.498,0.978]  cat5    [0.543,0.053,1.000,0.770]
    couch2  [0.002,0.000,0.999,0.987]
"""

from __future__ import annotations

import random

import pytest
from box_assets import COCO_CATEGORIES, COCO_SIZE

from anymal.errors import DataError
from anymal_box import pink
from anymal_box.pink_tasks import TASKS, AnnotatedImage, PinkTaskGenerator, generate_samples

REMOTE0, REMOTE1 = "[0.520,0.166,0.581,0.387]", "[0.065,0.155,0.273,0.249]"
CAT4, CAT5, COUCH2 = "[0.027,0.113,0.498,0.978]", "[0.543,0.053,1.000,0.770]", "[0.002,0.000,0.999,0.987]"


class Fixed(random.Random):
    """A Random whose ``choice`` takes the entry we name (so one sub-case can be pinned) and is otherwise seeded."""

    def __init__(self, picks: dict[str, object], seed: int = 0) -> None:
        super().__init__(seed)
        self.picks = picks

    def choice(self, seq):
        for want in self.picks.values():
            if want in seq:
                return want
        return super().choice(seq)


@pytest.fixture(scope="module")
def coco_image(coco_annotations) -> AnnotatedImage:
    image = AnnotatedImage.from_coco(coco_annotations, COCO_CATEGORIES, *COCO_SIZE)
    regions = (("cat on the left", image.objects[4][1]), ("remote on the right", image.objects[0][1]))
    relations = ((4, "on", 2), (5, "on", 2), (0, "on", 2), (4, "next to", 5), (4, "next to", 1))
    return AnnotatedImage(image.width, image.height, image.objects, regions, relations)


def test_from_coco_reads_the_six_boxes(coco_image):
    assert [c for c, _ in coco_image.objects] == ["remote", "remote", "couch", "bed", "cat", "cat"]
    assert coco_image.objects[4][1] == pytest.approx((17.5, 54.38, 318.75, 469.38))


def test_detection_by_name_lists_boxes_smallest_first(coco_image):
    gen = PinkTaskGenerator()
    sample = gen.generate(coco_image, Fixed({"category": "cat"}), "detection", "detection_by_name")
    assert "cat" in sample.instruction
    assert sample.answer == f"{CAT5} {CAT4}"  # 100546.875 < 125018.75
    sample = gen.generate(coco_image, Fixed({"category": "remote"}), "detection", "detection_by_exemplar")
    assert sample.answer == f"{REMOTE0} {REMOTE1}"  # 4108.9 < 6004.9
    assert REMOTE0 in sample.instruction or REMOTE1 in sample.instruction


def test_coarse_location_uses_box_centres(coco_image):
    gen = PinkTaskGenerator()
    rng = Fixed({"position": "top right"})
    rng.random = lambda: 0.9  # object anchor, not a region phrase
    rng.randrange = lambda n: 2  # the couch, centre (320.36, 236.765)
    sample = gen.generate(coco_image, rng, "coarse_location", "coarse_location_box_category")
    # top right of (320.36, 236.765): remote0 (352.2, 132.7) and cat5 (493.75, 197.5); the bed's centre
    # (320.535, 240.105) is right of it but below, so bottom right
    assert COUCH2 in sample.instruction and "top right" in sample.instruction
    assert sample.answer == f"{REMOTE0} remote {CAT5} cat"
    rng.picks = {"position": "bottom left"}
    assert gen.generate(coco_image, rng, "coarse_location", "coarse_location_category").answer == "cat"
    rng.picks = {"position": "bottom right"}
    bed = gen.generate(coco_image, rng, "coarse_location", "coarse_location_box").answer
    assert bed == "[0.002,0.002,1.000,0.998]"  # 1.07/640, 1.18/480, 640/640, 479.03/480


def test_counting_is_balanced_over_count_values(coco_image):
    gen = PinkTaskGenerator()
    # per-class counts: remote 2, couch 1, bed 1, cat 2 -> count values {1, 2} each drawn half the time
    rng = random.Random(0)
    answers = [gen.generate(coco_image, rng, "counting", "counting_by_name").answer for _ in range(400)]
    assert set(answers) == {"1", "2"} and 160 < answers.count("2") < 240
    sample = gen.generate(coco_image, Fixed({"v": 2, "c": "cat"}), "counting", "counting_by_exemplar")
    assert sample.answer == "2" and (CAT4 in sample.instruction or CAT5 in sample.instruction)


def test_relations_grounding_and_region_caption(coco_image):
    gen = PinkTaskGenerator()
    rng = Fixed({"rel": (4, "next to", 5)})
    sample = gen.generate(coco_image, rng, "relation", "relation_predict")
    assert sample.answer == "next to" and CAT4 in sample.instruction and CAT5 in sample.instruction
    # cat4 is "next to" cat5 and remote1: boxes by area (remote1 first), and their classes in the same order
    assert (
        gen.generate(coco_image, rng, "relation", "relation_locate_classify").answer == f"{REMOTE1} remote {CAT5} cat"
    )
    assert gen.generate(coco_image, rng, "relation", "relation_classify").answer == "remote, cat"
    rng = Fixed({"region": ("cat on the left", coco_image.objects[4][1])})
    assert gen.generate(coco_image, rng, "grounding").answer == CAT4
    caption = gen.generate(coco_image, rng, "region_caption")
    assert caption.answer == "cat on the left" and CAT4 in caption.instruction
    marked = PinkTaskGenerator(markers=True).generate(coco_image, rng, "grounding")
    assert "<des>cat on the left</des>" in marked.instruction


def test_frequent_predicates_are_down_sampled():
    objects = (("a", (0, 0, 1, 1)), ("b", (1, 1, 2, 2)))
    image = AnnotatedImage(10, 10, objects, relations=((0, "on", 1), (0, "beside", 1)))
    rng = random.Random(3)
    picks = [PinkTaskGenerator()._pick_relation(image, rng)[1] for _ in range(2000)]
    # a draw keeps "on" only with p 0.2: P(on) = 0.5 * 0.2 / (0.5 * 0.2 + 0.5) = 1/6 (retries redraw)
    assert 0.12 < picks.count("on") / len(picks) < 0.21


def test_seeded_generation_is_deterministic_and_well_formed(coco_image):
    a = generate_samples([coco_image] * 60, seed=13)
    assert a == generate_samples([coco_image] * 60, seed=13)
    assert a != generate_samples([coco_image] * 60, seed=14)
    assert {s.task for s in a} == set(TASKS)  # every task is drawn for an image that supports all six
    for s in a:
        assert "<" not in s.instruction  # every placeholder filled (no markers here)
        parsed = pink.parse(s.answer)
        assert parsed.ok and parsed.boxes.well_formed().all()


def test_unsupported_tasks_and_bad_annotations_are_data_errors(coco_annotations):
    plain = AnnotatedImage.from_coco(coco_annotations, COCO_CATEGORIES, *COCO_SIZE)
    with pytest.raises(DataError, match="'grounding' is not possible"):
        PinkTaskGenerator().generate(plain, random.Random(0), "grounding")
    with pytest.raises(DataError, match="no objects or regions"):
        PinkTaskGenerator().generate(AnnotatedImage(10, 10, ()), random.Random(0))
    with pytest.raises(DataError, match=r"objects\[0\]"):
        AnnotatedImage(10, 10, (("a", (5, 5, 1, 1)),))
    with pytest.raises(DataError, match="out of range"):
        AnnotatedImage(10, 10, (("a", (0, 0, 1, 1)),), relations=((0, "on", 3),))
