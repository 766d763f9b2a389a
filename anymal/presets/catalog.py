"""The seed systems as anymal configs: per preset and size, the model, the first training recipe of its paper, the
LLM's architecture (for shapes-only builds) and the parameter counts its paper states.

Every preset is plain anymal configuration: plugin names and options (``projector_type``, ``feature_layer``,
adapters, pooling), a chat template, output plugins by name. Nothing here is imported from a plugin. Sources are in
``../shared/reference`` (the Pink, Qwen-VL, u-LLaVA and M3IT notes) and the AnyMAL paper; a number the paper does
not state is not invented (``paper_counts`` leaves it out).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from anymal.presets.templates import PINK_LLAMA2, QWEN_VL_CHATML, VICUNA_V1, YING_VLM

# HF config.json fields of each LLM (LLaMA-2: meta-llama/Llama-2-*-hf; Qwen-7B's shapes in transformers' Qwen2 form,
# as Qwen/Qwen1.5-7B ships them; Ziya-LLaMA-13B: LLaMA-13B with its extended 39,424-token vocabulary).
LLAMA2 = {
    "7b": dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32),
    "13b": dict(hidden_size=5120, intermediate_size=13824, num_hidden_layers=40, num_attention_heads=40),
    "70b": dict(
        hidden_size=8192, intermediate_size=28672, num_hidden_layers=80, num_attention_heads=64, num_key_value_heads=8
    ),
}
QWEN_7B = dict(
    model_type="qwen2",
    hidden_size=4096,
    intermediate_size=11008,
    num_hidden_layers=32,
    num_attention_heads=32,
    num_key_value_heads=32,
    vocab_size=151936,
)


def _llama(size: str, vocab: int = 32000) -> dict[str, Any]:
    arch = {"model_type": "llama", "vocab_size": vocab, **LLAMA2[size]}
    arch.setdefault("num_key_value_heads", arch["num_attention_heads"])
    return arch


def _llm(name_or_path: str, chat_template: str | None = None, quantized: bool = True) -> dict[str, Any]:
    llm: dict[str, Any] = {"name_or_path": name_or_path, "dtype": "bfloat16", "pad_to_multiple_of": 32}
    if quantized:  # the frozen core in 4-bit (QLoRA style), as anymal's paper configs
        llm["quantization"] = {"mode": "4bit", "quant_type": "nf4", "double_quant": True, "compute_dtype": "bfloat16"}
    if chat_template is not None:
        llm["chat_template"] = chat_template
        llm["apply_chat_template"] = True
    return llm


VIT_L_14_224 = {
    "backend": "open_clip",
    "model_name": "ViT-L-14",
    "pretrained": "openai",
}  # openai/clip-vit-large-patch14
BIGG = {"backend": "open_clip", "model_name": "ViT-bigG-14", "pretrained": "laion2b_s39b_b160k"}
EVA_VIT_G = {  # BLIP-2's EVA ViT-g/14 (1408 wide, 39 blocks), as transformers' Blip2VisionModel
    "backend": "hf",
    "model_name": "Salesforce/blip2-opt-2.7b",
    "pretrained": None,
    "model_config": {"model_type": "blip_2_vision_model"},
}

# SAM ViT-H (u-LLaVA's sam_vit_h_4b8939): transformers' SamConfig with ViT-H's image encoder
SAM_VIT_H = {
    "vision_config": {
        "hidden_size": 1280,
        "num_hidden_layers": 32,
        "num_attention_heads": 16,
        "global_attn_indexes": [7, 15, 23, 31],
    }
}


@dataclass
class PresetSpec:
    """One preset at one real size: ``train`` is a whole ``python -m anymal.train`` config (with ``model``),
    ``llm_arch`` the LLM's HF config fields, ``paper_counts`` what the paper states, keyed like the counts of
    :func:`anymal.presets.counting.count_on_meta` (``:weights``: matrices only, as Pink counts),
    ``notes`` where anymal's build differs from the paper and why."""

    name: str
    size: str
    train: dict[str, Any]
    llm_arch: dict[str, Any]
    paper_counts: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)  # output plugins by name, when installed
    source: str = ""
    # anymal.eval settings per task that follow the system's own formats (e.g. Pink's box grammar for ``rec``)
    eval_settings: dict[str, dict[str, Any]] = field(default_factory=dict)


def _train(model: dict[str, Any], data: list[dict[str, Any]], **recipe: Any) -> dict[str, Any]:
    base = {
        "model": model,
        "data": data,
        "batch_size": 4,
        "grad_accum": 8,
        "mixed_precision": "bf16",
        "gradient_checkpointing": True,
        "save_every": 1000,
        "keep_last": 3,
    }
    return {**base, **recipe}


