"""Qwen-VL ``<ref>..</ref><box>(x1,y1),(x2,y2)</box>`` text: format, lenient parse, evaluator parse, properties."""

from __future__ import annotations

import numpy as np
import pytest
from box_strategies import FUZZ, grammar_soup, normalized_boxes
from hypothesis import given
from hypothesis import strategies as st

from anymal.errors import InputError
from anymal_box import QWEN_EVAL_GRID, QWEN_GRID, Boxes, Grounding, PixelFrame, qwen

README_EXAMPLE = "<ref> Two apples</ref><box>(302,257),(582,671)</box><box>(603,252),(878,642)</box>"


def test_format_examples():
    photo = PixelFrame(640, 480)
    # 64/640 * 1000 = 100, 120/480 * 1000 = 250, 320/640 -> 500, 320/480 * 1000 = 666.67 -> 667
    assert qwen.format_ref("the cat", Boxes([[64, 120, 320, 320]], photo)) == (
        "<ref>the cat</ref><box>(100,250),(500,667)</box>"
    )
    # the far edge is 1000 on the paper's grid, clamped into [0, 1000); 999 on the evaluator's grid
    assert qwen.format_boxes(Boxes([[0, 0, 1, 1]])) == "<box>(0,0),(999,999)</box>"
    assert qwen.format_boxes(Boxes([[0, 0, 1, 1]]), QWEN_EVAL_GRID) == "<box>(0,0),(999,999)</box>"
    two = Boxes([[302, 257, 582, 671], [603, 252, 878, 642]], QWEN_GRID)
    assert qwen.format_ref(" Two apples", two) == README_EXAMPLE
    with pytest.raises(ValueError, match="contains"):
        qwen.format_ref("a <box> b", two)


def test_parse_readme_example_and_grounded_caption():
    result = qwen.parse(README_EXAMPLE)
    assert result.ok and len(result.groundings) == 1
    assert result.groundings[0].phrase == " Two apples" and len(result.groundings[0].boxes) == 2
    caption = (
        "<ref> Woman</ref><box>(451,379),(731,806)</box> and<ref> her dog</ref><box>(219,424),(576,896)</box> "
        "playing on the beach"
    )
    result = qwen.parse(caption)
    assert [g.phrase for g in result.groundings] == [" Woman", " her dog"]
    assert result.boxes.data.tolist() == [[451, 379, 731, 806], [219, 424, 576, 896]]
    assert qwen.strip_grounding(caption) == " Woman and her dog playing on the beach"
    assert qwen.format_groundings(result.groundings, sep=" and") == caption.replace(" playing on the beach", "")


def test_parse_recovers_truncation_and_reports_skips():
    # Qwen-VL's REC prompt ends in "<box>": the answer is only "(x1,y1),(x2,y2)</box>"
    assert qwen.parse("(12,34),(56,78)</box>").boxes.data.tolist() == [[12, 34, 56, 78]]
    # generation cut before </box>
    cut = qwen.parse("<ref>cat</ref><box>(1,2),(3,4)")
    assert cut.ok and cut.groundings[0] == Grounding("cat", Boxes([[1, 2, 3, 4]], QWEN_GRID))
    text = (
        "<ref>cat</ref><box>(1,2)</box><box>(5,6),(7,8)</box> x <box>(10,10),(1000,20)</box>"
        "<ref>dog<box>(9,9),(8,8)</box></ref>"
    )
    result = qwen.parse(text)
    # the bad first box does not break the chain: (5,6),(7,8) still belongs to "cat"
    assert result.groundings[0] == Grounding("cat", Boxes([[5, 6, 7, 8]], QWEN_GRID))
    assert [p.reason for p in result.problems] == [
        "1 coordinate pairs; a box has 2: (x1,y1),(x2,y2)",
        "coordinates must lie in [0, 1000)",
        "unclosed <ref>; phrase taken up to here",
        "x1 > x2 or y1 > y2",
        "stray </ref> without <ref>",
    ]
    assert [g.phrase for g in result.groundings] == ["cat", "dog"]
    with pytest.raises(InputError, match="user_text: 5 malformed"):
        result.raise_for_problems("user_text")
    assert not qwen.parse("(1.5,2),(3,4)</box>").ok  # the grammar is integers


