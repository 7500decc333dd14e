"""The arena's leaderboard: one row per sampling setting, raw and length-controlled, with what was left out.

Shared by the web app's A/B tab and the evaluation report::

    board = build_board(store.tallies(fingerprint), names=preset_names(PRESETS))
    for row in board.standings:
        print(row.name, row.votes, row.win_rate, row.rating, row.lc_rating)
    print(board_summary(board))      # votes left out and why, the length coefficient, position bias

The point ratings are cheap (a Newton fit on tallies); the bootstrap intervals are not, so
:class:`IntervalCache` computes them in a background thread and the table says "updating" meanwhile.

A tie and a "both bad" vote count as half a win for each side in the win rate (see
:mod:`chatbot.arena.kinds`); "both bad" is also counted in its own column.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
import time
from collections import Counter, OrderedDict, defaultdict
from collections.abc import Callable, Hashable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace

from chatbot.arena.counts import LEFT_OUT_NOTES, RatedCounts, ScopeCounts
from chatbot.arena.kinds import PANELS, SHARED_KINDS, outcome_for, points
from chatbot.arena.ratings import (
    BASE_RATING,
    CellTable,
    Comparison,
    Fit,
    FitCell,
    Intervals,
    Tally,
    as_tallies,
    bootstrap_cells,
    fit_from_cells,
)

logger = logging.getLogger(__name__)

MIN_VOTES_FOR_INTERVAL = 5  # below this a bootstrap interval looks precise and is not: say so instead
UPDATING = "updating…"


@dataclass(frozen=True)
class Standing:
    """One leaderboard row. ``counts``: votes by outcome for this setting ("win", "loss", or a shared kind)."""

    identity: str
    name: str
    votes: int
    counts: dict[str, int]
    win_rate: float  # points / votes, a shared kind counting its points (half for a tie)
    rating: float
    lc_rating: float = BASE_RATING  # length-controlled
    low: float | None = None  # bootstrap interval of the rating (None: not computed yet)
    high: float | None = None
    lc_low: float | None = None
    lc_high: float | None = None
    left_votes: int = 0  # votes where this setting's reply was on the left
    left_win_rate: float | None = None
    right_votes: int = 0
    right_win_rate: float | None = None

    @property
    def wins(self) -> int:
        return self.counts.get("win", 0)

    @property
    def losses(self) -> int:
        return self.counts.get("loss", 0)

    @property
    def ties(self) -> int:
        """Votes of every shared kind (tie, both bad, ...): the T of W-L-T."""
        return sum(self.counts.get(kind.choice, 0) for kind in SHARED_KINDS)


@dataclass(frozen=True)
class Board:
    """Everything the leaderboard shows for one scope of votes."""

    standings: list[Standing]
    total: int  # votes in scope
    rated: int  # votes in the ratings
    left_out: dict[str, int]  # reason (LEFT_OUT_NOTES key) -> votes not in the ratings
    include_flagged: bool  # fallback / retry / identical-text votes were counted
    length_coef: float | None = None  # log-odds per unit of the length covariate
    length_interval: tuple[float, float] | None = None
    left_points: float | None = None  # share of points the left reply won (ties half), rated votes
    intervals: bool = False  # bootstrap intervals filled in
    unknown_provenance: int = 0  # rated votes from before provenance was recorded


def preset_names(presets: Mapping[str, object]) -> dict[str, str]:
    """identity -> preset name, from a mapping of name -> settings object with an ``identity`` attribute."""
    return {settings.identity: name for name, settings in presets.items()}


def presets_json(presets: Mapping[str, object]) -> dict[str, dict]:
    """preset name -> its identity parsed (the settings that matter), what ``short_name`` compares against."""
    return {name: json.loads(settings.identity) for name, settings in presets.items()}


def settings_diff(a: Mapping, b: Mapping) -> list[tuple[str, object, object]]:
    """(field, value in a, value in b) for every field whose values differ, sorted by field."""
    return [(k, a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def short_name(identity: str, names: Mapping[str, str] | None = None, presets_json: Mapping[str, dict] | None = None):
    """A readable name for a setting: the preset's name when it equals one.

    Otherwise, when ``presets_json`` (preset name -> settings dict) is given, the closest preset
    and what differs from it ("top-p, temperature=1.0"); failing that, "custom-" and a short hash
    of the identity, stable across runs.
    """
    if names and identity in names:
        return names[identity]
    custom = "custom-" + hashlib.sha1(identity.encode("utf-8")).hexdigest()[:6]
    try:
        settings = json.loads(identity)
    except json.JSONDecodeError:
        return custom
    if not presets_json or not isinstance(settings, dict):
        return custom
    name, diff = min(((n, settings_diff(settings, p)) for n, p in presets_json.items()), key=lambda item: len(item[1]))
    if not diff or len(diff) > 3:
        return custom
    return f"{name}, {', '.join(f'{k}={mine}' for k, mine, _ in diff)}"


def _standings(by_outcome: Mapping[tuple, int], raw: Fit, lc: Fit, names, presets) -> list[Standing]:
    """One row per setting from votes per (a, b, winner, swapped): a few hundred keys at most."""
    counts: dict[str, Counter] = defaultdict(Counter)
    earned: dict[str, float] = defaultdict(float)
    by_side: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0.0])  # (identity, side) -> points, votes
    for (a, b, winner, swapped), n in by_outcome.items():
        for panel, identity, got in zip(PANELS, (a, b), points(winner), strict=True):
            counts[identity][outcome_for(winner, panel)] += n
            earned[identity] += got * n
            side = "left" if (panel == "A") != swapped else "right"
            by_side[identity, side][0] += got * n
            by_side[identity, side][1] += n
    rows = []
    for identity, tally in counts.items():
        votes = sum(tally.values())
        left, right = by_side[identity, "left"], by_side[identity, "right"]
        rows.append(
            Standing(
                identity=identity,
                name=short_name(identity, names, presets),
                votes=votes,
                counts=dict(tally),
                win_rate=earned[identity] / votes,
                rating=raw.ratings[identity],
                lc_rating=lc.ratings[identity],
                left_votes=int(left[1]),
                left_win_rate=left[0] / left[1] if left[1] else None,
                right_votes=int(right[1]),
                right_win_rate=right[0] / right[1] if right[1] else None,
            )
        )
    rows.sort(key=lambda r: (-r.rating, r.name))
    return rows


def with_intervals(board: Board, raw: Intervals, lc: Intervals) -> Board:
    """The board with its bootstrap intervals filled in."""
    standings = [
        replace(s, low=raw.ratings[s.identity][0], high=raw.ratings[s.identity][1],
                 lc_low=lc.ratings[s.identity][0], lc_high=lc.ratings[s.identity][1])
        for s in board.standings
    ]  # fmt: skip
    return replace(board, standings=standings, length_interval=lc.length_coef, intervals=True)


def _fits(board: Board | None) -> tuple[Fit | None, Fit | None]:
    """A board's point fits (raw, length-controlled), to start the next fit from."""
    if board is None or not board.standings:
        return None, None
    raw = Fit({s.identity: s.rating for s in board.standings})
    return raw, Fit({s.identity: s.lc_rating for s in board.standings}, board.length_coef)


