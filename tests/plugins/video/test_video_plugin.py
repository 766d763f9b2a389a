"""The video plugin against the contract and against the image plugin it reuses (pixels, tower, resampler)."""

import dataclasses

import numpy as np
import pytest
import torch

from anymal import AnyMALConfig, ConfigError
from anymal.testing import check_plugin_contract, tiny_anymal
from anymal_image import ImagePlugin
from anymal_video import MeanPoolProjector, TemporalResampler, VideoPlugin, VideoPluginConfig, mean_pool_tokens
from anymal_video.plugin import moving_square


def _config(**overrides) -> VideoPluginConfig:
    return dataclasses.replace(VideoPlugin.tiny_config(), **overrides)


def _n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


class MeanPoolVideo(VideoPlugin):
    """The tiny video plugin with u-LLaVA pooling: 4 frames + 16 patches of the 32-px, 8-px-patch tiny ViT."""

    @classmethod
    def tiny_config(cls) -> VideoPluginConfig:
        return dataclasses.replace(VideoPlugin.tiny_config(), aggregation="mean_pool", num_tokens=20)


def test_plugin_contract_for_both_aggregations():
    check_plugin_contract("video")
    check_plugin_contract(MeanPoolVideo)


def test_config_round_trips_and_validates_fields():
    config = AnyMALConfig.from_dict({"modalities": {"video": {"num_frames": 6, "sampling": "segment"}}})
    video = config.modalities["video"]
    assert isinstance(video, VideoPluginConfig) and video.plugin_type == "video" and video.num_frames == 6
    assert AnyMALConfig.from_dict(config.to_dict()).modalities["video"] == video
    for bad, field in (
        ({"sampling": "random"}, "sampling="),
        ({"num_frames": 0}, "num_frames=0"),
        ({"decoder": "ffmpeg"}, "decoder="),
        ({"stream_index": -1}, "stream_index=-1"),
        ({"aggregation": "max"}, "aggregation="),
    ):
        with pytest.raises(ConfigError, match=field):
            AnyMALConfig.from_dict({"modalities": {"video": bad}})


def test_image_and_video_share_one_vision_tower():
    model = tiny_anymal(("image", "video"))
    assert model.plugins["video"].encoder_key() == model.plugins["image"].encoder_key()
    assert model.encoders["image"] is model.encoders["video"]
    tower = _n_params(ImagePlugin(ImagePlugin.tiny_config()).build_encoder())
    assert model.trainable_summary()["encoder"]["frozen"] == tower  # one copy, not two
    separate = tiny_anymal({"image": ImagePlugin.tiny_config(), "video": _config(init_seed=1)})
    assert separate.encoders["image"] is not separate.encoders["video"]
    assert separate.trainable_summary()["encoder"]["frozen"] == 2 * tower


def test_frames_get_exactly_the_image_plugins_pixels_and_keep_timestamps():
    video, image = VideoPlugin(_config()), ImagePlugin(ImagePlugin.tiny_config())
    frames = moving_square(12, 48)
    item = video.preprocess((frames, 10.0))
    assert item["pixel_values"].shape == (4, 3, 32, 32)
    assert item["frame_indices"].tolist() == [1, 4, 7, 10]  # uniform: centres of 4 segments of 12 frames
    assert item["timestamps"].tolist() == pytest.approx([0.1, 0.4, 0.7, 1.0])
    for pixels, index in zip(item["pixel_values"], item["frame_indices"]):
        assert torch.equal(pixels, image.preprocess(frames[index]))


def test_encode_runs_every_frame_through_the_tower_in_one_batch():
    plugin = VideoPlugin(_config())
    tower = plugin.build_encoder().eval()
    items = [plugin.preprocess((moving_square(12, 48, seed), 10.0)) for seed in (0, 1)]
    batch = plugin.collate(items)
    with torch.no_grad():
        feats = plugin.encode(tower, batch)
        per_frame = torch.stack([tower(item["pixel_values"]) for item in items])
        chunked = VideoPlugin(_config(frames_per_forward=3)).encode(tower, batch)
    assert feats.shape == (2, 4, 16, 32)  # clips, frames, patches (32/8)^2, width
    assert torch.allclose(feats, per_frame, atol=1e-5)
    assert torch.allclose(chunked, feats, atol=1e-5)


