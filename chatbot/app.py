"""The browser app: chat with the bot, and compare two sampling settings side by side (A/B).

    chatbot serve                                   # embedded default model, http://127.0.0.1:7860
    chatbot serve --model runs/small --port 8000 --auth me:secret --data-dir ./chatbot_data
    python app.py --model runs/small                # the same, from a checkout

The page holds no model logic: every reply comes from the conversation manager
(``chatbot.conversation``), reached through the small adapter section below. This module lays out
the page, keeps each browser session's state (``gr.State``: one :class:`Session` per tab), turns
user errors into one-line ``gr.Error`` messages, and stores A/B votes (``chatbot.votes``) and
ranks settings (``chatbot.leaderboard``).
"""

from __future__ import annotations

import argparse
import functools
import inspect
import json
import logging
import os
import random
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no network calls home, before gradio is imported

import gradio as gr  # noqa: E402

from chatbot import conversation as cm  # noqa: E402
from chatbot.errors import ChatbotError  # noqa: E402
from chatbot.leaderboard import (  # noqa: E402
    TABLE_HEADERS,
    comparisons_from_votes,
    leaderboard,
    preset_names,
    short_name,
    table_rows,
)
from chatbot.sampling import DEFAULT_PRESET, PRESETS, SamplingSettings, load_presets  # noqa: E402
from chatbot.votes import Vote, VoteStore  # noqa: E402

logger = logging.getLogger(__name__)

APP_NAME = "gpt2-dialogue-chatbot"
MAX_MESSAGE_CHARS = 1000  # longer messages are cut: the model sees ~256 tokens of context anyway
DEFAULT_CONCURRENCY = 2  # generations at once; the rest wait in the queue (CPU-bound, 2 cores here)
DEFAULT_MODEL_LABEL = "(embedded default model)"


def default_data_dir() -> Path:
    """Where votes and saved conversations go unless --data-dir says otherwise."""
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


@dataclass
class AppConfig:
    """What ``chatbot serve`` configures; ``build_app`` takes one."""

    model: str | None = None  # None: the embedded default model
    data_dir: Path = field(default_factory=default_data_dir)
    presets: dict[str, SamplingSettings] = field(default_factory=lambda: dict(PRESETS))
    max_message_chars: int = MAX_MESSAGE_CHARS
    concurrency: int = DEFAULT_CONCURRENCY
    max_models: int = 2  # checkpoints kept loaded at once across sessions (memory bound)
    bootstrap_rounds: int = 200
    queue_size: int = 64  # requests waiting beyond this are refused with 'queue full'


# ---------------------------------------------------------------------------------------------
# Adapter: the only code that talks to the conversation manager (#4). One function per action.
# ---------------------------------------------------------------------------------------------


def load_bot(name: str | None) -> cm.Chatbot:
    """A conversation manager for a checkpoint folder or hub id (None: the embedded default)."""
    return cm.Chatbot.load(name)


def persona_lines(text: str | None) -> list[str]:
    """The persona box holds one fact per line."""
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


def chat_conversation(bot: cm.Chatbot, current: cm.Conversation | None, persona: str) -> cm.Conversation:
    """The session's conversation on ``bot``: the same turns, moved over after a model switch."""
    if current is None or current.bot is not bot:
        turns = current.turns if current is not None else ()
        current = cm.Conversation(bot, turns=turns)
    current.persona = persona_lines(persona)
    return current


def stream_chat(conversation: cm.Conversation, text: str, settings: SamplingSettings, cancel: threading.Event):
    """Stream events of the reply to ``text``; the conversation records both turns."""
    return conversation.stream(text, settings, cancel=cancel)


def stream_ab(bot: cm.Chatbot, turns: list[str], persona: str, settings: SamplingSettings, cancel: threading.Event):
    """Stream events of one A/B side's reply to the shared ``turns`` (the user's message last)."""
    return bot.stream_reply(turns, persona=persona_lines(persona), settings=settings, cancel=cancel)


def drop_last_exchange(conversation: cm.Conversation) -> str | None:
    """Remove the last user message and the reply to it; returns the message (None: nothing to undo)."""
    turns = conversation.turns
    if not turns:
        return None
    if len(turns) % 2 == 0:  # the last turn is the bot's
        turns.pop()
        if conversation.replies:
            conversation.replies.pop()
    return turns.pop()


def save_chat(conversation: cm.Conversation, path: Path) -> Path:
    return conversation.save(path, append=False)


def load_chat(bot: cm.Chatbot, path: str) -> cm.Conversation:
    return cm.Conversation.load(bot, path)


# ---------------------------------------------------------------------------------------------
# Models shared by all sessions, loaded once each
# ---------------------------------------------------------------------------------------------


class ModelRegistry:
    """Loaded conversation managers by model name, at most ``capacity`` at once (least recently used go)."""

    def __init__(self, capacity: int = 2, loader: Callable[[str | None], cm.Chatbot] = load_bot):
        self.capacity = max(1, capacity)
        self._loader = loader
        self._bots: OrderedDict[str, object] = OrderedDict()
        self._lock = threading.Lock()  # one load at a time: two sessions asking for one model load it once

    def get(self, name: str | None):
        key = name or ""
        with self._lock:
            if key in self._bots:
                self._bots.move_to_end(key)
                return self._bots[key]
            bot = self._loader(name)  # raises ChatbotError on a bad folder; nothing cached then
            self._bots[key] = bot
            while len(self._bots) > self.capacity:
                dropped, _ = self._bots.popitem(last=False)
                logger.info("unloaded model %s (keeping %d)", dropped or DEFAULT_MODEL_LABEL, self.capacity)
            return bot


