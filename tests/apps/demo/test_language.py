"""The stand-in LM: documents laid out as training conversations, a tokenizer and LM that train and reload 4-bit."""

from __future__ import annotations

import random

import pytest
import torch

from anymal.processing import IGNORE_INDEX, PromptEncoder, Turn, sentinel_id
from anymal_demo.language import (
    Document,
    DocumentSampler,
    LanguageModelConfig,
    encode_document,
    pretrain_language_model,
    scene_words,
    train_tokenizer,
)
from anymal_demo.world.vocabulary import SPECS


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(DocumentSampler(0), vocab_size=1000)


def test_world_words_are_single_tokens(tokenizer):
    for spec in SPECS.values():
        for attribute in spec.attributes:
            for value in attribute.values:
                assert len(tokenizer(f" {value}", add_special_tokens=False).input_ids) == 1, value


def test_document_layout_matches_a_training_conversation(tokenizer):
    encoder = PromptEncoder(tokenizer, list(SPECS))
    doc = Document("<image>\nDescribe this image briefly.", "a red circle at the left.", {"image": ["red circle left"]})
    ids, labels = encode_document(encoder, doc)
    conv, _ = encoder.encode_conversation(
        [Turn("user", doc.user), Turn("assistant", doc.answer)], {"image": 1}, chat=False
    )
    slot = conv.index(sentinel_id(list(SPECS).index("image")))
    words = tokenizer("red circle left", add_special_tokens=False).input_ids
    assert ids == conv[:slot] + words + conv[slot + 1 :]  # the media words sit exactly where the tokens will
    assert labels[0] == IGNORE_INDEX and labels[1:] == ids[1:]
    assert ids[0] == tokenizer.bos_token_id and ids[-1] == tokenizer.eos_token_id


def test_sampler_is_reproducible_and_covers_every_modality():
    a, b = DocumentSampler(3), DocumentSampler(3)
    docs = [a() for _ in range(200)]
    assert docs == [b() for _ in range(200)]
    assert {name for d in docs for name in d.scenes} == set(SPECS)
    assert any(len(d.scenes) == 2 for d in docs)  # two-modality questions
    assert len(DocumentSampler(0)(mixed=True).scenes) == 2
    assert all(len(DocumentSampler(0)(mixed=False).scenes) == 1 for _ in range(20))


def test_scene_words_are_attribute_values():
    truth = {"colour": "red", "shape": "circle", "position": "left"}
    assert scene_words(SPECS["image"], truth) == "red circle left"
    shuffled = scene_words(SPECS["image"], truth, random.Random(0)).split()
    assert set(truth.values()) <= set(shuffled)


def test_pretraining_learns_and_saves_a_folder_that_loads_4bit(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from anymal.config import LLMConfig, QuantizationConfig
    from anymal.llm import load_llm

    config = LanguageModelConfig(
        hidden_size=64, layers=1, heads=2, kv_heads=1, intermediate_size=128, steps=40, batch_size=16, lr=1e-2
    )
    stats = pretrain_language_model(config, tmp_path / "lm", progress=False)
    assert stats["loss_last"] < 0.6 * stats["loss_first"]
    assert len(stats["losses"]) == 40
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "lm")
    assert model.config.model_type == "llama" and model.config.hidden_size == 64
    assert AutoTokenizer.from_pretrained(tmp_path / "lm").bos_token == "<s>"
    quantised = load_llm(LLMConfig(name_or_path=str(tmp_path / "lm"), quantization=QuantizationConfig(mode="4bit")))
    assert getattr(quantised, "is_quantized", False)
    assert all(not p.requires_grad for p in quantised.parameters())
    ids = torch.tensor([[1, 5, 6]])
    with torch.no_grad():
        close = torch.nn.functional.cosine_similarity(
            model(ids).logits.flatten(), quantised(ids).logits.flatten(), dim=0
        )
    assert close > 0.95  # the 4-bit LM is the same model, up to quantisation error


def test_background_training_returns_the_childs_statistics(tmp_path):
    from anymal_demo.background import BackgroundLanguageModel

    config = LanguageModelConfig(
        hidden_size=64, layers=1, heads=2, kv_heads=1, intermediate_size=64, steps=3, batch_size=4
    )
    stats = BackgroundLanguageModel(config, tmp_path / "lm").result(progress=False)
    assert len(stats["losses"]) == 3 and (tmp_path / "lm" / "config.json").is_file()
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(RuntimeError, match="training the stand-in language model failed"):
        BackgroundLanguageModel(config, tmp_path / "file" / "lm").result(progress=False)


def test_language_model_config_is_validated():
    from anymal.errors import ConfigError

    with pytest.raises(ConfigError, match="hidden_size=100"):
        LanguageModelConfig(hidden_size=100, heads=3)
    with pytest.raises(ConfigError, match="steps=0"):
        LanguageModelConfig(steps=0)
