"""Instruction data: LLaVA conversations, M3IT rows and anymal's multi-modality conversation rows."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from anymal.data import RowError, read_conversations, read_llava, read_m3it


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_llava_json_list_with_image_folder_and_text_only_rows(tmp_path, photos):
    rows = [
        {
            "id": "000000060623",
            "image": photos[0].name,
            "conversations": [
                {"from": "human", "value": "<image>\nWhat is on the plate?"},
                {"from": "gpt", "value": "A sandwich."},
                {"from": "human", "value": "Is it healthy?"},
                {"from": "gpt", "value": "Fairly."},
            ],
        },
        {
            "id": "text-only",
            "conversations": [{"from": "human", "value": "Say hi."}, {"from": "gpt", "value": "Hi!"}],
        },
        {  # LLaVA files sometimes omit the placeholder: it goes in front of the first question
            "id": "no-tag",
            "image": photos[1].name,
            "conversations": [{"from": "human", "value": "Describe."}, {"from": "gpt", "value": "A room."}],
        },
    ]
    data = tmp_path / "llava_instruct.json"
    data.write_text(json.dumps(rows, indent=2))

    first, text_only, no_tag = read_llava(data, media_root=photos[0].parent)

    assert [t.role for t in first.turns] == ["user", "assistant", "user", "assistant"]
    assert first.turns[0].text == "<image>\nWhat is on the plate?"
    assert first.media["image"][0].path == photos[0]
    assert first.id == "000000060623" and first.line == 2
    assert text_only.media == {} and text_only.turns[1].text == "Hi!"
    assert no_tag.turns[0].text == "<image>\nDescribe."
    assert no_tag.placeholder_counts() == {"image": 1}


def test_llava_placeholder_count_must_match_media(tmp_path, photos):
    row = {
        "image": str(photos[0]),
        "conversations": [{"from": "human", "value": "<image> vs <image>?"}, {"from": "gpt", "value": "same"}],
    }
    data = _write_jsonl(tmp_path / "llava.jsonl", [row])
    with pytest.raises(RowError, match=r"llava.jsonl:1: field 'conversations': has 2 <image> placeholder\(s\) but 1"):
        list(read_llava(data))


def test_m3it_rows_decode_every_base64_image(tmp_path, photos):
    b64 = [base64.b64encode(p.read_bytes()).decode() for p in photos[:2]]
    rows = [
        {
            "instruction": "Compare the two images.",
            "inputs": "Which one shows food?",
            "outputs": "The first one.",
            "image_base64_str": b64,
        },
        {"instruction": "Caption the image.", "inputs": "", "outputs": "A kitchen.", "image_base64_str": b64[:1]},
    ]
    data = _write_jsonl(tmp_path / "m3it.jsonl", rows)

    two, one = read_m3it(data)

    assert two.turns[0].text == "<image>\n<image>\nCompare the two images.\nWhich one shows food?"
    assert two.turns[1].text == "The first one."
    assert [ref.data for ref in two.media["image"]] == [p.read_bytes() for p in photos[:2]]
    assert one.turns[0].text == "<image>\nCaption the image."  # empty inputs add no line


def test_multimodal_conversations_keep_media_order_per_modality(tmp_path, photos, flac_clip, imu_recordings):
    recordings = np.load(imu_recordings)["X"]
    np.save(tmp_path / "walk.npy", recordings[10])
    np.save(tmp_path / "run.npy", recordings[20])
    rows = [
        {
            "id": "m1",
            "media": {"image": [str(photos[0])], "imu": ["walk.npy", "run.npy"], "audio": str(flac_clip)},
            "conversations": [
                {"role": "user", "content": "<image>\nFirst <imu>, then <imu>. And <audio>: who speaks?"},
                {"role": "assistant", "content": "A president, while walking then running."},
            ],
        },
        {  # placeholders omitted: prepended in media order; from/value keys accepted too
            "media": {"image": str(photos[1]), "imu": ["run.npy"]},
            "conversations": [{"from": "human", "value": "Describe."}, {"from": "gpt", "value": "Running."}],
        },
    ]
    data = _write_jsonl(tmp_path / "mm.jsonl", rows)

    full, implicit = read_conversations(data)

    assert full.placeholder_counts() == {"image": 1, "imu": 2, "audio": 1}
    assert [ref.path.name for ref in full.media["imu"]] == ["walk.npy", "run.npy"]
    assert np.array_equal(np.load(full.media["imu"][1].path), recordings[20])
    assert full.media["audio"][0].path == flac_clip
    assert implicit.turns[0].text == "<image>\n<imu>\nDescribe."


def test_stray_placeholder_of_a_declared_modality_is_an_error(tmp_path, photos):
    row = {
        "media": {"image": [str(photos[0])]},
        "conversations": [{"role": "user", "content": "<image> and <audio>?"}, {"role": "assistant", "content": "x"}],
    }
    data = _write_jsonl(tmp_path / "mm.jsonl", [row])
    (ok,) = read_conversations(data)  # <audio> is plain text unless audio is a declared modality
    assert ok.placeholder_counts() == {"image": 1}
    with pytest.raises(RowError, match=r"has 1 <audio> placeholder\(s\) but 0 audio item"):
        list(read_conversations(data, modalities=["image", "audio"]))
