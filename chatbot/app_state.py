"""The web app's state and pure helpers: configuration, per-tab sessions, the models all tabs share,
and the adapter to the conversation manager (#4), the only code here that calls it.

Nothing in this module knows about page layout; :mod:`chatbot.app_actions` turns button presses into
calls on these values and :mod:`chatbot.app` lays out the page.
"""

from __future__ import annotations

import logging
import random
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from chatbot import conversation as cm
from chatbot.arena.leaderboard import preset_names, presets_json, short_name
from chatbot.errors import ChatbotError
from chatbot.sampling import DEFAULT_PRESET, PRESETS, SamplingSettings

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
    checkpoints_dir: Path = Path("runs")  # checkpoints found here are offered in the model box


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


def local_checkpoints(root: Path, limit: int = 20) -> list[str]:
    """Chatbot checkpoint folders under ``root`` (e.g. ./runs), newest first: choices for the model box."""
    if not root.is_dir():
        return []
    found = {p.parent for pattern in ("*/chatbot.json", "*/*/chatbot.json") for p in root.glob(pattern)}
    newest = sorted(found, key=lambda folder: folder.stat().st_mtime, reverse=True)
    return [str(folder) for folder in newest[:limit]]


# ---------------------------------------------------------------------------------------------
# Models shared by all sessions, loaded once each
# ---------------------------------------------------------------------------------------------


class ModelRegistry:
    """Loaded conversation managers by model name, at most ``capacity`` at once (least recently used go)."""

    def __init__(self, capacity: int = 2, loader: Callable[[str | None], cm.Chatbot] = load_bot):
        self.capacity = max(1, capacity)
        self._loader = loader
        self._bots: OrderedDict[str, object] = OrderedDict()
        self._lock = threading.Lock()  # guards the dicts only, never held while a model loads
        self._loading: dict[str, threading.Lock] = {}  # one per name: two tabs asking for it load it once

    def _cached(self, key: str):
        with self._lock:
            if key in self._bots:
                self._bots.move_to_end(key)
                return self._bots[key]
            return None

    def get(self, name: str | None):
        key = name or ""
        bot = self._cached(key)
        if bot is not None:
            return bot
        with self._lock:
            loading = self._loading.setdefault(key, threading.Lock())
        with loading:  # other tabs keep chatting with their loaded models meanwhile
            bot = self._cached(key)  # loaded by another tab while this one waited
            if bot is not None:
                return bot
            bot = self._loader(name)  # raises ChatbotError on a bad folder; nothing cached then
            with self._lock:
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

    def close(self) -> None:
        """The tab is gone (gradio deletes its state): stop anything still generating for it."""
        self.cancel.set()

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
SCREEN_CHOICES = ("left", "right", "tie", "both-bad")  # the vote buttons; left/right map through the swap
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
    return short_name(ranking_identity(settings), preset_names(presets), presets_json(presets))


def ranking_identity(settings: SamplingSettings) -> str:
    """The identity a vote is ranked under: the seed is the draw, not the setting, so it is left out."""
    return settings.replace(seed=None).identity


def persona_hint(persona_trained: bool, dialogue: bool = True) -> str:
    """What the persona box does with the loaded model."""
    if not dialogue:
        return "⚠️ This is a plain language model: it has no persona slot, so the persona is not used."
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


# what the conversation manager did with profanity in the user's message (FilterSettings.user_profanity)
USER_PROFANITY_NOTES = {
    "mask": "your message had profanity: the model saw it masked",
    "keep": "your message had profanity: the model saw it as typed",
    "refuse": "your message had profanity: the bot does not answer it",
}


def reply_stats(reply: cm.Reply | None, label: str = "", user_profanity: str = "mask") -> str:
    """One line under the chat: tokens/s of the last reply and how it was chosen."""
    if reply is None:
        return ""
    t, n, bad = reply.timings, len(reply.candidates), len(reply.rejected)
    # several candidates are generated together: the speed counts every token of every candidate
    over = f" over {n} candidates" if n > 1 else ""
    parts = [f"**{t.tokens_per_s:.0f} tokens/s** ({t.new_tokens} tokens{over} in {t.generation_ms / 1000:.2f} s)"]
    parts.append(f"reply in {t.total_ms / 1000:.2f} s, filters {t.filter_ms:.0f} ms")
    parts.append(f"{n} candidate{'s' * (n != 1)}, {bad} rejected" + (", 1 retry" if reply.attempts > 1 else ""))
    if label:
        parts.append(label)
    if reply.fallback:
        parts.append("every candidate failed the filters: a safe fallback reply was shown")
    if reply.cancelled:
        parts.append("stopped")
    if reply.truncated:
        parts.append(f"context cut to the last {reply.kept_utterances} utterances")
    if reply.user_profanity:
        parts.append(USER_PROFANITY_NOTES.get(user_profanity, "your message had profanity"))
    return " · ".join(parts)


def fold_stream(events):
    """After each stream event, yield ``(kind, value, shown, withdrawn)``: the text shown so far and the
    ``(text, reason)`` of every withdrawn attempt, as the chat and the A/B panels display them."""
    shown, withdrawn = "", []
    for kind, value in events:
        if kind == cm.DELTA:
            shown += value
        elif kind == cm.WITHDRAW:
            withdrawn.append((shown, value))
            shown = ""
        yield kind, value, shown, withdrawn


def render_stream(shown: str, withdrawn: list[tuple[str, str]], cursor: bool = True) -> str:
    """A reply being streamed: withdrawn attempts struck through, then the current text."""
    lines = [f"~~{text.strip()}~~ *(withdrawn: {reason}; regenerating)*" for text, reason in withdrawn]
    return "\n\n".join([*lines, shown + (" ▌" if cursor else "")]).strip()


def now_stamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
