"""Decoded outputs of output plugins (boxes) in the server's responses: the message's ``boxes``, or the last
stream chunk's delta, as ``[[x1, y1, x2, y2], ...]`` in the image's pixels."""

from __future__ import annotations

import pytest

openai = pytest.importorskip("openai")
pytest.importorskip("fastapi")

from serve_helpers import Scripted, running  # noqa: E402

from anymal_box import Boxes, PixelFrame  # noqa: E402
from anymal_serve import create_app  # noqa: E402


def test_boxes_reach_the_message_and_the_stream(saved_model):
    boxes = Boxes([[120, 60, 420, 560], [10.5, 20, 30, 40]], PixelFrame(512, 600))
    model = Scripted(saved_model[0], "Here: [LOC] and [LOC].", boxes=boxes)
    with running(create_app(model)) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=60)
        messages = [{"role": "user", "content": "Where is the person?"}]
        result = client.chat.completions.create(model="anymal", messages=messages, max_tokens=40)
        chunks = list(client.chat.completions.create(model="anymal", messages=messages, max_tokens=40, stream=True))
    expected = [[120.0, 60.0, 420.0, 560.0], [10.5, 20.0, 30.0, 40.0]]
    assert result.choices[0].message.model_extra["boxes"] == expected
    assert result.choices[0].message.content == model.text
    last = [c for c in chunks if c.choices and c.choices[0].finish_reason][-1]
    assert last.choices[0].delta.model_extra["boxes"] == expected
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == model.text


def test_no_outputs_no_field(saved_model):
    with running(create_app(saved_model[0])) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=60)
        result = client.chat.completions.create(
            model="anymal", messages=[{"role": "user", "content": "Hi"}], max_tokens=3
        )
    assert "boxes" not in (result.choices[0].message.model_extra or {})


def test_a_real_loc_head_boxes_in_the_response(tmp_path):
    """The [LOC] output plugin (plugins/anymal_loc) on a tiny model: the answer is scripted to say [LOC], the real
    head decodes a box from its hidden state, and the server returns what the library's generate returns."""
    import base64

    from anymal.testing import require_asset, tiny_anymal
    from anymal_serve.engine import _json_ready
    from anymal_serve.parts import parse_messages
    from anymal_serve.prompt import prompt_ids

    model = tiny_anymal(("image",), apply_chat_template=True)
    model.add_output("loc", {})
    model.eval()
    scripted = Scripted(model, "The person [LOC] stands.")
    photo = require_asset("images/grace_hopper.jpg").read_bytes()
    url_data = "data:image/jpeg;base64," + base64.b64encode(photo).decode()
    messages = [
        {
            "role": "user",
            "content": [{"type": "image_url", "image_url": {"url": url_data}}, {"type": "text", "text": "Where?"}],
        }
    ]
    ids = prompt_ids(model, parse_messages(messages, ["image"]))
    expected = scripted.generate(input_ids=[ids], image=photo, max_new_tokens=20, do_sample=False)
    with running(create_app(scripted)) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=60)
        result = client.chat.completions.create(model="anymal", messages=messages, max_tokens=20, temperature=0)
    boxes = result.choices[0].message.model_extra["boxes"]
    assert boxes == _json_ready(expected.outputs["boxes"][0]) and len(boxes) == 1 and len(boxes[0]) == 4
    assert "[LOC]" in result.choices[0].message.content


def test_masks_travel_as_coco_rle_that_decodes_to_the_same_pixels():
    """A [SEG] answer's masks (anymal_seg.Masks, bool [n, H, W] over the photo) become COCO RLEs with their scores and
    boxes: as nested lists one 640x480 mask would be megabytes of JSON."""
    import json

    import numpy as np

    from anymal_box import decode_segmentation
    from anymal_seg import Masks
    from anymal_serve.engine import _json_ready

    data = np.zeros((2, 480, 640), dtype=bool)
    data[0, 100:300, 50:250] = True
    data[1, 10:20, 600:640] = True
    ready = _json_ready(Masks(data, PixelFrame(640, 480), np.array([0.9, 0.5])))
    text = json.dumps(ready)
    assert len(text) < 2000
    for rle, mask in zip(ready["rle"], data):
        assert np.array_equal(decode_segmentation(rle, 480, 640).astype(bool), mask)
    assert ready["boxes"] == [[50.0, 100.0, 250.0, 300.0], [600.0, 10.0, 640.0, 20.0]]
    assert ready["scores"] == pytest.approx([0.9, 0.5])
