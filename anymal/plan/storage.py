"""Exact byte counts of stored tensors: quantised weights with their constants, and optimizer states.

These follow the tensors bitsandbytes and PyTorch allocate (checked tensor by tensor in
``tests/plan/test_plan_storage.py``):

* 4-bit (NF4/FP4): two weights per byte, plus one fp32 absmax per block of ``blocksize`` (64) weights; with double
  quantisation the absmax values are themselves 8-bit, with one fp32 absmax per 256 of them and one fp32 offset;
  each tensor also carries its 16-entry code (and, nested, the 256-entry dynamic code).
* 8-bit (LLM.int8): one byte per weight plus one fp32 scale per output row.
* AdamW: two states of the parameter's dtype plus a scalar step; bitsandbytes' 8-bit AdamW: two uint8 states with
  one fp32 absmax per 256 values each, for tensors of at least 4096 values (smaller ones keep fp32 states).
"""

from __future__ import annotations

import math

NESTED_BLOCKSIZE = 256  # bitsandbytes' block size for the double-quantised absmax
BNB_OPTIM_BLOCKSIZE = 256
BNB_MIN_8BIT_SIZE = 4096


def quant4_parts(n: int, blocksize: int = 64, double_quant: bool = True) -> dict[str, int]:
    """Bytes of a 4-bit quantised tensor of ``n`` weights: packed data, absmax constants and code tables."""
    blocks = math.ceil(n / blocksize)
    parts = {"packed": math.ceil(n / 2), "code": 16 * 4}
    if double_quant:
        parts["absmax"] = blocks  # uint8
        parts["absmax2"] = math.ceil(blocks / NESTED_BLOCKSIZE) * 4
        parts["offset"] = 4
        parts["code2"] = 256 * 4
    else:
        parts["absmax"] = blocks * 4
    return parts


def quant8_parts(in_features: int, out_features: int) -> dict[str, int]:
    """Bytes of an LLM.int8 weight: int8 values and one fp32 scale per output row."""
    return {"packed": in_features * out_features, "scales": out_features * 4}


def adamw_state_bytes(numel: int, param_bytes: int) -> int:
    """torch.optim.AdamW: ``exp_avg`` and ``exp_avg_sq`` like the parameter, and a 0-d fp32 ``step``."""
    return 2 * numel * param_bytes + 4


def adamw8bit_state_bytes(numel: int) -> int:
    """bitsandbytes AdamW8bit (blockwise): uint8 states with fp32 block absmax, fp32 below 4096 values."""
    if numel < BNB_MIN_8BIT_SIZE:
        return 2 * numel * 4
    blocks = math.ceil(numel / BNB_OPTIM_BLOCKSIZE)
    return 2 * numel + 2 * blocks * 4  # the 256-entry quantisation maps are shared by all parameters
