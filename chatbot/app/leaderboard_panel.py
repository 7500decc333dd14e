"""The leaderboard under the A/B tab: the vote table of one model (or all), what was left out and why,
the length coefficient, refresh, export and clear, and the vote store behind it (:mod:`chatbot.arena`).

Point ratings are computed in the request; bootstrap intervals in a background thread
(:class:`chatbot.arena.live.LiveBoard`), and a timer refreshes the table until they are in.
Exports are copied into a fresh temporary folder before they are offered: the data folder is never
served. Clearing votes is refused when the app is reachable beyond this machine without a login.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass

import gradio as gr

from chatbot.app.access import disk_changes_allowed, offered_copy, refused
from chatbot.app.errors import ui_errors
from chatbot.app.models import ModelRegistry
from chatbot.app.sessions import AppConfig, Session, now_stamp
from chatbot.arena.fingerprint import ModelFingerprint, engine_fingerprint, model_fingerprint
from chatbot.arena.leaderboard import TABLE_HEADERS, Board, board_summary, table_rows
from chatbot.arena.live import LiveBoard
from chatbot.arena.votes import VoteStore
from chatbot.errors import ChatbotError

LOADED, ALL = "loaded model", "all models"  # the model selector's fixed choices; the others are fingerprints
INCLUDE_LABEL = "Count flagged votes (fallback, retry under other settings, identical replies)"


def bot_fingerprint(bot) -> ModelFingerprint:
    """The fingerprint of a loaded conversation manager: its serving engine, or its folder / hub id."""
    backend = getattr(bot, "backend", None)
    described = backend.describe() if backend is not None and hasattr(backend, "describe") else {}
    if described.get("base_url"):
        return engine_fingerprint(str(described["base_url"]), str(described.get("model", "")))
    return model_fingerprint(bot.name, getattr(bot, "model", None))


_FINGERPRINTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # bot -> fingerprint, taken once


def fingerprint_of(bot) -> ModelFingerprint:
    """Taken the first time the app sees a loaded model: the files may change while it stays loaded."""
    if bot not in _FINGERPRINTS:
        _FINGERPRINTS[bot] = bot_fingerprint(bot)
    return _FINGERPRINTS[bot]


class VotesPanel:
    """The vote store (opened on first use) and the leaderboard panel's handlers."""

    def __init__(self, config: AppConfig, registry: ModelRegistry):
        self.config = config
        self.registry = registry  # the leaderboard shows the votes of the tab's loaded model by default
        self._live: LiveBoard | None = None
        self._store_lock = threading.Lock()

    @property
    def store(self) -> VoteStore:
        return self.live.store

    @property
    def live(self) -> LiveBoard:
        # opened on first use: building the page must not create files
        with self._store_lock:
            if self._live is None:
                store = VoteStore.in_folder(self.config.data_dir)
                self._live = LiveBoard(store, self.config.presets, rounds=self.config.bootstrap_rounds)
            return self._live

    @property
    def changes_allowed(self) -> bool:
        """The data-folder gate (:func:`chatbot.app.access.disk_changes_allowed`) for this app."""
        return disk_changes_allowed(self.config)

    def loaded_fingerprint(self, session: Session | None) -> str:
        """The fingerprint of the tab's model (no tab: the configured model); loads it if needed."""
        return fingerprint_of(self.registry.get(session.model if session is not None else self.config.model)).key

    def scope(self, session: Session | None, selected: str | None) -> str | None:
        """The fingerprint whose votes are shown (None: every model's)."""
        if selected == ALL:
            return None
        if selected in (None, "", LOADED):
            return self.loaded_fingerprint(session)
        return selected

    def selector(self, selected: str | None) -> dict:
        """The model selector's choices: the loaded model, all models, then every model with votes."""
        choices = [(LOADED, LOADED), (ALL, ALL)]
        for model in self.live.models():
            label = f"{ModelFingerprint.from_key(model.fingerprint).label} ({model.votes} votes)"
            choices.append((label, model.fingerprint))
        return gr.update(choices=choices, value=selected or LOADED)

    def board(self, session: Session | None, selected: str | None = LOADED, include: bool = False) -> Board:
        return self.live.board(self.scope(session, selected), bool(include))

    def leaderboard_view(self, session: Session | None = None, selected: str | None = LOADED, include: bool = False):
        """Outputs: the table, the summary under it, the model selector, the refresh timer.

        Also what a page shows when it opens. When the tab's model cannot load, the table is empty and
        the summary says so: the leaderboard itself never fails, and "all models" still works.
        """
        try:
            board = self.board(session, selected, include)
        except ChatbotError as exc:
            if selected not in (None, "", LOADED):
                raise
            note = f"No model loaded ({exc}); pick **{ALL}** above to see every model's votes."
            return [], note, self.selector(selected), gr.update(active=False)
        return (
            table_rows(board.standings),
            board_summary(board),
            self.selector(selected),
            gr.update(active=not board.intervals),  # the timer: on until the intervals are in
        )

    def leaderboard_rows(self, session: Session | None = None) -> list[list]:
        return table_rows(self.board(session).standings)

    def export_votes(self, fmt: str, session: Session | None = None, selected: str | None = LOADED):
        scope = self.scope(session, selected)
        path = self.config.data_dir / "exports" / f"votes-{now_stamp()}.{fmt}"
        path = self.store.export_csv(path, scope) if fmt == "csv" else self.store.export_jsonl(path, scope)
        count = self.store.count(scope)
        return gr.update(value=str(offered_copy(path)), visible=True), f"Exported {count} votes to `{path}`"

    def clear_votes(self, session: Session | None, selected: str | None, include: bool, confirmed: bool):
        """Delete the selected model's votes (or every vote when "all models" is selected)."""
        if not self.changes_allowed:
            gr.Warning(refused("Clearing votes"))
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), False, "Clearing votes needs --auth here."
        if not confirmed:
            gr.Warning("Tick 'Yes, delete these votes' first: clearing cannot be undone.")
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), False, "Tick the box first, then Clear votes."
        scope = self.scope(session, selected)
        deleted = self.store.clear(scope)
        which = "every model's" if scope is None else "this model's"
        return *self.leaderboard_view(session, selected, include), False, f"Deleted {deleted} of {which} votes."


