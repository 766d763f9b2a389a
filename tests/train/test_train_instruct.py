"""Stage 2: projectors plus (Q)LoRA through PEFT, saved in PEFT's format inside the anymal checkpoint."""

import json

import pytest
import torch
from safetensors.torch import load_file

from anymal import AnyMAL, ConfigError
from anymal.train import train


@pytest.fixture(scope="module")
def instruct_run(tmp_path_factory, make_toy_config):
    folder = tmp_path_factory.mktemp("instruct")
    config = make_toy_config(
        folder,
        "stage=instruct",
        "max_steps=8",
        "lora.rank=4",
        "lora.target_modules=[q_proj,v_proj]",
        "lora.lr=5e-3",
        "model.llm.quantization.mode=4bit",
    )
    result = train(config)
    return result, folder / "run" / "final"


def test_qlora_adapter_is_saved_in_peft_format_and_trained(instruct_run):
    result, final = instruct_run
    adapter = final / "adapter"
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert config["r"] == 4 and sorted(config["target_modules"]) == ["q_proj", "v_proj"]
    weights = load_file(adapter / "adapter_model.safetensors")
    lora_b = [v for k, v in weights.items() if "lora_B" in k]
    assert lora_b and any(v.abs().sum() > 0 for v in lora_b)  # B starts at zero: non-zero means it learned
    stored = load_file(final / "plugins" / "toy" / "projector.safetensors")
    assert stored and not any("lora" in k for k in stored)  # LoRA lives in adapter/, not with the projector
    assert not (final / "model.safetensors").exists()
    assert result.steps == 8


def test_adapter_loads_merged_or_not_onto_the_full_precision_llm(instruct_run):
    _, final = instruct_run
    unmerged = AnyMAL.from_pretrained(final, quantization="none")
    merged = AnyMAL.from_pretrained(final, quantization="none", merge_lora=True)
    assert hasattr(unmerged.llm, "peft_config") and not hasattr(merged.llm, "peft_config")
    assert unmerged.trainable_summary()["llm"]["trainable"] == 0
    ids = [unmerged.prompt_encoder.encode_prompt("hello", {}, chat=False)]
    with torch.no_grad():
        a = unmerged.fuse(ids).inputs_embeds
        la = unmerged.llm(inputs_embeds=a).logits
        lb = merged.llm(inputs_embeds=merged.fuse(ids).inputs_embeds).logits
    assert torch.allclose(la, lb, atol=1e-4)
    with pytest.raises(ConfigError, match="unquantised"):
        AnyMAL.from_pretrained(final, quantization="4bit", merge_lora=True)
