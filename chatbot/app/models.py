"""The models all tabs share: loading, the registry that keeps a few loaded, and the model box at the
top of the page (which checkpoint a tab talks to, and what it does with a persona)."""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import gradio as gr

from chatbot import conversation as cm
from chatbot.app.sessions import AppConfig, Session, side_box
from chatbot.backends.options import BackendOptions
from chatbot.backends.options import load_bot as backend_bot
from chatbot.errors import ChatbotError

logger = logging.getLogger(__name__)

DEFAULT_MODEL_LABEL = "(embedded default model)"


def is_engine(name: str | None) -> bool:
    """Whether a model box value is a serving engine's base URL rather than a checkpoint folder or hub id."""
    return bool(name) and name.startswith(("http://", "https://"))


def engine_options(url: str, engine: BackendOptions) -> BackendOptions:
    """The backend options for the engine at ``url``: ``chatbot serve``'s flags (``engine``), with the
    settings that describe one server (--api-model, --server-kind, --tokenizer) kept only for the URL
    they were given with; another URL typed in the box gets its model and kind detected."""
    same_server = engine.base_url is not None and url.rstrip("/") == engine.base_url.rstrip("/")
    per_server = {} if same_server else {"api_model": None, "server_kind": None, "tokenizer": None}
    return dataclasses.replace(engine, backend="openai", base_url=url, **per_server)


def load_bot(name: str | None, engine: BackendOptions | None = None) -> cm.Chatbot:
    """A conversation manager for a checkpoint folder or hub id (None: the embedded default), or for an
    OpenAI-compatible server when ``name`` is its base URL (``http://...`` or ``https://...``), reached
    with ``engine``'s options (default: key from OPENAI_API_KEY, kind detected, default timeouts)."""
    if is_engine(name):
        return backend_bot(engine_options(name, engine or BackendOptions()))
    return cm.Chatbot.load(name)


def local_checkpoints(root: Path, limit: int = 20) -> list[str]:
    """Chatbot checkpoint folders under ``root`` (e.g. ./runs), newest first: choices for the model box."""
    if not root.is_dir():
        return []
    found = {p.parent for pattern in ("*/chatbot.json", "*/*/chatbot.json") for p in root.glob(pattern)}
    newest = sorted(found, key=lambda folder: folder.stat().st_mtime, reverse=True)
    return [str(folder) for folder in newest[:limit]]


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


def side_box_update(registry: ModelRegistry, session: Session):
    """A tab's persona box as the session's model reads it: persona facts, or a plain LM's few-shot examples."""
    try:
        bot = registry.get(session.model)
    except ChatbotError:  # the status line already says what to fix
        return gr.skip()
    return gr.update(**side_box(bot))


def persona_hint(persona_trained: bool, dialogue: bool = True, chat_endpoint: bool = False) -> str:
    """What the persona box does with the loaded model."""
    if not dialogue and chat_endpoint:
        return "A plain language model behind a chat endpoint: the persona goes to it as a system message."
    if not dialogue:
        return (
            "⚠️ This is a plain language model: it has no persona slot, so the box holds few-shot examples "
            "that go before the conversation."
        )
    if persona_trained:
        return "This model was trained with personas: it answers in character."
    return "⚠️ This model was **not trained with personas**: it sees the text, but will likely ignore it."


def model_status(bot: cm.Chatbot) -> str:
    kind = "dialogue checkpoint" if bot.dialogue else "plain causal LM (turns joined by end-of-text)"
    return f"**Model:** `{bot.name}` · {kind} · personas: {'yes' if bot.persona_trained else 'no'}"


class ModelBox:
    """The model box's handlers: status when a tab opens, and switching a tab to another checkpoint."""

    def __init__(self, config: AppConfig, registry: ModelRegistry):
        self.registry = registry
        current = config.model or DEFAULT_MODEL_LABEL
        others = [m for m in [DEFAULT_MODEL_LABEL, *local_checkpoints(config.checkpoints_dir)] if m != current]
        self.known_models = [current, *others]  # the box's choices; any other folder can be typed

    def page_load(self, session: Session) -> tuple[str, str, str]:
        """Model status and persona hints when a tab opens (the first tab loads the model)."""
        try:
            bot = self.registry.get(session.model)
        except ChatbotError as exc:
            # the page still opens; the status says what to fix
            return f"**No model loaded:** {exc}", "", ""
        hint = persona_hint(bot.persona_trained, bot.dialogue, bot.chat_endpoint)
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
        hint = persona_hint(bot.persona_trained, bot.dialogue, bot.chat_endpoint)
        gr.Info(f"Switched to {label}")
        return gr.Dropdown(choices=self.known_models, value=label), model_status(bot), hint, hint


def model_bar(box: ModelBox) -> tuple[gr.Dropdown, gr.Button, gr.Markdown]:
    """The model box, its Load button and the status line under them (wired by the page)."""
    with gr.Row(equal_height=True):
        model = gr.Dropdown(
            choices=box.known_models,
            value=box.known_models[0],
            allow_custom_value=True,
            show_label=False,
            container=False,
            scale=5,
        )
        load = gr.Button("Load model", scale=1, min_width=120)
    info = gr.Markdown("Type a checkpoint folder or hub id above to switch models.", elem_classes="stats")
    return model, load, info
