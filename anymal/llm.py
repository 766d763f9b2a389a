"""Loading the frozen core LLM and its tokenizer (with a chat template and a pad token).

Any HF ``AutoModelForCausalLM`` works, by hub id or local folder; bitsandbytes quantises it to 8 or 4 bits
(nf4/fp4, double quantisation, compute dtype) at load time. All LLM weights are frozen here, once.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig, PreTrainedModel

from anymal.config import LLMConfig, QuantizationConfig
from anymal.errors import ConfigError

# The LLaMA-2 chat format ([INST] ... [/INST], optional <<SYS>> block), used when a tokenizer ships no template.
LLAMA2_CHAT_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}"
    "{% set system_message = messages[0]['content'] %}{% set loop_messages = messages[1:] %}"
    "{% else %}{% set system_message = none %}{% set loop_messages = messages %}{% endif %}"
    "{% for message in loop_messages %}"
    "{% if message['role'] == 'user' %}"
    "{{ bos_token }}[INST] "
    "{% if loop.first and system_message is not none %}<<SYS>>\n{{ system_message }}\n<</SYS>>\n\n{% endif %}"
    "{{ message['content'] | trim }} [/INST]"
    "{% elif message['role'] == 'assistant' %}"
    " {{ message['content'] | trim }} {{ eos_token }}"
    "{% endif %}"
    "{% endfor %}"
)


def torch_dtype(name: str) -> torch.dtype | str:
    """Maps a config dtype name to a torch dtype ('auto' passes through to transformers)."""
    if name == "auto":
        return "auto"
    try:
        return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]
    except KeyError:
        raise ConfigError(f"dtype={name!r}: expected float32, bfloat16, float16 or auto") from None


def bitsandbytes_config(quant: QuantizationConfig) -> BitsAndBytesConfig | None:
    """The transformers quantisation config for ``quant`` (``None`` when the LLM is not quantised)."""
    if quant.mode == "none":
        return None
    if quant.mode == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=quant.quant_type,
        bnb_4bit_use_double_quant=quant.double_quant,
        bnb_4bit_compute_dtype=torch_dtype(quant.compute_dtype),
    )


def freeze(module: nn.Module) -> nn.Module:
    """Turns off gradients for every parameter and puts the module in eval mode."""
    for param in module.parameters():
        param.requires_grad_(False)
    return module.eval()


def load_llm(config: LLMConfig, device_map: str | dict | None = None) -> PreTrainedModel:
    """Loads the causal LM named by ``config`` (quantised if asked) with all weights frozen."""
    if not config.name_or_path:
        raise ConfigError("llm.name_or_path is empty: give a hub id or a local folder of a causal LM")
    quant = bitsandbytes_config(config.quantization)
    kwargs: dict = {"dtype": torch_dtype(config.dtype), "revision": config.revision}
    if quant is not None:
        kwargs["quantization_config"] = quant
        kwargs["device_map"] = device_map or ("cuda:0" if torch.cuda.is_available() else "cpu")
    elif device_map is not None:
        kwargs["device_map"] = device_map
    try:
        model = AutoModelForCausalLM.from_pretrained(config.name_or_path, **kwargs)
    except OSError as exc:
        raise ConfigError(f"llm.name_or_path={config.name_or_path!r}: cannot load a causal LM ({exc})") from None
    return freeze(model)


def load_tokenizer(config: LLMConfig, source: str | None = None):
    """The LLM's tokenizer with a chat template, a pad token and left padding (for batched generation).

    ``source`` overrides where it is read from (a checkpoint folder stores its own copy). Returns ``None`` when the
    LLM folder has no tokenizer and none was named, so id-only use (``input_ids=``) still works.
    """
    path = source or config.tokenizer or config.name_or_path
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, revision=None if source else config.revision)
    except (OSError, ValueError, TypeError) as exc:
        if source is None and config.tokenizer is None:
            return None
        raise ConfigError(f"llm.tokenizer={path!r}: cannot load a tokenizer ({exc})") from None
    if config.chat_template:
        tokenizer.chat_template = config.chat_template
    elif not tokenizer.chat_template:
        tokenizer.chat_template = LLAMA2_CHAT_TEMPLATE
    if tokenizer.pad_token is None:
        # LLaMA-2 has no pad token; reusing unk (or eos) keeps the vocabulary and embedding matrix unchanged.
        tokenizer.pad_token = tokenizer.unk_token or tokenizer.eos_token
    tokenizer.padding_side = "left"
    return tokenizer


def llm_hidden_size(llm: PreTrainedModel) -> int:
    """Width of the LLM's input embeddings: the size every projector must output."""
    return llm.get_input_embeddings().embedding_dim


def llm_context_length(llm: PreTrainedModel) -> int | None:
    """The LLM's maximum number of positions, when its config states one."""
    return getattr(llm.config, "max_position_embeddings", None)
