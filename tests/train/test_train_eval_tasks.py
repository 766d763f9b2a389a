"""``eval_tasks:`` in a training config: anymal.eval's scorers run on the in-memory model during training."""

import json

import pytest

from anymal.errors import ConfigError
from anymal.train import train
from anymal.train.config import EvalTaskSpec, preflight


@pytest.fixture
def classify_rows(toy_pairs, tmp_path):
    """Held-out classification rows over the toy inputs: the label is the caption's first word."""
    rows = []
    for line in toy_pairs[0].read_text().splitlines():
        row = json.loads(line)
        if row.get("caption") and not row["toy"].endswith("missing.jpg"):
            rows.append({"media": {"toy": row["toy"]}, "question": "What is it?", "label": row["caption"].split()[0]})
    path = tmp_path / "classify.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path, sorted({r["label"] for r in rows})


def test_eval_tasks_are_scored_during_and_after_training(make_toy_config, classify_rows, tmp_path):
    path, labels = classify_rows
    config = make_toy_config(tmp_path, "max_steps=4", "eval_every=2")
    config.eval_tasks = [EvalTaskSpec(task="classify", data=str(path), labels=labels, batch_size=4)]
    result = train(config)
    steps = [step for step, _ in result.task_scores["classify"]]
    assert steps == [2, 4]
    for _, scores in result.task_scores["classify"]:
        assert 0.0 <= scores["accuracy"] <= 1.0
    logged = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in logged if "eval_classify/accuracy" in row] == [2, 4]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert [entry[0] for entry in summary["eval_tasks"]["classify"]] == [2, 4]


def test_an_unknown_eval_task_or_missing_file_fails_preflight(make_toy_config, classify_rows, tmp_path):
    path, labels = classify_rows
    config = make_toy_config(tmp_path)
    config.eval_tasks = [EvalTaskSpec(task="bleurt", data=str(path))]
    with pytest.raises(ConfigError, match=r"eval_tasks\.0\.task: unknown eval task 'bleurt'"):
        preflight(config)
    config.eval_tasks = [EvalTaskSpec(task="classify", data=str(tmp_path / "nope.jsonl"), labels=labels)]
    with pytest.raises(ConfigError, match=r"eval_tasks\.0\.data: .*nope\.jsonl: no such data file"):
        preflight(config)
