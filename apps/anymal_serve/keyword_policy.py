"""A small offline text classifier: regular-expression rules read from a YAML or JSON policy file.

The ``anymal.safety`` entry point ``keyword_policy`` (``--safety keyword_policy=policy.yaml``). A policy::

    rules:
      - pattern: "\\\\b(password|passwd)\\\\b"   # a Python regular expression, matched case-insensitively
        action: redact                          # redact: replace each match; refuse: refuse the request
        replacement: "[redacted]"               # for redact (default "[redacted]")
        reason: credentials                     # stated in the response
        applies_to: [input, output]             # input (user text), output (answer sentences); default both

It looks at text only (user text parts and answer sentences); media pass through untouched.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from anymal.config import read_yaml_mapping
from anymal.errors import ConfigError
from anymal_serve.safety import Verdict

_STAGES = ("input", "output")


@dataclass(frozen=True)
class Rule:
    pattern: re.Pattern[str]
    action: str
    replacement: str
    reason: str
    applies_to: tuple[str, ...]


def _rule(raw: Any, where: str) -> Rule:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping with pattern and action, got {raw!r}")
    unknown = set(raw) - {"pattern", "action", "replacement", "reason", "applies_to"}
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)}")
    pattern = raw.get("pattern")
    if not isinstance(pattern, str) or not pattern:
        raise ConfigError(f"{where}.pattern: expected a non-empty regular expression string")
    try:
        compiled = re.compile(pattern, re.IGNORECASE)
    except re.error as exc:
        raise ConfigError(f"{where}.pattern: not a valid regular expression ({exc})") from None
    action = raw.get("action")
    if action not in ("redact", "refuse"):
        raise ConfigError(f"{where}.action: expected redact or refuse, got {action!r}")
    applies = raw.get("applies_to", list(_STAGES))
    applies = [applies] if isinstance(applies, str) else applies
    if not isinstance(applies, list) or not applies or any(a not in _STAGES for a in applies):
        raise ConfigError(f"{where}.applies_to: expected a list of {', '.join(_STAGES)}, got {raw.get('applies_to')!r}")
    replacement = raw.get("replacement", "[redacted]")
    reason = raw.get("reason", f"matched {pattern!r}")
    if not isinstance(replacement, str) or not isinstance(reason, str):
        raise ConfigError(f"{where}: replacement and reason must be strings")
    return Rule(compiled, action, replacement, reason, tuple(applies))


class KeywordPolicy:
    """Regex rules over text; the first refusing rule that matches refuses, redacting rules all apply."""

    name = "keyword_policy"

    def __init__(self, path: str | Path | None = None, *, rules: list[dict[str, Any]] | None = None) -> None:
        if (path is None) == (rules is None):
            raise ConfigError("keyword_policy needs a policy file: --safety keyword_policy=PATH (YAML or JSON)")
        where = "keyword_policy"
        if path is not None:
            where = str(path)
            data = read_yaml_mapping(path, "the safety policy")  # YAML, or JSON (a subset of YAML)
            if not isinstance(data.get("rules"), list):
                raise ConfigError(f"{path}: expected a mapping with a rules list")
            rules = data["rules"]
        assert rules is not None
        self.rules = [_rule(raw, f"{where}: rules[{i}]") for i, raw in enumerate(rules)]

    def check(self, kind: str, value: Any) -> Verdict | None:
        stage = "output" if kind == "output" else "input" if kind == "text" else None
        if stage is None or not isinstance(value, str):
            return None
        text, reasons = value, []
        for rule in self.rules:
            if stage not in rule.applies_to or not rule.pattern.search(text):
                continue
            if rule.action == "refuse":
                return Verdict.refuse(rule.reason)
            text = rule.pattern.sub(rule.replacement, text)
            reasons.append(rule.reason)
        return Verdict.redact(text, "; ".join(reasons)) if reasons else None
