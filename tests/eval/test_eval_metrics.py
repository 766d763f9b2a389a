"""Metric values: pycocoevalcap against nlg-eval's vectors, and hand-worked VQAv2, ANLS, exact-match and circular
multiple-choice cases."""

from __future__ import annotations

import json

import pytest

from anymal.eval.metrics import (
    anls,
    caption_scores,
    circular_accuracy,
    exact_match,
    java_available,
    levenshtein,
    normalize_answer,
    render_options,
    rotations,
    rouge_l,
    vqa_accuracy,
)
from anymal.testing import require_asset


@pytest.fixture(scope="module")
def expected():
    return json.loads((require_asset("eval") / "expected_scores.json").read_text())


def _check(got: dict, want: dict, places: int) -> None:
    for name, value in want.items():
        if name == "METEOR" and not java_available():
            assert "Java" in got["unavailable"]["METEOR"]
            assert "METEOR" not in got
            continue
        assert round(abs(got[name] - value), places) == 0, (name, got[name], value)


def test_caption_metrics_match_nlg_eval_multi_reference(expected):
    case = expected["nlg_eval_multi_ref"]
    got = caption_scores(case["hyps"], case["refs"], tokenizer="whitespace")  # refs[j]: the references of hyp j
    assert got["tokenizer"] == "whitespace"
    _check(got, case["expected"], case["places"])


def test_caption_metrics_match_nlg_eval_single(expected):
    case = expected["nlg_eval_single"]
    got = caption_scores([case["hyp"]], [case["refs"]], tokenizer="whitespace", metrics=["Bleu_1", "Bleu_2", "Bleu_3",
                         "Bleu_4", "ROUGE_L", "CIDEr"])  # fmt: skip
    for name, value in case["expected"].items():
        if name != "METEOR":  # the same jar as the multi-reference case; one METEOR start per test run is enough
            assert got[name] == pytest.approx(value, rel=2e-6, abs=1e-6), name


def test_caption_files_beside_the_vectors_are_the_same_set(expected):
    folder = require_asset("eval")
    hyps = (folder / "nlgeval_hyp.txt").read_text().splitlines()
    refs = [(folder / f"nlgeval_ref{i}.txt").read_text().splitlines() for i in (1, 2)]
    assert hyps == expected["nlg_eval_multi_ref"]["hyps"]
    assert [list(r) for r in zip(*refs)] == expected["nlg_eval_multi_ref"]["refs"]


def test_meteor_missing_java_is_reported_not_faked(monkeypatch):
    import anymal.eval.metrics.caption as caption

    monkeypatch.setattr(caption, "java_available", lambda: False)
    got = caption.caption_scores(["a cat"], [["a cat on a mat"]], tokenizer="auto")
    assert got["tokenizer"] == "whitespace"
    assert "METEOR" not in got and "Java" in got["unavailable"]["METEOR"]


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("Two", "2"),
        ("the dog", "dog"),
        ("A dog.", "dog"),
        ("dont know", "don't know"),
        ("yes!", "yes"),
        ("3.5", "3.5"),  # a period between digits stays
        ("1,000", "1000"),  # digit-comma-digit: punctuation is deleted, not spaced
        ("red, white", "red white"),  # ", " touches a space: deleted
        ("black/white", "black white"),  # no space, no digit group: becomes a space
        ("none", "0"),
        ("  Ten\tapples \n", "10 apples"),
    ],
)
def test_vqa_normalisation_hand_worked(raw, normalised):
    assert normalize_answer(raw) == normalised


def test_vqa_soft_accuracy_hand_worked():
    ten = ["2"] * 3 + ["3"] * 7
    # each of the ten leave-one-out subsets: a "2" answer left out sees 2 matches (2/3), a "3" left out sees 3 (1)
    assert vqa_accuracy("two", ten) == pytest.approx((3 * 2 / 3 + 7 * 1) / 10)
    assert vqa_accuracy("3", ten) == pytest.approx((3 * 1 + 7 * 1) / 10)  # 7 or 6 matches: min(1, n/3) = 1
    assert vqa_accuracy("four", ten) == 0.0
    one = ["cat"] + ["dog"] * 9
    assert vqa_accuracy("cat", one) == pytest.approx((1 * 0 + 9 * (1 / 3)) / 10)  # 0.3
    assert vqa_accuracy("The Dog.", ["dog"] * 10) == 1.0  # unanimous references are compared as given
    assert vqa_accuracy("dog", ["dog", "dogs"]) == pytest.approx(0.5 * (0 + 1 / 3))


def test_anls_hand_worked():
    assert levenshtein("kitten", "sitting") == 3
    assert anls("Kitten ", ["kitten"]) == 1.0
    assert anls("kitten", ["sitting"]) == pytest.approx(1 - 3 / 7)  # NL 0.43 < 0.5
    assert anls("abcd", ["abxy"]) == 0.0  # NL exactly 0.5 is not below the threshold
    assert anls("abcd", ["wxyz", "abce"]) == pytest.approx(0.75)  # the best reference counts
    assert anls("", [""]) == 1.0


def test_exact_match_and_rouge_l():
    assert exact_match("Yes.", ["yes"]) == 1.0
    assert exact_match("yes it is", ["yes"]) == 0.0
    assert rouge_l("a cat on a mat", ["a cat on a mat"]) == pytest.approx(1.0)
    assert rouge_l("", ["a cat"]) == 0.0
    assert 0 < rouge_l("a black cat", ["a cat"]) < 1


def test_circular_rotations_and_accuracy():
    shown = rotations(["cat", "dog", "cow"], answer=1)
    assert shown == [(["cat", "dog", "cow"], 1), (["dog", "cow", "cat"], 0), (["cow", "cat", "dog"], 2)]
    assert render_options(["cat", "dog"]) == "A. cat\nB. dog"
    # item 1 right in all passes, item 2 right only unrotated, item 3 wrong first then right
    got = circular_accuracy([[True, True, True], [True, False, True], [False, True, True]])
    assert got == {"circular_accuracy": pytest.approx(1 / 3), "vanilla_accuracy": pytest.approx(2 / 3)}
