"""The leaderboard as the app shows it: point ratings at once, bootstrap intervals when they are ready.

One :class:`LiveBoard` per app, shared by every tab::

    live = LiveBoard(store, presets, rounds=200)
    live.board(fingerprint)            # Board: counts and point ratings now, intervals once computed
    live.board(None, include_flagged=True, wait=True)   # every model, flagged votes counted, intervals now
    live.models()                      # every model with votes, for the leaderboard's selector

The counts live in memory (:class:`chatbot.arena.counts.ScopeCounts`, one per model and one for
every model). Each read of the board first catches up with the store: one query returns the
store's vote count, its highest vote id and the votes stored since the last read, whoever stored
them (this app's tabs, another process); when a vote it had counted is gone (votes cleared), it
reads the store's tallies again. A vote therefore costs one small query, a few dictionary updates
and two Newton fits on fit cells started from the previous ratings; the 2 x 200 bootstrap refits
run in a background thread (:class:`chatbot.arena.leaderboard.IntervalCache`).

What a count in memory cannot see: a stored vote changed in place. Only
:func:`chatbot.arena.migrations.canonicalise_identities` does that, when a store is opened by a
version with another identity scheme; a running app reads the tallies again after its restart.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Mapping

from chatbot.arena.counts import ScopeCounts
from chatbot.arena.leaderboard import (
    Board,
    IntervalCache,
    board_from_counts,
    preset_names,
    presets_json,
    with_intervals,
)
from chatbot.arena.votes import ModelVotes, VoteStore

ALL_MODELS = None  # the scope of every model's votes


class LiveBoard:
    """A vote store's leaderboard, scoped by model fingerprint (None: every model)."""

    def __init__(self, store: VoteStore, presets: Mapping[str, object], rounds: int = 200, seed: int = 0):
        self.store = store
        # the app's own mapping, which grows when a preset is saved: names are read from it per board
        self.presets = presets
        self.intervals = IntervalCache(rounds=rounds, seed=seed)
        self._lock = threading.Lock()  # the counts change under it; boards are read under it
        self._counts: dict[str | None, ScopeCounts] = {}
        self._seen: tuple[int, int] | None = None  # (vote count, highest vote id) counted so far
        self._data_version: int | None = None  # the store's data_version when last read
        self._versions: dict[str | None, int] = {}  # scope -> a number that changes whenever its counts do
        self._clock = itertools.count(1)
        self._boards: dict[tuple[str | None, bool], Board] = {}  # the latest board per (scope, include)

    def _count(self, fingerprint: str, tally) -> None:
        for scope in (fingerprint, ALL_MODELS):
            self._counts.setdefault(scope, ScopeCounts()).add(tally)
            self._versions[scope] = next(self._clock)

    def _catch_up(self) -> None:
        """Fold in the votes stored since the last read; read every tally again when some were deleted."""
        version = self.store.data_version()  # before reading: a commit while reading shows up next time
        if version == self._data_version:
            return
        self._data_version = version
        after = None if self._seen is None else self._seen[1]
        log = self.store.read_tallies(after)
        if after is not None and log.count != self._seen[0] + len(log.tallies):
            log = self.store.read_tallies(None)  # votes were cleared: count again from the store's tallies
            after = None
        if after is None:
            self._counts, self._boards = {}, {}
            for scope in self._versions:
                self._versions[scope] = next(self._clock)
        for fingerprint, tally in log.tallies:
            self._count(fingerprint, tally)
        self._seen = (log.count, log.last_id)

    def board(self, fingerprint: str | None, include_flagged: bool = False, wait: bool = False) -> Board:
        """The board now; intervals filled in when already computed (or, with ``wait``, computed first)."""
        include_flagged = bool(include_flagged)
        with self._lock:
            self._catch_up()
            counts = self._counts.get(fingerprint) or ScopeCounts()
            previous = self._boards.get((fingerprint, include_flagged))
            names, named_json = preset_names(self.presets), presets_json(self.presets)
            board = board_from_counts(counts, names, named_json, include_flagged, previous)
            self._boards[fingerprint, include_flagged] = board
            key = (fingerprint, self._versions.get(fingerprint, 0), include_flagged)
            cells = counts.rated[include_flagged].cells
            ready = self.intervals.get(key, lambda: cells.cells)
            snapshot = dict(cells.cells) if ready is None and wait else None  # the counts may move on meanwhile
        if snapshot is not None:
            ready = self.intervals.wait(key, lambda: snapshot)
        return with_intervals(board, *ready) if ready is not None else board

    def models(self) -> list[ModelVotes]:
        """Every model fingerprint with votes, the most voted first."""
        with self._lock:
            self._catch_up()
            found = [ModelVotes(fp, c.total) for fp, c in self._counts.items() if fp is not ALL_MODELS and c.total]
        return sorted(found, key=lambda m: (-m.votes, m.fingerprint))
