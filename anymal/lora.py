"""LoRA / QLoRA on the frozen LLM through PEFT, saved in PEFT's own format inside anymal checkpoints."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from anymal.errors import ConfigError
from anymal.hf_compat import peft_internal_deprecations_silenced

DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def add_lora(
    model,
    rank: int = 8,
    alpha: int = 16,
    dropout: float = 0.05,
    target_modules: Sequence[str] = DEFAULT_TARGETS,
    gradient_checkpointing: bool = False,
) -> None:
    """Wraps ``model.llm`` in a PEFT LoRA model (QLoRA when the LLM is quantised); only the adapters train."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if hasattr(model.llm, "peft_config"):
        raise ConfigError("the LLM already has a LoRA adapter")
    if rank < 1:
        raise ConfigError(f"lora.rank={rank}: expected a positive rank")
    config = LoraConfig(
        r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(target_modules), task_type="CAUSAL_LM"
    )
    with peft_internal_deprecations_silenced():
        if getattr(model.llm, "is_quantized", False):
            model.llm = prepare_model_for_kbit_training(model.llm, use_gradient_checkpointing=gradient_checkpointing)
        model.llm = get_peft_model(model.llm, config)


def load_lora(model, adapter_dir: str | Path, merge: bool = False, trainable: bool = False) -> None:
    """Loads a PEFT adapter saved in a checkpoint onto ``model.llm``, merged into the weights or not."""
    from peft import PeftModel

    with peft_internal_deprecations_silenced():
        model.llm = PeftModel.from_pretrained(model.llm, str(adapter_dir), is_trainable=trainable)
    if merge:
        if getattr(model.llm, "is_quantized", False) or getattr(model.llm.base_model, "is_quantized", False):
            raise ConfigError("merge_lora=True needs an unquantised LLM: load with quantization='none'")
        model.llm = model.llm.merge_and_unload()
