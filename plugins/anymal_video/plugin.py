"""The video modality: sampled frames through the image plugin's frozen vision tower, then temporal aggregation.

Frames are decoded (decord or PyAV), sampled to a fixed count, transformed exactly as the image plugin transforms
a photo, and encoded as one batch of ``n_clips * n_frames`` images by the same tower class (and, when the configs
name the same tower, the very same instance as the image plugin). The projector aggregates time: a Flamingo-style
temporal Perceiver resampler, or u-LLaVA's spatial/temporal mean pooling with a linear/MLP projection.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from anymal.errors import ConfigError
from anymal.plugin import ModalityPlugin
from anymal_image.encoders import build_tower, build_transform, encoder_key
from anymal_image.plugin import ImagePlugin
from anymal_image.resampler import resampler_from_config
from anymal_video.audio_track import extract_audio_track, has_audio_track
from anymal_video.config import VideoPluginConfig
from anymal_video.frames import VideoFrames
from anymal_video.projector import MeanPoolProjector, TemporalResampler
from anymal_video.reader import is_frames_pair, load_video
from anymal_video.sampling import sample_indices


def example_video() -> Path:
    """The real NASA clip in the shared assets folder (``anymal.testing.assets_dir()``); it may be absent."""
    from anymal.testing import asset

    return asset("video/nasa_13013.mp4")


def moving_square(n_frames: int = 12, size: int = 48, seed: int = 0) -> np.ndarray:
    """Synthetic uint8 frames ``[n_frames, size, size, 3]``: a red square moving right over a random background."""
    rng = np.random.default_rng(seed)
    frames = np.repeat(rng.integers(0, 256, (1, size, size, 3), dtype=np.uint8), n_frames, axis=0)
    side = size // 4
    for t in range(n_frames):
        x = (t * (size - side)) // max(n_frames - 1, 1)
        frames[t, size // 2 - side // 2 : size // 2 + side // 2, x : x + side] = (255, 0, 0)
    return frames


class VideoPlugin(ModalityPlugin):
    """``video=``: a path, encoded bytes, ``(frames, fps)``, ``{"frames", "fps"}`` or :class:`VideoFrames`.

    ``preprocess`` returns ``pixel_values`` ``[T, 3, H, W]`` plus the sampled frames' ``timestamps`` (seconds)
    and ``frame_indices``; ``encode`` returns per-frame patch features ``[n, T, P, D]``; the projector turns them
    into ``[n, num_tokens, llm_dim]``. See :class:`VideoPluginConfig` for sampling, decoding and aggregation.
    """

    name = "video"
    noun = "video"
    config_class = VideoPluginConfig
    config: VideoPluginConfig

    def __init__(self, config: VideoPluginConfig | None = None) -> None:
        super().__init__(config)
        self._transform = None
        self._geometry: tuple[int, int] | None = None  # (patch tokens per frame, feature width)
        self.rng = np.random.default_rng(self.config.sampling_seed)

    # --- data ----------------------------------------------------------------------------------------------
    @property
    def transform(self):
        """The vision tower's eval transform (the image plugin's), built lazily: data workers need no tower."""
        if self._transform is None:
            self._transform = build_transform(self.config)
        return self._transform

    def reseed(self, seed: int) -> None:
        """Restarts segment sampling from ``seed`` (training calls it per item; see ``ModalityPlugin.reseed``)."""
        self.rng = np.random.default_rng(seed)

    def _sample(self, timestamps: np.ndarray, fps: float) -> np.ndarray:
        cfg = self.config
        return sample_indices(cfg.sampling, timestamps, cfg.num_frames, fps=cfg.sample_fps, rng=self.rng)

    def load_frames(self, raw: Any) -> VideoFrames:
        """Decodes and samples ``num_frames`` frames of one video as configured, with their timestamps."""
        cfg = self.config
        return load_video(
            raw,
            self._sample,
            decoder=cfg.decoder,
            stream_index=cfg.stream_index,
            array_fps=cfg.array_fps,
            threads=cfg.decode_threads,
        )

    def preprocess(self, raw: Any) -> dict[str, torch.Tensor]:
        clip = self.load_frames(raw)
        pixels = torch.stack([self.transform(Image.fromarray(frame)) for frame in clip.frames])
        return {
            "pixel_values": pixels,
            "timestamps": torch.from_numpy(clip.timestamps),
            "frame_indices": torch.from_numpy(clip.indices),
        }

    def is_single_input(self, raw: Any) -> bool:
        """One video, including a ``(frames, fps)`` pair; a list or tuple of videos is several."""
        return is_frames_pair(raw) or not isinstance(raw, (list, tuple))

    def companion_inputs(self, raw: Any) -> dict[str, Any]:
        """Inputs for other modalities carried by this video: ``{"audio": AudioTrack}`` when ``route_audio`` is
        set and the file has an audio track, else ``{}`` (decoded frames carry no audio)."""
        if not self.config.route_audio or not isinstance(raw, (str, Path, bytes, bytearray, memoryview)):
            return {}
        if not has_audio_track(raw):
            return {}
        return {"audio": extract_audio_track(raw, self.config.audio_stream_index)}

    def companion_modalities(self, raw: Any) -> tuple[str, ...]:
        """``("audio",)`` for a video file with an audio track when ``route_audio`` is set: the audio plugin decodes
        the file's best audio stream itself, the same samples :meth:`companion_inputs` extracts for ``generate``."""
        if not self.config.route_audio or not isinstance(raw, (str, Path, bytes, bytearray, memoryview)):
            return ()
        if self.config.audio_stream_index is not None:
            raise ConfigError(
                f"video.audio_stream_index={self.config.audio_stream_index}: training data routes a video's best "
                "audio stream to the audio plugin (which reads the file itself); only generate() can pick another "
                "stream. Unset audio_stream_index, or give training rows the audio explicitly."
            )
        return ("audio",) if has_audio_track(raw) else ()

    # --- encoder -------------------------------------------------------------------------------------------
    def build_encoder(self) -> nn.Module:
        tower = build_tower(self.config)
        self._measure(tower)
        return tower

    def encoder_key(self) -> str:
        """Equal to the image plugin's key for the same tower, so that a model holds one copy of it."""
        return encoder_key(self.config)

    def _check_tower(self, encoder: nn.Module) -> None:
        """A shared tower was built from another plugin's config: its feature layer must be ours too."""
        layer = getattr(encoder, "layer", None)
        n_blocks = getattr(encoder, "n_blocks", None)
        want = self.config.feature_layer % n_blocks if n_blocks else self.config.feature_layer
        if layer is not None and (layer != want or encoder.keep_cls != self.config.keep_cls_token):
            raise ConfigError(
                f"video: the shared vision tower returns layer {layer} (keep_cls_token={encoder.keep_cls}) but the "
                f"video config asks for feature_layer={self.config.feature_layer} (keep_cls_token="
                f"{self.config.keep_cls_token}); use the same settings as the image plugin"
            )

    def encode(self, encoder: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Per-frame patch features ``[n, T, P, D]``: all frames of all clips go through the tower as one batch."""
        self._check_tower(encoder)
        pixels = batch["pixel_values"]
        n, t = pixels.shape[:2]
        flat = pixels.flatten(0, 1)
        step = self.config.frames_per_forward or len(flat)
        feats = torch.cat([encoder(flat[i : i + step]) for i in range(0, len(flat), step)])
        return feats.reshape(n, t, *feats.shape[1:])

    def _measure(self, tower: nn.Module) -> None:
        width = tower.out_dim
        patches = 0
        if self.config.aggregation == "mean_pool":  # the token count depends on it
            patches = getattr(tower, "n_tokens", 0)  # the tower's own count (also on the meta device)
            if not patches:  # a tower without one: measure on a blank frame
                blank = self.transform(Image.new("RGB", (64, 64)))[None]
                with torch.no_grad():
                    patches = tower(blank).shape[1]
        self._geometry = (patches, width)

    def geometry(self) -> tuple[int, int]:
        """``(patch tokens per frame, feature width)`` of the tower (patches only measured for mean pooling).

        Known after ``build_encoder``; otherwise (e.g. when the model reuses the image plugin's tower) one tower is
        built to read it, as the image plugin does for its width.
        """
        if self._geometry is None:
            self._measure(build_tower(self.config))
        return self._geometry

    # --- projector -----------------------------------------------------------------------------------------
    def build_projector(self, llm_dim: int) -> nn.Module:
        cfg = self.config
        n_patches, width = self.geometry()
        if cfg.aggregation == "mean_pool":
            expected = cfg.num_frames + n_patches
            if cfg.num_tokens != expected:
                raise ConfigError(
                    f"num_tokens={cfg.num_tokens}: aggregation='mean_pool' gives num_frames + patches per frame = "
                    f"{cfg.num_frames} + {n_patches} = {expected} tokens; set num_tokens={expected}"
                )
            hidden = (cfg.projector_hidden_dim or llm_dim) if cfg.projector == "mlp" else None
            return MeanPoolProjector(width, llm_dim, cfg.num_frames, hidden)
        return TemporalResampler(resampler_from_config(cfg, width, llm_dim), cfg.num_frames, width)

    # --- testing -------------------------------------------------------------------------------------------
    @classmethod
    def tiny_config(cls) -> VideoPluginConfig:
        """The image plugin's tiny tower (so image + video share it), 4 frames, 4 LLM tokens."""
        image = ImagePlugin.tiny_config()
        fields = {k: v for k, v in image.__dict__.items() if k not in ("plugin_type", "num_tokens")}
        return VideoPluginConfig(**fields, num_tokens=4, num_frames=4)

    def example_inputs(self) -> list[Any]:
        """The real NASA clip (a path) and a synthetic moving square ``(frames, fps)``."""
        square = (moving_square(), 10.0)
        if example_video().is_file():
            return [str(example_video()), square]
        return [(moving_square(seed=1), 25.0), square]

    def bad_inputs(self) -> list[Any]:
        """Wrong types, a missing file, non-video bytes, empty / wrongly shaped / NaN frames, a bad frame rate."""
        bad: list[Any] = [
            object(),
            "/nonexistent/anymal-missing-clip.mp4",
            b"plain text, not an encoded video",
            (np.zeros((0, 8, 8, 3), dtype=np.uint8), 10.0),
            (np.zeros((4, 8, 8), dtype=np.uint8), 10.0),
            (np.full((2, 8, 8, 3), np.nan, dtype=np.float32), 10.0),
            (moving_square(4, 16), 0.0),
            (moving_square(4, 16), "fast"),
            {"frames": moving_square(4, 16)},
        ]
        if self.config.array_fps is None:
            bad.append(moving_square(4, 16))
        if example_video().is_file():
            bad.append(example_video().read_bytes()[:200_000])  # truncated: the mp4 index (moov) is at the end
        return bad
