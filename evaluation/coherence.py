"""Coherence: cosine similarity of sentence embeddings between a context and a reply.

The embedder is all-MiniLM-L6-v2, loaded by :mod:`chatbot.embeddings` (``shared_minilm``: one copy
per process, shared with the ``coherence`` reranker). Anything with an ``encode(texts) -> array
(N, D)`` method can be injected instead (tests use :class:`HashingEmbedder`).

What is compared: the reply against the last ``context_utterances`` utterances joined (default 2:
the user's message and the bot turn before it), because a reply should follow the user's message
and may also continue the bot's own thread; the whole window would blur the topic.

Off-topic: cosine below :data:`OFF_TOPIC_THRESHOLD` (0.10). Chosen on chitchat (test split, first
400 bot turns, MiniLM, measured 2026-11-25): recorded human replies score median 0.22 against
their context (10th percentile 0.07), replies shuffled in from other contexts median 0.08 (90th
percentile 0.19). At 0.10, 18.5% of the human replies and 60.5% of the shuffled ones count as
off-topic: chit-chat changes topic often, so this is a rate for comparing settings, not a
verdict on one reply. Run ``python -m evaluation.coherence [SOURCE]`` to recalibrate on other data.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from chatbot.embeddings import Embedder, cosine_rows, shared_minilm
from chatbot.format import reply_positions

logger = logging.getLogger(__name__)

OFF_TOPIC_THRESHOLD = 0.10


@dataclass
class CoherenceConfig:
    """How coherence and the off-topic rate are measured."""

    context_utterances: int = field(
        default=2, metadata={"help": "last context utterances (joined) a reply is compared with"}
    )
    off_topic_threshold: float = field(
        default=OFF_TOPIC_THRESHOLD, metadata={"help": "cosine below which a reply counts as off-topic"}
    )

    def __post_init__(self):
        if self.context_utterances < 1:
            raise ValueError(f"context_utterances must be >= 1 (got {self.context_utterances})")
        if not -1 <= self.off_topic_threshold <= 1:
            raise ValueError(f"off_topic_threshold is a cosine in [-1, 1] (got {self.off_topic_threshold})")


class HashingEmbedder:
    """A tiny deterministic bag-of-words embedder (hashed words): instant, no model, for tests and smoke runs.

    Word overlap stands in for meaning, so its cosines are not comparable with MiniLM's.
    """

    name = "hashing bag-of-words (test embedder)"

    def __init__(self, dim: int = 256):
        self.dim = dim

    def encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim))
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                out[row, int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dim] += 1.0
        return out


def context_text(context: Sequence[str], utterances: int) -> str:
    return " ".join(context[-utterances:])


def coherence_scores(
    embedder: Embedder, contexts: Sequence[Sequence[str]], replies: Sequence[str], config: CoherenceConfig
) -> np.ndarray:
    """Cosine of each reply with its context's last utterances, shape (N,). Empty replies score 0."""
    if len(contexts) != len(replies):
        raise ValueError(f"{len(contexts)} contexts but {len(replies)} replies")
    if not replies:
        return np.zeros(0)
    texts = [context_text(c, config.context_utterances) for c in contexts]
    # embed contexts and replies in one call: one model pass over the batch, shared padding
    vectors = np.asarray(embedder.encode([*texts, *replies]), dtype=float)
    scores = cosine_rows(vectors[: len(texts)], vectors[len(texts) :])
    scores[[not r.strip() for r in replies]] = 0.0
    return scores


def off_topic(scores: np.ndarray, config: CoherenceConfig) -> np.ndarray:
    """1.0 where a reply is off-topic (cosine below the threshold), else 0.0."""
    return (np.asarray(scores) < config.off_topic_threshold).astype(float)


def calibrate(contexts: Sequence[Sequence[str]], replies: Sequence[str], embedder: Embedder, seed: int = 0) -> dict:
    """Cosine quantiles of true (context, reply) pairs and of shuffled pairs, to choose a threshold."""
    config = CoherenceConfig()
    true = coherence_scores(embedder, contexts, replies, config)
    shuffled = list(replies)
    np.random.default_rng(seed).shuffle(shuffled)
    rand = coherence_scores(embedder, contexts, shuffled, config)
    quantiles = [0.1, 0.25, 0.5, 0.75, 0.9]
    return {
        "true_quantiles": dict(zip(quantiles, np.quantile(true, quantiles).round(3).tolist(), strict=True)),
        "random_quantiles": dict(zip(quantiles, np.quantile(rand, quantiles).round(3).tolist(), strict=True)),
        "true_below_threshold": float((true < config.off_topic_threshold).mean()),
        "random_below_threshold": float((rand < config.off_topic_threshold).mean()),
    }


if __name__ == "__main__":  # python -m evaluation.coherence [SOURCE]: recalibrate the threshold
    import json
    import sys

    from training.data import load_dialogues

    dialogues, _ = load_dialogues(sys.argv[1] if len(sys.argv) > 1 else "chitchat", "test")
    pairs = [(d.turns[:i], d.turns[i]) for d in dialogues for i in reply_positions(len(d.turns))][:400]
    print(json.dumps(calibrate([c for c, _ in pairs], [r for _, r in pairs], shared_minilm()), indent=2))
