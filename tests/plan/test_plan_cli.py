"""``python -m anymal.plan``: the table, JSON output, overrides and errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from anymal.plan.__main__ import main

ROOT = Path(__file__).resolve().parents[2]
PAPER = ROOT / "configs" / "plan" / "llama2_70b_4bit_paper.yaml"


def test_paper_config_starts_with_its_command():
    first = PAPER.read_text().splitlines()[0]
    assert first == "# python -m anymal.plan --config configs/plan/llama2_70b_4bit_paper.yaml"


def test_module_entry_point_prints_the_table():
    proc = subprocess.run(
        [sys.executable, "-m", "anymal.plan", "--config", str(PAPER)], capture_output=True, text=True, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr
    assert "68.98B params" in proc.stdout and "FITS in 80 GiB" in proc.stdout
    assert "quantisation constants" in proc.stdout and "activations" in proc.stdout


def test_json_output_with_overrides_that_do_not_fit(capsys):
    assert main(["--config", str(PAPER), "micro_batch=32", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["fits"] is False and data["config"]["micro_batch"] == 32
    assert data["suggestions"] and data["plan_to_fit"]["fits"] is True
    assert sum(c["bytes"] for c in data["components"]) == data["peak_bytes"]
    assert "micro_batch=" in data["plan_to_fit"]["args"] or "gradient_checkpointing=true" in data["plan_to_fit"]["args"]


def test_table_lists_suggestions_when_it_does_not_fit(capsys):
    assert main(["--config", str(PAPER), "quantization=none"]) == 0
    out = capsys.readouterr().out
    assert "DOES NOT FIT" in out and "what to change" in out and "quantization=4bit" in out


def test_bad_override_exits_2_naming_the_key(capsys):
    assert main(["--config", str(PAPER), "budget=80"]) == 2
    assert "budget" in capsys.readouterr().err


def test_no_config_file_needed(capsys):
    assert main(["llm.preset=llama2-7b", "compute_dtype=float16", "budget_gib=24", "micro_batch=1"]) == 0
    assert "6.74B params" in capsys.readouterr().out
