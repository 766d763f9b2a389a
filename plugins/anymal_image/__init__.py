"""First-party image plugin for anymal: open_clip / HF CLIP-SigLIP vision towers + Perceiver resampler."""

from anymal_image.config import ImagePluginConfig
from anymal_image.io import load_image
from anymal_image.plugin import ImagePlugin
from anymal_image.resampler import PerceiverResampler

__all__ = ["ImagePlugin", "ImagePluginConfig", "PerceiverResampler", "load_image"]
