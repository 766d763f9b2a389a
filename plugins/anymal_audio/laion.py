"""Loading the audio tower of an original LAION-CLAP ``.pt`` checkpoint into transformers' CLAP audio model.

Why a conversion and not the ``laion_clap`` package: ``laion_clap.CLAP_Module`` downloads ``roberta-base`` in its
constructor (so it cannot be built offline) and the package pins ``numpy<2``. transformers'
``ClapAudioModelWithProjection`` is the same HTSAT audio branch and projection head, so we rename the LAION state
dict (``audio_branch.*`` and ``audio_projection.*``) into its layout, split the fused ``qkv`` projections into
query/key/value, infer the architecture from tensor shapes, and load strictly: every weight of the transformers
model must come from the checkpoint. The parts transformers computes elsewhere are skipped: the STFT and mel
filterbank buffers (the log-mel comes from ``ClapFeatureExtractor``), the AudioSet classification head
(``tscam_conv``, ``head``), precomputed shifted-window masks, and the text branch.

Only HTSAT audio branches with 2-D feature fusion (or none) exist in transformers; PANN (CNN14/CNN10) branches
and 1-D fusion variants are refused with a message saying so.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any

import torch

from anymal.errors import CheckpointError

HF_ENCODER = "audio_model.audio_encoder."
_BLOCK = re.compile(r"^audio_branch\.layers\.(\d+)\.blocks\.(\d+)\.(.+)$")
_DOWNSAMPLE = re.compile(r"^audio_branch\.layers\.(\d+)\.downsample\.(.+)$")
_BLOCK_RENAMES = {
    "norm1.": "layernorm_before.",
    "norm2.": "layernorm_after.",
    "attn.proj.": "attention.output.dense.",
    "attn.relative_position_bias_table": "attention.self.relative_position_bias_table",
    "attn.relative_position_index": "attention.self.relative_position_index",
    "mlp.fc1.": "intermediate.dense.",
    "mlp.fc2.": "output.dense.",
}
_DIRECT_RENAMES = {
    "audio_branch.bn0.": HF_ENCODER + "batch_norm.",
    "audio_branch.patch_embed.": HF_ENCODER + "patch_embed.",
    "audio_branch.norm.": HF_ENCODER + "norm.",
    "audio_projection.0.": "audio_projection.linear1.",
    "audio_projection.2.": "audio_projection.linear2.",
}
# LAION modules transformers does not have (computed elsewhere or not used for embeddings).
_SKIPPED_PREFIXES = (
    "audio_branch.spectrogram_extractor.",
    "audio_branch.logmel_extractor.",
    "audio_branch.tscam_conv.",
    "audio_branch.head.",
)
_PANN_MARKERS = ("audio_branch.conv_block1.", "audio_branch.fc_audioset.")
# laion_clap's HTSAT always uses a 256-wide spectrogram image with patch stride equal to the patch size.
LAION_SPEC_SIZE = 256


def load_laion_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The flat state dict of a LAION-CLAP checkpoint file (``{"state_dict": ...}``, DDP ``module.`` prefixes ok).

    Uses ``weights_only=True`` (no arbitrary pickles) and memory-maps when it can, so that inspecting a
    multi-gigabyte checkpoint's keys costs little.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: LAION-CLAP checkpoint not found")
    try:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:  # legacy (non-zip) serialisation cannot be memory-mapped
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and format errors all mean the same to the user
        raise CheckpointError(
            f"{path}: not a loadable PyTorch checkpoint with plain tensors (torch.load(weights_only=True): "
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        ) from None
    state = obj.get("state_dict", obj) if isinstance(obj, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: expected a state dict (or a dict with 'state_dict') of tensors")
    return {(k[len("module.") :] if k.startswith("module.") else k): v for k, v in state.items()}


def _require(state: dict[str, torch.Tensor], key: str, where: str) -> torch.Tensor:
    if key not in state:
        raise CheckpointError(f"{where}: missing {key!r}; expected an HTSAT audio branch from laion_clap")
    return state[key]


def infer_audio_config(state: dict[str, torch.Tensor], where: str = "LAION-CLAP checkpoint") -> dict[str, Any]:
    """``ClapAudioConfig`` fields of the HTSAT audio branch in ``state``, read off its tensor shapes.

    ``spec_size`` (the spectrogram image width) is read off the shifted-window masks laion_clap saves with the
    weights; checkpoints without them get no ``spec_size`` (laion_clap's is ``LAION_SPEC_SIZE``).
    """
    if any(k.startswith(_PANN_MARKERS) for k in state):
        raise CheckpointError(
            f"{where}: a PANN (CNN) audio branch; only HTSAT audio branches are supported because transformers' "
            "CLAP implements HTSAT only (use an HTSAT checkpoint such as 630k-audioset-best.pt)"
        )
    if any(k.startswith("audio_branch.mel_conv1d.") for k in state):
        raise CheckpointError(f"{where}: 1-D feature fusion is not implemented by transformers' CLAP; use 2-D fusion")
    if not any(k.startswith("audio_branch.") for k in state):
        raise CheckpointError(f"{where}: no 'audio_branch.*' weights; expected a LAION-CLAP (laion_clap) checkpoint")
    proj = _require(state, "audio_branch.patch_embed.proj.weight", where)
    blocks: dict[int, int] = {}
    for key in state:
        match = _BLOCK.match(key)
        if match:
            layer, block = int(match.group(1)), int(match.group(2))
            blocks[layer] = max(blocks.get(layer, 0), block + 1)
    if not blocks or sorted(blocks) != list(range(len(blocks))):
        raise CheckpointError(f"{where}: expected consecutive 'audio_branch.layers.N.blocks.M' Swin layers")
    heads = [
        _require(state, f"audio_branch.layers.{i}.blocks.0.attn.relative_position_bias_table", where).shape[1]
        for i in blocks
    ]
    table_rows = state["audio_branch.layers.0.blocks.0.attn.relative_position_bias_table"].shape[0]
    embed = proj.shape[0]
    fc1 = _require(state, "audio_branch.layers.0.blocks.0.mlp.fc1.weight", where)
    head = state.get("audio_branch.tscam_conv.weight")
    window = (math.isqrt(table_rows) + 1) // 2
    config = {
        "num_mel_bins": _require(state, "audio_branch.bn0.weight", where).shape[0],
        "patch_size": proj.shape[2],
        "patch_stride": [proj.shape[2], proj.shape[3]],
        "patch_embeds_hidden_size": embed,
        "depths": [blocks[i] for i in sorted(blocks)],
        "num_attention_heads": heads,
        "window_size": window,
        "mlp_ratio": fc1.shape[0] / embed,
        "qkv_bias": "audio_branch.layers.0.blocks.0.attn.qkv.bias" in state,
        "hidden_size": embed * 2 ** (len(blocks) - 1),
        "projection_dim": _require(state, "audio_projection.2.weight", where).shape[0],
        "enable_fusion": any(k.startswith("audio_branch.patch_embed.fusion_model.") for k in state),
        "enable_patch_layer_norm": "audio_branch.patch_embed.norm.weight" in state,
        "projection_hidden_act": "relu",
    }
    spec_size = spec_size_from_masks(state, window, proj.shape[2])
    if spec_size is not None:
        config["spec_size"] = spec_size
    if config["enable_fusion"]:
        config["fusion_type"] = "aff_2d"
    if head is not None:
        config["num_classes"] = head.shape[0]
    return config


def spec_size_from_masks(state: dict[str, torch.Tensor], window: int, patch_stride: int) -> int | None:
    """The spectrogram image width implied by a saved shifted-window mask, or ``None`` without one.

    A shifted block of stage ``i`` stores one mask per window: ``(grid_i / window) ** 2`` of them, where the
    stage's token grid is ``spec_size / patch_stride / 2**i`` wide.
    """
    for key, mask in state.items():
        match = _BLOCK.match(key)
        if match and match.group(3) == "attn_mask" and mask.dim() == 3:
            windows_per_side = math.isqrt(mask.shape[0])
            return windows_per_side * window * 2 ** int(match.group(1)) * patch_stride
    return None


def _rename_block_tail(tail: str) -> str | None:
    for old, new in _BLOCK_RENAMES.items():
        if tail.startswith(old):
            return new + tail[len(old) :]
    return None


def laion_to_hf_state_dict(
    state: dict[str, torch.Tensor], where: str = "LAION-CLAP checkpoint"
) -> dict[str, torch.Tensor]:
    """Renames a LAION-CLAP audio state dict to ``ClapAudioModelWithProjection`` keys (text branch dropped).

    Raises:
        CheckpointError: an ``audio_branch`` weight has no counterpart in transformers (a layout we do not know,
            so loading it silently would give wrong embeddings).
    """
    out: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    for key, value in state.items():
        if not key.startswith(("audio_branch.", "audio_projection.")) or key.startswith(_SKIPPED_PREFIXES):
            continue
        block = _BLOCK.match(key)
        if block:
            layer, index, tail = block.groups()
            prefix = f"{HF_ENCODER}layers.{layer}.blocks.{index}."
            if tail == "attn_mask":
                continue  # transformers builds the shifted-window mask on the fly
            if tail.startswith("attn.qkv."):
                for name, part in zip(("query", "key", "value"), value.chunk(3, dim=0)):
                    out[f"{prefix}attention.self.{name}.{tail[len('attn.qkv.') :]}"] = part.contiguous()
                continue
            renamed = _rename_block_tail(tail)
            if renamed is None:
                unknown.append(key)
            else:
                out[prefix + renamed] = value
            continue
        down = _DOWNSAMPLE.match(key)
        if down:
            out[f"{HF_ENCODER}layers.{down.group(1)}.downsample.{down.group(2)}"] = value
            continue
        for old, new in _DIRECT_RENAMES.items():
            if key.startswith(old):
                out[new + key[len(old) :]] = value
                break
        else:
            unknown.append(key)
    if unknown:
        raise CheckpointError(f"{where}: unknown audio weights {unknown[:5]}{' ...' if len(unknown) > 5 else ''}")
    return out


def hf_to_laion_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The inverse renaming: a ``ClapAudioModelWithProjection`` state dict in LAION-CLAP's layout.

    Useful to export a transformers CLAP audio tower to code that expects laion_clap's keys; the skipped LAION
    modules (STFT, mel filterbank, AudioSet head) are absent from the result.
    """
    inverse_block = {new: old for old, new in _BLOCK_RENAMES.items()}
    inverse_direct = {new: old for old, new in _DIRECT_RENAMES.items()}
    hf_block = re.compile(r"^" + re.escape(HF_ENCODER) + r"layers\.(\d+)\.blocks\.(\d+)\.(.+)$")
    out: dict[str, torch.Tensor] = {}
    qkv: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        block = hf_block.match(key)
        if block:
            layer, index, tail = block.groups()
            prefix = f"audio_branch.layers.{layer}.blocks.{index}."
            qkv_part = re.match(r"^attention\.self\.(query|key|value)\.(weight|bias)$", tail)
            if qkv_part:
                qkv.setdefault(f"{prefix}attn.qkv.{qkv_part.group(2)}", {})[qkv_part.group(1)] = value
                continue
            for new, old in inverse_block.items():
                if tail.startswith(new):
                    out[prefix + old + tail[len(new) :]] = value
                    break
            else:
                raise CheckpointError(f"transformers CLAP audio key {key!r} has no LAION-CLAP counterpart")
            continue
        if key.startswith(HF_ENCODER + "layers.") and ".downsample." in key:
            out["audio_branch." + key[len(HF_ENCODER) :]] = value
            continue
        for new, old in inverse_direct.items():
            if key.startswith(new):
                out[old + key[len(new) :]] = value
                break
        else:
            raise CheckpointError(f"transformers CLAP audio key {key!r} has no LAION-CLAP counterpart")
    for key, parts in qkv.items():
        out[key] = torch.cat([parts["query"], parts["key"], parts["value"]], dim=0)
    return out
