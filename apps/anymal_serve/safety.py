"""Safety hooks around the model (AnyMAL §5): classifiers on the inputs and on the output, sentence by sentence.

A classifier is any object with ``name`` and ``check(kind, value) -> Verdict | None``. ``kind`` says what it
looks at: ``"text"`` (a user message's text part), a modality name (``"image"``, ``"audio"``, ``"video"``,
``"imu"``: the part's raw input, bytes or an ``(array, rate)`` pair) or ``"output"`` (one sentence of the answer,
checked before it is sent). It answers ``None`` or ``Verdict.passes()`` to let it through, ``Verdict.redact`` to
replace it (a text, a sentence, or an input with a cleaned one) or ``Verdict.refuse`` to refuse the request. A
refusal is an ordinary answer: the message's ``refusal`` holds the reason, ``finish_reason`` is
``content_filter`` and the response's ``safety`` list names the classifier; a refused output sentence ends the
answer there (what passed before it stays sent).

Classifiers are found by name in the ``anymal.safety`` entry-point group, whose entries are factories called with
the option string given after ``=`` on the command line (``--safety keyword_policy=policy.yaml``), or none. The
server runs none unless asked: safety is off by default.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Protocol

from anymal.errors import ConfigError

GROUP = "anymal.safety"
ACTIONS = ("pass", "redact", "refuse")


@dataclass(frozen=True)
class Verdict:
    """A classifier's answer: ``action`` is pass, redact (``replacement`` replaces the input) or refuse."""

    action: str = "pass"
    reason: str = ""
    replacement: Any = ""
    classifier: str = ""

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"Verdict.action must be one of {ACTIONS}, got {self.action!r}")

    @classmethod
    def passes(cls) -> Verdict:
        return cls("pass")

    @classmethod
    def redact(cls, replacement: Any, reason: str = "") -> Verdict:
        return cls("redact", reason, replacement)

    @classmethod
    def refuse(cls, reason: str) -> Verdict:
        return cls("refuse", reason)

    def record(self, stage: str, where: str | None = None) -> dict[str, Any]:
        """What the response's ``safety`` list says about this verdict."""
        entry = {"stage": stage, "classifier": self.classifier, "action": self.action, "reason": self.reason}
        if where is not None:
            entry["param"] = where
        return entry


class SafetyClassifier(Protocol):
    name: str

    def check(self, kind: str, value: Any) -> Verdict | None: ...


class Refused(Exception):
    """An input classifier refused the request (answered as a normal response, not an error)."""

    def __init__(self, verdict: Verdict, where: str) -> None:
        super().__init__(verdict.reason)
        self.verdict = verdict
        self.where = where


class SafetyPipeline:
    """Runs the classifiers in order; the first refusal wins, redactions chain."""

    def __init__(self, classifiers: Sequence[SafetyClassifier] = ()) -> None:
        self.classifiers = list(classifiers)
        for classifier in self.classifiers:
            if not callable(getattr(classifier, "check", None)):
                raise ConfigError(f"safety classifier {classifier!r} has no check(kind, value) method")

    def __bool__(self) -> bool:
        return bool(self.classifiers)

    def _run(self, kind: str, value: Any) -> tuple[Any, list[Verdict]]:
        acted = []
        for classifier in self.classifiers:
            verdict = classifier.check(kind, value)
            if verdict is None or verdict.action == "pass":
                continue
            name = getattr(classifier, "name", type(classifier).__name__)
            verdict = Verdict(verdict.action, verdict.reason, verdict.replacement, name)
            acted.append(verdict)
            if verdict.action == "refuse":
                break
            value = verdict.replacement
        return value, acted

    def screen_input(self, kind: str, value: Any, where: str, log: list[dict[str, Any]]) -> Any:
        """The input as the classifiers leave it; raises :class:`Refused` on a refusal. ``log`` collects records."""
        value, acted = self._run(kind, value)
        for verdict in acted:
            log.append(verdict.record("input", where))
            if verdict.action == "refuse":
                raise Refused(verdict, where)
        return value

    def check_output(self, sentence: str) -> Verdict | None:
        """One verdict for an output sentence: a refusal, else a redaction with the final text, else None."""
        value, acted = self._run("output", sentence)
        if not acted:
            return None
        last = acted[-1]
        if last.action == "refuse":
            return last
        return Verdict("redact", "; ".join(v.reason for v in acted if v.reason), value, last.classifier)


def available() -> list[str]:
    """Names in the ``anymal.safety`` entry-point group."""
    return sorted({ep.name for ep in entry_points(group=GROUP)})


def load_classifier(spec: str) -> SafetyClassifier:
    """``NAME`` or ``NAME=OPTION``: the entry point ``NAME`` of ``anymal.safety``, called with ``OPTION``."""
    name, eq, option = spec.partition("=")
    found = [ep for ep in entry_points(group=GROUP) if ep.name == name]
    if not found:
        known = ", ".join(available()) or "none installed"
        raise ConfigError(f"--safety {spec}: no safety classifier named {name!r} (group {GROUP}: {known})")
    factory = found[0].load()
    classifier = factory(option) if eq else factory()
    if not callable(getattr(classifier, "check", None)):
        raise ConfigError(f"--safety {spec}: {found[0].value} made {classifier!r}, which has no check(kind, value)")
    return classifier  # type: ignore[no-any-return]
