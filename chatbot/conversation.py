"""The conversation manager: history and persona in, one filtered, ranked reply out.

API (the terminal chat, the web app and the evaluator use only this)::

    from chatbot.conversation import Chatbot, Conversation, Reply, StreamEvent

    bot = Chatbot.load("runs/small")               # None: the embedded default model
    conv = bot.new_conversation(persona=["i love hiking."])
    reply = conv.reply("hi, how are you?")         # Reply: .text, .candidates (with .rejected reasons), .timings
    for event in conv.stream("what do you do?", cancel=stop_event):   # StreamEvent(kind, value)
        ...                                        # "delta" text / "withdraw" reason / "final" Reply
    conv.save("chats.jsonl")                       # {"persona": [...], "turns": [...]}, what training reads
    bot.reply_batch([["hi"], ["where are you from?"]], settings)       # one Reply per context, batched

Stateless forms take the history (oldest first, the user's message last): ``bot.generate_reply``,
``bot.stream_reply``. ``bot.reply(conv, text)`` and ``bot.stream(conv, text)`` are the same as the
conversation's own methods. The reply values and the pure helpers live in :mod:`chatbot.replies`,
the word-by-word streaming in :mod:`chatbot.streaming`; import them from here.

How a reply is made: the last ``max_history`` utterances (default 5) that fit the model's token
budget, less ``max_new_tokens``, go through :func:`chatbot.format.build_inputs` (or
``build_plain_inputs`` for a plain causal LM, with the few-shot ``examples`` given at load
placed first). Typed text is always plain text, so a user who types
``<|bot|>`` cannot inject a speaker token. ``num_candidates`` replies come from one batched call;
the filters (:mod:`chatbot.filters`) drop the bad ones, the rest are ranked by the ``reranker``
setting (:mod:`chatbot.rerankers`; its neutral ``logprob`` is length-normalised log-probability),
every candidate keeping all its scores. If all fail, one retry with ``retry_multiplier`` times
more candidates (a greedy setting retries by sampling with the default preset, since greedy would
repeat itself); if those fail too, a safe fallback reply is shown. Nothing unfiltered is ever shown.

Streaming (one candidate, not beam search): every finished word is checked (profanity, length,
loops) before it is shown; a reply that fails, mid-stream or on the whole-reply checks at its end
(echo, repetition), is withdrawn (a ``withdraw`` event with the reason) and regenerated; the
``final`` event carries the Reply whose text replaces what was streamed. With several candidates
the chosen reply appears once, ranked (one ``delta`` with the whole text, then ``final``).
Cancelling (``cancel.set()``) stops generation within one token; the words shown so far stay in
the history as the bot's turn and the Reply has ``cancelled=True``.

Profanity in the user's message (``FilterSettings.user_profanity``), a deliberate choice:
``mask`` (default) keeps the user's words in the transcript but shows the model ``****`` in their
place, so the model is not primed to continue in kind and fewer candidates need rejecting;
``keep`` shows the model the text as typed (the reply filter still blocks a profane reply);
``refuse`` answers with ``refuse_reply`` without generating. Either way ``Reply.user_profanity``
is set, so a UI can say so.
"""

# Over 400 lines on purpose: the batched, streamed and served reply paths share the Chatbot's prompt
# building, scoring and ranking, and this docstring is the manager's specification.

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from chatbot.backends.base import UNRANKED_NOTE, ChatPrompt
from chatbot.backends.local import LocalBackend
from chatbot.backends.prompts import chat_messages
from chatbot.checkpoint import LoadedModel, load_chatbot
from chatbot.dialogues import conversation_record, load_conversations, save_conversations
from chatbot.errors import ChatbotError, SettingsError
from chatbot.filters import FilterSettings, ReplyFilter
from chatbot.format import build_inputs, build_plain_inputs, encode_text, encode_texts, is_user_turn, persona_text
from chatbot.generation import Candidate, stop_token_ids
from chatbot.replies import (
    DELTA,
    FINAL,
    WITHDRAW,
    Prompt,
    Reply,
    StreamEvent,
    Timings,
    add_candidates,
    choose_fallback,
    filter_context,
    retry_settings,
)
from chatbot.rerankers import CandidateScorer, RerankConfig, coherence_unavailable_note
from chatbot.sampling import DEFAULT_PRESET, PRESETS, SamplingSettings
from chatbot.streaming import StreamedReply

