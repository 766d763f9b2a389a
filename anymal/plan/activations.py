"""Bytes the autograd graph keeps for backward in a Hugging Face LLaMA training step, tensor by tensor.

The counts follow what PyTorch actually saves (it saves an input only when some gradient needs it), checked
against ``torch.autograd.graph.saved_tensors_hooks`` on real ``LlamaForCausalLM`` models in
``tests/plan/test_plan_activations.py``. Per decoder layer, with ``T`` tokens in the micro-batch:

* each RMSNorm keeps its input upcast to fp32 (``T*h*4``) and the inverse RMS; with trainable norm weights also
  the normalised activations;
* attention keeps rotated queries and keys, values, the output and the log-sum-exp (SDPA's flash/efficient
  kernels; no ``s x s`` matrix), plus the float attention mask (``b*s*s``) when the batch is padded. With a mask,
  grouped KV heads are repeated to the full head count before SDPA, so keys and values take ``T*h`` each;
* the SwiGLU MLP keeps the gate output, its SiLU and the up projection (``3*T*i``);
* a linear layer keeps its input only when its weight is trained (full fine-tuning), LoRA reads it (and then once
  per distinct input, unless a dtype cast or a dropout makes a private copy per wrapped module), or it is an 8-bit
  LLM.int8 layer (bitsandbytes keeps the input). Frozen 4-bit layers keep nothing but their packed weights.

Under autocast (``mixed_precision``, as the trainer runs on CUDA) the hidden states keep the dtype of the LLM's
embeddings (``weights_dtype``; float32 after PEFT's ``prepare_model_for_kbit_training``), while SDPA, the LM head
and LoRA's matmuls save half-precision copies of their inputs. A 4-bit layer casts its output back to its input's
dtype, so with float32 hidden states the SwiGLU MLP keeps three float32 ``T x intermediate`` tensors: on
LLaMA-2-70B at 4 x 274 tokens that is 14 GiB more than in bf16 (the measured 70B case's "missing 13 GiB").
"""

from __future__ import annotations

from dataclasses import dataclass

from anymal.plan.arch import Arch
from anymal.plan.config import DTYPE_BYTES, PlanConfig

QKV = ("q_proj", "k_proj", "v_proj")
GATE_UP = ("gate_proj", "up_proj")


@dataclass(frozen=True)
class Dims:
    """Sizes of one micro-batch."""

    batch: int
    seq: int
    act_bytes: int  # bytes per element of the hidden states (the residual stream)
    lora_bytes: int  # bytes per element of trainable weights (LoRA adapters, projectors)
    out_bytes: int = 0  # bytes per element of the decoder's linear outputs (q/k/v, MLP); 0: act_bytes
    attn_bytes: int = 0  # bytes per element SDPA saves (q, k, v, output, mask); 0: out_bytes
    autocast: bool = False
    target_tokens: int = 0  # tokens per example with a target (logits computed there); 0: seq

    def __post_init__(self) -> None:
        if not self.out_bytes:
            object.__setattr__(self, "out_bytes", self.act_bytes)
        if not self.attn_bytes:
            object.__setattr__(self, "attn_bytes", self.out_bytes)

    @property
    def tokens(self) -> int:
        return self.batch * self.seq

    @property
    def logit_tokens(self) -> int:
        """Tokens of the micro-batch whose logits are computed."""
        return self.batch * (self.target_tokens or self.seq)


def activation_bytes(cfg: PlanConfig) -> int:
    """Bytes per element of the hidden states.

    They are in ``compute_dtype``, except with LoRA on a quantised LLM prepared by PEFT's
    ``prepare_model_for_kbit_training`` (``kbit_prepare``): it casts embeddings and norms to fp32, and fp32 then
    flows through the whole residual stream.
    """
    if cfg.quantization != "none" and cfg.lora_rank and cfg.kbit_prepare:
        return 4
    return DTYPE_BYTES[cfg.llm_weights_dtype]


def dims_of(cfg: PlanConfig, batch: int | None = None) -> Dims:
    pa = activation_bytes(cfg)
    # a 4/8-bit layer returns its input's dtype; an unquantised one under autocast returns half precision
    out = 2 if cfg.autocast and cfg.quantization == "none" else pa
    return Dims(
        batch=cfg.micro_batch if batch is None else batch,
        seq=cfg.seq_len,
        act_bytes=pa,
        lora_bytes=DTYPE_BYTES[cfg.trainable_dtype],
        out_bytes=out,
        attn_bytes=2 if cfg.autocast else out,
        autocast=cfg.autocast,
        target_tokens=cfg.target_tokens or 0,
    )