def board_from_counts(
    counts: ScopeCounts,
    names: Mapping[str, str] | None = None,
    presets_json: Mapping[str, dict] | None = None,
    include_flagged: bool = False,
    previous: Board | None = None,
) -> Board:
    """Counts and point ratings (raw and length-controlled), without intervals: cheap, for every vote.

    ``previous``: the board of nearly the same votes (before the latest vote); its ratings start the fits.
    """
    rated: RatedCounts = counts.rated[include_flagged]
    start_raw, start_lc = _fits(previous)
    raw = fit_from_cells(rated.cells, start=start_raw)
    lc = fit_from_cells(rated.cells, length=True, start=start_lc)
    return Board(
        standings=_standings(rated.outcomes, raw, lc, names, presets_json),
        total=counts.total,
        rated=rated.votes,
        left_out=dict(counts.left_out),
        include_flagged=include_flagged,
        length_coef=lc.length_coef if rated.votes else None,
        left_points=rated.left_points / rated.votes if rated.votes else None,
        unknown_provenance=rated.unknown_provenance,
    )


def build_board(
    tallies: Sequence[Tally] | Sequence[Comparison],
    names: Mapping[str, str] | None = None,
    presets_json: Mapping[str, dict] | None = None,
    include_flagged: bool = False,
) -> Board:
    """Counts and point ratings (raw and length-controlled) of some votes, without intervals."""
    return board_from_counts(ScopeCounts.of(as_tallies(tallies)), names, presets_json, bool(include_flagged))