# ---------------------------------------------------------------------------------------------
# Per-session state (one per browser tab)
# ---------------------------------------------------------------------------------------------


@dataclass
class ABPair:
    """The two replies to the latest A/B message, their settings, and what the user did with them."""

    reply_a: str
    reply_b: str
    settings_a: SamplingSettings
    settings_b: SamplingSettings
    swapped: bool  # blind mode put B on the left
    blind: bool
    seed: int | None
    persona: str
    voted: str | None = None  # the stored winner, once voted
    continued: str | None = None  # the panel whose reply joined the shared history

    @property
    def open(self) -> bool:
        """Still waiting for the user to pick the reply that continues the conversation."""
        return self.continued is None

    @property
    def revealed(self) -> bool:
        """Settings are shown once the user voted or moved on (blind mode hides them until then)."""
        return not self.blind or self.voted is not None or self.continued is not None

    def panel(self, screen: str) -> str:
        """The panel ("A"/"B") whose reply is shown on screen side "left"/"right"."""
        return ("B" if self.swapped else "A") if screen == "left" else ("A" if self.swapped else "B")

    def reply_of(self, panel: str) -> str:
        return self.reply_a if panel == "A" else self.reply_b

    def settings_of(self, panel: str) -> SamplingSettings:
        return self.settings_a if panel == "A" else self.settings_b


class Session:
    """Everything one browser tab owns; nothing here is shared with another tab.

    A plain class, not a dataclass: gradio serialises a dataclass initial state into the page config.
    """

    def __init__(self, model: str | None = None):
        self.model = model
        self.chat: cm.Conversation | None = None
        self.last_reply: cm.Reply | None = None
        self.ab_turns: list[str] = []  # the shared A/B conversation, the user's turn first
        self.pair: ABPair | None = None  # the latest A/B replies, kept on screen after the choice
        self.cancel = threading.Event()  # Stop sets it; the generation checks it after every token
        self.rng = random.Random()

    def __deepcopy__(self, memo):
        # gr.State deep-copies its initial value for each new tab: a fresh Session is that copy
        return Session(model=self.model)


# ---------------------------------------------------------------------------------------------
# Pure helpers
# ---------------------------------------------------------------------------------------------

# the sampling fields shown as controls, in panel order; the rest come from the chosen preset
CONTROL_FIELDS = (
    "strategy",
    "temperature",
    "top_p",
    "top_k",
    "num_beams",
    "length_penalty",
    "repetition_penalty",
    "no_repeat_ngram_size",
    "max_new_tokens",
    "num_candidates",
    "seed",
)
WINNER_OF_CHOICE = {"tie": "tie", "both-bad": "both-bad"}  # left/right are mapped through the swap
CANDIDATE_HEADERS = ["", "candidate", "score", "rejected because", "try"]


def clean_message(text: str | None, limit: int) -> tuple[str, str | None]:
    """The message to send and a notice for the user (None: nothing to say). Empty stays empty."""
    text = (text or "").strip()
    if len(text) > limit:
        return text[:limit].rstrip(), f"Your message was cut to its first {limit} characters (it had {len(text)})."
    return text, None


def parse_seed(value) -> int | None:
    """A seed box's value: blank or None is no seed."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        seed = int(float(value))
    except ValueError:
        raise ChatbotError(f"seed must be a whole number >= 0 or blank (got {value!r})") from None
    if seed < 0:
        raise ChatbotError(f"seed must be a whole number >= 0 or blank (got {value})")
    return seed


def settings_from_controls(presets: dict[str, SamplingSettings], preset: str, *values) -> SamplingSettings:
    """Validated settings from a panel: the preset, overridden by every control (CONTROL_FIELDS order)."""
    base = presets.get(preset) or presets[DEFAULT_PRESET]
    changes = dict(zip(CONTROL_FIELDS, values, strict=True))
    changes["seed"] = parse_seed(changes["seed"])
    for name in ("top_k", "num_beams", "no_repeat_ngram_size", "max_new_tokens", "num_candidates"):
        changes[name] = int(changes[name])
    for name in ("temperature", "top_p", "length_penalty", "repetition_penalty"):
        changes[name] = float(changes[name])
    # what the strategy implies, as the CLI does: greedy gives one reply, beams bound the candidates
    if changes["strategy"] == "greedy":
        changes["num_candidates"] = 1
    elif changes["strategy"] == "beam":
        changes["num_candidates"] = min(changes["num_candidates"], changes["num_beams"])
    changes["min_new_tokens"] = min(base.min_new_tokens, changes["max_new_tokens"])
    return base.replace(**changes)


def controls_from_settings(settings: SamplingSettings) -> list:
    """Control values for a panel showing ``settings`` (CONTROL_FIELDS order)."""
    return [getattr(settings, name) for name in CONTROL_FIELDS]


def setting_label(settings: SamplingSettings, presets: dict[str, SamplingSettings]) -> str:
    """The name the leaderboard uses: the preset's ('top-p'), or the nearest preset and what differs."""
    presets_json = {name: json.loads(p.identity) for name, p in presets.items()}
    return short_name(ranking_identity(settings), preset_names(presets), presets_json)


