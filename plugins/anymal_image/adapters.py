"""Pink's bottleneck adapters (Xuan et al., CVPR 2024, eq. 1): ``Z + sigma(Z W_d) W_u``, ``W_u`` zero at init.

Pink inserts one adapter after the pre-attention norm and before self-attention of every block, both in the frozen
ViT and in the frozen LLM (``d_s = 8``: 393,216 ViT and 2,097,152 LLM weights for ViT-L/14 and a 7B LLaMA). PEFT has
no bottleneck-adapter method (its LoRA, IA3 and adaption-prompt tuners change other places), so this is a small
module of our own, applied by the image plugin's options without touching the frozen weights:

* ``vision_adapter_dim``: the image encoder the core freezes and caches is only the ViT's stem (patch embedding,
  positions, ``ln_pre``); :class:`AdaptedViT`, part of the trainable projector, runs the frozen blocks (held by
  reference, never registered, so they are neither trained nor saved with the projector) with an adapter on each
  block's pre-attention norm output, so gradients reach the adapters through the frozen blocks.
* ``llm_adapter_dim``: :func:`attach_llm_adapters` builds one adapter per LLM decoder layer inside the projector and
  adds it with a forward hook on that layer's ``input_layernorm``; the hooks are removed with the plugin.

Adapters compute in float32 whatever the frozen weights' dtype (Pink keeps them in fp32 next to a bf16 model).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from anymal.errors import ConfigError

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {"identity": nn.Identity, "silu": nn.SiLU, "gelu": nn.GELU}


class BottleneckAdapter(nn.Module):
    """``x + up(act(down(x)))``; ``up`` starts at zero, so a fresh adapter is the identity (Pink's init)."""

    def __init__(self, dim: int, bottleneck: int, activation: str = "identity") -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ConfigError(f"adapter_activation={activation!r}: expected one of {', '.join(ACTIVATIONS)}")
        self.down = nn.Linear(dim, bottleneck)
        self.act = ACTIVATIONS[activation]()
        self.up = nn.Linear(bottleneck, dim)
        if not self.down.weight.is_meta:
            nn.init.xavier_uniform_(self.down.weight)
            nn.init.zeros_(self.down.bias)
            nn.init.zeros_(self.up.weight)
            nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        delta = self.up(self.act(self.down(x.to(self.down.weight.dtype))))
        return x + delta.to(x.dtype)


class ViTStem(nn.Module):
    """The frozen encoder of an adapted image plugin: the tower's stem only (its blocks run in :class:`AdaptedViT`).

    The whole tower is registered here, so the core freezes, places and fingerprints it like any encoder.
    """

    def __init__(self, tower: nn.Module) -> None:
        super().__init__()
        self.tower = tower
        self.out_dim = tower.out_dim

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.tower.stem(pixel_values)


class AdaptedViT(nn.Module):
    """Runs a frozen tower's blocks up to its feature layer, with a trainable adapter after each pre-attention norm.

    The tower is kept by reference (``_tower``, not a submodule): its weights stay the encoder's.
    """

    def __init__(self, tower: nn.Module, bottleneck: int, activation: str) -> None:
        super().__init__()
        object.__setattr__(self, "_tower", tower)
        blocks = tower.feature_blocks()
        self.adapters = nn.ModuleList(BottleneckAdapter(tower.out_dim, bottleneck, activation) for _ in blocks)
        self._active = False
        for block, adapter in zip(blocks, self.adapters):
            tower.attention_norm(block).register_forward_hook(self._hook(adapter))

    def _hook(self, adapter: BottleneckAdapter) -> Callable[..., Any]:
        def hook(module: nn.Module, args: Any, output: torch.Tensor) -> torch.Tensor | None:
            return adapter(output) if self._active else None

        return hook

    def forward(self, stem_tokens: torch.Tensor) -> torch.Tensor:
        tower = self._tower
        x = stem_tokens.to(tower.dtype)
        self._active = True
        try:
            for block in tower.feature_blocks():
                x = tower.run_block(block, x)
        finally:
            self._active = False
        return tower.select(x)


class AdaptedImageProjector(nn.Module):
    """An image projector with Pink's adapters: ``vit`` (optional) runs the adapted blocks, ``head`` is the
    configured projector (linear, perceiver, ...), ``llm_adapters`` are filled in when the plugin joins a model."""

    def __init__(self, head: nn.Module, vit: AdaptedViT | None) -> None:
        super().__init__()
        self.vit = vit
        self.head = head
        self.llm_adapters = nn.ModuleList()

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if self.vit is not None:
            features = self.vit(features)
        return self.head(features.to(next(self.head.parameters()).dtype))


_INPUT_NORM = re.compile(r"(?:^|\.)layers\.(\d+)\.input_layernorm$")


def decoder_input_norms(llm: nn.Module) -> list[nn.Module]:
    """The pre-attention norm of each decoder layer of a LLaMA-class LM (``...layers.N.input_layernorm``), in order."""
    found: dict[int, nn.Module] = {}
    for name, module in llm.named_modules():
        match = _INPUT_NORM.search(name)
        if match:
            found.setdefault(int(match.group(1)), module)
    if not found:
        raise ConfigError(
            "llm_adapter_dim: the LLM has no '<...>.layers.N.input_layernorm' modules (a LLaMA-class decoder) to put "
            "Pink's adapters after"
        )
    return [found[i] for i in sorted(found)]


def attach_llm_adapters(
    llm: nn.Module, projector: AdaptedImageProjector, bottleneck: int, activation: str
) -> list[torch.utils.hooks.RemovableHandle]:
    """Builds (once) one adapter per decoder layer in ``projector.llm_adapters`` and hooks each after its layer's
    ``input_layernorm``; returns the hook handles (the model removes them with the plugin)."""
    norms = decoder_input_norms(llm)
    if len(projector.llm_adapters) not in (0, len(norms)):
        raise ConfigError(
            f"llm_adapter_dim: the projector holds {len(projector.llm_adapters)} LLM adapters but the LLM "
            f"has {len(norms)} decoder layers"
        )
    if not len(projector.llm_adapters):
        width = norms[0].weight.shape[-1]
        device = next(projector.parameters()).device
        projector.llm_adapters.extend(BottleneckAdapter(width, bottleneck, activation).to(device) for _ in norms)
        projector.llm_adapters.requires_grad_(any(p.requires_grad for p in projector.head.parameters()))

    def hook_for(adapter: BottleneckAdapter) -> Callable[..., torch.Tensor]:
        return lambda module, args, output: adapter(output)

    return [norm.register_forward_hook(hook_for(a)) for norm, a in zip(norms, projector.llm_adapters)]
