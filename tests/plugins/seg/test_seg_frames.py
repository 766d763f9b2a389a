"""SAM's input frame: the geometry matches transformers' SamImageProcessor, and logits map back to the photo."""

import numpy as np
import pytest
import torch
from PIL import Image

from anymal_box import Boxes, PixelFrame
from anymal_seg.sam import sam_geometry, sam_processor
from anymal_seg.warp import logits_to_source


@pytest.mark.parametrize("size", [(80, 48), (48, 80), (64, 64), (33, 17)])
def test_geometry_matches_the_sam_processor(size):
    width, height = size
    image = Image.fromarray(np.zeros((height, width, 3), np.uint8))
    out = sam_processor(64)(images=image, return_tensors="pt")
    resized_h, resized_w = out["reshaped_input_sizes"][0].tolist()
    geometry = sam_geometry((width, height), 64)
    assert geometry.dst == (64.0, 64.0)
    corner = geometry.forward(Boxes([[0, 0, width, height]], PixelFrame(width, height)))
    assert np.allclose(corner.data, [[0, 0, resized_w, resized_h]])


def test_a_photo_pixel_comes_back_where_it_was():
    # a mask drawn in the photo, carried into SAM's padded frame as the processor would, comes back unchanged
    width, height = 40, 24
    mask = np.zeros((height, width), bool)
    mask[5:15, 10:30] = True
    geometry = sam_geometry((width, height), 64)
    resized_w, resized_h = round(width * 64 / 40), round(height * 64 / 40)
    in_frame = np.zeros((64, 64), np.float32)
    big = Image.fromarray(mask.astype(np.uint8) * 255).resize((resized_w, resized_h), Image.NEAREST)
    in_frame[:resized_h, :resized_w] = np.asarray(big) / 255.0
    logits = torch.tensor(in_frame * 20 - 10)[None]
    back = logits_to_source(logits, geometry)[0] > 0
    assert back.shape == (height, width)
    assert (back.numpy() == mask).mean() > 0.99


def test_low_resolution_logits_cover_the_whole_input():
    geometry = sam_geometry((64, 32), 64)  # content in the top half of SAM's square input
    low = torch.full((1, 16, 16), -5.0)
    low[0, :8, :] = 5.0  # the top half of the input square is "on"
    back = logits_to_source(low, geometry)
    assert back.shape == (1, 32, 64) and bool((back > 0).all())
