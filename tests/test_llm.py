import pytest
import torch
from transformers import AutoModelForCausalLM

from anymal import ConfigError, LLMConfig, QuantizationConfig
from anymal.llm import LLAMA2_CHAT_TEMPLATE, load_llm, load_tokenizer


@pytest.mark.parametrize(
    "quant, layer_type",
    [
        (QuantizationConfig(mode="4bit", quant_type="nf4", double_quant=True), "Linear4bit"),
        (QuantizationConfig(mode="4bit", quant_type="fp4", double_quant=False), "Linear4bit"),
        (QuantizationConfig(mode="8bit"), "Linear8bitLt"),
    ],
)
def test_quantised_llm_loads_frozen_on_cpu_and_keeps_the_pretrained_greedy_output(stories260k_path, quant, layer_type):
    llm = load_llm(LLMConfig(name_or_path=str(stories260k_path), quantization=quant))
    assert type(llm.model.layers[0].self_attn.q_proj).__name__ == layer_type
    assert not any(p.requires_grad for p in llm.parameters())
    if quant.mode == "4bit":
        assert llm.model.layers[0].self_attn.q_proj.weight.quant_state.quant_type == quant.quant_type
    reference = AutoModelForCausalLM.from_pretrained(str(stories260k_path))
    ids = torch.tensor([[1]])
    got = llm.generate(ids, max_new_tokens=12, do_sample=False)
    want = reference.generate(ids, max_new_tokens=12, do_sample=False)
    # quantisation perturbs logits slightly; the first greedy tokens of the real model survive it
    assert got[0, :6].tolist() == want[0, :6].tolist()


def test_llm_dtype_and_freezing(stories260k_path):
    llm = load_llm(LLMConfig(name_or_path=str(stories260k_path), dtype="bfloat16"))
    assert llm.get_input_embeddings().weight.dtype == torch.bfloat16
    assert not llm.training


def test_missing_llm_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="name_or_path is empty"):
        load_llm(LLMConfig())
    with pytest.raises(ConfigError, match=str(tmp_path / "nope")):
        load_llm(LLMConfig(name_or_path=str(tmp_path / "nope")))


def test_llama2_tokenizer_gets_the_llama2_chat_template_and_a_pad_token(llama2_tokenizer_path):
    tok = load_tokenizer(LLMConfig(name_or_path="unused", tokenizer=str(llama2_tokenizer_path)))
    assert tok("Hello world").input_ids == [1, 15043, 3186]
    assert tok.chat_template == LLAMA2_CHAT_TEMPLATE
    assert tok.pad_token_id == 0 and tok.padding_side == "left"
    text = tok.apply_chat_template(
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"},
            {"role": "user", "content": "Bye"},
        ],
        tokenize=False,
    )
    assert text == "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello </s><s>[INST] Bye [/INST]"


def test_tokenizer_own_template_wins_and_config_override_wins_over_it(llama2_tokenizer_path, tmp_path):
    tok = load_tokenizer(LLMConfig(name_or_path="x", tokenizer=str(llama2_tokenizer_path), chat_template="{{ 'T' }}"))
    assert tok.apply_chat_template([{"role": "user", "content": "a"}], tokenize=False) == "T"
    tok.chat_template = "{{ 'OWN' }}"
    tok.save_pretrained(tmp_path)
    again = load_tokenizer(LLMConfig(name_or_path="x", tokenizer=str(tmp_path)))
    assert again.chat_template == "{{ 'OWN' }}"
