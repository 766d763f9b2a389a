"""The demo world's ground truth: which attributes each modality's items have, and how text talks about them.

Every synthetic item is a point in a small attribute space (an image is a colour, a shape and a position; a sound
a pitch, a rhythm and a timbre; ...). Captions, questions and answers are rendered from several templates, so the
model never sees one fixed sentence per item; scoring reads attributes back out of generated text by keyword, so
any phrasing that names the right values counts, and a text naming two values of one attribute counts as wrong.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Attribute:
    """One property of an item, e.g. ``colour`` with values red/green/blue/yellow.

    Attributes:
        name: the attribute's name (``"colour"``).
        values: the values it can take; each value is also the keyword that identifies it in text.
        phrases: how a value is said inside a sentence when that differs from the keyword
            (``"left" -> "on the left"``).
    """

    name: str
    values: tuple[str, ...]
    phrases: dict[str, str] = field(default_factory=dict)

    def phrase(self, value: str) -> str:
        """The words used for ``value`` in captions and answers."""
        return self.phrases.get(value, value)

    def find(self, text: str) -> str | None:
        """The one value named in ``text`` (by keyword, whole words), or ``None`` if none or several are named."""
        found = [v for v in self.values if re.search(rf"\b{re.escape(v)}\b", text.lower())]
        return found[0] if len(found) == 1 else None

    @property
    def chance(self) -> float:
        """Accuracy of guessing a value uniformly at random."""
        return 1.0 / len(self.values)


@dataclass(frozen=True)
class Question:
    """A question about one or more attributes, in several phrasings, with answer templates."""

    attributes: tuple[str, ...]
    phrasings: tuple[str, ...]
    answers: tuple[str, ...]


@dataclass(frozen=True)
class ModalitySpec:
    """What items of one modality are made of and how the world's text describes them.

    Attributes:
        name: the anymal plugin name (``"image"``).
        attributes: the attribute space; an item is one value per attribute.
        captions: caption templates, ``{attribute}`` replaced by the value's phrase.
        questions: the questions the instruction stage asks about an item.
    """

    name: str
    attributes: tuple[Attribute, ...]
    captions: tuple[str, ...]
    questions: tuple[Question, ...]

    def attribute(self, name: str) -> Attribute:
        return next(a for a in self.attributes if a.name == name)

    def sample(self, rng: random.Random) -> dict[str, str]:
        """One uniformly random point of the attribute space."""
        return {a.name: rng.choice(a.values) for a in self.attributes}

    def phrases(self, truth: dict[str, str]) -> dict[str, str]:
        return {a.name: a.phrase(truth[a.name]) for a in self.attributes if a.name in truth}

    def caption(self, truth: dict[str, str], rng: random.Random) -> str:
        """A caption of an item in a randomly chosen phrasing."""
        return rng.choice(self.captions).format(**self.phrases(truth))

    def all_captions(self, truth: dict[str, str]) -> list[str]:
        """The item's caption in every phrasing (for the language model's corpus)."""
        return [template.format(**self.phrases(truth)) for template in self.captions]


def answer(question: Question, phrases: dict[str, str], rng: random.Random) -> str:
    """An answer to ``question`` in a random phrasing, given the phrases of the attributes it asks about."""
    return rng.choice(question.answers).format(**phrases)


def caption_instructions(modality: str) -> list[str]:
    """Every captioning instruction a stage-1 example of ``modality`` may carry: the plugin's own pool, then the
    generic one (what a pairs reader uses when it is given no plugin task)."""
    from anymal.plugin import AlignmentTask
    from anymal.registry import get_plugin

    plugin_cls = get_plugin(modality)
    pool = plugin_cls(plugin_cls.tiny_config()).alignment_task().instruction_pool()
    return list(dict.fromkeys([*pool, *AlignmentTask(modality=modality).instruction_pool()]))


def read_attributes(text: str, attributes: tuple[Attribute, ...]) -> dict[str, str | None]:
    """The attribute values a generated text names (``None`` where it names none or several)."""
    return {a.name: a.find(text) for a in attributes}


COLOUR = Attribute("colour", ("red", "green", "blue", "yellow"))

IMAGE = ModalitySpec(
    name="image",
    attributes=(
        COLOUR,
        Attribute("shape", ("circle", "square", "triangle")),
        Attribute(
            "position",
            ("left", "right", "top", "bottom"),
            {"left": "at the left", "right": "at the right", "top": "at the top", "bottom": "at the bottom"},
        ),
    ),
    captions=(
        "a {colour} {shape} {position}.",
        "there is a {colour} {shape} {position} of the picture.",
        "a picture with a {colour} {shape} {position}.",
    ),
    questions=(
        Question(
            ("colour",),
            ("What colour is the shape?", "Which colour does the shape have?"),
            ("{colour}.", "it is {colour}."),
        ),
        Question(("shape",), ("What shape is it?", "Which shape do you see?"), ("a {shape}.", "it is a {shape}.")),
        Question(
            ("position",),
            ("Where is the shape?", "Where in the picture is the shape?"),
            ("{position}.", "it is {position}."),
        ),
    ),
)

AUDIO = ModalitySpec(
    name="audio",
    attributes=(
        Attribute("pitch", ("low", "medium", "high")),
        Attribute("rhythm", ("steady", "pulsing")),
        Attribute("timbre", ("whistle", "buzz")),
    ),
    captions=(
        "a {pitch} {rhythm} {timbre}.",
        "a {rhythm} {timbre} with a {pitch} pitch.",
        "the sound of a {pitch} {timbre} that is {rhythm}.",
    ),
    questions=(
        Question(
            ("pitch",),
            ("Is the pitch low, medium or high?", "How high is the sound?"),
            ("{pitch}.", "the pitch is {pitch}."),
        ),
        Question(
            ("rhythm",),
            ("Is the sound steady or pulsing?", "What is the rhythm like?"),
            ("{rhythm}.", "it is {rhythm}."),
        ),
        Question(
            ("timbre",),
            ("Is it a whistle or a buzz?", "What kind of sound is it?"),
            ("a {timbre}.", "it is a {timbre}."),
        ),
    ),
)

IMU = ModalitySpec(
    name="imu",
    attributes=(
        Attribute(
            "activity",
            ("still", "walking", "running", "jumping"),
            {"still": "standing still"},
        ),
    ),
    captions=("a person {activity}.", "someone is {activity}.", "the wearer is {activity}."),
    questions=(
        Question(
            ("activity",),
            ("What is the person doing?", "Which activity is this?"),
            ("{activity}.", "the person is {activity}."),
        ),
    ),
)

VIDEO = ModalitySpec(
    name="video",
    attributes=(
        COLOUR,
        Attribute(
            "direction",
            ("left", "right", "up", "down"),
            {"left": "to the left", "right": "to the right"},
        ),
    ),
    captions=(
        "a {colour} square moving {direction}.",
        "a {colour} square slides {direction}.",
        "a video of a {colour} square moving {direction}.",
    ),
    questions=(
        Question(
            ("direction",),
            ("Which way does the square move?", "In which direction is it moving?"),
            ("{direction}.", "it moves {direction}."),
        ),
        Question(
            ("colour",),
            ("What colour is the square?", "Which colour is the moving square?"),
            ("{colour}.", "it is {colour}."),
        ),
    ),
)

SPECS: dict[str, ModalitySpec] = {spec.name: spec for spec in (IMAGE, AUDIO, IMU, VIDEO)}


@dataclass(frozen=True)
class MixedQuestion:
    """A question about two items of different modalities at once (one attribute of each)."""

    name: str
    modalities: tuple[str, str]
    attributes: tuple[str, str]
    phrasings: tuple[str, ...]
    answers: tuple[str, ...]


MIXED = (
    MixedQuestion(
        name="image+imu",
        modalities=("image", "imu"),
        attributes=("colour", "activity"),
        phrasings=(
            "<image>\n<imu>\nWhat colour is the shape, and what is the person doing?",
            "<imu>\n<image>\nWhat is the person doing, and which colour is the shape?",
        ),
        answers=("the shape is {colour} and the person is {activity}.",),
    ),
)
