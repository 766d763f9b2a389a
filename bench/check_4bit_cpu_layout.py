"""Does CPU inference change a frozen 4-bit LLM's weights in memory? A check to run on any CPU (prints JSON).

bitsandbytes 0.50 repacks a ``Linear4bit`` weight in place for its AVX512-BF16 CPU kernel on the first eval-mode
forward (absmax rounded to bfloat16, double quantisation undone), and fails with "N must be divisible by block_n"
for layers whose width is not a multiple of 32. This loads a 4-bit LLaMA two ways, transformers directly and
through ``anymal.llm.load_llm`` (which keeps the checkpoint's layout), runs a forward and a short greedy
generation on the CPU, and reports for each whether it ran and whether the state dict stayed bit-identical.

Usage: python bench/check_4bit_cpu_layout.py [LLM_FOLDER]   (default: models/stories260K_hf in the shared assets,
../shared/assets or $ANYMAL_ASSETS)
"""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path

import torch


def default_llm() -> Path:
    from anymal.testing import STORIES260K_ASSET, asset  # the shared assets folder ($ANYMAL_ASSETS)

    return asset(STORIES260K_ASSET)


def exercise(model: torch.nn.Module) -> dict:
    from anymal.fingerprint import base_weights_hash as state_hash  # the demo's frozen-LM hash of the state dict

    before = state_hash(model)
    try:
        with torch.no_grad():
            model(torch.tensor([[1, 400, 500]]))
        ids = model.generate(torch.tensor([[1]]), max_new_tokens=8, do_sample=False)[0].tolist()
    except Exception as exc:  # the point is to report what bitsandbytes raises on this CPU
        return {"ran": False, "error": f"{type(exc).__name__}: {exc}"}
    after = state_hash(model)
    return {"ran": True, "weights_unchanged": before == after, "hash_before": before, "hash_after": after, "ids": ids}


def main(folder: str) -> dict:
    import bitsandbytes
    import transformers
    from bitsandbytes.functional import has_avx512bf16
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    from anymal.config import LLMConfig, QuantizationConfig
    from anymal.llm import load_llm

    quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True)
    plain = AutoModelForCausalLM.from_pretrained(folder, quantization_config=quant, device_map="cpu").eval()
    ours = load_llm(LLMConfig(name_or_path=folder, quantization=QuantizationConfig(mode="4bit")), device_map="cpu")
    report = {
        "cpu": platform.processor() or platform.machine(),
        "bitsandbytes_sees_avx512bf16": bool(has_avx512bf16()),
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "bitsandbytes": bitsandbytes.__version__,
        },
        "transformers_4bit_load": exercise(plain),
        "anymal_load_llm": exercise(ours),
    }
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else str(default_llm()))
