"""Peak accelerator memory of one training step, broken down by what holds it.

A step goes through phases, and the peak is the largest of them:

* ``loss backward``: every activation saved in the forward is alive, with the logits, and the cross-entropy's
  backward adds two fp32 ``tokens x vocab`` gradients;
* ``layer backward``: walking down the decoder layers, activations are freed as gradients accumulate (this is
  where full fine-tuning peaks), plus the layer's own backward workspace; with gradient checkpointing, one layer's
  activations are recomputed on top of the saved layer inputs;
* ``optimizer step``: all gradients, the optimizer states and the update's temporaries.

Static memory (weights, quantisation constants, encoders, trainable parameters, optimizer states; gradients too
when accumulating over micro-batches) is present in all of them. On CUDA, the context and a fragmentation
allowance (a fraction of the dynamic memory plus, with a quantised LLM, two dequantised weights) are added.

Accuracy: weights, quantisation constants and optimizer states are exact; the activations autograd keeps match
``saved_tensors_hooks`` to the byte; measured peaks of CPU training steps (``bench/bench_plan_accuracy.py``) are
within a few percent. The CUDA context and the fragmentation allowance are fitted to the 2026-11-30 H200
measurements (``tests/plan/test_plan_cuda_measured.py``). Output plugins (``[LOC]``/``[SEG]`` heads) add their
trainable heads, frozen modules and the forward workspace each plugin declares (``planned_workspace_bytes``).
Not modelled: the input encoders' forward activations (run under ``no_grad``, transient), attention
implementations other than SDPA (eager attention keeps ``s x s`` probabilities), and tensors a training loop keeps
beyond the model outputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from anymal.plan import activations as act
from anymal.plan.arch import Arch
from anymal.plan.config import DTYPE_BYTES, PlanConfig
from anymal.plan.storage import adamw8bit_state_bytes, adamw_state_bytes, quant4_parts, quant8_parts

GIB = 1 << 30


@dataclass(frozen=True)
class Component:
    """One named part of the memory at the peak."""

    name: str
    bytes: int
    note: str = ""

    @property
    def gib(self) -> float:
        return self.bytes / GIB


@dataclass
class MemoryEstimate:
    """The planner's answer for one config.

    Attributes:
        config: the config estimated.
        arch: its resolved architecture.
        components: the parts of memory in the peak phase (they sum to ``peak_bytes``).
        phases: per phase, its total bytes.
        peak_phase: the phase with the largest total.
        details: parameter counts, sequence length and per-layer activation parts, for the report.
    """

    config: PlanConfig
    arch: Arch
    components: list[Component]
    phases: dict[str, int]
    peak_phase: str
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def peak_bytes(self) -> int:
        return self.phases[self.peak_phase]

    @property
    def budget_bytes(self) -> int:
        return int(self.config.budget_gib * GIB)

    @property
    def fits(self) -> bool:
        return self.peak_bytes <= self.budget_bytes

    @property
    def headroom_bytes(self) -> int:
        """Budget minus peak (negative when it does not fit)."""
        return self.budget_bytes - self.peak_bytes

    def component(self, name: str) -> int:
        """Bytes of a component at the peak (0 when absent)."""
        return sum(c.bytes for c in self.components if c.name == name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "peak_bytes": self.peak_bytes,
            "peak_gib": round(self.peak_bytes / GIB, 3),
            "peak_phase": self.peak_phase,
            "budget_gib": self.config.budget_gib,
            "fits": self.fits,
            "headroom_gib": round(self.headroom_bytes / GIB, 3),
            "components": [
                {"name": c.name, "bytes": c.bytes, "gib": round(c.gib, 3), "note": c.note} for c in self.components
            ],
            "phases_gib": {name: round(b / GIB, 3) for name, b in self.phases.items()},
            "phases": [{"name": name, "gib": round(b / GIB, 3)} for name, b in self.phases.items()],
            "details": self.details,
            "config": self.config.to_dict(),
        }


@dataclass(frozen=True)
class _Static:
    weights: int
    weights_note: str
    quant_consts: int
    encoders: int
    output_frozen: int
    params: int
    params_note: str
    grads: int
    optimizer: int
    step_workspace: int
    trainable_numels: tuple[int, ...]
    layer_grad_bytes: int  # gradients one decoder layer produces
    head_grad_bytes: int  # gradients of LM head + final norm (full fine-tuning)


def _static(cfg: PlanConfig, arch: Arch) -> _Static:
    pt = DTYPE_BYTES[cfg.trainable_dtype]
    shapes = arch.linear_shapes()
    other = arch.embedding_params() + arch.norm_params()
    upcast = cfg.quantization != "none" and cfg.lora_rank > 0 and cfg.kbit_prepare
    pw = DTYPE_BYTES[cfg.llm_weights_dtype]
    other_bytes = other * (4 if upcast else pw)
    consts = 0
    if cfg.full_finetune:
        weights, note = 0, "trained: counted as trainable parameters"
    elif cfg.quantization == "none":
        weights = (arch.n_layers * arch.layer_linear_params() + other) * pw
        note = f"{arch.total_params() / 1e9:.2f}B params in {cfg.llm_weights_dtype}"
    else:
        packed = 0
        for fan_in, fan_out in shapes.values():
            if cfg.quantization == "4bit":
                parts = quant4_parts(fan_in * fan_out, cfg.quant_blocksize, cfg.double_quant)
            else:
                parts = quant8_parts(fan_in, fan_out)
            packed += parts.pop("packed")
            consts += sum(parts.values())
        weights = arch.n_layers * packed + other_bytes
        consts *= arch.n_layers
        kind = f"{cfg.quant_type}{' + double quant' if cfg.double_quant else ''}" if cfg.quantization == "4bit" else ""
        note = (
            f"linear layers {cfg.quantization} {kind}".rstrip()
            + f"; embeddings/norms in {'float32 (kbit_prepare)' if upcast else cfg.llm_weights_dtype}"
        )
    encoders = sum(m.encoder_params * DTYPE_BYTES[m.encoder_dtype] for m in cfg.modalities.values())
    output_frozen = sum(o.frozen_params * DTYPE_BYTES[o.frozen_dtype] for o in cfg.outputs.values())

    numels: list[int] = [m.projector_params for m in cfg.modalities.values() if m.projector_params]
    numels += [o.head_params for o in cfg.outputs.values() if o.head_params]
    layer_numels: list[int] = []
    head_numels: list[int] = []
    if cfg.lora_rank:
        for name in cfg.lora_targets:
            fan_in, fan_out = shapes[name]
            layer_numels += [cfg.lora_rank * fan_in, fan_out * cfg.lora_rank]
    if cfg.full_finetune:
        layer_numels += [a * b for a, b in shapes.values()] + [arch.hidden, arch.hidden]
        head_numels = [arch.hidden] + ([] if arch.tie_embeddings else [arch.vocab * arch.hidden])
        numels.append(arch.vocab * arch.hidden)  # input embeddings (their gradient arrives last)
    numels += layer_numels * arch.n_layers + head_numels
    params = sum(numels) * pt
    if cfg.optimizer == "adamw":
        optimizer = sum(adamw_state_bytes(n, pt) for n in numels)
        # CUDA runs AdamW's foreach path: one temporary list as large as all parameters; CPU loops over
        # tensors and holds two temporaries of the largest one
        if cfg.device == "cuda":
            step = sum(numels) * pt
        else:
            step = 2 * max(numels, default=0) * pt
    else:
        optimizer = sum(adamw8bit_state_bytes(n) for n in numels)
        step = 0
    trained: list[str] = []
    if cfg.full_finetune:
        trained.append(f"LLM {arch.total_params() / 1e6:.1f}M")
    if cfg.lora_rank:
        trained.append(f"LoRA r={cfg.lora_rank} on {'/'.join(cfg.lora_targets)}")
    if any(m.projector_params for m in cfg.modalities.values()):
        trained.append("projectors")
    if any(o.head_params for o in cfg.outputs.values()):
        trained.append("output heads")
    return _Static(
        weights=weights,
        weights_note=note,
        quant_consts=consts,
        encoders=encoders,
        output_frozen=output_frozen,
        params=params,
        params_note=f"{sum(numels) / 1e6:.2f}M in {cfg.trainable_dtype}: {', '.join(trained) or 'none'}",
        grads=params,
        optimizer=optimizer,
        step_workspace=step,
        trainable_numels=tuple(numels),
        layer_grad_bytes=sum(layer_numels) * pt,
        head_grad_bytes=sum(head_numels) * pt,
    )


def estimate(cfg: PlanConfig) -> MemoryEstimate:
    """Estimates the peak memory of one training step of ``cfg`` and breaks it down.

    Raises:
        ConfigError: the architecture cannot be resolved.
    """
    arch = cfg.arch()
    st = _static(cfg, arch)
    d = act.dims_of(cfg)
    layer_parts = act.layer_saved(cfg, arch, d)
    layer_unit = sum(layer_parts.values())
    ckpt_unit = act.checkpoint_saved(cfg, arch, d)
    head_parts = act.head_saved(cfg, arch, d)
    head = sum(head_parts.values())
    logprobs = head_parts["log-probs (loss)"]
    logits = d.logit_tokens * arch.vocab * (2 if cfg.autocast else d.act_bytes)
    loss_work = 2 * d.logit_tokens * arch.vocab * 4
    layer_work = act.layer_transient(cfg, arch, d)
    kv_cache = 2 * arch.n_layers * d.tokens * arch.kv_dim * d.act_bytes if cfg.use_cache else 0
    L = arch.n_layers
    saved_per_layer = ckpt_unit if cfg.gradient_checkpointing else layer_unit
    accumulate = cfg.grad_accumulation > 1

    static = [
        Component("llm weights", st.weights, st.weights_note),
        Component("quantisation constants", st.quant_consts, "absmax / scales of the quantised weights"),
        Component("encoder weights", st.encoders, "frozen modality encoders on the device"),
        Component("output plugin frozen weights", st.output_frozen, "e.g. SAM's image encoder"),
        Component("trainable parameters", st.params, st.params_note),
        Component("optimizer states", st.optimizer, cfg.optimizer),
    ]
    if accumulate:
        static.append(Component("gradients", st.grads, f"kept across {cfg.grad_accumulation} micro-batches"))
    if cfg.autocast and cfg.trainable_dtype == "float32":
        # autocast caches the half-precision copy of every trainable weight it casts until the context exits,
        # and the trainer runs forward and backward inside one autocast context
        copies = sum(st.trainable_numels) * 2
        static.append(Component("autocast weight copies", copies, "half-precision casts of the trainable weights"))

    ckpt_note = "checkpointed: layer inputs only" if cfg.gradient_checkpointing else "saved for backward"
    phases: dict[str, list[Component]] = {}
    phases["loss backward"] = [
        Component("activations", L * saved_per_layer + head, f"{ckpt_note}; {d.batch} x {d.seq} tokens"),
        Component("logits", logits, "tokens x vocab, alive until backward ends"),
        Component("loss backward workspace", loss_work, "fp32 gradients of log-probs and logits"),
        Component("kv cache", kv_cache, "use_cache=true"),
    ]

    worst: list[Component] = []
    worst_total = -1
    for k in range(1, L + 1):  # k-th layer from the top is running backward
        remaining = (L - k + 1) * saved_per_layer + (layer_unit if cfg.gradient_checkpointing else 0)
        grads = 0 if accumulate else st.head_grad_bytes + k * st.layer_grad_bytes
        parts = [
            Component("activations", remaining + head - logprobs, f"{ckpt_note}; layer {L - k} running backward"),
            Component("logits", logits, "tokens x vocab, alive until backward ends"),
            Component("layer backward workspace", layer_work, "gradients in flight; dequantised weight"),
            Component("kv cache", kv_cache, "use_cache=true"),
            Component("gradients", grads, "accumulated so far"),
        ]
        total = sum(c.bytes for c in parts)
        if total > worst_total:
            worst, worst_total = parts, total
    phases["layer backward"] = worst
    workspace = sum(o.workspace_bytes for o in cfg.outputs.values())
    heads_note = ", ".join(name for name, out in cfg.outputs.items() if out.workspace_bytes)
    if workspace:  # output heads run after the LLM's forward: every saved activation and the logits are alive
        phases["output heads forward"] = [
            Component("activations", L * saved_per_layer + head, f"{ckpt_note}; {d.batch} x {d.seq} tokens"),
            Component("logits", logits, "tokens x vocab, computed before the heads run"),
            Component("output heads workspace", workspace, heads_note),
            Component("kv cache", kv_cache, "use_cache=true"),
        ]
    phases["optimizer step"] = [
        Component("gradients", 0 if accumulate else st.grads, "all trainable parameters"),
        Component("optimizer step workspace", st.step_workspace, "AdamW temporaries"),
    ]

    # bitsandbytes dequantises each 4/8-bit weight into a fresh buffer in forward and backward: these short-lived
    # blocks of several sizes split the caching allocator's segments (fitted to the H200 measurements)
    dequant = 0
    if cfg.quantization != "none":
        dequant = max(a * b for a, b in arch.linear_shapes().values()) * DTYPE_BYTES[cfg.compute_dtype]
    totals: dict[str, int] = {}
    full: dict[str, list[Component]] = {}
    for name, dynamic in phases.items():
        parts = static + [c for c in dynamic if c.bytes]
        if cfg.device == "cuda":
            frag = int(cfg.allocator_overhead * sum(c.bytes for c in dynamic)) + 2 * dequant
            note = f"{cfg.allocator_overhead:.1%} of dynamic memory" + (" + 2 dequantised weights" if dequant else "")
            parts = [
                *parts,
                Component("cuda context", int(cfg.cuda_context_gib * GIB), "context, kernels, cuBLAS workspace"),
                Component("allocator fragmentation", frag, note),
            ]
        parts = [c for c in parts if c.bytes]
        full[name] = parts
        totals[name] = sum(c.bytes for c in parts)
    peak_phase = max(totals, key=lambda phase: totals[phase])
    details = {
        "llm_params": arch.total_params(),
        "trainable_params": sum(st.trainable_numels),
        "seq_len": d.seq,
        "tokens_per_micro_batch": d.tokens,
        "activation_dtype_bytes": d.act_bytes,
        "activations_per_layer_bytes": layer_parts,
        "checkpointed_layer_bytes": ckpt_unit,
        "head_activation_bytes": head_parts,
    }
    return MemoryEstimate(cfg, arch, full[peak_phase], totals, peak_phase, details)
