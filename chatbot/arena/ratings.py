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

# Over 400 lines on purpose: the raw and the length-controlled fit share one design matrix, Newton
# solver and bootstrap; kept together so both ratings stay the same model with and without a covariate.

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


class FitCell(NamedTuple):
    """Votes the fit cannot tell apart: the pair in identity order (a < b), a's points and the length covariate."""

    a: str
    b: str
    score: float
    x: float


def fit_cell(t: Tally | Comparison) -> FitCell | None:
    """The cell of a tally's votes; None for a setting against itself (no information about ratings).

    A vote of b against a is the same observation as one of a against b with the points and the
    covariate flipped, so each unordered pair has one set of cells: half the rows of ordered pairs.
    """
    if t.a == t.b:
        return None
    score = points(t.winner)[0]
    x = t.x if isinstance(t, Tally) else length_covariate(t.len_a, t.len_b)
    return FitCell(t.a, t.b, score, x) if t.a < t.b else FitCell(t.b, t.a, 1.0 - score, -x)


class CellTable:
    """Votes per fit cell, counted as they come, and the rows the point fit reads.

    A new vote costs a few dictionary updates. The point fit's rows merge the votes of one pair and
    length covariate and sum their points (the likelihood of votes that share p depends only on
    their count and their points), so a fit reads a few hundred rows as arrays, with no Python loop
    over votes or cells. The bootstrap reads ``cells``: a resample must draw votes, points included.
    """

    def __init__(self):
        self.cells: dict[FitCell, int] = {}
        self.players: dict[str, int] = {}  # identity -> its parameter, in order of appearance
        self._rows: dict[tuple[str, str, float], int] = {}  # (a, b, x) -> row
        self._a: list[int] = []
        self._b: list[int] = []
        self._x: list[float] = []
        self._n: list[int] = []
        self._points: list[float] = []

    def add(self, cell: FitCell, n: int = 1) -> None:
        self.cells[cell] = self.cells.get(cell, 0) + n
        key = (cell.a, cell.b, cell.x)
        row = self._rows.get(key)
        if row is None:
            row = self._rows[key] = len(self._n)
            self._a.append(self.players.setdefault(cell.a, len(self.players)))
            self._b.append(self.players.setdefault(cell.b, len(self.players)))
            self._x.append(cell.x)
            self._n.append(0)
            self._points.append(0.0)
        self._n[row] += n
        self._points[row] += cell.score * n

    @property
    def fit_rows(self) -> int:
        """Rows the point fit reads: one per pair and length covariate."""
        return len(self._n)

    def design(self, index: Mapping[str, int], length: bool) -> _Design:
        """The point fit's inputs, parameters numbered by ``index`` (which holds every player)."""
        order = np.array([index[name] for name in self.players], dtype=np.intp)  # this table's ids -> index
        g, k = len(self._n), len(index)
        X = np.zeros((g, k + int(length)))
        rows = np.arange(g)
        X[rows, order[np.asarray(self._a, dtype=np.intp)]] = 1.0
        X[rows, order[np.asarray(self._b, dtype=np.intp)]] = -1.0
        if length:
            X[:, k] = self._x
        n = np.asarray(self._n, dtype=float)
        score = np.divide(self._points, n, out=np.zeros(g), where=n > 0)
        return _Design(X, score, n, k)


def fit_cells(tallies: Iterable[Tally] | Iterable[Comparison]) -> CellTable:
    """Votes per fit cell: all the Bradley-Terry fit (and a resample of it) reads."""
    table = CellTable()
    for t in tallies:
        cell = fit_cell(t)
        if cell is not None:
            table.add(cell, t.n if isinstance(t, Tally) else 1)
    return table


def _identities(tallies: Sequence[Tally] | Sequence[Comparison]) -> set[str]:
    return {*(t.a for t in tallies), *(t.b for t in tallies)}


@dataclass(frozen=True)
class _Design:
    """The fit's inputs: one row per group of votes that share their probability (and, for a resample, points)."""

    X: np.ndarray  # (G, P): +1 for a's rating, -1 for b's, then x when length-controlled
    score: np.ndarray  # (G,) a's points per vote
    n: np.ndarray  # (G,) votes
    players: int  # K: the first K parameters are ratings


