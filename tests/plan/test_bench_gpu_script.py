"""``bench/bench_gpu.py`` runs end to end on the CPU with tiny shapes (``--device cpu --tiny``), so the script a
GPU run depends on is known to work before a GPU is lent: every phase reports ok and the JSON has the rows."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from anymal.testing import LLAMA2_TOKENIZER_ASSET, require_asset

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration  # about a minute of CPU: make test-integration


def test_bench_gpu_cpu_path_runs_every_phase(tmp_path):
    tokenizer = require_asset(LLAMA2_TOKENIZER_ASSET)
    out = tmp_path / "bench.json"
    cmd = [sys.executable, str(ROOT / "bench" / "bench_gpu.py"), "--device", "cpu", "--tiny", "--quick",
           "--steps", "6", "--tokenizer", str(tokenizer), "--out", str(out)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env={**_env(), "OMP_NUM_THREADS": "1"})
    data = json.loads(out.read_text())
    failed = {k: v.get("error") for k, v in data["phases"].items() if not v["ok"]}
    assert proc.returncode == 0 and not failed, (failed, proc.stderr[-3000:])
    phases = data["phases"]
    assert {"load_4bit", "generate", "train_align", "instruct_qlora", "llava_ratio", "align_70b"} <= set(phases)
    assert phases["train_align"]["plan"]["text_tokens"] == 44 and phases["train_align"]["epoch_start_step_s"]
    assert phases["llava_ratio"]["ratio_anymal_over_llava"] > 0
    assert phases["align_70b"]["embed_dtype"] == "torch.bfloat16"


def _env() -> dict[str, str]:
    import os

    return {**os.environ, "HF_HUB_OFFLINE": "1"}
