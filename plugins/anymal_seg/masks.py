"""``Masks``: what ``generate`` returns per row for its ``[SEG]`` tokens, in the original photo's pixels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from anymal_box import Boxes, PixelFrame


@dataclass(frozen=True)
class Masks:
    """Bool masks ``[N, H, W]`` (one per ``[SEG]`` token, in order) over the photo of ``frame`` (``W x H``), with
    each mask's mean foreground probability inside it (``scores``; 0 for an empty mask)."""

    data: np.ndarray
    frame: PixelFrame
    scores: np.ndarray

    def __len__(self) -> int:
        return int(self.data.shape[0])

    def boxes(self) -> Boxes:
        """The tightest pixel box around each mask (``[0, 0, 0, 0]`` for an empty one): u-LLaVA's mask-to-box."""
        rows = []
        for mask in self.data:
            ys, xs = np.nonzero(mask)
            rows.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1] if xs.size else [0, 0, 0, 0])
        return Boxes(np.asarray(rows, dtype=np.float64).reshape(-1, 4), self.frame)
