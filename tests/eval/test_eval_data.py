"""Eval data: the eval schema's fields, training layouts read through anymal.data, and the real process's exit
status on bad arguments."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from anymal.errors import DataError
from anymal.eval import read_eval_items
from anymal.testing import write_toy_input


def test_eval_schema_fields(tmp_path):
    write_toy_input(tmp_path / "x.txt", [0.0] * 8)
    rows = [
        {"id": 1, "toy": "x.txt", "question": "q?", "answers": [{"answer": "Two"}, "2", 2]},
        {"prompt": "<toy> pick", "options": ["cat", "dog"], "answer": "B", "source": "set1"},
        {"question": "q?", "options": ["cat", "dog"], "answer": "cat", "label": "cat"},
    ]
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    a, b, c = read_eval_items(data, modalities=["toy"])
    assert a.id == "1" and a.references == ["Two", "2", "2"] and a.media["toy"][0].path == tmp_path / "x.txt"
    assert b.id == "line2" and b.answer == 1 and b.references == ["dog"] and b.extra == {"source": "set1"}
    assert b.prompt == "<toy> pick" and b.question is None and b.gold_label() == "dog"
    assert c.answer == 0 and c.gold_label() == "cat"
    for bad, match in [
        ({"options": ["a", "b"], "answer": 5}, "outside the 2 options"),
        ({"options": ["a"], "answer": 0}, "at least 2"),
        ({"media": {"toy": "missing.txt"}, "answers": ["x"]}, "does not exist"),
        ({"answers": [["nested"]]}, "expected text"),
    ]:
        (tmp_path / "bad.jsonl").write_text(json.dumps(bad) + "\n")
        with pytest.raises(DataError, match=match) as info:
            read_eval_items(tmp_path / "bad.jsonl")
        assert "bad.jsonl:1" in str(info.value)
    with pytest.raises(DataError, match="unknown data kind"):
        read_eval_items(data, kind="nope")


def test_training_layouts_become_items(tmp_path):
    write_toy_input(tmp_path / "x.txt", [0.0] * 8)
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"id": "p1", "toy": "x.txt", "caption": "a toy signal"}) + "\n")
    (item,) = read_eval_items(pairs, kind="pairs", modality="toy")
    assert item.id == "p1" and item.references == ["a toy signal"] and "<toy>" in (item.prompt or "")
    conv = tmp_path / "conv.jsonl"
    turns = [{"role": "user", "content": "<toy> what?"}, {"role": "assistant", "content": "a wave"}]
    conv.write_text(json.dumps({"id": "c1", "media": {"toy": "x.txt"}, "conversations": turns}) + "\n")
    (item,) = read_eval_items(conv, kind="conversations", modalities=["toy"])
    assert item.prompt == "<toy> what?" and item.references == ["a wave"] and len(item.media["toy"]) == 1
    conv.write_text(json.dumps({"conversations": turns + turns}) + "\n")
    with pytest.raises(DataError, match="one question and one answer"):
        read_eval_items(conv, kind="conversations")


def test_the_command_exits_2_with_an_error_line(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text("{}\n")
    cmd = [sys.executable, "-m", "anymal.eval", "--model", str(tmp_path), "--data", str(data), "--task", "bleu"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("error: unknown eval task 'bleu'")