def _anymal(size: str) -> PresetSpec:
    # configs/align/*_llama2_<size>.yaml and configs/instruct/multimodal_llama2_<size>.yaml: one model, four plugins
    image = {"plugin_type": "image", **BIGG, "num_tokens": 64, "resampler_depth": 6, "resampler_dim": 1024}
    if size == "70b":
        image["encoder_dtype"] = "bfloat16"
    model = {
        "llm": _llm(f"meta-llama/Llama-2-{size}-chat-hf"),
        "modalities": {
            "image": image,
            "audio": {"plugin_type": "audio", "num_tokens": 32},
            "imu": {"plugin_type": "imu", "checkpoint": "runs/pretrain_imu/imu_encoder.safetensors", "num_tokens": 32},
            "video": {"plugin_type": "video", "sampling": "segment", "num_tokens": 64},
        },
    }
    data = [{"kind": "pairs", "path": "data/laion_coco_pairs.jsonl", "modality": "image", "media_key": "image"}]
    train = _train(
        model,
        data,
        stage="align",
        train_modalities=["image"],
        output_dir=f"runs/anymal_{size}_align_image",
        max_steps=100000,
        lr=2e-4,
        warmup_steps=2000,
        grad_accum={"7b": 8, "13b": 8, "70b": 32}[size],
    )
    llm_params = {"7b": 6_738_415_616, "13b": 13_015_864_320, "70b": 68_976_648_192}[size]
    return PresetSpec(
        "anymal",
        size,
        train,
        _llama(size),
        paper_counts={"llm": llm_params},
        notes=[
            "LLM count: LLaMA-2's published checkpoint (Touvron et al., 2023; meta-llama/Llama-2-*-hf); the AnyMAL "
            "paper does not state projector sizes",
            "one model with the four paper modalities; each stage-1 run trains one of them (train_modalities)",
        ],
        source="AnyMAL (Moon et al., 2023); configs/align, configs/instruct",
    )


def _pink(size: str) -> PresetSpec:
    model = {
        "llm": _llm("meta-llama/Llama-2-7b-chat-hf", PINK_LLAMA2),
        "modalities": {
            "image": {
                "plugin_type": "image",
                **VIT_L_14_224,
                "feature_layer": -2,
                "keep_cls_token": False,
                "projector_type": "linear",
                "num_tokens": 256,
                "vision_adapter_dim": 8,
                "llm_adapter_dim": 8,
                "adapter_activation": "identity",
            }
        },
    }
    data = [{"kind": "llava", "path": "data/pink_instruct.json", "media_root": "data/images"}]
    train = _train(
        model,
        data,
        stage="instruct",
        output_dir="runs/pink_7b_stage2",
        max_steps=30000,
        batch_size=4,
        grad_accum=8,
        lr=5e-4,
        weight_decay=0.05,
        warmup_steps=1500,
    )
    return PresetSpec(
        "pink",
        size,
        train,
        _llama(size),
        paper_counts={  # Pink §4.1: weights only
            "image.projector.head:weights": 4_194_304,
            "image.projector.vit:weights": 393_216,
            "image.projector.llm_adapters:weights": 2_097_152,
            "image.projector:weights": 6_684_672,
        },
        notes=[
            "Pink counts weights only (no biases); anymal prints both",
            "Pink puts an adapter in all 24 ViT blocks but reads features of block 23 (penultimate), so the 24th "
            "adapter never gets a gradient; anymal adapts the 23 blocks it runs (16,384 weights fewer)",
            "stage 1 of Pink trains the projector only; in anymal the adapters belong to the projector and start as "
            "the identity (W_u = 0), so a stage-1 run trains them too",
        ],
        source="Pink (Xuan et al., CVPR 2024) §3.1, §4.1; SY-Xuan/Pink",
        eval_settings={"rec": {"box_format": "pink"}},  # [x0,y0,x1,y1] fractions, anymal_box's Pink codec
    )


def _qwen_vl(size: str) -> PresetSpec:
    model = {
        "llm": _llm("Qwen/Qwen1.5-7B", QWEN_VL_CHATML),
        "modalities": {
            "image": {
                "plugin_type": "image",
                **BIGG,
                "feature_layer": -1,
                "keep_cls_token": False,
                "projector_type": "cross_attention_2d",
                "num_tokens": 256,
                "encoder_dtype": "bfloat16",
            }
        },
    }
    data = [{"kind": "pairs", "path": "data/qwen_pretrain_pairs.jsonl", "modality": "image", "media_key": "image"}]
    train = _train(
        model,
        data,
        stage="align",
        train_modalities=["image"],
        chat=True,
        output_dir="runs/qwen_vl_7b_stage1",
        max_steps=50000,
        lr=2e-4,
        weight_decay=0.05,
        warmup_steps=500,
    )
    return PresetSpec(
        "qwen_vl",
        size,
        train,
        dict(QWEN_7B),
        paper_counts={  # Qwen-VL Table 1: 1.9B + 0.08B + 7.7B = 9.6B
            "image.encoder": 1_900_000_000,
            "image.projector": 80_000_000,
            "llm": 7_700_000_000,
            "total": 9_600_000_000,
        },
        notes=[
            "paper Table 1 rounds to 0.1B / 0.01B; the released resampler (kv_proj, one nn.MultiheadAttention, "
            "ln_q/ln_kv/ln_post, proj 4096x4096) holds 91.8M, which is what anymal builds",
            "stage 1 trains the ViT too and stages 2-3 the LLM; anymal keeps both frozen (adapter and, in the "
            "instruct stage, LoRA), the departure the Qwen-VL notes recommend for a frozen quantised core",
            "ViT-bigG at 224 px (stage 1); image_size 448 for stages 2-3 takes a custom model_config",
            "LLM: Qwen-7B's shapes in transformers' native Qwen2 form (Qwen/Qwen1.5-7B has the same shapes)",
        ],
        source="Qwen-VL (Bai et al., 2023) §2.1, Table 1; QwenLM/Qwen-VL visual.py",
        eval_settings={"rec": {"box_format": "qwen"}},  # <ref>..</ref><box>(x1,y1),(x2,y2)</box> on 0-1000
    )


