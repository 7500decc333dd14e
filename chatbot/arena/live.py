"""The leaderboard as the app shows it: point ratings at once, bootstrap intervals when they are ready.

One :class:`LiveBoard` per app, shared by every tab::

    live = LiveBoard(store, presets, rounds=200)
    live.board(fingerprint)            # Board: counts and point ratings now, intervals once computed
    live.board(None, include_flagged=True, wait=True)   # every model, flagged votes counted, intervals now

Reading the board costs one aggregate query (a few hundred tallies, not 10,000 vote rows) and two
Newton fits, so it can run inside the vote request; the 2 x 200 bootstrap refits run in a
background thread (:class:`chatbot.arena.leaderboard.IntervalCache`).
"""

from __future__ import annotations

from collections.abc import Mapping

from chatbot.arena.leaderboard import Board, IntervalCache, build_board, preset_names, presets_json, with_intervals
from chatbot.arena.votes import VoteStore


class LiveBoard:
    """A vote store's leaderboard, scoped by model fingerprint (None: every model)."""

    def __init__(self, store: VoteStore, presets: Mapping[str, object], rounds: int = 200, seed: int = 0):
        self.store = store
        self.names, self.presets_json = preset_names(presets), presets_json(presets)
        self.intervals = IntervalCache(rounds=rounds, seed=seed)

    def board(self, fingerprint: str | None, include_flagged: bool = False, wait: bool = False) -> Board:
        """The board now; intervals filled in when already computed (or, with ``wait``, computed first)."""
        tallies = self.store.tallies(fingerprint)
        board = build_board(tallies, self.names, self.presets_json, include_flagged)
        if wait:
            ready = self.intervals.wait(tallies, include_flagged)
        else:
            ready = self.intervals.get(tallies, include_flagged)
        return with_intervals(board, *ready) if ready is not None else board
