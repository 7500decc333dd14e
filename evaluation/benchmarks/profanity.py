"""Profanity filter: false-positive rate on real chit-chat and cost, better-profanity vs our index (run by hand).

    python -m evaluation.benchmarks.profanity                  # the first 3,000 chitchat turns
    python -m evaluation.benchmarks.profanity --turns 0        # every turn (the index only; the library is slow)

chitchat-dataset is a clean university chat challenge, so nearly every flagged turn is a false
positive or a mild word; the table of flagged words is what the default whitelist
(``chatbot.profanity.DEFAULT_WHITELIST``) was chosen from.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter

from chatbot.profanity import DEFAULT_WHITELIST, ProfanityIndex


def chitchat_turns(limit: int) -> list[str]:
    """Turns (consecutive messages of one speaker joined) in the dataset's order; 0 = all."""
    import chitchat_dataset

    turns: list[str] = []
    for conversation in chitchat_dataset.Dataset().values():
        turns += [" ".join(m["text"] for m in turn) for turn in conversation["messages"]]
        if limit and len(turns) >= limit:
            return turns[:limit]
    return turns


def flagged(find, turns: list[str]) -> tuple[list[str], float]:
    """The hits and seconds per word."""
    start = time.perf_counter()
    hits = [hit for hit in map(find, turns) if hit]
    seconds = time.perf_counter() - start
    return hits, seconds / max(1, sum(len(t.split()) for t in turns))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=3000, help="turns to scan (0: all, index only)")
    args = parser.parse_args(argv)
    turns = chitchat_turns(args.turns)
    print(f"{len(turns)} chitchat turns, {sum(len(t.split()) for t in turns)} words")
    rows = [
        ("index, no whitelist", ProfanityIndex().find),
        ("index, default whitelist", ProfanityIndex(whitelist=DEFAULT_WHITELIST).find),
    ]
    if args.turns:
        from better_profanity import Profanity

        library = Profanity()
        rows.insert(0, ("better-profanity (library)", lambda t: "?" if library.contains_profanity(t) else None))
    for name, find in rows:
        hits, per_word = flagged(find, turns)
        print(f"  {name:<28} flagged {len(hits) / len(turns):6.2%} of turns   {per_word * 1e6:8.1f} us/word")
        if name.startswith("index"):
            top = Counter(h.lower() for h in hits).most_common(15)
            print("    most flagged: " + ", ".join(f"{w} ({n})" for w, n in top))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
