"""A run whose rows are all unusable stops with the skip reasons instead of spinning at step 0."""

import contextlib
import json
import signal

import pytest

from anymal import DataError
from anymal.train import train


@contextlib.contextmanager
def deadline(seconds):
    """Fails the test instead of hanging CI if training spins (the bug this file guards against)."""

    def expire(signum, frame):
        raise TimeoutError(f"training still running after {seconds} s: it spins on unusable rows")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def undecodable_pairs(tmp_path):
    """Caption rows whose image files exist but are not images: the reader accepts them, preprocessing fails."""
    rows = []
    for i in range(6):
        path = tmp_path / f"photo_{i}.jpg"
        path.write_bytes(b"not a jpeg at all")
        rows.append({"image": str(path), "caption": f"a photo number {i}"})
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return data


def _config(make_config, tmp_path, data, *overrides):
    return make_config(
        tmp_path,
        f"data=[{{kind: pairs, path: '{data}', modality: image, media_key: image}}]",
        "max_steps=5",
        *overrides,
    )


def test_an_epoch_without_one_usable_row_stops_with_the_reasons(make_config, tmp_path, undecodable_pairs):
    config = _config(make_config, tmp_path, undecodable_pairs, "max_consecutive_skips=0")
    with deadline(120), pytest.raises(DataError, match=r"epoch 0 .* yielded no usable row") as info:
        train(config)
    message = str(info.value)
    assert "Skipped 6 rows" in message and "InputError x6" in message
    assert "pairs.jsonl:" in message and "photo_" in message  # the first locations: file:line and the file
    assert not (tmp_path / "run" / "final").exists()


def test_too_many_consecutive_bad_rows_stop_the_run(make_config, tmp_path, undecodable_pairs):
    config = _config(make_config, tmp_path, undecodable_pairs, "max_consecutive_skips=4")
    with deadline(120), pytest.raises(DataError, match=r"last 4 rows were all skipped \(max_consecutive_skips=4\)"):
        train(config)


def test_a_few_bad_rows_among_good_ones_are_skipped_and_counted(make_config, tmp_path, pairs, undecodable_pairs):
    good, _ = pairs
    mixed = tmp_path / "mixed.jsonl"
    bad_rows = undecodable_pairs.read_text().splitlines()[:2]
    mixed.write_text(good.read_text() + "\n".join(bad_rows) + "\n")
    config = _config(make_config, tmp_path, mixed, "max_consecutive_skips=3")
    with deadline(240):
        result = train(config)
    assert result.steps == 5
    assert result.skipped["InputError"] >= 2  # every epoch meets both bad files again
    assert result.skipped["rows"] == 2  # the reader's own bad rows (a missing file, an empty caption)


def test_a_negative_skip_limit_is_a_config_error(make_config, tmp_path):
    from anymal import ConfigError

    with pytest.raises(ConfigError, match="max_consecutive_skips=-1"):
        make_config(tmp_path, "max_consecutive_skips=-1")
