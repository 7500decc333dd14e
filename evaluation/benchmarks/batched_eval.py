"""Benchmark: evaluation replies batched (16 contexts per decoding call) vs one at a time.

Both runs go through the same reply path (:meth:`chatbot.conversation.Chatbot.reply_batch`: candidates,
filters, ranking, retry) on the same contexts with the same settings and seed; only the batch
size differs. Prints seconds, contexts/s, generated tokens/s, the decoder that served the replies
(``fast``: :mod:`chatbot.fastdecode`, which prefills each prompt alone and drops finished rows;
``generate``: one left-padded transformers call) and the ratio (target >= 4x, issue #14). Run by
hand, never as a timed test::

    python -m evaluation.benchmarks.batched_eval --contexts 32 --preset greedy --threads 1
    python -m evaluation.benchmarks.batched_eval --model runs/small --data chitchat --contexts 64
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import dataclass

logger = logging.getLogger(__name__)


@dataclass
class Timing:
    seconds: float
    contexts: int
    new_tokens: int
    paths: frozenset[str] = frozenset()  # the decoders that served the replies (fast, generate)

    @property
    def contexts_per_s(self) -> float:
        return self.contexts / self.seconds

    @property
    def tokens_per_s(self) -> float:
        return self.new_tokens / self.seconds


def time_replies(bot, contexts: list[list[str]], settings, batch_size: int) -> Timing:
    """Wall time of replying to every context, ``batch_size`` contexts per call."""
    started = time.perf_counter()
    replies = []
    for start in range(0, len(contexts), batch_size):
        replies += bot.reply_batch(contexts[start : start + batch_size], settings, batch_size=batch_size)
    seconds = time.perf_counter() - started
    paths = frozenset(c.path for r in replies for c in r.candidates)
    return Timing(seconds, len(contexts), sum(r.timings.new_tokens for r in replies), paths)


def time_generation(bot, contexts: list[list[str]], settings, batch_size: int) -> Timing:
    """Wall time of the batched ``generate`` calls alone (no filters, no retry): the batching gain itself."""
    from chatbot.generation import generate_candidates

    prompts = [bot.build_prompt(c, (), settings, bot.filters).input_ids for c in contexts]
    started = time.perf_counter()
    tokens, paths = 0, set()
    for start in range(0, len(prompts), batch_size):
        result = generate_candidates(
            bot.model,
            bot.tokenizer,
            prompts[start : start + batch_size],
            settings,
            stop_ids=bot.stop_ids,
            pad_id=bot.pad_id,
        )
        tokens += result.new_tokens
        paths |= {c.path for cs in result.candidates for c in cs}
    return Timing(time.perf_counter() - started, len(contexts), tokens, frozenset(paths))


def bench_contexts(source: str, split: str, count: int, seed: int) -> list[list[str]]:
    from evaluation.runner import select_examples
    from training.data import load_dialogues

    dialogues, _ = load_dialogues(source, split, skip_bad=True)
    return [e.context for e in select_examples(dialogues, count, seed=seed)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="checkpoint folder or hub id (default: the embedded model)")
    parser.add_argument("--data", default="chitchat", help="dialogue source for the contexts")
    parser.add_argument("--split", default="test")
    parser.add_argument("--contexts", type=int, default=64, help="contexts replied to in each run")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--preset", default="top-p", help="sampling preset (as evaluated)")
    parser.add_argument("--max-new-tokens", type=int, default=None, help="override the preset's max_new_tokens")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import torch

    from chatbot.conversation import Chatbot
    from chatbot.sampling import get_preset

    if args.threads:
        torch.set_num_threads(args.threads)
    bot = Chatbot.load(args.model)
    settings = get_preset(args.preset)
    if settings.strategy == "sample":
        settings = settings.replace(seed=args.seed)
    if args.max_new_tokens:
        settings = settings.replace(max_new_tokens=args.max_new_tokens)
    contexts = bench_contexts(args.data, args.split, args.contexts, args.seed)
    bot.reply_batch(contexts[:2], settings, batch_size=2)  # warm-up: first-call allocations and lazy imports

    print(f"model {bot.name}, {len(contexts)} contexts, {settings.describe()}, torch threads {torch.get_num_threads()}")
    for what, timer in (("reply path (filters, retry)", time_replies), ("generate only", time_generation)):
        batched = timer(bot, contexts, settings, args.batch_size)
        single = timer(bot, contexts, settings, 1)
        print(what)
        for label, t in ((f"batched ({args.batch_size})", batched), ("one at a time", single)):
            print(
                f"  {label:>15}: {t.seconds:7.1f} s  {t.contexts_per_s:6.2f} contexts/s  {t.tokens_per_s:7.1f} tokens/s"
                f"  (served by {', '.join(sorted(t.paths)) or 'nothing'})"
            )
        # sampled replies differ between the runs (the batch changes the random draws), so the
        # tokens/s ratio is printed too; the time ratio is what an evaluation run feels
        print(
            f"  batched vs one-at-a-time: {single.seconds / batched.seconds:.2f}x faster (wall time; target >= 4x), "
            f"{batched.tokens_per_s / single.tokens_per_s:.2f}x tokens/s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
