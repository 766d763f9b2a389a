"""Turning prompts and conversations into token ids with modality sentinels.

A placeholder such as ``<image>`` in the text becomes one *sentinel id* (a negative id, one per modality) in the
token sequence; ``fusion.splice`` later replaces each sentinel by that modality's projected tokens. Keeping one id
per item (instead of ``num_tokens`` copies of an added vocabulary token) leaves the LLM's vocabulary untouched and
makes the placeholder/input count check trivial.

Which ``<...>`` is a placeholder: ``<name>`` where ``name`` is one of the model's modalities. ``<name>`` where
``name`` is an *installed* modality plugin that the model lacks (an entry point of the ``anymal.plugins`` group,
or a plugin registered with ``register_plugin`` in this process) is an ``InputError``: ``<audio>`` sent to an
image-only model would otherwise reach the LLM as plain text and be silently ignored. Every other tag (``<b>``,
``<ref>``, ``<box>``, ``<unknown_thing>``) is ordinary text. Prompt text must be valid Unicode: a lone surrogate
(``"\ud800"``, e.g. from a JSON ``\ud800`` escape) is an ``InputError`` naming its position.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch

from anymal import registry
from anymal.errors import ConfigError, InputError
from anymal.records import Turn

__all__ = [
    "IGNORE_INDEX",
    "PromptEncoder",
    "Turn",
    "check_unicode",
    "sentinel_id",
    "sentinel_index",
    "unpad_rows",
]

IGNORE_INDEX = -100
SENTINEL_BASE = -1000
_SURROGATE_RE = re.compile("[\ud800-\udfff]")
_TAG_RE = re.compile(r"<([a-z][a-z0-9_]*)>")


def installed_plugin_names() -> set[str]:
    """Names of the installed modality plugins, none of them imported: the ``anymal.plugins`` entry points plus
    the plugins registered with ``register_plugin`` in this process."""
    return set(registry.entry_point_names()) | set(registry.registered_names())


def check_unicode(text: str, where: str = "prompt") -> None:
    """Raises an InputError naming the position of the first lone surrogate in ``text`` (tokenizers cannot encode
    one; it comes from a ``\\ud800`` JSON escape or ``bytes.decode(errors="surrogateescape")``)."""
    found = _SURROGATE_RE.search(text)
    if found is not None:
        raise InputError(
            f"{where}: lone surrogate U+{ord(found.group()):04X} at position {found.start()}; expected valid "
            "Unicode text (remove it, or decode the source with errors='replace')"
        )


def sentinel_id(index: int) -> int:
    """The sentinel token id of the modality at ``index`` in the model's modality order."""
    return SENTINEL_BASE - index


def sentinel_index(token_id: int) -> int:
    """Inverse of :func:`sentinel_id` (``-1`` for ordinary tokens)."""
    return SENTINEL_BASE - token_id if token_id <= SENTINEL_BASE else -1


def unpad_rows(ids: torch.Tensor | Sequence[Sequence[int]], attention_mask: torch.Tensor | None) -> list[list[int]]:
    """Token rows as lists: a (padded) id tensor with its attention mask unpadded, or a sequence of rows copied."""
    if isinstance(ids, torch.Tensor):
        if ids.dim() == 1:
            ids = ids.unsqueeze(0)
        if attention_mask is None:
            return ids.tolist()
        return [row[mask.bool()].tolist() for row, mask in zip(ids, attention_mask)]
    return [list(row) for row in ids]


