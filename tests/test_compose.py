"""Per-plugin checkpoints compose: plugins aligned in separate runs load into one model, can be swapped or dropped,
and checkpoints written before the per-plugin layout still load."""

import json
import shutil
from pathlib import Path

import pytest
import torch

from anymal import AnyMAL, CheckpointError, ConfigError, InputError
from anymal.pretrained import compose_pretrained
from anymal.testing import tiny_anymal, tiny_llm_folder

FIXTURES = Path(__file__).resolve().parent / "fixtures"
V1_CHECKPOINT = FIXTURES / "checkpoint_v1_image_imu"


def _perturbed(model, seed):
    """Stand-in for training: projectors moved away from their init, reproducibly."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.projectors.parameters():
            p.add_(torch.randn(p.shape, generator=generator) * 0.1)
    return model


def _same_projector(a, b, name):
    sa, sb = a.projectors[name].state_dict(), b.projectors[name].state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.fixture(scope="module")
def aligned(tmp_path_factory):
    """Two stage-1 checkpoints on one base LLM: image alone and IMU alone (as separate align runs write them)."""
    folder = tmp_path_factory.mktemp("aligned")
    image = _perturbed(tiny_anymal(("image",)), 1)
    imu = _perturbed(tiny_anymal(("imu",)), 2)
    image.save_pretrained(folder / "image")
    imu.save_pretrained(folder / "imu")
    return {"image": (image, folder / "image"), "imu": (imu, folder / "imu")}


def test_load_plugin_composes_separately_aligned_plugins(aligned):
    image, image_path = aligned["image"]
    imu, imu_path = aligned["imu"]
    model = AnyMAL.from_pretrained(image_path).load_plugin("imu", imu_path)
    assert model.modality_names == ["image", "imu"]
    assert _same_projector(model, image, "image") and _same_projector(model, imu, "imu")
    raw = imu.plugins["imu"].example_inputs()[0]
    alone = imu.generate("<imu>", imu=raw, max_new_tokens=5, do_sample=False)
    composed = model.generate("<imu>", imu=raw, max_new_tokens=5, do_sample=False)
    assert torch.equal(alone.sequences, composed.sequences)  # the composed model reads IMU as the aligned one did


def test_init_from_mapping_and_list_compose_the_same_model(aligned):
    paths = {name: path for name, (_, path) in aligned.items()}
    by_mapping = compose_pretrained(AnyMAL, paths)
    by_list = compose_pretrained(AnyMAL, [paths["image"], paths["imu"]])
    for model in (by_mapping, by_list):
        assert model.modality_names == ["image", "imu"]
        for name, (source, _) in aligned.items():
            assert _same_projector(model, source, name)
    with pytest.raises(ConfigError, match="'image' is in both"):
        compose_pretrained(AnyMAL, [paths["image"], paths["image"]])


def test_a_composed_model_saves_one_folder_per_plugin_and_reloads_bit_exact(aligned, tmp_path):
    paths = {name: path for name, (_, path) in aligned.items()}
    model = compose_pretrained(AnyMAL, paths)
    model.save_pretrained(tmp_path / "both")
    assert sorted(p.name for p in (tmp_path / "both" / "plugins").iterdir()) == ["image", "imu"]
    again = AnyMAL.from_pretrained(tmp_path / "both")
    for key, value in model.trainable_state_dict().items():
        assert torch.equal(value, again.trainable_state_dict()[key]), key
    # one plugin's own folder is enough to load it elsewhere
    alone = AnyMAL.from_pretrained(paths["image"]).load_plugin("motion", tmp_path / "both" / "plugins" / "imu")
    moved, saved = alone.projectors["motion"].state_dict(), again.projectors["imu"].state_dict()
    assert moved.keys() == saved.keys() and all(torch.equal(moved[k], saved[k]) for k in moved)


def test_plugins_are_added_swapped_and_dropped(aligned, tmp_path):
    image, image_path = aligned["image"]
    _, imu_path = aligned["imu"]
    model = AnyMAL.from_pretrained(image_path)
    with pytest.raises(ConfigError, match="already has a 'image' plugin; pass replace=True"):
        model.load_plugin("image", imu_path, source_name="imu")
    fresh = tiny_anymal(("image",)).plugins["image"].config
    model.add_plugin("image", fresh, replace=True)  # swapped for an untrained projector
    assert not _same_projector(model, image, "image")
    model.load_plugin("image", image_path, replace=True)  # and back
    assert _same_projector(model, image, "image")
    model.load_plugin("imu", imu_path).remove_plugin("image")
    assert model.modality_names == ["imu"] and list(model.config.modalities) == ["imu"]
    with pytest.raises(InputError, match="no 'image' modality"):
        model.generate("<image>", image=image.plugins["image"].example_inputs()[0], max_new_tokens=2)
    model.save_pretrained(tmp_path / "imu_only")
    assert [p.name for p in (tmp_path / "imu_only" / "plugins").iterdir()] == ["imu"]
    assert AnyMAL.from_pretrained(tmp_path / "imu_only").modality_names == ["imu"]


def test_a_plugin_from_another_base_llm_is_refused_naming_both_fingerprints(aligned, tmp_path):
    _, imu_path = aligned["imu"]
    other_llm = tiny_llm_folder(seed=5)
    other = tiny_anymal(("image",), llm=other_llm)
    with pytest.raises(CheckpointError) as info:
        other.load_plugin("imu", imu_path)
    message = str(info.value)
    stored = json.loads((imu_path / "plugins" / "imu" / "fingerprints.json").read_text())["llm"]
    assert "base LLM mismatch" in message and stored["fingerprint"] in message and str(other_llm) in message
    assert "imu" not in other.plugins  # refused before anything was added


def test_an_unknown_plugin_or_listed_but_missing_folder_is_named(aligned, tmp_path):
    _, image_path = aligned["image"]
    with pytest.raises(CheckpointError, match=r"has no plugin 'audio' \(it has: image\)"):
        AnyMAL.from_pretrained(image_path).load_plugin("audio", image_path)
    broken = tmp_path / "broken"
    shutil.copytree(image_path, broken)
    shutil.rmtree(broken / "plugins" / "image")
    with pytest.raises(CheckpointError, match=r"plugins/image: missing; .*config\.json lists plugin 'image'"):
        AnyMAL.from_pretrained(broken)


def test_a_checkpoint_in_the_single_file_layout_still_loads_and_generates_the_same(tmp_path, stories260k_path):
    """The fixture was written by anymal before per-plugin folders (format version 1); its greedy output was
    recorded then. It loads, generates the same tokens, and re-saves in today's layout bit-exact."""
    expected = json.loads((FIXTURES / "checkpoint_v1_image_imu.expected.json").read_text())
    model = AnyMAL.from_pretrained(V1_CHECKPOINT, llm_path=str(stories260k_path))
    assert model.modality_names == ["image", "imu"]
    image = model.plugins["image"].example_inputs()[0]
    imu = model.plugins["imu"].example_inputs()[0]
    out = model.generate(
        expected["prompt"], image=image, imu=imu, max_new_tokens=expected["max_new_tokens"], do_sample=False
    )
    assert out.sequences.tolist() == expected["sequences"]
    model.save_pretrained(tmp_path / "v2")
    assert json.loads((tmp_path / "v2" / "config.json").read_text())["format_version"] == 2
    again = AnyMAL.from_pretrained(tmp_path / "v2")
    for key, value in model.trainable_state_dict().items():
        assert torch.equal(value, again.trainable_state_dict()[key]), key


