"""``anymal_imu.labelled`` and ``python -m anymal_imu.prepare``: labelled recording files to a recipe's data, with a
validation split by whole recordings (no window of a held-out recording is trained on)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from anymal.config import load_config
from anymal.errors import ConfigError, DataError
from anymal.testing import require_asset
from anymal_imu.labelled import holdout_split, read_labelled, shifted_windows, window_offsets
from anymal_imu.prepare import PrepareConfig, main, prepare

REPO = Path(__file__).resolve().parents[3]
TRAIN = "imu/BasicMotions_TRAIN.npz"


def test_npz_and_ts_forms_of_basic_motions_read_the_same():
    npz = read_labelled(require_asset(TRAIN))
    ts = read_labelled(require_asset("imu/BasicMotions_TRAIN.ts"), sample_rate=10.0)
    assert npz.signals.shape == (40, 6, 100) and npz.rate == 10.0
    np.testing.assert_array_equal(npz.signals, ts.signals)
    assert npz.labels == ts.labels and sorted(set(npz.labels)) == ["Badminton", "Running", "Standing", "Walking"]


def test_windows_and_holdout_split():
    assert window_offsets(100, 80, 5) == [0, 5, 10, 15, 20]
    assert window_offsets(100, 80, 1) == [10]  # the centre, where the plugin's own crop takes it
    labels = ["a"] * 5 + ["b"] * 5
    kept, held = holdout_split(labels, 2, seed=3)
    assert holdout_split(labels, 2, seed=3) == (kept, held) and holdout_split(labels, 2, seed=4) != (kept, held)
    assert sorted(kept + held) == list(range(10)) and [labels[i] for i in held].count("a") == 2
    recordings = read_labelled(require_asset(TRAIN)).subset([0, 10])
    windows = shifted_windows(recordings, 80, 5)
    assert windows.signals.shape == (10, 6, 80) and windows.labels == ["Standing"] * 5 + ["Running"] * 5
    np.testing.assert_array_equal(windows.signals[6], recordings.signals[1][:, 5:85])
    with pytest.raises(DataError, match="would leave none"):
        holdout_split(labels, 5)
    with pytest.raises(DataError, match="longer than the recordings"):
        window_offsets(100, 120, 2)


def test_prepare_writes_a_leak_free_validation_split(tmp_path):
    cfg = PrepareConfig(train=str(require_asset(TRAIN)), holdout_per_class=3, out=str(tmp_path), sample_rate=10.0,
                        activities={"Badminton": "playing badminton"}, names={"Badminton": "badminton"})  # fmt: skip
    split = prepare(cfg)
    source = read_labelled(require_asset(TRAIN))
    assert len(split["held_out_recordings"]) == 12 and not set(split["held_out_recordings"]) & set(
        split["train_recordings"]
    )
    with np.load(tmp_path / "train_windows.npz") as data:
        windows, captions = data["X"], list(data["captions"])
    assert windows.shape == (28 * 5, 6, 80) and "The person is playing badminton." in captions
    for i in split["held_out_recordings"]:  # no training window is cut from a held-out recording
        held = source.signals[i]
        assert not any(np.array_equal(w, held[:, o : o + 80]) for w in windows for o in range(0, 21, 5))
    pairs = [json.loads(line) for line in (tmp_path / "train_pairs.jsonl").read_text().splitlines()]
    assert len(pairs) == 140 and np.load(tmp_path / pairs[7]["imu"]).shape == (80, 6)  # time-first
    names = [json.loads(line) for line in (tmp_path / "eval_names.jsonl").read_text().splitlines()]
    classify = [json.loads(line) for line in (tmp_path / "eval_classify.jsonl").read_text().splitlines()]
    assert [r["activity"] for r in names] == [source.labels[i] for i in split["held_out_recordings"]]
    np.testing.assert_array_equal(
        np.load(tmp_path / names[0]["media"]["imu"]).T, source.signals[split["held_out_recordings"][0]]
    )
    assert {r["label"] for r in names} == {"standing", "walking", "running", "badminton"}
    phrases = ["playing badminton", "running", "standing", "walking"]
    assert (tmp_path / "labels_classify.txt").read_text().splitlines() == [f"The person is {p}." for p in phrases]
    assert all(r["label"] in (tmp_path / "labels_classify.txt").read_text() for r in classify)


def test_the_shipped_data_config_takes_train_and_eval_files_as_overrides(tmp_path):
    train = require_asset(TRAIN)
    overrides = [f"train={train}", f"eval={require_asset('imu/BasicMotions_TRAIN.ts')}", f"out={tmp_path}"]
    cfg = load_config(PrepareConfig, REPO / "configs" / "examples" / "imu_basicmotions" / "data.yaml", overrides)
    split = prepare(cfg)
    assert split["eval_recordings"] == 40 and len(split["train_recordings"]) == 40


def test_bad_inputs_are_named(tmp_path, capsys):
    with pytest.raises(ConfigError, match="nothing to evaluate on"):
        PrepareConfig(train="x.npz")
    with pytest.raises(DataError, match="no such file"):
        read_labelled(tmp_path / "missing.npz")
    np.savez(tmp_path / "nolabels.npz", X=np.zeros((2, 6, 10), np.float32))
    with pytest.raises(DataError, match="no y array"):
        read_labelled(tmp_path / "nolabels.npz", 10.0)
    np.savez(tmp_path / "norate.npz", X=np.zeros((2, 6, 10), np.float32), y=np.array(["a", "b"]))
    with pytest.raises(DataError, match="no usable sample rate"):
        read_labelled(tmp_path / "norate.npz")
    np.savez(tmp_path / "other.npz", X=np.zeros((2, 6, 100), np.float32), y=np.array(["Jumping", "Standing"]))
    argv = [f"train={require_asset(TRAIN)}", f"eval={tmp_path / 'other.npz'}", "sample_rate=10", f"out={tmp_path}"]
    assert main(argv) == 2
    assert "['Jumping'] never occur in the training file" in capsys.readouterr().err
    (tmp_path / "bad.ts").write_text("@data\n1,2:3,x:Walking\n")
    with pytest.raises(DataError, match=r"bad\.ts:2"):
        read_labelled(tmp_path / "bad.ts", 10.0)
