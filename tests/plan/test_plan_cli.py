"""``python -m anymal.plan``: the table, JSON output, overrides and errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from anymal.plan.__main__ import main

ROOT = Path(__file__).resolve().parents[2]
PAPER = ROOT / "configs" / "plan" / "llama2_70b_4bit_paper.yaml"


def test_paper_config_starts_with_its_command():
    first = PAPER.read_text().splitlines()[0]
    assert first == "# python -m anymal.plan --config configs/plan/llama2_70b_4bit_paper.yaml"


def test_module_entry_point_prints_the_table():
    proc = subprocess.run(
        [sys.executable, "-m", "anymal.plan", "--config", str(PAPER)], capture_output=True, text=True, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr
    assert "68.98B params" in proc.stdout and "FITS in 80 GiB" in proc.stdout
    assert "quantisation constants" in proc.stdout and "activations" in proc.stdout


def test_json_output_with_overrides_that_do_not_fit(capsys):
    assert main(["--config", str(PAPER), "gradient_checkpointing=false", "micro_batch=8", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["fits"] is False and data["config"]["micro_batch"] == 8
    assert data["suggestions"] and data["plan_to_fit"]["fits"] is True
    assert sum(c["bytes"] for c in data["components"]) == data["peak_bytes"]
    assert "micro_batch=" in data["plan_to_fit"]["args"] or "gradient_checkpointing=true" in data["plan_to_fit"]["args"]


def test_table_lists_suggestions_when_it_does_not_fit(capsys):
    assert main(["--config", str(PAPER), "quantization=none"]) == 0
    out = capsys.readouterr().out
    assert "DOES NOT FIT" in out and "what to change" in out and "quantization=4bit" in out


def test_bad_override_exits_2_naming_the_key(capsys):
    assert main(["--config", str(PAPER), "budget=80"]) == 2
    assert "budget" in capsys.readouterr().err


def test_no_config_file_needed(capsys):
    assert main(["llm.preset=llama2-7b", "compute_dtype=float16", "budget_gib=24", "micro_batch=1"]) == 0
    assert "6.74B params" in capsys.readouterr().out


ALIGN_70B = ROOT / "configs" / "align" / "image_llama2_70b.yaml"


def test_training_config_is_planned_offline_by_preset():
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "anymal.plan", "--config", str(ALIGN_70B), "--json"],
        capture_output=True, text=True, cwd=ROOT, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "No pretrained weights loaded" not in proc.stderr  # open_clip's warning about the shapes-only build
    data = json.loads(proc.stdout)
    assert data["fits"] is True and 40 < data["peak_gib"] < 50
    assert {c["name"] for c in data["components"]} >= {"llm weights", "encoder weights", "activations", "cuda context"}
    assert [p["name"] for p in data["phases"]] == ["loss backward", "layer backward", "optimizer step"]
    assert "LLM shape: preset llama2-70b" in data["notes"]
    assert data["config"]["micro_batch"] == 4 and data["config"]["grad_accumulation"] == 32
    assert data["config"]["gradient_checkpointing"] is True and data["config"]["mixed_precision"] == "bf16"
    assert data["config"]["modalities"]["image"]["encoder_dtype"] == "bfloat16"


def test_training_config_suggestions_use_the_trainers_names(capsys):
    args = ["--config", str(ALIGN_70B), "gradient_checkpointing=false", "batch_size=8", "text_tokens=300", "--json"]
    assert main(args) == 0  # text_tokens 300 plan as 320: the config pads to llm.pad_to_multiple_of=32
    data = json.loads(capsys.readouterr().out)
    assert (
        data["fits"] is False and data["config"]["micro_batch"] == 8 and data["config"]["text_tokens"] == 320
    )  # padded to llm.pad_to_multiple_of=32
    assert data["plan_to_fit"]["fits"] and "gradient_checkpointing=true" in data["plan_to_fit"]["args"]
    for s in data["suggestions"]:
        assert not any(k in s["args"] for k in ("micro_batch", "grad_accumulation", "optimizer", "kbit_prepare"))
    assert any("batch_size=" in s["args"] and "grad_accum=" in s["args"] for s in data["suggestions"])


def test_init_from_stage_one_runs_not_there_yet_use_their_align_configs(capsys):
    config = ROOT / "configs" / "instruct" / "multimodal_llama2_70b.yaml"
    assert main(["--config", str(config), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data["config"]["modalities"]) == {"image", "audio", "imu", "video"}
    assert data["config"]["lora_rank"] == 64 and data["config"]["quantization"] == "4bit"
    assert sum("align config" in n for n in data["notes"]) == 4


def test_hub_ids_map_to_presets():
    from anymal.plan.from_train import preset_for

    assert preset_for("meta-llama/Llama-2-70b-chat-hf") == "llama2-70b"
    assert preset_for("meta-llama/Llama-2-13b-hf") == "llama2-13b"
    assert preset_for("/models/llama2_7b") == "llama2-7b"
    assert preset_for("mistralai/Mistral-7B-v0.1") is None


def test_padding_to_a_multiple_is_planned(capsys):
    args = ["--config", str(ALIGN_70B), "text_tokens=200", "model.llm.pad_to_multiple_of=64", "--json"]
    assert main(args) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["config"]["text_tokens"] == 320 - 64  # 200 text + 64 image tokens = 264, padded to 320


def test_init_from_an_existing_checkpoint_reads_its_stored_config(tmp_path, capsys):
    from anymal.testing import ToyPluginConfig, tiny_anymal

    model = tiny_anymal(plugins={"toy": ToyPluginConfig(num_tokens=6)})
    model.save_pretrained(tmp_path / "ckpt")
    data = tmp_path / "d.jsonl"
    data.write_text('{"conversations": []}\n')
    config = tmp_path / "instruct.yaml"
    config.write_text(
        f"init_from: {{toy: {tmp_path / 'ckpt'}}}\nstage: instruct\ndata: [{{kind: conversations, path: {data}}}]\n"
        "lora: {rank: 8}\nbatch_size: 2\n"
    )
    assert main(["--config", str(config), "device=cpu", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["config"]["modalities"]["toy"]["tokens_per_item"] == 6 and out["config"]["lora_rank"] == 8
    assert any("its stored config" in n for n in out["notes"]) and out["config"]["llm"]["config_json"]
