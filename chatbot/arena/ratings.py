"""Ratings from pairwise votes: Bradley-Terry fit on the Elo scale and its bootstrap interval.

Pure functions on plain values; :mod:`chatbot.arena.leaderboard` turns them into a table::

    comparisons = [Comparison(a=id_greedy, b=id_top_p, winner="B"), ...]
    ratings = bradley_terry(comparisons)
    intervals = bootstrap_intervals(comparisons, rounds=200, seed=0)

Choices (where the literature leaves room):

- A tie and a "both bad" vote count as half a win for each side, as Chatbot Arena does.
- Ratings are on the Elo scale (400 points = 10:1 odds) around 1000. Each setting also plays
  ``prior`` virtual games, drawn, against a fixed 1000-rated anchor: without it a setting that has
  only wins would get an infinite rating, and settings never compared with each other would have
  no common scale. With a handful of votes the ratings therefore stay near 1000, as they should.
- A setting compared with itself teaches nothing about the ranking; such votes are left out.
- The interval is the percentile bootstrap over votes (resampled with replacement), seeded, so the
  same votes always give the same table.
"""

from __future__ import annotations

import math
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


def comparisons_from_votes(votes: Iterable) -> list[Comparison]:
    """Comparisons from :class:`chatbot.arena.votes.Vote` objects (or anything with the same attributes)."""
    return [Comparison(v.settings_a_id, v.settings_b_id, v.winner) for v in votes]


def vote_points(c: Comparison) -> tuple[float, float]:
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
    scores = np.array([vote_points(c) for c in kept], dtype=float).reshape(-1, 2)
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
