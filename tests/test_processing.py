import pytest

from anymal import InputError
from anymal.processing import IGNORE_INDEX, PromptEncoder, Turn, sentinel_id, sentinel_index
from anymal.testing import train_tiny_tokenizer


@pytest.fixture(scope="module")
def encoder():
    return PromptEncoder(train_tiny_tokenizer(), ["image", "audio"])


def test_sentinels_round_trip():
    assert [sentinel_index(sentinel_id(k)) for k in range(3)] == [0, 1, 2]
    assert sentinel_index(5) == -1


def test_placeholders_become_one_sentinel_each_in_text_order(encoder):
    ids = encoder.encode_prompt("a <audio> then <image> and <image>", {"image": 2, "audio": 1}, chat=False)
    assert ids[0] == encoder.tokenizer.bos_token_id
    assert [i for i in ids if i < 0] == [sentinel_id(1), sentinel_id(0), sentinel_id(0)]


def test_without_placeholders_modality_tokens_go_first_in_model_order(encoder):
    ids = encoder.encode_prompt("describe", {"audio": 1, "image": 1}, chat=False)
    assert ids == encoder.encode_prompt("<image>\n<audio>\ndescribe", {"audio": 1, "image": 1}, chat=False)
    assert [i for i in ids if i < 0] == [sentinel_id(0), sentinel_id(1)]
    assert ids[1] == sentinel_id(0)


@pytest.mark.parametrize(
    "prompt, counts", [("<image>", {"image": 2}), ("<image><image>", {"image": 1}), ("<image>", {})]
)
def test_placeholder_input_count_mismatch_names_both_counts(encoder, prompt, counts):
    with pytest.raises(InputError) as info:
        encoder.encode_prompt(prompt, counts, chat=False)
    assert "<image> placeholder" in str(info.value) and "input(s)" in str(info.value)


def test_plain_conversation_labels_cover_answers_and_eos_only(encoder):
    tok = encoder.tokenizer
    turns = [
        Turn("user", "<image> describe"),
        Turn("assistant", "a cat"),
        Turn("user", "more"),
        Turn("assistant", "a dog"),
    ]
    ids, labels = encoder.encode_conversation(turns, {"image": 1}, chat=False)
    targets = [i for i, lab in zip(ids, labels) if lab != IGNORE_INDEX]
    expected = [*tok(" a cat", add_special_tokens=False).input_ids, tok.eos_token_id]
    expected += [*tok(" a dog", add_special_tokens=False).input_ids, tok.eos_token_id]
    assert tok.decode(targets) == tok.decode(expected)
    assert labels[ids.index(sentinel_id(0))] == IGNORE_INDEX


def test_chat_conversation_targets_are_the_assistant_spans(llama2_tokenizer_path):
    from anymal.config import LLMConfig
    from anymal.llm import load_tokenizer

    tok = load_tokenizer(LLMConfig(name_or_path="x", tokenizer=str(llama2_tokenizer_path)))
    enc = PromptEncoder(tok, ["image"])
    turns = [
        Turn("user", "What is it?"),
        Turn("assistant", "A cat."),
        Turn("user", "Color?"),
        Turn("assistant", "Grey."),
    ]
    ids, labels = enc.encode_conversation(turns, {"image": 1}, chat=True)
    assert ids.count(sentinel_id(0)) == 1
    target_text = tok.decode([i for i, lab in zip(ids, labels) if lab != IGNORE_INDEX])
    assert target_text.replace(" ", "") == "A cat.</s>Grey.</s>".replace(" ", "")
    prompt_ids = enc.encode_prompt("What is it?", {"image": 1}, chat=True)
    assert ids[: len(prompt_ids)] == prompt_ids  # inference prompt = training prefix


def test_conversation_without_answer_is_rejected(encoder):
    with pytest.raises(InputError, match="at least one user and one assistant"):
        encoder.encode_conversation([Turn("user", "hi")], {}, chat=False)
