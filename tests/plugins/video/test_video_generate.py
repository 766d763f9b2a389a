"""End to end: generate(video=...) with a tiny model, batched-vs-per-row parity, and the audio track routing."""

import dataclasses

import av
import numpy as np
import pytest
import torch

from anymal import InputError
from anymal.testing import tiny_anymal
from anymal_image import ImagePlugin
from anymal_video import AudioTrack, VideoPlugin, extract_audio_track
from anymal_video.plugin import moving_square
from anymal_video.routing import routed_inputs


@pytest.fixture(scope="module")
def model():
    model = tiny_anymal(("image", "video"))
    with torch.no_grad():  # a random projector with larger weights, so that video tokens visibly steer the output
        for p in model.projectors["video"].parameters():
            p.add_(torch.randn_like(p))
    return model


def test_generate_with_a_video_file(model, nasa):
    out = model.generate("<video> what happens?", video=str(nasa), max_new_tokens=5, do_sample=False)
    assert out.sequences.shape == (1, 5) and len(out.texts) == 1
    # the clip steers the LLM: its next-token logits differ from another clip's (greedy ids of a random tiny LLM
    # may coincide, so compare the distributions)
    plugin = model.plugins["video"]
    ids = [model.prompt_encoder.encode_prompt("<video> what happens?", {"video": 1}, chat=False)]
    with torch.no_grad():
        logits = [
            model.llm(
                inputs_embeds=model.fuse(ids, {"video": plugin.collate([plugin.preprocess(raw)])}).inputs_embeds
            ).logits[0, -1]
            for raw in (str(nasa), (moving_square(), 10.0))
        ]
    assert not torch.allclose(logits[0], logits[1], atol=1e-4)


def test_greedy_batched_output_equals_per_row_output(model, nasa):
    prompts = ["<video> what happens?", "no video in this row", "compare <video> with <video>"]
    videos = [str(nasa), None, [nasa.read_bytes(), (moving_square(), 10.0)]]
    batch = model.generate(prompts, video=videos, max_new_tokens=6, do_sample=False)
    for i, (prompt, video) in enumerate(zip(prompts, videos)):
        single = model.generate(prompt, video=video, max_new_tokens=6, do_sample=False)
        assert single.sequences[0].tolist() == batch.sequences[i, -single.sequences.shape[1] :].tolist()


def test_generate_reports_bad_videos_by_name(model, tmp_path):
    with pytest.raises(InputError, match="video file not found"):
        model.generate("<video> what happens?", video=str(tmp_path / "missing.mp4"), max_new_tokens=2)


def test_extract_audio_track_is_the_mean_of_the_channels(nasa):
    track = extract_audio_track(nasa)
    samples, rate = track  # unpacks as (array, sample_rate): one input of the audio plugin
    assert isinstance(track, AudioTrack) and rate == 16000 and samples.dtype == np.float32 and samples.ndim == 1
    with av.open(str(nasa)) as container:  # best audio track = stream #4: aac 16 kHz stereo, decoded independently
        stereo = np.concatenate([f.to_ndarray() for f in container.decode(container.streams[4])], axis=1)
    assert stereo.shape[0] == 2 and np.array_equal(samples, stereo.mean(axis=0, dtype=np.float32))
    assert track.duration_s == pytest.approx(13.056)
    narrow = extract_audio_track(nasa.read_bytes(), stream_index=1)
    assert narrow.sample_rate == 8000 and narrow.duration_s == pytest.approx(13.056)
    with pytest.raises(InputError, match=r"no audio stream #0 .*one of \[1, 4\]"):
        extract_audio_track(nasa, stream_index=0)


def test_audio_track_matches_the_audio_plugins_own_reader(nasa):
    audio_io = pytest.importorskip("anymal_audio.io")
    wave = audio_io.load_audio(str(nasa))
    track = extract_audio_track(nasa)
    assert wave.sample_rate == track.sample_rate
    assert np.allclose(wave.samples.mean(axis=1), track.samples, atol=1e-6)


def test_video_without_audio_has_no_companion_and_audio_only_errors(broken_videos):
    plugin = VideoPlugin(dataclasses.replace(VideoPlugin.tiny_config(), route_audio=True))
    assert plugin.companion_inputs(broken_videos["faststart"]) == {}  # video-only remux
    assert plugin.companion_inputs((moving_square(), 10.0)) == {}
    with pytest.raises(InputError, match="has no audio track"):
        extract_audio_track(broken_videos["faststart"])


def test_routed_audio_goes_after_its_video_and_generates_like_explicit_inputs(nasa):
    pytest.importorskip("anymal_audio")
    from anymal_audio import AudioPlugin

    video = dataclasses.replace(VideoPlugin.tiny_config(), route_audio=True)
    model = tiny_anymal({"image": ImagePlugin.tiny_config(), "video": video, "audio": AudioPlugin.tiny_config()})
    assert set(model.plugins["video"].companion_inputs(str(nasa))) == {"audio"}

    silence = (np.zeros(16000, np.float32), 16000)
    prompt, inputs = routed_inputs(model, "<video> what is said?", video=str(nasa))
    assert prompt == "<video><audio> what is said?" and isinstance(inputs["audio"][0], AudioTrack)
    routed = model.generate(prompt, **inputs, max_new_tokens=4, do_sample=False)
    explicit = model.generate(
        "<video><audio> what is said?",
        video=str(nasa),
        audio=extract_audio_track(nasa),
        max_new_tokens=4,
        do_sample=False,
    )
    assert torch.equal(routed.sequences, explicit.sequences)
    automatic = model.generate("<video> what is said?", video=str(nasa), max_new_tokens=4, do_sample=False)
    assert torch.equal(automatic.sequences, explicit.sequences)  # generate() routes the track itself

    prompts, batch_inputs = routed_inputs(model, ["<video> and <video>", "text only"], video=[[str(nasa)] * 2, None])
    assert prompts == ["<video><audio> and <video><audio>", "text only"]
    assert len(batch_inputs["audio"][0]) == 2 and batch_inputs["audio"][1] is None
    mixed, mixed_inputs = routed_inputs(model, ["<video>", "<video>"], video=[str(nasa)] * 2, audio=[None, silence])
    assert mixed == ["<video><audio>", "<video>"] and mixed_inputs["audio"][1][0] is silence
    assert isinstance(mixed_inputs["audio"][0][0], AudioTrack)  # only the row without explicit audio gets its track
    kept, explicit_inputs = routed_inputs(model, "<video>", video=str(nasa), audio=silence)
    assert kept == "<video>" and explicit_inputs["audio"][1] == 16000  # explicit audio wins: nothing routed


def test_a_saved_image_video_model_reloads_and_generates_the_same(model, nasa, tmp_path):
    from anymal import AnyMAL

    model.save_pretrained(str(tmp_path / "ckpt"))
    again = AnyMAL.from_pretrained(str(tmp_path / "ckpt"))
    assert again.encoders["image"] is again.encoders["video"]
    prompt = "<video> what happens?"
    want = model.generate(prompt, video=str(nasa), max_new_tokens=4, do_sample=False).sequences
    assert torch.equal(again.generate(prompt, video=str(nasa), max_new_tokens=4, do_sample=False).sequences, want)
