"""``python -m anymal demo``: the quick run end to end (about 90 s on 2 idle cores), the full run marked slow."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from anymal_demo.world.vocabulary import SPECS

MODALITY_TASKS = [f"{name} caption" for name in SPECS] + [f"{name} answers" for name in SPECS] + ["image+imu answers"]


def _check_run(out, results, caption_margin: float, mean_margin: float, min_accuracy: float = 0.0):
    assert results["frozen_llm_unchanged"] is True
    assert results["llm_files_hash_before"] == results["llm_files_hash_after"]
    stages = results["stages"]
    assert list(stages) == ["align_image", "align_audio", "align_imu", "align_video", "instruct"]
    assert all(s["llm_hash_before"] == s["llm_hash_after"] == results["llm_hash_reference"] for s in stages.values())
    final = results["evaluations"]["stage 2"]
    assert set(final) == set(MODALITY_TASKS)
    margins = {task: row["attribute_accuracy"] - row["chance_attribute_accuracy"] for task, row in final.items()}
    for name in SPECS:  # every modality is described far better than chance
        assert margins[f"{name} caption"] >= caption_margin, (name, final[f"{name} caption"])
    assert sum(margins.values()) / len(margins) >= mean_margin, margins
    for task, row in final.items():
        assert row["attribute_accuracy"] >= min_accuracy, (task, row)
    # the numbers are the generations' scores: recount one task from the generations file
    generations = [json.loads(line) for line in (out / "generations" / "generations_stage_2.jsonl").open()]
    imu = [g for g in generations if g["task"] == "imu caption"]
    assert final["imu caption"]["attribute_accuracy"] == pytest.approx(
        sum(all(g["correct"].values()) for g in imu) / len(imu)
    )
    assert (out / "losses.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "instruct" / "final" / "adapter").is_dir()  # the LoRA adapter of stage 2


def _reload_and_generate(out):
    from anymal.modeling import AnyMAL

    model = AnyMAL.from_pretrained(str(out / "instruct" / "final"))
    item = json.loads((out / "world" / "heldout_imu.jsonl").read_text().splitlines()[0])
    text = model.generate(
        "<imu>\nWhat is the person doing?", imu=str(out / "world" / item["imu"]), max_new_tokens=12
    ).text
    assert text.strip()


@pytest.mark.integration  # about 2 minutes: make test-integration (CI runs it after make test)
def test_quick_demo_learns_far_above_chance(tmp_path):
    from anymal_demo import run_demo

    results = run_demo(tmp_path, quick=True, progress=False)
    assert json.loads((tmp_path / "results.json").read_text())["quick"] is True
    # 16 held-out items per row, 100 instruct steps: one item is 2-6 points, and a run on 2 threads differs from one
    # on 1 in the last bits (summation order), which moves a row by an item or two. Observed audio-caption margins
    # over chance: 0.12-0.20; the mean margin over all rows about 0.45. The full demo (slow) asserts >= 90%.
    _check_run(tmp_path, results, caption_margin=0.10, mean_margin=0.25)
    _reload_and_generate(tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("threads, seed", [(1, 0), (2, 0), (1, 1), (2, 1)])
def test_full_demo_reaches_90_percent_per_modality(tmp_path, threads, seed):
    # every row of the table, on 1 and 2 threads (other float sums) and two seeds (another world and training run):
    # the README's claim and its spread come from these four runs, not from one lucky one
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "anymal",
            "demo",
            "--out",
            str(tmp_path),
            "--no-progress",
            f"threads={threads}",
            f"seed={seed}",
        ],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "frozen LM check" in done.stdout
    results = json.loads((tmp_path / "results.json").read_text())
    _check_run(tmp_path, results, caption_margin=0.4, mean_margin=0.5, min_accuracy=0.9)


def test_cli_help_and_bad_override():
    help_text = subprocess.run([sys.executable, "-m", "anymal", "demo", "--help"], capture_output=True, text=True)
    assert help_text.returncode == 0 and "--quick" in help_text.stdout and "--out" in help_text.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "anymal", "demo", "language_model.nope=1"], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "nope" in bad.stderr
    missing = subprocess.run([sys.executable, "-m", "anymal"], capture_output=True, text=True)
    assert missing.returncode == 2 and "demo" in missing.stderr
