"""The browser app: chat with the bot, and compare two sampling settings side by side (A/B).

    chatbot serve                                   # embedded default model, http://127.0.0.1:7860
    chatbot serve --model runs/small --port 8000 --auth me:secret --data-dir ./chatbot_data
    python app.py --model runs/small                # the same, from a checkout

The page holds no model logic: every reply comes from the conversation manager (``chatbot.conversation``).
Where things are:

- ``server``: ``chatbot serve`` (flags, configuration, launch); ``layout``: the page, assembled;
- ``chat_tab``, ``ab_tab``, ``leaderboard_panel``, ``models``: each part of the page, layout and handlers;
- ``chat_app``: :class:`ChatApp`, the shared parts and the handlers of every part, for tests to call;
- ``sessions``: configuration and what one browser tab owns; ``controls``: the sampling panel;
  ``render``: what the page shows (pure functions); ``errors``: failures as one-line messages.

Votes go to a SQLite file in the data folder (``chatbot.arena.votes``); the leaderboard is
``chatbot.arena.leaderboard``.
"""

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no network calls home, before gradio is imported

from chatbot.app.chat_app import ChatApp  # noqa: E402
from chatbot.app.layout import build_app, launch_style  # noqa: E402
from chatbot.app.server import main  # noqa: E402
from chatbot.app.sessions import AppConfig  # noqa: E402

__all__ = ["AppConfig", "ChatApp", "build_app", "launch_style", "main"]


def __getattr__(name: str):
    # ``chatbot.app.demo``: the module-level app with the default configuration, built on first access
    if name == "demo":
        globals()["demo"] = build_app()
        return globals()["demo"]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
