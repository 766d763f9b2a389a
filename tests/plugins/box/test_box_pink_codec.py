"""Pink/Shikra ``[x0,y0,x1,y1]`` text: format, lenient parse, Pink's own evaluator parse, and properties."""

from __future__ import annotations

import numpy as np
import pytest
from box_strategies import FUZZ, grammar_soup, normalized_boxes, unit
from hypothesis import given
from hypothesis import strategies as st

from anymal.errors import InputError
from anymal_box import NORMALIZED, Boxes, PixelFrame, Points, pink


def test_format_examples():
    assert pink.format_box([0.222, 0.333, 0.444, 0.555]) == "[0.222,0.333,0.444,0.555]"
    # pixel boxes are written as fractions of the photo: 64/640 = 0.1, 120/480 = 0.25, 2/3 -> 0.667
    photo = PixelFrame(640, 480)
    assert pink.format_boxes(Boxes([[64, 120, 320, 320]], photo)) == "[0.100,0.250,0.500,0.667]"
    assert pink.format_boxes(Boxes.empty()) == "N/A" and pink.format_points(Points.empty()) == "N/A"
    assert pink.format_points(Points([[0.5, 0.25]])) == "[0.500,0.250]"


def test_several_boxes_are_sorted_by_area_and_labels_follow():
    big, small = [0.0, 0.0, 0.5, 0.5], [0.6, 0.6, 0.7, 0.7]
    boxes = Boxes([big, small])
    assert pink.format_boxes(boxes) == "[0.600,0.600,0.700,0.700] [0.000,0.000,0.500,0.500]"
    assert pink.format_boxes(boxes, labels=["couch", "remote"]) == (
        "[0.600,0.600,0.700,0.700] remote [0.000,0.000,0.500,0.500] couch"
    )
    assert pink.format_boxes(boxes, sort=False).startswith("[0.000")


def test_lenient_parse_reports_what_it_skipped():
    text = "The cat [0.100,0.200,0.300,0.400] and [0.5,0.5], not [1.200,0,1,1] [sic] [0.1,0.2,0.3] [0.5,0.1,0.2,0.9]"
    result = pink.parse(text)
    assert result.boxes == Boxes([[0.1, 0.2, 0.3, 0.4]], NORMALIZED)
    assert result.points == Points([[0.5, 0.5]])
    reasons = [p.reason for p in result.problems]
    assert reasons == ["coordinates must lie in [0, 1]", "3 numbers; a box has 4, a point 2", "x0 > x1 or y0 > y1"]
    assert [text[p.start : p.end] for p in result.problems] == ["[1.200,0,1,1]", "[0.1,0.2,0.3]", "[0.5,0.1,0.2,0.9]"]
    assert not result.ok
    with pytest.raises(InputError, match=r"region_prompt: 3 malformed box span\(s\)"):
        result.raise_for_problems("region_prompt")
    assert pink.parse("N/A").ok and len(pink.parse("N/A").boxes) == 0


def test_pink_eval_box_reproduces_the_reference_parse():
    assert pink.pink_eval_box("[0.100,0.200,0.300,0.400]") == Boxes([[0.1, 0.2, 0.3, 0.4]])
    # the reference regex wants d.ddd: two decimals or five numbers are format errors
    assert pink.pink_eval_box("[0.10,0.20,0.30,0.40]") is None
    assert pink.pink_eval_box("[0.100,0.200,0.300,0.400] [0.500,0.5,0.6,0.7]") is None
    assert pink.pink_eval_box(None) is None


@FUZZ
@given(normalized_boxes())
def test_round_trip_within_the_grammar_quantum(boxes):
    parsed = pink.parse(pink.format_boxes(boxes, sort=False))
    assert parsed.ok and len(parsed.boxes) == len(boxes)
    assert np.abs(parsed.boxes.data - boxes.data).max() <= pink.QUANTUM / 2 + 1e-12


@FUZZ
@given(normalized_boxes())
def test_sorted_output_is_in_ascending_area(boxes):
    parsed = pink.parse(pink.format_boxes(boxes))
    areas = parsed.boxes.areas
    assert len(areas) == len(boxes)
    # areas of the quantised boxes may tie-break differently only within rounding of the written numbers
    assert np.all(np.diff(areas) >= -4 * pink.QUANTUM)


@FUZZ
@given(st.lists(st.lists(unit, min_size=4, max_size=4), min_size=1, max_size=4))
def test_text_round_trip_is_exact_for_three_decimal_text(rows):
    rows = [[round(v, 3) for v in sorted(r[0::2]) + sorted(r[1::2])] for r in rows]
    rows = [[r[0], r[2], r[1], r[3]] for r in rows]  # x0 <= x1 and y0 <= y1
    text = " ".join(pink.format_box(r) for r in rows)
    assert pink.format_boxes(pink.parse(text).boxes, sort=False) == text


@FUZZ
@given(st.one_of(st.text(), grammar_soup(["[", "]", ",", "0.", "1.000", "[0.100,0.200,0.300,0.400]", "N/A"])))
def test_lenient_parse_never_raises_and_returns_only_good_boxes(text):
    result = pink.parse(text)
    assert result.boxes.well_formed().all() and result.points.in_frame().all()
    for problem in result.problems:
        assert text[problem.start : problem.end] == problem.text
    assert pink.pink_eval_box(text) is None or len(pink.pink_eval_box(text)) == 1


@FUZZ
@given(normalized_boxes(), st.text(alphabet=st.characters(exclude_characters="[]"), max_size=20))
def test_good_boxes_survive_surrounding_junk(boxes, junk):
    text = junk + junk.join(pink.format_box(b) for b in boxes.data) + junk
    parsed = pink.parse(text)
    assert len(parsed.boxes) == len(boxes)


def test_parse_labeled_pairs_each_box_with_the_name_after_it():
    text = "[0.520,0.166,0.581,0.387] remote [0.543,0.053,1.000,0.770] cat"
    result = pink.parse_labeled(text)
    assert [g.phrase for g in result.groundings] == ["remote", "cat"]
    assert result.groundings[1].boxes == Boxes([[0.543, 0.053, 1.0, 0.77]])
    # a malformed box is reported and its label goes with it into the previous label's text
    bad = pink.parse_labeled("[0.1,0.1,0.2,0.2] cat [0.9,0.9,0.1,0.1] dog")
    assert [g.phrase for g in bad.groundings] == ["cat [0.9,0.9,0.1,0.1] dog"] and len(bad.problems) == 1
    assert pink.parse_labeled("[0.1,0.1,0.2,0.2]").groundings[0].phrase is None
    assert pink.parse_labeled("N/A").groundings == ()


@FUZZ
@given(normalized_boxes(), st.lists(st.text(alphabet="abcdefgh ", min_size=1, max_size=8), min_size=6, max_size=6))
def test_labeled_round_trip(boxes, labels):
    labels = [lab.strip() or "x" for lab in labels[: len(boxes)]]
    result = pink.parse_labeled(pink.format_boxes(boxes, labels=labels, sort=False))
    assert [g.phrase for g in result.groundings] == labels
