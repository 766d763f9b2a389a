"""The world's text: every caption and answer template names its item's attributes so that scoring reads them back."""

from __future__ import annotations

import itertools
import random

import pytest

from anymal_demo.world.vocabulary import MIXED, SPECS, answer, caption_instructions, read_attributes


def _all_truths(spec):
    names = [a.name for a in spec.attributes]
    return [dict(zip(names, values)) for values in itertools.product(*(a.values for a in spec.attributes))]


@pytest.mark.parametrize("modality", sorted(SPECS))
def test_every_caption_template_reads_back_to_its_truth(modality):
    spec = SPECS[modality]
    for truth in _all_truths(spec):
        for caption in spec.all_captions(truth):
            assert read_attributes(caption, spec.attributes) == truth, caption


@pytest.mark.parametrize("modality", sorted(SPECS))
def test_every_answer_names_the_asked_attribute(modality):
    spec = SPECS[modality]
    rng = random.Random(0)
    for truth in _all_truths(spec):
        for question in spec.questions:
            for _ in range(3):
                reply = answer(question, spec.phrases(truth), rng)
                found = read_attributes(reply, spec.attributes)
                assert all(found[name] == truth[name] for name in question.attributes), reply


def test_mixed_answers_name_both_items_attributes():
    rng = random.Random(0)
    for mixed in MIXED:
        for _ in range(20):
            truths = {name: SPECS[name].sample(rng) for name in mixed.modalities}
            phrases = {
                a: SPECS[m].attribute(a).phrase(truths[m][a]) for m, a in zip(mixed.modalities, mixed.attributes)
            }
            reply = rng.choice(mixed.answers).format(**phrases)
            for name, attr in zip(mixed.modalities, mixed.attributes):
                assert read_attributes(reply, SPECS[name].attributes)[attr] == truths[name][attr]


def test_a_text_naming_two_values_or_none_scores_as_unknown():
    colour = SPECS["image"].attribute("colour")
    assert colour.find("a red and blue circle") is None
    assert colour.find("a circle") is None
    assert colour.find("A RED circle.") == "red"
    assert colour.find("a reddish circle") is None  # whole words only


def test_chance_levels():
    assert SPECS["image"].attribute("shape").chance == pytest.approx(1 / 3)
    assert SPECS["imu"].attribute("activity").chance == pytest.approx(1 / 4)


def test_caption_instructions_cover_the_plugin_pool_and_the_generic_one():
    pool = caption_instructions("imu")
    assert "Describe this motion recording briefly." in pool  # the imu plugin's noun
    assert "Describe this imu briefly." in pool  # what a pairs reader uses without a plugin task