def test_grid_scales_to_pixels():
    photo = PixelFrame(640, 480)
    box = qwen.parse("<box>(100,250),(500,999)</box>").boxes
    np.testing.assert_allclose(box.to(photo).data, [[64, 120, 320, 479.52]])  # 999/1000 * 480
    box = qwen.parse("<box>(100,250),(500,999)</box>", QWEN_EVAL_GRID).boxes
    np.testing.assert_allclose(box.to(photo).data[0, 3], 480)  # the evaluator's /999


def test_qwen_eval_box_reproduces_the_reference_parse():
    assert qwen.qwen_eval_box("(1,2),(3,4)</box> (5,6),(7,8)") == Boxes([[1, 2, 3, 4]], QWEN_GRID)
    assert qwen.qwen_eval_box("no box here") is None and qwen.qwen_eval_box("(a,b),(c,d)") is None
    assert qwen.qwen_eval_box("(1,2),(3,4)", QWEN_EVAL_GRID).frame == QWEN_EVAL_GRID


@FUZZ
@given(normalized_boxes(high=0.999))
def test_round_trip_within_half_a_grid_step(boxes):
    parsed = qwen.parse(qwen.format_boxes(boxes))
    assert parsed.ok and len(parsed.boxes) == len(boxes) and parsed.groundings[0].phrase is None
    assert np.abs(parsed.boxes.normalized().data - boxes.data).max() <= 0.5 / 1000 + 1e-12


@FUZZ
@given(normalized_boxes())
def test_round_trip_on_the_evaluator_grid_never_clamps(boxes):
    parsed = qwen.parse(qwen.format_boxes(boxes, QWEN_EVAL_GRID), QWEN_EVAL_GRID)
    assert np.abs(parsed.boxes.normalized().data - boxes.data).max() <= 0.5 / 999 + 1e-12


@FUZZ
@given(st.lists(st.tuples(st.text(alphabet="abc xyz", max_size=8), normalized_boxes(max_boxes=3)), max_size=4))
def test_format_parse_format_is_identity(groups):
    groundings = [Grounding(phrase, boxes) for phrase, boxes in groups]
    text = qwen.format_groundings(groundings)
    parsed = qwen.parse(text)
    assert parsed.ok
    assert [g.phrase for g in parsed.groundings] == [g.phrase for g in groundings]
    assert qwen.format_groundings(parsed.groundings) == text


FRAGMENTS = ["<ref>", "</ref>", "<box>", "</box>", "<quad>", "</quad>", "(", ")", ",", "(1,2),(3,4)", "999", "1000"]


@FUZZ
@given(st.one_of(st.text(), grammar_soup(FRAGMENTS)))
def test_lenient_parse_never_raises_and_returns_only_good_boxes(text):
    result = qwen.parse(text)
    assert result.boxes.well_formed().all()
    assert sum(len(g.boxes) for g in result.groundings) == len(result.boxes)
    for problem in result.problems:
        assert text[problem.start : problem.end] == problem.text
    qwen.qwen_eval_box(text)
    qwen.strip_grounding(text)


@FUZZ
@given(normalized_boxes(), st.text(alphabet=st.characters(exclude_characters="<>()"), max_size=20))
def test_good_boxes_survive_surrounding_junk(boxes, junk):
    text = junk + junk.join(qwen.format_boxes(boxes[i]) for i in range(len(boxes))) + junk
    parsed = qwen.parse(text)
    assert parsed.ok and len(parsed.boxes) == len(boxes)
    assert parsed.boxes == Boxes(qwen.to_grid(boxes), QWEN_GRID)
