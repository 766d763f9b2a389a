"""The LLaMA-family architecture numbers the memory planner needs, and exact parameter counts from them.

An architecture comes from a built-in preset (the LLaMA-2 sizes), from a Hugging Face ``config.json`` (read from
disk, never fetched), or from explicit numbers; explicit numbers override the other two.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from anymal.errors import ConfigError

# The published LLaMA-2 architectures (Touvron et al., 2023; the HF config.json of meta-llama/Llama-2-*-hf).
PRESETS: dict[str, dict[str, int | bool]] = {
    "llama2-7b": dict(n_layers=32, hidden=4096, intermediate=11008, heads=32, kv_heads=32, vocab=32000),
    "llama2-13b": dict(n_layers=40, hidden=5120, intermediate=13824, heads=40, kv_heads=40, vocab=32000),
    "llama2-70b": dict(n_layers=80, hidden=8192, intermediate=28672, heads=64, kv_heads=8, vocab=32000),
}
_HF_KEYS = {
    "n_layers": "num_hidden_layers",
    "hidden": "hidden_size",
    "intermediate": "intermediate_size",
    "heads": "num_attention_heads",
    "kv_heads": "num_key_value_heads",
    "vocab": "vocab_size",
    "tie_embeddings": "tie_word_embeddings",
    "head_dim": "head_dim",
}
LINEAR_NAMES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class Arch:
    """A decoder-only LLaMA-style transformer: RMSNorm, rotary attention with grouped KV heads, SwiGLU MLP."""

    n_layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    vocab: int
    tie_embeddings: bool = False
    head_dim: int = 0  # 0: hidden // heads

    def __post_init__(self) -> None:
        for name in ("n_layers", "hidden", "intermediate", "heads", "kv_heads", "vocab"):
            if getattr(self, name) < 1:
                raise ConfigError(f"llm.{name}={getattr(self, name)}: expected a positive integer")
        if self.heads % self.kv_heads:
            raise ConfigError(f"llm.heads={self.heads} is not a multiple of llm.kv_heads={self.kv_heads}")
        if not self.head_dim:
            if self.hidden % self.heads:
                raise ConfigError(f"llm.hidden={self.hidden} is not a multiple of llm.heads={self.heads}")
            object.__setattr__(self, "head_dim", self.hidden // self.heads)

    @property
    def q_dim(self) -> int:
        return self.heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.head_dim

    def linear_shapes(self) -> dict[str, tuple[int, int]]:
        """``(in_features, out_features)`` of each linear layer of one decoder layer."""
        h, i = self.hidden, self.intermediate
        return {
            "q_proj": (h, self.q_dim),
            "k_proj": (h, self.kv_dim),
            "v_proj": (h, self.kv_dim),
            "o_proj": (self.q_dim, h),
            "gate_proj": (h, i),
            "up_proj": (h, i),
            "down_proj": (i, h),
        }

    def layer_linear_params(self) -> int:
        """Weights of the linear layers of one decoder layer (the part bitsandbytes quantises)."""
        return sum(a * b for a, b in self.linear_shapes().values())

    def embedding_params(self) -> int:
        """Input embeddings plus the LM head (once when tied)."""
        return self.vocab * self.hidden * (1 if self.tie_embeddings else 2)

    def norm_params(self) -> int:
        return (2 * self.n_layers + 1) * self.hidden

    def total_params(self) -> int:
        """All parameters, e.g. 6,738,415,616 for LLaMA-2-7B."""
        return self.n_layers * self.layer_linear_params() + self.embedding_params() + self.norm_params()


def _from_hf_config(path: str) -> dict[str, int | bool]:
    file = Path(path)
    if file.is_dir():
        file = file / "config.json"
    try:
        data = json.loads(file.read_bytes().decode("utf-8"))
    except OSError as exc:
        raise ConfigError(f"llm.config_json: cannot read {file} ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"llm.config_json: {file} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"llm.config_json: {file} is not valid JSON ({exc})") from None
    if isinstance(data, dict) and "text_config" in data and "hidden_size" not in data:
        data = data["text_config"]  # multimodal wrappers keep the LM in text_config
    if not isinstance(data, dict):
        raise ConfigError(f"llm.config_json: {file} holds a JSON {type(data).__name__}; expected a mapping")
    out: dict[str, int | bool] = {}
    for ours, theirs in _HF_KEYS.items():
        value = data.get(theirs)
        if value is None:
            continue
        expected = bool if ours == "tie_embeddings" else int
        if not isinstance(value, expected) or (expected is int and (isinstance(value, bool) or value < 1)):
            raise ConfigError(
                f"llm.config_json: {file}: {theirs}={value!r}; expected "
                f"{'true or false' if expected is bool else 'a positive integer'}"
            )
        out[ours] = value
    if "kv_heads" not in out and "heads" in out:
        out["kv_heads"] = out["heads"]
    return out


def resolve_arch(
    preset: str | None = None,
    config_json: str | None = None,
    **explicit: int | bool | None,
) -> Arch:
    """The architecture from a preset and/or a HF ``config.json``, with explicit non-``None`` numbers on top.

    Raises:
        ConfigError: unknown preset, unreadable config.json, or a number missing from all three sources.
    """
    values: dict[str, Any] = {}  # ints and bools from presets, a config.json and arguments; Arch checks them
    if preset:
        if preset not in PRESETS:
            raise ConfigError(f"llm.preset={preset!r}: expected one of {', '.join(PRESETS)}")
        values.update(PRESETS[preset])
    if config_json:
        values.update(_from_hf_config(config_json))
    values.update({k: v for k, v in explicit.items() if v is not None})
    missing = [k for k in ("n_layers", "hidden", "intermediate", "heads", "vocab") if k not in values]
    if missing:
        raise ConfigError(
            f"llm: {', '.join(missing)} not given; set llm.preset ({', '.join(PRESETS)}), llm.config_json, "
            "or the numbers themselves"
        )
    values.setdefault("kv_heads", values["heads"])
    return Arch(**values)
