"""Writes the demo world to disk: media files plus JSONL that ``anymal.data`` readers and ``anymal.train`` consume.

Layout under the world folder::

    media/<modality>/<split>-<n>.<png|wav|npy|mp4>
    pairs_<modality>.jsonl        stage-1 pairs: {"id", "<modality>": path, "caption", "truth"}
    instruct.jsonl                stage-2 conversations: {"id", "media": {...}, "conversations": [...], "truth"}
    heldout_<modality>.jsonl      held-out items: {"id", "<modality>": path, "caption", "truth"}
    heldout_questions.jsonl       held-out questions: {"id", "task", "media", "prompt", "answer", "asks", "truth"}
    imu_activities.jsonl          IMU windows and their activity, to pretrain the IMU encoder: {"imu", "caption"}
    world.json                    the settings the world was generated from, and its counts

Training and held-out items come from separate random streams, so no held-out item is a copy of a training one.
The ``truth`` fields are for scoring only: the model is given the media and the prompt, never the truth.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from tqdm.auto import tqdm

from anymal_demo.world.images import make_image
from anymal_demo.world.motion import make_motion
from anymal_demo.world.sounds import make_sound
from anymal_demo.world.videos import make_frames, write_mp4
from anymal_demo.world.vocabulary import MIXED, SPECS, answer, caption_instructions

SUFFIX = {"image": ".png", "audio": ".wav", "imu": ".npy", "video": ".mp4"}


@dataclass
class WorldConfig:
    """How big the generated world is.

    Attributes:
        train_items: training items per modality (each is one stage-1 pair and one or more stage-2 examples).
        heldout_items: held-out items per modality, never trained on.
        questions_per_item: stage-2 questions asked about each training item (besides one caption request).
        mixed_train: stage-2 examples that show two modalities at once (e.g. a picture and a motion recording).
        mixed_heldout: held-out mixed questions.
        image_size: side of the square pictures and video frames, in pixels.
        seed: seeds everything.
    """

    train_items: int = 320
    heldout_items: int = 40
    questions_per_item: int = 1
    mixed_train: int = 160
    mixed_heldout: int = 40
    image_size: int = 64
    seed: int = 0


def write_media(modality: str, truth: dict[str, str], seed: int, path: Path, image_size: int) -> None:
    """Renders one item of ``modality`` with attributes ``truth`` into ``path``."""
    if modality == "image":
        make_image(truth, seed, image_size).save(path)
    elif modality == "audio":
        wave, rate = make_sound(truth, seed)
        sf.write(str(path), wave, rate, subtype="PCM_16")
    elif modality == "imu":
        window, _ = make_motion(truth, seed)
        np.save(path, window)
    elif modality == "video":
        write_mp4(make_frames(truth, seed, image_size), path)
    else:
        raise ValueError(f"the demo world has no {modality!r} items")


@dataclass
class Item:
    """One generated media item: its id, modality, file (relative to the world folder) and attributes."""

    id: str
    modality: str
    path: str
    truth: dict[str, str]


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


class WorldWriter:
    """Generates the items of every modality and writes all data files of one world folder."""

    def __init__(self, config: WorldConfig, folder: str | Path, progress: bool = True) -> None:
        self.config = config
        self.folder = Path(folder)
        self.progress = progress
        self.instructions = {name: caption_instructions(name) for name in SPECS}

    def _items(self, modality: str, split: str, count: int, bar) -> list[Item]:
        rng = random.Random(f"{self.config.seed}:{split}:{modality}")
        spec = SPECS[modality]
        media = self.folder / "media" / modality
        media.mkdir(parents=True, exist_ok=True)
        items = []
        for n in range(count):
            truth = spec.sample(rng)
            path = media / f"{split}-{n:04d}{SUFFIX[modality]}"
            write_media(modality, truth, rng.getrandbits(32), path, self.config.image_size)
            items.append(Item(f"{modality}-{split}-{n:04d}", modality, str(path.relative_to(self.folder)), truth))
            bar.update(1)
        return items

    def write(self) -> dict[str, Any]:
        """Generates everything; returns the counts written (also saved in ``world.json``)."""
        cfg = self.config
        self.folder.mkdir(parents=True, exist_ok=True)
        total = len(SPECS) * (cfg.train_items + cfg.heldout_items)
        with tqdm(total=total, desc="world", unit="item", disable=not self.progress) as bar:
            train = {m: self._items(m, "train", cfg.train_items, bar) for m in SPECS}
            heldout = {m: self._items(m, "heldout", cfg.heldout_items, bar) for m in SPECS}
        rng = random.Random(f"{cfg.seed}:text")
        for modality, items in train.items():
            _write_jsonl(self.folder / f"pairs_{modality}.jsonl", [self._pair(item, rng) for item in items])
        for modality, items in heldout.items():
            _write_jsonl(self.folder / f"heldout_{modality}.jsonl", [self._pair(item, rng) for item in items])
        activities = [{"imu": item.path, "caption": item.truth["activity"]} for item in train["imu"]]
        _write_jsonl(self.folder / "imu_activities.jsonl", activities)
        instruct = [row for items in train.values() for item in items for row in self._conversations(item, rng)]
        instruct += self._mixed(train, cfg.mixed_train, rng, "train", self._mixed_conversation)
        random.Random(cfg.seed).shuffle(instruct)
        _write_jsonl(self.folder / "instruct.jsonl", instruct)
        questions = [
            self._question(item, q, rng)
            for items in heldout.values()
            for item in items
            for q in SPECS[item.modality].questions
        ]
        questions += self._mixed(heldout, cfg.mixed_heldout, rng, "heldout", self._mixed_question)
        _write_jsonl(self.folder / "heldout_questions.jsonl", questions)
        counts = {
            "pairs": {m: len(v) for m, v in train.items()},
            "heldout": {m: len(v) for m, v in heldout.items()},
            "instruct": len(instruct),
            "heldout_questions": len(questions),
        }
        (self.folder / "world.json").write_text(json.dumps({"config": asdict(cfg), "counts": counts}, indent=2))
        return counts

    # --- rows ----------------------------------------------------------------------------------------------
    @staticmethod
    def _pair(item: Item, rng: random.Random) -> dict[str, Any]:
        caption = SPECS[item.modality].caption(item.truth, rng)
        return {"id": item.id, item.modality: item.path, "caption": caption, "truth": item.truth}

    def _conversations(self, item: Item, rng: random.Random) -> list[dict[str, Any]]:
        spec = SPECS[item.modality]
        caption_prompt = rng.choice(self.instructions[item.modality])
        rows = [self._conversation(item, caption_prompt, spec.caption(item.truth, rng), "caption")]
        for question in rng.sample(spec.questions, min(self.config.questions_per_item, len(spec.questions))):
            reply = answer(question, spec.phrases(item.truth), rng)
            rows.append(self._conversation(item, rng.choice(question.phrasings), reply, "+".join(question.attributes)))
        return rows

    @staticmethod
    def _conversation(item: Item, prompt: str, reply: str, asks: str) -> dict[str, Any]:
        return {
            "id": f"{item.id}-{asks}",
            "media": {item.modality: [item.path]},
            "conversations": [
                {"role": "user", "content": f"<{item.modality}>\n{prompt}"},
                {"role": "assistant", "content": reply},
            ],
            "truth": {item.modality: item.truth},
        }

    @staticmethod
    def _question(item: Item, question, rng: random.Random) -> dict[str, Any]:
        spec = SPECS[item.modality]
        return {
            "id": f"{item.id}-{'+'.join(question.attributes)}",
            "task": item.modality,
            "media": {item.modality: [item.path]},
            "prompt": f"<{item.modality}>\n{rng.choice(question.phrasings)}",
            "answer": answer(question, spec.phrases(item.truth), rng),
            "asks": {item.modality: list(question.attributes)},
            "truth": {item.modality: item.truth},
        }

    @staticmethod
    def _mixed(
        items: dict[str, list[Item]], count: int, rng: random.Random, split: str, make: Callable
    ) -> list[dict[str, Any]]:
        rows = []
        for n in range(count):
            mixed = MIXED[n % len(MIXED)]
            chosen = {name: rng.choice(items[name]) for name in mixed.modalities}
            phrases = {
                attr: SPECS[name].attribute(attr).phrase(chosen[name].truth[attr])
                for name, attr in zip(mixed.modalities, mixed.attributes)
            }
            rows.append(
                make(
                    mixed,
                    chosen,
                    rng.choice(mixed.phrasings),
                    rng.choice(mixed.answers).format(**phrases),
                    f"{mixed.name}-{split}-{n:04d}",
                )
            )
        return rows

    @staticmethod
    def _mixed_conversation(mixed, chosen: dict[str, Item], prompt: str, reply: str, row_id: str) -> dict[str, Any]:
        return {
            "id": row_id,
            "media": {name: [item.path] for name, item in chosen.items()},
            "conversations": [{"role": "user", "content": prompt}, {"role": "assistant", "content": reply}],
            "truth": {name: item.truth for name, item in chosen.items()},
        }

    @staticmethod
    def _mixed_question(mixed, chosen: dict[str, Item], prompt: str, reply: str, row_id: str) -> dict[str, Any]:
        return {
            "id": row_id,
            "task": mixed.name,
            "media": {name: [item.path] for name, item in chosen.items()},
            "prompt": prompt,
            "answer": reply,
            "asks": {name: [attr] for name, attr in zip(mixed.modalities, mixed.attributes)},
            "truth": {name: item.truth for name, item in chosen.items()},
        }


def write_world(config: WorldConfig, folder: str | Path, progress: bool = True) -> dict[str, Any]:
    """Generates the world described by ``config`` into ``folder``; returns the counts written."""
    return WorldWriter(config, folder, progress).write()
