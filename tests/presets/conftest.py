"""Shared data for the preset tests: caption pairs over the real COCO photos, and a video pair on the NASA clip."""

import json

import pytest


@pytest.fixture(scope="session")
def photo_pairs(tmp_path_factory, assets):
    folder = tmp_path_factory.mktemp("preset_data")
    captions = json.loads((assets / "images" / "captions.json").read_text())
    rows = [
        {"image": str(assets / "images" / name), "caption": info["clipcap_generated_caption"]}
        for name, info in captions.items()
        if isinstance(info, dict) and info.get("clipcap_generated_caption")
    ]
    path = folder / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="session")
def video_pairs(tmp_path_factory, assets):
    clips = sorted((assets / "video").glob("*.mp4"))
    if not clips:
        pytest.skip("no video in the shared assets")
    path = tmp_path_factory.mktemp("preset_video") / "video_pairs.jsonl"
    path.write_text(json.dumps({"video": str(clips[0]), "caption": "a short NASA video clip with narration"}) + "\n")
    return path
