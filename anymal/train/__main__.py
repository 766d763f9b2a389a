"""``python -m anymal.train --config X.yaml [--resume] [--dry-run] key=value ...``

The same command runs a plugin's encoder pretraining task: a config with a top-level ``task: {plugin, name}``
section, or ``--pretrain PLUGIN:TASK`` with ``key=value`` options (see :mod:`anymal.train.pretrain`).
"""

from __future__ import annotations

import argparse
import sys

from anymal.errors import AnyMALError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m anymal.train",
        description="Train AnyMAL (align / instruct), or run a plugin's encoder pretraining task.",
    )
    parser.add_argument(
        "--config", help="YAML config (a partial override of anymal.train.TrainConfig or PretrainConfig)"
    )
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in output_dir")
    parser.add_argument("--dry-run", action="store_true", help="validate the config and stop before loading models")
    parser.add_argument(
        "--pretrain",
        metavar="PLUGIN:TASK",
        help="run a plugin's encoder pretraining task (e.g. imu:imu_text_contrastive); options as options.KEY=VALUE",
    )
    parser.add_argument("--list-tasks", action="store_true", help="list the installed plugins' pretraining tasks")
    parser.add_argument(
        "--no-memory-check",
        action="store_true",
        help="start even when the memory plan says the run does not fit the GPU's free memory",
    )
    parser.add_argument("overrides", nargs="*", help="key=value overrides, e.g. max_steps=10 lora.rank=8")
    return parser


def _list_tasks() -> int:
    from anymal.train.pretrain import available_tasks

    tasks = available_tasks()
    for name, task in sorted(tasks.items()):
        print(f"{name}\t{task.description}")
    if not tasks:
        print("no installed plugin declares a pretraining task")
    return 0


def _pretrain(args: argparse.Namespace, overrides: list[str]) -> int:
    from anymal.train.pretrain import load_pretrain_config, run_pretraining

    if args.resume:
        print("error: --resume does not apply to pretraining tasks; run the task again", file=sys.stderr)
        return 2
    config = load_pretrain_config(args.config, overrides)
    if args.dry_run:
        print(f"config OK: pretraining task {config.task.plugin}:{config.task.name}, output_dir={config.output_dir}")
        return 0
    result = run_pretraining(config)
    print(f"done: {config.task.plugin}:{config.task.name} in {result.seconds:.1f} s; metrics in {result.output_dir}")
    if result.checkpoint is not None:
        print(f"encoder checkpoint: {result.checkpoint}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from anymal.train.config import load_train_config, preflight
    from anymal.train.pretrain import is_pretrain_config, read_config_dict, task_overrides

    try:
        if args.list_tasks:
            return _list_tasks()
        overrides = list(args.overrides)
        if args.pretrain:
            overrides = task_overrides(args.pretrain) + overrides
        if args.pretrain or is_pretrain_config(read_config_dict(args.config, overrides)):
            return _pretrain(args, overrides)
        config = load_train_config(args.config, args.overrides)
        preflight(config)  # data files, checkpoints, modalities: before --dry-run answers and before a model loads
        if args.dry_run:
            print(f"config OK: stage={config.stage}, {len(config.data)} dataset(s), output_dir={config.output_dir}")
            return 0
        from anymal.plan.check import check_memory

        memory = check_memory(config, args.config)
        print(memory.message, file=sys.stderr if memory.fits is False else sys.stdout)
        if memory.fits is False and not args.no_memory_check:
            return 3
        from anymal.train.loop import train

        result = train(config, resume=args.resume)
    except AnyMALError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"done: {result.steps} steps, final checkpoint {result.final_checkpoint}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