def _ullava(size: str) -> PresetSpec:
    vision = {**VIT_L_14_224, "feature_layer": -2, "keep_cls_token": False}
    model = {
        "llm": _llm("lmsys/vicuna-7b-v1.1", VICUNA_V1),
        "modalities": {
            "image": {"plugin_type": "image", **vision, "projector_type": "linear", "num_tokens": 256},
            "video": {
                "plugin_type": "video",
                **vision,
                "num_frames": 8,
                "aggregation": "mean_pool",
                "projector": "linear",
                "num_tokens": 8 + 256,
            },
        },
    }
    data = [{"kind": "pairs", "path": "data/llava_cc3m_595k.jsonl", "modality": "image", "media_key": "image"}]
    train = _train(
        model,
        data,
        stage="align",
        train_modalities=["image", "video"],
        chat=True,
        output_dir="runs/ullava_7b_stage1",
        max_steps=20000,
        lr=2e-3,
        warmup_steps=600,
    )
    return PresetSpec(
        "ullava",
        size,
        train,
        _llama("7b"),
        paper_counts={},
        notes=[
            "u-LLaVA shares one projector between images and videos; anymal's video plugin has its own linear "
            "projector over the same (shared, frozen) tower",
            "output plugins: [LOC] (loc) and [SEG] (seg) are added when installed; seg's SAM is ViT-H's architecture "
            "(sam_config): set sam: facebook/sam-vit-huge (a local copy) and sam_config: null to load its weights",
        ],
        outputs={"loc": {}, "seg": {"sam_config": SAM_VIT_H}},
        source="u-LLaVA (Xu et al., ECAI 2024) §3; OPPOMKLab/u-LLaVA",
    )


def _ying_vlm(size: str) -> PresetSpec:
    model = {
        "llm": _llm("IDEA-CCNL/Ziya-LLaMA-13B-v1", YING_VLM),
        "modalities": {
            "image": {
                "plugin_type": "image",
                **EVA_VIT_G,
                "feature_layer": -1,
                "keep_cls_token": True,
                "projector_type": "qformer",
                "num_tokens": 32,
            }
        },
    }
    data = [{"kind": "m3it_tasks", "path": "data/m3it/tasks.yaml"}]
    train = _train(
        model,
        data,
        stage="instruct",
        output_dir="runs/ying_vlm_13b_stage2",
        max_steps=20000,
        lr=1e-5,
        weight_decay=0.05,
        warmup_steps=1000,
        lora={"rank": 8, "alpha": 16, "target_modules": ["q_proj", "v_proj"]},
    )
    return PresetSpec(
        "ying_vlm",
        size,
        train,
        _llama("13b", vocab=39424),
        paper_counts={"image.projector": 130_000_000},  # M3IT §4.1: Q-Former + language projection
        notes=[
            "the 130M Ying-VLM reports for Q-Former + projection matches an InstructBLIP-style Q-Former that also "
            "reads the instruction (its BERT word/position embeddings, about 23.8M); anymal's Q-Former reads only "
            "the image (BLIP-2 style), so it builds about 21M fewer",
            "stage II adapts the LLM's W_q, W_v: LoRA on q_proj/v_proj here",
            "the Q-Former reads the ViT's last hidden states as the image plugin's feature_layer gives them, without "
            "BLIP-2's final post_layernorm",
            "vision tower: BLIP-2's EVA ViT-g/14 architecture; point model_name at a Blip2VisionModel folder and "
            "set model_config: null to load its weights",
        ],
        source="M3IT / Ying-VLM (Li et al., 2023) §4.1; MMInstruction/M3IT",
    )


PRESETS = {"anymal": _anymal, "pink": _pink, "qwen_vl": _qwen_vl, "ullava": _ullava, "ying_vlm": _ying_vlm}
SIZES = {"anymal": ("7b", "13b", "70b"), "pink": ("7b",), "qwen_vl": ("7b",), "ullava": ("7b",), "ying_vlm": ("13b",)}


def spec(name: str, size: str) -> PresetSpec:
    """The real-size spec (a fresh copy: callers may edit it)."""
    return copy.deepcopy(PRESETS[name](size))
