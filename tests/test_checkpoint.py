import json
import os

import pytest
import torch

from anymal import AnyMAL, CheckpointError
from anymal.testing import tiny_anymal, tiny_llm_folder


@pytest.fixture(scope="module")
def trained(llama2_tokenizer_path):
    model = tiny_anymal(("image",), tokenizer=llama2_tokenizer_path, apply_chat_template=True)
    with torch.no_grad():  # stand-in for training: move the projector away from its init
        for p in model.projectors.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model


def test_round_trip_is_bit_exact_and_stores_only_trainable_weights(trained, tmp_path):
    image = trained.plugins["image"].example_inputs()[0]
    path = tmp_path / "ckpt"
    trained.save_pretrained(path)
    names = set(os.listdir(path))
    assert {"config.json", "plugins", "fingerprints.json", "tokenizer_config.json"} <= names
    assert "model.safetensors" not in names  # nothing trainable outside the plugins
    plugin_files = sorted(os.listdir(path / "plugins" / "image"))
    assert plugin_files == ["config.json", "fingerprints.json", "projector.safetensors"]
    from safetensors.torch import load_file

    stored = load_file(path / "plugins" / "image" / "projector.safetensors")
    assert stored.keys() == trained.projectors["image"].state_dict().keys()
    again = AnyMAL.from_pretrained(path)
    for key, value in trained.trainable_state_dict().items():
        assert torch.equal(value, again.trainable_state_dict()[key]), key
    assert again.tokenizer.chat_template == trained.tokenizer.chat_template
    a = trained.generate("What is <image>?", image=image, max_new_tokens=6)
    b = again.generate("What is <image>?", image=image, max_new_tokens=6)
    assert torch.equal(a.sequences, b.sequences)
    fingerprints = json.loads((path / "fingerprints.json").read_text())
    assert fingerprints["llm"]["name_or_path"] == trained.config.llm.name_or_path


def test_projectors_trained_on_4bit_load_onto_the_full_precision_llm(tmp_path, llama2_tokenizer_path):
    model = tiny_anymal(("image",), tokenizer=llama2_tokenizer_path, quantization="4bit")
    assert type(model.llm.model.layers[0].mlp.up_proj).__name__ == "Linear4bit"
    model.save_pretrained(tmp_path / "q")
    full = AnyMAL.from_pretrained(tmp_path / "q", quantization="none")
    assert isinstance(full.llm.model.layers[0].mlp.up_proj, torch.nn.Linear)
    for key, value in model.trainable_state_dict().items():
        assert torch.equal(value, full.trainable_state_dict()[key])
    eight = AnyMAL.from_pretrained(tmp_path / "q", quantization="8bit")
    assert type(eight.llm.model.layers[0].mlp.up_proj).__name__ == "Linear8bitLt"


def test_a_different_base_llm_is_refused_naming_both(trained, tmp_path, llama2_tokenizer_path):
    trained.save_pretrained(tmp_path / "ckpt")
    other = tiny_llm_folder(llama2_tokenizer_path, seed=1)
    with pytest.raises(CheckpointError) as info:
        AnyMAL.from_pretrained(tmp_path / "ckpt", llm_path=str(other))
    message = str(info.value)
    assert trained.config.llm.name_or_path in message and str(other) in message
    AnyMAL.from_pretrained(tmp_path / "ckpt", llm_path=str(other), check_fingerprints=False)


def test_a_different_encoder_is_refused(trained, tmp_path):
    trained.save_pretrained(tmp_path / "ckpt")
    plugin_config = tmp_path / "ckpt" / "plugins" / "image" / "config.json"
    config = json.loads(plugin_config.read_text())
    config["init_seed"] = 7
    plugin_config.write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="encoder mismatch for modality 'image'"):
        AnyMAL.from_pretrained(tmp_path / "ckpt")


def test_corrupt_or_missing_files_are_named(trained, tmp_path):
    path = tmp_path / "ckpt"
    trained.save_pretrained(path)
    (path / "plugins" / "image" / "projector.safetensors").write_bytes(b"\x00garbage")
    with pytest.raises(CheckpointError, match=r"image/projector\.safetensors.*corrupt"):
        AnyMAL.from_pretrained(path)
    (path / "fingerprints.json").write_text("[1, 2]")
    with pytest.raises(CheckpointError, match=r"fingerprints\.json: expected a JSON dict, got list"):
        AnyMAL.from_pretrained(path)
    (path / "fingerprints.json").write_bytes(b"\xff\xfe{}")
    with pytest.raises(CheckpointError, match=r"fingerprints\.json: not UTF-8"):
        AnyMAL.from_pretrained(path)
    (path / "config.json").unlink()
    with pytest.raises(CheckpointError, match=r"config\.json: missing"):
        AnyMAL.from_pretrained(path)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        AnyMAL.from_pretrained(tmp_path / "nothing")


def test_save_is_atomic_a_crash_keeps_the_previous_checkpoint(trained, tmp_path, monkeypatch):
    path = tmp_path / "ckpt"
    trained.save_pretrained(path)
    before = {p.relative_to(path): p.read_bytes() for p in path.rglob("*") if p.is_file()}

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("power cut while writing the tokenizer")

    monkeypatch.setattr(trained.tokenizer, "save_pretrained", crash)
    with pytest.raises(KeyboardInterrupt):
        trained.save_pretrained(path)
    assert {p.relative_to(path): p.read_bytes() for p in path.rglob("*") if p.is_file()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]  # no temp folder left behind


def test_nan_projector_weights_are_refused_naming_the_tensor(trained, tmp_path):
    from safetensors.torch import load_file, save_file

    path = tmp_path / "ckpt"
    trained.save_pretrained(path)
    weights_path = path / "plugins" / "image" / "projector.safetensors"
    weights = load_file(weights_path)
    key = sorted(weights)[0]
    weights[key] = torch.full_like(weights[key], float("nan"))
    save_file(weights, str(weights_path))
    with pytest.raises(CheckpointError, match=rf"{key} holds \d+ NaN/inf values"):
        AnyMAL.from_pretrained(path)


def test_a_replace_killed_between_its_renames_is_recovered_on_load(trained, tmp_path):
    """A SIGKILL after the old checkpoint was moved aside and before the new one moved in leaves only the old one,
    under a hidden name; the next load (or save) puts it back."""
    path = tmp_path / "ckpt"
    trained.save_pretrained(path)
    os.replace(path, tmp_path / ".ckpt.old-deadbeef")
    (tmp_path / ".ckpt.tmp-cafef00d").mkdir()  # the unfinished new version
    again = AnyMAL.from_pretrained(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]
    for key, value in trained.trainable_state_dict().items():
        assert torch.equal(value, again.trainable_state_dict()[key]), key
