"""Rank sampling settings from pairwise votes: counts, win rate, Bradley-Terry rating, bootstrap interval.

Pure functions on plain values, shared by the web app's A/B tab and the evaluation report::

    comparisons = [Comparison(a=id_greedy, b=id_top_p, winner="B"), ...]
    for row in leaderboard(comparisons, names=preset_names(PRESETS)):
        print(row.name, row.votes, row.win_rate, row.rating, row.low, row.high)

Choices (where the literature leaves room):

- A tie and a "both bad" vote count as half a win for each side, in the win rate and in the
  rating, as Chatbot Arena does; "both bad" is also counted separately, because two bad replies
  say something about both settings that a tie does not.
- Ratings are on the Elo scale (400 points = 10:1 odds) around 1000. Each setting also plays
  ``prior`` virtual games, drawn, against a fixed 1000-rated anchor: without it a setting that has
  only wins would get an infinite rating, and settings never compared with each other would have
  no common scale. With a handful of votes the ratings therefore stay near 1000, as they should.
- A setting compared with itself teaches nothing about the ranking; such votes are left out.
- The interval is the percentile bootstrap over votes (resampled with replacement), seeded, so the
  same votes always give the same table.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

BASE_RATING = 1000.0
ELO_SCALE = 400.0 / math.log(10)  # rating points per unit of natural-log strength


@dataclass(frozen=True)
class Comparison:
    """One vote between two settings, named by their stable identities."""

    a: str
    b: str
    winner: str  # "A", "B", "tie" or "both-bad"


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


def comparisons_from_votes(votes: Iterable) -> list[Comparison]:
    """Comparisons from :class:`chatbot.votes.Vote` objects (or anything with the same attributes)."""
    return [Comparison(v.settings_a_id, v.settings_b_id, v.winner) for v in votes]


def _scores(c: Comparison) -> tuple[float, float]:
    """Points of (a, b) in one vote: 1/0, 0/1, or half each for a tie or both-bad."""
    if c.winner == "A":
        return 1.0, 0.0
    if c.winner == "B":
        return 0.0, 1.0
    if c.winner in ("tie", "both-bad"):
        return 0.5, 0.5
    raise ValueError(f"unknown winner {c.winner!r}; expected A, B, tie or both-bad")


def _fit(wins: np.ndarray, prior: float, tol: float, max_iter: int) -> np.ndarray:
    """Log-strengths from points matrices, wins[..., i, j] = points of i against j (MM updates).

    Works on one (K, K) matrix or a stack (R, K, K) of bootstrap resamples at once.
    """
    games = wins + np.swapaxes(wins, -1, -2)
    points = wins.sum(axis=-1) + prior / 2  # plus half of the prior's drawn games against the anchor
    strength = np.ones(wins.shape[:-1])
    for _ in range(max_iter):
        # anchor games: prior of them against strength 1; the diagonal of games is 0
        pair_sum = strength[..., :, None] + strength[..., None, :]
        new = points / (prior / (strength + 1.0) + (games / pair_sum).sum(axis=-1))
        change = np.abs(np.log(new / strength)).max(initial=0.0)
        strength = new
        if change < tol:
            break
    return np.log(strength)


def _points_matrix(comparisons: Sequence[Comparison], index: Mapping[str, int], weights=None) -> np.ndarray:
    """wins[i, j] = points of i against j; ``weights``: how often each vote counts (a bootstrap draw)."""
    kept = [c for c in comparisons if c.a != c.b]  # a setting against itself carries no information
    weight = (
        np.ones(len(kept))
        if weights is None
        else np.asarray(weights, dtype=float)[[k for k, c in enumerate(comparisons) if c.a != c.b]]
    )
    a = np.array([index[c.a] for c in kept], dtype=int)
    b = np.array([index[c.b] for c in kept], dtype=int)
    scores = np.array([_scores(c) for c in kept], dtype=float).reshape(-1, 2)
    wins = np.zeros((len(index), len(index)))
    np.add.at(wins, (a, b), weight * scores[:, 0])
    np.add.at(wins, (b, a), weight * scores[:, 1])
    return wins


def _players(comparisons: Sequence[Comparison], identities: Iterable[str] = ()) -> dict[str, int]:
    names = sorted({*identities, *(p for c in comparisons for p in (c.a, c.b))})
    return {name: i for i, name in enumerate(names)}


def bradley_terry(
    comparisons: Sequence[Comparison],
    identities: Iterable[str] = (),
    prior: float = 1.0,
    tol: float = 1e-10,
    max_iter: int = 5000,
) -> dict[str, float]:
    """Bradley-Terry ratings on the Elo scale, fitted by Hunter's MM algorithm (2004).

    P(i beats j) = p_i / (p_i + p_j). Every setting in ``comparisons`` or ``identities`` gets a
    rating; ``prior`` drawn games against a fixed anchor of strength 1 keep every rating finite.
    """
    index = _players(comparisons, identities)
    log_strength = _fit(_points_matrix(comparisons, index), prior, tol, max_iter)
    return {name: BASE_RATING + ELO_SCALE * float(log_strength[i]) for name, i in index.items()}


def _quantile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolated quantile of already sorted values."""
    pos = q * (len(sorted_values) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def bootstrap_intervals(
    comparisons: Sequence[Comparison],
    rounds: int = 200,
    level: float = 0.95,
    seed: int = 0,
    prior: float = 1.0,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap interval of each setting's Bradley-Terry rating, resampling votes."""
    index = _players(comparisons)
    if not comparisons or rounds < 1:
        return {p: (BASE_RATING, BASE_RATING) for p in index}
    rng = np.random.default_rng(seed)
    # a resample with replacement is a multinomial count of how often each vote was drawn
    draws = rng.multinomial(len(comparisons), np.full(len(comparisons), 1 / len(comparisons)), size=rounds)
    samples = _fit(np.stack([_points_matrix(comparisons, index, d) for d in draws]), prior, 1e-6, 5000)
    samples = BASE_RATING + ELO_SCALE * np.sort(samples, axis=0)  # (rounds, K)
    tail = (1 - level) / 2
    return {
        name: (_quantile(samples[:, i].tolist(), tail), _quantile(samples[:, i].tolist(), 1 - tail))
        for name, i in index.items()
    }


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
        for me, points in ((c.a, _scores(c)[0]), (c.b, _scores(c)[1])):
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