def ranking_identity(settings: SamplingSettings) -> str:
    """The identity a vote is ranked under: the seed is the draw, not the setting, so it is left out."""
    return settings.replace(seed=None).identity


def persona_hint(persona_trained: bool) -> str:
    if persona_trained:
        return "This model was trained with personas: it answers in character."
    return "⚠️ This model was **not trained with personas**: it sees the text, but will likely ignore it."


def model_status(bot: cm.Chatbot) -> str:
    kind = "dialogue checkpoint" if bot.dialogue else "plain causal LM (turns joined by end-of-text)"
    return f"**Model:** `{bot.name}` · {kind} · personas: {'yes' if bot.persona_trained else 'no'}"


def messages(turns: list[str]) -> list[dict]:
    """Chat messages for gr.Chatbot from alternating turns, the user's first."""
    return [{"role": "user" if i % 2 == 0 else "assistant", "content": text} for i, text in enumerate(turns)]


def candidate_rows(reply: cm.Reply | None) -> list[list]:
    """The "why this reply" table: every candidate, the chosen one marked, each rejection's reason."""
    if reply is None:
        return []
    return [
        ["✔" if i == reply.chosen else "", c.text, round(c.score, 3), c.rejected or "", c.attempt]
        for i, c in enumerate(reply.candidates)
    ]


def reply_stats(reply: cm.Reply | None, label: str = "") -> str:
    """One line under the chat: tokens/s of the last reply and how it was chosen."""
    if reply is None:
        return ""
    t = reply.timings
    parts = [f"**{t.tokens_per_s:.0f} tokens/s** ({t.new_tokens} tokens in {t.generation_ms / 1000:.2f} s)"]
    parts.append(f"reply in {t.total_ms / 1000:.2f} s, filters {t.filter_ms:.0f} ms")
    n, bad = len(reply.candidates), len(reply.rejected)
    parts.append(f"{n} candidate{'s' * (n != 1)}, {bad} rejected" + (", 1 retry" if reply.attempts > 1 else ""))
    if label:
        parts.append(label)
    if reply.fallback:
        parts.append("every candidate failed the filters: a safe fallback reply was shown")
    if reply.cancelled:
        parts.append("stopped")
    if reply.truncated:
        parts.append(f"context cut to the last {reply.kept_utterances} utterances")
    return " · ".join(parts)


def render_stream(shown: str, withdrawn: list[str], cursor: bool = True) -> str:
    """A reply being streamed: withdrawn attempts struck through, then the current text."""
    lines = [f"~~{text.strip()}~~ *(withdrawn: {reason}; regenerating)*" for text, reason in withdrawn]
    return "\n\n".join([*lines, shown + (" ▌" if cursor else "")]).strip()


def now_stamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")


