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


def _copy_without_tokenizer(src, dst):
    import shutil

    dst.mkdir()
    for name in ("config.json", "generation_config.json", "model.safetensors"):
        shutil.copy(src / name, dst / name)
    return dst


def test_an_llm_folder_without_tokenizer_files_means_no_tokenizer(stories260k_path, tmp_path):
    folder = _copy_without_tokenizer(stories260k_path, tmp_path / "llm")
    assert load_tokenizer(LLMConfig(name_or_path=str(folder))) is None


def test_a_corrupt_tokenizer_is_a_config_error_naming_the_folder_and_the_cause(stories260k_path, tmp_path):
    import shutil

    folder = _copy_without_tokenizer(stories260k_path, tmp_path / "llm")
    shutil.copy(stories260k_path / "tokenizer_config.json", folder)
    (folder / "tokenizer.model").write_bytes(b"this is not a sentencepiece model")
    with pytest.raises(ConfigError, match=r"llm\.name_or_path=.*llm.*do not load") as info:
        load_tokenizer(LLMConfig(name_or_path=str(folder)))
    assert info.value.__cause__ is not None  # the tokenizer library's own error is kept for the traceback


def test_a_tokenizer_that_needs_a_missing_package_is_a_config_error_not_none(stories260k_path, monkeypatch):
    # what a plain install without protobuf did: transformers fell back to tiktoken and raised ValueError, which
    # used to read as "no tokenizer" and made training skip every row
    from transformers import AutoTokenizer

    def fail(*args, **kwargs):
        raise ValueError("tiktoken is required to read a `tokenizer.model` file")

    monkeypatch.setattr(AutoTokenizer, "from_pretrained", fail)
    with pytest.raises(ConfigError, match=r"stories260K.*tiktoken is required.*sentencepiece"):
        load_tokenizer(LLMConfig(name_or_path=str(stories260k_path)))


def test_the_llama_tokenizer_dependencies_are_declared():
    # sentencepiece and protobuf convert a tokenizer.model-only LLaMA tokenizer; without them it cannot load
    from importlib.metadata import requires

    declared = " ".join(requires("anymal") or [])
    assert "transformers[sentencepiece]" in declared.replace(" ", "")
    import google.protobuf  # noqa: F401
    import sentencepiece  # noqa: F401


def test_inference_leaves_the_frozen_4bit_weights_bit_identical(stories260k_path):
    # bitsandbytes repacks 4-bit weights in place for its AVX512-BF16 CPU kernel (absmax rounded to bfloat16; a
    # crash for widths not divisible by 32): anymal keeps the checkpoint's layout on every CPU
    from anymal.fingerprint import base_weights_hash as llm_hash

    llm = load_llm(LLMConfig(name_or_path=str(stories260k_path), quantization=QuantizationConfig(mode="4bit")))
    layers = [m for m in llm.modules() if type(m).__name__ == "Linear4bit"]
    assert layers and not any(getattr(m, "support_avx512bf16_for_cpu", False) for m in layers)
    before = llm_hash(llm)
    with torch.no_grad():
        llm(torch.tensor([[1, 400, 500]]))
    llm.generate(torch.tensor([[1]]), max_new_tokens=4, do_sample=False)
    assert llm_hash(llm) == before