def cell_intervals(cells: Mapping[FitCell, int] | CellTable, rounds: int, seed: int = 0) -> tuple[Intervals, Intervals]:
    """Bootstrap intervals (raw, length-controlled) of the ratings fitted on ``cells``: the slow part."""
    raw = bootstrap_cells(cells, rounds=rounds, seed=seed)
    return raw, bootstrap_cells(cells, length=True, rounds=rounds, seed=seed)


def board_intervals(tallies: Sequence[Tally], include_flagged: bool, rounds: int, seed: int = 0):
    """Bootstrap intervals (raw, length-controlled) of a board's ratings."""
    counts = ScopeCounts.of(as_tallies(tallies))
    return cell_intervals(counts.rated[bool(include_flagged)].cells, rounds, seed)


def leaderboard(
    comparisons: Sequence[Comparison] | Sequence[Tally],
    names: Mapping[str, str] | None = None,
    presets_json: Mapping[str, dict] | None = None,
    rounds: int = 200,
    seed: int = 0,
    include_flagged: bool = False,
) -> list[Standing]:
    """One row per setting compared so far, best rating first, intervals included (computed here)."""
    counts = ScopeCounts.of(as_tallies(comparisons))  # counted once, for the points and the intervals
    board = board_from_counts(counts, names, presets_json, bool(include_flagged))
    intervals = cell_intervals(counts.rated[bool(include_flagged)].cells, rounds, seed)
    return with_intervals(board, *intervals).standings


