"""The frozen-LM check: hashes that see any change to the base weights and ignore LoRA adapters and PEFT names."""

from __future__ import annotations

import torch

from anymal_demo.frozen import capture_models, folder_hash, llm_hash


def test_llm_hash_ignores_lora_and_sees_base_weight_changes():
    from anymal.lora import add_lora
    from anymal.testing import tiny_anymal

    model = tiny_anymal(("imu",))
    before = llm_hash(model.llm)
    model.llm = add_lora(model.llm, rank=2, target_modules=["q_proj", "v_proj"])
    assert llm_hash(model.llm) == before  # wrapped by PEFT, adapters present: the base weights are the same
    with torch.no_grad():
        next(p for n, p in model.llm.named_parameters() if "lora_" in n).add_(1.0)
    assert llm_hash(model.llm) == before
    with torch.no_grad():
        next(p for n, p in model.llm.named_parameters() if "lora_" not in n).view(-1)[0] += 1e-3
    assert llm_hash(model.llm) != before


def test_folder_hash_reads_every_byte(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"a" * 3_000_000)
    (tmp_path / "config.json").write_text("{}")
    first = folder_hash(tmp_path)
    data = bytearray(b"a" * 3_000_000)
    data[1_234_567] = ord("b")
    (tmp_path / "model.safetensors").write_bytes(bytes(data))
    assert folder_hash(tmp_path) != first


def test_capture_models_records_built_models_and_restores_the_loop():
    from anymal.train import loop

    original = loop.build_model
    with capture_models() as built:
        assert loop.build_model is not original
    assert loop.build_model is original and built == []