def layer_saved(cfg: PlanConfig, arch: Arch, d: Dims) -> dict[str, int]:
    """Bytes one decoder layer keeps for backward, by part."""
    T, pa, po, pq = d.tokens, d.act_bytes, d.out_bytes, d.attn_bytes
    h, i, q = arch.hidden, arch.intermediate, arch.q_dim
    full = cfg.full_finetune
    int8 = cfg.quantization == "8bit"
    targets = set(cfg.lora_targets) if cfg.lora_rank else set()
    # under autocast every LoRA matmul saves its own half-precision copy of its input
    private_copy = bool(targets) and (cfg.lora_dropout > 0 or d.lora_bytes != pa or d.autocast)
    shared_lora = bool(targets) and not private_copy
    copy_bytes = 2 if d.autocast else d.lora_bytes

    def reads(names: tuple[str, ...]) -> bool:
        return full or int8 or (shared_lora and bool(targets.intersection(names)))

    parts: dict[str, int] = {}
    parts["norms"] = 2 * (T * h * 4 + T * 4 + (T * h * pa if full else 0))
    read_bytes = 2 if d.autocast and not int8 else pa  # autocast saves the cast copy a matmul reads
    parts["norm outputs"] = T * h * read_bytes * (int(reads(QKV)) + int(reads(GATE_UP)))
    kv_width = q if (cfg.padded and arch.kv_heads != arch.heads) else arch.kv_dim
    parts["attention q/k/v/out"] = T * (2 * q + 2 * kv_width) * pq + d.batch * arch.heads * d.seq * 4
    if cfg.padded:
        parts["attention mask"] = d.batch * d.seq * d.seq * (pq if d.autocast else pa)
    parts["mlp"] = 3 * T * i * po + (T * i * (2 if d.autocast and not int8 else po) if reads(("down_proj",)) else 0)
    if targets:
        shapes = arch.linear_shapes()
        mask_bytes = 1 if cfg.device == "cuda" else d.lora_bytes  # CUDA's dropout keeps a bool mask
        lora = 0
        for name in targets:
            fan_in = shapes[name][0]
            if cfg.lora_dropout > 0:
                lora += T * fan_in * (copy_bytes + mask_bytes)
            elif private_copy:
                lora += T * fan_in * copy_bytes
            lora += T * cfg.lora_rank * copy_bytes  # lora_B's input
        parts["lora"] = lora
    return parts


def layer_transient(cfg: PlanConfig, arch: Arch, d: Dims) -> int:
    """Working memory while one layer runs backward, at its worst moment.

    Two gradients of hidden states are always in flight. On top: either the MLP's multiply-and-SiLU backward, with
    the gradients of three ``T x intermediate`` tensors alive at once, or a 4/8-bit linear's backward, which
    dequantises its whole weight to multiply with (the largest weight, next to one ``T x intermediate`` gradient).
    """
    T, pa, po = d.tokens, d.act_bytes, d.out_bytes
    mlp = 3 * T * arch.intermediate * po
    if cfg.quantization != "none":
        largest = max(a * b for a, b in arch.linear_shapes().values())
        mlp = max(mlp, T * arch.intermediate * po + largest * DTYPE_BYTES[cfg.compute_dtype])
    return 2 * T * arch.hidden * pa + mlp


def checkpoint_saved(cfg: PlanConfig, arch: Arch, d: Dims) -> int:
    """Bytes one checkpointed layer keeps between forward and backward: its input hidden states."""
    return d.tokens * arch.hidden * d.act_bytes


def head_saved(cfg: PlanConfig, arch: Arch, d: Dims) -> dict[str, int]:
    """Bytes kept outside the decoder layers: final norm, LM head input, log-probabilities, projector inputs."""
    T, pa = d.tokens, d.act_bytes
    parts = {
        "final norm": T * arch.hidden * 4 + T * 4 + (2 * T * arch.hidden * pa if cfg.full_finetune else 0),
        "log-probs (loss)": d.logit_tokens * arch.vocab * 4,
        "rotary cos/sin": 2 * d.seq * arch.head_dim * pa,
    }
    if d.autocast:
        # the LM head saves a half-precision copy of its input, and of its weight when that is float32
        head = d.logit_tokens * arch.hidden * 2
        if pa == 4 and not cfg.full_finetune:
            head += arch.vocab * arch.hidden * 2
        parts["LM head casts"] = head
    if pa != 4 and not cfg.gradient_checkpointing:
        # in fp32 the first norm keeps the embeddings themselves; with checkpointing they are layer 0's input
        parts["input embeddings"] = T * arch.hidden * pa
    feature_bytes = 2 if d.autocast else d.lora_bytes
    features = sum(
        d.batch * m.items_per_example * m.feature_tokens * m.feature_dim * feature_bytes
        for m in cfg.modalities.values()
    )
    if features:
        parts["projector inputs"] = features
    return parts
