"""Bad rows: each kind raises a DataError naming file, line and field, or is skipped and counted."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from anymal.data import RowError, read_conversations, read_llava, read_m3it, read_pairs
from anymal.errors import DataError


@pytest.fixture
def bad_pairs(tmp_path, photos):
    """A JSONL file whose rows 2-11 are each broken in a different way (line 6 is blank)."""
    (tmp_path / "folder.jpg").mkdir()
    (tmp_path / "empty.jpg").write_bytes(b"")
    good = str(photos[0])
    lines = [
        json.dumps({"image": good, "caption": "fine"}),  # 1
        json.dumps({"image": good}),  # 2 missing caption
        json.dumps({"image": good, "caption": "   "}),  # 3 empty caption
        '{"image": "' + good + '", "caption": "x"',  # 4 invalid JSON
        json.dumps({"image": "nowhere/missing.jpg", "caption": "x"}),  # 5 missing media file
        "",  # 6 blank: ignored
        json.dumps({"image": good, "caption": 42}),  # 7 wrong type
        json.dumps({"image": "https://example.com/cat.jpg", "caption": "x"}),  # 8 URL
        json.dumps({"image": "folder.jpg", "caption": "x"}),  # 9 a directory
        json.dumps({"image": "empty.jpg", "caption": "x"}),  # 10 empty file
        json.dumps(["not", "an", "object"]),  # 11 wrong row type
        json.dumps({"image": str(photos[1]), "caption": "also fine"}),  # 12
    ]
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


EXPECTED = [
    (2, "caption", "missing_field", "missing; expected caption text"),
    (3, "caption", "empty_field", "empty; expected non-empty caption text"),
    (4, "<json>", "invalid_json", "invalid JSON"),
    (5, "image", "media_missing", "does not exist"),
    (7, "caption", "wrong_type", "expected caption text (a string), got int"),
    (8, "image", "media_url", "is a URL; anymal never downloads"),
    (9, "image", "media_unreadable", "is not a regular file"),
    (10, "image", "media_unreadable", "is empty (0 bytes)"),
    (11, "<row>", "wrong_type", "expected an object"),
]


@pytest.mark.parametrize(("line", "field", "reason", "problem"), EXPECTED)
def test_each_bad_row_raises_with_file_line_and_field(bad_pairs, line, field, reason, problem):
    rows = bad_pairs.read_text().splitlines()
    only = bad_pairs.with_name(f"only{line}.jsonl")
    only.write_text("\n" * (line - 1) + rows[line - 1] + "\n")  # keep the line number
    with pytest.raises(DataError) as info:
        list(read_pairs(only, modality="image"))
    err = info.value
    assert isinstance(err, RowError)
    assert str(err).startswith(f"{only}:{line}: field {field!r}: ")
    assert problem in str(err)
    assert (err.line, err.field, err.reason) == (line, field, reason)


def test_raise_policy_stops_at_the_first_bad_row(bad_pairs):
    reader = read_pairs(bad_pairs, modality="image")
    seen = []
    with pytest.raises(RowError, match=r"bad.jsonl:2: field 'caption'"):
        for ex in reader:
            seen.append(ex.line)
    assert seen == [1]


def test_skip_policy_counts_bad_rows_per_reason_with_locations(bad_pairs):
    reader = read_pairs(bad_pairs, modality="image", on_error="skip")
    assert [ex.line for ex in reader] == [1, 12]
    report = reader.report
    assert report.ok == 2
    assert report.skipped == {
        "missing_field": 1,
        "empty_field": 1,
        "invalid_json": 1,
        "media_missing": 1,
        "wrong_type": 2,
        "media_url": 1,
        "media_unreadable": 2,
    }
    assert report.locations["media_unreadable"] == [f"{bad_pairs}:9 (image)", f"{bad_pairs}:10 (image)"]
    assert report.locations["wrong_type"] == [f"{bad_pairs}:7 (caption)", f"{bad_pairs}:11 (<row>)"]
    assert "2 examples read, 9 rows skipped" in report.summary()
    # a new pass starts a fresh report instead of double counting
    assert len(list(reader)) == 2 and report.total_skipped == 9


def test_broken_json_list_reports_the_syntax_error_line(tmp_path, photos):
    data = tmp_path / "pairs.json"
    first = json.dumps({"image": str(photos[0]), "caption": "ok"})
    data.write_text(f'[\n {first},\n {{"image": "x.jpg", "caption": }}\n]\n')
    reader = read_pairs(data, modality="image", on_error="skip")
    assert [ex.line for ex in reader] == [2]
    assert reader.report.locations["invalid_json"] == [f"{data}:3 (<json>)"]


def test_csv_row_with_wrong_column_count(tmp_path, photos):
    data = tmp_path / "pairs.csv"
    data.write_text(f"image,caption\n{photos[0]},ok\n{photos[1]},too,many\n")
    with pytest.raises(RowError, match=r"pairs.csv:3: field '<csv>': has 3 columns but the header has 2"):
        list(read_pairs(data, modality="image"))


def test_invalid_base64_in_m3it(tmp_path):
    data = tmp_path / "m3it.jsonl"
    row = {"instruction": "Describe.", "inputs": "", "outputs": "x", "image_base64_str": ["@@not base64@@"]}
    data.write_text(json.dumps(row) + "\n")
    with pytest.raises(RowError, match=r"m3it.jsonl:1: field 'image_base64_str\[0\]': invalid base64"):
        list(read_m3it(data))


@pytest.mark.parametrize(
    ("conversations", "field", "problem"),
    [
        (
            [{"from": "gpt", "value": "hi"}, {"from": "human", "value": "?"}],
            "conversations",
            "turn 0 is from the assistant",
        ),
        ([{"from": "human", "value": "hi"}], "conversations", "the last turn is from the user"),
        ([{"from": "system", "value": "x"}, {"from": "gpt", "value": "y"}], "conversations[0].from", "unknown role"),
        ([{"from": "human"}, {"from": "gpt", "value": "y"}], "conversations[0].value", "missing"),
        ([{"from": "human", "value": "q"}, {"from": "gpt", "value": ""}], "conversations[1].value", "empty turn"),
        ([{"from": "human", "value": "q"}, {"from": "gpt", "value": "<image>"}], "conversations", "assistant turn"),
        ("hello", "conversations", "expected a list of turns"),
    ],
)
def test_malformed_llava_conversations(tmp_path, conversations, field, problem):
    data = tmp_path / "llava.jsonl"
    data.write_text(json.dumps({"id": "x", "conversations": conversations}) + "\n")
    with pytest.raises(RowError) as info:
        list(read_llava(data))
    assert info.value.field == field and problem in str(info.value)


def test_multimodal_row_with_unknown_modality_name(tmp_path, photos):
    data = tmp_path / "mm.jsonl"
    row = {"media": {"Image Files": [str(photos[0])]}, "conversations": [{"role": "user", "content": "?"}]}
    data.write_text(json.dumps(row) + "\n")
    with pytest.raises(RowError, match="not a plugin name"):
        list(read_conversations(data))


def test_media_validator_turns_undecodable_files_into_bad_rows(tmp_path, photos):
    (tmp_path / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg" * 10)
    data = tmp_path / "pairs.jsonl"
    data.write_text(
        json.dumps({"image": str(photos[0]), "caption": "real"})
        + "\n"
        + json.dumps({"image": "corrupt.jpg", "caption": "x"})
        + "\n"
    )

    def decodes(modality, ref):
        with Image.open(ref.path) as im:
            im.load()

    reader = read_pairs(data, modality="image", on_error="skip", validate_media=decodes)
    assert [ex.line for ex in reader] == [1]
    assert reader.report.skipped == {"media_invalid": 1}
    assert "corrupt.jpg" in reader.report.first_errors[0] and "cannot be used" in reader.report.first_errors[0]
    assert reader.report.first_errors[0].startswith(f"{data}:2: field 'image[0]'")
