"""Hits@1 of 20: does the model rank the recorded reply first among its candidates (PersonaChat, ParlAI)?

Each candidate is scored by the mean per-token negative log-likelihood of it (and its end-of-turn
token) as the reply to the context, built by the shared dialogue format. The mean, not the sum:
a summed likelihood prefers the shortest candidate whatever it says. The gold reply is the last
candidate (the loaders' convention); only examples with exactly ``n_candidates`` candidates count,
so the number is the "of 20" the ConvAI2 leaderboard reports.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from chatbot.format import IGNORE_INDEX, TokenIds, build_inputs, encode_text, encode_texts, persona_text
from chatbot.perplexity import sequence_nll

N_CANDIDATES = 20


@dataclass(frozen=True)
class HitsResult:
    hits_at_1: float
    examples: int  # contexts that had n_candidates candidates
    n_candidates: int


def candidate_lists(
    dialogues: Sequence, n_candidates: int = N_CANDIDATES
) -> list[tuple[list[str], list[str], list[str]]]:
    """``(context, candidates, persona)`` for every utterance with exactly ``n_candidates`` candidates."""
    out = []
    for dialogue in dialogues:
        for turn, candidates in enumerate(dialogue.candidates or []):
            if turn > 0 and len(candidates) == n_candidates:
                out.append((list(dialogue.turns[:turn]), list(candidates), list(dialogue.persona)))
    return out


def mean_nll(model, tokenizer, fmt, context: list[str], replies: list[str], persona: list[str]) -> np.ndarray:
    """Mean per-token NLL of each reply given one context, in one batch. Returns (len(replies),)."""
    ids = TokenIds.from_tokenizer(tokenizer)
    history = encode_texts(tokenizer, list(context))
    persona_ids = encode_text(tokenizer, persona_text(persona)) if persona else None
    inputs = [build_inputs(ids, history, r, fmt, persona=persona_ids) for r in encode_texts(tokenizer, list(replies))]
    totals = sequence_nll(model, [x.input_ids for x in inputs], [x.labels for x in inputs], ids.pad).numpy()
    counts = np.array([sum(label != IGNORE_INDEX for label in x.labels) for x in inputs])
    return totals / np.maximum(counts, 1)


def hits_at_1(loaded, dialogues: Sequence, limit: int | None = None, progress=None) -> HitsResult | None:
    """Hits@1 over the dialogues' candidate lists, or None when the data carries none."""
    items = candidate_lists(dialogues)[:limit]
    if not items:
        return None
    hits = 0
    for context, candidates, persona in progress(items) if progress else items:
        scores = mean_nll(loaded.model, loaded.tokenizer, loaded.format, context, candidates, persona)
        hits += int(np.argmin(scores) == len(candidates) - 1)  # gold is the last candidate
    return HitsResult(hits_at_1=hits / len(items), examples=len(items), n_candidates=N_CANDIDATES)
