"""``ImagePlugin.geometry``: where a photo's pixels land in the encoder input, checked against the real transforms.

A white rectangle is painted at a known place on a black photo; after the plugin's own ``preprocess`` (open_clip's
or a transformers processor's resize / crop), the white region of the tensor must be where ``geometry(size)``
puts the rectangle's box (within a pixel of resampling blur).
"""

from __future__ import annotations

import numpy as np
import pytest

from anymal_box import Boxes, PixelFrame
from anymal_image import ImagePlugin, ImagePluginConfig

HF_TINY = {"model_type": "clip_vision_model", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1}
HF_TINY |= {"num_attention_heads": 2, "image_size": 32, "patch_size": 8}


def _white_box(tensor) -> list[float]:
    bright = tensor.mean(0).numpy() > tensor.mean().item()  # normalised: white is above the mean, black below
    ys, xs = np.nonzero(bright)
    return [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]


@pytest.mark.parametrize(
    "config",
    [
        ImagePlugin.tiny_config(),
        ImagePluginConfig(backend="hf", model_config=HF_TINY, num_tokens=4, resampler_dim=32, resampler_heads=2),
        ImagePluginConfig(
            backend="hf",
            model_config={**HF_TINY, "model_type": "siglip_vision_model"},
            num_tokens=4,
            resampler_dim=32,
            resampler_heads=2,
        ),
    ],
    ids=["open_clip-shortest", "hf-clip", "hf-siglip"],
)
@pytest.mark.parametrize("size", [(120, 80), (60, 100)])
def test_geometry_matches_the_plugin_transform(config, size):
    plugin = ImagePlugin(config)
    width, height = size
    photo = np.zeros((height, width, 3), dtype=np.uint8)
    box = [width * 0.35, height * 0.3, width * 0.65, height * 0.7]
    x0, y0, x1, y1 = (round(v) for v in box)
    photo[y0:y1, x0:x1] = 255
    geometry = plugin.geometry(plugin.original_size(photo))
    assert geometry.src == (float(width), float(height))
    expected = geometry.forward(Boxes([x0, y0, x1, y1], PixelFrame(width, height)))
    found = _white_box(plugin.preprocess(photo))
    assert geometry.dst == tuple(float(v) for v in plugin.preprocess(photo).shape[:0:-1])
    assert np.allclose(expected.data[0], found, atol=1.0), (expected.data[0], found)
    back = geometry.inverse(expected)
    assert np.allclose(back.data[0], [x0, y0, x1, y1], atol=1e-6)
