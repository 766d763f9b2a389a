"""The ``seg`` output plugin: a ``[SEG]`` token's hidden state -> a mask of the row's photo, through SAM."""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from anymal.errors import ConfigError, DataError, InputError
from anymal.output_plugin import OutputPlugin, RowInputs, TriggerStates
from anymal_box import PixelFrame
from anymal_seg.config import SegConfig
from anymal_seg.embeddings import EmbeddingCache, pixel_key
from anymal_seg.head import SegHead, prompt_inputs
from anymal_seg.losses import dice_loss, sigmoid_bce_loss
from anymal_seg.masks import Masks
from anymal_seg.sam import input_size, load_sam, sam_geometry, sam_processor
from anymal_seg.warp import logits_to_source


class SamFrozen(nn.Module):
    """SAM's frozen parts: the image encoder (its embeddings are cached), the prompt encoder and the positional
    encoding the mask decoder reads. Fingerprinted in checkpoints like an input plugin's encoder."""

    def __init__(self, sam) -> None:
        super().__init__()
        self.vision_encoder = sam.vision_encoder
        self.prompt_encoder = sam.prompt_encoder
        self.shared_image_embedding = sam.shared_image_embedding

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.vision_encoder(pixel_values)[0]


class SegPlugin(OutputPlugin):
    """u-LLaVA's pixel branch as an output plugin (``outputs: {seg: {sam: path/to/sam}}`` in a model config).

    Training rows carry ``"targets": {"seg": [mask, ...]}``: one mask per ``[SEG]`` in the answers (``null`` for
    a ``[SEG]`` without one) over the row's first image, as a COCO RLE (``{"size": [h, w], "counts": ...}``),
    COCO polygons (``[[x1, y1, x2, y2, ...], ...]``), a path to a mask image (non-zero pixels are in) or a
    ``[h, w]`` array. ``generate`` returns ``out.masks``: per row a :class:`Masks` with one mask per ``[SEG]`` it
    generated, in that row's original image pixels (``None`` for a row without an image).
    """

    name = "seg"
    config_class = SegConfig
    default_tokens = ("[SEG]",)
    output_field = "masks"
    config: SegConfig

    def __init__(self, config: SegConfig | None = None) -> None:
        super().__init__(config)
        self._sam_model = None
        self._processor = None
        self.cache = EmbeddingCache(self.config.embedding_cache, self.config.cache_items)

    # --- modules -------------------------------------------------------------------------------------------
    def _sam(self):
        if self._sam_model is None:
            self._sam_model = load_sam(self.config.sam, self.config.sam_config, self.config.init_seed)
        return self._sam_model

    @property
    def image_size(self) -> int:
        return input_size(self._sam())

    def build_frozen(self) -> nn.Module:
        return SamFrozen(self._sam())

    def build_head(self, llm_dim: int) -> nn.Module:
        return SegHead(self._sam(), llm_dim, self.config.projection_dim)

    # --- memory planning -----------------------------------------------------------------------------------
    def architecture_config(self) -> SegConfig:
        """``sam: <folder>`` becomes ``sam_config: <its config.json>``: the planner builds SAM on the meta device,
        where ``from_pretrained`` cannot run. ConfigError naming the folder when its config.json is not there."""
        if self.config.sam is None:
            return self.config
        config_file = Path(self.config.sam).expanduser() / "config.json"
        try:
            architecture = json.loads(config_file.read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"seg: sam={self.config.sam!r}: the memory planner reads SAM's architecture from {config_file} "
                f"({type(exc).__name__}: {exc}); give sam_config (a SamConfig dict) to plan without the checkpoint"
            ) from None
        if not isinstance(architecture, dict):
            raise ConfigError(f"seg: sam={self.config.sam!r}: {config_file} does not hold a JSON object")
        return dataclasses.replace(self.config, sam=None, sam_config=architecture)

    def planned_workspace_bytes(self, rows: int, dtype_bytes: int) -> int:
        """SAM's image encoder on ``rows`` images (the embedding cache's misses; a first epoch misses them all).

        Its attention adds a decomposed relative-position bias of ``heads x n x n`` per image at a global layer
        (``n`` = patches; 16 x 4096 x 4096 for ViT-H at 1024 px) and, measured on CPU with transformers 5.24's
        SDPA attention, the peak holds two such blocks; the token activations add about ``n x (6 hidden +
        mlp_dim)`` elements (tests/plan/test_plan_outputs.py measures both on a small SAM)."""
        vision = self._sam().config.vision_config
        grid = vision.image_size // vision.patch_size
        tokens = grid * grid
        heads = vision.num_attention_heads
        attention = tokens * tokens if vision.global_attn_indexes else 0
        if len(vision.global_attn_indexes) < vision.num_hidden_layers and vision.window_size > 0:
            windows = math.ceil(grid / vision.window_size) ** 2
            attention = max(attention, windows * vision.window_size**4)
        mlp_dim = vision.mlp_dim or int(vision.hidden_size * vision.mlp_ratio)
        per_image = 2 * heads * attention + tokens * (6 * vision.hidden_size + mlp_dim)
        return rows * per_image * dtype_bytes

    # --- data ----------------------------------------------------------------------------------------------
    def prepare(self, row: RowInputs, labels: Sequence[Any] | None) -> dict[str, Any]:
        """SAM's input for the row's first image, its geometry, and the mask labels as bool tensors ``[h, w]``."""
        from anymal_image.io import load_image

        items = row.inputs.get(self.config.modality) or []
        if not items:
            if any(label is not None for label in labels or []):
                raise DataError(
                    f"{row.where}: targets.{self.name}: mask labels need the row's {self.config.modality!r} input, "
                    "and it has none"
                )
            return {"pixels": None, "key": None, "geometry": None, "masks": [None] * len(labels or [])}
        image = load_image(items[0], where=f"{row.where}: {self.config.modality}")
        if self._processor is None:
            self._processor = sam_processor(self.image_size)
        pixels = self._processor(images=image, return_tensors="pt")["pixel_values"][0]
        size = (image.width, image.height)
        masks = [
            None if label is None else self.label_mask(label, size, f"{row.where}: targets.{self.name}[{i}]")
            for i, label in enumerate(labels or [])
        ]
        return {"pixels": pixels, "key": pixel_key(pixels), "geometry": sam_geometry(size, self.image_size),
                "masks": masks}  # fmt: skip

    def label_mask(self, label: Any, size: tuple[int, int], where: str) -> torch.Tensor:
        """One mask label as a bool tensor ``[h, w]`` of the photo (``size = (w, h)``); DataError naming ``where``."""
        from anymal_box import decode_segmentation

        width, height = size
        if isinstance(label, (str, os.PathLike)):
            array = self._mask_file(Path(label), where)
        elif isinstance(label, (dict, list)):
            if isinstance(label, list) and not all(isinstance(p, list) for p in label):
                raise DataError(f"{where}: a list label must be COCO polygons [[x1, y1, x2, y2, ...], ...]")
            array = decode_segmentation(label, height, width, where=where)
        elif isinstance(label, (np.ndarray, torch.Tensor)):
            array = np.asarray(label.detach().cpu() if isinstance(label, torch.Tensor) else label)
            if array.dtype != bool and not np.isin(array, (0, 1)).all():
                raise DataError(f"{where}: a mask array must hold 0/1 or booleans")
        else:
            raise DataError(
                f"{where}: expected a COCO RLE dict, COCO polygons, a mask image path or an [h, w] array, "
                f"got {type(label).__name__}"
            )
        if array.shape != (height, width):
            expected = (height, width)
            raise DataError(f"{where}: mask of shape {tuple(array.shape)}, expected the image's (h, w) = {expected}")
        return torch.from_numpy(array.astype(bool))

    @staticmethod
    def _mask_file(path: Path, where: str) -> np.ndarray:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as image:
                return np.asarray(image.convert("L")) > 0
        except (OSError, UnidentifiedImageError) as exc:
            raise DataError(f"{where}: cannot read the mask image {path} ({exc})") from None

    def collate(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "pixels": [row["pixels"] for row in rows],
            "keys": [row["key"] for row in rows],
            "geometry": [row["geometry"] for row in rows],
            "masks": [row["masks"] for row in rows],
        }

    # --- model ---------------------------------------------------------------------------------------------
    def forward(self, head: nn.Module, frozen: nn.Module | None, states: TriggerStates, batch: Any) -> torch.Tensor:
        """Low-resolution mask logits ``[N, 4g, 4g]`` over SAM's input square, one per trigger occurrence."""
        assert frozen is not None  # build_frozen always gives SAM's frozen parts
        device = states.states.device
        rows = [int(r) for r in states.rows.tolist()]
        if not rows:
            return torch.zeros(0, 1, 1, device=device)
        missing = sorted({r for r in rows if batch["pixels"][r] is None})
        if missing:
            raise InputError(
                f"output plugin {self.name!r}: {'/'.join(self.tokens)} in batch row(s) {missing}, which have no "
                f"{self.config.modality!r} input to segment"
            )
        used = sorted(set(rows))
        weight = next(frozen.parameters())  # SAM's image encoder may sit in bf16 on a GPU
        pixels = torch.stack([batch["pixels"][r] for r in used]).to(weight.device, weight.dtype)
        embeddings = self.cache.get_many([batch["keys"][r] for r in used], pixels, frozen)
        index = {r: i for i, r in enumerate(used)}
        # the head (trainable, float32) reads them in its own dtype even when SAM sits in bf16 (frozen_dtype)
        per_occurrence = embeddings[[index[r] for r in rows]].to(device, states.states.dtype)
        dense, positions = prompt_inputs(frozen, len(rows), states.states.dtype)
        return head(states.states, per_occurrence, dense.to(device), positions.to(device))

    def _source_logits(self, outputs: torch.Tensor, states: TriggerStates, batch: Any) -> list[torch.Tensor]:
        """Each occurrence's logits over its row's photo ``[h, w]``."""
        rows = [int(r) for r in states.rows.tolist()]
        return [logits_to_source(outputs[i : i + 1], batch["geometry"][r])[0] for i, r in enumerate(rows)]

    def _labels(self, states: TriggerStates, batch: Any) -> list[torch.Tensor | None]:
        """The label of each occurrence (its row's labels in order)."""
        labels: list[torch.Tensor | None] = []
        for row, count in enumerate(states.counts):
            given = batch["masks"][row]
            if len(given) != count:
                raise InputError(
                    f"output plugin {self.name!r}: batch row {row} has {count} {'/'.join(self.tokens)} token(s) in "
                    f"its answers but {len(given)} mask label(s); give one label (or null) per token"
                )
            labels.extend(given)
        return labels

    def loss(self, outputs: torch.Tensor, states: TriggerStates, batch: Any) -> dict[str, torch.Tensor]:
        labels = self._labels(states, batch)
        labelled = [i for i, label in enumerate(labels) if label is not None]
        if not labelled:
            return {}
        rows = [int(r) for r in states.rows.tolist()]
        bce, dice = outputs.new_zeros(()), outputs.new_zeros(())
        for i in labelled:
            logits = logits_to_source(outputs[i : i + 1], batch["geometry"][rows[i]])
            target = labels[i].to(logits.device, logits.dtype)[None]  # type: ignore[union-attr]
            bce = bce + sigmoid_bce_loss(logits, target)
            dice = dice + dice_loss(logits, target, scale=self.config.dice_scale)
        n = len(labelled) + 1e-8
        return {"mask_bce": self.config.bce_weight * bce / n, "mask_dice": self.config.dice_weight * dice / n}

    def decode(self, outputs: torch.Tensor, states: TriggerStates, batch: Any) -> list[Masks | None]:
        """Per row, its masks in the original photo's pixels (``None`` for a row without an image)."""
        logits = self._source_logits(outputs.detach().float(), states, batch) if len(states) else []
        values: list[Masks | None] = []
        start = 0
        for row, count in enumerate(states.counts):
            geometry = batch["geometry"][row]
            mine = logits[start : start + count]
            start += count
            if geometry is None:
                values.append(None)
                continue
            width, height = (round(v) for v in geometry.src)
            data = np.stack([(x > self.config.threshold).cpu().numpy() for x in mine]) if mine else None
            if data is None:
                data = np.zeros((0, height, width), bool)
            probs = [torch.sigmoid(x).cpu().numpy() for x in mine]
            scores = np.asarray([float(p[m].mean()) if m.any() else 0.0 for p, m in zip(probs, data)])
            values.append(Masks(data.astype(bool), PixelFrame(width, height), scores))
        return values

    # --- testing -------------------------------------------------------------------------------------------
    @classmethod
    def tiny_config(cls) -> SegConfig:
        return SegConfig(sam_config=tiny_sam_config(), projection_dim=16)

    def example_rows(self) -> list[tuple[RowInputs, list[Any]]]:
        from anymal_image import ImagePlugin

        image = ImagePlugin(ImagePlugin.tiny_config())
        rng = np.random.default_rng(0)
        photo = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
        square = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
        first = np.zeros((48, 64), bool)
        first[6:40, 4:30] = True
        second = np.zeros((40, 40), bool)
        second[:20, :20] = True
        return [
            (RowInputs({"image": [photo]}, {"image": image}, "row 0"), [first]),
            (RowInputs({"image": [square]}, {"image": image}, "row 1"), [None, second]),
        ]

    def bad_labels(self) -> list[Any]:
        return [object(), 3.5, "/nonexistent/anymal-missing-mask.png", [1, 2, 3], {"size": [1, 1]},
                np.zeros((5, 5), bool), np.full((48, 64), 7)]  # fmt: skip


