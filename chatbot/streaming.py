"""One reply streamed word by word, every word filtered before it is shown (used by :mod:`chatbot.conversation`).

    generate = lambda ids, settings, attempt, cancel: backend.stream(prompt, settings, attempt=attempt, cancel_event=cancel)
    events = StreamedReply(prompt, generate, history=history, settings=settings, filters=filters).events()

yields ``delta`` events for the words that passed, a ``withdraw`` event (with the reason) when the
reply fails, mid-stream or on the whole-reply checks at its end, then the retry's words, and one
``final`` event with the Reply. ``Chatbot.stream_reply`` is the public entry point: it builds the
prompt (or none, for a message it refuses) and the generate function over its backend.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence

from chatbot.errors import ChatbotError
from chatbot.filters import FilterSettings, ReplyFilter
from chatbot.generation import Candidate, GenerationStream
from chatbot.replies import (
    DELTA,
    FINAL,
    WITHDRAW,
    Prompt,
    Reply,
    StreamEvent,
    choose_fallback,
    filter_context,
    mark_rejected,
    retry_settings,
)
from chatbot.sampling import SamplingSettings

# (prompt ids, settings, attempt, cancel) -> a stream of one candidate's text (a GenerationStream)
StreamGenerate = Callable[[list[int], SamplingSettings, int, threading.Event], GenerationStream]


class StreamedReply:
    """The state of one streamed reply: attempts, shown words, candidates and timings."""

    def __init__(
        self,
        prompt: Prompt | None,
        generate: StreamGenerate,
        *,
        history: Sequence[str],
        settings: SamplingSettings,
        filters: FilterSettings,
        cancel: threading.Event | None = None,
    ):
        """``prompt``: the model input for ``history``, or None when the user's message is refused
        (``filters.user_profanity == "refuse"``): the reply is then the refusal, without generating."""
        self.prompt, self.generate = prompt, generate
        self.history, self.settings, self.filters = list(history), settings, filters
        self.cancel = cancel or threading.Event()
        self.check = ReplyFilter(filters)
        self.context = filter_context(self.history)
        self.start = time.perf_counter()
        self.reply = Reply(text="", settings=settings.identity)
        if not self.history:
            raise ChatbotError("nothing to reply to: the history is empty")
        self.reply.user_profanity = self.check.user_has_profanity(self.history[-1])
        if prompt is None:
            self.reply.attempts = 0
        else:
            self.reply.prompt_tokens = len(prompt.input_ids)
            self.reply.kept_utterances, self.reply.truncated = prompt.kept_utterances, prompt.truncated

    def events(self) -> Iterator[StreamEvent]:
        settings = self.settings
        for attempt in (1, 2) if self.prompt is not None else ():
            if attempt == 2:
                # one candidate again (it streams), but a fresh draw: the retry's seed and strategy
                settings = retry_settings(self.settings, 1).replace(num_candidates=1)
            self.reply.attempts = attempt
            shown: list[str] = []
            reason = yield from self._attempt(settings, attempt, shown)
            shown_text = "".join(shown)
            if self.cancel.is_set():
                yield StreamEvent(FINAL, self._finish(shown_text.strip(), cancelled=True))
                return
            if reason is None:
                text = self.reply.candidates[-1].text
                if text.startswith(shown_text) and text[len(shown_text) :].strip():
                    yield StreamEvent(DELTA, text[len(shown_text) :])  # the last word, checked with the whole
                self.reply.chosen = len(self.reply.candidates) - 1
                yield StreamEvent(FINAL, self._finish(text))
                return
            yield StreamEvent(WITHDRAW, reason)
        if self.prompt is None:  # refused: a profane message under user_profanity=refuse
            fallback = self.filters.refuse_reply
        else:
            fallback = choose_fallback(self.filters.fallback_replies, self.context.recent_bot)
        yield StreamEvent(FINAL, self._finish(fallback, fallback=True))

    def _attempt(self, settings: SamplingSettings, attempt: int, shown: list[str]):
        """Stream one candidate, appending the words shown to ``shown``; returns the rejection reason or None."""
        stream = self.generate(self.prompt.input_ids, settings, attempt, self.cancel)
        pending, reason, filter_s = "", None, 0.0
        pieces = iter(stream)
        try:
            for piece in pieces:
                pending += piece
                cut = max(pending.rfind(" "), pending.rfind("\n"))
                if cut < 0:
                    continue  # no finished word yet
                ready, pending = pending[: cut + 1], pending[cut + 1 :]
                if not shown:
                    ready = ready.lstrip()
                if not ready:
                    continue
                t0 = time.perf_counter()
                so_far = "".join(shown)  # checked word by word as it was shown
                reason = self.check.check_partial(so_far + ready, checked=len(so_far))
                filter_s += time.perf_counter() - t0
                if reason:
                    stream.cancel()  # this attempt is over; the user's cancel flag stays clear
                    break
                shown.append(ready)
                yield StreamEvent(DELTA, ready)
        finally:
            pieces.close()  # joins the generating thread
        return self._record(stream, reason, filter_s)

    def _record(self, stream: GenerationStream, reason: str | None, filter_s: float) -> str | None:
        candidate = stream.result
        self.reply.timings.generation_ms += stream.seconds * 1000
        self.reply.timings.new_tokens += stream.new_tokens
        if candidate is None:  # cancelled before the first token, or stopped by a failing word
            if reason is None:
                return None if self.cancel.is_set() else "empty"
            candidate = Candidate(text="", attempt=stream.attempt)
        t0 = time.perf_counter()
        if reason is None and not self.cancel.is_set():
            reason = self.check.check(candidate.text, self.context, candidate.raw_text)
        self.reply.timings.filter_ms += (filter_s + time.perf_counter() - t0) * 1000
        mark_rejected(candidate, reason, self.check)
        self.reply.candidates.append(candidate)
        return reason

    def _finish(self, text: str, fallback: bool = False, cancelled: bool = False) -> Reply:
        self.reply.text, self.reply.fallback, self.reply.cancelled = text, fallback, cancelled
        self.reply.timings.total_ms = (time.perf_counter() - self.start) * 1000
        return self.reply