def _cell_design(cells: Mapping[FitCell, int], index: Mapping[str, int], length: bool) -> _Design:
    """One row per cell, in the mapping's order: what the bootstrap resamples."""
    keys = list(cells)
    k, g = len(index), len(keys)
    X = np.zeros((g, k + int(length)))
    rows = np.arange(g)
    X[rows, [index[c.a] for c in keys]] = 1.0
    X[rows, [index[c.b] for c in keys]] = -1.0
    if length:
        X[:, k] = [c.x for c in keys]
    score = np.array([c.score for c in keys], dtype=float)
    return _Design(X, score, np.array(list(cells.values()), dtype=float), k)


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


def _start(previous: Fit | None, index: Mapping[str, int], length: bool) -> np.ndarray | None:
    """Parameters of an earlier fit as a starting point (settings it did not have start at 1000)."""
    if previous is None:
        return None
    beta = np.zeros(len(index) + int(length))
    for name, i in index.items():
        beta[i] = (previous.ratings.get(name, BASE_RATING) - BASE_RATING) / ELO_SCALE
    if length:
        beta[-1] = previous.length_coef or 0.0
    return beta


def fit_from_cells(
    cells: CellTable,
    length: bool = False,
    identities: Iterable[str] = (),
    prior: float = 1.0,
    tol: float = 1e-10,
    max_iter: int = 100,
    start: Fit | None = None,
) -> Fit:
    """Bradley-Terry ratings from votes per fit cell; ``start``: an earlier fit of nearly the same votes
    (the leaderboard's previous one), from which Newton needs two or three steps instead of ten."""
    index = dict(cells.players)
    for name in sorted(set(identities) - index.keys()):
        index[name] = len(index)
    design = cells.design(index, length)
    beta = _newton(design, design.n[None, :], prior, tol, max_iter, _start(start, index, length))[0]
    return _to_fit(beta, index, length)


def fit_ratings(
    tallies: Sequence[Tally] | Sequence[Comparison],
    length: bool = False,
    identities: Iterable[str] = (),
    prior: float = 1.0,
    tol: float = 1e-10,
    max_iter: int = 100,
) -> Fit:
    """Bradley-Terry ratings on the Elo scale; with ``length`` the length coefficient is fitted too."""
    identities = {*identities, *_identities(tallies)}
    return fit_from_cells(fit_cells(tallies), length, identities, prior, tol, max_iter)


def bradley_terry(
    comparisons: Sequence[Comparison] | Sequence[Tally], identities: Iterable[str] = (), prior: float = 1.0
) -> dict[str, float]:
    """Raw Bradley-Terry ratings on the Elo scale: P(i beats j) = p_i / (p_i + p_j)."""
    return fit_ratings(comparisons, identities=identities, prior=prior).ratings


def bootstrap_cells(
    cells: Mapping[FitCell, int] | CellTable,
    length: bool = False,
    rounds: int = 200,
    level: float = 0.95,
    seed: int = 0,
    prior: float = 1.0,
) -> Intervals:
    """Percentile bootstrap intervals of the ratings (and the length coefficient), resampling votes.

    A resample of the votes with replacement is a multinomial draw of each cell's votes: votes of one
    cell are interchangeable for the fit. The cells are taken in sorted order, so the same votes give
    the same draws however they were counted.
    """
    cells = dict(sorted((cells.cells if isinstance(cells, CellTable) else cells).items()))
    index = {name: i for i, name in enumerate(sorted({*(c.a for c in cells), *(c.b for c in cells)}))}
    design = _cell_design(cells, index, length)
    total = int(design.n.sum())
    if total == 0 or rounds < 1:
        flat = {name: (BASE_RATING, BASE_RATING) for name in index}
        return Intervals(flat, (0.0, 0.0) if length else None)
    rng = np.random.default_rng(seed)
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


def bootstrap(
    tallies: Sequence[Tally] | Sequence[Comparison],
    length: bool = False,
    rounds: int = 200,
    level: float = 0.95,
    seed: int = 0,
    prior: float = 1.0,
) -> Intervals:
    """Percentile bootstrap intervals of the ratings (and the length coefficient), resampling votes."""
    return bootstrap_cells(fit_cells(tallies), length, rounds, level, seed, prior)


def bootstrap_intervals(
    comparisons: Sequence[Comparison] | Sequence[Tally],
    rounds: int = 200,
    level: float = 0.95,
    seed: int = 0,
    prior: float = 1.0,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap interval of each setting's raw Bradley-Terry rating."""
    return bootstrap(comparisons, rounds=rounds, level=level, seed=seed, prior=prior).ratings
