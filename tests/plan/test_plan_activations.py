"""The planner's activation formula against what autograd really saves, tensor by tensor.

Every tensor a real ``LlamaForCausalLM`` forward (with projector tokens spliced in, LoRA/4-bit/checkpointing as
configured) hands to autograd is seen through ``torch.autograd.graph.saved_tensors_hooks``; unique storages that
are not parameters or buffers are summed and compared with the planner's per-layer and head counts: they agree to
the byte (but for the scalar loss).
"""

from __future__ import annotations

import pytest
import torch
from plan_helpers import tiny_plan

from anymal.plan import activations as act
from anymal.plan.measure import build_training_setup, save_random_llm, training_batch


def saved_bytes(cfg, tmp_path) -> int:
    if cfg.quantization == "4bit":
        save_random_llm(cfg, tmp_path, seed=0)
    model, projectors, _ = build_training_setup(cfg, seed=0, workdir=tmp_path)
    weights = {t.untyped_storage().data_ptr() for m in (model, projectors) for t in [*m.parameters(), *m.buffers()]}
    seen: dict[int, int] = {}

    def pack(t):
        key = t.untyped_storage().data_ptr()
        if key not in weights and t.dtype != torch.int64:  # labels/positions are not planned
            seen[key] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(**training_batch(cfg, model, projectors, torch.Generator().manual_seed(0)))
    assert out.loss.requires_grad
    return sum(seen.values())


def planned_bytes(cfg) -> int:
    arch, d = cfg.arch(), act.dims_of(cfg)
    per_layer = (
        act.checkpoint_saved(cfg, arch, d)
        if cfg.gradient_checkpointing
        else sum(act.layer_saved(cfg, arch, d).values())
    )
    head = act.head_saved(cfg, arch, d)
    head.pop("input embeddings", None)  # alive (held by the caller), but not handed to autograd
    if cfg.gradient_checkpointing:
        head.pop("rotary cos/sin")  # alive as the checkpointed layers' arguments, not saved through autograd
    return arch.n_layers * per_layer + sum(head.values())


CASES = {
    "fp32 full fine-tune, no padding": dict(full_finetune=True, padded=False),
    "fp32 frozen, padded, grouped KV repeated": dict(),
    "fp32 frozen, no padding, GQA in SDPA": dict(padded=False),
    "bf16 frozen (stage 1)": dict(compute_dtype="bfloat16"),
    "bf16 LoRA q/v with fp32 adapters (private casts)": dict(compute_dtype="bfloat16", lora_rank=8),
    "fp32 LoRA on all linears with dropout": dict(
        lora_rank=4, lora_dropout=0.1, lora_targets=[*act.QKV, "o_proj", "gate_proj", "up_proj", "down_proj"]
    ),
    "fp32 full fine-tune, gradient checkpointing": dict(full_finetune=True, gradient_checkpointing=True),
    "bf16 frozen, gradient checkpointing": dict(compute_dtype="bfloat16", gradient_checkpointing=True),
    "4-bit nf4 frozen, bf16": dict(quantization="4bit", compute_dtype="bfloat16", padded=False),
    "4-bit nf4 + LoRA, kbit_prepare (fp32 hidden states)": dict(
        quantization="4bit", compute_dtype="bfloat16", lora_rank=8
    ),
}


@pytest.mark.parametrize("overrides", CASES.values(), ids=CASES.keys())
def test_planned_activations_match_autograd_saved_tensors(overrides, tmp_path):
    cfg = tiny_plan(**overrides)
    measured = saved_bytes(cfg, tmp_path)
    planned = planned_bytes(cfg)
    assert abs(planned - measured) <= 16, (planned, measured)  # exact but for the 0-d loss scalar
