"""Bad data rows: every one is a DataError (RowError) naming file:line and the field; bad options are ConfigErrors.

With ``on_error="skip"`` a bad row is counted with its file:line (reader report, or the training dataset's skip
marker) and the run goes on. The property tests at the end feed arbitrary JSONL lines to every reader.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
import torch

from anymal import ConfigError, DataError
from anymal.data import Example, ExampleReader, MediaOptions, PairFormat, RowError, read_conversations, read_pairs
from anymal.data.formats import MAX_TEXT_CHARS
from anymal.data.readers import read_dataset, read_llava, read_m3it
from anymal.testing import tiny_anymal
from anymal.train.dataset import TrainingDataset
from anymal.train.skips import SKIP_KEY
from bad_inputs.conftest import expect_error


def _rows(tmp_path: Path, *rows, name: str = "rows.jsonl") -> Path:
    (tmp_path / "toy_input.txt").write_text("1 2 3 4 5 6 7 8\n")
    path = tmp_path / name
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def _pair(caption, **extra):
    return {"toy": "toy_input.txt", "caption": caption, **extra}


def _read_all(reader):
    return list(reader)


# --- options --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "make",
    [
        lambda p: read_pairs(p, modality="toy", on_error="ignore"),
        lambda p: read_conversations(p, on_error="Skip"),
        lambda p: read_llava(p, on_error=""),
        lambda p: read_m3it(p, on_error=None),
        lambda p: read_dataset("pairs", p, modality="toy", on_error="warn"),
        lambda p: ExampleReader(p, PairFormat("toy", "toy", instructions=("Describe.",)), on_error="continue"),
    ],
    ids=["pairs", "conversations", "llava", "m3it", "read_dataset", "ExampleReader"],
)
def test_bad_on_error_value(tmp_path, make):
    expect_error(lambda: make(_rows(tmp_path, _pair("x"))), ConfigError, r"on_error=.*expected one of raise, skip")


def test_bad_media_encoding(tmp_path):
    expect_error(
        lambda: read_pairs(_rows(tmp_path, _pair("x")), modality="toy", media_encoding="hex"),
        ConfigError,
        r"media_encoding='hex'.*auto, path, base64",
    )


def test_bad_media_encoding_in_options():
    expect_error(lambda: MediaOptions(encoding="url"), ConfigError, "media_encoding='url'")


# --- captions and turns ---------------------------------------------------------------------------------------
def test_10mb_caption_stops_a_raise_run_with_file_and_line(bad_files):
    path = bad_files / "rows_caption_10mb.jsonl"
    expect_error(
        lambda: _read_all(read_pairs(path, modality="toy")),
        DataError,
        r"rows_caption_10mb.jsonl:2: field 'caption'",
        rf"10000000 characters long; expected at most {MAX_TEXT_CHARS}",
    )


def test_10mb_caption_is_skipped_and_counted_in_a_skip_run(bad_files):
    reader = read_pairs(bad_files / "rows_caption_10mb.jsonl", modality="toy", on_error="skip")
    assert len(_read_all(reader)) == 2
    assert reader.report.skipped == {"text_too_long": 1}
    assert reader.report.locations["text_too_long"][0].endswith("rows_caption_10mb.jsonl:2 (caption)")


def test_caption_one_character_over_the_limit(tmp_path):
    path = _rows(tmp_path, _pair("x" * (MAX_TEXT_CHARS + 1)))
    expect_error(lambda: _read_all(read_pairs(path, modality="toy")), RowError, r"rows.jsonl:1", "text_too_long|long")


def test_caption_at_the_limit_is_fine(tmp_path):
    """Control: MAX_TEXT_CHARS characters are allowed."""
    path = _rows(tmp_path, _pair("x" * MAX_TEXT_CHARS))
    assert len(_read_all(read_pairs(path, modality="toy"))) == 1


def test_overlong_conversation_turn(tmp_path):
    turns = [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "y" * (MAX_TEXT_CHARS + 5)}]
    path = _rows(tmp_path, {"conversations": turns})
    expect_error(lambda: _read_all(read_llava(path)), RowError, r"rows.jsonl:1: field 'conversations\[1\].value'")


def test_overlong_m3it_instruction(tmp_path):
    path = _rows(tmp_path, {"instruction": "z" * (MAX_TEXT_CHARS + 1), "outputs": "ok"})
    expect_error(lambda: _read_all(read_m3it(path)), RowError, r"rows.jsonl:1: field 'instruction'")


@pytest.mark.parametrize("escape", ["\\ud800", "ok \\udfff"])
def test_lone_surrogate_in_a_caption(tmp_path, escape):
    path = _rows(tmp_path, '{"toy": "toy_input.txt", "caption": "' + escape + '"}')
    expect_error(
        lambda: _read_all(read_pairs(path, modality="toy")), RowError, r"rows.jsonl:1: field 'caption'", "surrogate"
    )


def test_lone_surrogate_in_a_turn(tmp_path):
    row = '{"conversations": [{"role": "user", "content": "a\\ud83d b"}, {"role": "assistant", "content": "c"}]}'
    good = {"conversations": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}
    path = _rows(tmp_path, good, row)
    expect_error(
        lambda: _read_all(read_conversations(path)), RowError, r"rows.jsonl:2: field 'conversations\[0\].content'"
    )


# --- media ----------------------------------------------------------------------------------------------------
def test_invalid_base64_names_file_and_line(tmp_path):
    path = _rows(tmp_path, _pair("ok"), {"toy": "data:text/plain;base64,@@@@", "caption": "bad"})
    expect_error(lambda: _read_all(read_pairs(path, modality="toy")), RowError, r"rows.jsonl:2: field 'toy'", "base64")


@pytest.fixture(scope="module")
def toy_model():
    torch.manual_seed(0)
    return tiny_anymal(("toy",))


def test_undecodable_base64_media_is_a_skip_with_file_and_line(bad_files, toy_model):
    path = bad_files / "rows_undecodable_base64.jsonl"
    examples = _read_all(read_pairs(path, modality="toy"))  # valid base64: the reader cannot tell
    dataset = TrainingDataset(examples, toy_model, chat=False, on_error="skip")
    assert SKIP_KEY not in dataset[0]
    marker = dataset[1]
    assert marker["where"].endswith("rows_undecodable_base64.jsonl:2")
    assert marker[SKIP_KEY].startswith("InputError: field 'media.toy[0]': MediaRef(data=<")


def test_undecodable_base64_media_stops_a_raise_run_with_file_and_line(bad_files, toy_model):
    examples = _read_all(read_pairs(bad_files / "rows_undecodable_base64.jsonl", modality="toy"))
    dataset = TrainingDataset(examples, toy_model, chat=False, on_error="raise")
    expect_error(lambda: dataset[1], DataError, r"rows_undecodable_base64.jsonl:2: field 'media.toy\[0\]'")


def test_undecodable_media_read_time_check_names_file_and_line(bad_files, toy_model):
    """With ``validate_media`` the reader itself reports the row (reason media_invalid) with file:line."""
    plugin = toy_model.plugins["toy"]
    reader = read_pairs(
        bad_files / "rows_undecodable_base64.jsonl",
        modality="toy",
        on_error="skip",
        validate_media=lambda name, ref: plugin.preprocess(ref.raw()),
    )
    assert len(_read_all(reader)) == 1
    assert reader.report.locations["media_invalid"][0].endswith("rows_undecodable_base64.jsonl:2 (toy[0])")


def test_row_longer_than_the_llm_context_is_a_skip_with_file_and_line(tmp_path, toy_model):
    context = toy_model.llm.config.max_position_embeddings
    path = _rows(tmp_path, _pair("ok"), _pair(" ".join(["tok"] * (context + 10))))
    dataset = TrainingDataset(_read_all(read_pairs(path, modality="toy")), toy_model, chat=False, on_error="skip")
    assert SKIP_KEY not in dataset[0]
    marker = dataset[1]
    assert marker["where"].endswith("rows.jsonl:2") and f"LLM context of {context}" in marker[SKIP_KEY]


def test_placeholder_of_a_plugin_the_model_lacks_is_a_skip(tmp_path, toy_model):
    row = {"conversations": [{"role": "user", "content": "hear <audio>"}, {"role": "assistant", "content": "ok"}]}
    examples = _read_all(read_conversations(_rows(tmp_path, row), modalities=["toy"]))
    marker = TrainingDataset(examples, toy_model, chat=False, on_error="skip")[0]
    assert marker["where"].endswith("rows.jsonl:1") and "<audio>" in marker[SKIP_KEY]


# --- property-based fuzzing of the row readers ----------------------------------------------------------------
hypothesis = pytest.importorskip("hypothesis")
st = hypothesis.strategies
FUZZ = hypothesis.settings(max_examples=200, deadline=None, suppress_health_check=list(hypothesis.HealthCheck))

KEYS = [
    "toy", "image", "caption", "conversations", "media", "from", "value", "role", "content", "instruction",
    "inputs", "outputs", "image_base64_str", "id", "bytes", "path",
]  # fmt: skip
SPECIAL = [
    "human", "gpt", "user", "assistant", "<image>", "<toy>", "<audio>", "toy_input.txt", "QUJD" * 20,
    "data:x;base64,QUJD", "http://x/y.jpg", "\ud800", "/etc/passwd", ".", "",
]  # fmt: skip
LEAF = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=10), st.sampled_from(SPECIAL))
TREE = st.recursive(
    LEAF,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(KEYS), inner)),
    max_leaves=12,
)
LINE = st.one_of(TREE.map(json.dumps), st.text(max_size=40).map(lambda t: t.replace("\n", " ").replace("\r", " ")))
READERS = {
    "pairs": lambda p, **kw: read_pairs(p, modality="toy", **kw),
    "llava": lambda p, **kw: read_llava(p, **kw),
    "m3it": lambda p, **kw: read_m3it(p, **kw),
    "conversations": lambda p, **kw: read_conversations(p, modalities=["toy", "image"], **kw),
}


@pytest.mark.parametrize("kind", sorted(READERS))
def test_fuzz_readers_yield_an_example_or_a_located_row_error(kind):
    @FUZZ
    @hypothesis.given(LINE)
    def check(line):
        with tempfile.TemporaryDirectory() as folder:
            path = _rows(Path(folder), line)
            try:
                examples = _read_all(READERS[kind](path))
            except RowError as err:
                assert str(err).startswith(f"{path}:1: field "), str(err)
                assert (err.source, err.line) == (str(path), 1)
                return
            if not line.strip():  # a blank line is no row
                assert examples == []
                return
            assert len(examples) == 1 and isinstance(examples[0], Example)
            assert (examples[0].source, examples[0].line) == (str(path), 1)
            skipping = READERS[kind](path, on_error="skip")
            assert len(_read_all(skipping)) == 1 and skipping.report.total_skipped == 0

    check()
