"""The ``names`` task: free generation is right when it names the row's label and no other label of the set."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

from anymal.errors import ConfigError, DataError
from anymal.eval import evaluate
from anymal.eval.__main__ import main
from anymal.eval.naming import named_labels
from anymal.eval.tasks import get_task, task_names
from anymal.testing import tiny_anymal, write_toy_input

LABELS = ["standing", "walking", "running", "badminton"]


class ScriptedModel:
    """Answers each prompt with a fixed text: what ``evaluate`` needs of a model for a generation task."""

    training = False

    def __init__(self, answers: dict[str, str]) -> None:
        self.answers = answers
        self.plugins: dict = {}

    def eval(self):
        return self

    def train(self, mode: bool = True):
        return self

    def generate(self, prompts, **_):
        return SimpleNamespace(texts=[self.answers[p] for p in prompts])


def test_named_labels_matches_whole_words_case_insensitively():
    assert named_labels("Running fast.", LABELS) == ["running"]
    assert named_labels("The person is playing Badminton.", LABELS) == ["badminton"]
    assert named_labels("outrunning the walkingstick", LABELS) == []
    assert named_labels("walking, then running", LABELS) == ["walking", "running"]
    assert named_labels("she is playing badminton", ["playing badminton", "badminton"]) == [
        "playing badminton",
        "badminton",
    ]


def test_names_scores_right_none_and_several():
    rows = [
        {"id": "a", "prompt": "p1", "label": "running"},
        {"id": "b", "prompt": "p2", "label": "walking"},
        {"id": "c", "prompt": "p3", "label": "walking"},
        {"id": "d", "prompt": "p4", "label": "standing"},
    ]
    model = ScriptedModel({"p1": "The person is running.", "p2": "Once upon a time", "p3": "walking and running",
                           "p4": "The person is standing."})  # fmt: skip
    result = evaluate(model, "names", rows, labels=LABELS, progress=False)
    metrics = result["metrics"]
    assert metrics["accuracy"] == 0.5
    assert metrics["names_none"] == 0.25 and metrics["names_several"] == 0.25
    assert metrics["per_class_accuracy"] == {"running": 1.0, "standing": 1.0, "walking": 0.0}
    assert result["settings"]["labels"] == LABELS  # a different label set is a different run (resume identity)


def test_names_is_listed_and_needs_a_label_set_holding_the_gold_label():
    assert "names" in task_names() and get_task("names").mode == "generate"
    model = ScriptedModel({"p": "running"})
    with pytest.raises(ConfigError, match="label set"):
        evaluate(model, "names", [{"id": "a", "prompt": "p", "label": "running"}], progress=False)
    with pytest.raises(DataError, match="'jumping' is not in the label set"):
        evaluate(model, "names", [{"id": "a", "prompt": "p", "label": "jumping"}], labels=LABELS, progress=False)


def test_names_through_the_cli_on_a_saved_model(tmp_path):
    torch.manual_seed(0)
    tiny_anymal(("toy",)).save_pretrained(tmp_path / "model")
    write_toy_input(tmp_path / "x.txt", torch.randn(8))
    rows = [{"id": f"q{i}", "media": {"toy": "x.txt"}, "question": "what is it?", "label": LABELS[i]} for i in range(2)]
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "names.json"
    argv = ["--model", str(tmp_path / "model"), "--task", "names", "--data", str(tmp_path / "rows.jsonl"),
            "--labels", ",".join(LABELS), "--max-new-tokens", "3", "--out", str(out), "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    result = json.loads(out.read_text())
    assert result["n_items"] == 2 and 0.0 <= result["metrics"]["accuracy"] <= 1.0
    records = [json.loads(line) for line in (tmp_path / "names.predictions.jsonl").read_text().splitlines()[1:]]
    assert [r["label"] for r in records] == LABELS[:2] and all(isinstance(r["named"], list) for r in records)
