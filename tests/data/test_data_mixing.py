"""Weighted mixing: proportions, reproducibility and the exhaustion policies."""

from __future__ import annotations

import json
import math

import pytest

from anymal.data import Mixture, read_pairs
from anymal.errors import DataError


@pytest.fixture
def three_datasets(tmp_path, photos):
    """Three pair files of 300, 200 and 100 rows, all pointing at real photos."""
    readers = {}
    for name, size in (("coco", 300), ("cc", 200), ("vg", 100)):
        path = tmp_path / f"{name}.jsonl"
        path.write_text(
            "".join(json.dumps({"image": str(photos[i % 3]), "caption": f"{name} {i}"}) + "\n" for i in range(size))
        )
        readers[name] = read_pairs(path, modality="image")
    return readers


def _source(ex):
    return ex.turns[1].text.split()[0]


def test_cycled_mixture_matches_the_weights(three_datasets):
    weights = {"coco": 5, "cc": 3, "vg": 2}
    n = 3000
    mix = Mixture(three_datasets, weights, seed=1, stopping="cycle", num_examples=n)
    names = [_source(ex) for ex in mix]
    assert len(names) == n
    for name, p in mix.probabilities.items():
        observed = names.count(name)
        sigma = math.sqrt(n * p * (1 - p))
        assert abs(observed - n * p) < 4 * sigma, (name, observed, n * p)
        assert mix.counts[name] == observed
    assert mix.probabilities == {"coco": 0.5, "cc": 0.3, "vg": 0.2}


def test_same_seed_same_sequence_other_seed_or_epoch_differs(three_datasets):
    def sequence(seed, epoch=0):
        mix = Mixture(three_datasets, [1, 1, 1], seed=seed)
        mix.set_epoch(epoch)
        return [(ex.source, ex.line) for ex in mix]

    first = sequence(3)
    assert first == sequence(3)
    assert first != sequence(4)
    assert first != sequence(3, epoch=1)


def test_first_exhausted_stops_when_a_dataset_runs_out(three_datasets):
    mix = Mixture(three_datasets, {"coco": 1, "cc": 1, "vg": 1}, seed=0)
    names = [_source(ex) for ex in mix]
    assert names.count("vg") == 100 or names.count("cc") == 200 or names.count("coco") == 300
    assert len(names) < 600


def test_all_exhausted_uses_every_example_exactly_once(three_datasets):
    mix = Mixture(three_datasets, {"coco": 1, "cc": 1, "vg": 8}, seed=0, stopping="all_exhausted")
    seen = [(ex.source, ex.line) for ex in mix]
    assert len(seen) == len(set(seen)) == 600
    # the heavy, small dataset is used up early: the last 100 examples come from the others
    assert all(not src.endswith("vg.jsonl") for src, _ in seen[-100:])


def test_zero_weight_dataset_is_never_drawn(three_datasets):
    mix = Mixture(three_datasets, {"coco": 1, "cc": 0, "vg": 1}, seed=0, stopping="all_exhausted")
    assert {_source(ex) for ex in mix} == {"coco", "vg"}


@pytest.mark.parametrize(
    ("weights", "kwargs", "match"),
    [
        ({"coco": 1, "cc": 1}, {}, "missing"),
        ({"coco": 1, "cc": 1, "vg": -1}, {}, "non-negative"),
        ({"coco": 0, "cc": 0, "vg": 0}, {}, "at least one positive"),
        ({"coco": 1, "cc": 1, "vg": 1}, {"stopping": "cycle"}, "num_examples"),
        ({"coco": 1, "cc": 1, "vg": 1}, {"stopping": "forever"}, "expected one of"),
    ],
)
def test_invalid_mixtures_are_refused(three_datasets, weights, kwargs, match):
    with pytest.raises(DataError, match=match):
        Mixture(three_datasets, weights, **kwargs)


def test_mixture_report_adds_up_the_datasets_reports(tmp_path, photos):
    good = tmp_path / "good.jsonl"
    good.write_text(json.dumps({"image": str(photos[0]), "caption": "ok"}) + "\n")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        json.dumps({"image": str(photos[0])}) + "\n" + json.dumps({"image": str(photos[1]), "caption": "ok"}) + "\n"
    )
    readers = [read_pairs(p, modality="image", on_error="skip") for p in (good, bad)]
    mix = Mixture(readers, [1, 1], stopping="all_exhausted")
    assert len(list(mix)) == 2
    assert mix.report.ok == 2 and mix.report.skipped == {"missing_field": 1}
