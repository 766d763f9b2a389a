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


def test_on_a_tied_llm_the_trigger_gets_its_own_output_row_so_what_follows_it_is_learnable(one_thread):
    """stories260K ties its embeddings. Trained on ``... [LOC]</s>``, a shared row grows to predict ``[LOC]`` and then,
    as the next input, swamps the state that must predict the end of the answer (EOS NLL stayed near 18 after 100
    steps); separate rows learn both."""
    from anymal.testing import require_asset

    model = tiny_anymal(("image",), llm=require_asset("models/stories260K_hf"), outputs=("loc",))
    assert model.llm.config.tie_word_embeddings
    rows = model.rows_of("loc")
    assert rows.head is not rows.embed

    tok, trigger = model.tokenizer, model.trigger_ids["loc"][0]
    ids, labels = [], []
    for word in ("cat", "dog", "red ball", "tree", "big house", "girl", "sun", "blue car"):
        prompt = tok(f"Where is the {word}?").input_ids
        ids.append([*prompt, trigger, tok.eos_token_id])
        labels.append([-100] * len(prompt) + [trigger, tok.eos_token_id])
    optimizer = torch.optim.AdamW(rows.parameters(), lr=3e-3, weight_decay=0.0)

    def nll_of(token: int) -> torch.Tensor:
        out = model(input_ids=ids, labels=labels, return_labels=True)
        logp = out.logits.float().log_softmax(-1)
        nll = -logp.gather(-1, out.labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        return nll[out.labels == token].mean(), nll[out.labels != -100].mean()

    eos_before = nll_of(tok.eos_token_id)[0].item()
    for _ in range(100):
        optimizer.zero_grad()
        nll_of(tok.eos_token_id)[1].backward()
        optimizer.step()
    with torch.no_grad():
        eos_after, trigger_after = nll_of(tok.eos_token_id)[0].item(), nll_of(trigger)[0].item()
    assert trigger_after < 1.0
    assert eos_after < eos_before - 10.0, (eos_before, eos_after)
