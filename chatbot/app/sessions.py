"""The web app's configuration, what each browser tab owns (:class:`Session`), and the calls into the
conversation manager that a tab's conversation makes: the only code of the app that talks to it, besides
model loading in :mod:`chatbot.app.models`.
"""

from __future__ import annotations

import random
import re
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from chatbot import conversation as cm
from chatbot.arena.fingerprint import ModelFingerprint
from chatbot.arena.provenance import OWN
from chatbot.backends.options import BackendOptions
from chatbot.format import is_user_turn
from chatbot.sampling import PRESETS, SamplingSettings

APP_NAME = "gpt2-dialogue-chatbot"
MAX_MESSAGE_CHARS = 1000  # longer messages are cut: the model sees ~256 tokens of context anyway
DEFAULT_CONCURRENCY = 2  # generations at once; the rest wait in the queue (CPU-bound, 2 cores here)


def default_data_dir() -> Path:
    """Where votes and saved conversations go unless --data-dir says otherwise."""
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


@dataclass
class AppConfig:
    """What ``chatbot serve`` configures; ``build_app`` takes one."""

    model: str | None = None  # None: the embedded default model; http(s)://...: a serving engine's base URL
    data_dir: Path = field(default_factory=default_data_dir)
    presets: dict[str, SamplingSettings] = field(default_factory=lambda: dict(PRESETS))
    max_message_chars: int = MAX_MESSAGE_CHARS
    concurrency: int = DEFAULT_CONCURRENCY
    max_models: int = 2  # checkpoints kept loaded at once across sessions (memory bound)
    bootstrap_rounds: int = 200
    queue_size: int = 64  # requests waiting beyond this are refused with 'queue full'
    checkpoints_dir: Path = Path("runs")  # checkpoints found here are offered in the model box
    # where the app is reachable: clearing votes and saving presets need a login beyond loopback
    # (chatbot.app.access.disk_changes_allowed)
    host: str = "127.0.0.1"  # chatbot serve --host
    share: bool = False  # chatbot serve --share: a public gradio.live link
    auth: tuple[str, str] | None = field(default=None, repr=False)  # chatbot serve --auth; kept out of logs
    # how engines are reached (chatbot serve's backend flags: key variable, timeouts, --allow-unsupported, ...);
    # the base URL comes from the model box (chatbot.app.models.engine_options)
    engine: BackendOptions = field(default_factory=BackendOptions)


# ---------------------------------------------------------------------------------------------
# Per-session state (one per browser tab)
# ---------------------------------------------------------------------------------------------


@dataclass
class ABPair:
    """The two replies to the latest A/B message, their settings, how each was made, the model that made
    both (all stored with the vote), and what the user did with them.

    Each setting's name and ranking identity are taken once, when the pair is made
    (:meth:`chatbot.app.ab_tab.ABTab.make_pair`): naming a setting compares it with every preset, too slow to
    repeat on every vote and every view.
    """

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
    provenance_a: str = OWN
    provenance_b: str = OWN
    fingerprint: ModelFingerprint = ModelFingerprint("", "")
    labels: tuple[str, str] = ("", "")  # the settings' names (setting_label), A's then B's
    ranked: tuple[str, str] = ("", "")  # the settings' ranking identities, what the vote is stored under

    def provenance_of(self, panel: str) -> str:
        return self.provenance_a if panel == "A" else self.provenance_b

    def label_of(self, panel: str) -> str:
        return self.labels[panel == "B"]

    @property
    def hidden(self) -> bool:
        return not self.revealed

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
# A tab's conversation: the calls into the conversation manager (#4), one function per action
# ---------------------------------------------------------------------------------------------


def persona_lines(text: str | None) -> list[str]:
    """The persona box holds one fact per line."""
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


# the side box of both tabs: a persona for a dialogue model, few-shot examples for a plain causal LM
PERSONA_BOX = {
    "label": "Persona (one fact per line)",
    "info": None,
    "placeholder": "i love hiking.\ni have a dog named max.",
}
EXAMPLES_BOX = {
    "label": "Examples (one exchange per paragraph, one turn per line, yours first)",
    "info": "A plain language model has no persona: these exchanges go before the conversation "
    "(the oldest are dropped when the window is full). Leave a blank line between exchanges.",
    "placeholder": "hi, how are you?\ni am good, thanks.\n\nwhere are you from?\nohio.",
}


def side_box(bot: cm.Chatbot) -> dict:
    """The persona box's label, help and placeholder as ``bot`` reads the box."""
    return EXAMPLES_BOX if takes_examples(bot) else PERSONA_BOX


def side_box_reading(bot: cm.Chatbot, text: str | None) -> tuple[list[str], list[list[str]] | None]:
    """(persona, examples) from the box's text: persona facts, or a plain LM's few-shot exchanges
    (an empty box: None, the examples the model was loaded with, if any)."""
    if takes_examples(bot):
        return [], example_exchanges(text) or None
    return persona_lines(text), None


def takes_examples(bot: cm.Chatbot) -> bool:
    """A plain causal LM prompted with raw text has no persona slot: its persona box holds few-shot examples.
    (A server's chat endpoint does take a persona, as a system message.)"""
    return not bot.dialogue and not bot.chat_endpoint


def example_exchanges(text: str | None) -> list[list[str]]:
    """The Examples box: one exchange per paragraph (blank lines between), one turn per line, the user's first."""
    paragraphs = re.split(r"\n\s*\n", text or "")
    return [turns for paragraph in paragraphs if (turns := persona_lines(paragraph))]


def chat_conversation(bot: cm.Chatbot, current: cm.Conversation | None, persona: str) -> cm.Conversation:
    """The session's conversation on ``bot``: the same turns, moved over after a model switch.

    ``persona`` is the persona box's text: persona facts, or for a plain causal LM few-shot examples.
    """
    if current is None or current.bot is not bot:
        turns = current.turns if current is not None else ()
        current = cm.Conversation(bot, turns=turns)
    current.persona, current.examples = side_box_reading(bot, persona)
    return current


def stream_chat(conversation: cm.Conversation, text: str, settings: SamplingSettings, cancel: threading.Event):
    """Stream events of the reply to ``text``; the conversation records both turns."""
    return conversation.stream(text, settings, cancel=cancel)


def stream_ab(bot: cm.Chatbot, turns: list[str], persona: str, settings: SamplingSettings, cancel: threading.Event):
    """Stream events of one A/B side's reply to the shared ``turns`` (the user's message last);
    ``persona`` is the box's text, read as the chat tab reads it (persona facts or few-shot examples)."""
    facts, examples = side_box_reading(bot, persona)
    return bot.stream_reply(turns, persona=facts, settings=settings, cancel=cancel, examples=examples)


def drop_last_exchange(conversation: cm.Conversation) -> str | None:
    """Remove the last user message and the reply to it; returns the message (None: nothing to undo)."""
    turns = conversation.turns
    if not turns:
        return None
    if not is_user_turn(len(turns) - 1):  # the last turn is the bot's
        turns.pop()
        if conversation.replies:
            conversation.replies.pop()
    return turns.pop()


def save_chat(conversation: cm.Conversation, path: Path) -> Path:
    return conversation.save(path, append=False)


def load_chat(bot: cm.Chatbot, path: str) -> cm.Conversation:
    return cm.Conversation.load(bot, path)


def now_stamp() -> str:
    """A UTC timestamp for file names (saved conversations, exported votes)."""
    return datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
