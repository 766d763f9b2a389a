"""The model around the frozen LLM: trainable-parameter policy, generation (greedy, batched, sampled, streamed),
the training forward and input errors. Its modality is the dependency-free ``toy`` plugin of ``anymal.testing``, so
these tests exercise the core alone; the real plugins run end to end in test_multimodal.py and tests/plugins/."""

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, TextIteratorStreamer

from anymal import AnyMAL, InputError
from anymal.processing import IGNORE_INDEX, Turn
from anymal.testing import tiny_anymal


@pytest.fixture(scope="module")
def model():
    return tiny_anymal(("toy",))


@pytest.fixture(scope="module")
def signals(model):
    return model.plugins["toy"].example_inputs()


def test_only_the_projector_is_trainable(model):
    summary = model.trainable_summary()
    assert summary["llm"]["trainable"] == 0 and summary["llm"]["frozen"] > 0
    assert summary["encoder"]["trainable"] == 0 and summary["encoder"]["frozen"] > 0
    assert summary["projector"]["frozen"] == 0 and summary["projector"]["trainable"] > 0
    model.train()
    assert not model.encoders.training and model.projectors.training
    model.eval()


def test_stories260k_golden_greedy_ids_through_the_wrapper(stories260k_path):
    golden = json.loads((stories260k_path.parent / "stories260K_expected_greedy.json").read_text())
    model = tiny_anymal((), llm=stories260k_path)
    out = model.generate(input_ids=torch.tensor([[golden["start_token"]]]), max_new_tokens=200, do_sample=False)
    assert out.sequences[0].tolist() == golden["greedy_ids_200"]


def test_text_only_prompt_generation_equals_the_bare_llm(model):
    bare = AutoModelForCausalLM.from_pretrained(model.config.llm.name_or_path)
    tok = AutoTokenizer.from_pretrained(model.config.llm.name_or_path)
    prompts = ["a photo of a cat", "the dog barks in"]
    out = model.generate(prompts, max_new_tokens=8, do_sample=False)
    for prompt, row in zip(prompts, out.sequences):
        ids = tok(prompt, return_tensors="pt").input_ids
        want = bare.generate(ids, max_new_tokens=8, do_sample=False, pad_token_id=tok.pad_token_id)[0, ids.shape[1] :]
        assert row[-len(want) :].tolist() == want.tolist()


def test_greedy_batched_output_equals_per_row_output(model, signals):
    prompts = ["describe <toy>", "no signal here, just words", "compare <toy> with <toy>"]
    per_row = [signals[0], None, signals]
    batch = model.generate(prompts, toy=per_row, max_new_tokens=8, do_sample=False)
    for i, (prompt, signal) in enumerate(zip(prompts, per_row)):
        single = model.generate(prompt, toy=signal, max_new_tokens=8, do_sample=False)
        assert single.sequences[0].tolist() == batch.sequences[i, -single.sequences.shape[1] :].tolist()
    assert len(batch.texts) == 3


def test_the_signal_changes_the_output_and_placeholder_position_matters(model, signals):
    with torch.no_grad():
        for p in model.projectors.parameters():
            p.add_(torch.randn_like(p))
    a = model.generate("what is this", toy=signals[0], max_new_tokens=6).sequences
    b = model.generate("what is this", toy=signals[1], max_new_tokens=6).sequences
    c = model.generate("what is this", max_new_tokens=6).sequences
    assert not torch.equal(a, b) or not torch.equal(a, c)
    explicit = model.generate("<toy>\nwhat is this", toy=signals[0], max_new_tokens=6).sequences
    assert torch.equal(a, explicit)  # no placeholder = modality tokens first, on their own line


def test_input_ids_instead_of_prompt_puts_modality_tokens_after_bos(model, signals):
    tok = model.tokenizer
    via_prompt = model.generate("<toy>hello", toy=signals[0], max_new_tokens=5).sequences
    via_ids = model.generate(input_ids=tok("hello", return_tensors="pt").input_ids, toy=signals[0], max_new_tokens=5)
    assert torch.equal(via_ids.sequences, via_prompt)


def test_sampling_and_streaming(model, signals):
    torch.manual_seed(0)
    a = model.generate("a", toy=signals[0], do_sample=True, temperature=0.9, top_p=0.9, max_new_tokens=6)
    torch.manual_seed(0)
    b = model.generate("a", toy=signals[0], do_sample=True, temperature=0.9, top_p=0.9, max_new_tokens=6)
    assert torch.equal(a.sequences, b.sequences)
    streamer = TextIteratorStreamer(model.tokenizer, skip_special_tokens=True)
    out = model.generate("a", toy=signals[0], max_new_tokens=6, streamer=streamer)
    assert "".join(streamer).strip() == out.text.strip()


def test_forward_loss_is_on_target_tokens_only(model, signals):
    enc = model.prompt_encoder
    ids, labels = enc.encode_conversation(
        [Turn("user", "<toy> describe"), Turn("assistant", "a cat")], {"toy": 1}, chat=False
    )
    batch = model.preprocess("toy", signals[:1])
    out = model(input_ids=[ids], labels=[labels], modality_inputs={"toy": batch})
    fused = model.fuse([ids], {"toy": batch}, labels=[labels])
    n_targets = int((fused.labels != IGNORE_INDEX).sum())
    assert n_targets == sum(lab != IGNORE_INDEX for lab in labels)
    assert fused.labels.shape[1] == len(ids) - 1 + model.plugins["toy"].num_tokens
    logits = out.logits[0, :-1]
    manual = torch.nn.functional.cross_entropy(logits, fused.labels[0, 1:], ignore_index=IGNORE_INDEX)
    assert torch.allclose(out.loss, manual, atol=1e-6)
    out.loss.backward()
    assert all(p.grad is not None for p in model.projectors.parameters())
    assert all(p.grad is None for p in model.llm.parameters())
    model.zero_grad()


def test_bad_generate_inputs_raise_input_errors(model, signals, tmp_path):
    with pytest.raises(InputError, match="1 <toy> placeholder"):
        model.generate("<toy>", toy=signals, max_new_tokens=2)
    with pytest.raises(InputError, match="list of 2 entries"):
        model.generate(["a", "b"], toy=signals[0], max_new_tokens=2)
    with pytest.raises(InputError, match="no 'audio' modality"):
        model.generate("a", audio="x.wav", max_new_tokens=2)
    bad = tmp_path / "notes.txt"
    bad.write_text("not a list of numbers")
    with pytest.raises(InputError, match=r"notes\.txt"):
        model.generate("a", toy=str(bad), max_new_tokens=2)
    with pytest.raises(InputError, match="expected a path, bytes"):
        model.generate("a", toy=3.5, max_new_tokens=2)
    with pytest.raises(InputError, match="longer than the LLM context of 512"):
        model.generate("word " * 600, max_new_tokens=2)
    with pytest.raises(InputError, match="exactly one of prompt"):
        model.generate(max_new_tokens=2)


def test_model_is_an_nn_module_users_can_move_and_inspect(model):
    assert isinstance(model, torch.nn.Module)
    assert isinstance(model, AnyMAL)
    assert model.device.type == "cpu"