def tiny_sam_config(image_size: int = 64, patch_size: int = 8, width: int = 32) -> dict[str, Any]:
    """A ``SamConfig`` dict small enough for CPU tests: a 2-layer ViT over ``image_size`` pixels, ``width``-wide
    prompt and mask decoder (SAM's released models: 1024 px, patch 16, 256 wide).

    ``initializer_range`` 0.02: ``SamVisionConfig`` defaults to 1e-10 (its weights are always loaded from a
    checkpoint), which leaves a randomly built image encoder outputting zeros for every image.
    """
    grid = image_size // patch_size
    return {
        "vision_config": {"hidden_size": width, "output_channels": width, "num_hidden_layers": 2,
                          "num_attention_heads": 2, "image_size": image_size, "patch_size": patch_size,
                          "mlp_dim": 2 * width, "global_attn_indexes": [1], "window_size": 0,
                          "num_pos_feats": width // 2, "initializer_range": 0.02},
        "prompt_encoder_config": {"hidden_size": width, "image_size": image_size, "patch_size": patch_size,
                                  "image_embedding_size": grid, "mask_input_channels": 4},
        "mask_decoder_config": {"hidden_size": width, "mlp_dim": 2 * width, "num_hidden_layers": 2,
                                "num_attention_heads": 2, "iou_head_hidden_dim": width, "iou_head_depth": 2},
    }  # fmt: skip
