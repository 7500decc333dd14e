"""Run an evaluation: pick contexts, decode them under each sampling setting, score, compare.

The pieces, each a plain function so tests can drive them with a fake reply source:

- :func:`select_examples`: (context, reference) pairs from test dialogues, spread over dialogues;
- a :class:`ReplySource` decodes a batch of contexts under one setting (``evaluation.decoding``
  wraps the chatbot's batched reply path; tests pass canned replies);
- :func:`score_setting`: every metric of one setting as a resampleable statistic, plus failure labels;
- :func:`compare`: value, bootstrap interval and paired difference to the reference setting.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from chatbot.bootstrap import Statistic, bootstrap_interval, mean_statistic, paired_bootstrap
from chatbot.embeddings import Embedder
from chatbot.format import reply_positions
from evaluation import metrics as m
from evaluation.coherence import CoherenceConfig, coherence_scores, off_topic
from evaluation.failures import FailureConfig, label_replies, profanity_checker

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class MetricInfo:
    """How a metric is shown: its label, whether higher is better (None: neither), and its format."""

    key: str
    label: str
    higher_is_better: bool | None
    fmt: str
    help: str
    needs_reference: bool = False


METRICS: tuple[MetricInfo, ...] = (
    MetricInfo("bleu", "BLEU", True, ".2f", "corpus BLEU vs the recorded reply (sacrebleu, 0-100)", True),
    MetricInfo("meteor", "METEOR", True, ".3f", "mean sentence METEOR vs the recorded reply (nltk)", True),
    MetricInfo("f1", "F1", True, ".3f", "unigram F1 vs the recorded reply (ConvAI2)", True),
    MetricInfo("coherence", "coherence", True, ".3f", "cosine of MiniLM embeddings, context vs reply"),
    MetricInfo("off_topic", "off-topic", False, ".1%", "share of replies below the off-topic threshold"),
    MetricInfo("distinct_1", "distinct-1", True, ".3f", "distinct unigrams / unigrams over all replies"),
    MetricInfo("distinct_2", "distinct-2", True, ".3f", "distinct bigrams / bigrams over all replies"),
    MetricInfo("entropy_4", "entropy-4", True, ".2f", "entropy (nats, natural log) of the 4-gram distribution"),
    MetricInfo("self_bleu", "self-BLEU", False, ".1f", "BLEU of each reply vs the setting's other replies"),
    MetricInfo("length", "length", None, ".1f", "mean words per reply"),
    MetricInfo("repeated_3gram", "repeated 3-grams", False, ".3f", "share of a reply's 3-grams that repeat"),
    MetricInfo("self_repeat", "self-repeat", False, ".1%", "replies that repeat the bot's earlier utterance"),
    MetricInfo("user_copy", "user-copy", False, ".1%", "replies that echo the user's last message"),
    MetricInfo("failure_rate", "failures", False, ".1%", "replies with at least one failure label"),
    MetricInfo("fallback", "fallback", False, ".1%", "replies where every candidate failed the filters"),
)
METRIC_INFO = {info.key: info for info in METRICS}


@dataclass(frozen=True)
class Example:
    """One context to reply to, with the recorded reply; ``dialogue``/``turn`` locate it in the data."""

    context: list[str]
    reference: str
    persona: list[str]
    dialogue: int
    turn: int


@dataclass
class Generated:
    """What a reply source returns for one context (extra facts of the chatbot's reply path kept)."""

    text: str
    profanity_rejected: bool = False  # a candidate was rejected as profane
    fallback: bool = False  # every candidate failed the filters: the safe fallback reply was shown
    rejected: list[str] = field(default_factory=list)  # reasons of the rejected candidates


class ReplySource(Protocol):
    def __call__(self, examples: Sequence[Example], settings: Any) -> list[Generated]: ...


def select_examples(dialogues: Sequence, limit: int | None, seed: int = 0) -> list[Example]:
    """Bot turns (odd indices, as the data loader defines) as examples, spread over dialogues.

    Round-robin: one randomly chosen bot turn of every dialogue first, then a second one of each,
    and so on, so ``--limit 100`` covers 100 conversations rather than the first few; seeded.
    """
    rng = np.random.default_rng(seed)
    queues = []
    for d, dialogue in enumerate(dialogues):
        turns = list(reply_positions(len(dialogue.turns)))
        rng.shuffle(turns)
        queues.append((d, turns))
    examples: list[Example] = []
    depth = 0
    while any(depth < len(turns) for _, turns in queues):
        for d, turns in queues:
            if depth < len(turns):
                t = turns[depth]
                dialogue = dialogues[d]
                examples.append(Example(list(dialogue.turns[:t]), dialogue.turns[t], list(dialogue.persona), d, t))
                if limit is not None and len(examples) >= limit:
                    return examples
        depth += 1
    return examples


@dataclass
class MetricData:
    """One metric of one setting: a statistic of resampled item indices (None: not measured)."""

    statistic: Statistic | None
    per_item: np.ndarray | None = None  # for mean metrics: the value of each reply


@dataclass
class SettingScores:
    """Everything measured on one setting's replies to the shared examples."""

    metrics: dict[str, MetricData]
    coherence: np.ndarray
    labels: list[list[str]]

    def value(self, key: str) -> float:
        data = self.metrics[key]
        n = len(self.labels)
        return float(data.statistic(np.arange(n))) if data.statistic and n else math.nan


@functools.cache
def _profanity_check():
    return profanity_checker()


def shown_is_profane(text: str) -> bool:
    """The shown text itself is profane: the chatbot's filter was off (or absent, for the human replies)."""
    return _profanity_check()(text)


def _mean(values) -> MetricData:
    array = np.asarray(values, dtype=float)
    return MetricData(mean_statistic(array), array)


def score_setting(
    examples: Sequence[Example],
    replies: Sequence[Generated],
    embedder: Embedder | None,
    wordnet,
    coherence_config: CoherenceConfig,
    failure_config: FailureConfig,
    with_reference: bool = True,
) -> SettingScores:
    """Score one setting. ``with_reference=False`` for the human replies themselves (no BLEU vs itself)."""
    texts = [g.text for g in replies]
    contexts = [e.context for e in examples]
    refs = [e.reference for e in examples]
    coherence = (
        coherence_scores(embedder, contexts, texts, coherence_config)
        if embedder is not None
        else np.full(len(texts), np.nan)
    )
    labels = label_replies(
        texts,
        contexts,
        None if embedder is None else coherence,
        coherence_config.off_topic_threshold,
        failure_config,
        profanity=[g.profanity_rejected or shown_is_profane(g.text) for g in replies],
    )
    unigrams, bigrams, fourgrams = (m.NgramData.from_replies(texts, n) for n in (1, 2, 4))
    out: dict[str, MetricData] = {
        "coherence": _mean(coherence) if embedder is not None else MetricData(None),
        "off_topic": _mean(off_topic(coherence, coherence_config)) if embedder is not None else MetricData(None),
        "distinct_1": MetricData(unigrams.distinct),
        "distinct_2": MetricData(bigrams.distinct),
        "entropy_4": MetricData(fourgrams.entropy),
        "self_bleu": _mean(m.self_bleu_per_reply(texts)),
        "length": _mean([m.word_count(t) for t in texts]),
        "repeated_3gram": _mean([m.repeated_ngram_fraction(t, 3) for t in texts]),
        "self_repeat": _mean([m.repeats_self(t, c) for t, c in zip(texts, contexts, strict=True)]),
        "user_copy": _mean([m.copies_user(t, c) for t, c in zip(texts, contexts, strict=True)]),
        "failure_rate": _mean([bool(x) for x in labels]),
        "fallback": _mean([g.fallback for g in replies]),
    }
    if with_reference:
        bleu_stats = m.bleu_statistics(texts, refs)
        out["bleu"] = MetricData(lambda idx: m.bleu_from_statistics(bleu_stats[idx]))
        out["meteor"] = _mean([m.meteor(t, r, wordnet) for t, r in zip(texts, refs, strict=True)])
        out["f1"] = _mean([m.unigram_f1(t, r) for t, r in zip(texts, refs, strict=True)])
    else:
        out |= {"bleu": MetricData(None), "meteor": MetricData(None), "f1": MetricData(None)}
    return SettingScores(metrics=out, coherence=coherence, labels=labels)


def compare(
    scores: SettingScores, reference: SettingScores | None, rounds: int, seed: int = 0
) -> tuple[dict[str, float], dict[str, list[float]], dict[str, dict]]:
    """Per metric: value, [low, high] bootstrap interval, and the paired difference to the reference."""
    n = len(scores.labels)
    values, intervals, diffs = {}, {}, {}
    for key, data in scores.metrics.items():
        if data.statistic is None or n == 0:
            continue
        interval = bootstrap_interval(data.statistic, n, rounds=rounds, seed=seed)
        values[key], intervals[key] = interval.estimate, [interval.low, interval.high]
        other = reference.metrics.get(key) if reference is not None else None
        if other is not None and other.statistic is not None:
            d = paired_bootstrap(other.statistic, data.statistic, n, rounds=rounds, seed=seed)
            diffs[key] = {"difference": d.difference, "low": d.low, "high": d.high, "p_value": d.p_value}
    return values, intervals, diffs


def verdict(key: str, diff: dict | None) -> str:
    """``better``/``worse`` when the paired interval excludes 0 (by the metric's direction), else ``same``."""
    info = METRIC_INFO.get(key)
    if not diff or info is None or info.higher_is_better is None:
        return "same"
    if diff["low"] > 0:
        return "better" if info.higher_is_better else "worse"
    if diff["high"] < 0:
        return "worse" if info.higher_is_better else "better"
    return "same"


def summarise_turns(per_turn: Sequence[Sequence[float]], fn: Callable = np.nanmean) -> list[float | None]:
    """Mean of each turn index's values (None where a turn had no replies)."""
    return [float(fn(v)) if len(v) and not np.all(np.isnan(v)) else None for v in per_turn]
