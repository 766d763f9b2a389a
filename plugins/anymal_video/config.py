"""Config of the video plugin: the image plugin's vision-tower fields plus frame sampling, decoding and pooling.

``VideoPluginConfig`` subclasses ``ImagePluginConfig`` so that the tower fields (``backend``, ``model_name``,
``pretrained``, ``model_config``, ``init_seed``, ``feature_layer``, ``keep_cls_token``) and the resampler fields
have the same names and meaning in both plugins. Two configs that name the same tower get the same
``encoder_key()``, so a model with ``image`` and ``video`` holds one copy of the vision encoder.
"""

from __future__ import annotations

from dataclasses import dataclass

from anymal.config import check_choice
from anymal.errors import ConfigError
from anymal_image.config import ImagePluginConfig

SAMPLING_METHODS = ("uniform", "fps", "segment")
DECODERS = ("auto", "pyav", "decord")
AGGREGATIONS = ("resampler", "mean_pool")
PROJECTORS = ("mlp", "linear")


@dataclass
class VideoPluginConfig(ImagePluginConfig):
    """Vision tower (inherited from the image plugin), frame sampling, decoding and temporal aggregation.

    Sampling (``num_frames`` frames per clip, always exactly that many so the token count is fixed):
      * ``uniform``: the centre frame of each of ``num_frames`` equal segments of the whole clip (inference).
      * ``fps``: one frame every ``1 / sample_fps`` seconds from the start of the clip, the first
        ``num_frames`` of them; a shorter clip repeats its last sampled frame.
      * ``segment``: TSN-style training augmentation, one random frame per equal segment, drawn from a generator
        seeded with ``sampling_seed`` (the plugin keeps the generator, so successive calls differ reproducibly).

    Decoding: ``decoder="auto"`` uses decord when it is installed and falls back to PyAV; ``stream_index`` is the
    container's stream number (as ffprobe prints it, e.g. 3 for ``Stream #0:3``), default the best video stream.
    ``array_fps`` is the frame rate assumed for bare ``[T, H, W, 3]`` arrays (``None``: give ``(frames, fps)``).

    Aggregation (``aggregation``):
      * ``resampler`` (Flamingo): a learned temporal embedding per frame slot is added to that frame's patch
        features, then one Perceiver resampler attends over all frames' patches at once and returns
        ``num_tokens`` tokens whatever ``num_frames`` is. The temporal embeddings start at zero, so a projector
        warm-started from an image resampler initially treats the clip as a bag of patches.
      * ``mean_pool`` (u-LLaVA / Video-ChatGPT): per-frame spatial means (``num_frames`` tokens) followed by
        per-patch temporal means (one token per patch), then a ``linear`` or 2-layer ``mlp`` projection;
        ``num_tokens`` must equal ``num_frames + patches per frame``.

    ``route_audio``: with an ``audio`` plugin in the model, the clip's audio track is fed to it as well, in
    ``generate`` (see :mod:`anymal_video.routing`) and in training data (:func:`anymal.routing.route_example`);
    ``audio_stream_index`` picks the track in ``generate`` (default: the best audio stream, the only choice in
    training, where the audio plugin reads the file itself).
    """

    plugin_type: str = "video"
    num_frames: int = 8
    sampling: str = "uniform"
    sample_fps: float = 1.0
    sampling_seed: int = 0
    decoder: str = "auto"
    stream_index: int | None = None
    decode_threads: int = 0
    array_fps: float | None = None
    aggregation: str = "resampler"
    projector: str = "mlp"
    projector_hidden_dim: int | None = None
    frames_per_forward: int | None = None
    route_audio: bool = False
    audio_stream_index: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice(self.sampling, SAMPLING_METHODS, "sampling")
        check_choice(self.decoder, DECODERS, "decoder")
        check_choice(self.aggregation, AGGREGATIONS, "aggregation")
        check_choice(self.projector, PROJECTORS, "projector")
        if self.num_frames < 1:
            raise ConfigError(f"num_frames={self.num_frames}: expected at least 1 frame per clip")
        if not self.sample_fps > 0:
            raise ConfigError(f"sample_fps={self.sample_fps}: expected a positive frame rate in frames per second")
        if self.array_fps is not None and not self.array_fps > 0:
            raise ConfigError(f"array_fps={self.array_fps}: expected a positive frame rate or None")
        for name in ("stream_index", "audio_stream_index"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ConfigError(f"{name}={value}: expected a container stream number >= 0 or None (best stream)")
        if self.decode_threads < 0:
            raise ConfigError(f"decode_threads={self.decode_threads}: expected >= 0 (0 lets the decoder choose)")
        if self.projector_hidden_dim is not None and self.projector_hidden_dim < 1:
            raise ConfigError(f"projector_hidden_dim={self.projector_hidden_dim}: expected >= 1 or None (llm_dim)")
        if self.projector_type != "perceiver" or self.vision_adapter_dim or self.llm_adapter_dim:
            raise ConfigError(
                "projector_type, vision_adapter_dim and llm_adapter_dim are image-plugin options; a video plugin "
                "aggregates frames with aggregation: resampler|mean_pool and projector: mlp|linear"
            )
        if self.frames_per_forward is not None and self.frames_per_forward < 1:
            raise ConfigError(f"frames_per_forward={self.frames_per_forward}: expected >= 1 or None (all at once)")
