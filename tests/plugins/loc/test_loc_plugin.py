"""The ``loc`` output plugin on its own: the contract kit, label checks and the round trip through the geometry."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from anymal.errors import ConfigError, DataError
from anymal.output_plugin import RowInputs, TriggerStates
from anymal.testing import check_output_plugin_contract
from anymal_box import NORMALIZED, PixelFrame
from anymal_image import ImagePlugin
from anymal_loc import LocConfig, LocPlugin


@pytest.fixture(scope="module")
def image_plugin() -> ImagePlugin:
    return ImagePlugin(ImagePlugin.tiny_config())


def _row(image_plugin, size=(64, 48)) -> RowInputs:
    photo = np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    return RowInputs({"image": [photo]}, {"image": image_plugin}, "data.jsonl:7")


def test_loc_passes_the_output_contract_kit():
    check_output_plugin_contract("loc")


def test_pixel_label_maps_to_the_encoder_input_and_decodes_back(image_plugin):
    plugin = LocPlugin(LocPlugin.tiny_config())
    label = [20.0, 8.0, 40.0, 30.0]  # inside the 48 x 48 centre crop of a 64 x 48 photo
    prepared = plugin.prepare(_row(image_plugin), [label])
    # tiny image plugin: shortest side 48 -> 32 (64 -> 42), centre crop 32 at x = round(10 / 2) = 5
    scale = 32 / 48
    expected = [(20 * 42 / 64 - 5) / 32, 8 * scale / 32, (40 * 42 / 64 - 5) / 32, 30 * scale / 32]
    assert prepared["boxes"][0].tolist() == pytest.approx(expected, abs=1e-6)
    batch = plugin.collate([prepared])
    states = TriggerStates(torch.zeros(1, 32), torch.zeros(1, dtype=torch.long), torch.zeros(1, dtype=torch.long), [1])
    (boxes,) = plugin.decode(batch["boxes"], states, batch)
    assert boxes.frame == PixelFrame(64, 48)
    assert boxes.data[0].tolist() == pytest.approx(label, abs=1e-4)


def test_normalized_labels_are_relative_to_the_original_photo(image_plugin):
    pixels = LocPlugin(LocPlugin.tiny_config()).prepare(_row(image_plugin), [[16.0, 12.0, 48.0, 36.0]])
    config = LocPlugin.tiny_config()
    config.label_frame = "normalized"
    normalized = LocPlugin(config).prepare(_row(image_plugin), [[0.25, 0.25, 0.75, 0.75]])
    assert torch.allclose(pixels["boxes"], normalized["boxes"])


def test_unlabelled_triggers_are_kept_and_masked(image_plugin):
    prepared = LocPlugin(LocPlugin.tiny_config()).prepare(_row(image_plugin), [None, [0, 0, 10, 10]])
    assert prepared["has"].tolist() == [False, True] and prepared["boxes"].shape == (2, 4)


@pytest.mark.parametrize(
    ("label", "message"),
    [
        ([1, 2, 3], "expected \\[x0, y0, x1, y1\\]"),
        ("0 0 1 1", "expected \\[x0, y0, x1, y1\\]"),
        ([10, 10, 5, 5], "expected x0 < x1 and y0 < y1"),
        ([0, float("nan"), 1, 1], "NaN"),
        ([0, 0, 65.5, 10], "outside the image"),
        ([0, "a", 1, 1], "4 numbers"),
    ],
)
def test_bad_labels_name_the_row_and_the_field(image_plugin, label, message):
    with pytest.raises(DataError, match=message) as info:
        LocPlugin(LocPlugin.tiny_config()).prepare(_row(image_plugin), [label])
    assert "data.jsonl:7: targets.loc[0]" in str(info.value)


def test_a_label_without_an_image_is_a_data_error(image_plugin):
    with pytest.raises(DataError, match="needs the row's 'image' input"):
        LocPlugin(LocPlugin.tiny_config()).prepare(RowInputs({}, {"image": image_plugin}, "x:1"), [[0, 0, 1, 1]])


def test_rows_without_an_image_decode_to_normalised_boxes():
    plugin = LocPlugin(LocPlugin.tiny_config())
    batch = plugin.collate([plugin.prepare(RowInputs({}, {}, "prompt"), None)])
    states = TriggerStates(torch.zeros(1, 32), torch.zeros(1, dtype=torch.long), torch.zeros(1, dtype=torch.long), [1])
    (boxes,) = plugin.decode(torch.tensor([[0.1, 0.2, 0.3, 0.4]]), states, batch)
    assert boxes.frame == NORMALIZED and np.allclose(boxes.data, [[0.1, 0.2, 0.3, 0.4]])


def test_modality_without_geometry_is_a_config_error():
    config = LocPlugin.tiny_config()
    config.modality = "toy"
    from anymal.testing import ToyPlugin

    row = RowInputs({"toy": [torch.zeros(8)]}, {"toy": ToyPlugin()}, "x:1")
    with pytest.raises(ConfigError, match="has no geometry"):
        LocPlugin(config).prepare(row, [[0, 0, 1, 1]])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"tap": "after"}, "tap='after'"),
        ({"tokens": ["[LOC]", "[LOC]"]}, "twice"),
        ({"tokens": [" [LOC]"]}, "not a usable token"),
        ({"decoder_dims": [0]}, "widths must be >= 1"),
        ({"l1_weight": -1.0}, "l1_weight"),
        ({"label_frame": "grid"}, "label_frame"),
    ],
)
def test_bad_configs_name_the_field(overrides, message):
    with pytest.raises(ConfigError, match=message):
        LocConfig(**overrides)


class _MisplannedLoc(LocPlugin):
    """A plugin whose architecture_config() names a smaller head than the one it trains."""

    name = "misplanned_loc"

    def architecture_config(self) -> LocConfig:
        config = LocConfig(**{**self.config.__dict__})
        config.projection_dim = self.config.projection_dim // 2
        return config


class _ShrinkingWorkspaceLoc(LocPlugin):
    name = "shrinking_loc"

    def planned_workspace_bytes(self, rows: int, dtype_bytes: int) -> int:
        return 1000 // rows


@pytest.mark.parametrize(
    ("plugin_class", "message"),
    [(_MisplannedLoc, "memory planner would miscount"), (_ShrinkingWorkspaceLoc, "do not shrink with more rows")],
)
def test_contract_kit_catches_a_plugin_the_planner_would_miscount(plugin_class, message):
    with pytest.raises(AssertionError, match=message):
        check_output_plugin_contract(plugin_class)
