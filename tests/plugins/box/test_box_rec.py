"""REC as text in both grammars: training pairs from a real COCO box, answers parsed back and scored."""

from __future__ import annotations

import random

import numpy as np
import pytest
from box_assets import COCO_SIZE

from anymal.errors import InputError
from anymal_box import Boxes, Geometry, PixelFrame
from anymal_box.pink_templates import TEMPLATES
from anymal_box.rec import parse_rec_answer, rec_example, score_rec

PHOTO = PixelFrame(*COCO_SIZE)
# the left cat of COCO 39769: bbox [17.5, 54.38, 301.25, 415.0] -> xyxy
CAT = Boxes([[17.5, 54.38, 318.75, 469.38]], PHOTO)


def test_qwen_pair():
    ex = rec_example("cat on the left", CAT, "qwen")
    # fractions 0.02734, 0.11329, 0.49805, 0.97788 of 640/480 -> grid 27, 113, 498, 978
    assert ex.prompt == "<ref>cat on the left</ref><box>"
    assert ex.answer == "(27,113),(498,978)</box>"
    back = parse_rec_answer(ex.answer, "qwen").to(PHOTO)
    # 27/1000 * 640 = 17.28, 113/1000 * 480 = 54.24, 498 -> 318.72, 978 -> 469.44: within 0.5 px
    np.testing.assert_allclose(back.data, [[17.28, 54.24, 318.72, 469.44]])
    with pytest.raises(InputError, match="grounding tags"):
        rec_example("<ref>x</ref><box>(1,2),(3,4)</box>", CAT, "qwen")


def test_pink_pair_and_template_choice():
    ex = rec_example("cat on the left", CAT, "pink")
    assert ex.prompt == "Where is cat on the left?" and ex.answer == "[0.027,0.113,0.498,0.978]"
    ex = rec_example("cat on the left", CAT, "pink", rng=random.Random(1))
    assert ex.prompt in [t.replace("<expr>", "cat on the left") for t in TEMPLATES["grounding"]]


def test_pairs_on_a_padded_square_input_map_back_to_the_photo():
    g = Geometry.expand_to_square(COCO_SIZE)  # the photo sits 80 px down in a 640 square
    ex = rec_example("cat on the left", CAT, "pink", geometry=g)
    # y + 80 over 640: 134.38/640 = 0.20997 -> 0.210, 549.38/640 = 0.85841 -> 0.858
    assert ex.answer == "[0.027,0.210,0.498,0.858]"
    back = parse_rec_answer(ex.answer, "pink", geometry=g)
    assert back.frame == PHOTO and np.abs(back.data - CAT.data).max() < 0.5


def test_scoring_uses_each_papers_convention():
    target = Boxes([[0, 0, 64, 48]], PHOTO)  # fractions [0, 0, 0.1, 0.1]
    # Pink: [0,0,0.1,0.05] is [0,0,64,24] px; +1 IoU = 65*25 / (65*49) = 0.510 > 0.5 -> hit
    pink_res = score_rec(["[0.000,0.000,0.100,0.050]", "no idea", "[0.000,0.000,0.100,0.100]"], [target] * 3, "pink")
    assert (pink_res.correct, pink_res.format_errors) == (2, 1)
    np.testing.assert_allclose(pink_res.ious, [25 / 49, 0, 1])
    # Qwen-VL: (0,0),(100,50) is [0,0,64,24]: plain IoU 24/48 = 0.5 >= 0.5 -> hit; under Pink's strict rule with
    # plain IoU (u-LLaVA's) the same answer misses
    assert score_rec(["(0,0),(100,50)</box>"], [target], "qwen").correct == 1
    assert score_rec(["(0,0),(100,50)</box>"], [target], "qwen", convention="ullava").correct == 0
    with pytest.raises(InputError, match="grammar"):
        score_rec(["x"], [target], "kosmos")
    with pytest.raises(InputError, match="2 geometries for 1 answers"):
        score_rec(["x"], [target], geometry=[Geometry.identity(COCO_SIZE)] * 2)
