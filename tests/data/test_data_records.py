"""The shared Example record: roles, media references and placeholder counting."""

from __future__ import annotations

from pathlib import Path

import pytest

from anymal.data import Example, MediaRef, Turn, placeholder


def test_placeholder_is_plugin_name_in_angle_brackets():
    assert placeholder("image") == "<image>"
    assert placeholder("imu") == "<imu>"


def test_turn_rejects_unknown_role():
    with pytest.raises(ValueError, match="system, user, assistant"):
        Turn("narrator", "be nice")
    assert Turn("system", "be nice").role == "system"  # rendered by chat templates


def test_media_ref_holds_exactly_one_of_path_and_bytes(tmp_path):
    with pytest.raises(ValueError, match="exactly one"):
        MediaRef()
    with pytest.raises(ValueError, match="exactly one"):
        MediaRef(path=tmp_path, data=b"x")
    inline = MediaRef(data=b"\x89PNG" * 100)
    assert inline.is_inline and inline.raw() == b"\x89PNG" * 100
    assert "400 bytes" in repr(inline)  # never dumps the payload into logs
    ref = MediaRef(path=str(tmp_path / "a.jpg"))
    assert isinstance(ref.path, Path) and ref.raw() == str(tmp_path / "a.jpg")


def test_example_counts_placeholders_in_user_turns_only():
    ex = Example(
        turns=[Turn("user", "<image>\n<image> compare, and <imu>?"), Turn("assistant", "the left one")],
        media={"image": [MediaRef(data=b"a"), MediaRef(data=b"b")], "imu": [MediaRef(data=b"c")]},
        source="x.jsonl",
        line=3,
    )
    assert ex.placeholder_counts() == {"image": 2, "imu": 1}
    assert ex.placeholder_counts(["audio"]) == {"audio": 0}
    assert ex.num_items() == 3
    assert ex.location == "x.jsonl:3"
