"""Ratings from pairwise votes: Bradley-Terry on the Elo scale, raw and length-controlled, with bootstrap intervals.

Pure functions on plain values; :mod:`chatbot.arena.leaderboard` turns them into a table. They work
on :class:`Tally` rows, votes counted per (pair, winner, side swap, length covariate, ...) as the
vote store aggregates them in SQL, so a fit costs the same at 100 votes and at 100,000::

    tallies = store.tallies(fingerprint)          # or tallies_from_comparisons([...])
    fit = fit_ratings(tallies, length=True)       # Fit(ratings={identity: 1043.2, ...}, length_coef=0.41)
    intervals = bootstrap(tallies, length=True, rounds=200, seed=0)

The model: P(A beats B) = sigmoid(theta_A - theta_B + gamma * x) with x = (len_A - len_B) / (len_A + len_B)
in words. ``gamma = 0`` is the raw Bradley-Terry fit; fitting gamma too is Chatbot Arena's "style
control" for length: the ratings then say how good a setting is at equal length, and gamma says how
much longer replies were preferred for their length alone.

Choices (where the literature leaves room):

- A tie and a "both bad" vote count as half a win for each side (the points come from
  :mod:`chatbot.arena.kinds`), as Chatbot Arena does.
- Ratings are on the Elo scale (400 points = 10:1 odds) around 1000. Each setting also plays
  ``prior`` virtual games, drawn, against a fixed 1000-rated anchor: without it a setting that has
  only wins would get an infinite rating, and settings never compared with each other would have
  no common scale. With a handful of votes the ratings therefore stay near 1000, as they should.
  The length coefficient has no prior.
- The fit is Newton's method on the penalised log-likelihood (concave, so it converges in a few
  steps); the bootstrap runs all its resamples as one batch of Newton steps.
- The interval is the percentile bootstrap over votes (resampled with replacement), seeded, so the
  same votes always give the same table.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from chatbot.arena.kinds import points
from chatbot.bootstrap import percentile_interval

BASE_RATING = 1000.0
ELO_SCALE = 400.0 / math.log(10)  # rating points per unit of natural-log strength
MAX_STEP = 2.0  # largest Newton step per parameter (log-odds): keeps early steps from overshooting


@dataclass(frozen=True)
class Comparison:
    """One vote between two settings, named by their stable identities, with its replies' word counts."""

    a: str
    b: str
    winner: str  # a stored winner: "A", "B" or a shared kind ("tie", "both-bad")
    len_a: int = 0
    len_b: int = 0
    swapped: bool = False


class Tally(NamedTuple):
    """``n`` votes that agree on everything the ratings and the leaderboard look at (a tuple: thousands are
    read on every vote, and tuples sort and hash fast)."""

    a: str
    b: str
    winner: str
    swapped: bool = False
    x: float = 0.0  # length covariate: (len_a - len_b) / (len_a + len_b), words, see length_covariate
    provenance_a: str = "unknown"
    provenance_b: str = "unknown"
    identical: bool = False
    n: int = 1


class Tallies(list):
    """Tallies with equal ones merged, in one fixed order (what :func:`as_tallies` returns)."""


@dataclass(frozen=True)
class Fit:
    """Ratings on the Elo scale and, for a length-controlled fit, the length coefficient (log-odds per unit x)."""

    ratings: dict[str, float]
    length_coef: float | None = None


@dataclass(frozen=True)
class Intervals:
    """Bootstrap intervals of the ratings and of the length coefficient (None for a raw fit)."""

    ratings: dict[str, tuple[float, float]] = field(default_factory=dict)
    length_coef: tuple[float, float] | None = None


LENGTH_STEPS = 20  # the length covariate is counted in steps of 1/20: fewer tallies, no visible change


def length_covariate(len_a: int, len_b: int) -> float:
    """(len_a - len_b) / (len_a + len_b) in steps of 1/LENGTH_STEPS (0 for two empty replies).

    Rounded half away from zero with the same floating-point steps as SQLite's ROUND in the vote
    store's tally trigger, so both give the same tallies.
    """
    scaled = LENGTH_STEPS * (len_a - len_b) / max(len_a + len_b, 1)
    return math.copysign(math.floor(abs(scaled) + 0.5), scaled) / LENGTH_STEPS


