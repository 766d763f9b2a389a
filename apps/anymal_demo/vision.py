"""A tiny CLIP for the demo's vision tower, trained contrastively on the world's training pictures and captions.

AnyMAL's image and video encoders are CLIP vision towers: frozen, but pretrained so that their features already
say what is in a picture. A randomly initialised ViT sees colour and place, but hardly shape. So, as real CLIP was,
the demo's tower is trained with the symmetric contrastive (InfoNCE) loss against a text tower of its own, on the
training pictures of the world, and then frozen for good. Pictures with the same caption are positives of one
another (the world repeats captions, unlike the web). The open_clip model it trains has exactly the architecture
the image plugin's ``model_config`` names, and is saved as the plugin's ``pretrained`` file.
"""

from __future__ import annotations

import itertools
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from tqdm.auto import tqdm

from anymal.errors import ConfigError
from anymal_demo.world.vocabulary import IMAGE


@dataclass
class VisionPretrainingConfig:
    """Schedule of the tiny CLIP's training.

    Attributes:
        steps: optimiser steps.
        batch_size: picture/caption pairs per step.
        lr: peak AdamW learning rate (cosine decay, 5% warm-up).
        seed: seeds the initialisation and the batch order.
    """

    steps: int = 300
    batch_size: int = 64
    lr: float = 0.002
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 2 or not self.lr > 0:
            raise ConfigError(
                f"vision_encoder: steps={self.steps}, batch_size={self.batch_size}, lr={self.lr}: expected at least "
                "one step, at least two pairs per batch (the loss contrasts them) and a positive learning rate"
            )


def canonical_caption(truth: dict[str, str]) -> str:
    """The one caption CLIP is trained with for a picture: its first caption template."""
    return IMAGE.captions[0].format(**IMAGE.phrases(truth))


def register_architecture(model_config: dict[str, Any]) -> str:
    """Registers ``model_config`` (vision_cfg, text_cfg, embed_dim) with open_clip; returns its model name."""
    from anymal_image.encoders import register_open_clip_architecture

    return register_open_clip_architecture(model_config, prefix="anymal-demo-clip")


def contrastive_loss(image: torch.Tensor, text: torch.Tensor, scale: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE where pairs sharing a caption id are positives of each other."""
    logits = scale.exp() * image @ text.T
    targets = (ids[:, None] == ids[None, :]).to(logits.dtype)
    targets = targets / targets.sum(dim=1, keepdim=True)
    return -((targets * logits.log_softmax(1)).sum(1).mean() + (targets * logits.log_softmax(0)).sum(0).mean()) / 2


def caption_table() -> list[str]:
    """The canonical caption of every point of the picture attribute space."""
    names = [a.name for a in IMAGE.attributes]
    return [
        canonical_caption(dict(zip(names, values)))
        for values in itertools.product(*(a.values for a in IMAGE.attributes))
    ]


@torch.no_grad()
def retrieval_accuracy(model, pixels: torch.Tensor, ids: torch.Tensor, table: torch.Tensor) -> float:
    """How often a picture's most similar caption among all ``table`` captions (token ids) is its own."""
    model.eval()
    text = F.normalize(model.encode_text(table), dim=-1)
    image = F.normalize(
        torch.cat([model.encode_image(pixels[i : i + 256]) for i in range(0, len(pixels), 256)]), dim=-1
    )
    return float(((image @ text.T).argmax(1) == ids).float().mean())


def _pictures(plugin, world: Path, name: str, index: dict[str, int]) -> tuple[torch.Tensor, torch.Tensor]:
    rows = [json.loads(line) for line in (world / name).read_text().splitlines() if line.strip()]
    pixels = torch.stack([plugin.preprocess(str(world / row["image"])) for row in rows])
    return pixels, torch.tensor([index[canonical_caption(row["truth"])] for row in rows])


def pretrain_vision_tower(
    image_config: dict[str, Any], world: Path, output: Path, config: VisionPretrainingConfig, progress: bool = True
) -> dict[str, Any]:
    """Trains the tiny CLIP named by the image plugin config and saves it (safetensors) at ``output``.

    ``image_config`` is the demo model's ``image`` plugin section; its ``model_config`` must spell out ``text_cfg``
    so that the plugin rebuilds the same architecture when it loads the file.
    """
    import open_clip
    from open_clip.tokenizer import SimpleTokenizer

    from anymal.config import config_from_dict
    from anymal_image import ImagePlugin, ImagePluginConfig

    start = time.perf_counter()
    model_config = image_config["model_config"]
    name = register_architecture(model_config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = open_clip.create_model(name, pretrained=None)
    untrained = {**image_config, "pretrained": None}
    plugin = ImagePlugin(config_from_dict(ImagePluginConfig, untrained, "image"))  # its own eval transform
    tokenizer = SimpleTokenizer(context_length=model_config["text_cfg"]["context_length"])
    captions = caption_table()
    table = tokenizer(captions)
    index = {caption: i for i, caption in enumerate(captions)}
    pixels, ids = _pictures(plugin, world, "pairs_image.jsonl", index)
    held_pixels, held_ids = _pictures(plugin, world, "heldout_image.jsonl", index)
    before = retrieval_accuracy(model, held_pixels, held_ids, table)

    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.lr, weight_decay=0.05)
    warmup = max(1, config.steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, config.steps) / config.steps)),
    )
    generator = torch.Generator().manual_seed(config.seed)
    losses: list[float] = []
    model.train()
    bar = tqdm(range(config.steps), desc="vision tower (tiny CLIP)", disable=not progress, unit="step")
    for _ in bar:
        batch = torch.randint(0, len(pixels), (min(config.batch_size, len(pixels)),), generator=generator)
        image = F.normalize(model.encode_image(pixels[batch]), dim=-1)
        text = F.normalize(model.encode_text(table[ids[batch]]), dim=-1)
        loss = contrastive_loss(image, text, model.logit_scale, ids[batch])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        losses.append(loss.item())
        bar.set_postfix(loss=f"{losses[-1]:.3f}", refresh=False)
    model.eval()
    after = retrieval_accuracy(model, held_pixels, held_ids, table)
    output.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, str(output))
    return {
        "retrieval_acc_before": before,
        "retrieval_acc_after": after,
        "distinct_captions": len(captions),
        "losses": losses,
        "seconds": time.perf_counter() - start,
        "checkpoint": str(output),
    }
