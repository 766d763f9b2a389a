"""``python -m anymal.eval --model DIR --task TASK --data FILE [--limit N] [--out results.json] ...``

Loads a saved anymal checkpoint, runs one task over a data file with a progress bar, appends each item's
prediction to ``<out>.predictions.jsonl`` as batches finish (a rerun after a kill skips those items), and writes the
scores to ``--out`` atomically. Bad arguments and bad data exit with status 2 and ``error: ...``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from anymal.atomic import atomic_write_file
from anymal.errors import AnyMALError, ConfigError, DataError
from anymal.eval.items import DATA_KINDS, read_eval_items
from anymal.eval.likelihood import NORMALIZATIONS
from anymal.eval.metrics.caption import TOKENIZERS
from anymal.eval.predictions import PredictionStore
from anymal.eval.runner import MC_TARGETS, evaluate, prediction_settings
from anymal.eval.tasks import TASKS, get_task, task_names


def parse_labels(value: str) -> list[str]:
    """``--labels``: a file with one label per line, or a comma-separated list."""
    path = Path(value)
    if path.is_file():
        labels = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        if not labels:
            raise ConfigError(f"--labels {value}: the file holds no labels (one per line expected)")
        return labels
    labels = [part.strip() for part in value.split(",") if part.strip()]
    if not labels or (len(labels) == 1 and ("/" in value or value.endswith(".txt"))):
        raise ConfigError(f"--labels {value!r}: no such file, and not a comma-separated list of labels")
    return labels


def build_parser() -> argparse.ArgumentParser:
    tasks = "; ".join(f"{t.name}: {t.description}" for t in TASKS.values()) + (
        "; rec: REC Acc@0.5 (anymal_box); names: the generation names the row's label and no other of --labels"
    )
    parser = argparse.ArgumentParser(prog="python -m anymal.eval", description=__doc__.split("\n\n")[1],
                                     epilog=f"tasks: {tasks}")  # fmt: skip
    parser.add_argument("--model", required=True, help="an anymal checkpoint folder (save_pretrained / train's final)")
    parser.add_argument("--task", required=True, help=f"one of: {', '.join(task_names())}")
    parser.add_argument("--data", required=True, help="the evaluation data file (schema: anymal.eval.items)")
    parser.add_argument("--data-kind", default="eval", choices=DATA_KINDS, help="row layout (default: eval)")
    parser.add_argument("--modality", help="with --data-kind pairs: the modality of the media column")
    parser.add_argument("--media-root", help="folder relative media paths resolve against (default: the data's)")
    parser.add_argument("--limit", type=int, help="evaluate only the first N items")
    parser.add_argument("--out", help="results JSON (default: eval_<task>_<data name>.json)")
    parser.add_argument("--predictions", help="per-item JSONL (default: <out without .json>.predictions.jsonl)")
    parser.add_argument("--batch-size", type=int, default=8, help="items per generate call / sequences per pass")
    parser.add_argument("--labels", help="classify: the label set, a file (one per line) or a,b,c")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--normalize", default="sum", choices=NORMALIZATIONS, help="likelihood ranking score")
    parser.add_argument("--mc-target", default="letter", choices=MC_TARGETS, help="what multiple choice scores")
    parser.add_argument("--no-circular", action="store_true", help="mmbench: one pass, no option rotations")
    parser.add_argument("--caption-tokenizer", default="auto", choices=TOKENIZERS)
    parser.add_argument("--box-format", default="pink", choices=("pink", "qwen"), help="rec: the box grammar")
    parser.add_argument("--prompt", help="prompt template replacing the task's ({question}, {options})")
    chat = parser.add_mutually_exclusive_group()
    chat.add_argument("--chat", dest="chat", action="store_true", default=None, help="use the chat template")
    chat.add_argument("--no-chat", dest="chat", action="store_false", help="plain prompts")
    parser.add_argument("--quantization", help="load the LLM as none/8bit/4bit (default: as saved)")
    parser.add_argument("--dtype", help="LLM dtype: float32, bfloat16, float16, auto")
    parser.add_argument("--device", help="torch device, e.g. cuda (default: where the model loads)")
    parser.add_argument("--llm-path", help="where the base LLM lives now, if it moved")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (also: TQDM_DISABLE=1)")
    return parser


def run(args: argparse.Namespace) -> dict[str, Any]:
    task = get_task(args.task)  # checks before anything loads
    data = Path(args.data)
    if not data.is_file():
        raise DataError(f"--data {args.data}: no such file")
    labels = parse_labels(args.labels) if args.labels else None
    if task.mode == "classify" and labels is None:
        first = read_eval_items(data, args.data_kind, media_root=args.media_root, **_reader_kwargs(args))[:1]
        if first and not first[0].options:
            raise ConfigError(f"task 'classify' needs a label set: pass --labels (a file or a,b,c); {data} rows "
                              "have no 'options'")  # fmt: skip
    out = Path(args.out) if args.out else Path(f"eval_{task.name}_{data.stem}.json")
    predictions = Path(args.predictions) if args.predictions else out.with_name(out.stem + ".predictions.jsonl")

    run_info = {"model": str(Path(args.model).resolve()), "data": str(data.resolve()), "data_kind": args.data_kind}
    settings = {
        "max_new_tokens": args.max_new_tokens, "normalize": args.normalize, "mc_target": args.mc_target,
        "circular": not args.no_circular, "prompt": args.prompt, "chat": args.chat, "labels": labels,
        "box_format": args.box_format,
    }  # fmt: skip
    # refuse a predictions file of another run before spending minutes loading the model
    PredictionStore(predictions, {"task": task.name, "settings": prediction_settings(task, settings), **run_info})
    if args.no_progress:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()

    from anymal.modeling import AnyMAL

    kwargs = {k: v for k, v in (("quantization", args.quantization), ("torch_dtype", args.dtype),
                                ("llm_path", args.llm_path)) if v is not None}  # fmt: skip
    model = AnyMAL.from_pretrained(args.model, **kwargs)
    if args.device:
        model.to(args.device)
    items = read_eval_items(data, args.data_kind, modalities=list(model.plugins), media_root=args.media_root,
                            **_reader_kwargs(args))  # fmt: skip
    result = evaluate(
        model, task, items, labels=labels, limit=args.limit, batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens, normalize=args.normalize, mc_target=args.mc_target,
        circular=not args.no_circular, caption_tokenizer=args.caption_tokenizer, prompt=args.prompt, chat=args.chat,
        box_format=args.box_format, predictions=predictions, progress=not args.no_progress, run_info=run_info,
    )  # fmt: skip
    result = {"model": str(Path(args.model).resolve()), "data": str(data.resolve()), **result}
    text = json.dumps(result, indent=2) + "\n"

    def write(tmp: Path) -> None:
        tmp.write_text(text, encoding="utf-8")

    atomic_write_file(out, write)
    result["out"] = str(out)
    return result


def _reader_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    if args.data_kind == "pairs":
        if not args.modality:
            raise ConfigError("--data-kind pairs needs --modality (the media column's modality, e.g. image)")
        return {"modality": args.modality}
    return {"modality": args.modality} if args.modality and args.data_kind in ("llava", "m3it") else {}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = run(args)
    except AnyMALError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    metrics = result["metrics"]
    print(json.dumps({"task": result["task"], "n_items": result["n_items"], "metrics": metrics}, indent=2))
    print(f"results: {result['out']}\npredictions: {result['predictions']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
