"""``python -m anymal.train --config X.yaml [--resume] [--dry-run] key=value ...``"""

from __future__ import annotations

import argparse
import sys

from anymal.errors import AnyMALError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m anymal.train", description="Train AnyMAL (align / instruct).")
    parser.add_argument("--config", help="YAML config (a partial override of anymal.train.TrainConfig)")
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in output_dir")
    parser.add_argument("--dry-run", action="store_true", help="validate the config and stop before loading models")
    parser.add_argument("overrides", nargs="*", help="key=value overrides, e.g. max_steps=10 lora.rank=8")
    args = parser.parse_args(argv)
    from anymal.train.config import load_train_config

    try:
        config = load_train_config(args.config, args.overrides)
        if args.dry_run:
            print(f"config OK: stage={config.stage}, {len(config.data)} dataset(s), output_dir={config.output_dir}")
            return 0
        from anymal.train.loop import train

        result = train(config, resume=args.resume)
    except AnyMALError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"done: {result.steps} steps, final checkpoint {result.final_checkpoint}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
