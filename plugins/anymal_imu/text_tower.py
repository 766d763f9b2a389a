"""The frozen text encoder the IMU encoder is aligned to: CLIP's text tower, through open_clip.

As in IMU2CLIP, captions are embedded by a frozen CLIP text tower and the IMU encoder learns to land next to them.
``name="tiny"`` builds a small randomly initialised open_clip ``TextTransformer`` (same tokenizer, same pooling,
seeded), so tests and CPU smoke runs need no download; any other name (``"ViT-L-14"``, the text tower AnyMAL's
image side uses) goes through ``open_clip.create_model`` with its ``pretrained`` tag or local weights file, and
only the text tower is kept.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from anymal.errors import ConfigError

TINY = "tiny"


class FrozenTextTower(nn.Module):
    """A frozen open_clip text encoder and its tokenizer: ``encode(captions)`` gives unit-norm embeddings."""

    def __init__(self, model: nn.Module, tokenizer: object, name: str) -> None:
        super().__init__()
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.name = name

    def _forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if hasattr(self.model, "encode_text"):
            return self.model.encode_text(tokens)
        return self.model(tokens)

    @torch.no_grad()
    def encode(self, captions: list[str], batch_size: int = 256) -> torch.Tensor:
        """Unit-norm ``[len(captions), dim]`` float32 embeddings of ``captions``."""
        device = next(self.model.parameters()).device
        chunks = []
        for start in range(0, len(captions), batch_size):
            tokens = self.tokenizer(list(captions[start : start + batch_size])).to(device)
            chunks.append(F.normalize(self._forward(tokens).float(), dim=-1))
        return torch.cat(chunks)

    @property
    def output_dim(self) -> int:
        """Width of the text embedding space."""
        return int(self.encode([""]).shape[-1])


def build_text_tower(
    name: str,
    pretrained: str | None = None,
    *,
    embed_dim: int = 64,
    width: int = 64,
    layers: int = 2,
    heads: int = 2,
    context_length: int = 32,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> FrozenTextTower:
    """Builds the frozen text tower.

    Args:
        name: ``"tiny"`` for a seeded random open_clip text transformer, or an open_clip model name
            (``"ViT-L-14"``, ``"ViT-B-32"``, ...).
        pretrained: open_clip pretrained tag (``"openai"``) or a local weights file, for named models.
        embed_dim: Output width of the tiny tower (must equal the IMU encoder's ``embed_dim``).
        width: Transformer width of the tiny tower.
        layers: Transformer layers of the tiny tower.
        heads: Attention heads of the tiny tower.
        context_length: Token context of the tiny tower.
        seed: Seed of the tiny tower's random init.
        device: Where the tower runs.
    """
    import open_clip
    from open_clip.tokenizer import SimpleTokenizer
    from open_clip.transformer import TextTransformer

    if name == TINY:
        tokenizer = SimpleTokenizer(context_length=context_length)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = TextTransformer(
                context_length=context_length,
                vocab_size=len(tokenizer.encoder),
                width=width,
                heads=heads,
                layers=layers,
                output_dim=embed_dim,
            )
        return FrozenTextTower(model.to(device), tokenizer, name)
    if name not in open_clip.list_models():
        raise ConfigError(f"text_model={name!r}: not an open_clip model; use 'tiny' or one of open_clip.list_models()")
    model = open_clip.create_model(name, pretrained=pretrained, device=device)
    if hasattr(model, "visual"):
        del model.visual  # only the text tower is needed
    return FrozenTextTower(model, open_clip.get_tokenizer(name), name)
