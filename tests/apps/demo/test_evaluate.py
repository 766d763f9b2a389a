"""Scoring is computed from the generated text alone, and generation is given only the prompt and the media."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from anymal_demo.evaluate import EvalItem, chance, generate_texts, score, summarise


def _item(task="image caption", text_truth=None, asks=None, media=None, prompt="<image>\nDescribe this image."):
    truth = text_truth or {"image": {"colour": "red", "shape": "circle", "position": "left"}}
    return EvalItem(
        "x",
        task,
        prompt,
        media or {"image": ["/x.png"]},
        truth,
        asks or {"image": ["colour", "shape", "position"]},
        "a red circle at the left.",
    )


def test_score_reads_attributes_from_the_generated_text():
    item = _item()
    assert score(item, "a red circle at the left.") == {
        "image.colour": True,
        "image.shape": True,
        "image.position": True,
    }
    assert score(item, "a red square at the left.")["image.shape"] is False
    assert score(item, "a red or blue circle at the left.")["image.colour"] is False


def test_summary_and_chance():
    items = [_item(), _item()]
    metrics = summarise(items, ["a red circle at the left.", "a blue circle at the top."])
    row = metrics["image caption"]
    assert row["attribute_accuracy"] == pytest.approx(4 / 6)
    assert row["exact_match"] == 0.5
    assert row["per_attribute"] == {"image.colour": 0.5, "image.position": 0.5, "image.shape": 1.0}
    assert row["chance_attribute_accuracy"] == pytest.approx((1 / 4 + 1 / 3 + 1 / 4) / 3)
    assert row["chance_exact_match"] == pytest.approx(1 / 48)
    two = _item(
        "image+imu answers",
        {"image": {"colour": "red"}, "imu": {"activity": "running"}},
        {"image": ["colour"], "imu": ["activity"]},
        {"image": ["/a.png"], "imu": ["/b.npy"]},
    )
    assert chance(two) == (pytest.approx(0.25), pytest.approx(1 / 16))


class RecordingModel:
    """Stands in for AnyMAL.generate and records exactly what it was given."""

    def __init__(self):
        self.calls = []

    def generate(self, prompts, **kwargs):
        self.calls.append((list(prompts), kwargs))
        return SimpleNamespace(texts=[f" reply {i}" for i in range(len(prompts))])


def test_generation_gets_only_prompts_and_media_never_the_truth():
    items = [_item(prompt=f"<image>\nq{i}", media={"image": [f"/{i}.png"]}) for i in range(3)]
    items.append(
        _item(
            "image+imu answers",
            {"image": {"colour": "red"}, "imu": {"activity": "running"}},
            {"image": ["colour"], "imu": ["activity"]},
            {"image": ["/a.png"], "imu": ["/b.npy"]},
            "<image>\n<imu>\nq",
        )
    )
    model = RecordingModel()
    texts = generate_texts(model, items, batch_size=2, progress=False)
    assert texts == ["reply 0", "reply 1", "reply 0", "reply 0"]
    passed = [
        (prompts, {k: v for k, v in kw.items() if k not in ("max_new_tokens", "do_sample")})
        for prompts, kw in model.calls
    ]
    assert passed == [
        (["<image>\nq0", "<image>\nq1"], {"image": [["/0.png"], ["/1.png"]]}),
        (["<image>\nq2"], {"image": [["/2.png"]]}),
        (["<image>\n<imu>\nq"], {"image": [["/a.png"]], "imu": [["/b.npy"]]}),
    ]
    assert all(kw["do_sample"] is False for _, kw in model.calls)