class IntervalCache:
    """Bootstrap intervals computed off the request path, remembered per set of votes.

    ``get(key, cells)`` returns the intervals of the votes ``key`` names when they are ready;
    otherwise it asks for them and returns None, and the caller shows "updating". ``cells`` gives
    those votes' fit cells (a function: called only when the intervals are not known, and before
    ``get`` returns, so the caller may change its counts afterwards). One background thread
    computes them; while it works, only the latest request waits (votes arriving meanwhile do not
    queue one job each).
    """

    def __init__(self, rounds: int = 200, seed: int = 0, keep: int = 8):
        self.rounds, self.seed, self.keep = rounds, seed, keep
        self._done: OrderedDict[Hashable, tuple[Intervals, Intervals]] = OrderedDict()
        self._wanted: tuple[Hashable, dict] | None = None  # the latest key asked for, with its cells
        self._running: Future | None = None
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="arena-intervals")

    def get(self, key: Hashable, cells: Callable[[], Mapping[FitCell, int]]) -> tuple[Intervals, Intervals] | None:
        with self._lock:
            if key in self._done:
                self._done.move_to_end(key)
                return self._done[key]
            if self._wanted is None or self._wanted[0] != key:
                self._wanted = (key, dict(cells()))  # a copy: the caller's counts move on
            if self._running is None or self._running.done():
                self._running = self._pool.submit(self._work)
        return None

    def wait(self, key: Hashable, cells: Callable[[], Mapping[FitCell, int]], timeout: float | None = None):
        """Block until the intervals of these votes are ready (tests, benchmarks)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while (ready := self.get(key, cells)) is None:
            with self._lock:
                running = self._running
            if running is not None:
                running.result(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return ready

    def _work(self) -> None:
        while True:
            with self._lock:
                wanted, self._wanted = self._wanted, None
                if wanted is None:
                    return
                if wanted[0] in self._done:
                    continue
            key, cells = wanted
            try:
                result = cell_intervals(cells, self.rounds, self.seed)
            except Exception:
                logger.exception("bootstrap intervals failed")
                raise
            with self._lock:
                self._done[key] = result
                while len(self._done) > self.keep:
                    self._done.popitem(last=False)


def _interval(low: float | None, high: float | None, votes: int) -> str:
    if votes < MIN_VOTES_FOR_INTERVAL:
        return "needs more votes"
    if low is None or high is None:
        return UPDATING
    return f"{round(low)} to {round(high)}"


def _rate(rate: float | None) -> str:
    return "–" if rate is None else f"{rate:.0%}"


TABLE_HEADERS = [
    "rank",
    "setting",
    "votes",
    "W-L-T",
    *(kind.column for kind in SHARED_KINDS if kind.column),
    "win rate",
    "win rate left / right",
    "rating",
    "95% interval",
    "length-controlled",
    "95% interval (length-controlled)",
]


def table_rows(standings: Sequence[Standing]) -> list[list]:
    """The leaderboard as display rows (rounded), in TABLE_HEADERS order."""
    return [
        [
            rank,
            s.name,
            s.votes,
            f"{s.wins}-{s.losses}-{s.ties}",
            *(s.counts.get(kind.choice, 0) for kind in SHARED_KINDS if kind.column),
            f"{s.win_rate:.0%}",
            f"{_rate(s.left_win_rate)} / {_rate(s.right_win_rate)}",
            round(s.rating),
            _interval(s.low, s.high, s.votes),
            round(s.lc_rating),
            _interval(s.lc_low, s.lc_high, s.votes),
        ]
        for rank, s in enumerate(standings, start=1)
    ]


def length_odds(coef: float, x: float = 1 / 3) -> float:
    """The odds factor the length coefficient gives a reply with covariate ``x`` (1/3: twice the other's words)."""
    return math.exp(coef * x)


def board_summary(board: Board) -> str:
    """Markdown under the table: votes rated and left out (why), the length coefficient, position bias."""
    if board.total == 0:
        return "No votes for this model yet."
    lines = [f"**{board.rated} of {board.total} votes rated.**"]
    if board.left_out:
        reasons = "; ".join(f"{n} because {LEFT_OUT_NOTES[r]}" for r, n in sorted(board.left_out.items()))
        verb = "counted anyway (the toggle is on)" if board.include_flagged else "left out"
        lines.append(f"Flagged votes {verb}: {reasons}. Same-setting votes are never rated.")
    if board.unknown_provenance:
        lines.append(f"{board.unknown_provenance} rated votes are from before replies recorded how they were made.")
    if board.length_coef is not None:
        interval = board.length_interval
        spread = f" (95% interval {interval[0]:.2f} to {interval[1]:.2f})" if interval else f" ({UPDATING})"
        lines.append(
            f"Length coefficient **{board.length_coef:.2f}**{spread}: a reply with twice the other's words wins "
            f"with odds ×{length_odds(board.length_coef):.2f} for its length alone. Length-controlled ratings "
            "take that out (word-count covariate (A−B)/(A+B), as Chatbot Arena's style control)."
        )
    if board.left_points is not None:
        lines.append(f"Position: the left reply won {board.left_points:.0%} of the points (ties half).")
    if not board.intervals:
        lines.append(f"Intervals {UPDATING} (bootstrap over votes, in the background).")
    return "  \n".join(lines)