__all__ = [
    "DELTA",
    "FINAL",
    "WITHDRAW",
    "Candidate",
    "Chatbot",
    "Conversation",
    "Prompt",
    "Reply",
    "StreamEvent",
    "Timings",
    "conversation_record",
    "load_conversations",
    "load_examples",
    "save_conversations",
]

logger = logging.getLogger(__name__)


# -- conversation files (the JSONL layout of chatbot.dialogues, what training reads) ---------------


def load_examples(path: str | os.PathLike) -> list[list[str]]:
    """Few-shot example exchanges for a plain causal LM: a JSONL file, one ``{"turns": [...]}`` a line."""
    examples = [record["turns"] for record in load_conversations(path) if record["turns"]]
    if not examples:
        raise ChatbotError(f"{path}: no example exchanges; write one {{\"turns\": [...]}} per line")
    return examples


# -- the model side -------------------------------------------------------------------------------


class Chatbot:
    """A loaded model with its default sampling and filter settings; makes replies to histories."""

    def __init__(
        self,
        loaded: LoadedModel,
        sampling: SamplingSettings | None = None,
        filters: FilterSettings | None = None,
        examples: Sequence[Sequence[str]] = (),
        backend=None,
    ):
        self.loaded = loaded
        self.model = loaded.model
        self.tokenizer = loaded.tokenizer
        self.dialogue = loaded.is_dialogue_model
        self.ids = loaded.ids  # None for a plain causal LM
        self.format = loaded.format
        self.sampling = sampling or PRESETS[DEFAULT_PRESET]
        saved = loaded.settings.filters if loaded.settings is not None else None
        self.filters = filters or FilterSettings.from_dict(saved, strict=False)
        self.stop_ids = stop_token_ids(self.tokenizer, self.dialogue)
        self.pad_id = self.ids.pad if self.ids is not None else self.tokenizer.pad_token_id
        if self.pad_id is None:
            self.pad_id = self.tokenizer.eos_token_id
        # where candidates come from: this process's model, or a server (chatbot.backends.openai)
        self.backend = backend or LocalBackend(
            self.model, self.tokenizer, stop_ids=self.stop_ids, pad_id=self.pad_id, model_name=loaded.path
        )
        # few-shot examples (a plain causal LM only), encoded once: oldest first, each a list of turns
        if examples and self.dialogue:
            logger.warning("%s is a dialogue model: few-shot examples are for plain causal LMs; ignored", self.name)
        self.examples = self.encode_examples(examples)
        # MMI's "no context": the bot's speaker token alone (end-of-text, the turn separator, for a plain LM);
        # a server backend has no model here to score it with, so it refuses mmi itself (refuse_model_rerankers)
        no_context = [self.ids.bot] if self.ids is not None else [self.tokenizer.eos_token_id]
        scoring_model = self.model if self.backend.has_logprobs else None
        self.scorer = CandidateScorer(scoring_model, no_context_prompt=no_context, pad_id=self.pad_id)

    @classmethod
    def load(
        cls,
        model: str | os.PathLike | None = None,
        *,
        device: str | None = None,
        sampling: SamplingSettings | None = None,
        filters: FilterSettings | None = None,
        examples: Sequence[Sequence[str]] = (),
    ) -> Chatbot:
        """Load a checkpoint folder or hub id (None: the embedded default); ModelLoadError if it cannot."""
        return cls(load_chatbot(model, device=device), sampling=sampling, filters=filters, examples=examples)

    @property
    def name(self) -> str:
        return self.loaded.path

    @property
    def persona_trained(self) -> bool:
        return bool(self.loaded.settings and self.loaded.settings.persona_trained)

    def new_conversation(self, persona: str | Sequence[str] | None = None) -> Conversation:
        return Conversation(self, persona=persona)

    def reply(self, conversation: Conversation, text: str, settings: SamplingSettings | None = None) -> Reply:
        return conversation.reply(text, settings)

    def stream(
        self,
        conversation: Conversation,
        text: str,
        settings: SamplingSettings | None = None,
        cancel: threading.Event | None = None,
    ) -> Iterator[StreamEvent]:
        return conversation.stream(text, settings, cancel=cancel)

    # -- building the model input --

    def model_text(self, history: Sequence[str], filters: FilterSettings) -> list[str]:
        """The history as the model sees it: user utterances masked when ``user_profanity`` is mask,
        and special-token text neutralised where a server would read it as tokens (see the backend).
        """
        history = list(history)
        if filters.user_profanity == "mask" and filters.profanity:
            checker = ReplyFilter(filters).profanity
            history = [checker.mask(u) if is_user_turn(i, len(history)) else u for i, u in enumerate(history)]
        return [self.backend.prepare_text(u) for u in history]

    def build_prompt(
        self,
        history: Sequence[str],
        persona: Sequence[str] = (),
        settings: SamplingSettings | None = None,
        filters: FilterSettings | None = None,
        examples: Sequence[Sequence[str]] | None = None,
    ) -> Prompt:
        """The model input for replying to ``history`` (oldest first, the user's message last).

        ``examples``: few-shot exchanges for a plain causal LM (a conversation's own); None uses those given at load.
        """
        settings = settings or self.sampling
        filters = filters or self.filters
        if not history:
            raise ChatbotError("nothing to reply to: the history is empty")
        window = self.model_text(history[-self.format.max_history :], filters)
        encoded = encode_texts(self.tokenizer, window)
        try:
            if self.ids is not None:
                persona_ids = encode_text(self.tokenizer, self.persona_text(persona)) if persona else None
                built = build_inputs(
                    self.ids, encoded, None, self.format, persona=persona_ids, reserve=self.reserve(settings)
                )
                input_ids, kept, truncated = built.input_ids, built.kept_utterances, built.truncated
            else:
                if persona and not self.chat_endpoint:
                    logger.warning("%s is a plain causal LM: the persona is ignored", self.name)
                shots = self.examples if examples is None else self.encode_examples(examples)
                built = build_plain_inputs(encoded, self.tokenizer.eos_token_id, self.format, self.reserve(settings), shots)
                input_ids, kept, truncated = built.input_ids, built.kept_utterances, built.truncated
        except ValueError as exc:
            raise SettingsError(
                f"max_new_tokens={settings.max_new_tokens} leaves no room for the conversation in the model's "
                f"{self.format.max_length}-token window; lower max_new_tokens ({exc})"
            ) from exc
        truncated = truncated or len(history) > len(window)
        if self.chat_endpoint:  # the server applies the chat template to messages; ids only budget them
            messages = chat_messages(window[len(window) - kept :], [self.persona_text(persona)] if persona else ())
            return ChatPrompt(input_ids, kept, truncated, messages=tuple(messages))
        return Prompt(input_ids, kept, truncated)

    def encode_examples(self, examples: Sequence[Sequence[str]]) -> list[list[list[int]]]:
        """Few-shot exchanges as the plain layout takes them (none for a dialogue model, which has no use for them)."""
        return [encode_texts(self.tokenizer, list(turns)) for turns in examples if not self.dialogue]

    @property
    def chat_endpoint(self) -> bool:
        """Whether replies come from a server's chat endpoint (a plain model with a chat template)."""
        return getattr(self.loaded, "mode", None) == "chat"

    def persona_text(self, persona: Sequence[str]) -> str:
        return self.backend.prepare_text(persona_text(persona))

    def reserve(self, settings: SamplingSettings) -> int:
        """Prompt units kept free for the reply: tokens, or characters under a character budget."""
        return settings.max_new_tokens * getattr(self.tokenizer, "chars_per_token", 1)

    def notes(self, settings: SamplingSettings) -> list[str]:
        """What a reply made with ``settings`` must say: settings not applied, ranking without likelihood."""
        notes = self.backend.warnings(settings)
        if settings.num_candidates > 1 and not self.backend.has_logprobs:
            notes.append(UNRANKED_NOTE)
        wanted_coherence = "coherence" in RerankConfig.from_settings(settings).needs()
        if wanted_coherence and self.scorer.embedder_error:  # MiniLM did not load: ranked without it
            notes.append(coherence_unavailable_note(self.scorer.embedder_error))
        return notes

    # -- replies --

    def generate_reply(
        self,
        history: Sequence[str],
        *,
        persona: Sequence[str] = (),
        settings: SamplingSettings | None = None,
        filters: FilterSettings | None = None,
        examples: Sequence[Sequence[str]] | None = None,
    ) -> Reply:
        """The best filtered reply to ``history`` (one batched call, one retry, then the fallback)."""
        return self.reply_batch([history], settings, personas=[persona], filters=filters, examples=examples)[0]

    def reply_batch(
        self,
        contexts: Sequence[Sequence[str]],
        settings: SamplingSettings | None = None,
        *,
        personas: Sequence[Sequence[str]] | None = None,
        filters: FilterSettings | None = None,
        batch_size: int = 16,
        examples: Sequence[Sequence[str]] | None = None,
    ) -> list[Reply]:
        """One reply per context; contexts are left-padded into batches of ``batch_size`` prompts.

        ``examples``: few-shot exchanges for every context (a plain causal LM); None uses those given at load.

        Each batch is one ``generate`` call for every context's ``num_candidates`` candidates; the
        contexts whose candidates all fail share one retry call. Timings are per-reply shares.
        """
        settings = settings or self.sampling
        filters = filters or self.filters
        personas = list(personas) if personas is not None else [()] * len(contexts)
        if len(personas) != len(contexts):
            raise ValueError(f"{len(personas)} personas for {len(contexts)} contexts")
        replies: list[Reply] = []
        for start in range(0, len(contexts), batch_size):
            chunk = slice(start, start + batch_size)
            replies += self._reply_chunk(list(contexts[chunk]), personas[chunk], settings, filters, examples)
        return replies

    def _reply_chunk(
        self, contexts, personas, settings: SamplingSettings, filters: FilterSettings, examples=None
    ) -> list[Reply]:
        start = time.perf_counter()
        reply_filter = ReplyFilter(filters)
        replies = [Reply(text="", settings=settings.identity) for _ in contexts]
        pending: list[int] = []
        prompts: dict[int, Prompt] = {}
        for i, (history, persona) in enumerate(zip(contexts, personas, strict=True)):
            replies[i].user_profanity = reply_filter.user_has_profanity(history[-1]) if history else False
            if reply_filter.refuses(history, replies[i].user_profanity):
                replies[i].attempts = 0  # answered by the fallback below, no generation
                continue
            prompts[i] = self.build_prompt(history, persona, settings, filters, examples)
            replies[i].prompt_tokens = len(prompts[i].input_ids)
            replies[i].kept_utterances, replies[i].truncated = prompts[i].kept_utterances, prompts[i].truncated
            pending.append(i)
        attempt_settings = settings
        for attempt in (1, 2):
            if not pending:
                break
            if attempt == 2:
                attempt_settings = retry_settings(settings, filters.retry_multiplier)
                logger.info(
                    "every candidate failed for %d context(s); retrying with %s",
                    len(pending),
                    attempt_settings.describe(),
                )
            result = self.backend.generate([prompts[i] for i in pending], attempt_settings, attempt=attempt)
            share = result.seconds * 1000 / len(pending)
            self.score_candidates(result.candidates, [contexts[i] for i in pending], attempt_settings)
            pending = [
                i
                for i, candidates in zip(pending, result.candidates, strict=True)
                if not add_candidates(replies[i], candidates, filter_context(contexts[i]), reply_filter, share)
            ]
        for i, reply in enumerate(replies):
            if reply.attempts == 0:  # refused: a profane message under user_profanity=refuse
                reply.fallback, reply.text = True, filters.refuse_reply
            elif reply.chosen is None:
                reply.fallback = True
                reply.text = choose_fallback(filters.fallback_replies, filter_context(contexts[i]).recent_bot)
        total = (time.perf_counter() - start) * 1000 / max(len(contexts), 1)
        notes = self.notes(settings)  # the same settings for every reply of the chunk
        for reply in replies:
            reply.timings.total_ms = total
            reply.notes = list(notes)
        return replies

    def score_candidates(self, groups: list[list[Candidate]], contexts, settings: SamplingSettings) -> None:
        """Every candidate's scores under the settings' reranker; ranking reads them through ``Candidate.score``.

        One candidate has nothing to rank (``RerankConfig.from_settings``): only the free log-probability is scored,
        not mmi's second forward pass or coherence's MiniLM encode (about 70 ms of a 40-token reply on a CPU).
        """
        config = RerankConfig.from_settings(settings)
        scores = self.scorer.score(groups, [history[-1] for history in contexts], config)
        for group, group_scores in zip(groups, scores, strict=True):
            for candidate, candidate_scores in zip(group, group_scores, strict=True):
                candidate.scores = candidate_scores

    def stream_reply(
        self,
        history: Sequence[str],
        *,
        persona: Sequence[str] = (),
        settings: SamplingSettings | None = None,
        filters: FilterSettings | None = None,
        cancel: threading.Event | None = None,
        examples: Sequence[Sequence[str]] | None = None,
    ) -> Iterator[StreamEvent]:
        """Stream a reply word by word (one candidate), each word filtered before it is shown."""
        settings = settings or self.sampling
        filters = filters or self.filters
        if settings.num_candidates > 1 or settings.strategy == "beam":
            reply = self.generate_reply(history, persona=persona, settings=settings, filters=filters, examples=examples)
            yield StreamEvent(DELTA, reply.text)
            yield StreamEvent(FINAL, reply)
            return
        history = list(history)
        # no prompt for a refused profane message (the reply is the refusal) or an empty history (an error)
        refused = ReplyFilter(filters).refuses(history)
        prompt = self.build_prompt(history, persona, settings, filters, examples) if history and not refused else None

        def generate(input_ids, attempt_settings, attempt, cancel_event):  # the whole prompt: a chat one has messages
            return self.backend.stream(prompt, attempt_settings, attempt=attempt, cancel_event=cancel_event)

        streamed = StreamedReply(prompt, generate, history=history, settings=settings, filters=filters, cancel=cancel)
        for event in streamed.events():
            if event.kind == FINAL:
                event.value.notes = self.notes(settings)
            yield event