def test_one_frame_video_with_a_warm_started_resampler_equals_the_image_plugin():
    image, video = ImagePlugin(ImagePlugin.tiny_config()), VideoPlugin(_config(num_frames=1))
    tower = image.build_encoder().eval()
    torch.manual_seed(0)
    image_projector = image.build_projector(32)
    video_projector = video.build_projector(32)
    assert isinstance(video_projector, TemporalResampler)
    video_projector.resampler.load_state_dict(image_projector.state_dict())
    frame = moving_square(1, 48)
    with torch.no_grad():
        want = image_projector(tower(image.preprocess(frame[0])[None]))
        got = video.project(video_projector, video.encode(tower, video.collate([video.preprocess((frame, 1.0))])))
    assert got.shape == (1, 4, 32) and torch.allclose(got, want, atol=1e-6)


def test_temporal_embeddings_make_the_resampler_see_frame_order():
    plugin = VideoPlugin(_config())
    tower = plugin.build_encoder().eval()
    projector = plugin.build_projector(32)
    frames = moving_square(4, 48)
    with torch.no_grad():
        forward = plugin.encode(tower, plugin.collate([plugin.preprocess((frames, 4.0))]))
        backward = forward.flip(1)
        assert torch.allclose(projector(forward), projector(backward), atol=1e-5)  # zero init: a bag of patches
        projector.temporal_embed.normal_()
        assert not torch.allclose(projector(forward), projector(backward), atol=1e-3)


def test_mean_pool_is_u_llava_spatial_then_temporal_pooling():
    feats = torch.randn(2, 4, 16, 8)
    pooled = mean_pool_tokens(feats)
    assert pooled.shape == (2, 20, 8)
    assert torch.allclose(pooled[:, 2], feats[:, 2].mean(dim=1))  # frame 2: mean over its patches
    assert torch.allclose(pooled[:, 4 + 5], feats[:, :, 5].mean(dim=1))  # patch 5: mean over frames
    linear = MeanPoolProjector(8, 32, n_frames=4)
    assert torch.allclose(linear(feats), linear.proj(pooled))
    mlp = VideoPlugin(_config(aggregation="mean_pool", num_tokens=20)).build_projector(32)
    assert isinstance(mlp.proj, torch.nn.Sequential) and mlp(torch.randn(2, 4, 16, 32)).shape == (2, 20, 32)


def test_mean_pool_token_count_mismatch_names_the_right_count():
    with pytest.raises(ConfigError, match=r"num_frames \+ patches per frame = 4 \+ 16 = 20 tokens; set num_tokens=20"):
        VideoPlugin(_config(aggregation="mean_pool", num_tokens=8)).build_projector(32)


def test_segment_sampling_is_seeded_and_varies_between_calls():
    frames = (moving_square(40, 16), 10.0)
    runs = []
    for _ in range(2):
        plugin = VideoPlugin(_config(sampling="segment", sampling_seed=5))
        runs.append([plugin.preprocess(frames)["frame_indices"].tolist() for _ in range(3)])
    assert runs[0] == runs[1] and runs[0][0] != runs[0][1]
    for indices in runs[0]:
        assert [i // 10 for i in indices] == [0, 1, 2, 3]  # one frame inside each quarter
    plugin = VideoPlugin(_config(sampling="segment", sampling_seed=5))
    plugin.reseed(5)
    assert plugin.preprocess(frames)["frame_indices"].tolist() == runs[0][0]


def test_fps_sampling_in_the_plugin(nasa):
    plugin = VideoPlugin(_config(sampling="fps", sample_fps=2.0, decoder="pyav"))
    item = plugin.preprocess(nasa)
    assert item["timestamps"].tolist() == pytest.approx([0.0, 0.4671, 0.9676, 1.4681], abs=1e-4)


def test_a_shared_tower_with_another_feature_layer_is_refused():
    tower = ImagePlugin(ImagePlugin.tiny_config()).build_encoder()
    plugin = VideoPlugin(_config(feature_layer=-1))
    batch = plugin.collate([plugin.preprocess((moving_square(4, 32), 4.0))])
    with pytest.raises(ConfigError, match="feature_layer=-1"):
        plugin.encode(tower, batch)


def test_single_input_detection():
    plugin = VideoPlugin(_config())
    frames = moving_square(4, 16)
    assert plugin.is_single_input("clip.mp4") and plugin.is_single_input((frames, 10.0))
    assert plugin.is_single_input(np.zeros((2, 8, 8, 3), np.uint8))
    assert not plugin.is_single_input(["a.mp4", "b.mp4"]) and not plugin.is_single_input(("a.mp4", "b.mp4"))