def comparisons_from_votes(votes: Iterable) -> list[Tally]:
    """One tally per :class:`chatbot.arena.votes.Vote` (or anything with the same attributes), provenance kept."""
    return [
        Tally(
            v.settings_a_id,
            v.settings_b_id,
            v.winner,
            bool(getattr(v, "swapped", False)),
            length_covariate(getattr(v, "len_a", None) or 0, getattr(v, "len_b", None) or 0),
            getattr(v, "provenance_a", "unknown"),
            getattr(v, "provenance_b", "unknown"),
            bool(getattr(v, "identical", False)),
        )
        for v in votes
    ]


def tallies_from_rows(rows: Iterable[tuple]) -> Tallies:
    """Tallies from SQL rows in Tally field order, unique and sorted by that order (``ORDER BY`` the key).

    No conversion per row: SQLite's 0/1 compare and hash equal to False/True, and thousands of rows
    are read on every vote.
    """
    return Tallies(map(Tally._make, rows))


def as_tallies(votes: Sequence[Comparison] | Sequence[Tally]) -> Tallies:
    """Tallies from comparisons (one vote each) or tallies, equal ones merged, in one fixed order.

    The order fixes the bootstrap's draws: the same votes give the same intervals whether they come
    from SQL (any row order) or from vote objects one by one.
    """
    if isinstance(votes, Tallies):
        return votes
    merged: dict[tuple, int] = {}
    for v in votes:
        if isinstance(v, Tally):
            key, n = v[:-1], v.n
        else:
            key, n = (v.a, v.b, v.winner, v.swapped, length_covariate(v.len_a, v.len_b), "unknown", "unknown", False), 1
        merged[key] = merged.get(key, 0) + n
    return Tallies(Tally(*key, n) for key, n in sorted(merged.items()))


def vote_points(c: Comparison | Tally) -> tuple[float, float]:
    """Points of (a, b) in one vote: 1/0, 0/1, or a shared kind's points (half each for a tie)."""
    return points(c.winner)


def _players(tallies: Sequence[Tally], identities: Iterable[str] = ()) -> dict[str, int]:
    names = sorted({*identities, *(t.a for t in tallies), *(t.b for t in tallies)})
    return {name: i for i, name in enumerate(names)}


@dataclass(frozen=True)
class _Design:
    """The fit's inputs: one row per tally with a vote between different settings."""

    X: np.ndarray  # (G, P): +1 for A's rating, -1 for B's, then x when length-controlled
    score: np.ndarray  # (G,) A's points per vote
    n: np.ndarray  # (G,) votes
    players: int  # K: the first K parameters are ratings


def _design(tallies: Sequence[Tally], index: Mapping[str, int], length: bool) -> _Design:
    kept = [t for t in tallies if t.a != t.b]  # a setting against itself carries no information
    k = len(index)
    X = np.zeros((len(kept), k + int(length)))
    rows = np.arange(len(kept))
    X[rows, [index[t.a] for t in kept]] = 1.0
    X[rows, [index[t.b] for t in kept]] = -1.0
    if length:
        X[:, k] = [t.x for t in kept]
    score_of = {w: points(w)[0] for w in {t.winner for t in kept}}
    score = np.array([score_of[t.winner] for t in kept], dtype=float)
    return _Design(X, score, np.array([t.n for t in kept], dtype=float), k)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # no overflow for large |z|


