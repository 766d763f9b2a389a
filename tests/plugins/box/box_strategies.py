"""Hypothesis strategies shared by the codec property tests: well-formed normalised boxes and grammar soup."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from anymal_box import NORMALIZED, Boxes

FUZZ = settings(
    max_examples=200,
    deadline=None,
    database=None,  # nothing written into the checkout
    suppress_health_check=[HealthCheck.too_slow],
)

unit = st.floats(min_value=0.0, max_value=1.0, allow_nan=False, allow_infinity=False)


@st.composite
def normalized_boxes(draw, max_boxes: int = 6, high: float = 1.0) -> Boxes:
    """1..max_boxes well-formed boxes with coordinates in [0, high]."""
    n = draw(st.integers(1, max_boxes))
    coord = st.floats(min_value=0.0, max_value=high, allow_nan=False, allow_infinity=False)
    rows = []
    for _ in range(n):
        xa, xb, ya, yb = (draw(coord) for _ in range(4))
        rows.append([min(xa, xb), min(ya, yb), max(xa, xb), max(ya, yb)])
    return Boxes(np.asarray(rows), NORMALIZED)


def grammar_soup(fragments: list[str]) -> st.SearchStrategy[str]:
    """Strings glued from grammar fragments, digits, punctuation and arbitrary text: near-miss model output."""
    piece = st.one_of(
        st.sampled_from(fragments),
        st.text(alphabet="0123456789.,()[]<>/ -e", max_size=8),
        st.integers(-5, 2000).map(str),
        st.text(max_size=6),
    )
    return st.lists(piece, max_size=25).map("".join)
