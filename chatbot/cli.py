"""The ``chatbot`` command: ``train``, ``chat``, ``serve`` and ``evaluate``.

Each subcommand lives in its own module and parses its own flags; this file only dispatches, so
``chatbot --help`` is instant and never imports torch.

    chatbot train --from-scratch --data chitchat --max-steps 50 --output runs/x
    chatbot chat --once "hi, how are you?"
    chatbot serve
    chatbot evaluate --data chitchat --split test --limit 100 --output reports/x
"""

from __future__ import annotations

import importlib
import logging
import os
import sys

from chatbot.errors import ChatbotError

# subcommand -> (module with a main(argv) function, one-line help)
COMMANDS = {
    "train": ("training.cli", "fine-tune GPT-2 (or a chatbot of ours) on dialogue data"),
    "chat": ("chatbot.chat", "chat in the terminal (or --once for scripts)"),
    "serve": ("chatbot.app", "start the browser app (chat and A/B comparison of sampling settings)"),
    "evaluate": ("evaluation.cli", "measure sampling settings: BLEU, METEOR, diversity, coherence, failures"),
}


def usage() -> str:
    lines = ["usage: chatbot COMMAND [options]   (chatbot COMMAND --help for its options)", "", "commands:"]
    lines += [f"  {name:<9} {help_}" for name, (_, help_) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"error: unknown command {name!r}; choose one of {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if name != "train":
        # Decoding runs short bursts of small matmuls between Python steps; OpenMP threads that
        # spin-wait in between steal each other's core on a busy CPU (a 40-token reply went from
        # ~1 s to ~17 s). Must be set before torch is imported; training keeps the default.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    module = importlib.import_module(COMMANDS[name][0])
    try:
        return int(module.main(rest) or 0)
    except ChatbotError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
