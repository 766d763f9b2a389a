"""The planner counts output plugins (``model.outputs``: ``[LOC]`` boxes, ``[SEG]`` masks) in the run it plans:
their trainable heads and trigger-token rows, their frozen modules (SAM's image encoder) and the forward workspace
each declares, checked against a built model and against a measured CPU peak."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from anymal.errors import ConfigError
from anymal.plan import estimate
from anymal.plan.__main__ import main
from anymal.plan.from_train import output_counts, plan_from_train
from anymal.train.config import load_train_config

ROOT = Path(__file__).resolve().parents[2]
ULLAVA = ROOT / "configs" / "presets" / "ullava_7b.yaml"
PROBE = Path(__file__).with_name("seg_workspace_probe.py")
# glibc returns freed blocks to the kernel, so the process's high-water mark sees each transient (anymal.plan.measure)
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "131072", "MALLOC_ARENA_MAX": "2"}


def _ullava_plan(*overrides: str):
    config = load_train_config(ULLAVA, list(overrides))
    return plan_from_train(config, ULLAVA, {"llm.preset": "llama2-7b"})


def test_ullava_preset_plans_sam_vit_h_and_both_heads():
    plan, notes = _ullava_plan()
    assert set(plan.outputs) == {"loc", "seg"}
    # SAM ViT-H's image encoder (with its neck) is 637.0M parameters; the prompt encoder adds a few thousand
    assert 636e6 < plan.outputs["seg"].frozen_params < 638e6
    assert plan.outputs["seg"].frozen_dtype == "bfloat16"  # frozen_dtype: auto, planned for CUDA
    assert plan.outputs["loc"].frozen_params == 0
    # the [LOC] head is u-LLaVA's [4096 -> 4096 -> 256] projector and [256 -> 256 -> 128 -> 4] decoder, + 2 rows
    loc = 4096 * 4096 + 4096 + 4096 * 256 + 256 + 256 * 256 + 256 + 256 * 128 + 128 + 128 * 4 + 4 + 2 * 4096
    assert plan.outputs["loc"].head_params == loc
    assert plan.outputs["seg"].workspace_bytes > 4 * 2**30  # 4 images through ViT-H's global attention, in bf16
    assert any(n.startswith("output seg:") for n in notes)


def test_frozen_dtype_is_planned_as_the_model_places_it():
    planned = {dtype: _ullava_plan(f"model.outputs.seg.frozen_dtype={dtype}")[0] for dtype in ("float32", "auto")}
    assert planned["float32"].outputs["seg"].frozen_dtype == "float32"
    assert planned["auto"].outputs["seg"].frozen_dtype == "bfloat16"
    cpu, _ = plan_from_train(load_train_config(ULLAVA), ULLAVA, {"llm.preset": "llama2-7b", "device": "cpu"})
    assert cpu.outputs["seg"].frozen_dtype == "float32"  # auto is float32 off CUDA, as on the model
    gap = estimate(planned["float32"]).peak_bytes - estimate(planned["auto"]).peak_bytes
    assert gap >= planned["auto"].outputs["seg"].frozen_params * 2


def test_output_plugins_raise_the_peak_by_what_they_hold():
    with_outputs, _ = _ullava_plan()
    without = estimate(_without_outputs(with_outputs))
    planned = estimate(with_outputs)
    sam_bytes = with_outputs.outputs["seg"].frozen_params * 2  # bfloat16
    assert planned.component("output plugin frozen weights") == sam_bytes
    assert planned.peak_bytes > without.peak_bytes + sam_bytes
    assert planned.peak_phase == "output heads forward"  # SAM's attention on top of every saved activation
    assert planned.phases["output heads forward"] > planned.phases["loss backward"]


def _without_outputs(plan):
    import dataclasses

    return dataclasses.replace(plan, outputs={})


@pytest.mark.parametrize("name", ["loc", "seg"])
def test_planned_parameters_match_the_built_model(name):
    from anymal.testing import tiny_anymal

    model = tiny_anymal(plugins=("image",), outputs=(name,))
    config = model.config.outputs[name]
    hidden = model.llm.config.hidden_size
    head, frozen, _ = output_counts(name, config, hidden)
    model.set_trainable()
    trainable = [p for m in (model.heads[name], model.token_rows[name]) for p in m.parameters() if p.requires_grad]
    assert head == sum(p.numel() for p in trainable)
    built_frozen = model.output_frozen[name] if name in model.output_frozen else None  # noqa: SIM401 (no .get)
    assert frozen == (sum(p.numel() for p in built_frozen.parameters()) if built_frozen is not None else 0)


# (vision config, images): one with a global attention layer, one with more heads; the formula was fitted on others
CASES = [
    ({"image_size": 384, "patch_size": 16, "hidden_size": 192, "num_hidden_layers": 2, "num_attention_heads": 12,
      "global_attn_indexes": [1], "window_size": 6, "output_channels": 64, "mlp_dim": 768}, 3),
    ({"image_size": 512, "patch_size": 16, "hidden_size": 256, "num_hidden_layers": 3, "num_attention_heads": 8,
      "global_attn_indexes": [2], "window_size": 8, "output_channels": 64}, 2),
]  # fmt: skip


@pytest.mark.parametrize("vision,images", CASES)
def test_seg_workspace_matches_the_measured_peak_of_sams_image_encoder(vision, images):
    env = {**os.environ, **MALLOC_ENV, "PYTHONPATH": os.pathsep.join([str(ROOT / "plugins"), str(ROOT)])}
    proc = subprocess.run(
        [sys.executable, str(PROBE), json.dumps(vision), str(images)], capture_output=True, text=True, env=env,
        timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    # measured: 1.01x and 1.03x on this machine; the planner must never be far below (it would promise memory)
    assert 0.97 <= result["planned"] / result["measured"] <= 1.15, result


def test_sam_folder_is_planned_from_its_config_json(tmp_path):
    from anymal_seg import SegConfig, SegPlugin, tiny_sam_config

    folder = tmp_path / "sam"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "sam", **tiny_sam_config()}))
    from_folder = output_counts("seg", SegConfig(sam=str(folder), projection_dim=16), 64)
    from_dict = output_counts("seg", SegConfig(sam_config=tiny_sam_config(), projection_dim=16), 64)
    assert from_folder[:2] == from_dict[:2] and from_folder[1] > 0
    assert SegPlugin(SegConfig(sam=str(folder))).architecture_config().sam is None


def test_a_sam_folder_that_is_not_there_is_named(tmp_path):
    from anymal_seg import SegConfig

    missing = tmp_path / "sam-vit-huge"
    with pytest.raises(ConfigError, match=r"model\.outputs\.seg: .*sam-vit-huge.*sam_config"):
        output_counts("seg", SegConfig(sam=str(missing)), 64)


def test_init_from_a_checkpoint_with_output_plugins_plans_them(tmp_path, capsys):
    from anymal.testing import tiny_anymal

    tiny_anymal(plugins=("image",), outputs=("loc",)).save_pretrained(tmp_path / "ckpt")
    data = tmp_path / "d.jsonl"
    data.write_text('{"conversations": []}\n')
    config = tmp_path / "instruct.yaml"
    config.write_text(
        f"init_from: {tmp_path / 'ckpt'}\nstage: instruct\ndata: [{{kind: conversations, path: {data}}}]\n"
        "batch_size: 2\n"
    )
    assert main(["--config", str(config), "device=cpu", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["config"]["outputs"]["loc"]["head_params"] > 0
    assert any(n.startswith("output loc:") for n in out["notes"])
