"""First-party video plugin for anymal: decord/PyAV decoding, frame sampling, the image plugin's vision tower,
and temporal aggregation (Flamingo-style temporal resampler or u-LLaVA mean pooling)."""

from anymal_video.audio_track import AudioTrack, extract_audio_track, has_audio_track
from anymal_video.config import VideoPluginConfig
from anymal_video.frames import VideoFrames
from anymal_video.plugin import VideoPlugin
from anymal_video.projector import MeanPoolProjector, TemporalResampler, mean_pool_tokens
from anymal_video.reader import load_video
from anymal_video.sampling import fps_indices, sample_indices, segment_indices, uniform_indices

__all__ = [
    "AudioTrack",
    "MeanPoolProjector",
    "TemporalResampler",
    "VideoFrames",
    "VideoPlugin",
    "VideoPluginConfig",
    "extract_audio_track",
    "fps_indices",
    "has_audio_track",
    "load_video",
    "mean_pool_tokens",
    "sample_indices",
    "segment_indices",
    "uniform_indices",
]
