"""Finding trigger occurrences and tapping the hidden state before or at them."""

from __future__ import annotations

import torch

from anymal.triggers import trigger_states


def test_tap_before_and_at_read_the_right_positions_row_by_row():
    hidden = torch.arange(2 * 5, dtype=torch.float32).reshape(2, 5, 1)
    ids = torch.tensor([[1, 9, 2, 9, 3], [9, 4, 8, 5, 6]])  # 9 and 8 are triggers
    before = trigger_states(hidden, ids, [9, 8], "before")
    assert before.counts == [2, 1]  # row 1's 9 at position 0 has no state before it
    assert before.states.squeeze(1).tolist() == [0.0, 2.0, 6.0]
    assert before.rows.tolist() == [0, 0, 1] and before.token.tolist() == [0, 0, 1]
    at = trigger_states(hidden, ids, [9, 8], "at")
    assert at.counts == [2, 2] and at.states.squeeze(1).tolist() == [1.0, 3.0, 5.0, 7.0]
    assert [t.tolist() for t in at.split(torch.arange(4))] == [[0, 1], [2, 3]]


def test_no_occurrence_gives_empty_states():
    states = trigger_states(torch.zeros(3, 4, 8), torch.ones(3, 4, dtype=torch.long), [7], "before")
    assert len(states) == 0 and states.states.shape == (0, 8) and states.counts == [0, 0, 0]
