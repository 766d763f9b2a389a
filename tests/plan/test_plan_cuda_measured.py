"""The planner against the four training setups measured on an NVIDIA H200 (2026-11-30).

Measurements: ``../shared/measurements/gpu_2026-11-30/`` (``gpu_check.py``; torch 2.11 + CUDA 13, transformers
5.17, bitsandbytes 0.50.2). "nvml peak" is the whole device's used memory sampled every 20 ms during training
(CUDA context + caching allocator), which decides whether a run fits a card. Each setup is rebuilt here as the
training config the measurement ran (``anymal.train.TrainConfig``) and planned through ``plan_from_train``, so the
test covers the path ``python -m anymal.plan --config`` takes: parameter counts come from the plugins built on the
meta device, the LLM shape from a local config.json (7B) or the preset (70B).

Text tokens per example are the longest row of the measured batches (prompt + caption + EOS, LLaMA-2 tokenizer):
44 with the 24-word captions, 210 with the 190-word ones. The 70B LLM of the measurement was built layer by layer
in 4-bit under torch's default dtype, so its embeddings, norms and LM head were float32 (34.91 GiB after the
build, where bf16 ones give 33.87): ``model.llm.dtype=float32`` says exactly that.
"""

from __future__ import annotations

import json

import pytest

from anymal.plan import estimate
from anymal.plan.from_train import plan_from_train
from anymal.train.config import DataSpec, LoRASpec, TrainConfig

GIB = 2**30
LLAMA2_7B = dict(
    architectures=["LlamaForCausalLM"], model_type="llama", hidden_size=4096, intermediate_size=11008,
    num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=32, vocab_size=32000,
)  # fmt: skip

# name: (nvml peak GiB, torch max reserved GiB, torch max allocated GiB), from the measurement JSON files
MEASURED = {
    "7b_align": (8.730, 7.359, 7.094),  # 7b_load_generate_align.json: train_align
    "7b_qlora": (12.031, 10.678, 10.182),  # 7b_qlora_instruct.json: instruct_qlora_7b
    "70b_align_no_checkpointing": (85.660, 84.309, 82.792),  # 70b_align_paper_case.json: gc_False
    "70b_align_checkpointing": (49.248, 47.895, 46.880),  # 70b_align_paper_case.json: gc_True
}


def _quant():
    return {"mode": "4bit", "quant_type": "nf4", "double_quant": True, "compute_dtype": "bfloat16"}


def train_config(name: str, llm_folder) -> tuple[TrainConfig, int]:
    """The measured setup as the training config it ran, and its text tokens per example."""
    data = [DataSpec(kind="pairs", path="pairs.jsonl", modality="image", media_key="image")]
    common = dict(train_modalities=["image"], data=data, batch_size=4, mixed_precision="bf16", lr=1e-4)
    if name.startswith("7b"):
        image = {"plugin_type": "image", "model_name": "ViT-L-14-336", "pretrained": None, "num_tokens": 64,
                 "encoder_dtype": "float32"}  # fmt: skip  # frozen encoders were float32 then
        model = {"llm": {"name_or_path": str(llm_folder), "dtype": "bfloat16", "quantization": _quant()},
                 "modalities": {"image": image}}  # fmt: skip
        if name == "7b_align":
            return TrainConfig(model=model, stage="align", **common), 44
        lora = LoRASpec(rank=64, alpha=16, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])  # dropout 0.05
        return TrainConfig(model=model, stage="instruct", lora=lora, **common), 44
    image = {"plugin_type": "image", "model_name": "ViT-bigG-14", "pretrained": None, "num_tokens": 64,
             "resampler_depth": 6, "resampler_dim": 1024, "encoder_dtype": "float32"}  # fmt: skip
    model = {"llm": {"name_or_path": "meta-llama/Llama-2-70b-hf", "dtype": "float32", "quantization": _quant()},
             "modalities": {"image": image}}  # fmt: skip
    gc = name == "70b_align_checkpointing"
    return TrainConfig(model=model, stage="align", gradient_checkpointing=gc, **common), 210


@pytest.fixture(scope="module")
def llm_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("llama2_7b_shape")
    (folder / "config.json").write_text(json.dumps(LLAMA2_7B))
    return folder


@pytest.mark.parametrize("name", MEASURED)
def test_planned_peak_matches_the_measured_nvml_peak(name, llm_folder):
    config, text_tokens = train_config(name, llm_folder)
    plan, notes = plan_from_train(config, plan_overrides={"text_tokens": text_tokens, "device": "cuda"})
    est = estimate(plan)
    nvml, _reserved, allocated = MEASURED[name]
    error = est.peak_bytes / GIB / nvml - 1
    assert -0.03 <= error <= 0.05, f"{name}: planned {est.peak_bytes / GIB:.2f} GiB, measured {nvml} ({error:+.1%})"
    # the allocated-memory model alone (no context, no fragmentation) is within 2% of torch's max allocated
    dynamic = est.peak_bytes - est.component("cuda context") - est.component("allocator fragmentation")
    assert dynamic / GIB == pytest.approx(allocated, rel=0.02), (name, notes)


def test_measured_setups_count_the_plugins_parameters(llm_folder):
    """The meta-device counts equal those of the real modules the measurement built (7B JSON: plan_input)."""
    plan, _ = plan_from_train(train_config("7b_align", llm_folder)[0], plan_overrides={"text_tokens": 44})
    image = plan.modalities["image"]
    assert (image.encoder_params, image.projector_params, image.encoder_dtype) == (304293888, 30493696, "float32")
    assert plan.llm.config_json and plan.mixed_precision == "bf16" and plan.weights_dtype == "bfloat16"


def test_cuda_context_is_the_measured_one():
    """nvml used minus torch reserved was 1.35-1.37 GiB in all four runs."""
    from anymal.plan import PlanConfig

    assert all(1.3 <= nvml - reserved <= PlanConfig().cuda_context_gib for nvml, reserved, _ in MEASURED.values())


def test_float32_embeddings_cost_the_70b_case_its_missing_14_gib(llm_folder):
    """What the 70B measurement's fp32 embeddings did: the MLP keeps float32 activations (4-bit layers return
    their input's dtype); anymal's own loading (``model.llm.dtype=bfloat16``) keeps them in bf16."""
    config, text_tokens = train_config("70b_align_no_checkpointing", llm_folder)
    fp32, _ = plan_from_train(config, plan_overrides={"text_tokens": text_tokens})
    config.model["llm"]["dtype"] = "bfloat16"
    bf16, _ = plan_from_train(config, plan_overrides={"text_tokens": text_tokens})
    saved = (estimate(fp32).peak_bytes - estimate(bf16).peak_bytes) / GIB
    assert 14 <= saved <= 16.5
