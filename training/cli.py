"""``chatbot train``: fine-tune GPT-2 on dialogues, retrain a chatbot, or train one from scratch.

examples:
  chatbot train --data chitchat --output runs/gpt2-chat                    # from gpt2 (hub)
  chatbot train --from-scratch --data chitchat --max-steps 50 --output runs/x
  chatbot train --init-from runs/x --data my.jsonl --output runs/y         # retrain on new data
  torchrun --nproc_per_node 2 -m training.cli --from-scratch --data chitchat --output runs/ddp
"""

from __future__ import annotations

import argparse
import shlex
import sys

from chatbot.dataclass_cli import add_dataclass_arguments, parse_dataclasses, plain_text
from chatbot.errors import ChatbotError
from training.config import TrainConfig


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chatbot train",
        description=TrainConfig.__doc__,
        epilog=plain_text(__doc__.split("\n\n", 1)[1]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_dataclass_arguments(parser, TrainConfig)
    return parser


def parse_args(argv: list[str]) -> TrainConfig:
    (cfg,) = parse_dataclasses(build_parser(), [TrainConfig], argv)
    return cfg


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    cfg = parse_args(argv)
    from training.train import train

    metrics = train(cfg, command=shlex.join(["chatbot", "train", *argv]))
    summary = {k: v for k, v in metrics.items() if "perplexity" in k or k in ("steps", "eval_loss", "wall_time_s")}
    if summary:
        print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in summary.items()))
    if metrics.get("phase_seconds"):
        print(format_phases(metrics["phase_seconds"]))
    return 0


def format_phases(seconds: dict[str, float]) -> str:
    """``time per phase: load data 2.0 s, train 30.1 s, ...`` in the order the phases ran."""
    return "time per phase: " + ", ".join(f"{name} {s:.1f} s" for name, s in seconds.items())


if __name__ == "__main__":  # torchrun / accelerate launch entry point
    try:
        sys.exit(main())
    except ChatbotError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
