"""Frozen vision towers (open_clip or HF CLIP/SigLIP) that return one layer's patch-token features."""

from __future__ import annotations

import hashlib
import inspect
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from anymal.errors import ConfigError
from anymal_image.config import ImagePluginConfig

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


def encoder_key(config: ImagePluginConfig) -> str:
    """Identity of the vision tower a config builds: plugins with equal keys can share one instance."""
    fields = [
        config.backend,
        config.model_name,
        config.pretrained,
        config.model_config,
        config.init_seed,
        config.feature_layer,
        config.keep_cls_token,
    ]
    return "vision:" + hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _seeded(seed: int, build: Callable[[], nn.Module]) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


# --- open_clip -----------------------------------------------------------------------------------------------
def register_open_clip_architecture(model_config: dict[str, Any], prefix: str = "anymal-custom") -> str:
    """Registers an architecture (``vision_cfg``, ``text_cfg``, ``embed_dim``) with open_clip through a JSON file,
    its public API, and returns the model name: ``prefix`` plus a digest of the config, so equal configs share it."""
    import open_clip

    digest = hashlib.sha256(json.dumps(model_config, sort_keys=True).encode()).hexdigest()[:12]
    name = f"{prefix}-{digest}"
    if open_clip.get_model_config(name) is None:
        from anymal.atomic import atomic_write_file

        # one rename: a second process building the same architecture never reads a half-written file
        path = Path(tempfile.gettempdir()) / "anymal-open-clip-configs" / f"{name}.json"
        text = json.dumps(model_config)
        atomic_write_file(path, lambda tmp: tmp.write_text(text))
        open_clip.add_model_config(path)
    return name


def _open_clip_model_name(config: ImagePluginConfig) -> str:
    """The open_clip model name: the configured one, or a custom architecture registered from ``model_config``."""
    if config.model_config is None:
        return config.model_name
    cfg = dict(config.model_config)
    cfg.setdefault("text_cfg", {"context_length": 8, "vocab_size": 64, "width": 8, "heads": 1, "layers": 1})
    cfg.setdefault("embed_dim", cfg["vision_cfg"].get("width", 64))
    return register_open_clip_architecture(cfg)


def _open_clip_preprocess(config: ImagePluginConfig) -> dict[str, Any]:
    import open_clip

    name = _open_clip_model_name(config)
    model_cfg = open_clip.get_model_config(name)
    if model_cfg is None:
        raise ConfigError(f"model_name={config.model_name!r}: unknown open_clip architecture")
    size = model_cfg["vision_cfg"]["image_size"]
    pre = {
        "image_size": size,
        "mean": OPENAI_MEAN,
        "std": OPENAI_STD,
        "interpolation": "bicubic",
        "resize_mode": "shortest",
    }
    if config.pretrained and not Path(config.pretrained).exists():
        tag_cfg = open_clip.get_pretrained_cfg(config.model_name, config.pretrained)
        if not tag_cfg:
            raise ConfigError(
                f"pretrained={config.pretrained!r}: not an open_clip tag for {config.model_name} "
                "and not an existing file"
            )
        pre.update({k: tag_cfg[k] for k in ("mean", "std", "interpolation", "resize_mode") if k in tag_cfg})
    return pre


