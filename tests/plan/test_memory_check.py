"""``python -m anymal.train`` plans the run before it loads anything and stops a run that will not fit the GPU."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from anymal.plan import check
from anymal.plan.check import check_memory
from anymal.train.config import load_train_config

ROOT = Path(__file__).resolve().parents[2]
ALIGN_70B = ROOT / "configs" / "align" / "image_llama2_70b.yaml"
GIB = 2**30


@pytest.fixture
def config_file(tmp_path):
    image = tmp_path / "a.png"
    image.write_bytes(b"not read before the check")
    data = tmp_path / "pairs.jsonl"
    data.write_text(json.dumps({"image": str(image), "caption": "a cat"}) + "\n")
    text = ALIGN_70B.read_text().replace("data/laion_coco_pairs.jsonl", str(data))
    path = tmp_path / "align.yaml"
    path.write_text(text.replace("runs/align_image_70b", str(tmp_path / "run")))
    return path


def test_a_run_that_fits_reports_its_peak_and_the_free_memory(config_file):
    result = check_memory(load_train_config(config_file), config_file, free_bytes=79 * GIB)
    assert result.fits is True and 40 * GIB < result.peak_bytes < 50 * GIB
    assert "memory plan: peak" in result.message and "79.00 GiB free" in result.message


def test_a_run_that_does_not_fit_gets_the_planners_changes_in_trainer_names(config_file):
    config = load_train_config(config_file, ["gradient_checkpointing=false", "batch_size=8"])
    result = check_memory(config, config_file, free_bytes=79 * GIB)
    assert result.fits is False and "--no-memory-check" in result.message
    assert "gradient_checkpointing=true" in result.message and "batch_size=" in result.message
    assert "micro_batch" not in result.message


def test_without_cuda_the_peak_is_only_reported(config_file, monkeypatch):
    monkeypatch.setattr(check, "_cuda_free_bytes", lambda: None)
    result = check_memory(load_train_config(config_file), config_file)
    assert result.fits is None and result.peak_bytes and "memory plan: peak" in result.message


def test_train_cli_stops_before_loading_and_can_be_overridden(config_file, monkeypatch, capsys):
    from anymal.train import __main__ as cli
    from anymal.train import loop

    monkeypatch.setattr(check, "_cuda_free_bytes", lambda: 20 * GIB)
    loaded = []
    monkeypatch.setattr(loop, "train", lambda *a, **k: loaded.append(1) or (_ for _ in ()).throw(SystemExit(7)))
    assert cli.main(["--config", str(config_file)]) == 3
    err = capsys.readouterr().err
    assert "only 20.00 GiB is free" in err and "What to change" in err and not loaded
    with pytest.raises(SystemExit):
        cli.main(["--config", str(config_file), "--no-memory-check"])
    assert loaded == [1]
