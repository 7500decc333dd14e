"""In-reply repetition checks: false positives on people's chat, and the default model's repeats (run by hand).

    python -m evaluation.benchmarks.repetition --threads 1              # 200 test contexts
    python -m evaluation.benchmarks.repetition --limit 50 --threads 1   # a shared CPU
    python -m evaluation.benchmarks.repetition --limit 0                # false positives only, no model

1. False positives: every human utterance of the chitchat test split, judged by the in-reply checks
   alone (``chatbot.filters.check_in_reply``, default settings; the target is under 2%), with a few
   flagged utterances per rule and the rate of nearby thresholds the defaults were chosen from.
2. The default model's top-p replies (one candidate) to ``--limit`` test contexts, chosen and seeded
   as ``chatbot evaluate`` chooses them: "before" is the raw candidate (no filter, no retry), "after"
   is the reply the reply path shows with the default filters (retry and fallback included).
"""

from __future__ import annotations

import argparse
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence

from chatbot.filters import FilterSettings, check_in_reply

# settings near the defaults, to show what each threshold costs on people's chat
ALTERNATIVES = {
    "loop_words=3 (no no no)": {"loop_words": 3},
    "loop_chars=6 (hahaha)": {"loop_chars": 6},
    "loop_chars=8 (hahahaha)": {"loop_chars": 8},
    "repeat_phrase_words=3": {"repeat_phrase_words": 3},
    "repeat_phrase_words=5": {"repeat_phrase_words": 5},
}


def rule(reason: str) -> str:
    """The rule of a reason: "repeated phrase: 'i like to cook'" -> "repeated phrase"."""
    return reason.split(":")[0]


def judge(texts: Sequence[str], settings: FilterSettings) -> list[str | None]:
    return [check_in_reply(text, settings) for text in texts]


def report_flagged(label: str, texts: Sequence[str], reasons: Sequence[str | None], examples: int) -> None:
    """Count, rate and a few flagged texts per rule."""
    flagged = [(t, r) for t, r in zip(texts, reasons, strict=True) if r]
    print(f"{label}: {len(flagged)} of {len(texts)} flagged ({len(flagged) / max(len(texts), 1):.2%})")
    by_rule: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for text, reason in flagged:
        by_rule[rule(reason)].append((text, reason))
    for name, hits in sorted(by_rule.items(), key=lambda item: -len(item[1])):
        print(f"  {name:<22} {len(hits):5d} ({len(hits) / len(texts):.2%})")
        for text, reason in hits[:examples]:
            shown = text if len(text) <= 100 else text[:97] + "..."
            print(f"      {reason}  <-  {shown!r}")


def false_positives(utterances: Sequence[str], examples: int) -> None:
    settings = FilterSettings()
    start = time.perf_counter()
    reasons = judge(utterances, settings)
    per_text_us = (time.perf_counter() - start) / max(len(utterances), 1) * 1e6
    report_flagged("human utterances, default checks", utterances, reasons, examples)
    print(f"  ({per_text_us:.0f} us per utterance)")
    print("  nearby thresholds:")
    for label, change in ALTERNATIVES.items():
        hits = sum(r is not None for r in judge(utterances, settings.replace(**change)))
        print(f"    {label:<26} {hits / len(utterances):6.2%}")


def raw_candidates(bot, contexts: Sequence[Sequence[str]], settings, batch_size: int) -> list:
    """The first candidate of each context, straight from ``generate`` (no filter, no retry)."""
    from chatbot.generation import generate_candidates

    out = []
    for start in range(0, len(contexts), batch_size):
        prompts = [bot.build_prompt(c, (), settings).input_ids for c in contexts[start : start + batch_size]]
        result = generate_candidates(
            bot.model, bot.tokenizer, prompts, settings, stop_ids=bot.stop_ids, pad_id=bot.pad_id
        )
        out += [candidates[0] for candidates in result.candidates]
    return out


def share_line(label: str, texts: Sequence[str], is_repeat: Callable[[str], bool]) -> None:
    n = sum(map(is_repeat, texts))
    print(f"  {label:<44} {n:4d} of {len(texts)} ({n / max(len(texts), 1):.1%})")


def model_repeats(dialogues, limit: int, seed: int, batch_size: int, examples: int) -> None:
    from chatbot.conversation import Chatbot
    from chatbot.sampling import get_preset
    from evaluation.pipeline import generation_settings
    from evaluation.runner import select_examples

    bot = Chatbot.load()
    contexts = [e.context for e in select_examples(dialogues, limit, seed=seed)]
    settings = generation_settings(get_preset("top-p").replace(num_candidates=1), seed)
    print(f"\ndefault model {bot.name}, {len(contexts)} test contexts, {settings.describe()}")
    start = time.perf_counter()
    before = raw_candidates(bot, contexts, settings, batch_size)
    replies = bot.reply_batch(contexts, settings, batch_size=batch_size)
    seconds = time.perf_counter() - start
    filters = FilterSettings()
    before_reasons = judge([c.text for c in before], filters)
    report_flagged("raw top-p replies (before)", [c.text for c in before], before_reasons, examples)
    same = sum(r.candidates[0].token_ids == c.token_ids for r, c in zip(replies, before, strict=True))
    fallbacks = [r for r in replies if r.fallback]
    print(f"replies shown by the reply path (after): {len(fallbacks)} fallbacks, {seconds:.0f} s for both passes")
    print(f"  (the reply path's first candidate equals the raw one for {same} of {len(replies)} contexts)")
    rejected = Counter(rule(c.rejected) for r in replies for c in r.candidates if c.rejected)
    print("  candidates rejected, by rule: " + ", ".join(f"{k} {v}" for k, v in rejected.most_common()))
    print("share of replies with an in-reply repeat:")

    def is_repeat(text: str) -> bool:
        return check_in_reply(text, filters) is not None

    share_line("before (raw candidate)", [c.text for c in before], is_repeat)
    share_line("after (shown reply)", [r.text for r in replies], is_repeat)
    share_line("after, fallbacks left out", [r.text for r in replies if not r.fallback], is_repeat)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=200, help="test contexts the model replies to (0: none)")
    parser.add_argument("--seed", type=int, default=0, help="seed of context selection and sampling")
    parser.add_argument("--batch-size", type=int, default=16, help="contexts per generate call")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--examples", type=int, default=3, help="flagged texts shown per rule")
    args = parser.parse_args(argv)

    from training.data import load_dialogues

    dialogues, _ = load_dialogues("chitchat", "test", skip_bad=True)
    utterances = [turn for dialogue in dialogues for turn in dialogue.turns]
    print(f"chitchat test split: {len(dialogues)} dialogues, {len(utterances)} utterances")
    false_positives(utterances, args.examples)
    if args.limit:
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        model_repeats(dialogues, args.limit, args.seed, args.batch_size, args.examples)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