class OpenClipTower(nn.Module):
    """An open_clip ``VisionTransformer`` (text tower dropped) returning features of ``feature_layer``."""

    def __init__(self, config: ImagePluginConfig) -> None:
        super().__init__()
        import open_clip

        name = _open_clip_model_name(config)
        pretrained = config.pretrained
        model = _seeded(config.init_seed, lambda: open_clip.create_model(name, pretrained=pretrained))
        self.visual = model.visual
        self.n_blocks = len(self.visual.transformer.resblocks)
        self.layer = config.feature_layer % self.n_blocks
        self.keep_cls = config.keep_cls_token
        self.out_dim = self.visual.transformer.width
        grid = self.visual.grid_size
        self.n_tokens = int(grid[0] * grid[1]) + int(self.keep_cls)

    # pieces for adapters in the blocks (anymal_image.adapters): stem -> blocks up to the feature layer -> select
    @property
    def dtype(self) -> torch.dtype:
        return self.visual.conv1.weight.dtype

    def stem(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Tokens entering the first block: patch embedding, class token, positions, ``ln_pre``."""
        return self.visual._embeds(pixel_values)

    def feature_blocks(self) -> list[nn.Module]:
        return list(self.visual.transformer.resblocks[: self.layer + 1])

    def attention_norm(self, block: nn.Module) -> nn.Module:
        return block.ln_1

    def run_block(self, block: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return block(x)

    def select(self, tokens: torch.Tensor) -> torch.Tensor:
        return tokens if self.keep_cls else tokens[:, 1:]

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        out = self.visual.forward_intermediates(
            pixel_values,
            indices=[self.layer],
            stop_early=True,  # blocks after the feature layer are not run
            intermediates_only=True,
            output_fmt="NLC",
            output_extra_tokens=self.keep_cls,
        )
        tokens = out["image_intermediates"][0]
        if self.keep_cls:
            tokens = torch.cat([out["image_intermediates_prefix"][0], tokens], dim=1)
        return tokens


# --- HF transformers -------------------------------------------------------------------------------------------
def _hf_classes(model_type: str):
    from transformers import CLIPVisionConfig, CLIPVisionModel, SiglipVisionConfig, SiglipVisionModel

    if model_type in ("clip", "clip_vision_model"):
        return CLIPVisionConfig, CLIPVisionModel
    if model_type in ("siglip", "siglip_vision_model"):
        return SiglipVisionConfig, SiglipVisionModel
    if model_type in ("blip-2", "blip_2_vision_model"):  # BLIP-2's EVA ViT-g/14 (the Q-Former systems' tower)
        from transformers import Blip2VisionConfig, Blip2VisionModel

        return Blip2VisionConfig, Blip2VisionModel
    raise ConfigError(f"HF vision backend: model_type {model_type!r} is not supported (use CLIP, SigLIP or BLIP-2)")


class HFVisionTower(nn.Module):
    """A transformers ``CLIPVisionModel``/``SiglipVisionModel`` returning hidden states of ``feature_layer``."""

    def __init__(self, config: ImagePluginConfig) -> None:
        super().__init__()
        if config.model_config is not None:
            cfg = dict(config.model_config)
            config_cls, model_cls = _hf_classes(cfg.pop("model_type", "clip_vision_model"))
            self.model = _seeded(config.init_seed, lambda: model_cls(config_cls(**cfg)))
        else:
            from transformers import AutoConfig

            model_type = AutoConfig.from_pretrained(config.model_name).model_type
            _, model_cls = _hf_classes(model_type)
            try:
                self.model = model_cls.from_pretrained(config.model_name)
            except OSError as exc:
                raise ConfigError(f"model_name={config.model_name!r}: cannot load vision tower ({exc})") from None
        self.has_cls = self.model.config.model_type != "siglip_vision_model"
        self.layer = config.feature_layer
        self.keep_cls = config.keep_cls_token
        self.out_dim = self.model.config.hidden_size
        vision = self.model.config
        self.n_tokens = (vision.image_size // vision.patch_size) ** 2 + int(self.has_cls and self.keep_cls)

    # pieces for adapters in the blocks (anymal_image.adapters): stem -> blocks up to the feature layer -> select
    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    def _inner(self) -> nn.Module:
        return self.model.vision_model if hasattr(self.model, "vision_model") else self.model

    def stem(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``hidden_states[0]``: the embeddings (and CLIP's ``pre_layrnorm``)."""
        inner = self._inner()
        x = inner.embeddings(pixel_values)
        pre = getattr(inner, "pre_layrnorm", None)
        return pre(x) if pre is not None else x

    def feature_blocks(self) -> list[nn.Module]:
        layers = list(self._inner().encoder.layers)
        return layers[: self.layer % (len(layers) + 1)]

    def attention_norm(self, block: nn.Module) -> nn.Module:
        return block.layer_norm1

    def run_block(self, block: nn.Module, x: torch.Tensor) -> torch.Tensor:
        # CLIP and SigLIP layers take an attention mask (none for images), BLIP-2's take only the hidden states
        takes_mask = "attention_mask" in inspect.signature(block.forward).parameters
        out = block(x, attention_mask=None) if takes_mask else block(x)
        return out[0] if isinstance(out, tuple) else out

    def select(self, tokens: torch.Tensor) -> torch.Tensor:
        return tokens if (self.keep_cls or not self.has_cls) else tokens[:, 1:]

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        hidden = self.model(pixel_values=pixel_values, output_hidden_states=True).hidden_states[self.layer]
        return hidden if (self.keep_cls or not self.has_cls) else hidden[:, 1:]


def build_tower(config: ImagePluginConfig) -> nn.Module:
    return OpenClipTower(config) if config.backend == "open_clip" else HFVisionTower(config)


def transform_geometry_settings(config: ImagePluginConfig) -> dict[str, Any]:
    """What fixes the geometry of :func:`build_transform`: open_clip's ``image_size`` and ``resize_mode``, or a
    transformers processor's ``shortest_edge`` and ``crop_size`` (CLIP) or fixed ``size`` (SigLIP's squash)."""
    if config.backend == "open_clip":
        pre = _open_clip_preprocess(config)
        return {"image_size": pre["image_size"], "resize_mode": pre["resize_mode"]}
    if config.model_config is not None:
        size = config.model_config.get("image_size", 224)
        if "siglip" in config.model_config.get("model_type", "clip"):
            return {"size": (size, size)}
        return {"shortest_edge": size, "crop_size": size}
    from transformers import AutoImageProcessor

    processor = AutoImageProcessor.from_pretrained(config.model_name)
    size, crop = dict(processor.size), getattr(processor, "crop_size", None)
    if "shortest_edge" in size:
        crop_size = crop["height"] if crop and getattr(processor, "do_center_crop", True) else None
        return {"shortest_edge": size["shortest_edge"], "crop_size": crop_size}
    return {"size": (size["width"], size["height"])}


def build_transform(config: ImagePluginConfig) -> Callable:
    """The encoder's own eval transform: PIL image -> ``[3, H, W]`` float tensor."""
    if config.backend == "open_clip":
        import open_clip

        pre = _open_clip_preprocess(config)
        return open_clip.image_transform(
            pre["image_size"],
            is_train=False,
            mean=pre["mean"],
            std=pre["std"],
            interpolation=pre["interpolation"],
            resize_mode=pre["resize_mode"],
        )
    if config.model_config is not None:
        from transformers import CLIPImageProcessor, SiglipImageProcessor

        size = config.model_config.get("image_size", 224)
        if "siglip" in config.model_config.get("model_type", "clip"):
            processor = SiglipImageProcessor(size={"height": size, "width": size})
        else:
            processor = CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
    else:
        from transformers import AutoImageProcessor

        processor = AutoImageProcessor.from_pretrained(config.model_name)
    return lambda image: processor(images=image, return_tensors="pt")["pixel_values"][0]
