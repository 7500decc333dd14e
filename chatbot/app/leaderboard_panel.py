"""The leaderboard under the A/B tab: the vote table with refresh, export and clear, and the vote store
behind it (:mod:`chatbot.arena.votes`; the table comes from :mod:`chatbot.arena.leaderboard`)."""

from __future__ import annotations

import functools
import threading

import gradio as gr

from chatbot.app.errors import ui_errors
from chatbot.app.sessions import AppConfig, now_stamp
from chatbot.arena.leaderboard import TABLE_HEADERS, leaderboard, preset_names, presets_json, table_rows
from chatbot.arena.ratings import comparisons_from_votes
from chatbot.arena.votes import VoteStore


class VotesPanel:
    """The vote store (opened on first use) and the leaderboard panel's handlers."""

    def __init__(self, config: AppConfig):
        self.config = config
        self._store: VoteStore | None = None
        self._store_lock = threading.Lock()

    @property
    def store(self) -> VoteStore:
        # opened on first use: building the page must not create files
        with self._store_lock:
            if self._store is None:
                self._store = VoteStore.in_folder(self.config.data_dir)
            return self._store

    def leaderboard_rows(self) -> list[list]:
        presets = self.config.presets
        standings = leaderboard(
            comparisons_from_votes(self.store.votes()),
            names=preset_names(presets),
            presets_json=presets_json(presets),
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


def leaderboard_panel(votes: VotesPanel) -> gr.Dataframe:
    """The vote table with refresh, export and clear; returns the table (votes update it)."""
    with gr.Accordion("Leaderboard of the settings compared so far", open=True):
        board = gr.Dataframe(headers=TABLE_HEADERS, interactive=False, wrap=True)
        with gr.Row(equal_height=True):
            refresh = gr.Button("Refresh", size="sm")
            export_csv = gr.Button("Export CSV", size="sm")
            export_jsonl = gr.Button("Export JSONL", size="sm")
            confirm = gr.Checkbox(value=False, label="Yes, delete every vote")
            clear_votes = gr.Button("Clear votes", variant="stop", size="sm")
        export_file = gr.File(label="Exported votes", visible=False, interactive=False)
        notice = gr.Markdown(elem_classes="notice")
    refresh.click(ui_errors(votes.leaderboard_rows), None, [board], api_name="leaderboard")
    for button, fmt in ((export_csv, "csv"), (export_jsonl, "jsonl")):
        export = ui_errors(functools.partial(votes.export_votes, fmt))
        button.click(export, None, [export_file, notice], api_name=f"export_{fmt}")
    clear_votes.click(ui_errors(votes.clear_votes), [confirm], [board, confirm, notice], api_name="clear_votes")
    return board
