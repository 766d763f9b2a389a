"""How close is the memory planner to real peaks? Measured on CPU training steps of small LLaMA models.

Each case is a PlanConfig with ``device: cpu`` (no CUDA context or allocator allowance). The measurement
(``anymal.plan.measure``) builds the model from a config with transformers (4-bit through bitsandbytes, LoRA through
PEFT), splices trainable projector tokens in front of the text, and runs two forward + backward + AdamW steps in a
fresh process; the peak is the model's resident size plus the steps' resident high-water mark above it. The table
gives the planner's estimate, the measurement and the relative error; JSON goes to
``bench/results/plan_accuracy.json``.

    python bench/bench_plan_accuracy.py              # all cases (a few minutes on 2 cores)
    python bench/bench_plan_accuracy.py q4_lora_qv   # some of them
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

from anymal.plan import estimate, plan_config_from_dict
from anymal.plan.measure import cpu_case, measure_in_subprocess

RESULTS = Path(__file__).resolve().parent / "results"
MIB = 1 << 20


def case(
    hidden: int,
    layers: int,
    heads: int,
    kv_heads: int,
    intermediate: int,
    vocab: int = 32000,
    batch: int = 4,
    text: int = 192,
    image_tokens: int = 64,
    feature_dim: int = 256,
    **overrides: Any,
) -> dict[str, Any]:
    """A CPU plan config: a LLaMA of the given size, one image modality fed by a linear projector."""
    shape = dict(hidden=hidden, layers=layers, heads=heads, kv_heads=kv_heads, intermediate=intermediate, vocab=vocab)
    load = dict(batch=batch, text=text, image_tokens=image_tokens, feature_dim=feature_dim)
    return cpu_case(**shape, **load, **overrides)


H512 = dict(hidden=512, layers=4, heads=8, kv_heads=8, intermediate=1376)
H1024_GQA = dict(hidden=1024, layers=4, heads=16, kv_heads=4, intermediate=2816)
ALL_LINEARS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "full_fp32": ("full fine-tune, fp32, h512 x4", case(**H512, full_finetune=True)),
    "full_fp32_ckpt": (
        "full fine-tune, fp32, h512 x4, checkpointing",
        case(**H512, full_finetune=True, gradient_checkpointing=True),
    ),
    "stage1_fp32_gqa": ("frozen LLM + projector, fp32, h1024 x4 GQA", case(**H1024_GQA)),
    "stage1_fp32_gqa_ckpt": (
        "frozen + projector, h1024 GQA, checkpointing",
        case(**H1024_GQA, gradient_checkpointing=True),
    ),
    "stage1_bf16": ("frozen LLM + projector, bf16, h512 x4", case(**H512, compute_dtype="bfloat16", batch=2)),
    "lora_all_dropout": (
        "LoRA r16 all linears, dropout 0.05, fp32, h768 x4",
        case(
            hidden=768,
            layers=4,
            heads=12,
            kv_heads=12,
            intermediate=2048,
            lora_rank=16,
            lora_dropout=0.05,
            lora_targets=ALL_LINEARS,
        ),
    ),
    "q4_lora_qv": ("4-bit nf4+DQ, LoRA r16 q/v, h1024 x4 GQA", case(**H1024_GQA, quantization="4bit", lora_rank=16)),
    "q4_lora_qv_ckpt": (
        "4-bit nf4+DQ, LoRA r16 q/v, h1024 GQA, checkpointing",
        case(**H1024_GQA, quantization="4bit", lora_rank=16, gradient_checkpointing=True),
    ),
    "stage1_small_vocab": (
        "frozen LLM + projector, fp32, h1024 GQA, vocab 2048 (peaks in a layer's backward)",
        case(**H1024_GQA, vocab=2048),
    ),
    "full_small_vocab": ("full fine-tune, fp32, h512 x4, vocab 2048", case(**H512, vocab=2048, full_finetune=True)),
    "q4_small_vocab_ckpt": (
        "4-bit nf4+DQ, LoRA r16 q/v, h1024 GQA, vocab 2048, checkpointing",
        case(**H1024_GQA, vocab=2048, quantization="4bit", lora_rank=16, gradient_checkpointing=True),
    ),
    "q4_nodq_lora_deep": (
        "4-bit nf4 no DQ, LoRA r8 q/k/v/o, h256 x8, adamw_8bit",
        case(
            hidden=256,
            layers=8,
            heads=4,
            kv_heads=4,
            intermediate=688,
            quantization="4bit",
            double_quant=False,
            lora_rank=8,
            lora_targets=ALL_LINEARS[:4],
            optimizer="adamw_8bit",
            batch=8,
        ),
    ),
}


def run(names: list[str]) -> list[dict[str, Any]]:
    rows = []
    for name in names:
        description, data = CASES[name]
        cfg = plan_config_from_dict(data)
        est = estimate(cfg)
        start = time.perf_counter()
        measured = measure_in_subprocess(cfg)
        error = est.peak_bytes / measured["peak_bytes"] - 1
        row = {
            "case": name,
            "setup": description,
            "tokens": cfg.micro_batch * cfg.seq_len,
            "planned_mib": round(est.peak_bytes / MIB, 1),
            "measured_mib": round(measured["peak_bytes"] / MIB, 1),
            "rel_error": round(error, 4),
            "planned_phase": est.peak_phase,
            "model_mib": round(measured["model_bytes"] / MIB, 1),
            "planned_static_mib": round(
                sum(est.component(n) for n in ("llm weights", "quantisation constants", "trainable parameters")) / MIB,
                1,
            ),
            "seconds": round(time.perf_counter() - start, 1),
        }
        rows.append(row)
        print(
            f"{name:22s} planned {row['planned_mib']:8.1f} MiB  measured {row['measured_mib']:8.1f} MiB  "
            f"error {100 * error:+6.1f}%  ({row['seconds']:.0f} s)",
            flush=True,
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cases", nargs="*", help=f"cases to run (default: all): {', '.join(CASES)}")
    parser.add_argument("--out", default=str(RESULTS / "plan_accuracy.json"))
    args = parser.parse_args(argv)
    unknown = [c for c in args.cases if c not in CASES]
    if unknown:
        parser.error(f"unknown case(s) {unknown}; expected some of {', '.join(CASES)}")
    rows = run(args.cases or list(CASES))
    keys = ["case", "setup", "tokens", "planned_mib", "measured_mib", "rel_error", "planned_phase"]
    widths = {k: max(len(k), *(len(str(r[k])) for r in rows)) for k in keys}
    print()
    print("  ".join(k.ljust(widths[k]) for k in keys))
    for r in rows:
        print("  ".join(str(r[k]).ljust(widths[k]) for k in keys))
    worst = max(abs(r["rel_error"]) for r in rows)
    print(f"\nworst relative error: {100 * worst:.1f}% over {len(rows)} cases")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    report = {"machine": platform.platform(), "python": sys.version.split()[0], "cases": rows, "worst": worst}
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
