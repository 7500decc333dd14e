"""The seam between the conversation manager and whatever generates text.

A backend takes prompts built by :mod:`chatbot.format` and a ``SamplingSettings`` and returns, for
each prompt, ``num_candidates`` :class:`Completion` values: the text, its token count, its
log-probability when the backend knows it, and why it ended. Two backends exist:

- ``local`` (:mod:`chatbot.backends.local`): the model in this process, through transformers' ``generate``;
- ``openai`` (:mod:`chatbot.backends.openai`): any OpenAI-compatible server over HTTP.

The conversation manager turns completions into :class:`chatbot.generation.Candidate` values and
filters, ranks and streams them the same way whichever backend made them.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from chatbot.errors import ChatbotError
from chatbot.generation import Candidate, GenerationResult
from chatbot.replies import Prompt

STOP, LENGTH, CANCELLED = "stop", "length", "cancelled"

# What a reply says when its candidates could not be ranked by likelihood (shown in "why this reply").
UNRANKED_NOTE = (
    "not ranked by likelihood: the server returns no log-probabilities, so the first candidate "
    "that passed the filters (in the order they were sampled) was chosen"
)


class BackendError(ChatbotError):
    """A serving engine that cannot be reached, refused a request, or answered something unreadable."""


@dataclass
class Completion:
    """One generated reply as a backend returns it."""

    text: str
    n_tokens: int  # generated tokens, end-of-turn included when the backend counts it
    logprob: float | None = None  # sum of the tokens' log-probabilities (nats); None when not returned
    finish_reason: str = STOP  # stop (end of turn or a stop string), length (max_new_tokens) or cancelled
    token_ids: tuple[int, ...] = ()
    raw_text: str | None = None  # with special tokens kept, when the backend has them

    def to_candidate(self, attempt: int = 1) -> Candidate:
        """A Candidate for the filters and the ranking; no log-probability scores 0, so order decides."""
        return Candidate(
            text=self.text,
            raw_text=self.text if self.raw_text is None else self.raw_text,
            token_ids=self.token_ids,
            logprob=0.0 if self.logprob is None else self.logprob,
            n_tokens=self.n_tokens,
            finished=self.finish_reason == STOP,
            attempt=attempt,
        )


@dataclass(frozen=True)
class ChatPrompt(Prompt):
    """A prompt for a chat endpoint: OpenAI messages, with ``input_ids`` kept for the token budget."""

    messages: tuple[dict[str, str], ...] = ()


class TextStream(Protocol):
    """One reply streamed as text pieces; what :class:`chatbot.generation.GenerationStream` provides."""

    result: Candidate | None  # the finished candidate once iteration is over (None: nothing generated)
    seconds: float
    new_tokens: int
    attempt: int

    def __iter__(self) -> Iterator[str]: ...

    def cancel(self) -> None: ...

    @property
    def cancelled(self) -> bool: ...


class Backend(Protocol):
    """What the conversation manager needs from a text generator."""

    name: str  # "local" or "openai"
    has_logprobs: bool  # False: candidates are not ranked by likelihood (see UNRANKED_NOTE)

    def describe(self) -> dict[str, str]:
        """backend, server_kind, model and a one-line label, for reports and the "why this reply" view."""
        ...

    def prepare_text(self, text: str) -> str:
        """An utterance as it must be encoded for this backend (special-token text neutralised if needed)."""
        ...

    def warnings(self, settings) -> list[str]:
        """Settings this backend will not apply (only when the user allowed that); recorded with the reply."""
        ...

    def generate(self, prompts: Sequence[Prompt], settings, *, attempt: int = 1) -> GenerationResult:
        """``settings.num_candidates`` candidates for every prompt (``GenerationResult.candidates[prompt]``)."""
        ...

    def stream(
        self, prompt: Prompt, settings, *, attempt: int = 1, cancel_event: threading.Event | None = None
    ) -> TextStream:
        """One candidate as a cancellable stream of text pieces."""
        ...
