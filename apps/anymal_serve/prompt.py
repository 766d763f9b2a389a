"""A conversation to prompt token ids, and what it costs of the model's context (shared by server and chat)."""

from __future__ import annotations

from typing import Any

from anymal_serve.errors import APIError
from anymal_serve.parts import Conversation


def context_length(model: Any) -> int | None:
    """The LLM's context in tokens (``max_position_embeddings`` of its text config), or None when unknown."""
    config = model.llm.config
    getter = getattr(config, "get_text_config", None)
    config = getter() if callable(getter) else config
    return getattr(config, "max_position_embeddings", None)


def prompt_ids(model: Any, conversation: Conversation) -> list[int]:
    """Token ids of the conversation: through the tokenizer's chat template when the model uses one, else the
    messages as ``role: text`` lines (a single user message: its text verbatim, as ``generate(prompt)``)."""
    encoder = model.prompt_encoder
    tokenizer = model.tokenizer
    if tokenizer is None:
        raise APIError("this model has no tokenizer; it cannot be served", status=500, type="server_error")
    counts = {name: len(items) for name, items in conversation.inputs.items()}
    messages = conversation.messages
    if model.config.llm.apply_chat_template and getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        encoder.add_missing_placeholders(text, counts, "messages")  # checks counts (a literal <image> in text)
        return list(encoder.tokenize_text(text))
    if len(messages) == 1:
        text = messages[0]["content"]
    else:
        text = "\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in messages) + "\nAssistant:"
    return list(encoder.encode_prompt(text, counts, chat=False, where="messages"))


def modality_tokens(model: Any, conversation: Conversation) -> int:
    """How many LLM positions the conversation's modality inputs take."""
    total = 0
    for name, items in conversation.inputs.items():
        total += len(items) * int(getattr(model.plugins[name].config, "num_tokens", 0) or 0)
    return total