# -- the conversation -----------------------------------------------------------------------------


class Conversation:
    """One chat: its persona and turns (the user's first, speakers alternating) and the replies made."""

    def __init__(
        self,
        bot: Chatbot,
        persona: str | Sequence[str] | None = None,
        turns: Sequence[str] = (),
        settings: SamplingSettings | None = None,
        examples: Sequence[Sequence[str]] | None = None,
    ):
        self.bot = bot
        self.persona: list[str] = [persona] if isinstance(persona, str) else list(persona or [])
        self.persona = [p.strip() for p in self.persona if p.strip()]
        self.turns: list[str] = list(turns)
        self.settings = settings
        # few-shot exchanges for a plain causal LM (the app's Examples box); None: the bot's, given at load
        self.examples: list[list[str]] | None = None if examples is None else [list(e) for e in examples]
        self.replies: list[Reply] = []

    def _add_user(self, text: str) -> None:
        text = text.strip()
        if not text:
            raise ChatbotError("empty message: type something to reply to")
        if self.turns and is_user_turn(len(self.turns) - 1):
            # the user's last message got no reply (a cancelled stream): consecutive messages of one
            # speaker form one turn, as in the chitchat data
            self.turns[-1] = f"{self.turns[-1]}\n{text}"
        else:
            self.turns.append(text)

    def _add_bot(self, reply: Reply) -> None:
        self.replies.append(reply)
        if reply.text:
            self.turns.append(reply.text)

    def reply(self, text: str, settings: SamplingSettings | None = None) -> Reply:
        """Add the user's message, reply to it, and add the reply."""
        self._add_user(text)
        reply = self.bot.generate_reply(
            self.turns, persona=self.persona, settings=settings or self.settings, examples=self.examples
        )
        self._add_bot(reply)
        return reply

    def stream(
        self, text: str, settings: SamplingSettings | None = None, cancel: threading.Event | None = None
    ) -> Iterator[StreamEvent]:
        """Like ``reply``, as events; the reply joins the history when the ``final`` event is produced."""
        self._add_user(text)
        events = self.bot.stream_reply(
            self.turns, persona=self.persona, settings=settings or self.settings, cancel=cancel, examples=self.examples
        )
        for event in events:
            if event.kind == FINAL:
                self._add_bot(event.value)
            yield event

    def reset(self) -> None:
        """Forget the turns; the persona stays."""
        self.turns.clear()
        self.replies.clear()

    def to_record(self) -> dict[str, list[str]]:
        return conversation_record(self.persona, self.turns)

    def save(self, path: str | os.PathLike, append: bool = True) -> Path:
        """Append this conversation as one JSONL line (the layout ``chatbot train`` reads)."""
        return save_conversations([self.to_record()], path, append=append)

    @classmethod
    def from_record(cls, bot: Chatbot, record: dict) -> Conversation:
        return cls(bot, persona=record.get("persona", []), turns=record["turns"])

    @classmethod
    def load(cls, bot: Chatbot, path: str | os.PathLike, index: int = -1) -> Conversation:
        """Resume the conversation at ``index`` (default: the last) of a JSONL file."""
        records = load_conversations(path)
        if not records:
            raise ChatbotError(f"{path}: no conversations in the file")
        try:
            return cls.from_record(bot, records[index])
        except IndexError as exc:
            raise ChatbotError(f"{path}: has {len(records)} conversations, no number {index}") from exc
