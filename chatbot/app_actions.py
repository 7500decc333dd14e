"""What each button of the web app does: one method per action on :class:`ChatApp`.

The methods take the tab's :class:`~chatbot.app_state.Session` and the widgets' values and return
the widgets' new values, so tests call them directly, without a browser or a server. Replies come
from the conversation manager through the adapter in :mod:`chatbot.app_state`; votes go to
:mod:`chatbot.arena.votes`; the table comes from :mod:`chatbot.arena.leaderboard`.
"""

from __future__ import annotations

import functools
import inspect
import logging
import threading
from pathlib import Path

import gradio as gr

from chatbot import conversation as cm
from chatbot.app_state import (
    CONTROL_FIELDS,
    DEFAULT_MODEL_LABEL,
    SCREEN_CHOICES,
    ABPair,
    AppConfig,
    ModelRegistry,
    Session,
    candidate_rows,
    chat_conversation,
    clean_message,
    controls_from_settings,
    drop_last_exchange,
    fold_stream,
    load_chat,
    local_checkpoints,
    messages,
    model_status,
    now_stamp,
    parse_seed,
    persona_hint,
    ranking_identity,
    render_stream,
    reply_stats,
    save_chat,
    setting_label,
    settings_from_controls,
    stream_ab,
    stream_chat,
)
from chatbot.arena.leaderboard import leaderboard, preset_names, presets_json, table_rows
from chatbot.arena.ratings import comparisons_from_votes
from chatbot.arena.votes import Vote, VoteStore
from chatbot.errors import ChatbotError
from chatbot.sampling import SamplingSettings

logger = logging.getLogger(__name__)


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
        current = config.model or DEFAULT_MODEL_LABEL
        others = [m for m in [DEFAULT_MODEL_LABEL, *local_checkpoints(config.checkpoints_dir)] if m != current]
        self.known_models = [current, *others]  # the model box's choices; any other folder can be typed
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
        hint = persona_hint(bot.persona_trained, bot.dialogue)
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
        hint = persona_hint(bot.persona_trained, bot.dialogue)
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
        for kind, value, shown, withdrawn in fold_stream(stream_chat(session.chat, text, settings, session.cancel)):
            if kind == cm.FINAL:
                session.last_reply = value
                yield (
                    self._chat_view(session),
                    candidate_rows(value),
                    reply_stats(value, setting_label(settings, self.presets), bot.filters.user_profanity),
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
        self.bot(session)  # a model that cannot load fails here, before the message is shown
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
                events = stream_ab(bot, session.ab_turns, persona, settings, session.cancel)
                for kind, value, streamed, withdrawn in fold_stream(events):
                    if kind == cm.FINAL:
                        replies[panel] = value.text
                        streamed, withdrawn = value.text, []
                    shown[screens[panel]] = render_stream(streamed, withdrawn, cursor=kind != cm.FINAL)
                    yield gr.skip(), *self.ab_view(session, notice or "", shown["left"], shown["right"])
                if session.cancel.is_set():
                    break
        except BaseException:
            session.ab_turns.pop()  # no half-answered message stays in the shared history
            raise
        if session.cancel.is_set():
            # a cut-short reply is no fair comparison: nothing to vote on, the message goes back to the box
            session.ab_turns.pop()
            stopped = "Stopped: nothing was added to the conversation or the votes. Send the message again."
            yield text, *self.ab_view(session, stopped, shown["left"], shown["right"])
            return
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
        prompt = "Vote, or pick the reply that continues the conversation."
        if ranking_identity(settings_a) == ranking_identity(settings_b):
            prompt += " A and B are the same setting: a vote here does not move the leaderboard."
        yield gr.skip(), *self.ab_view(session, prompt)

    def ab_vote(self, session: Session, choice: str):
        """Store a vote ("left", "right", "tie", "both-bad"). Outputs: the A/B view, then the leaderboard."""
        pair = session.pair
        if pair is None or not pair.open:
            raise gr.Error("Nothing to vote on: send a message first.")
        if pair.voted is not None:
            raise gr.Error("You already voted on these replies.")
        if choice not in SCREEN_CHOICES:
            raise ValueError(f"unknown vote {choice!r}; expected one of {SCREEN_CHOICES}")
        winner = pair.panel(choice) if choice in ("left", "right") else choice  # tie / both-bad as they are
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
            presets_json=presets_json(self.presets),
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
