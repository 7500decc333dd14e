"""The arena's leaderboard: one row per sampling setting, with readable names and display rows.

Shared by the web app's A/B tab and the evaluation report::

    comparisons = comparisons_from_votes(store.votes())
    for row in leaderboard(comparisons, names=preset_names(PRESETS)):
        print(row.name, row.votes, row.win_rate, row.rating, row.low, row.high)

A tie and a "both bad" vote count as half a win for each side in the win rate (see
:mod:`chatbot.arena.ratings` for the rating and its interval); "both bad" is also counted
separately, because two bad replies say something about both settings that a tie does not.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from chatbot.arena.ratings import Comparison, bootstrap_intervals, bradley_terry, vote_points


@dataclass(frozen=True)
class Standing:
    """One leaderboard row."""

    identity: str
    name: str
    votes: int
    wins: int
    losses: int
    ties: int  # ties and both-bad together
    both_bad: int
    win_rate: float  # (wins + ties / 2) / votes
    rating: float
    low: float  # bootstrap interval of the rating
    high: float


def preset_names(presets: Mapping[str, object]) -> dict[str, str]:
    """identity -> preset name, from a mapping of name -> settings object with an ``identity`` attribute."""
    return {settings.identity: name for name, settings in presets.items()}


def presets_json(presets: Mapping[str, object]) -> dict[str, dict]:
    """preset name -> its identity parsed (the settings that matter), what ``short_name`` compares against."""
    return {name: json.loads(settings.identity) for name, settings in presets.items()}


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

    def differences(preset: dict) -> list[str]:
        keys = sorted(set(settings) | set(preset))
        return [f"{k}={settings.get(k)}" for k in keys if settings.get(k) != preset.get(k)]

    name, diff = min(((n, differences(p)) for n, p in presets_json.items()), key=lambda item: len(item[1]))
    if not diff or len(diff) > 3:
        return custom
    return f"{name}, {', '.join(diff)}"


def leaderboard(
    comparisons: Sequence[Comparison],
    names: Mapping[str, str] | None = None,
    presets_json: Mapping[str, dict] | None = None,
    rounds: int = 200,
    seed: int = 0,
) -> list[Standing]:
    """One row per setting compared so far, best rating first."""
    useful = [c for c in comparisons if c.a != c.b]
    ratings = bradley_terry(useful)
    intervals = bootstrap_intervals(useful, rounds=rounds, seed=seed)
    tally: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])  # wins, losses, ties, both-bad
    for c in useful:
        for me, points in ((c.a, vote_points(c)[0]), (c.b, vote_points(c)[1])):
            row = tally[me]
            row[0 if points == 1 else 1 if points == 0 else 2] += 1
            row[3] += c.winner == "both-bad"
    rows = []
    for identity, (wins, losses, ties, both_bad) in tally.items():
        votes = wins + losses + ties
        low, high = intervals[identity]
        rows.append(
            Standing(
                identity=identity,
                name=short_name(identity, names, presets_json),
                votes=votes,
                wins=wins,
                losses=losses,
                ties=ties,
                both_bad=both_bad,
                win_rate=(wins + ties / 2) / votes,
                rating=ratings[identity],
                low=low,
                high=high,
            )
        )
    rows.sort(key=lambda r: (-r.rating, r.name))
    return rows


MIN_VOTES_FOR_INTERVAL = 5  # below this a bootstrap interval looks precise and is not: say so instead
TABLE_HEADERS = ["rank", "setting", "votes", "W-L-T", "both bad", "win rate", "rating", "95% interval"]


def table_rows(standings: Sequence[Standing]) -> list[list]:
    """The leaderboard as display rows (rounded), in TABLE_HEADERS order."""
    return [
        [
            rank,
            s.name,
            s.votes,
            f"{s.wins}-{s.losses}-{s.ties}",
            s.both_bad,
            f"{s.win_rate:.0%}",
            round(s.rating),
            f"{round(s.low)} to {round(s.high)}" if s.votes >= MIN_VOTES_FOR_INTERVAL else "needs more votes",
        ]
        for rank, s in enumerate(standings, start=1)
    ]
