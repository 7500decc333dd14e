""":class:`ChatApp`: what every tab shares (configuration, presets, the loaded models) and the handlers
of each part of the page, one object per part:

- ``app.models``: the model box (:class:`~chatbot.app.models.ModelBox`);
- ``app.chat``: the Chat tab (:class:`~chatbot.app.chat_tab.ChatTab`);
- ``app.ab``: the A/B tab (:class:`~chatbot.app.ab_tab.ABTab`);
- ``app.votes``: the leaderboard and the vote store (:class:`~chatbot.app.leaderboard_panel.VotesPanel`).

Handlers take the tab's :class:`~chatbot.app.sessions.Session` and the widgets' values and return the
widgets' new values, so tests call them directly, without a browser or a server.
"""

from __future__ import annotations

from functools import partial

from chatbot import conversation as cm
from chatbot.app.ab_tab import ABTab
from chatbot.app.chat_tab import ChatTab
from chatbot.app.leaderboard_panel import VotesPanel, fingerprint_of
from chatbot.app.models import ModelBox, ModelRegistry, load_bot
from chatbot.app.sessions import AppConfig, Session
from chatbot.backends.options import BackendOptions


def load_fingerprinted(name: str | None, engine: BackendOptions | None = None) -> cm.Chatbot:
    """Load a model (an engine's base URL: with ``engine``'s options) and take its fingerprint at once: the
    votes it makes are stored under the model as it was loaded, even when its files change on disk while it
    stays loaded (a retrained checkpoint)."""
    bot = load_bot(name, engine)
    fingerprint_of(bot)
    return bot


class ChatApp:
    """The app's shared parts and its per-part handlers (see the module docstring)."""

    def __init__(self, config: AppConfig, registry: ModelRegistry | None = None):
        self.config = config
        self.presets = config.presets
        self.registry = registry or ModelRegistry(
            config.max_models, loader=partial(load_fingerprinted, engine=config.engine)
        )
        self.models = ModelBox(config, self.registry)
        self.votes = VotesPanel(config, self.registry)
        self.chat = ChatTab(config, self.registry)
        self.ab = ABTab(config, self.registry, self.votes)

    def new_session(self) -> Session:
        return Session(model=self.config.model)

    def bot(self, session: Session) -> cm.Chatbot:
        """The conversation manager this tab talks to (loaded on first use)."""
        return self.registry.get(session.model)

    def stop(self, session: Session) -> None:
        """Stop this tab's generation within one token (either tab); the words shown so far stay."""
        session.cancel.set()
