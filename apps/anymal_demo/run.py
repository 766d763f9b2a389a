"""``python -m anymal demo``: the whole AnyMAL pipeline, learning on a fresh machine in minutes.

1. Generates a small synthetic world with known ground truth (pictures, sounds, IMU windows, videos + text).
2. Pretrains the encoders that AnyMAL takes pretrained and frozen: a tiny CLIP for the image and video plugins
   (contrastive, on the training pictures), and the IMU encoder with the imu plugin's own task.
3. Meanwhile, in a second process, trains a small LLaMA-architecture LM and its tokenizer on the world's text (the
   stand-in for LLaMA-2), then freezes it; every later stage loads it 4-bit quantised with bitsandbytes, as a real
   LLaMA-2 would be.
4. Evaluates the untrained model, runs stage-1 alignment per modality and stage-2 instruction tuning (LoRA) through
   ``anymal.train``, evaluating on held-out items after each stage.
5. Reloads the final checkpoint with ``AnyMAL.from_pretrained``, shows held-out generations next to the truth,
   checks that the LM's weights never changed, and writes a loss plot and a JSON file of every number.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from anymal.config import config_to_dict
from anymal_demo import report
from anymal_demo.background import BackgroundLanguageModel
from anymal_demo.evaluate import caption_items, evaluate, question_items
from anymal_demo.frozen import capture_models, folder_hash, llm_hash
from anymal_demo.language import pretrain_language_model
from anymal_demo.settings import ENCODER_PRETRAINING, STAGES, DemoSettings, load_settings
from anymal_demo.stages import (
    CONFIG_DIR,
    command_line,
    resolve_stage_config,
    run_pretraining_stage,
    run_training_stage,
)
from anymal_demo.vision import pretrain_vision_tower
from anymal_demo.world.vocabulary import SPECS
from anymal_demo.world.writer import write_world


class _DropMessages(logging.Filter):
    """Drops log records whose message starts with one of ``prefixes`` (expected, repeated library notices)."""

    def __init__(self, *prefixes: str) -> None:
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefixes)


@contextlib.contextmanager
def quiet_libraries() -> Iterator[None]:
    """Silences notices that are expected in the demo and would bury its output, restoring everything after.

    open_clip logs that the (deliberately) random-init vision tower has no pretrained weights each time a model is
    built; transformers shows a progress bar for every tiny weight file it loads or writes.
    """
    from transformers.utils import logging as hf_logging

    drop = _DropMessages("No pretrained weights loaded for model")
    root = logging.getLogger()
    root.addFilter(drop)
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        root.removeFilter(drop)
        if bars:
            hf_logging.enable_progress_bar()


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Runs the block with ``n`` torch CPU threads (one core is busy with the background LM)."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def choose_threads(requested: int = 0) -> int:
    """``requested`` torch threads, or with 0 the cores not already busy (at least one).

    On a shared machine, more compute threads than free cores makes small-matrix training many times slower
    (threads wait on each other), so the default follows the load at start-up.
    """
    if requested > 0:
        return requested
    cores = os.cpu_count() or 1
    try:
        busy = os.getloadavg()[0]
    except OSError:
        busy = 0.0
    return max(1, min(cores, round(cores - busy)))


class Phases:
    """Wall-clock seconds per phase of the run, for the summary and the JSON file."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        print(f"\n== {name} " + "=" * max(0, 100 - len(name)), flush=True)
        start = time.perf_counter()
        yield
        self.seconds[name] = time.perf_counter() - start

    @property
    def total(self) -> float:
        return time.perf_counter() - self.start


def _imu_losses(metrics_file: str | None) -> list[float]:
    if not metrics_file or not Path(metrics_file).is_file():
        return []
    return [json.loads(line)["loss"] for line in Path(metrics_file).read_text().splitlines() if line.strip()]


