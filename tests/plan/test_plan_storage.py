"""Exact arithmetic of the known parts: parameter counts, weight bytes, 4-bit constants, optimizer states."""

from __future__ import annotations

import bitsandbytes.functional as bnbf
import pytest
import torch
from plan_helpers import tiny_plan

from anymal.plan import estimate, plan_config_from_dict, resolve_arch
from anymal.plan.measure import build_training_setup, save_random_llm
from anymal.plan.storage import adamw8bit_state_bytes, adamw_state_bytes, quant4_parts


@pytest.mark.parametrize(
    ("preset", "params"),
    [("llama2-7b", 6_738_415_616), ("llama2-13b", 13_015_864_320), ("llama2-70b", 68_976_648_192)],
)
def test_llama2_parameter_counts(preset, params):
    assert resolve_arch(preset).total_params() == params


def test_7b_fp16_weights_are_two_bytes_per_parameter():
    cfg = plan_config_from_dict({"llm": {"preset": "llama2-7b"}, "compute_dtype": "float16"})
    assert estimate(cfg).component("llm weights") == 2 * 6_738_415_616


def _bnb_bytes(weight: torch.Tensor, double_quant: bool) -> dict[str, int]:
    packed, state = bnbf.quantize_4bit(weight, blocksize=64, compress_statistics=double_quant, quant_type="nf4")
    out = {
        "packed": packed.numel() * packed.element_size(),
        "absmax": state.absmax.numel() * state.absmax.element_size(),
    }
    out["code"] = state.code.numel() * state.code.element_size()
    if double_quant:
        out["absmax2"] = state.state2.absmax.numel() * 4
        out["offset"] = state.offset.numel() * state.offset.element_size()
        out["code2"] = state.state2.code.numel() * state.state2.code.element_size()
    return out


@pytest.mark.parametrize("shape", [(1000, 333), (1100, 1024), (257, 131), (128, 344)])
@pytest.mark.parametrize("double_quant", [False, True])
def test_nf4_bytes_match_bitsandbytes_tensor_by_tensor(shape, double_quant):
    weight = torch.randn(*shape)
    assert quant4_parts(shape[0] * shape[1], 64, double_quant) == _bnb_bytes(weight, double_quant)


def test_nf4_constants_of_7b_with_and_without_double_quant():
    linear = 32 * resolve_arch("llama2-7b").layer_linear_params()  # 6,476,005,376 quantised weights
    plain = plan_config_from_dict({"llm": {"preset": "llama2-7b"}, "quantization": "4bit", "double_quant": False})
    nested = plan_config_from_dict({"llm": {"preset": "llama2-7b"}, "quantization": "4bit", "double_quant": True})
    # 0.5 bytes per weight; absmax: 4 bytes per 64 weights (0.5 bit/weight) or 1 byte per 64 (+ fp32 per 256 blocks)
    assert estimate(plain).component("llm weights") == linear // 2 + 2 * 32000 * 4096 * 2 + 65 * 4096 * 2
    assert estimate(plain).component("quantisation constants") == linear // 64 * 4 + 7 * 32 * 64
    blocks_per_tensor = [a * b // 64 for a, b in resolve_arch("llama2-7b").linear_shapes().values()]
    nested_consts = 32 * sum(n + -(-n // 256) * 4 + 4 + 64 + 1024 for n in blocks_per_tensor)
    assert estimate(nested).component("quantisation constants") == nested_consts
    assert nested_consts / linear * 8 == pytest.approx(0.127, abs=0.001)  # QLoRA's 0.127 bits per parameter


def test_planned_4bit_model_bytes_equal_the_loaded_model(tmp_path):
    """A real 4-bit model loaded by transformers holds exactly the bytes the planner counts."""
    cfg = tiny_plan(quantization="4bit", compute_dtype="float32", feature_dim=0)
    save_random_llm(cfg, tmp_path, seed=0)
    model, _, _ = build_training_setup(cfg, seed=0, workdir=tmp_path)
    seen: dict[int, int] = {}
    for name, t in [*model.named_parameters(), *model.named_buffers()]:
        if "rotary" in name:
            continue  # inv_freq: a few hundred bytes the planner does not count
        seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        qs = getattr(t, "quant_state", None)
        while qs is not None:
            for part in (qs.absmax, qs.code, qs.offset):
                if part is not None:
                    seen[part.untyped_storage().data_ptr()] = part.untyped_storage().nbytes()
            qs = qs.state2
    planned = estimate(cfg)
    assert sum(seen.values()) == planned.component("llm weights") + planned.component("quantisation constants")


def test_adamw_state_bytes_match_torch():
    params = [torch.nn.Parameter(torch.randn(300, 7)), torch.nn.Parameter(torch.randn(5))]
    opt = torch.optim.AdamW(params)
    sum(p.sum() for p in params).backward()
    opt.step()
    real = sum(t.untyped_storage().nbytes() for state in opt.state.values() for t in state.values())
    assert real == sum(adamw_state_bytes(p.numel(), 4) for p in params)


def test_adamw8bit_state_bytes_match_bitsandbytes():
    import bitsandbytes as bnb

    params = [torch.nn.Parameter(torch.randn(300, 70)), torch.nn.Parameter(torch.randn(50))]
    opt = bnb.optim.AdamW8bit(params)
    sum(p.sum() for p in params).backward()
    opt.step()
    shared = {"qmap1", "qmap2"}  # one dynamic quantisation map for every parameter
    real = sum(
        t.untyped_storage().nbytes()
        for state in opt.state.values()
        for key, t in state.items()
        if torch.is_tensor(t) and key not in shared
    )
    assert real == sum(adamw8bit_state_bytes(p.numel()) for p in params)
