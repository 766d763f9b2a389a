"""Bad prompts and token ids: each is an InputError naming the placeholder, keyword, position or id.

The placeholder rule (``anymal.processing``): ``<name>`` is an error when ``name`` is an installed modality plugin
(an ``anymal.plugins`` entry point, or one registered in this process) that the model lacks; any other tag is text.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from anymal import InputError
from anymal.fusion import splice
from anymal.processing import PromptEncoder, Turn, sentinel_id
from anymal.testing import tiny_anymal
from bad_inputs.conftest import expect_error

GEN = {"max_new_tokens": 1}


@pytest.fixture(scope="module")
def toy_model():
    torch.manual_seed(0)
    return tiny_anymal(("toy",))


@pytest.fixture(scope="module")
def vocab(toy_model) -> int:
    return toy_model.llm.get_input_embeddings().weight.shape[0]


# --- placeholders of modalities the model lacks ------------------------------------------------------------------
@pytest.mark.parametrize("name", ["audio", "image", "imu", "video"])
def test_placeholder_of_an_installed_plugin_the_model_lacks(toy_model, name):
    expect_error(
        lambda: toy_model.generate(f"Describe <{name}> please", **GEN),
        InputError,
        f"<{name}>",
        "position 9",
        r"modalities: toy",
    )


def test_placeholder_in_one_prompt_of_a_batch_names_that_prompt(toy_model):
    expect_error(
        lambda: toy_model.generate(["fine", "listen: <audio>"], **GEN), InputError, r"prompt\[1\]", "<audio>", "toy"
    )


def test_placeholder_of_a_plugin_registered_in_this_process(toy_model):
    """A third-party plugin registered with register_plugin counts as installed, like an entry point."""
    from anymal.registry import register_plugin, unregister_plugin
    from anymal.testing import ToyPlugin

    class SmellPlugin(ToyPlugin):
        name = "smell"

    register_plugin(SmellPlugin)
    try:
        model = tiny_anymal(("toy",))
        expect_error(lambda: model.generate("sniff <smell>", **GEN), InputError, "<smell>", "toy")
    finally:
        unregister_plugin("smell")


def test_placeholder_in_a_training_conversation_names_the_turn(toy_model):
    turns = [Turn("user", "hi"), Turn("assistant", "ok"), Turn("user", "and <audio>?"), Turn("assistant", "no")]
    expect_error(
        lambda: toy_model.prompt_encoder.encode_conversation(turns, {}, chat=False, where="train.jsonl:7"),
        InputError,
        r"train.jsonl:7 turn 2",
        "<audio>",
    )


@pytest.mark.parametrize("text", ["<b>bold</b> <ref>a dog</ref><box>(1,2),(3,4)</box>", "<toys> <Audio> < audio>"])
def test_other_tags_stay_text(toy_model, text):
    """Control: tags that are not installed modality plugin names are ordinary text."""
    assert toy_model.generate(text, **GEN).sequences.shape[1] == 1


# --- keywords ----------------------------------------------------------------------------------------------------
def test_unknown_modality_keyword(toy_model):
    expect_error(lambda: toy_model.generate("hi", depth=torch.zeros(4), **GEN), InputError, "depth=", r"\(toy\)")


def test_several_unknown_keywords_are_all_named(toy_model):
    expect_error(lambda: toy_model.generate("hi", depth=1, smell=2, **GEN), InputError, "depth=", "smell=")


def test_misspelt_generation_argument(toy_model):
    expect_error(lambda: toy_model.generate("hi", max_new_tokenz=3), InputError, "max_new_tokenz=", "Hugging Face")


def test_installed_plugin_keyword_the_model_lacks(toy_model):
    expect_error(lambda: toy_model.generate("hi", audio=np.zeros(16000), **GEN), InputError, "audio=", "toy")


def test_generation_arguments_are_still_accepted(toy_model):
    """Control: HF arguments (GenerationConfig fields, generate's own parameters, model kwargs) pass the check."""
    out = toy_model.generate(
        "hi", max_new_tokens=2, do_sample=False, use_cache=True, return_dict_in_generate=False, stopping_criteria=None
    )
    assert out.sequences.shape[1] <= 2


# --- text --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "position", "code"), [("\ud800", 0, "D800"), ("ab\udfffcd", 2, "DFFF")])
def test_lone_surrogate(toy_model, text, position, code):
    call = lambda: toy_model.generate(text, **GEN)  # noqa: E731
    expect_error(call, InputError, "surrogate", f"U\\+{code}", f"position {position}")


def test_lone_surrogate_in_a_batch_names_the_prompt(toy_model):
    expect_error(lambda: toy_model.generate(["ok", "x\ud83d"], **GEN), InputError, r"prompt\[1\]", "position 1")


def test_lone_surrogate_in_a_conversation_turn(toy_model):
    turns = [Turn("user", "hi \udc80"), Turn("assistant", "ok")]
    expect_error(
        lambda: toy_model.prompt_encoder.encode_conversation(turns, {}, chat=False), InputError, "turn 0", "position 3"
    )


# --- token ids ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [lambda v: [[1, v + 99_679]], lambda v: torch.tensor([[1, v + 99_679]])])
def test_out_of_vocabulary_id(toy_model, vocab, make):
    expect_error(
        lambda: toy_model.generate(input_ids=make(vocab), **GEN),
        InputError,
        str(vocab + 99_679),
        f"vocabulary of {vocab} ids",
        "position 1",
    )


def test_id_equal_to_the_vocab_size(toy_model, vocab):
    expect_error(lambda: toy_model.generate(input_ids=[[1, 2, vocab]], **GEN), InputError, str(vocab), "position 2")


def test_negative_id(toy_model):
    expect_error(lambda: toy_model.generate(input_ids=[[1, -5]], **GEN), InputError, "token id -5")


def test_sentinel_of_a_modality_the_model_lacks(toy_model):
    expect_error(
        lambda: toy_model.generate(input_ids=[[1, sentinel_id(3)]], **GEN), InputError, str(sentinel_id(3)), "index 3"
    )


@pytest.mark.parametrize(
    "ids",
    [
        torch.tensor([[1.0, 5.5]]),
        torch.tensor([[1.0, 5.0]], dtype=torch.float16),
        torch.tensor([[True, False]]),
        np.array([[1.0, 7.25]]),
    ],
    ids=["float32", "float16", "bool", "numpy-float"],
)
def test_non_integer_id_tensor(toy_model, ids):
    expect_error(lambda: toy_model.generate(input_ids=ids, **GEN), InputError, "integer token ids")


def test_float_in_an_id_list(toy_model):
    expect_error(
        lambda: toy_model.generate(input_ids=[[1, 5.5]], **GEN), InputError, "5.5", "position 1", "integer ids"
    )


def test_string_input_ids(toy_model):
    expect_error(lambda: toy_model.generate(input_ids="1 2 3", **GEN), InputError, "input_ids", "str")


def test_three_dimensional_input_ids(toy_model):
    ids = torch.ones(1, 2, 3, dtype=torch.long)
    expect_error(lambda: toy_model.generate(input_ids=ids, **GEN), InputError, "shape")


def test_empty_input_ids(toy_model):
    expect_error(lambda: toy_model.generate(input_ids=[], **GEN), InputError, "empty")


def test_integer_ids_still_work(toy_model):
    """Control: integer lists, int64 tensors and numpy int arrays all generate."""
    for ids in ([[1, 5, 6]], torch.tensor([1, 5, 6]), np.array([[1, 5, 6]], dtype=np.int32)):
        assert toy_model.generate(input_ids=ids, **GEN).sequences.shape == (1, 1)


def test_splice_checks_ids_for_training_too(toy_model, vocab):
    """fusion.splice (training and generation both use it) names the row and position of a bad id."""
    embed = toy_model.llm.get_input_embeddings()
    expect_error(lambda: splice([[1, 2], [3, vocab + 1]], embed, [None], ["toy"]), InputError, "row 1 position 1")


def test_prompt_encoder_without_model(toy_model):
    """The placeholder rule lives in the PromptEncoder: any encoder, whatever model built it."""
    encoder = PromptEncoder(toy_model.tokenizer, ["toy"])
    expect_error(lambda: encoder.encode_prompt("<video> and <toy>", {"toy": 1}, chat=False), InputError, "<video>")
