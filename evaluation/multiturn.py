"""Coherence across turns: the bot talks with the recorded partner of a test dialogue, turn after turn.

The partner's utterances (even indices) are replayed from the data; the bot's own replies, not
the recorded ones, become its history, so errors compound as they would in a real chat. Every
dialogue advances one turn per batched call. Per turn index we keep coherence, off-topic rate,
self-repetition (the reply repeats one of the bot's earlier replies in this conversation),
repeated 3-grams and length, so a plot shows whether a setting decays over a conversation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from chatbot.embeddings import Embedder
from evaluation import metrics as m
from evaluation.coherence import CoherenceConfig, coherence_scores
from evaluation.runner import Example, Generated, ReplySource

TURN_METRICS = ("coherence", "off_topic", "self_repeat", "repeated_3gram", "length")


@dataclass
class MultiTurnConfig:
    """How many conversations are replayed and for how many bot turns."""

    multiturn_turns: int = field(default=5, metadata={"help": "bot turns per replayed conversation (>= 5 shows decay)"})
    multiturn_dialogues: int = field(default=20, metadata={"help": "test dialogues replayed per preset (0 = skip)"})

    def __post_init__(self):
        if self.multiturn_turns < 1 or self.multiturn_dialogues < 0:
            raise ValueError(
                f"need multiturn_turns >= 1 and multiturn_dialogues >= 0 "
                f"(got {self.multiturn_turns}, {self.multiturn_dialogues})"
            )


@dataclass
class MultiTurnResult:
    """Per turn index (0 = the bot's first reply): mean of each metric and the number of replies."""

    per_turn: dict[str, list[float | None]]
    replies_per_turn: list[int]
    conversations: list[list[str]]  # the transcripts: partner and bot utterances alternating


def pick_dialogues(dialogues: Sequence, config: MultiTurnConfig) -> list[int]:
    """Dialogues long enough for ``multiturn_turns`` bot replies; the longest ones if too few are (indices)."""
    need = 2 * config.multiturn_turns  # partner, bot, ..., partner, bot
    order = sorted(range(len(dialogues)), key=lambda i: -len(dialogues[i].turns))
    long_enough = [i for i in range(len(dialogues)) if len(dialogues[i].turns) >= need]
    chosen = long_enough if len(long_enough) >= config.multiturn_dialogues else order
    return sorted(chosen[: config.multiturn_dialogues])


def run_multiturn(
    dialogues: Sequence,
    source: ReplySource,
    settings,
    embedder: Embedder | None,
    coherence_config: CoherenceConfig,
    config: MultiTurnConfig,
) -> MultiTurnResult:
    """Replay the chosen dialogues' partner turns and let the bot answer each; measure per turn index."""
    chosen = pick_dialogues(dialogues, config)
    histories: dict[int, list[str]] = {d: [] for d in chosen}
    per_turn: dict[str, list[float | None]] = {k: [] for k in TURN_METRICS}
    counts: list[int] = []
    for t in range(config.multiturn_turns):
        partner_index = 2 * t
        active = [d for d in chosen if partner_index < len(dialogues[d].turns)]
        if not active:
            break
        examples = []
        for d in active:
            histories[d].append(dialogues[d].turns[partner_index])
            recorded = dialogues[d].turns[partner_index + 1] if partner_index + 1 < len(dialogues[d].turns) else ""
            examples.append(Example(list(histories[d]), recorded, list(dialogues[d].persona), d, partner_index + 1))
        replies: list[Generated] = source(examples, settings)
        for d, reply in zip(active, replies, strict=True):
            histories[d].append(reply.text)
        values = turn_values(examples, [r.text for r in replies], embedder, coherence_config)
        for key in TURN_METRICS:
            per_turn[key].append(values[key])
        counts.append(len(active))
    return MultiTurnResult(per_turn=per_turn, replies_per_turn=counts, conversations=[histories[d] for d in chosen])


def turn_values(
    examples: Sequence[Example], texts: Sequence[str], embedder: Embedder | None, config: CoherenceConfig
) -> dict[str, float | None]:
    """Means over one turn index's replies."""
    contexts = [e.context for e in examples]
    out: dict[str, float | None] = {
        "self_repeat": float(np.mean([m.repeats_self(t, c) for t, c in zip(texts, contexts, strict=True)])),
        "repeated_3gram": float(np.mean([m.repeated_ngram_fraction(t, 3) for t in texts])),
        "length": float(np.mean([m.word_count(t) for t in texts])),
        "coherence": None,
        "off_topic": None,
    }
    if embedder is not None:
        scores = coherence_scores(embedder, contexts, texts, config)
        out["coherence"] = float(scores.mean())
        out["off_topic"] = float((scores < config.off_topic_threshold).mean())
    return out
