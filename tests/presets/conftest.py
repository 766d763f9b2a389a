"""Shared data for the preset tests: caption pairs over the real COCO photos, and a video pair on the NASA clip."""

import json

import pytest

from anymal.testing import captioned_photos


@pytest.fixture(scope="session")
def photo_pairs(tmp_path_factory, assets):
    folder = tmp_path_factory.mktemp("preset_data")
    rows = [{"image": str(photo), "caption": caption} for photo, caption in captioned_photos()]
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