# the table's columns by share of its width: the setting's name gets room, short numbers little, so a
# header is never broken inside a word ("ran k")
WIDE_COLUMNS = {"setting": 4.0, "95% interval": 1.8, "95% interval (length-controlled)": 2.4,
                "win rate left / right": 1.8, "length-controlled": 1.8}  # fmt: skip


def column_widths(headers: list[str]) -> list[str]:
    weights = [WIDE_COLUMNS.get(header, 1.0) for header in headers]
    return [f"{100 * w / sum(weights):.1f}%" for w in weights]


@dataclass(frozen=True)
class LeaderboardWidgets:
    """What other parts of the page update or read: a vote, a page load and a model switch refresh ``outputs``
    (table, summary, model selector, timer: :meth:`VotesPanel.leaderboard_view`'s order) from ``inputs``."""

    outputs: list
    selected: gr.Dropdown
    include: gr.Checkbox

    def inputs(self, session: gr.State) -> list:
        return [session, self.selected, self.include]


def leaderboard_panel(votes: VotesPanel, session: gr.State) -> LeaderboardWidgets:
    """The vote table with its summary, model selector, refresh, export and clear, wired."""
    with gr.Accordion("Leaderboard of the settings compared so far", open=True):
        with gr.Row(equal_height=True):
            selected = gr.Dropdown(choices=[LOADED, ALL], value=LOADED, label="Votes of", scale=3)
            include = gr.Checkbox(value=False, label=INCLUDE_LABEL, scale=3)
            refresh = gr.Button("Refresh", size="sm", scale=1)
        board = gr.Dataframe(
            headers=TABLE_HEADERS, interactive=False, wrap=True, column_widths=column_widths(TABLE_HEADERS)
        )
        summary = gr.Markdown(elem_classes="stats")
        with gr.Row(equal_height=True):
            export_csv = gr.Button("Export CSV", size="sm")
            export_jsonl = gr.Button("Export JSONL", size="sm")
            confirm = gr.Checkbox(value=False, label="Yes, delete these votes")
            clear_votes = gr.Button("Clear votes", variant="stop", size="sm")
        export_file = gr.File(label="Exported votes", visible=False, interactive=False)
        notice = gr.Markdown(elem_classes="notice")
    timer = gr.Timer(2.0, active=False)  # on while the intervals are computed in the background
    outputs = [board, summary, selected, timer]
    view = ui_errors(votes.leaderboard_view)
    refresh.click(view, [session, selected, include], outputs, api_name="leaderboard")
    timer.tick(view, [session, selected, include], outputs, api_name=False, show_progress="hidden")
    gr.on([selected.input, include.change], view, [session, selected, include], outputs, api_name=False)
    for button, fmt in ((export_csv, "csv"), (export_jsonl, "jsonl")):

        def export(session_value, selected_value, fmt=fmt):
            return votes.export_votes(fmt, session_value, selected_value)

        export.__name__ = f"export_{fmt}"
        button.click(ui_errors(export), [session, selected], [export_file, notice], api_name=f"export_{fmt}")
    clear_votes.click(
        ui_errors(votes.clear_votes),
        [session, selected, include, confirm],
        [*outputs, confirm, notice],
        api_name="clear_votes",
    )
    return LeaderboardWidgets(outputs, selected, include)
