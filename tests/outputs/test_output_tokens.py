"""Trigger tokens on a frozen (and a 4-bit) LLM: new trainable rows only, the base matrices untouched."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from anymal.fingerprint import fingerprint_module
from anymal.records import Turn
from anymal.special_tokens import base_modules
from anymal.testing import tiny_anymal


def _labelled_batch(model):
    """One training row ``<image> where? -> [LOC]`` with its box label, as the training loop batches it."""
    from anymal.output_plugin import RowInputs

    photo = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    turns = [Turn("user", "<image> where is it?"), Turn("assistant", "Location: [LOC].")]
    ids, labels = model.prompt_encoder.encode_conversation(turns, {"image": 1}, chat=False)
    plugin = model.output_plugins["loc"]
    prepared = plugin.prepare(RowInputs({"image": [photo]}, model.plugins, "row"), [[4.0, 6.0, 30.0, 40.0]])
    return {
        "input_ids": [ids],
        "labels": [labels],
        "modality_inputs": {"image": model.preprocess("image", [photo])},
        "output_batches": {"loc": plugin.collate([prepared])},
    }


def _base_prints(model):
    embed, head = base_modules(model.llm)
    return fingerprint_module(embed), fingerprint_module(head)


@pytest.mark.parametrize("quantization", ["none", "4bit"])
def test_training_moves_only_the_new_rows_and_never_the_base_embedding(quantization, one_thread):
    model = tiny_anymal(("image",), quantization=quantization)
    before = _base_prints(model)
    vocab = base_modules(model.llm)[0].weight.shape[0]
    model.add_output("loc", {"projection_dim": 16, "decoder_dims": [8]})
    assert _base_prints(model) == before
    assert model.trigger_ids == {"loc": [vocab]}
    assert model.tokenizer("Location: [LOC].", add_special_tokens=False).input_ids.count(vocab) == 1

    model.set_trainable(lora=False)
    trainable = {name.split(".", 1)[0] for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"projectors", "heads", "token_rows"}
    rows_before = model.rows_of("loc").embed.detach().clone()
    optimizer = torch.optim.AdamW([p for group in model.param_groups(1e-2) for p in group["params"]], lr=1e-2)
    out = model(**_labelled_batch(model))
    assert set(out.output_losses) == {"loc/l1", "loc/giou"}
    out.loss.backward()
    assert all(p.grad is None for p in model.llm.parameters())
    optimizer.step()

    assert _base_prints(model) == before
    assert not torch.equal(model.rows_of("loc").embed, rows_before)


def test_the_base_vocabulary_logits_are_unchanged_bit_for_bit():
    model = tiny_anymal(("image",))
    ids = torch.tensor([[1, 40, 41, 42, 43]])
    plain = model.llm(input_ids=ids).logits
    model.add_output("loc", {"projection_dim": 16, "decoder_dims": [8]})
    extended = model.llm(input_ids=ids).logits
    assert extended.shape[-1] == plain.shape[-1] + 1
    assert torch.equal(extended[..., : plain.shape[-1]], plain)
    assert model.llm.config.vocab_size == plain.shape[-1] + 1


def test_output_and_modality_names_and_tokens_do_not_collide():
    from anymal.errors import ConfigError

    model = tiny_anymal(("image",))
    with pytest.raises(ConfigError, match="already has a plugin named 'image'"):
        model.add_output("image", {"plugin_type": "loc"})
    model.add_output("loc", {})
    with pytest.raises(ConfigError, match="already the trigger of 'loc'"):
        model.add_output("loc2", {"plugin_type": "loc"})


def test_tiny_anymal_builds_output_plugins_from_their_tiny_configs():
    model = tiny_anymal(("image",), outputs=("loc",))
    assert list(model.output_plugins) == ["loc"] and model.config.outputs["loc"].projection_dim == 16
    assert model.trigger_ids["loc"] == [base_modules(model.llm)[0].weight.shape[0]]
