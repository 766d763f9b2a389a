"""The stand-in for LLaMA-2: a small LLaMA-architecture LM and its BPE tokenizer, trained on the world's text.

A real AnyMAL starts from an LLM that already knows how to talk about colours, shapes, sounds and motion: given
words for what is in a picture, it can caption it or answer questions about it. The demo's LM is taught exactly
that, and only that, from text: documents in which the media item is replaced by a few words naming its attributes
(``red circle left``), followed by the same instructions, captions, questions and answers the multimodal stages
use. It never sees a pixel, a sample or a frame. Later the projectors learn to turn an encoder's features into
input embeddings that play the role of those words, while the LM stays frozen (and 4-bit quantised).

Documents are tokenised with the same :class:`anymal.processing.PromptEncoder` as training and generation, so the
token layout (BOS, modality slot, ``\\n`` + instruction, answer, EOS) matches the one the frozen LM later sees.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from anymal.errors import ConfigError
from anymal.processing import IGNORE_INDEX, PromptEncoder, Turn, sentinel_index
from anymal_demo.world.vocabulary import MIXED, SPECS, ModalitySpec, answer, caption_instructions


@dataclass
class LanguageModelConfig:
    """Size and training schedule of the stand-in LM (a ``transformers`` ``LlamaForCausalLM``).

    Attributes:
        hidden_size: width of the residual stream (and of every projector's output).
        layers: decoder layers.
        heads: attention heads.
        kv_heads: key/value heads (grouped-query attention, as in LLaMA-2-70B).
        intermediate_size: SwiGLU hidden width.
        vocab_size: BPE vocabulary size (byte-level, so any text stays encodable).
        steps: optimiser steps of pretraining.
        batch_size: documents per step.
        lr: peak AdamW learning rate (cosine decay, short warm-up).
        tie_embeddings: share the input embedding and output (unembedding) matrix (LLaMA-2 does not).
        unconditional: share of documents whose media words are left out (plain captions), so that the LM also
            has a prior over what to say when its input carries no information.
        seed: seeds the initialisation and the documents.
    """

    hidden_size: int = 128
    layers: int = 4
    heads: int = 4
    kv_heads: int = 2
    intermediate_size: int = 256
    vocab_size: int = 1000
    steps: int = 400
    batch_size: int = 16
    lr: float = 3e-3
    tie_embeddings: bool = False
    unconditional: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        for name in (
            "hidden_size",
            "layers",
            "heads",
            "kv_heads",
            "intermediate_size",
            "vocab_size",
            "steps",
            "batch_size",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"language_model.{name}={getattr(self, name)}: expected a positive integer")
        if self.hidden_size % self.heads or self.heads % self.kv_heads:
            raise ConfigError(
                f"language_model: hidden_size={self.hidden_size} must divide into heads={self.heads}, and heads into "
                f"kv_heads={self.kv_heads}"
            )
        if not 0 <= self.unconditional < 1:
            raise ConfigError(f"language_model.unconditional={self.unconditional}: expected a share in [0, 1)")


MIXED_SHARE = 0.1  # share of documents that ask about two media items at once
FILLERS = ("a", "the", "with", "and", "of", "is")
SCENE_LENGTH = 8  # media words plus fillers: as many positions as the longest modality slot of the demo model


def scene_words(spec: ModalitySpec, truth: dict[str, str], rng: random.Random | None = None) -> str:
    """The words standing in for a media item in the LM's text: its attribute values (``red circle left``).

    With ``rng`` the values come in random order, mixed with a random number of filler words, so the LM learns to
    find them by what they are, not by where they stand (a projector's tokens occupy other positions than words).
    """
    words = [truth[a.name] for a in spec.attributes]
    if rng is None:
        return " ".join(words)
    rng.shuffle(words)
    for _ in range(rng.randint(0, SCENE_LENGTH - len(words))):
        words.insert(rng.randint(0, len(words)), rng.choice(FILLERS))
    return " ".join(words)


@dataclass(frozen=True)
class Document:
    """One text document: a user turn with modality placeholders, the answer, and the words each placeholder hides."""

    user: str
    answer: str
    scenes: dict[str, list[str]]


class DocumentSampler:
    """Draws random documents of the world's text: captions, questions about one item, mixed questions."""

    def __init__(self, seed: int = 0, unconditional: float = 0.1) -> None:
        self.rng = random.Random(seed)
        self.unconditional = unconditional
        self.instructions = {name: caption_instructions(name) for name in SPECS}

    def __call__(self, mixed: bool | None = None) -> Document:
        """A random document; ``mixed`` forces (or forbids) a two-modality question (default: 10% of them)."""
        rng = self.rng
        if mixed is None:
            mixed = rng.random() < MIXED_SHARE
        if mixed:
            return self._mixed()
        spec = SPECS[rng.choice(sorted(SPECS))]
        truth = spec.sample(rng)
        scenes = {spec.name: [scene_words(spec, truth)]}
        if rng.random() < self.unconditional:
            scenes = {spec.name: [""]}
        if rng.random() < 0.5:  # a caption, else an answer to a question
            user = f"<{spec.name}>\n{rng.choice(self.instructions[spec.name])}"
            return Document(user, spec.caption(truth, rng), scenes)
        question = rng.choice(spec.questions)
        user = f"<{spec.name}>\n{rng.choice(question.phrasings)}"
        return Document(user, answer(question, spec.phrases(truth), rng), scenes)

    def _mixed(self) -> Document:
        rng = self.rng
        mixed = rng.choice(MIXED)
        truths = {name: SPECS[name].sample(rng) for name in mixed.modalities}
        phrases = {}
        for name, attr in zip(mixed.modalities, mixed.attributes):
            phrases[attr] = SPECS[name].attribute(attr).phrase(truths[name][attr])
        scenes = {name: [scene_words(SPECS[name], truths[name])] for name in mixed.modalities}
        return Document(rng.choice(mixed.phrasings), rng.choice(mixed.answers).format(**phrases), scenes)


def corpus_text(sampler: DocumentSampler, n_documents: int = 3000) -> str:
    """Plain text of ``n_documents`` documents (media words in place of placeholders), to train the tokenizer on."""
    lines = []
    for _ in range(n_documents):
        doc = sampler()
        user = doc.user
        for name, words in doc.scenes.items():
            for word in words:
                user = user.replace(f"<{name}>", word, 1)
        lines.append(f"{user} {doc.answer}")
    return "\n".join(lines)


def encode_document(encoder: PromptEncoder, doc: Document) -> tuple[list[int], list[int]]:
    """Token ids of a document laid out exactly as a training conversation, media words in the modality slots.

    The labels cover every token but BOS, media words included: predicting them teaches the LM how media words
    go together, which is what it later reads the attributes back from.
    """
    counts = {name: len(words) for name, words in doc.scenes.items()}
    turns = [Turn("user", doc.user), Turn("assistant", doc.answer)]
    ids, _ = encoder.encode_conversation(turns, counts, chat=False)
    tokenizer = encoder.tokenizer
    pending = {name: list(words) for name, words in doc.scenes.items()}
    out: list[int] = []
    for token in ids:
        index = sentinel_index(token)
        if index < 0:
            out.append(token)
            continue
        words = pending[encoder.modality_names[index]].pop(0)
        out += tokenizer(words, add_special_tokens=False).input_ids if words else []
    return out, [IGNORE_INDEX, *out[1:]]


def train_tokenizer(sampler: DocumentSampler, vocab_size: int):
    """A byte-level BPE tokenizer (LLaMA-style ``<unk>``/``<s>``/``</s>``) trained on the world's text."""
    from anymal.testing import train_tiny_tokenizer

    return train_tiny_tokenizer(corpus_text(sampler), vocab_size=vocab_size)


def _batch(rows: list[tuple[list[int], list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(ids) for ids, _ in rows)
    ids = torch.full((len(rows), width), pad_id)
    labels = torch.full((len(rows), width), IGNORE_INDEX)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (row_ids, row_labels) in enumerate(rows):
        ids[i, : len(row_ids)] = torch.tensor(row_ids)
        labels[i, : len(row_labels)] = torch.tensor(row_labels)
        mask[i, : len(row_ids)] = 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def pretrain_language_model(
    config: LanguageModelConfig,
    output: str | Path,
    progress: bool = True,
    on_step: Callable[[int, float], None] | None = None,
) -> dict[str, float]:
    """Trains the tokenizer and the LM on the world's text and saves both as a HF folder at ``output``.

    Returns the first and last training loss, the number of parameters and the seconds it took.
    """
    from transformers import LlamaConfig, LlamaForCausalLM

    start = time.perf_counter()
    sampler = DocumentSampler(config.seed, config.unconditional)
    tokenizer = train_tokenizer(sampler, config.vocab_size)
    encoder = PromptEncoder(tokenizer, list(SPECS))
    arch = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.layers,
        num_attention_heads=config.heads,
        num_key_value_heads=config.kv_heads,
        max_position_embeddings=256,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=config.tie_embeddings,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = LlamaForCausalLM(arch)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.01, betas=(0.9, 0.98))
    warmup = max(1, config.steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, config.steps) / config.steps)),
    )
    encoded: dict[tuple, tuple[list[int], list[int]]] = {}
    batch_kinds = random.Random(config.seed + 1)
    losses: list[float] = []
    model.train()
    bar = tqdm(range(config.steps), desc="language model", disable=not progress, unit="step")
    for step in bar:
        rows = []
        mixed = batch_kinds.random() < MIXED_SHARE  # long two-media documents batch together: less padding
        for doc in (sampler(mixed) for _ in range(config.batch_size)):
            key = (doc.user, doc.answer, tuple((name, tuple(words)) for name, words in doc.scenes.items()))
            if key not in encoded:  # documents repeat a lot: tokenise each distinct one once
                encoded[key] = encode_document(encoder, doc)
            rows.append(encoded[key])
        loss = model(**_batch(rows, tokenizer.pad_token_id)).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
        if step % 20 == 0:
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
        if on_step is not None:
            on_step(step, losses[-1])
    model.eval()
    output = Path(output)
    model.save_pretrained(str(output))
    tokenizer.save_pretrained(str(output))
    k = max(1, len(losses) // 10)
    return {
        "loss_first": sum(losses[:k]) / k,
        "loss_last": sum(losses[-k:]) / k,
        "parameters": sum(p.numel() for p in model.parameters()),
        "seconds": time.perf_counter() - start,
        "losses": losses,
    }
