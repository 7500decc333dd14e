"""Failure modes: name what is wrong with a reply, so a report can count and show each kind.

Labels (a reply can carry several; an empty one carries only ``empty``):

- ``empty``       nothing but whitespace or punctuation;
- ``too-short``   fewer than ``min_words`` words;
- ``too-long``    more than ``max_words`` words (chit-chat turns are short: chitchat's median is ~10);
- ``repetition``  fails the reply path's in-reply checks (a loop, a repeated sentence or phrase,
                  U+FFFD: ``chatbot.filters.check_in_reply``, one definition for both), repeats
                  one of the bot's earlier utterances, or echoes the user's last message;
- ``off-topic``   coherence below the off-topic threshold (``evaluation.coherence``);
- ``generic``     a dull all-purpose reply ("i don't know", "me too"...), or one of the setting's
                  most frequent replies (the same text given to many different contexts);
- ``profanity``   the reply path rejected a candidate as profane (the shown reply is then another
                  candidate or the safe fallback), or ``chatbot.filters``' default profanity check
                  flags the shown text (the filter was switched off; the human replies of the data).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from chatbot.filters import FilterSettings, ReplyFilter, check_in_reply
from evaluation.metrics import copies_user, normalize_answer, repeats_self, word_count

# the reply path's default in-reply repetition thresholds, so a label means what the filter rejects
IN_REPLY = FilterSettings()

LABELS = ("empty", "too-short", "too-long", "repetition", "off-topic", "generic", "profanity")

# Normalised like ConvAI2's F1 (lower case, no punctuation, no articles), so "I don't know." matches.
GENERIC_PHRASES = (
    "i don t know",
    "i dont know",
    "i m not sure",
    "i am not sure",
    "not sure",
    "me too",
    "i don t know what you mean",
    "what do you mean",
    "yes",
    "no",
    "ok",
    "okay",
    "lol",
    "haha",
    "cool",
    "that s cool",
    "that s nice",
    "that s good",
    "nice",
    "i see",
    "oh",
    "sure",
    "thanks",
    "same",
)


@dataclass
class FailureConfig:
    """Thresholds of the failure labels."""

    min_words: int = field(default=2, metadata={"help": "replies with fewer words are too-short"})
    max_words: int = field(default=40, metadata={"help": "replies with more words are too-long"})
    generic_share: float = field(
        default=0.05, metadata={"help": "a reply text given to at least this share of contexts is generic"}
    )
    generic_min_count: int = field(default=3, metadata={"help": "...and to at least this many contexts"})
    generic_max_words: int = field(
        default=6, metadata={"help": "a reply this short that contains a generic phrase is generic"}
    )

    def __post_init__(self):
        if not 0 <= self.min_words <= self.max_words:
            raise ValueError(f"need 0 <= min_words <= max_words (got {self.min_words}, {self.max_words})")
        if not 0 < self.generic_share <= 1:
            raise ValueError(f"generic_share must be in (0, 1] (got {self.generic_share})")


def is_empty(reply: str) -> bool:
    return not normalize_answer(reply)


def frequent_replies(replies: Sequence[str], config: FailureConfig) -> set[str]:
    """Normalised reply texts a setting gave to many contexts: its canned answers."""
    counts = Counter(normalize_answer(r) for r in replies if not is_empty(r))
    floor = max(config.generic_min_count, config.generic_share * len(replies))
    return {text for text, n in counts.items() if n >= floor}


def is_generic(reply: str, frequent: set[str], config: FailureConfig) -> bool:
    text = normalize_answer(reply)
    if text in frequent or text in GENERIC_PHRASES:
        return True
    padded = f" {text} "
    short = len(text.split()) <= config.generic_max_words
    # multi-word phrases only: "no" inside "no way, really?" is not a dull reply
    return short and any(f" {p} " in padded for p in GENERIC_PHRASES if " " in p)


def is_repetition(reply: str, context: Sequence[str]) -> bool:
    return (
        check_in_reply(reply, IN_REPLY) is not None
        or repeats_self(reply, context)
        or copies_user(reply, context)
    )


def failure_labels(
    reply: str,
    context: Sequence[str],
    coherence: float | None,
    off_topic_threshold: float,
    frequent: set[str],
    config: FailureConfig,
    profanity: bool = False,
) -> list[str]:
    """Every label that applies to one reply, in :data:`LABELS` order."""
    if is_empty(reply):
        return ["empty"] + (["profanity"] if profanity else [])
    words = word_count(reply)
    checks = {
        "too-short": words < config.min_words,
        "too-long": words > config.max_words,
        "repetition": is_repetition(reply, context),
        "off-topic": coherence is not None and coherence < off_topic_threshold,
        "generic": is_generic(reply, frequent, config),
        "profanity": profanity,
    }
    return [label for label in LABELS if checks.get(label)]


def label_replies(
    replies: Sequence[str],
    contexts: Sequence[Sequence[str]],
    coherence: Sequence[float] | None,
    off_topic_threshold: float,
    config: FailureConfig,
    profanity: Sequence[bool] | None = None,
) -> list[list[str]]:
    """Labels of every reply of one setting (the frequent-reply set is computed over the setting)."""
    frequent = frequent_replies(replies, config)
    return [
        failure_labels(
            reply,
            context,
            None if coherence is None else float(coherence[i]),
            off_topic_threshold,
            frequent,
            config,
            profanity=bool(profanity[i]) if profanity is not None else False,
        )
        for i, (reply, context) in enumerate(zip(replies, contexts, strict=True))
    ]


def count_labels(labels: Sequence[Sequence[str]]) -> dict[str, int]:
    """Replies carrying each label (every label present, zeros included) and ``any``."""
    counts = dict.fromkeys(LABELS, 0)
    for reply_labels in labels:
        for label in reply_labels:
            counts[label] += 1
    counts["any"] = sum(1 for reply_labels in labels if reply_labels)
    return counts


def examples_of(labels: Sequence[Sequence[str]], label: str, limit: int = 3) -> list[int]:
    """Indices of the first ``limit`` replies carrying ``label`` (in data order, so reports are stable)."""
    return [i for i, reply_labels in enumerate(labels) if label in reply_labels][:limit]


def profanity_checker() -> Callable[[str], bool]:
    """The chatbot's own profanity test (``chatbot.filters``, default word lists)."""
    index = ReplyFilter(IN_REPLY).profanity
    return lambda text: index.find(text) is not None


def is_profanity_reason(reason: str | None) -> bool:
    """A rejection reason from ``chatbot.filters`` that means "profane" (it reads ``profanity (f***)``)."""
    return bool(reason) and "profan" in reason.lower()
