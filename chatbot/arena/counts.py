"""One scope's votes (a model's, or every model's) counted in the shapes the leaderboard reads.

The vote request must not re-read and re-aggregate every tally: :class:`chatbot.arena.live.LiveBoard`
keeps one :class:`ScopeCounts` per model and folds each new vote in with :meth:`ScopeCounts.add`,
which costs the same at 10 votes and at 100,000::

    counts = ScopeCounts.of(store.tallies(fingerprint))
    counts.add(Tally(a, b, "A", x=0.25))
    rated = counts.rated[False]            # the votes rated by default (flagged ones left out)
    rated.cells                            # votes per Bradley-Terry fit cell (chatbot.arena.ratings.CellTable)
    counts.left_out                        # {"retry": 3, ...}: votes not rated by default, by reason

Which votes are rated: a vote between a setting and itself never is (it says nothing about the
ratings); a vote with a fallback or a retried reply, or two identical replies, is left out unless
the leaderboard's toggle counts flagged votes (:data:`chatbot.arena.provenance.EXCLUSION_REASONS`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache

from chatbot.arena.kinds import points
from chatbot.arena.provenance import EXCLUSION_REASONS, UNKNOWN, exclusion_reason
from chatbot.arena.ratings import CellTable, Tallies, Tally, as_tallies, fit_cell

SAME_SETTING = "same-setting"
LEFT_OUT_NOTES = {**EXCLUSION_REASONS, SAME_SETTING: "both sides were the same setting (never rated)"}


@lru_cache(maxsize=64)
def _reason(same_setting: bool, provenance_a: str, provenance_b: str, identical: bool) -> str | None:
    # a handful of distinct inputs over thousands of tallies
    return SAME_SETTING if same_setting else exclusion_reason(provenance_a, provenance_b, bool(identical))


def left_out_reason(t: Tally) -> str | None:
    """Why a tally's votes are not rated by default (a LEFT_OUT_NOTES key), or None."""
    return _reason(t.a == t.b, t.provenance_a, t.provenance_b, t.identical)


def is_rated(reason: str | None, include_flagged: bool) -> bool:
    """Whether votes left out for ``reason`` are rated: flagged ones only with the toggle, same-setting never."""
    return reason is None or (include_flagged and reason != SAME_SETTING)


def rated_tallies(tallies: Iterable[Tally], include_flagged: bool = False) -> tuple[Tallies, dict[str, int]]:
    """The tallies the ratings use, and the votes left out by reason (all listed, even when included)."""
    rated, left_out = Tallies(), Counter()
    for t in as_tallies(list(tallies)):
        reason = left_out_reason(t)
        if reason is not None:
            left_out[reason] += t.n
        if is_rated(reason, include_flagged):
            rated.append(t)
    return rated, dict(left_out)


@dataclass
class RatedCounts:
    """The votes one board rates: per fit cell (the ratings) and per pair, winner and side (the table)."""

    cells: CellTable = field(default_factory=CellTable)  # votes per Bradley-Terry fit cell
    outcomes: Counter = field(default_factory=Counter)  # (a, b, winner, swapped) -> votes
    votes: int = 0
    left_points: float = 0.0  # points won by the reply shown on the left (ties half)
    unknown_provenance: int = 0  # votes from before replies recorded how they were made

    def add(self, t: Tally) -> None:
        cell = fit_cell(t)
        if cell is not None:
            self.cells.add(cell, t.n)
        self.outcomes[t.a, t.b, t.winner, t.swapped] += t.n
        self.votes += t.n
        self.left_points += points(t.winner)[t.swapped] * t.n  # swapped: B (index 1) was on the left
        if UNKNOWN in (t.provenance_a, t.provenance_b):
            self.unknown_provenance += t.n


@dataclass
class ScopeCounts:
    """Every count a leaderboard shows for one scope of votes; ``rated[include_flagged]`` the rated part."""

    total: int = 0
    left_out: Counter = field(default_factory=Counter)  # LEFT_OUT_NOTES key -> votes
    rated: tuple[RatedCounts, RatedCounts] = field(default_factory=lambda: (RatedCounts(), RatedCounts()))

    def add(self, t: Tally) -> None:
        """Count a tally's votes (a new vote is a tally with n=1)."""
        reason = left_out_reason(t)
        self.total += t.n
        if reason is not None:
            self.left_out[reason] += t.n
        for include_flagged, rated in enumerate(self.rated):
            if is_rated(reason, bool(include_flagged)):
                rated.add(t)

    @classmethod
    def of(cls, tallies: Iterable[Tally]) -> ScopeCounts:
        counts = cls()
        for t in tallies:
            counts.add(t)
        return counts
