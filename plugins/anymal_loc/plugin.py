"""The ``loc`` output plugin: a ``[LOC]`` token's hidden state -> a box, in the original photo's pixels."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from anymal.errors import ConfigError, DataError, InputError
from anymal.output_plugin import OutputPlugin, RowInputs, TriggerStates
from anymal_box import NORMALIZED, Boxes, Geometry, PixelFrame
from anymal_loc.config import LocConfig
from anymal_loc.head import BoxHead
from anymal_loc.losses import box_losses

PIXEL_SLACK = 1.0  # a pixel label may reach this far past the photo's edge (rounded annotations)


class LocPlugin(OutputPlugin):
    """u-LLaVA's box branch as an output plugin (``outputs: {loc: {}}`` in a model config).

    Training rows carry ``"targets": {"loc": [[x0, y0, x1, y1], ...]}``: one box per ``[LOC]`` in the answers (or
    ``null`` for a ``[LOC]`` without a label), in the original pixels of the row's first image (``label_frame``).
    ``generate`` returns ``out.boxes``: per row, a ``Boxes`` with one box per ``[LOC]`` it generated, in that row's
    original image pixels (normalised when the row has no image).
    """

    name = "loc"
    config_class = LocConfig
    default_tokens = ("[LOC]",)
    output_field = "boxes"
    config: LocConfig

    def build_head(self, llm_dim: int) -> nn.Module:
        return BoxHead(llm_dim, self.config.projection_dim, self.config.decoder_dims)

    # --- data ----------------------------------------------------------------------------------------------
    def geometry(self, row: RowInputs) -> Geometry | None:
        """The geometry of the row's first ``modality`` item (``None`` without one)."""
        items = row.inputs.get(self.config.modality) or []
        if not items:
            return None
        plugin = row.plugins.get(self.config.modality)
        if plugin is None or not hasattr(plugin, "geometry") or not hasattr(plugin, "original_size"):
            raise ConfigError(
                f"output plugin {self.name!r}: the {self.config.modality!r} input plugin has no geometry(); "
                "boxes need one to map to the original image (set modality: to an image plugin)"
            )
        return plugin.geometry(plugin.original_size(items[0]))

    def prepare(self, row: RowInputs, labels: Sequence[Any] | None) -> dict[str, Any]:
        geometry = self.geometry(row)
        boxes, has = [], []
        for i, label in enumerate(labels or []):
            if label is None:
                boxes.append([0.0] * 4)
                has.append(False)
                continue
            boxes.append(self.label_box(label, geometry, f"{row.where}: targets.{self.name}[{i}]"))
            has.append(True)
        return {
            "geometry": geometry,
            "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            "has": torch.tensor(has, dtype=torch.bool),
        }

    def label_box(self, label: Any, geometry: Geometry | None, where: str) -> list[float]:
        """One label as a normalised box on the encoder's input image; a DataError naming ``where`` if it is bad."""
        if geometry is None:
            raise DataError(f"{where}: a box label needs the row's {self.config.modality!r} input, and it has none")
        if isinstance(label, (str, bytes)) or not isinstance(label, Sequence) or len(label) != 4:
            raise DataError(f"{where}: expected [x0, y0, x1, y1] (4 numbers), got {label!r:.80}")
        try:
            x0, y0, x1, y1 = (float(v) for v in label)
        except (TypeError, ValueError):
            raise DataError(f"{where}: expected [x0, y0, x1, y1] (4 numbers), got {label!r:.80}") from None
        if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
            raise DataError(f"{where}: {label!r} holds NaN or infinite values")
        if not (x1 > x0 and y1 > y0):
            raise DataError(f"{where}: {label!r} is not a box: expected x0 < x1 and y0 < y1")
        width, height = geometry.src
        if self.config.label_frame == "pixels":
            frame, extent, slack = PixelFrame(width, height), (width, height), PIXEL_SLACK
        else:
            frame, extent, slack = NORMALIZED, (1.0, 1.0), 1e-6
        if min(x0, y0) < -slack or x1 > extent[0] + slack or y1 > extent[1] + slack:
            raise DataError(
                f"{where}: {label!r} lies outside the image ({self.config.label_frame} frame, "
                f"{extent[0]:g} x {extent[1]:g})"
            )
        moved = geometry.forward(Boxes([x0, y0, x1, y1], frame))
        return [float(v) for v in moved.normalized().data[0]]

    def collate(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "geometry": [row["geometry"] for row in rows],
            "boxes": torch.cat([row["boxes"] for row in rows]) if rows else torch.zeros(0, 4),
            "has": torch.cat([row["has"] for row in rows]) if rows else torch.zeros(0, dtype=torch.bool),
        }

    # --- model ---------------------------------------------------------------------------------------------
    def forward(self, head: nn.Module, frozen: nn.Module | None, states: TriggerStates, batch: Any) -> torch.Tensor:
        return head(states.states)

    def loss(self, outputs: torch.Tensor, states: TriggerStates, batch: Any) -> dict[str, torch.Tensor]:
        boxes, has = batch["boxes"], batch["has"]
        if boxes.shape[0] != outputs.shape[0]:
            raise InputError(
                f"output plugin {self.name!r}: {outputs.shape[0]} {'/'.join(self.tokens)} token(s) in the batch's "
                f"answers but {boxes.shape[0]} box label(s); give one label (or null) per token"
            )
        if not bool(has.any()):
            return {}
        has = has.to(outputs.device)
        return box_losses(outputs[has], boxes.to(outputs.device)[has], self.config.l1_weight, self.config.giou_weight)

    def decode(self, outputs: torch.Tensor, states: TriggerStates, batch: Any) -> list[Boxes]:
        """Per row, its boxes in the original image's pixels (clipped to it), or normalised without an image."""
        values = []
        for pred, geometry in zip(states.split(outputs.detach().float().cpu()), batch["geometry"]):
            boxes = Boxes(pred.numpy().astype(np.float64).reshape(-1, 4), NORMALIZED)
            values.append(geometry.inverse(boxes).clip() if geometry is not None else boxes)
        return values

    # --- testing -------------------------------------------------------------------------------------------
    @classmethod
    def tiny_config(cls) -> LocConfig:
        return LocConfig(projection_dim=16, decoder_dims=[16, 8])

    def example_rows(self) -> list[tuple[RowInputs, list[Any]]]:
        from anymal_image import ImagePlugin

        image = ImagePlugin(ImagePlugin.tiny_config())
        rng = np.random.default_rng(0)
        photo = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
        square = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
        return [
            (RowInputs({"image": [photo]}, {"image": image}, "row 0"), [[4.0, 6.0, 30.0, 40.0]]),
            (RowInputs({"image": [square]}, {"image": image}, "row 1"), [None, [0.0, 0.0, 20.0, 20.0]]),
        ]

    def bad_labels(self) -> list[Any]:
        return [object(), "0 0 1 1", [1, 2, 3], [10, 10, 5, 5], [float("nan"), 0, 1, 1], [0, 0, 1e9, 1e9]]
