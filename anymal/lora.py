"""LoRA / QLoRA on the frozen LLM through PEFT, saved in PEFT's own format inside anymal checkpoints.

Both functions take the LLM and return the LLM to use from then on (``model.llm = add_lora(model.llm, ...)``):
they never reach into an AnyMAL model, so the trainable policy stays with the model and the loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from torch import nn

from anymal.config import LORA_TARGETS
from anymal.errors import ConfigError
from anymal.hf_compat import peft_internal_deprecations_silenced

DEFAULT_TARGETS = LORA_TARGETS  # every linear layer of a LLaMA block (see anymal.config.LORA_TARGETS)


def has_lora(llm: nn.Module) -> bool:
    """Whether ``llm`` is already wrapped in a PEFT adapter."""
    return hasattr(llm, "peft_config")


def add_lora(
    llm: nn.Module,
    rank: int = 8,
    alpha: int = 16,
    dropout: float = 0.05,
    target_modules: Sequence[str] = DEFAULT_TARGETS,
    gradient_checkpointing: bool = False,
) -> nn.Module:
    """``llm`` wrapped in a PEFT LoRA model (QLoRA when it is quantised); only the adapters train."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if has_lora(llm):
        raise ConfigError("the LLM already has a LoRA adapter")
    if rank < 1:
        raise ConfigError(f"lora.rank={rank}: expected a positive rank")
    config = LoraConfig(
        r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(target_modules), task_type="CAUSAL_LM"
    )
    with peft_internal_deprecations_silenced():
        if getattr(llm, "is_quantized", False):
            llm = prepare_model_for_kbit_training(llm, use_gradient_checkpointing=gradient_checkpointing)
        return get_peft_model(llm, config)


def load_lora(llm: nn.Module, adapter_dir: str | Path, merge: bool = False, trainable: bool = False) -> nn.Module:
    """``llm`` with the PEFT adapter saved at ``adapter_dir``, merged into the weights or not."""
    from peft import PeftModel

    with peft_internal_deprecations_silenced():
        wrapped = PeftModel.from_pretrained(llm, str(adapter_dir), is_trainable=trainable)
    if not merge:
        return wrapped
    if getattr(wrapped, "is_quantized", False) or getattr(wrapped.base_model, "is_quantized", False):
        raise ConfigError("merge_lora=True needs an unquantised LLM: load with quantization='none'")
    return wrapped.merge_and_unload()