class DemoRun:
    """One demo run into ``out``; :meth:`run` does everything and returns the numbers it wrote."""

    def __init__(self, out: Path, settings: DemoSettings, quick: bool, progress: bool, config_dir: Path) -> None:
        self.out = out
        self.settings = settings
        self.quick = quick
        self.progress = progress
        self.config_dir = config_dir
        self.phases = Phases()
        self.curves: dict[str, list[float]] = {}
        self.evaluations: dict[str, dict[str, Any]] = {}
        self.numbers: dict[str, Any] = {"quick": quick, "output_dir": str(out)}

    # --- helpers -------------------------------------------------------------------------------------------
    def stage_config(self, name: str) -> tuple[Path, list[str]]:
        path = resolve_stage_config(name, self.out, self.config_dir)
        overrides = list(self.settings.overrides.get(name, []))
        if name in STAGES:  # the IMU encoder's own seed is part of the model definition, like the other towers'
            overrides.insert(0, f"seed={self.settings.seed}")
        print(f"$ {command_line(path, overrides)}", flush=True)
        return path, overrides

    def eval_items(self):
        limit = self.settings.evaluation.heldout_per_task
        world = self.out / "world"
        items = [item for name in SPECS for item in caption_items(world, name, limit)]
        return items + question_items(world, limit)

    def evaluate(self, model, point: str) -> None:
        ev = self.settings.evaluation
        self.evaluations[point] = evaluate(model, self.eval_items(), ev.batch_size, self.progress, f"eval {point}")

    # --- phases --------------------------------------------------------------------------------------------
    def make_world(self) -> None:
        with self.phases("1. synthetic world"):
            counts = write_world(self.settings.world, self.out / "world", self.progress)
            print(
                f"items per modality: {counts['pairs']} training, {counts['heldout']} held out; "
                f"{counts['instruct']} instruction examples; {counts['heldout_questions']} held-out questions"
            )
            self.numbers["world"] = counts

    def start_language_model(self) -> BackgroundLanguageModel | None:
        """Starts the LM's training in a second process when there is a second core (it needs no media)."""
        if (os.cpu_count() or 1) < 2:
            return None
        print(
            "the stand-in LLM trains in a second process, on the second core, while the world and the encoders "
            "are made",
            flush=True,
        )
        return BackgroundLanguageModel(self.settings.language_model, self.out / "language_model")

    def make_language_model(self, job: BackgroundLanguageModel | None) -> None:
        with self.phases("3. stand-in LLM (LLaMA architecture, trained on the world's text only)"):
            cfg = self.settings.language_model
            if job is None:
                stats = pretrain_language_model(cfg, self.out / "language_model", self.progress)
            else:
                stats = job.result(self.progress, threads=torch.get_num_threads())
            self.curves["language_model"] = stats.pop("losses")
            print(
                f"LlamaForCausalLM: {stats['parameters']:,} parameters, {cfg.layers} layers, "
                f"hidden {cfg.hidden_size}; loss {stats['loss_first']:.2f} -> {stats['loss_last']:.2f} "
                f"in {stats['seconds']:.0f} s; frozen from now on, loaded 4-bit (nf4, bitsandbytes)"
            )
            self.numbers["language_model"] = stats
            self.numbers["llm_files_hash_before"] = folder_hash(self.out / "language_model")

    def pretrain_encoders(self) -> None:
        with self.phases("2. encoder pretraining: vision tower (tiny CLIP) and IMU encoder (imu plugin's task)"):
            self.pretrain_vision_tower()
            result = run_pretraining_stage(*self.stage_config(ENCODER_PRETRAINING))
            metrics = result.metrics
            self.curves["imu_encoder"] = _imu_losses(metrics.get("metrics_file"))
            print(
                f"IMU encoder: retrieval among the {metrics['distinct_captions']} activities "
                f"{metrics['retrieval_acc_before']:.0%} -> {metrics['retrieval_acc_after']:.0%}; frozen from now on"
            )
            self.numbers["imu_encoder"] = metrics

    def pretrain_vision_tower(self) -> None:
        image = self.model_config().modalities["image"]
        if not image.pretrained:
            print(
                "vision tower: random-init (this run's model config has no `pretrained` file): it shows colour and "
                "place, hardly shape"
            )
            return
        stats = pretrain_vision_tower(
            config_to_dict(image),
            self.out / "world",
            Path(image.pretrained),
            self.settings.vision_encoder,
            self.progress,
        )
        self.curves["vision_encoder"] = stats.pop("losses")
        print(
            f"vision tower: held-out picture-to-caption retrieval among {stats['distinct_captions']} captions "
            f"{stats['retrieval_acc_before']:.0%} -> {stats['retrieval_acc_after']:.0%} in {stats['seconds']:.0f} s; "
            "frozen from now on (the image and video plugins share it)"
        )
        self.numbers["vision_encoder"] = stats

    def model_config(self):
        """The demo model's config: the first stage's ``model`` section with that stage's overrides applied."""
        from anymal.train import load_train_config

        path = resolve_stage_config(STAGES[0], self.out, self.config_dir)
        return load_train_config(path, list(self.settings.overrides.get(STAGES[0], []))).model_config()

    def evaluate_untrained(self) -> None:
        from anymal.modeling import AnyMAL

        with self.phases("4. held-out evaluation before training (random projectors)"):
            model = AnyMAL(self.model_config())
            self.numbers["llm_hash_reference"] = llm_hash(model.llm)
            model.print_trainable_parameters()
            if self.settings.evaluation.before_training:
                self.evaluate(model, "before")
            del model
            gc.collect()

    def train_stage(self, name: str) -> None:
        path, overrides = self.stage_config(name)
        with capture_models() as built:
            result = run_training_stage(path, overrides)
        after = llm_hash(built[-1]["model"].llm)
        before = built[-1]["before"]
        built.clear()
        gc.collect()
        self.curves[name] = list(result.losses)
        k = max(1, len(result.losses) // 10)
        self.numbers.setdefault("stages", {})[name] = {
            "steps": result.steps,
            "loss_first": sum(result.losses[:k]) / k,
            "loss_last": sum(result.losses[-k:]) / k,
            "llm_hash_before": before,
            "llm_hash_after": after,
            "checkpoint": str(result.final_checkpoint),
            "command": command_line(path, overrides),
        }
        status = "unchanged" if before == after == self.numbers["llm_hash_reference"] else "CHANGED"
        print(
            f"{name}: loss {self.numbers['stages'][name]['loss_first']:.3f} -> "
            f"{self.numbers['stages'][name]['loss_last']:.3f}; frozen LM hash {before} -> {after} ({status})"
        )

    def align(self) -> None:
        with self.phases("5. stage 1: alignment, one modality at a time (projector only; LM and encoder frozen)"):
            for name in STAGES[:-1]:
                self.train_stage(name)
            if self.settings.evaluation.after_alignment:
                self.evaluate_checkpoint(self.out / STAGES[-2] / "final", "stage 1")

    def instruct(self) -> None:
        with self.phases("6. stage 2: instruction tuning (all projectors + QLoRA), incl. image+imu prompts"):
            self.train_stage(STAGES[-1])

    def evaluate_checkpoint(self, folder: Path, point: str):
        from anymal.modeling import AnyMAL

        model = AnyMAL.from_pretrained(str(folder))
        self.evaluate(model, point)
        return model

    def final(self) -> None:
        with self.phases("7. reload the final checkpoint with AnyMAL.from_pretrained and evaluate held-out items"):
            model = self.evaluate_checkpoint(self.out / STAGES[-1] / "final", "stage 2")
            self.numbers["llm_hash_final_model"] = llm_hash(model.llm)
            del model
            gc.collect()
            self.numbers["llm_files_hash_after"] = folder_hash(self.out / "language_model")

    def summary(self) -> dict[str, Any]:
        with self.phases("8. results"):
            ev = self.settings.evaluation
            print(
                "held-out accuracy (%): 'before' = untrained projectors, 'stage 1' = after alignment, "
                "'stage 2' = after instruction tuning (from the reloaded checkpoint)\n"
            )
            print(report.format_table(self.evaluations))
            print("\nheld-out generations of the reloaded final model, next to the truth:\n")
            print(report.format_examples(self.evaluations["stage 2"]["generations"], ev.show_examples))
            self.print_frozen_check()
            plot = report.plot_losses(self.curves, self.out / "losses.png")
            generations = report.write_generations(self.evaluations, self.out / "generations")
            self.numbers.update(
                evaluations={p: e["metrics"] for p, e in self.evaluations.items()},
                table=report.table_rows(self.evaluations),
                losses=self.curves,
                seconds=dict(self.phases.seconds),
            )
        self.numbers["total_seconds"] = self.phases.total
        numbers = report.write_json(self.numbers, self.out / "results.json")
        print(
            f"\nloss curves: {plot}\nnumbers: {numbers}\ngenerations: {generations[0].parent}"
            f"\ncheckpoint: {self.out / STAGES[-1] / 'final'}\ntotal time: {self.numbers['total_seconds']:.0f} s "
            f"on {torch.get_num_threads()} CPU thread(s)"
        )
        return self.numbers

    def print_frozen_check(self) -> None:
        n = self.numbers
        in_memory = [
            n["llm_hash_reference"],
            *(s[k] for s in n["stages"].values() for k in ("llm_hash_before", "llm_hash_after")),
            n["llm_hash_final_model"],
        ]
        files_same = n["llm_files_hash_before"] == n["llm_files_hash_after"]
        memory_same = len(set(in_memory)) == 1
        n["frozen_llm_unchanged"] = files_same and memory_same
        print(
            f"\nfrozen LM check: weight files sha256 {n['llm_files_hash_before']} before, "
            f"{n['llm_files_hash_after']} after ({'unchanged' if files_same else 'CHANGED'}); 4-bit weights in "
            f"memory {n['llm_hash_reference']} before and after every stage and in the reloaded model "
            f"({'unchanged' if memory_same else 'CHANGED'})"
        )

    def run(self) -> dict[str, Any]:
        job = self.start_language_model()
        with torch_threads(1 if job is not None else torch.get_num_threads()):
            self.make_world()
            self.pretrain_encoders()
        self.make_language_model(job)
        self.evaluate_untrained()
        self.align()
        self.instruct()
        self.final()
        return self.summary()


def run_demo(
    out: str | os.PathLike = "runs/demo",
    quick: bool = False,
    settings: DemoSettings | None = None,
    progress: bool = True,
    config_dir: Path = CONFIG_DIR,
) -> dict[str, Any]:
    """Runs the demo into ``out`` and returns the numbers it also writes to ``out/results.json``."""
    settings = settings or load_settings(quick, config_dir)
    threads = choose_threads(settings.threads)
    torch.set_num_threads(threads)
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    mode = "quick" if quick else "full"
    print(
        f"anymal demo ({mode} run) into {out}, {threads} CPU thread(s): a frozen 4-bit LLaMA-architecture LM "
        "learns, through small projectors, to describe pictures, sounds, motion and video, then to follow "
        "instructions about them.",
        flush=True,
    )
    with quiet_libraries(), _progress_bars(progress):
        return DemoRun(out, settings, quick, progress, config_dir).run()


@contextlib.contextmanager
def _progress_bars(enabled: bool) -> Iterator[None]:
    """``--no-progress`` also silences the bars of the training stages it runs (tqdm reads ``TQDM_DISABLE``)."""
    if enabled:
        yield
        return
    before = os.environ.get("TQDM_DISABLE")
    os.environ["TQDM_DISABLE"] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("TQDM_DISABLE", None)
        else:
            os.environ["TQDM_DISABLE"] = before
