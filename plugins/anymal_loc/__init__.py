"""The ``[LOC]`` box head (u-LLaVA's region branch) as an anymal output plugin, registered as ``loc``.

Add it to a model with ``outputs: {loc: {}}``; it adds the ``[LOC]`` token, regresses a box from that token's
hidden state (L1 + GIoU, u-LLaVA's weights) and returns ``out.boxes`` from ``generate`` in the original image's
pixels, mapped back through the image plugin's resize / crop / pad (``ImagePlugin.geometry``).
"""

from anymal_loc.config import LocConfig
from anymal_loc.head import BoxHead
from anymal_loc.losses import box_losses, generalized_iou
from anymal_loc.plugin import LocPlugin

__all__ = ["BoxHead", "LocConfig", "LocPlugin", "box_losses", "generalized_iou"]
