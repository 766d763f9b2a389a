"""``python -m anymal.eval`` end to end on a saved tiny model with the toy plugin: generation and likelihood tasks,
resuming after a kill, and bad inputs."""

from __future__ import annotations

import json

import pytest
import torch

from anymal.errors import ConfigError, DataError
from anymal.eval import evaluate, score_candidates
from anymal.eval.__main__ import main
from anymal.eval.likelihood import ScoreRequest
from anymal.testing import tiny_anymal, write_toy_input

LABELS = ["walking", "running", "standing"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("eval")
    model = tiny_anymal(("toy",))
    model.save_pretrained(root / "model")
    gen = torch.Generator().manual_seed(1)
    rows = []
    for i in range(5):
        write_toy_input(root / f"x{i}.txt", torch.randn(8, generator=gen))
        rows.append({"id": f"q{i}", "media": {"toy": f"x{i}.txt"}, "question": "what is it?",
                     "answers": ["a cat", "cat", "the cat"], "options": ["cat", "dog", "cow"], "answer": i % 3,
                     "label": LABELS[i % 3]})  # fmt: skip
    data = root / "data.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "labels.txt").write_text("\n".join(LABELS) + "\n")
    return root, model, data


def _run(setup, out, *extra):
    root, _, data = setup
    return main(["--model", str(root / "model"), "--data", str(data), "--out", str(out), "--no-progress", *extra])


def test_generation_tasks_write_scores_and_predictions(setup, tmp_path, capsys):
    out = tmp_path / "vqa.json"
    assert _run(setup, out, "--task", "vqav2", "--batch-size", "2", "--max-new-tokens", "4") == 0
    result = json.loads(out.read_text())
    assert result["task"] == "vqav2" and result["n_items"] == 5
    assert 0.0 <= result["metrics"]["vqa_accuracy"] <= 1.0
    lines = (tmp_path / "vqa.predictions.jsonl").read_text().splitlines()
    header, records = json.loads(lines[0]), [json.loads(line) for line in lines[1:]]
    assert header["task"] == "vqav2" and [r["id"] for r in records] == [f"q{i}" for i in range(5)]
    assert all(isinstance(r["prediction"], str) and "score" in r for r in records)
    assert '"vqa_accuracy"' in capsys.readouterr().out


def test_in_process_evaluate_equals_cli_and_batching(setup, tmp_path):
    root, model, data = setup
    out = tmp_path / "gqa.json"
    assert _run(setup, out, "--task", "gqa", "--batch-size", "5", "--max-new-tokens", "4") == 0
    cli = json.loads(out.read_text())
    one = evaluate(model, "gqa", data, batch_size=1, max_new_tokens=4, progress=False)
    cli_preds = [json.loads(x)["prediction"] for x in (tmp_path / "gqa.predictions.jsonl").read_text().splitlines()[1:]]
    assert one["metrics"] == cli["metrics"]
    rows = [json.loads(line) for line in data.read_text().splitlines()]
    again = evaluate(model, "gqa", [dict(r, media={"toy": str(root / r["media"]["toy"])}) for r in rows],
                     batch_size=3, max_new_tokens=4, progress=False, predictions=tmp_path / "p.jsonl")  # fmt: skip
    preds = [json.loads(x)["prediction"] for x in (tmp_path / "p.jsonl").read_text().splitlines()[1:]]
    assert preds == cli_preds and again["metrics"] == cli["metrics"]


def test_likelihood_scores_match_a_hand_computed_forward(setup):
    _, model, data = setup
    path = str(data.parent / "x0.txt")
    request = ScoreRequest("<toy> what is it?", ["cat", "a dog"], {"toy": [path]})
    batched = score_candidates(model, [request, request], batch_size=3)
    for a, b in zip(*batched):  # the same pair in another batch position: equal up to float noise
        assert a.n_tokens == b.n_tokens and a.logprob == pytest.approx(b.logprob, rel=1e-5)
    from anymal.processing import IGNORE_INDEX
    from anymal.records import Turn

    for candidate, got in zip(request.candidates, batched[0]):
        ids, labels = model.prompt_encoder.encode_conversation(
            [Turn("user", request.prompt), Turn("assistant", candidate)], {"toy": 1}, chat=False
        )
        with torch.no_grad():
            out = model(input_ids=[ids], labels=[labels], modality_inputs={"toy": model.preprocess("toy", [path])})
        n = sum(label != IGNORE_INDEX for label in labels[1:])
        assert got.n_tokens == n
        assert got.logprob == pytest.approx(-float(out.loss) * n, rel=1e-4)  # HF loss: mean over the targets


def test_mmbench_circular_and_classify(setup, tmp_path):
    out = tmp_path / "mc.json"
    assert _run(setup, out, "--task", "mmbench", "--batch-size", "4") == 0
    result = json.loads(out.read_text())
    records = [json.loads(x) for x in (tmp_path / "mc.predictions.jsonl").read_text().splitlines()[1:]]
    assert all(len(r["passes"]) == 3 for r in records)
    circular = sum(all(p["correct"] for p in r["passes"]) for r in records) / 5
    assert result["metrics"]["circular_accuracy"] == pytest.approx(circular)
    assert result["metrics"]["circular_accuracy"] <= result["metrics"]["vanilla_accuracy"]

    out = tmp_path / "cls.json"
    assert _run(setup, out, "--task", "classify", "--labels", str(setup[0] / "labels.txt"), "--normalize", "mean") == 0
    result = json.loads(out.read_text())
    records = [json.loads(x) for x in (tmp_path / "cls.predictions.jsonl").read_text().splitlines()[1:]]
    assert all(set(r["scores"]) == set(LABELS) and r["prediction"] == max(r["scores"], key=r["scores"].get)
               for r in records)  # fmt: skip
    assert result["metrics"]["accuracy"] == pytest.approx(sum(r["correct"] for r in records) / 5)
    assert set(result["metrics"]["per_class_accuracy"]) == set(LABELS)


@pytest.mark.parametrize("task", ["caption", "classify"])
def test_resume_after_a_kill_skips_done_items_and_gives_the_same_scores(setup, tmp_path, monkeypatch, task):
    import anymal.eval.runner as runner

    extra = ["--task", task, "--batch-size", "2", "--max-new-tokens", "4", "--caption-tokenizer", "whitespace",
             "--labels", ",".join(LABELS)]  # fmt: skip
    assert _run(setup, tmp_path / "whole.json", *extra) == 0
    whole = json.loads((tmp_path / "whole.json").read_text())

    out = tmp_path / "part.json"
    assert _run(setup, out, *extra, "--limit", "2") == 0  # the run that was "killed" after two items
    preds = tmp_path / "part.predictions.jsonl"
    with preds.open("a") as f:
        f.write('{"index": 2, "id": "q2", "predic')  # a line cut short by the kill
    seen = []
    mode = runner.get_task(task).mode
    original = runner.RUNNERS[mode]

    def counting(model, task_, batch, settings):
        seen.extend(index for index, _ in batch)
        return original(model, task_, batch, settings)

    monkeypatch.setitem(runner.RUNNERS, mode, counting)
    assert _run(setup, out, *extra) == 0
    assert seen == [2, 3, 4]
    resumed = json.loads(out.read_text())
    assert resumed["metrics"] == whole["metrics"] and resumed["n_items"] == 5
    assert len(preds.read_text().splitlines()) == 6  # header + five items, the torn line gone


def test_resume_with_other_settings_is_refused(setup, tmp_path, capsys):
    out = tmp_path / "r.json"
    assert _run(setup, out, "--task", "gqa", "--max-new-tokens", "2", "--limit", "1") == 0
    assert _run(setup, out, "--task", "gqa", "--max-new-tokens", "3") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "max_new_tokens" in err and "--out" in err  # refused before loading


def test_bad_inputs_exit_2_naming_them(setup, tmp_path, capsys):
    root, model, data = setup
    assert _run(setup, tmp_path / "a.json", "--task", "nosuchtask") == 2
    err = capsys.readouterr().err
    assert "error: " in err and "nosuchtask" in err and "vqav2" in err
    assert main(["--model", str(root / "model"), "--task", "gqa", "--data", str(tmp_path / "missing.jsonl")]) == 2
    assert "missing.jsonl" in capsys.readouterr().err
    no_options = tmp_path / "no_options.jsonl"
    no_options.write_text(json.dumps({"id": "a", "media": {"toy": str(root / "x0.txt")}, "label": "walking"}) + "\n")
    assert main(["--model", str(root / "model"), "--task", "classify", "--data", str(no_options)]) == 2
    assert "--labels" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"id": "a", "media": {"toy": "nope.txt"}, "answers": ["x"]}) + "\n")
    assert (
        main(["--model", str(root / "model"), "--task", "gqa", "--data", str(bad), "--out", str(tmp_path / "b.json")])
        == 2
    )
    assert "bad.jsonl:1" in capsys.readouterr().err

    with pytest.raises(ConfigError, match="unknown eval task"):
        evaluate(model, "nope", data)
    with pytest.raises(DataError, match="needs 'options'"):
        evaluate(model, "mmbench", [{"id": "a", "question": "q?", "answers": ["x"]}], progress=False)
    with pytest.raises(DataError, match="not in the label set"):
        evaluate(model, "classify", [{"id": "a", "question": "q?", "label": "jumping"}], labels=LABELS)
    with pytest.raises(ConfigError, match="label set"):
        evaluate(model, "classify", [{"id": "a", "question": "q?", "label": "x"}])
    with pytest.raises(DataError, match="appears twice"):
        evaluate(model, "gqa", [{"id": "a", "answers": ["x"]}, {"id": "a", "answers": ["y"]}])
