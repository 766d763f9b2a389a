"""Loading the frozen core LLM and its tokenizer (with a chat template and a pad token).

Any HF ``AutoModelForCausalLM`` works, by hub id or local folder; bitsandbytes quantises it to 8 or 4 bits
(nf4/fp4, double quantisation, compute dtype) at load time. All LLM weights are frozen here, once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar, cast

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


ModuleT = TypeVar("ModuleT", bound=nn.Module)


def freeze(module: ModuleT) -> ModuleT:
    """Turns off gradients for every parameter and puts the module in eval mode."""
    for param in module.parameters():
        param.requires_grad_(False)
    return module.eval()


def keep_quantized_layout(model: nn.Module) -> int:
    """Stops bitsandbytes from repacking frozen 4-bit weights in place for its CPU kernel; returns the layer count.

    On CPUs with AVX512-BF16, bitsandbytes 0.50's ``Linear4bit.forward`` (eval mode, no grad) rewrites the layer's
    packed weight and quantisation state the first time it runs: absmax is rounded to bfloat16 and double
    quantisation is undone. That (1) fails with "N must be divisible by block_n" for any layer whose output width is
    not a multiple of 32 (stories260K's MLP is 172 wide), (2) changes the frozen LLM's weights in memory, so a saved
    state dict and its hash differ after the first generation, and (3) makes results depend on the CPU model. We
    keep the layout the checkpoint was quantised to on every CPU; the generic 4-bit kernel computes the same
    product. The switch is an attribute of bitsandbytes' layer: where a release drops it there is nothing to undo.
    """
    count = 0
    for module in model.modules():
        if getattr(module, "support_avx512bf16_for_cpu", False):
            # torch types Module.__setattr__ for tensors and modules only; this is bitsandbytes' plain bool flag
            module.support_avx512bf16_for_cpu = False  # type: ignore[assignment]
            count += 1
    return count


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
    if quant is not None:
        keep_quantized_layout(model)
    return freeze(model)


# Files any HF tokenizer folder holds at least one of; a folder with none of them has no tokenizer.
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer.model",
    "tokenizer_config.json",
    "vocab.json",
    "vocab.txt",
    "spiece.model",
    "sentencepiece.bpe.model",
    "tiktoken.model",
)


def has_tokenizer_files(path: str | Path) -> bool:
    """Whether the local folder ``path`` holds tokenizer files (a hub id, not a folder, gives False)."""
    folder = Path(path)
    return folder.is_dir() and any((folder / name).is_file() for name in TOKENIZER_FILES)


def load_tokenizer(config: LLMConfig, source: str | None = None):
    """The LLM's tokenizer with a chat template, a pad token and left padding (for batched generation).

    ``source`` overrides where it is read from (a checkpoint folder stores its own copy). Returns ``None`` only
    when the LLM's own local folder has no tokenizer files and no tokenizer was named, so id-only use
    (``input_ids=``) still works. A tokenizer that exists but does not load (a corrupt file, a missing converter
    such as sentencepiece or protobuf) raises a ConfigError naming the folder and the cause: returning ``None``
    there would let training skip every row as text it cannot tokenise.
    """
    path = source or config.tokenizer or config.name_or_path
    named = source is not None or config.tokenizer is not None
    if not named and Path(path).is_dir() and not has_tokenizer_files(path):
        return None
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, revision=None if source else config.revision)
    except (OSError, ValueError, TypeError, ImportError) as exc:
        if not named and isinstance(exc, OSError) and not Path(path).is_dir():
            return None  # a hub id whose repository has no tokenizer
        field = "llm.tokenizer" if named else "llm.name_or_path"
        raise ConfigError(
            f"{field}={path!r}: the tokenizer files there do not load ({type(exc).__name__}: {exc}). "
            "A LLaMA/sentencepiece tokenizer needs the sentencepiece and protobuf packages "
            "(pip install 'transformers[sentencepiece]')."
        ) from exc
    if config.chat_template:
        tokenizer.chat_template = config.chat_template
    elif not tokenizer.chat_template:
        tokenizer.chat_template = LLAMA2_CHAT_TEMPLATE
    if tokenizer.pad_token is None:
        # LLaMA-2 has no pad token; reusing unk (or eos) keeps the vocabulary and embedding matrix unchanged.
        tokenizer.pad_token = tokenizer.unk_token or tokenizer.eos_token
    tokenizer.padding_side = "left"
    return tokenizer


def input_embeddings(llm: nn.Module) -> nn.Embedding:
    """The input-embedding layer of a transformers causal LM, PEFT-wrapped or not."""
    hf_model: Any = llm  # get_input_embeddings is transformers' (PEFT forwards it), not nn.Module's
    # transformers types it as any nn.Module; a causal LM's input embeddings are an nn.Embedding (or a subclass)
    return cast(nn.Embedding, hf_model.get_input_embeddings())


def llm_hidden_size(llm: nn.Module) -> int:
    """Width of the LLM's input embeddings: the size every projector must output."""
    return input_embeddings(llm).embedding_dim


def llm_context_length(llm: nn.Module) -> int | None:
    """The LLM's maximum number of positions, when its config states one."""
    return getattr(llm.config, "max_position_embeddings", None)