def test_trainable_policy_and_param_groups_live_on_the_model():
    model = tiny_anymal(("image", "imu"))
    model.set_trainable(projectors=["imu"])
    assert not any(p.requires_grad for p in model.projectors["image"].parameters())
    assert all(p.requires_grad for p in model.projectors["imu"].parameters())
    assert not any(p.requires_grad for p in model.encoders.parameters())
    assert not any(p.requires_grad for p in model.llm.parameters())
    groups = model.param_groups(1e-3, {"imu": 5e-3})
    assert [(g["name"], g["lr"]) for g in groups] == [("imu", 5e-3)]
    with pytest.raises(ConfigError, match=r"module_lr: unknown modules \['audio'\]"):
        model.param_groups(1e-3, {"audio": 1.0})
    with pytest.raises(ConfigError, match=r"unknown \['depth'\]"):
        model.set_trainable(projectors=["depth"])

    from anymal.lora import add_lora

    model.llm = add_lora(model.llm, rank=2, target_modules=["q_proj", "v_proj"])
    model.set_trainable()  # every projector and the adapter
    names = [g["name"] for g in model.param_groups(1e-3, {"lora": 2e-4})]
    assert names == ["image", "imu", "lora"]
    lora = model.param_groups(1e-3, {"lora": 2e-4})[-1]
    assert lora["lr"] == 2e-4 and all(p.requires_grad for p in lora["params"])
    assert sum(p.numel() for p in lora["params"]) == sum(
        p.numel() for n, p in model.llm.named_parameters() if "lora_" in n
    )
    model.set_trainable(lora=False)
    assert [g["name"] for g in model.param_groups(1e-3)] == ["image", "imu"]
