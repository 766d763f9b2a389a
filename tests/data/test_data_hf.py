"""Local Hugging Face ``datasets`` sources (json/jsonl/parquet files), loaded offline."""

from __future__ import annotations

import json

import datasets
import pytest

from anymal.data import DataReport, load_local_dataset, read_llava, read_pairs
from anymal.errors import DataError


def test_parquet_pairs_with_inline_bytes_and_paths(tmp_path, photos):
    table = datasets.Dataset.from_dict(
        {
            "image": [{"bytes": photos[0].read_bytes(), "path": None}, {"bytes": None, "path": str(photos[1])}],
            "caption": ["inline photo", "photo on disk"],
        }
    )
    data = tmp_path / "pairs.parquet"
    table.to_parquet(str(data))

    inline, on_disk = read_pairs(data, modality="image", cache_dir=tmp_path / "cache")

    assert inline.media["image"][0].data == photos[0].read_bytes()
    assert on_disk.media["image"][0].path == photos[1]
    assert (inline.line, on_disk.line) == (1, 2)
    assert inline.source == str(data)


def test_dataset_loaded_with_load_dataset_json(tmp_path, photos):
    rows = [
        {
            "id": str(i),
            "image": p.name,
            "conversations": [{"from": "human", "value": "Q?"}, {"from": "gpt", "value": "A"}],
        }
        for i, p in enumerate(photos[:3])
    ]
    files = [tmp_path / "a.jsonl", tmp_path / "b.jsonl"]
    files[0].write_text("".join(json.dumps(r) + "\n" for r in rows[:2]))
    files[1].write_text(json.dumps(rows[2]) + "\n")

    dataset = load_local_dataset(files, cache_dir=tmp_path / "cache")
    assert isinstance(dataset, datasets.Dataset) and len(dataset) == 3

    examples = list(read_llava(dataset, media_root=photos[0].parent, name="llava-mini"))
    assert [ex.id for ex in examples] == ["0", "1", "2"]
    assert [ex.location for ex in examples] == ["llava-mini:1", "llava-mini:2", "llava-mini:3"]
    assert examples[2].media["image"][0].path == photos[2]


def test_relative_media_in_an_in_memory_dataset_needs_a_media_root(tmp_path, photos):
    dataset = datasets.Dataset.from_list([{"image": photos[0].name, "caption": "c"}])
    reader = read_pairs(dataset, modality="image", on_error="skip")
    assert list(reader) == []
    assert reader.report.skipped == {"media_missing": 1}
    assert isinstance(reader.report, DataReport)
    assert "pass media_root" in reader.report.first_errors[0]


def test_load_local_dataset_names_the_file_it_cannot_parse(tmp_path):
    bad = tmp_path / "broken.parquet"
    bad.write_bytes(b"not parquet at all")
    with pytest.raises(DataError, match=r"broken\.parquet"):
        load_local_dataset(bad, cache_dir=tmp_path / "cache")
    with pytest.raises(DataError, match="data file not found"):
        load_local_dataset(tmp_path / "missing.jsonl")
