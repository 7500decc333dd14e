"""Keyword-conditional generation: how often the reply contains its keyword, and what fluency it costs (run by hand).

    python -m evaluation.benchmarks.keywords --threads 1                      # 100 chitchat test contexts
    python -m evaluation.benchmarks.keywords --threads 1 --strength 5 8 12    # compare strengths

Each context's keyword is the one ``chatbot evaluate --keywords-from-reference`` gives it: the longest
non-stopword of the recorded reply. The default model replies with the default preset (seeded as the
evaluation seeds), once without keywords and once per ``--strength`` with its keyword, through the
chatbot's reply path (filters, ranking, retry, fallback).

- hit rate: replies containing the keyword as a whole word, case-insensitive (the target is >= 80%
  at the default strength);
- fluency: the mean per-token log-probability of the shown reply under the unbiased model (the
  candidates' scores come from the raw logits, before the keyword boost), over the replies that are
  not fallbacks.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from chatbot.rerankers import mean_logprob
from evaluation.keywords import contains_word, reference_keyword


def fluency(replies) -> tuple[float, int]:
    """Mean per-token log-probability of the shown candidates (nats) and how many were averaged."""
    chosen = [r.candidates[r.chosen] for r in replies if r.chosen is not None]
    return float(np.mean([mean_logprob(c.logprob, c.n_tokens) for c in chosen])), len(chosen)


def report(label: str, replies, keywords, seconds: float) -> None:
    hits = [contains_word(r.text, k) for r, k in zip(replies, keywords, strict=True)]
    mean, n = fluency(replies)
    fallbacks = sum(r.fallback for r in replies)
    print(
        f"{label:<26} keyword in reply {np.mean(hits):6.1%}   fluency {mean:7.3f} nats/token (n={n})   "
        f"fallbacks {fallbacks:3d}   {seconds / len(replies) * 1000:5.0f} ms/reply"
    )


def main(argv: list[str] | None = None) -> int:
    from chatbot.processors import DEFAULT_KEYWORD_STRENGTH

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=100, help="chitchat test contexts")
    parser.add_argument("--strength", type=float, nargs="+", default=[DEFAULT_KEYWORD_STRENGTH], help="strengths")
    parser.add_argument("--seed", type=int, default=0, help="seed of context selection and sampling")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--examples", type=int, default=5, help="contexts printed with their replies")
    args = parser.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    from chatbot.conversation import Chatbot
    from chatbot.sampling import DEFAULT_PRESET, PRESETS
    from evaluation.pipeline import generation_settings
    from evaluation.runner import select_examples
    from training.data import load_dialogues

    dialogues, _ = load_dialogues("chitchat", "test", skip_bad=True)
    examples = [e for e in select_examples(dialogues, args.limit, seed=args.seed) if reference_keyword(e.reference)]
    keywords = [reference_keyword(e.reference) for e in examples]
    bot = Chatbot.load()
    settings = generation_settings(PRESETS[DEFAULT_PRESET], args.seed)
    print(f"{bot.name}: {len(examples)} chitchat test contexts with a keyword, {settings.describe()}")
    contexts = [e.context for e in examples]

    start = time.perf_counter()
    plain = bot.reply_batch(contexts, settings)
    report("without keywords", plain, keywords, time.perf_counter() - start)
    runs = {}
    for strength in args.strength:
        start = time.perf_counter()
        # one keyword per context, so one reply_batch call per context
        runs[strength] = [
            bot.generate_reply(c, settings=settings.replace(keywords=(k,), keyword_strength=strength))
            for c, k in zip(contexts, keywords, strict=True)
        ]
        report(f"keywords, strength {strength:g}", runs[strength], keywords, time.perf_counter() - start)
    for i in range(min(args.examples, len(examples))):
        print(f"\n{keywords[i]!r} <- reference {examples[i].reference!r}")
        print(f"  without: {plain[i].text!r}")
        for strength, replies in runs.items():
            print(f"  {strength:>7g}: {replies[i].text!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
