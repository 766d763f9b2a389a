"""The tiny size of a preset: the same structure (projector type, feature layer, adapters, pooling, chat template,
LLM family, output plugins) at CPU-test scale, with random weights and no downloads.

Each plugin starts from its own ``tiny_config()`` and takes the preset's structural options, scaled down: token
counts follow the tiny tower (16 patch tokens of 32-pixel images), bottlenecks are 4 wide, the Q-Former is 2 layers
of 32. The LLM is a random tiny LLaMA, or a tiny Qwen2 for ``qwen_vl``, saved once to the tiny-model cache.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from anymal.config import config_to_dict

TINY_QFORMER = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}
TINY_BLIP2_VISION = {  # BLIP-2's vision tower class at test scale (32 px, 8 px patches: 16 patches + CLS)
    "model_type": "blip_2_vision_model",
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "image_size": 32,
    "patch_size": 8,
    "initializer_range": 0.02,  # Blip2VisionConfig's default (1e-10) draws weights that make the features about zero
}
# options that carry a preset's structure into the tiny size
STRUCTURAL = (
    "projector_type",
    "feature_layer",
    "keep_cls_token",
    "adapter_activation",
    "aggregation",
    "projector",
    "num_frames",
)
TINY_PATCHES = 16  # the image plugin's tiny tower: 32 px images, 8 px patches
LLM_SHAPE_FIELDS = (
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "max_position_embeddings",
    "vocab_size",
    "bos_token_id",
    "eos_token_id",
    "tie_word_embeddings",
)


def tiny_qwen2_folder(seed: int = 0) -> Path:
    """A local folder with a random tiny Qwen2 (Qwen-7B's family: biased q/k/v) of the tiny LLaMA's shape
    (:func:`anymal.testing.tiny_llm_folder`), with its tokenizer."""
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    from anymal.atomic import create_dir_once
    from anymal.testing import cache_dir, tiny_llm_folder

    llama = tiny_llm_folder(seed=seed)
    shape = json.loads((llama / "config.json").read_text())
    arch = {k: shape[k] for k in LLM_SHAPE_FIELDS}
    key = hashlib.sha256(json.dumps([arch, seed], sort_keys=True).encode()).hexdigest()[:12]

    def write(folder: Path) -> None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            Qwen2ForCausalLM(Qwen2Config(**arch)).save_pretrained(str(folder))
        AutoTokenizer.from_pretrained(str(llama)).save_pretrained(str(folder))

    return create_dir_once(cache_dir() / f"qwen2-{key}", write)


def _tiny_plugin(real: dict[str, Any]) -> dict[str, Any]:
    from anymal.registry import get_plugin

    tiny = config_to_dict(get_plugin(str(real["plugin_type"])).tiny_config())
    tiny.update({k: real[k] for k in STRUCTURAL if k in real})
    kind = real.get("projector_type", "perceiver")
    if real.get("backend") == "hf" and (real.get("model_config") or {}).get("model_type") == "blip_2_vision_model":
        tiny.update(backend="hf", model_name="tiny-blip2-vision", pretrained=None, model_config=TINY_BLIP2_VISION)
    cls_token = int(bool(tiny.get("keep_cls_token")))
    if kind == "linear":
        tiny["num_tokens"] = TINY_PATCHES + cls_token
    elif kind == "cross_attention_2d":
        tiny.update(num_tokens=4, cross_attention_heads=2)  # a 2x2 query grid over the 4x4 patch grid
    elif kind == "qformer":
        tiny.update(num_tokens=4, qformer_config=dict(TINY_QFORMER))
    for name in ("vision_adapter_dim", "llm_adapter_dim"):
        if real.get(name):
            tiny[name] = 4
    if real.get("aggregation") == "mean_pool":
        tiny["num_tokens"] = tiny["num_frames"] + TINY_PATCHES + cls_token
    return tiny


def tiny_train_config(real: Any) -> dict[str, Any]:
    """The tiny training config of a real-size :class:`~anymal.presets.catalog.PresetSpec`: a few CPU steps."""
    from anymal.testing import tiny_llm_folder

    train = copy.deepcopy(real.train)
    model = train["model"]
    family = real.llm_arch.get("model_type", "llama")
    folder = tiny_qwen2_folder() if family == "qwen2" else tiny_llm_folder()
    llm = {"name_or_path": str(folder), "dtype": "float32"}
    for key in ("chat_template", "apply_chat_template"):
        if key in model["llm"]:
            llm[key] = model["llm"][key]
    model["llm"] = llm
    model["modalities"] = {name: _tiny_plugin(cfg) for name, cfg in model["modalities"].items()}
    if "outputs" in model:
        from anymal.registry import get_output_plugin

        model["outputs"] = {name: config_to_dict(get_output_plugin(name).tiny_config()) for name in model["outputs"]}
    train.update(
        output_dir="runs/tiny",
        max_steps=4,
        batch_size=2,
        grad_accum=1,
        lr=1e-3,
        warmup_steps=0,
        mixed_precision="no",
        gradient_checkpointing=False,
        save_every=0,
        log_every=1,
    )
    if train.get("lora"):
        train["lora"] = {**train["lora"], "rank": 2}
    return train
