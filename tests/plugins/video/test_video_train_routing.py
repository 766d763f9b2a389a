"""``route_audio`` in training: a video file's audio track joins the example as an audio item, placed like
``generate`` places it, and trains through the feature cache like any other item."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from anymal import ConfigError
from anymal.data import Example, MediaRef
from anymal.processing import Turn
from anymal.routing import route_example
from anymal.testing import STORIES260K, tiny_anymal
from anymal.train import load_train_config, train
from anymal.train.config import DataSpec
from anymal.train.dataset import EpochExamples, TrainingDataset
from anymal_image import ImagePlugin
from anymal_video import VideoPlugin
from anymal_video.audio_track import extract_audio_track

AudioPlugin = pytest.importorskip("anymal_audio").AudioPlugin


def _configs(**video):
    return {
        "image": ImagePlugin.tiny_config(),
        "video": dataclasses.replace(VideoPlugin.tiny_config(), route_audio=True, **video),
        "audio": AudioPlugin.tiny_config(),
    }


@pytest.fixture(scope="module")
def model():
    return tiny_anymal(_configs())


@pytest.fixture()
def video_pairs(nasa, broken_videos, tmp_path):
    path = tmp_path / "pairs.jsonl"
    rows = [{"video": str(nasa), "caption": "a rocket on the pad"}]
    rows.append({"video": str(broken_videos["faststart"]), "caption": "a silent clip"})
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_the_audio_track_of_each_video_joins_the_example_right_after_it(model, video_pairs):
    spec = DataSpec(kind="pairs", path=str(video_pairs), modality="video", media_key="video")
    with_sound, silent = EpochExamples([spec], model.plugins, "raise", seed=0)(0)
    user = next(turn.text for turn in with_sound.turns if turn.role == "user")
    assert "<video><audio>" in user and user.count("<audio>") == 1
    assert with_sound.media["audio"] == with_sound.media["video"]  # the audio plugin reads the same file
    assert "audio" not in silent.media and "<audio>" not in silent.turns[0].text  # video-only file: nothing routed


def test_routed_item_equals_the_explicit_one_generate_would_build(model, nasa):
    ref = MediaRef(path=nasa)
    routed = route_example(
        model.plugins, Example([Turn("user", "<video> what is said?"), Turn("assistant", "hi")], {"video": [ref]})
    )
    dataset = TrainingDataset([routed], model, chat=False, on_error="raise")
    item = dataset[0]
    explicit_ids, explicit_labels = model.prompt_encoder.encode_conversation(
        [Turn("user", "<video><audio> what is said?"), Turn("assistant", "hi")], {"video": 1, "audio": 1}, chat=False
    )
    assert item["input_ids"] == explicit_ids and item["labels"] == explicit_labels
    from_track = model.plugins["audio"].preprocess(extract_audio_track(nasa))  # what generate() feeds the plugin
    for key, value in from_track.items():
        assert torch.allclose(item["media"]["audio"][0][key], value, atol=1e-4), key


def test_explicit_audio_wins_and_examples_without_videos_are_untouched(model, nasa):
    clip = MediaRef(path=nasa)
    explicit = Example([Turn("user", "<video> <audio>"), Turn("assistant", "ok")], {"video": [clip], "audio": [clip]})
    assert route_example(model.plugins, explicit) is explicit
    text_only = Example([Turn("user", "hello"), Turn("assistant", "hi")])
    assert route_example(model.plugins, text_only) is text_only


def test_a_picked_audio_stream_is_refused_in_training_with_the_option_named(nasa):
    plugins = tiny_anymal(_configs(audio_stream_index=4)).plugins
    example = Example([Turn("user", "<video>"), Turn("assistant", "ok")], {"video": [MediaRef(path=nasa)]})
    with pytest.raises(ConfigError, match="audio_stream_index=4"):
        route_example(plugins, example)


def test_routed_audio_trains_through_the_feature_cache(video_pairs, tmp_path):
    if not STORIES260K.exists():
        pytest.skip(f"real test asset {STORIES260K} is absent")
    config = load_train_config(
        None,
        [
            f"model.llm.name_or_path={STORIES260K}",
            f"data=[{{kind: pairs, path: '{video_pairs}', modality: video, media_key: video}}]",
            f"output_dir={tmp_path / 'run'}",
            f"feature_cache={tmp_path / 'cache'}",
            "train_modalities=[video]",
            "batch_size=2",
            "max_steps=2",
        ],
    )
    config.model["modalities"] = {name: dataclasses.asdict(cfg) for name, cfg in _configs().items()}
    result = train(config)
    assert result.steps == 2 and np.isfinite(result.losses).all()
    assert len(list((tmp_path / "cache" / "audio").rglob("*.safetensors"))) == 1  # the NASA clip's sound track
    assert len(list((tmp_path / "cache" / "video").rglob("*.safetensors"))) == 2
