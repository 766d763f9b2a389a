"""From dataset specs to batches: readers and mixing (``anymal.data``), tokenisation, media preprocessing.

Examples are materialised once (a map-style dataset), so that shuffling is seeded per epoch, the data position is
exact on resume, and accelerate can shard it across processes. Items whose media fail to load are skipped and
counted (``on_error="skip"``) or stop the run naming file and line (``"raise"``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from anymal.data import Example, Mixture, read_dataset
from anymal.errors import AnyMALError, DataError
from anymal.llm import llm_context_length
from anymal.output_plugin import RowInputs
from anymal.registry import get_plugin
from anymal.routing import route_example
from anymal.train.config import DataSpec
from anymal.train.feature_cache import concat_features
from anymal.train.skips import SKIP_KEY, is_skip, skip_marker


class EpochExamples:
    """The weighted mixture of the dataset specs, re-read per epoch so per-example random choices (the captioning
    instruction of a pair, the mixture's draws) change between epochs, reproducibly from seed and epoch. Files a
    plugin routes to other modalities too (a video's audio track, ``route_audio``) are added to each example."""

    def __init__(self, specs: Sequence[DataSpec], modalities, on_error: str, seed: int) -> None:
        """``modalities``: the model's plugins by name (``AnyMAL.plugins``) or just their names."""
        plugins = modalities if isinstance(modalities, Mapping) else {name: None for name in modalities}
        readers = {}
        for i, spec in enumerate(specs):
            kwargs: dict[str, Any] = {"on_error": on_error}
            if spec.kind == "pairs":
                if not spec.modality:
                    raise DataError(f"data[{i}] ({spec.path}): kind 'pairs' needs modality:")
                plugin = plugins.get(spec.modality) or get_plugin(spec.modality)()
                task = plugin.alignment_task()
                kwargs.update(
                    modality=spec.modality,
                    media_key=spec.media_key,
                    caption_key=spec.caption_key,
                    seed=seed,
                    instructions=task,
                )
            elif spec.kind == "conversations":
                kwargs["modalities"] = list(plugins)
            if spec.media_root and spec.kind != "m3it":
                kwargs["media_root"] = spec.media_root
            readers[f"{i}:{spec.path}"] = read_dataset(spec.kind, spec.path, **kwargs)
        weights = {name: spec.weight for name, spec in zip(readers, specs)}
        stopping = "all_exhausted" if len(specs) > 1 else "first_exhausted"
        self.mixture = Mixture(readers, weights, seed=seed, stopping=stopping)
        self.paths = [s.path for s in specs]
        self._cache: dict[int, list[Example]] = {}
        self.plugins = plugins
        self._routes: dict = {}  # companion_modalities answers per file (see anymal.routing.route_example)

    def __call__(self, epoch: int) -> list[Example]:
        if epoch not in self._cache:
            self._cache = {}  # keep one epoch in memory
            self.mixture.set_epoch(epoch)
            examples = [route_example(self.plugins, example, self._routes) for example in self.mixture]
            if not examples:
                raise DataError(f"no usable examples in {self.paths} (report: {self.mixture.report})")
            self._cache[epoch] = examples
        return self._cache[epoch]

    @property
    def report(self):
        """Bad rows of the last pass (counts per reason, first file:line locations)."""
        return self.mixture.report


def read_examples(specs: Sequence[DataSpec], modalities, on_error: str, seed: int, epoch: int = 0) -> tuple[list, Any]:
    """All examples of the weighted mixture of ``specs`` for one epoch, plus the readers' bad-row report."""
    source = EpochExamples(specs, modalities, on_error, seed)
    return source(epoch), source.report


class TrainingDataset(torch.utils.data.Dataset):
    """Tokenised, preprocessed examples for one model; a bad item becomes a skip marker (see
    :mod:`anymal.train.skips`) that names its location and error, or raises with ``on_error="raise"``."""

    def __init__(
        self, examples: list[Example], model, chat: bool, on_error: str = "skip", cache=None, seed: int = 0
    ) -> None:
        self.examples = examples
        self.seed = seed
        self.epoch = 0  # set by the training loop with each epoch's examples
        self.cache = cache
        self.encoder = model.prompt_encoder
        self.plugins = model.plugins
        self.output_plugins = dict(getattr(model, "output_plugins", {}))
        self.trigger_ids = dict(getattr(model, "trigger_ids", {}))
        self.chat = chat
        self.on_error = on_error
        self.context = llm_context_length(model.llm) if getattr(model, "llm", None) is not None else None

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        example = self.examples[index]
        try:
            unknown = set(example.media) - set(self.plugins)
            if unknown:
                raise DataError(f"modalities {sorted(unknown)} are not in the model ({', '.join(self.plugins)})")
            counts = {name: len(refs) for name, refs in example.media.items()}
            ids, labels = self.encoder.encode_conversation(
                example.turns, counts, chat=self.chat, where=example.location
            )
            self._check_length(ids, counts)
            outputs = self._outputs(example, labels)
            if self.cache is not None:
                return {"input_ids": ids, "labels": labels, "features": self._cached(example), "outputs": outputs}
            item_seed = int(np.random.SeedSequence([self.seed, self.epoch, index]).generate_state(1)[0])
            media = {}
            for name, refs in example.media.items():
                self.plugins[name].reseed(item_seed)  # random preprocessing as a function of (seed, epoch, item)
                media[name] = [self._preprocess(name, i, ref) for i, ref in enumerate(refs)]
        except AnyMALError as exc:
            if self.on_error == "raise":
                raise DataError(f"{example.location}: {exc}") from exc
            return skip_marker(exc, example.location)
        return {"input_ids": ids, "labels": labels, "media": media, "outputs": outputs}

    def _outputs(self, example: Example, labels: list[int]) -> dict[str, Any]:
        """Per output plugin, its ``prepare`` of this row: the row's media and one label per trigger token in the
        answers (``targets.<plugin>``, or ``None`` each without one). A row whose answers hold no trigger of a
        plugin is prepared without its media (nothing to decode there)."""
        unknown = sorted(set(example.targets) - set(self.output_plugins))
        if unknown:
            have = ", ".join(self.output_plugins) or "none"
            raise DataError(f"field 'targets': output plugins {unknown} are not in the model (it has: {have})")
        prepared = {}
        for name, plugin in self.output_plugins.items():
            trigger = set(self.trigger_ids[name])
            count = sum(1 for token in labels if token in trigger)
            given = example.targets.get(name)
            if given is not None and len(given) != count:
                raise DataError(
                    f"field 'targets.{name}': {len(given)} label(s) for {count} {'/'.join(plugin.tokens)} token(s) "
                    "in the answers; give one label (or null) per token"
                )
            media = {m: [ref.raw() for ref in refs] for m, refs in example.media.items()} if count else {}
            row = RowInputs(media, self.plugins, example.location)
            prepared[name] = plugin.prepare(row, list(given) if given is not None else [None] * count)
        return prepared

    def _check_length(self, ids: list[int], counts: dict[str, int]) -> None:
        """A row longer than the LLM context (text tokens plus each item's modality tokens) is a bad row here,
        where it names its file and line, not an error that stops the whole batch in the model."""
        if self.context is None:
            return
        items = sum(n for name, n in counts.items() if name in self.plugins)
        modality_tokens = sum(n * self.plugins[name].num_tokens for name, n in counts.items() if name in self.plugins)
        total = len(ids) - items + modality_tokens
        if total > self.context:
            raise DataError(
                f"{total} tokens ({len(ids) - items} text, {modality_tokens} modality), longer than the LLM context "
                f"of {self.context}; shorten its text"
            )

    def _preprocess(self, name: str, i: int, ref) -> Any:
        """One media item preprocessed; its failure (undecodable bytes, a corrupt file) names the field and the media
        (file or inline bytes), keeping its error type, which the skip counts group by."""
        try:
            return self.plugins[name].preprocess(ref.raw())
        except AnyMALError as exc:
            message = f"field 'media.{name}[{i}]': {ref!r} cannot be used: {exc}"
            try:
                located = type(exc)(message)
            except TypeError:  # an error class with another constructor
                located = DataError(message)
            raise located from exc

    def _cached(self, example: Example) -> dict[str, list]:
        features: dict[str, list] = {}
        for name, refs in example.media.items():
            features[name] = []
            for ref in refs:
                cached = self.cache.get(name, ref)
                if cached is None:  # precompute() could not encode it: show the plugin's own error
                    self.plugins[name].preprocess(ref.raw())
                    raise DataError(f"{name} input {ref!r} is missing from the feature cache")
                features[name].append(cached)
        return features


class Collator:
    """Pads nothing (the model splices and pads); batches each modality's items with its plugin's ``collate``,
    or concatenates cached encoder features."""

    def __init__(self, model) -> None:
        self.plugins = model.plugins
        self.output_plugins = dict(getattr(model, "output_plugins", {}))

    def __call__(self, items: list[dict[str, Any] | None]) -> dict[str, Any]:
        # per row in loader order: None when usable, else its skip marker (the training loop's SkipGuard reads it)
        rows = [(item or {SKIP_KEY: "unknown"}) if is_skip(item) else None for item in items]
        kept = [item for item in items if item is not None and not is_skip(item)]
        batch: dict[str, Any] = {
            "input_ids": [item["input_ids"] for item in kept],
            "labels": [item["labels"] for item in kept],
            "modality_inputs": {},
            "modality_features": {},
            "n_items": len(kept),
            "rows": rows,
        }
        if self.output_plugins:  # per output plugin, its collate() of the kept rows' prepare() results
            batch["output_batches"] = {
                name: plugin.collate([item["outputs"][name] for item in kept])
                for name, plugin in self.output_plugins.items()
            }
        for name, plugin in self.plugins.items():
            media = [x for item in kept for x in item.get("media", {}).get(name, [])]
            if media:
                batch["modality_inputs"][name] = plugin.collate(media)
            cached = [x for item in kept for x in item.get("features", {}).get(name, [])]
            if cached:
                batch["modality_features"][name] = concat_features(cached)
        return batch
