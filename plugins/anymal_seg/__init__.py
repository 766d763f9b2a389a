"""The ``[SEG]`` mask decoder for anymal (u-LLaVA's pixel branch) as an output plugin.

The LLM's hidden state at each ``[SEG]`` token is projected to SAM's prompt-embedding space and decoded by
transformers' ``SamModel`` prompt encoder and mask decoder over SAM's frozen image embedding of the row's photo;
masks come back in the photo's pixels (``generate(...).masks``). Losses: u-LLaVA's BCE + Dice, only where a mask
label exists.
"""

from anymal_seg.config import SegConfig
from anymal_seg.losses import dice_loss, mask_losses, sigmoid_bce_loss
from anymal_seg.masks import Masks
from anymal_seg.plugin import SegPlugin, tiny_sam_config
from anymal_seg.sam import load_sam, sam_geometry, sam_processor
from anymal_seg.warp import logits_to_source

__all__ = [
    "Masks",
    "SegConfig",
    "SegPlugin",
    "dice_loss",
    "load_sam",
    "logits_to_source",
    "mask_losses",
    "sam_geometry",
    "sam_processor",
    "sigmoid_bce_loss",
    "tiny_sam_config",
]
