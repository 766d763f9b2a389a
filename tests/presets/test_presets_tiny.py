"""Every preset at tiny size: built with its real structure, trained a few steps by ``python -m anymal.train`` from
the preset's own config, then reloaded from the checkpoint and asked to generate."""

import json
import os
import subprocess
import sys

import pytest
import torch
import yaml

from anymal import AnyMAL
from anymal.presets import build
from anymal_image.adapters import AdaptedImageProjector
from anymal_image.projectors import CrossAttention2D, QFormerProjector


def _photo(assets):
    return str(sorted((assets / "images").glob("COCO_val2014_*.jpg"))[0])


def test_tiny_presets_keep_the_structure_of_the_real_ones(assets):
    pink = build("pink", "tiny").build_model()
    projector = pink.projectors["image"]
    assert isinstance(projector, AdaptedImageProjector)
    assert projector.vit is not None and len(projector.llm_adapters) == 2  # one per decoder layer of the tiny LLM
    assert pink.plugins["image"].num_tokens == 16  # every patch of the tiny tower, CLS dropped
    qwen = build("qwen_vl", "tiny").build_model()
    assert isinstance(qwen.projectors["image"], CrossAttention2D)
    assert type(qwen.llm).__name__ == "Qwen2ForCausalLM"
    ying = build("ying_vlm", "tiny").build_model()
    assert isinstance(ying.projectors["image"], QFormerProjector)
    assert type(ying.encoders["image"].model).__name__ == "Blip2VisionModel"
    ullava = build("ullava", "tiny").model_config()
    assert ullava.modalities["video"].aggregation == "mean_pool" and ullava.modalities["video"].num_frames == 8


def test_qwen_vl_prompts_number_pictures_in_chatml(assets):
    model = build("qwen_vl", "tiny").build_model()
    rendered = model.tokenizer.apply_chat_template(
        [
            {"role": "user", "content": "<image>\n<image>\nWhat differs?"},
            {"role": "assistant", "content": "The colour."},
            {"role": "user", "content": "<image>\nAnd here?"},
        ],
        tokenize=False,
        add_generation_prompt=True,
    )
    assert rendered == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nPicture 1: <img><image></img>\nPicture 2: <img><image></img>\nWhat differs?<|im_end|>\n"
        "<|im_start|>assistant\nThe colour.<|im_end|>\n"
        "<|im_start|>user\nPicture 3: <img><image></img>\nAnd here?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    out = model.generate(prompt="<image>\nWhat is this?", image=_photo(assets), chat=True, max_new_tokens=3)
    assert len(out.sequences[0]) == 3


def test_pink_prompt_puts_the_image_in_the_system_slot():
    model = build("pink", "tiny").build_model()
    rendered = model.tokenizer.apply_chat_template(
        [
            {"role": "user", "content": "<image>\nWhere is the dog?"},
            {"role": "assistant", "content": "[0.1,0.2,0.3,0.4]"},
        ],
        tokenize=False,
    )
    assert rendered == "<s>[INST] <<SYS>>\nImage: <image>\n<</SYS>>\n\nWhere is the dog? [/INST] [0.1,0.2,0.3,0.4] </s>"


def _run_train(preset, tmp_path, data, *overrides):
    config = tmp_path / "preset.yaml"
    config.write_text(preset.to_yaml())
    command = [sys.executable, "-m", "anymal.train", "--config", str(config), f"output_dir={tmp_path / 'run'}"]
    command += [f"data={json.dumps(data)}", *overrides]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows if "loss" in r]
    assert len(losses) == preset.train["max_steps"] and all(loss == loss for loss in losses)  # every step, no NaN
    return tmp_path / "run" / "final"


@pytest.mark.integration  # one training subprocess per preset: make test-integration
@pytest.mark.parametrize("name", ["anymal", "pink", "qwen_vl", "ullava"])
def test_tiny_preset_trains_through_the_cli_and_generates(name, tmp_path, assets, photo_pairs, video_pairs):
    preset = build(name, "tiny")
    data = [{"kind": "pairs", "path": str(photo_pairs), "modality": "image", "media_key": "image"}]
    if name == "ullava":
        data.append({"kind": "pairs", "path": str(video_pairs), "modality": "video", "media_key": "video"})
    final = _run_train(preset, tmp_path, data, "stage=align", f"train_modalities={json.dumps(preset_modalities(name))}")
    stored = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert stored["model"]["modalities"]["image"].get("projector_type", "perceiver") == preset.model["modalities"][
        "image"
    ].get("projector_type", "perceiver")
    model = AnyMAL.from_pretrained(final)
    fresh = preset.build_model()  # the same seed: the projector as initialised
    trained, initial = model.projectors["image"].state_dict(), fresh.projectors["image"].state_dict()
    assert trained.keys() == initial.keys() and any(not torch.equal(trained[k], initial[k]) for k in trained)
    if name == "pink":  # the adapters start as the identity (W_u = 0) and moved in training, ViT and LLM side
        for part in ("vit.adapters", "llm_adapters"):
            ups = [v for k, v in trained.items() if k.startswith(part) and k.endswith("up.weight")]
            assert ups and all(up.abs().sum() > 0 for up in ups), part
    out = model.generate(prompt="<image>\nDescribe it.", image=_photo(assets), max_new_tokens=4)
    assert len(out.sequences[0]) == 4
    if name == "ullava":
        clip = str(sorted((assets / "video").glob("*.mp4"))[0])
        assert len(model.generate(prompt="<video>\nWhat happens?", video=clip, max_new_tokens=2).sequences[0]) == 2


def preset_modalities(name):
    return {"anymal": ["image"], "pink": ["image"], "qwen_vl": ["image"], "ullava": ["image", "video"]}[name]


@pytest.mark.parametrize("name", ["pink", "qwen_vl"])
def test_grounding_presets_score_rec_in_their_own_box_grammar(name, assets):
    """REC rows on the real COCO cats photo (its annotated boxes), scored with the preset's box grammar through
    anymal_box (Pink's ``[x0,y0,x1,y1]`` fractions or Qwen-VL's ``<box>`` on the 0-1000 grid)."""
    from anymal.eval import evaluate

    photo = str(assets / "images" / "coco_000000039769.png")
    annotations = json.loads((assets / "eval" / "coco_000000039769_annotations.txt").read_text())
    boxes = {}  # COCO [x, y, w, h] to [x0, y0, x1, y1]; the leftmost cat (17) and remote (75)
    for a in sorted(annotations, key=lambda a: -a["bbox"][0]):
        x, y, w, h = a["bbox"]
        boxes[a["category_id"]] = [x, y, x + w, y + h]
    rows = [
        {"id": "cat", "media": {"image": photo}, "expression": "the cat on the left", "box": boxes[17]},
        {"id": "remote", "media": {"image": photo}, "expression": "the remote on the left", "box": boxes[75]},
    ]
    preset = build(name, "tiny")
    assert preset.eval_settings["rec"]["box_format"] == {"pink": "pink", "qwen_vl": "qwen"}[name]
    model = preset.build_model()
    result = evaluate(model, "rec", rows, max_new_tokens=4, progress=False, **preset.eval_settings["rec"])
    metrics = result["metrics"]
    assert result["n_items"] == 2 and metrics["convention"] == preset.eval_settings["rec"]["box_format"]
    assert 0.0 <= metrics["rec_accuracy@0.5"] <= 1.0 and 0 <= metrics["format_errors"] <= 2
