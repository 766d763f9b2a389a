"""``anymal.testing``: the shared-asset locator (``ANYMAL_ASSETS``) and the dependency-free ``toy`` plugin."""

from __future__ import annotations

import pytest
import torch

import anymal
import anymal.testing
from anymal import InputError
from anymal.config import AnyMALConfig
from anymal.testing import (
    DEFAULT_ASSETS,
    ToyPlugin,
    ToyPluginConfig,
    asset,
    assets_dir,
    check_plugin_contract,
    require_asset,
    write_toy_input,
)


@pytest.fixture
def one_folder_assets(tmp_path, monkeypatch):
    """A private assets folder holding only the real ``images`` folder (a symlink), selected by ``ANYMAL_ASSETS``."""
    images = require_asset("images")
    (tmp_path / "images").symlink_to(images, target_is_directory=True)
    monkeypatch.setenv("ANYMAL_ASSETS", str(tmp_path))
    return tmp_path


def test_the_locator_follows_anymal_assets_when_called(one_folder_assets, monkeypatch):
    assert assets_dir() == one_folder_assets
    assert asset("images/grace_hopper.jpg") == one_folder_assets / "images" / "grace_hopper.jpg"
    photos = require_asset("images", "COCO_val2014_*.jpg", min_count=2)
    assert photos and all(p.parent == one_folder_assets / "images" for p in photos)
    with pytest.raises(pytest.skip.Exception) as info:
        require_asset("audio/jfk.flac")  # not in the private folder, though present in the default one
    message = str(info.value)
    assert str(one_folder_assets / "audio" / "jfk.flac") in message and "ANYMAL_ASSETS" in message
    with pytest.raises(pytest.skip.Exception, match="holds 0 match"):
        require_asset("images", "*.flac")
    stories = anymal.testing.STORIES260K  # the older module-level names follow ANYMAL_ASSETS too
    assert stories == one_folder_assets / "models" / "stories260K_hf"
    monkeypatch.delenv("ANYMAL_ASSETS")
    assert assets_dir() == DEFAULT_ASSETS


def test_plugins_find_their_example_files_through_the_locator(one_folder_assets):
    from anymal_image import ImagePlugin
    from anymal_video.plugin import example_video

    first, second = ImagePlugin(ImagePlugin.tiny_config()).example_inputs()
    assert first.startswith(str(one_folder_assets / "images")) and isinstance(second, bytes)
    assert example_video() == one_folder_assets / "video" / "nasa_13013.mp4"  # absent here: the plugin falls back


def test_toy_plugin_passes_the_contract_and_is_registered():
    check_plugin_contract("toy")
    assert anymal.get_plugin("toy") is ToyPlugin and "toy" in anymal.list_plugins()
    config = AnyMALConfig.from_dict({"modalities": {"signal": {"plugin_type": "toy", "input_dim": 3}}})
    assert config.modalities["signal"] == ToyPluginConfig(input_dim=3)


def test_toy_inputs_from_files_bytes_and_tensors_agree(tmp_path):
    plugin = ToyPlugin(ToyPluginConfig(input_dim=3))
    vector = torch.tensor([0.5, -1.25, 3.0])
    path = write_toy_input(tmp_path / "x.txt", vector)
    for raw in (vector, tuple(vector.tolist()), str(path), path, path.read_bytes(), vector.numpy()):
        assert torch.equal(plugin.preprocess(raw), vector), type(raw)
    with pytest.raises(InputError, match=r"expected 3 numbers, got shape \(4,\)"):
        plugin.preprocess(torch.zeros(4))
    with pytest.raises(InputError, match=r"x\.txt: expected 3 numbers"):
        plugin.preprocess(str(write_toy_input(tmp_path / "x.txt", [1.0, 2.0])))


def test_toy_model_tokens_depend_on_the_input_and_the_encoder_is_seeded():
    plugin = ToyPlugin(ToyPluginConfig(num_tokens=2))
    encoder, again = plugin.build_encoder(), plugin.build_encoder()
    assert torch.equal(encoder.weight, again.weight)
    other = ToyPlugin(ToyPluginConfig(init_seed=1)).build_encoder()
    assert not torch.equal(encoder.weight, other.weight)
    projector = plugin.build_projector(8)
    a, b = plugin.example_inputs()
    tokens = plugin.project(
        projector, plugin.encode(encoder, plugin.collate([plugin.preprocess(a), plugin.preprocess(b)]))
    )
    assert tokens.shape == (2, 2, 8) and not torch.allclose(tokens[0], tokens[1])
    expected = projector.linear(encoder(plugin.preprocess(a))).view(2, 8)
    assert torch.allclose(tokens[0], expected)