def _newton(
    design: _Design, weights: np.ndarray, prior: float, tol: float, max_iter: int, start: np.ndarray | None = None
) -> np.ndarray:
    """Maximise the penalised log-likelihood for each row of ``weights`` (R, G); returns (R, P) parameters.

    Log-likelihood: sum_g w_g [s_g log p_g + (1 - s_g) log(1 - p_g)], p_g = sigmoid(X_g . beta),
    plus, per setting, ``prior`` games drawn against a rating-0 anchor: prior/2 log sigmoid(theta)
    + prior/2 log sigmoid(-theta).
    """
    X, s, k = design.X, design.score, design.players
    r, p = weights.shape[0], X.shape[1]
    beta = np.zeros((r, p)) if start is None else np.repeat(start[None, :], r, axis=0)  # (R, P)
    ridge = 1e-9 * np.eye(p)  # with prior 0 the ratings are defined up to a shift: pick the smallest step
    diag = np.arange(k)
    for _ in range(max_iter):
        prob = _sigmoid(beta @ X.T)  # (R, G)
        grad = (weights * (s - prob)) @ X  # (R, P)
        hess = (X.T[None, :, :] * (weights * prob * (1 - prob))[:, None, :]) @ X  # (R, P, P)
        anchor = _sigmoid(beta[:, :k])
        grad[:, :k] += prior * (0.5 - anchor)
        hess[:, diag, diag] += prior * anchor * (1 - anchor)
        step = np.linalg.solve(hess + ridge, grad[..., None])[..., 0]
        step = np.clip(step, -MAX_STEP, MAX_STEP)
        beta += step
        if np.abs(step).max(initial=0.0) < tol:
            break
    return beta


def _to_fit(beta: np.ndarray, index: Mapping[str, int], length: bool) -> Fit:
    ratings = {name: BASE_RATING + ELO_SCALE * float(beta[i]) for name, i in index.items()}
    return Fit(ratings, float(beta[len(index)]) if length else None)


def fit_ratings(
    tallies: Sequence[Tally] | Sequence[Comparison],
    length: bool = False,
    identities: Iterable[str] = (),
    prior: float = 1.0,
    tol: float = 1e-10,
    max_iter: int = 100,
) -> Fit:
    """Bradley-Terry ratings on the Elo scale; with ``length`` the length coefficient is fitted too."""
    tallies = as_tallies(tallies)
    index = _players(tallies, identities)
    design = _design(tallies, index, length)
    beta = _newton(design, design.n[None, :], prior, tol, max_iter)[0]
    return _to_fit(beta, index, length)


def bradley_terry(
    comparisons: Sequence[Comparison] | Sequence[Tally], identities: Iterable[str] = (), prior: float = 1.0
) -> dict[str, float]:
    """Raw Bradley-Terry ratings on the Elo scale: P(i beats j) = p_i / (p_i + p_j)."""
    return fit_ratings(comparisons, identities=identities, prior=prior).ratings


def bootstrap(
    tallies: Sequence[Tally] | Sequence[Comparison],
    length: bool = False,
    rounds: int = 200,
    level: float = 0.95,
    seed: int = 0,
    prior: float = 1.0,
) -> Intervals:
    """Percentile bootstrap intervals of the ratings (and the length coefficient), resampling votes."""
    tallies = as_tallies(tallies)
    index = _players(tallies)
    design = _design(tallies, index, length)
    total = int(design.n.sum())
    if total == 0 or rounds < 1:
        flat = {name: (BASE_RATING, BASE_RATING) for name in index}
        return Intervals(flat, (0.0, 0.0) if length else None)
    rng = np.random.default_rng(seed)
    # a resample of the votes with replacement is a multinomial count of each tally's votes
    draws = rng.multinomial(total, design.n / total, size=rounds).astype(float)  # (R, G)
    point = _newton(design, design.n[None, :], prior, 1e-8, 100)[0]
    beta = _newton(design, draws, prior, 1e-6, 100, start=point)  # resamples start at the point fit: few steps
    low, high = percentile_interval(beta, level)  # over the resamples, per parameter
    ratings = {
        name: (BASE_RATING + ELO_SCALE * float(low[i]), BASE_RATING + ELO_SCALE * float(high[i]))
        for name, i in index.items()
    }
    k = len(index)
    return Intervals(ratings, (float(low[k]), float(high[k])) if length else None)


def bootstrap_intervals(
    comparisons: Sequence[Comparison] | Sequence[Tally],
    rounds: int = 200,
    level: float = 0.95,
    seed: int = 0,
    prior: float = 1.0,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap interval of each setting's raw Bradley-Terry rating."""
    return bootstrap(comparisons, rounds=rounds, level=level, seed=seed, prior=prior).ratings