def ui_errors(fn):
    """Turn failures into one-line ``gr.Error`` toasts: user errors say what to fix, others are logged."""

    def translate(exc: BaseException) -> gr.Error:
        if isinstance(exc, gr.Error):
            return exc
        if isinstance(exc, ChatbotError):
            return gr.Error(str(exc))
        logger.exception("unexpected error in %s", fn.__name__)
        return gr.Error(f"Something went wrong ({type(exc).__name__}); the server log has the details.")

    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def wrapped_gen(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except Exception as exc:
                raise translate(exc) from None

        return wrapped_gen

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            raise translate(exc) from None

    return wrapped


# ---------------------------------------------------------------------------------------------
# Handlers: what each button does. Methods of one object so tests can call them directly.
# ---------------------------------------------------------------------------------------------


class ChatApp:
    """The app's shared parts (models, vote store, presets) and one method per UI action."""

    def __init__(self, config: AppConfig, registry: ModelRegistry | None = None):
        self.config = config
        self.presets = config.presets
        self.registry = registry or ModelRegistry(config.max_models)
        self.known_models = [config.model or DEFAULT_MODEL_LABEL]
        self._store: VoteStore | None = None
        self._store_lock = threading.Lock()

    @property
    def store(self) -> VoteStore:
        # opened on first use: building the page must not create files
        with self._store_lock:
            if self._store is None:
                self._store = VoteStore.in_folder(self.config.data_dir)
            return self._store

    def new_session(self) -> Session:
        return Session(model=self.config.model)

    def bot(self, session: Session) -> cm.Chatbot:
        return self.registry.get(session.model)

    def settings(self, preset: str, *values) -> SamplingSettings:
        return settings_from_controls(self.presets, preset, *values)

    # -- model ---------------------------------------------------------------------------------

    def page_load(self, session: Session) -> tuple[str, str, str]:
        """Model status and persona hints when a tab opens (the first tab loads the model)."""
        try:
            bot = self.bot(session)
        except ChatbotError as exc:
            # the page still opens; the status says what to fix
            return f"**No model loaded:** {exc}", "", ""
        hint = persona_hint(bot.persona_trained)
        return model_status(bot), hint, hint

    def switch_model(self, session: Session, name: str | None):
        """Load another checkpoint for this tab; a bad folder raises and the current model stays."""
        name = (name or "").strip()
        model = None if name in ("", DEFAULT_MODEL_LABEL) else name
        bot = self.registry.get(model)  # ChatbotError (as gr.Error) leaves session.model untouched
        session.model = model
        label = model or DEFAULT_MODEL_LABEL
        if label not in self.known_models:
            self.known_models.append(label)
        hint = persona_hint(bot.persona_trained)
        gr.Info(f"Switched to {label}")
        return gr.Dropdown(choices=self.known_models, value=label), model_status(bot), hint, hint

    # -- chat tab --------------------------------------------------------------------------------

    def preset_controls(self, preset: str) -> list:
        values = controls_from_settings(self.presets[preset])
        values[-1] = "" if values[-1] is None else str(values[-1])  # the seed box is text: blank = random
        return values

    def _chat_view(self, session: Session, partial: str | None = None):
        turns = list(session.chat.turns) if session.chat else []
        history = messages(turns)
        if partial is not None:
            if len(turns) % 2 == 0 and turns:  # the partial reply is already recorded (final event)
                history[-1]["content"] = partial
            else:
                history.append({"role": "assistant", "content": partial})
        return history

    def _stream_chat(self, session: Session, text: str, persona: str, settings: SamplingSettings):
        """Yield (chat messages, why rows, stats) while the reply streams; records the reply."""
        bot = self.bot(session)
        session.chat = chat_conversation(bot, session.chat, persona)
        shown, withdrawn = "", []
        for kind, value in stream_chat(session.chat, text, settings, session.cancel):
            if kind == cm.DELTA:
                shown += value
            elif kind == cm.WITHDRAW:
                withdrawn.append((shown, value))
                shown = ""
            else:
                session.last_reply = value
                yield (
                    self._chat_view(session),
                    candidate_rows(value),
                    reply_stats(value, setting_label(settings, self.presets)),
                )
                return
            yield self._chat_view(session, render_stream(shown, withdrawn)), gr.skip(), gr.skip()

    def chat_send(self, session: Session, text: str, persona: str, preset: str, *controls):
        """Send a message and stream the reply. Outputs: textbox, chat, why rows, stats, notice."""
        text, notice = clean_message(text, self.config.max_message_chars)
        if not text:
            gr.Warning("Type a message first: an empty message is not sent.")
            yield gr.skip(), gr.skip(), gr.skip(), gr.skip(), "Type a message, then press Enter or Send."
            return
        if notice:
            gr.Warning(notice)
        settings = self.settings(preset, *controls)
        session.cancel.clear()  # a new request: from here on, Stop applies to it
        # show the user's message at once, the reply streams under it
        yield "", [*self._chat_view(session), {"role": "user", "content": text}], gr.skip(), gr.skip(), notice or ""
        for view, rows, stats in self._stream_chat(session, text, persona, settings):
            yield gr.skip(), view, rows, stats, gr.skip()

    def chat_retry(self, session: Session, persona: str, preset: str, *controls):
        """Replace the last reply with a new one to the same message."""
        if session.chat is None or not session.chat.turns:
            gr.Warning("Nothing to retry yet.")
            return
        settings = self.settings(preset, *controls)
        session.cancel.clear()
        text = drop_last_exchange(session.chat)
        yield from self._stream_chat(session, text, persona, settings)

    def chat_undo(self, session: Session):
        """Remove the last message and its reply; the message goes back into the textbox."""
        text = drop_last_exchange(session.chat) if session.chat else None
        session.last_reply = None
        return text or "", self._chat_view(session), [], ""

    def chat_clear(self, session: Session):
        if session.chat is not None:
            session.chat.reset()
        session.last_reply = None
        return [], [], "", ""

    def stop(self, session: Session) -> None:
        """Stop this tab's generation within one token; the words shown so far stay."""
        session.cancel.set()

    def chat_save(self, session: Session):
        """Write the conversation as JSONL into the data folder and offer it for download."""
        if session.chat is None or not session.chat.turns:
            raise gr.Error("Nothing to save yet: chat first.")
        folder = self.config.data_dir / "conversations"
        path = save_chat(session.chat, folder / f"chat-{now_stamp()}-{session.rng.randrange(16**6):06x}.jsonl")
        return gr.update(value=str(path), visible=True), f"Saved to `{path}`"

    def chat_load(self, session: Session, file):
        """Resume the last conversation of an uploaded JSONL file. Outputs: chat, persona, notice."""
        if file is None:
            raise gr.Error("Choose a .jsonl conversation file to load.")
        path = file if isinstance(file, str) else getattr(file, "name", str(file))
        session.chat = load_chat(self.bot(session), path)
        session.last_reply = None
        turns = len(session.chat.turns)
        return (
            self._chat_view(session),
            "\n".join(session.chat.persona),
            f"Loaded {turns} turns from `{Path(path).name}`",
        )

    # -- A/B tab ----------------------------------------------------------------------------------

    def _ab_labels(self, pair: ABPair | None) -> tuple[str, str]:
        if pair is None:
            return "Left reply", "Right reply"
        labels = []
        for screen in ("left", "right"):
            panel = pair.panel(screen)
            if not pair.revealed:
                labels.append(f"{screen.capitalize()} · settings hidden until you vote")
                continue
            label = f"{screen.capitalize()}: {panel} · {setting_label(pair.settings_of(panel), self.presets)}"
            labels.append(label + (" · continues the conversation" if pair.continued == panel else ""))
        return labels[0], labels[1]

    def ab_view(self, session: Session, notice: str = "", left: str | None = None, right: str | None = None):
        """The A/B outputs: chat, left reply, right reply, 4 vote buttons, 2 continue buttons, notice."""
        pair = session.pair
        if pair is not None:
            left = pair.reply_of(pair.panel("left")) if left is None else left
            right = pair.reply_of(pair.panel("right")) if right is None else right
        left_label, right_label = self._ab_labels(pair)
        can_vote = pair is not None and pair.voted is None and pair.open
        can_continue = pair is not None and pair.open
        return (
            messages(session.ab_turns),
            gr.Textbox(value=left or "", label=left_label),
            gr.Textbox(value=right or "", label=right_label),
            *[gr.Button(interactive=can_vote) for _ in range(4)],
            *[gr.Button(interactive=can_continue) for _ in range(2)],
            notice,
        )

    def ab_send(self, session: Session, text: str, persona: str, blind: bool, shared_seed, *panels):
        """One message answered by A and by B, side by side. ``panels``: preset A, controls A, preset B, controls B."""
        text, notice = clean_message(text, self.config.max_message_chars)
        n = 1 + len(CONTROL_FIELDS)
        if not text:
            gr.Warning("Type a message first: an empty message is not sent.")
            yield gr.skip(), *self.ab_view(session, "Type a message, then press Enter or Send.")
            return
        if session.pair is not None and session.pair.open:
            gr.Warning("First choose which reply continues the conversation (vote, or a Continue button).")
            yield gr.skip(), *self.ab_view(session, "Choose which reply continues the conversation first.")
            return
        if notice:
            gr.Warning(notice)
        settings_a, settings_b = self.settings(*panels[:n]), self.settings(*panels[n : 2 * n])
        seed = parse_seed(shared_seed)
        if seed is not None:  # the same draw for both: the replies differ by their settings only
            settings_a, settings_b = settings_a.replace(seed=seed), settings_b.replace(seed=seed)
        swapped = bool(blind) and session.rng.random() < 0.5
        bot = self.bot(session)
        session.pair = None
        session.ab_turns.append(text)
        session.cancel.clear()  # a new request: from here on, Stop applies to it
        replies = {}
        screens = {"A": "right" if swapped else "left", "B": "left" if swapped else "right"}
        shown = {"left": "…", "right": "…"}
        yield "", *self.ab_view(session, notice or "", shown["left"], shown["right"])
        try:
            for panel, settings in (("A", settings_a), ("B", settings_b)):
                streamed, withdrawn = "", []
                for kind, value in stream_ab(bot, session.ab_turns, persona, settings, session.cancel):
                    if kind == cm.DELTA:
                        streamed += value
                    elif kind == cm.WITHDRAW:
                        withdrawn.append((streamed, value))
                        streamed = ""
                    else:
                        replies[panel] = value.text
                        streamed, withdrawn = value.text, []
                    shown[screens[panel]] = render_stream(streamed, withdrawn, cursor=kind != cm.FINAL)
                    yield gr.skip(), *self.ab_view(session, notice or "", shown["left"], shown["right"])
        except BaseException:
            session.ab_turns.pop()  # no half-answered message stays in the shared history
            raise
        session.pair = ABPair(
            reply_a=replies["A"],
            reply_b=replies["B"],
            settings_a=settings_a,
            settings_b=settings_b,
            swapped=swapped,
            blind=bool(blind),
            seed=seed,
            persona=persona or "",
        )
        yield gr.skip(), *self.ab_view(session, "Vote, or pick the reply that continues the conversation.")

    def ab_vote(self, session: Session, choice: str):
        """Store a vote ("left", "right", "tie", "both-bad"). Outputs: the A/B view, then the leaderboard."""
        pair = session.pair
        if pair is None or not pair.open:
            raise gr.Error("Nothing to vote on: send a message first.")
        if pair.voted is not None:
            raise gr.Error("You already voted on these replies.")
        winner = pair.panel(choice) if choice in ("left", "right") else WINNER_OF_CHOICE[choice]
        bot = self.bot(session)
        vote = Vote(
            winner=winner,
            settings_a_id=ranking_identity(pair.settings_a),
            settings_a_json=pair.settings_a.to_json(),
            settings_b_id=ranking_identity(pair.settings_b),
            settings_b_json=pair.settings_b.to_json(),
            reply_a=pair.reply_a,
            reply_b=pair.reply_b,
            conversation=messages(session.ab_turns),
            blind=pair.blind,
            swapped=pair.swapped,
            persona=pair.persona,
            model=bot.name,
            seed=pair.seed,
        )
        self.store.add(vote)
        pair.voted = winner
        if winner in ("A", "B"):  # the better reply continues the conversation
            notice = self._continue_with(session, winner)
        else:
            notice = "Vote stored. Now pick the reply that continues the conversation."
        return *self.ab_view(session, notice), self.leaderboard_rows()

    def _continue_with(self, session: Session, panel: str) -> str:
        pair = session.pair
        session.ab_turns.append(pair.reply_of(panel))
        pair.continued = panel
        voted = "Vote stored. " if pair.voted else ""
        return f"{voted}{panel} ({setting_label(pair.settings_of(panel), self.presets)}) continues the conversation."

    def ab_continue(self, session: Session, screen: str):
        """Continue the shared conversation with the reply on screen side "left" or "right"."""
        if session.pair is None or not session.pair.open:
            raise gr.Error("No replies to choose from: send a message first.")
        return self.ab_view(session, self._continue_with(session, session.pair.panel(screen)))

    def ab_clear(self, session: Session):
        session.ab_turns.clear()
        session.pair = None
        return self.ab_view(session, "")

    # -- votes -----------------------------------------------------------------------------------

    def leaderboard_rows(self) -> list[list]:
        standings = leaderboard(
            comparisons_from_votes(self.store.votes()),
            names=preset_names(self.presets),
            presets_json={name: json.loads(p.identity) for name, p in self.presets.items()},
            rounds=self.config.bootstrap_rounds,
        )
        return table_rows(standings)

    def export_votes(self, fmt: str):
        folder = self.config.data_dir / "exports"
        path = folder / f"votes-{now_stamp()}.{fmt}"
        path = self.store.export_csv(path) if fmt == "csv" else self.store.export_jsonl(path)
        return gr.update(value=str(path), visible=True), f"Exported {self.store.count()} votes to `{path}`"

    def clear_votes(self, confirmed: bool):
        if not confirmed:
            raise gr.Error("Tick 'Yes, delete every vote' first: clearing cannot be undone.")
        deleted = self.store.clear()
        return self.leaderboard_rows(), False, f"Deleted {deleted} votes."


# ---------------------------------------------------------------------------------------------
# Layout
# ---------------------------------------------------------------------------------------------

CSS = """
.reply-box textarea { font-size: 1.02rem; line-height: 1.45; }
.stats { color: var(--body-text-color-subdued); font-size: 0.9rem; }
.notice { color: var(--color-accent); }
footer { display: none !important; }
"""


def launch_style() -> dict:
    """Theme and CSS: gradio 6 takes them in launch(), not in Blocks()."""
    return {"theme": gr.themes.Soft(primary_hue="indigo", secondary_hue="sky"), "css": CSS}


def sampling_panel(presets: dict[str, SamplingSettings], default: str, title: str):
    """A preset dropdown and one control per CONTROL_FIELDS entry; returns (dropdown, controls)."""
    s = presets[default]
    preset = gr.Dropdown(choices=list(presets), value=default, label=f"{title} preset")
    strategy = gr.Radio(["greedy", "beam", "sample"], value=s.strategy, label="Strategy")
    temperature = gr.Slider(0.05, 2.0, value=s.temperature, step=0.05, label="Temperature", info="sampling only")
    top_p = gr.Slider(0.05, 1.0, value=s.top_p, step=0.01, label="Top-p (nucleus)", info="1 = off")
    top_k = gr.Slider(0, 200, value=s.top_k, step=1, label="Top-k", info="0 = off")
    max_new_tokens = gr.Slider(1, 100, value=s.max_new_tokens, step=1, label="Max new tokens")
    num_candidates = gr.Slider(
        1, 16, value=s.num_candidates, step=1, label="Candidates", info="filtered and ranked; 1 streams word by word"
    )
    with gr.Accordion("More settings", open=False):
        num_beams = gr.Slider(1, 10, value=s.num_beams, step=1, label="Beams", info="beam search only")
        length_penalty = gr.Slider(-2.0, 3.0, value=s.length_penalty, step=0.1, label="Length penalty", info="beam")
        repetition_penalty = gr.Slider(0.5, 2.0, value=s.repetition_penalty, step=0.05, label="Repetition penalty")
        no_repeat = gr.Slider(0, 6, value=s.no_repeat_ngram_size, step=1, label="No-repeat n-gram size", info="0 = off")
        seed = gr.Textbox(value="" if s.seed is None else str(s.seed), label="Seed", info="blank = random")
    controls = {
        "strategy": strategy,
        "temperature": temperature,
        "top_p": top_p,
        "top_k": top_k,
        "num_beams": num_beams,
        "length_penalty": length_penalty,
        "repetition_penalty": repetition_penalty,
        "no_repeat_ngram_size": no_repeat,
        "max_new_tokens": max_new_tokens,
        "num_candidates": num_candidates,
        "seed": seed,
    }
    return preset, [controls[name] for name in CONTROL_FIELDS]


def _bind(method, *args, name: str):
    """A handler taking only the session, with ``args`` fixed (gradio counts a handler's parameters)."""

    def handler(session):
        return method(session, *args)

    handler.__name__ = name
    return ui_errors(handler)


def build_app(config: AppConfig | None = None, app: ChatApp | None = None) -> gr.Blocks:
    """The whole page. Models load on first use, so building it is quick and needs no model."""
    config = config or AppConfig()
    app = app or ChatApp(config)
    generate = {"concurrency_id": "generate", "concurrency_limit": config.concurrency}
    # the B panel starts on a contrasting preset, so a first A/B turn already compares something
    default_b = "greedy" if "greedy" in app.presets and DEFAULT_PRESET != "greedy" else DEFAULT_PRESET

    with gr.Blocks(title="GPT-2 dialogue chatbot", analytics_enabled=False) as demo:
        session = gr.State(app.new_session())
        gr.Markdown("## GPT-2 dialogue chatbot")
        with gr.Row(equal_height=True):
            model_box = gr.Dropdown(
                choices=app.known_models,
                value=app.known_models[0],
                allow_custom_value=True,
                show_label=False,
                container=False,
                info=None,
                scale=5,
            )
            load_model = gr.Button("Load model", scale=1, min_width=120)
        model_info = gr.Markdown("Type a checkpoint folder or hub id above to switch models.", elem_classes="stats")

        with gr.Tab("Chat"):
            with gr.Row():
                with gr.Column(scale=3):
                    chat = gr.Chatbot(label="Conversation", height=440, placeholder="Say hi to start chatting.")
                    with gr.Row(equal_height=True):
                        msg = gr.Textbox(
                            placeholder="Type a message and press Enter",
                            show_label=False,
                            scale=6,
                            max_lines=4,
                            autofocus=True,
                        )
                        send = gr.Button("Send", variant="primary", scale=1, min_width=70)
                        stop = gr.Button("Stop", variant="stop", scale=1, min_width=70)
                    notice = gr.Markdown(elem_classes="notice")
                    stats = gr.Markdown(elem_classes="stats")
                    with gr.Accordion("Why this reply: every candidate and the filter that rejected it", open=False):
                        why = gr.Dataframe(
                            headers=CANDIDATE_HEADERS,
                            datatype=["str", "str", "number", "str", "number"],
                            column_widths=["6%", "52%", "10%", "26%", "6%"],
                            interactive=False,
                            wrap=True,
                        )
                with gr.Column(scale=2, min_width=280):
                    persona = gr.Textbox(
                        label="Persona (one fact per line)",
                        lines=2,
                        placeholder="i love hiking.\ni have a dog named max.",
                    )
                    persona_note = gr.Markdown(elem_classes="stats")
                    with gr.Accordion("Sampling", open=True):
                        preset, controls = sampling_panel(app.presets, DEFAULT_PRESET, "Chat")
                    with gr.Accordion("Save or load the conversation (JSONL)", open=False):
                        with gr.Row():
                            save = gr.Button("Save", size="sm")
                            load = gr.UploadButton("Load…", file_types=[".jsonl"], size="sm")
                        saved_file = gr.File(label="Saved conversation", visible=False, interactive=False)

        with gr.Tab("A/B compare"):
            gr.Markdown(
                "Two sampling settings answer every message side by side. Vote for the better reply "
                "(it continues the conversation), or pick one to continue without voting."
            )
            with gr.Row():
                with gr.Column(scale=1, min_width=230):
                    gr.Markdown("### Settings A")
                    preset_a, controls_a = sampling_panel(app.presets, DEFAULT_PRESET, "A")
                with gr.Column(scale=3):
                    ab_chat = gr.Chatbot(
                        label="Shared conversation", height=280, placeholder="One conversation, two bots."
                    )
                    with gr.Row(equal_height=True):
                        ab_msg = gr.Textbox(
                            placeholder="Type a message for A and B", show_label=False, scale=6, max_lines=4
                        )
                        ab_send = gr.Button("Send", variant="primary", scale=1, min_width=70)
                        ab_stop = gr.Button("Stop", variant="stop", scale=1, min_width=70)
                    with gr.Row(equal_height=True):
                        with gr.Column():
                            left = gr.Textbox(label="Left reply", lines=3, interactive=False, elem_classes="reply-box")
                            continue_left = gr.Button("Continue with left", size="sm", interactive=False)
                        with gr.Column():
                            right = gr.Textbox(
                                label="Right reply", lines=3, interactive=False, elem_classes="reply-box"
                            )
                            continue_right = gr.Button("Continue with right", size="sm", interactive=False)
                    with gr.Row():
                        vote_left = gr.Button("← Left better", variant="primary", interactive=False)
                        vote_tie = gr.Button("Tie", interactive=False)
                        vote_bad = gr.Button("Both bad", interactive=False)
                        vote_right = gr.Button("Right better →", variant="primary", interactive=False)
                    ab_notice = gr.Markdown(elem_classes="notice")
                    with gr.Row(equal_height=True):
                        blind = gr.Checkbox(value=True, label="Blind: random sides, settings hidden until you vote")
                        shared_seed = gr.Textbox(value="", label="Shared seed", info="blank = none", min_width=120)
                        ab_new = gr.Button("New conversation", size="sm")
                    ab_persona = gr.Textbox(label="Persona (one fact per line)", lines=1)
                    ab_persona_note = gr.Markdown(elem_classes="stats")
                with gr.Column(scale=1, min_width=230):
                    gr.Markdown("### Settings B")
                    preset_b, controls_b = sampling_panel(app.presets, default_b, "B")
            with gr.Accordion("Leaderboard of the settings compared so far", open=True):
                board = gr.Dataframe(headers=TABLE_HEADERS, interactive=False, wrap=True)
                with gr.Row(equal_height=True):
                    refresh = gr.Button("Refresh", size="sm")
                    export_csv = gr.Button("Export CSV", size="sm")
                    export_jsonl = gr.Button("Export JSONL", size="sm")
                    confirm = gr.Checkbox(value=False, label="Yes, delete every vote")
                    clear_votes = gr.Button("Clear votes", variant="stop", size="sm")
                export_file = gr.File(label="Exported votes", visible=False, interactive=False)
                votes_notice = gr.Markdown(elem_classes="notice")

        # -- wiring: every handler goes through ui_errors; generating ones share one queue limit --
        demo.load(ui_errors(app.page_load), [session], [model_info, persona_note, ab_persona_note], api_name=False)
        # the leaderboard is read when a page opens, not when the app is built: building creates no files
        demo.load(ui_errors(app.leaderboard_rows), None, [board], api_name=False)
        load_model.click(
            ui_errors(app.switch_model),
            [session, model_box],
            [model_box, model_info, persona_note, ab_persona_note],
            api_name="switch_model",
        )

        chat_inputs = [session, msg, persona, preset, *controls]
        chat_outputs = [msg, chat, why, stats, notice]
        gr.on(
            [msg.submit, send.click],
            ui_errors(app.chat_send),
            chat_inputs,
            chat_outputs,
            api_name="chat_send",
            **generate,
        )
        chat.retry(
            ui_errors(app.chat_retry),
            [session, persona, preset, *controls],
            [chat, why, stats],
            api_name="chat_retry",
            **generate,
        )
        chat.undo(ui_errors(app.chat_undo), [session], [msg, chat, why, stats], api_name="chat_undo")
        chat.clear(ui_errors(app.chat_clear), [session], [chat, why, stats, notice], api_name="chat_clear")
        gr.on(
            [stop.click, ab_stop.click], ui_errors(app.stop), [session], None, api_name="stop", concurrency_limit=None
        )
        preset.change(ui_errors(app.preset_controls), [preset], controls, api_name=False)
        save.click(ui_errors(app.chat_save), [session], [saved_file, notice], api_name="chat_save")
        load.upload(ui_errors(app.chat_load), [session, load], [chat, persona, notice], api_name="chat_load")

        ab_outputs = [
            ab_chat,
            left,
            right,
            vote_left,
            vote_tie,
            vote_bad,
            vote_right,
            continue_left,
            continue_right,
            ab_notice,
        ]
        ab_inputs = [session, ab_msg, ab_persona, blind, shared_seed, preset_a, *controls_a, preset_b, *controls_b]
        gr.on(
            [ab_msg.submit, ab_send.click],
            ui_errors(app.ab_send),
            ab_inputs,
            [ab_msg, *ab_outputs],
            api_name="ab_send",
            **generate,
        )
        for button, choice in ((vote_left, "left"), (vote_right, "right"), (vote_tie, "tie"), (vote_bad, "both-bad")):
            api = f"ab_vote_{choice.replace('-', '_')}"
            button.click(_bind(app.ab_vote, choice, name=api), [session], [*ab_outputs, board], api_name=api)
        for button, screen in ((continue_left, "left"), (continue_right, "right")):
            api = f"ab_continue_{screen}"
            button.click(_bind(app.ab_continue, screen, name=api), [session], ab_outputs, api_name=api)
        ab_new.click(ui_errors(app.ab_clear), [session], ab_outputs, api_name="ab_clear")
        preset_a.change(ui_errors(app.preset_controls), [preset_a], controls_a, api_name=False)
        preset_b.change(ui_errors(app.preset_controls), [preset_b], controls_b, api_name=False)

        refresh.click(ui_errors(app.leaderboard_rows), None, [board], api_name="leaderboard")
        export_csv.click(
            ui_errors(functools.partial(app.export_votes, "csv")),
            None,
            [export_file, votes_notice],
            api_name="export_csv",
        )
        export_jsonl.click(
            ui_errors(functools.partial(app.export_votes, "jsonl")),
            None,
            [export_file, votes_notice],
            api_name="export_jsonl",
        )
        clear_votes.click(ui_errors(app.clear_votes), [confirm], [board, confirm, votes_notice], api_name="clear_votes")

    demo.queue(default_concurrency_limit=config.concurrency, max_size=config.queue_size)
    return demo


# ---------------------------------------------------------------------------------------------
# chatbot serve
# ---------------------------------------------------------------------------------------------


def parse_auth(text: str | None) -> tuple[str, str] | None:
    """``user:password`` -> (user, password); the password may contain colons."""
    if not text:
        return None
    user, sep, password = text.partition(":")
    if not sep or not user or not password:
        raise ChatbotError("--auth takes user:password (both non-empty)")
    return user, password


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="chatbot serve",
        description="Start the browser app: chat with the bot and compare sampling settings side by side (A/B).",
    )
    parser.add_argument(
        "--model", default=None, help="chatbot checkpoint folder or hub id (default: the embedded model)"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    parser.add_argument("--port", type=int, default=7860, help="port to listen on")
    parser.add_argument("--share", action="store_true", help="also open a public gradio.live link (off by default)")
    parser.add_argument("--auth", default=None, metavar="USER:PASSWORD", help="require this login")
    parser.add_argument(
        "--data-dir", default=None, help=f"where votes and saved chats go (default: {default_data_dir()})"
    )
    parser.add_argument(
        "--presets-file", default=None, help="JSON file of extra sampling presets {name: {field: value}}"
    )
    parser.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY, help="generations run at once")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """``chatbot serve``: load the model, print the data folder, serve until interrupted."""
    args = parse_args(argv)
    config = AppConfig(
        model=args.model,
        data_dir=Path(args.data_dir).expanduser().resolve() if args.data_dir else default_data_dir(),
        presets=load_presets(args.presets_file),
        concurrency=max(1, args.concurrency),
    )
    auth = parse_auth(args.auth)
    app = ChatApp(config)
    app.registry.get(config.model)  # load now: a bad --model fails with one line, before the server starts
    config.data_dir.mkdir(parents=True, exist_ok=True)
    print(f"Data folder (votes, saved conversations): {config.data_dir}")
    demo = build_app(config, app)
    demo.launch(
        server_name=args.host,
        server_port=args.port,
        share=args.share,
        auth=auth,
        allowed_paths=[str(config.data_dir)],
        **launch_style(),
    )
    return 0


def __getattr__(name: str):
    # ``chatbot.app.demo``: the module-level app with the default configuration, built on first access
    if name == "demo":
        globals()["demo"] = build_app()
        return globals()["demo"]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
