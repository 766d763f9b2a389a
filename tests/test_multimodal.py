"""Several modalities in one prompt and in one batch: placeholders fix the order, rows may lack modalities."""

import pytest
import torch

from anymal.processing import Turn
from anymal.testing import tiny_anymal
from anymal.train.dataset import Collator


@pytest.fixture(scope="module")
def model():
    return tiny_anymal(("image", "audio", "imu"))


@pytest.fixture(scope="module")
def inputs(model):
    return {name: plugin.example_inputs() for name, plugin in model.plugins.items()}


def test_mixed_rows_batched_greedy_equals_per_row(model, inputs):
    with torch.no_grad():
        for p in model.projectors.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    rows = [
        ("<imu> then <image>: what happened?", {"image": inputs["image"][0], "imu": inputs["imu"][0]}),
        ("listen: <audio>", {"audio": inputs["audio"][1]}),
        ("no media at all", {}),
        ("all three", {"image": inputs["image"][1], "audio": inputs["audio"][0], "imu": inputs["imu"][1]}),
    ]
    batch = model.generate(
        [prompt for prompt, _ in rows],
        **{name: [media.get(name) for _, media in rows] for name in model.plugins},
        max_new_tokens=6,
    )
    for i, (prompt, media) in enumerate(rows):
        single = model.generate(prompt, **media, max_new_tokens=6)
        assert single.sequences[0].tolist() == batch.sequences[i, -single.sequences.shape[1] :].tolist(), prompt


def test_placeholders_fix_the_order_of_modality_tokens(model, inputs):
    ids_a = model.prompt_encoder.encode_prompt("<imu> <image>", {"image": 1, "imu": 1}, chat=False)
    ids_b = model.prompt_encoder.encode_prompt("<image> <imu>", {"image": 1, "imu": 1}, chat=False)
    assert [i for i in ids_a if i < 0] == list(reversed([i for i in ids_b if i < 0]))
    media = {"image": inputs["image"][0], "imu": inputs["imu"][0]}
    a = model.fuse([ids_a], {n: model.preprocess(n, [v]) for n, v in media.items()}).inputs_embeds
    b = model.fuse([ids_b], {n: model.preprocess(n, [v]) for n, v in media.items()}).inputs_embeds
    assert not torch.allclose(a, b)


def test_training_batches_with_ragged_modalities(model, inputs):
    enc = model.prompt_encoder
    examples = [
        ([Turn("user", "<image> <imu> describe"), Turn("assistant", "a cat, walking")], {"image": 1, "imu": 1}),
        ([Turn("user", "<audio> what is it"), Turn("assistant", "a dog")], {"audio": 1}),
        ([Turn("user", "hello"), Turn("assistant", "hi")], {}),
    ]
    items = []
    for (turns, counts), media_index in zip(examples, range(3)):
        ids, labels = enc.encode_conversation(turns, counts, chat=False)
        media = {name: [model.plugins[name].preprocess(inputs[name][media_index % 2])] for name in counts}
        items.append({"input_ids": ids, "labels": labels, "media": media})
    batch = Collator(model)([*items, None])  # a skipped (bad) item is dropped by the collator
    assert batch["n_items"] == 3 and set(batch["modality_inputs"]) == {"image", "audio", "imu"}
    out = model(input_ids=batch["input_ids"], labels=batch["labels"], modality_inputs=batch["modality_inputs"])
    out.loss.backward()
    assert all(p.grad is not None for p in model.projectors.parameters())
    per_row = []
    for item in items:
        single = Collator(model)([item])
        per_row.append(
            model(
                input_ids=single["input_ids"], labels=single["labels"], modality_inputs=single["modality_inputs"]
            ).logits
        )
    model.zero_grad()
    fused = model.fuse(batch["input_ids"], batch["modality_inputs"], labels=batch["labels"])
    for r, logits in enumerate(per_row):
        n = logits.shape[1]
        assert torch.allclose(out.logits[r, :n], logits[0], atol=1e-4)
        assert int(fused.attention_mask[r].sum()) == n
