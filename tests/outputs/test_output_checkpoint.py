"""Output plugins in checkpoints (format 3: plugins/<name>/head.safetensors, tokens.safetensors) and in generate."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from anymal import AnyMAL, CheckpointError
from anymal.testing import tiny_anymal
from anymal_box import Boxes, PixelFrame

PHOTO = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def loc_model():
    model = tiny_anymal(("image",))
    model.add_output("loc", {"projection_dim": 16, "decoder_dims": [8]})
    with torch.no_grad():  # stand-in for training: move the new weights away from their init
        for p in [*model.heads.parameters(), *model.token_rows.parameters(), *model.projectors.parameters()]:
            p.add_(torch.randn_like(p) * 0.1)
    return model


def _forced_loc(model, **kwargs):
    """Generation that can only emit [LOC] (every base-vocabulary id suppressed): 2 triggers per row."""
    vocab = model.trigger_ids["loc"][0]
    return model.generate(
        ["<image> where?", "no image here"], image=[PHOTO, None], max_new_tokens=2, suppress_tokens=list(range(vocab))
    )


def test_generate_returns_one_box_per_trigger_in_the_original_pixels(loc_model):
    out = _forced_loc(loc_model)
    assert out.texts == ["[LOC][LOC]", "[LOC][LOC]"]
    with_image, without = out.boxes
    assert isinstance(with_image, Boxes) and len(with_image) == 2 and with_image.frame == PixelFrame(64, 48)
    assert bool(with_image.in_frame().all())  # clipped to the photo
    assert len(without) == 2 and without.frame.__class__.__name__ == "NormalizedFrame"
    assert out.outputs["boxes"] is out.boxes
    with pytest.raises(AttributeError, match="its outputs: boxes"):
        _ = out.masks


def test_rows_without_a_trigger_get_empty_boxes(loc_model):
    out = loc_model.generate("<image> hi", image=PHOTO, max_new_tokens=3, suppress_tokens=loc_model.trigger_ids["loc"])
    assert len(out.boxes) == 1 and len(out.boxes[0]) == 0


def test_boxes_follow_the_tap_position_of_the_answer(loc_model):
    """The decoded box is the head applied to the hidden state before each [LOC] in prompt + answer."""
    out = _forced_loc(loc_model)
    again = _forced_loc(loc_model)
    assert out.boxes[0] == again.boxes[0]
    assert not np.allclose(out.boxes[0].data[0], out.boxes[0].data[1])  # different contexts, different boxes


def test_round_trip_is_bit_exact_with_its_own_files(loc_model, tmp_path):
    loc_model.save_pretrained(tmp_path / "ckpt")
    top = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert top["outputs"] == ["loc"] and top["modalities"] == ["image"]
    assert top["format_version"] == 3  # an anymal from before output plugins refuses it (it reads 1 and 2)
    files = sorted(p.name for p in (tmp_path / "ckpt" / "plugins" / "loc").iterdir())
    assert files == ["config.json", "fingerprints.json", "head.safetensors", "tokens.safetensors"]
    again = AnyMAL.from_pretrained(tmp_path / "ckpt")
    a, b = loc_model.trainable_state_dict(), again.trainable_state_dict()
    assert a.keys() == b.keys() and any(k.startswith("token_rows.loc") for k in a)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert _forced_loc(again).boxes[0] == _forced_loc(loc_model).boxes[0]


def test_a_damaged_or_missing_output_folder_is_refused(loc_model, tmp_path):
    loc_model.save_pretrained(tmp_path / "ckpt")
    (tmp_path / "ckpt" / "plugins" / "loc" / "tokens.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(CheckpointError, match=r"tokens\.safetensors: corrupt"):
        AnyMAL.from_pretrained(tmp_path / "ckpt")
    loc_model.save_pretrained(tmp_path / "other")
    config = json.loads((tmp_path / "other" / "config.json").read_text())
    (tmp_path / "other" / "config.json").write_text(json.dumps({**config, "outputs": ["seg"]}))
    with pytest.raises(CheckpointError, match="lists output 'seg'"):
        AnyMAL.from_pretrained(tmp_path / "other")


def test_composing_checkpoints_keeps_their_output_plugins(loc_model, tmp_path):
    from anymal.pretrained import compose_pretrained

    loc_model.save_pretrained(tmp_path / "ckpt")
    composed = compose_pretrained(AnyMAL, [str(tmp_path / "ckpt")])
    assert list(composed.output_plugins) == ["loc"]
    for key, value in loc_model.trainable_state_dict().items():
        assert torch.equal(value, composed.trainable_state_dict()[key]), key


def test_a_version_2_checkpoint_with_outputs_still_loads(loc_model, tmp_path):
    """Checkpoints with outputs were written as version 2 before version 3 existed; they keep loading."""
    loc_model.save_pretrained(tmp_path / "ckpt")
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    (tmp_path / "ckpt" / "config.json").write_text(json.dumps({**config, "format_version": 2}))
    again = AnyMAL.from_pretrained(tmp_path / "ckpt")
    assert list(again.output_plugins) == ["loc"]
    assert _forced_loc(again).boxes[0] == _forced_loc(loc_model).boxes[0]
