"""Reply values and the pure steps of choosing one; :mod:`chatbot.conversation` re-exports the values.

API::

    from chatbot.conversation import Reply, Timings, StreamEvent, DELTA, WITHDRAW, FINAL

    reply.text, reply.candidates, reply.chosen, reply.fallback, reply.timings.tokens_per_s
    for kind, value in events: ...   # StreamEvent: ("delta", text) / ("withdraw", reason) / ("final", Reply)

The helpers are small pure functions on plain values (the filter context of a history, ranking,
the retry's settings, the fallback choice), so they are tested without a model.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from chatbot.filters import FilterContext, ReplyFilter, similarity, words
from chatbot.format import bot_turns
from chatbot.generation import Candidate
from chatbot.sampling import DEFAULT_PRESET, FIELD, PRESETS, SamplingSettings

DELTA, WITHDRAW, FINAL = "delta", "withdraw", "final"


# -- values handed to the UI and the evaluator ----------------------------------------------------


@dataclass
class Timings:
    """Where a reply's time went (milliseconds); in a batch, each reply gets an equal share."""

    generation_ms: float = 0.0
    filter_ms: float = 0.0
    total_ms: float = 0.0
    new_tokens: int = 0  # tokens generated over every candidate and attempt

    @property
    def tokens_per_s(self) -> float:
        return self.new_tokens / (self.generation_ms / 1000) if self.generation_ms > 0 else 0.0

    def to_dict(self) -> dict[str, float]:
        return {
            "generation_ms": round(self.generation_ms, 2),
            "filter_ms": round(self.filter_ms, 2),
            "total_ms": round(self.total_ms, 2),
            "new_tokens": self.new_tokens,
            "tokens_per_s": round(self.tokens_per_s, 1),
        }


@dataclass
class Reply:
    """A shown reply and how it was chosen: every candidate (with its rejection reason), scores, timings."""

    text: str
    candidates: list[Candidate] = field(default_factory=list)
    chosen: int | None = None  # index into candidates; None when the fallback (or nothing) was shown
    fallback: bool = False
    attempts: int = 1
    timings: Timings = field(default_factory=Timings)
    settings: str = ""  # SamplingSettings.identity of the setting that made it
    prompt_tokens: int = 0
    kept_utterances: int = 0  # context utterances that fit in the model's window
    truncated: bool = False  # some context did not fit
    user_profanity: bool = False
    cancelled: bool = False
    # what the reader must know about how it was made: settings a server did not apply (only with
    # --allow-unsupported), candidates not ranked by likelihood (a server without log-probabilities)
    notes: list[str] = field(default_factory=list)

    @property
    def rejected(self) -> list[Candidate]:
        return [c for c in self.candidates if c.rejected]

    @property
    def score(self) -> float | None:
        return self.candidates[self.chosen].score if self.chosen is not None else None

    @property
    def path(self) -> str:
        """The decoder that made the candidates (chatbot.generation's FAST or GENERATE; a retry's may differ: "+")."""
        return "+".join(sorted({c.path for c in self.candidates}))

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "chosen": self.chosen,
            "fallback": self.fallback,
            "attempts": self.attempts,
            "cancelled": self.cancelled,
            "notes": list(self.notes),
            "user_profanity": self.user_profanity,
            "settings": self.settings,
            "prompt_tokens": self.prompt_tokens,
            "kept_utterances": self.kept_utterances,
            "truncated": self.truncated,
            "timings": self.timings.to_dict() | {"path": self.path},
            "candidates": [c.to_dict() for c in self.candidates],
        }


class StreamEvent(NamedTuple):
    """One step of a streamed reply: ``("delta", text)``, ``("withdraw", reason)`` or ``("final", Reply)``.

    Render it as: on delta append ``value``; on withdraw clear what was shown (and say why);
    on final show ``value.text``, which always replaces the streamed text.
    """

    kind: str
    value: Any

    @property
    def text(self) -> str:
        return self.value.text if self.kind == FINAL else self.value


@dataclass(frozen=True)
class Prompt:
    """A model input built from a conversation, with what the window kept."""

    input_ids: list[int]
    kept_utterances: int
    truncated: bool


# -- pure helpers ---------------------------------------------------------------------------------


def filter_context(history: Sequence[str]) -> FilterContext:
    """The user's last message and the bot's replies before it (oldest first)."""
    if not history:
        return FilterContext()
    return FilterContext(last_user=history[-1], recent_bot=tuple(bot_turns(history)))


def rank(candidates: list[Candidate]) -> list[int]:
    """Indices of the candidates that passed, best first (length-normalised log-prob, then order)."""
    passing = [i for i, c in enumerate(candidates) if not c.rejected]
    return sorted(passing, key=lambda i: -candidates[i].score)


# what a greedy setting's retry takes from the default preset rather than from the setting
_RETRY_OWN = ("strategy", "num_candidates", "seed")


def retry_settings(settings: SamplingSettings, multiplier: int) -> SamplingSettings:
    """More candidates for the one retry; a new seed so a seeded setting does not redraw the same ones."""
    n = max(2, settings.num_candidates * multiplier)
    seed = None if settings.seed is None else settings.seed + 1
    if settings.strategy == "greedy":  # greedy would give the same reply again: sample instead
        # the default preset's sampling and ranking, with everything else the greedy setting chose (its
        # identity's fields: keywords, avoid_words, penalties, lengths); greedy has no reranker of its own
        kept = {k: v for k, v in settings.relevant_fields().items() if k not in _RETRY_OWN}
        return PRESETS[DEFAULT_PRESET].replace(**kept, num_candidates=n, seed=seed)
    if not settings.is_active(FIELD["reranker"]):  # a reranker one candidate did not use ranks no retry either
        settings = settings.replace(reranker=FIELD["reranker"].neutral)
    if settings.strategy == "beam":
        return settings.replace(num_candidates=n, num_beams=max(settings.num_beams, n), seed=seed)
    return settings.replace(num_candidates=n, seed=seed)


def mark_rejected(candidate: Candidate, reason: str | None, reply_filter: ReplyFilter) -> None:
    """Record the reason; a profane candidate keeps its text only masked, so no UI can show it by accident."""
    candidate.rejected = reason
    if reason and reason.startswith("profanity"):
        candidate.text = reply_filter.profanity.mask(candidate.text)
        candidate.raw_text = reply_filter.profanity.mask(candidate.raw_text)


def add_candidates(
    reply: Reply, candidates: list[Candidate], context: FilterContext, reply_filter: ReplyFilter, generation_ms: float
) -> bool:
    """Filter one attempt's candidates into ``reply`` and choose the best; False when every one failed."""
    reply.attempts = max((c.attempt for c in candidates), default=reply.attempts)
    reply.timings.generation_ms += generation_ms
    reply.timings.new_tokens += sum(c.n_tokens for c in candidates)
    start = time.perf_counter()
    for candidate in candidates:
        mark_rejected(candidate, reply_filter.check(candidate.text, context, candidate.raw_text), reply_filter)
    best = rank(candidates)
    reply.timings.filter_ms += (time.perf_counter() - start) * 1000
    offset = len(reply.candidates)
    reply.candidates += candidates
    if not best:
        return False
    reply.chosen = offset + best[0]
    reply.text = reply.candidates[reply.chosen].text
    return True


def choose_fallback(fallbacks: Sequence[str], recent_bot: Sequence[str]) -> str:
    """The first fallback reply that does not repeat what the bot just said."""
    for text in fallbacks:
        if all(similarity(words(text), words(previous)) < 0.9 for previous in recent_bot[-3:]):
            return text
    return fallbacks[0]