class PromptEncoder:
    """Tokenises prompts/conversations for a model with the given modality names (in default token order)."""

    def __init__(self, tokenizer, modality_names: Sequence[str]) -> None:
        self.tokenizer = tokenizer
        self.modality_names = list(modality_names)
        alternatives = "|".join(re.escape(n) for n in self.modality_names) or r"(?!)"
        self._placeholder_re = re.compile(rf"<({alternatives})>")
        self._foreign: frozenset[str] | None = None  # installed plugin names the model lacks, read on first use

    # --- placeholders ------------------------------------------------------------------------------------
    def check_foreign_placeholders(self, text: str, where: str = "prompt") -> None:
        """Raises an InputError for ``<name>`` where ``name`` is an installed modality plugin the model lacks."""
        if "<" not in text:
            return
        if self._foreign is None:
            self._foreign = frozenset(installed_plugin_names()) - set(self.modality_names)
        for match in _TAG_RE.finditer(text):
            if match.group(1) in self._foreign:
                name = match.group(1)
                raise InputError(
                    f"{where} has a <{name}> placeholder at position {match.start()} but this model has no "
                    f"{name!r} modality; its modalities: {', '.join(self.modality_names) or 'none'}. Remove the "
                    f"placeholder, or use a model with the {name} plugin"
                )

    def count_placeholders(self, text: str) -> dict[str, int]:
        counts = dict.fromkeys(self.modality_names, 0)
        for match in self._placeholder_re.finditer(text):
            counts[match.group(1)] += 1
        return counts

    def add_missing_placeholders(self, text: str, counts: dict[str, int], where: str = "prompt") -> str:
        """Checks placeholder counts against input counts; without placeholders, puts them before the text.

        Modalities with no placeholder in ``text`` get theirs prepended in the model's modality order, one line
        per modality. A modality with placeholders must have exactly as many inputs as placeholders.
        """
        check_unicode(text, where)
        self.check_foreign_placeholders(text, where)
        found = self.count_placeholders(text)
        prefix = []
        for name in self.modality_names:
            n_inputs = counts.get(name, 0)
            if found[name] == 0 and n_inputs:
                prefix.append(f"<{name}>" * n_inputs)
            elif found[name] != n_inputs:
                raise InputError(
                    f"{where} has {found[name]} <{name}> placeholder(s) but {n_inputs} {name} input(s) were given; "
                    f"give one {name} input per <{name}>, or no placeholder to put all {name} tokens first"
                )
        return "\n".join(prefix) + "\n" + text if prefix else text

    # --- tokenisation ------------------------------------------------------------------------------------
    def _require_tokenizer(self):
        if self.tokenizer is None:
            raise ConfigError("this model has no tokenizer: pass input_ids=, or set llm.tokenizer in the config")
        return self.tokenizer

    def tokenize_text(self, text: str) -> list[int]:
        """Token ids of ``text`` with each placeholder replaced by its modality's sentinel (no special tokens)."""
        tokenizer = self._require_tokenizer()
        ids: list[int] = []
        pos = 0
        for match in self._placeholder_re.finditer(text):
            if match.start() > pos:
                ids += tokenizer(text[pos : match.start()], add_special_tokens=False).input_ids
            ids.append(sentinel_id(self.modality_names.index(match.group(1))))
            pos = match.end()
        if pos < len(text):
            ids += tokenizer(text[pos:], add_special_tokens=False).input_ids
        return ids

    def _render_chat(self, turns: Sequence[Turn], add_generation_prompt: bool) -> str:
        messages = [{"role": t.role, "content": t.text} for t in turns]
        return self._require_tokenizer().apply_chat_template(
            messages, tokenize=False, add_generation_prompt=add_generation_prompt
        )

    def encode_prompt(self, prompt: str, counts: dict[str, int], chat: bool, where: str = "prompt") -> list[int]:
        """Ids of an inference prompt: the user message (chat template) or the text verbatim after BOS."""
        prompt = self.add_missing_placeholders(prompt, counts, where)
        if chat:
            return self.tokenize_text(self._render_chat([Turn("user", prompt)], add_generation_prompt=True))
        bos = self._require_tokenizer().bos_token_id
        return ([bos] if bos is not None else []) + self.tokenize_text(prompt)

    def encode_conversation(
        self, turns: Sequence[Turn], counts: dict[str, int], chat: bool, where: str = "example"
    ) -> tuple[list[int], list[int]]:
        """Ids and labels of a training conversation: loss on assistant turns (and their EOS) only.

        With ``chat`` the tokenizer's chat template renders the turns; the span each assistant turn adds to the
        rendered text is its target. Without it, turns are concatenated verbatim (BOS first, EOS after each
        assistant turn), which matches ``encode_prompt(chat=False)`` at inference.
        """
        turns = list(turns)
        first_user = next((i for i, t in enumerate(turns) if t.role == "user"), None)
        if first_user is None or not any(t.role == "assistant" for t in turns):
            raise InputError(f"{where}: a conversation needs at least one user and one assistant turn")
        for i, turn in enumerate(turns):
            check_unicode(turn.text, f"{where} turn {i}")
            self.check_foreign_placeholders(turn.text, f"{where} turn {i}")
        all_text = "".join(t.text for t in turns)
        missing = self.add_missing_placeholders(all_text, counts, where)
        if missing is not all_text:  # no placeholders anywhere: put them into the first user turn
            turns[first_user] = Turn("user", self.add_missing_placeholders(turns[first_user].text, counts, where))

        chunks: list[tuple[str, bool]] = []
        if chat:
            rendered = ""
            for i, turn in enumerate(turns):
                if turn.role != "assistant":
                    continue
                prefix = self._render_chat(turns[:i], add_generation_prompt=True)
                full = self._render_chat(turns[: i + 1], add_generation_prompt=False)
                if not (prefix.startswith(rendered) and full.startswith(prefix)):
                    raise ConfigError("the chat template does not render conversations prefix by prefix")
                chunks += [(prefix[len(rendered) :], False), (full[len(prefix) :], True)]
                rendered = full
            ids: list[int] = []
            labels: list[int] = []
            for text, target in chunks:
                piece = self.tokenize_text(text)
                ids += piece
                labels += piece if target else [IGNORE_INDEX] * len(piece)
            return ids, [IGNORE_INDEX if i < 0 else lab for i, lab in zip(ids, labels)]

        tokenizer = self._require_tokenizer()
        ids = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
        labels = [IGNORE_INDEX] * len(ids)
        for turn in turns:
            piece = self.tokenize_text(turn.text)
            if turn.role == "assistant":
                piece = [*piece, tokenizer.eos_token_id]
                labels += [IGNORE_INDEX if i < 0 else i for i in piece]
            else:
                labels += [IGNORE_INDEX] * len(piece)
            ids += piece
        return ids, labels
