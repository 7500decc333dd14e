"""Arena ratings: the Newton Bradley-Terry fit against scipy, length control on simulated votes, SQL tallies."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize

from chatbot.arena.counts import rated_tallies
from chatbot.arena.leaderboard import (
    IntervalCache,
    board_intervals,
    board_summary,
    build_board,
    with_intervals,
)
from chatbot.arena.ratings import (
    BASE_RATING,
    ELO_SCALE,
    Comparison,
    Tally,
    as_tallies,
    bootstrap,
    comparisons_from_votes,
    fit_cells,
    fit_from_cells,
    fit_ratings,
)
from chatbot.arena.votes import Vote, VoteStore

LONG, SHORT, MID = '{"s":"long"}', '{"s":"short"}', '{"s":"mid"}'

# a fixed vote set: three settings, every outcome, lengths that vary
FIXED = [
    Comparison(LONG, SHORT, "A", 20, 8),
    Comparison(LONG, SHORT, "A", 15, 12),
    Comparison(LONG, SHORT, "B", 9, 10),
    Comparison(LONG, SHORT, "tie", 18, 6),
    Comparison(SHORT, LONG, "B", 5, 25, swapped=True),
    Comparison(SHORT, LONG, "A", 11, 10),
    Comparison(SHORT, MID, "both-bad", 7, 7),
    Comparison(SHORT, MID, "B", 6, 14),
    Comparison(MID, SHORT, "A", 13, 9),
    Comparison(MID, LONG, "B", 12, 22),
    Comparison(MID, LONG, "A", 16, 14),
    Comparison(LONG, MID, "tie", 10, 10),
    Comparison(LONG, MID, "A", 30, 12),
]


def scipy_fit(comparisons, length: bool, prior: float = 1.0):
    """The same penalised likelihood, written out independently and minimised by scipy (Elo-scale parameters)."""
    players = sorted({p for c in comparisons for p in (c.a, c.b)})
    index = {p: i for i, p in enumerate(players)}
    points_a = {"A": 1.0, "B": 0.0, "tie": 0.5, "both-bad": 0.5}

    def negative_log_likelihood(params):
        ratings = params[: len(players)]
        gamma = params[len(players)] if length else 0.0
        total = 0.0
        for c in comparisons:
            x = (c.len_a - c.len_b) / (c.len_a + c.len_b)
            z = (ratings[index[c.a]] - ratings[index[c.b]]) / ELO_SCALE + gamma * x
            s = points_a[c.winner]
            total -= s * -np.logaddexp(0, -z) + (1 - s) * -np.logaddexp(0, z)
        for r in ratings:  # prior/2 won and prior/2 lost against an anchor rated 0
            total -= prior * 0.5 * (-np.logaddexp(0, -r / ELO_SCALE) - np.logaddexp(0, r / ELO_SCALE))
        return total

    start = np.zeros(len(players) + int(length))
    result = minimize(negative_log_likelihood, start, method="BFGS", options={"gtol": 1e-10, "maxiter": 10_000})
    ratings = {p: BASE_RATING + result.x[i] for p, i in index.items()}
    return ratings, (result.x[-1] if length else None)


@pytest.mark.parametrize("length", [False, True])
def test_newton_fit_matches_scipy_minimize_within_a_hundredth_of_a_rating_point(length):
    expected, gamma = scipy_fit(FIXED, length)
    # the store rounds the length covariate to 0.01: compare on exact covariates here
    exact = [Tally(c.a, c.b, c.winner, c.swapped, (c.len_a - c.len_b) / (c.len_a + c.len_b)) for c in FIXED]
    fit = fit_ratings(exact, length=length)
    for identity, rating in expected.items():
        assert fit.ratings[identity] == pytest.approx(rating, abs=0.01)
    if length:
        assert fit.length_coef == pytest.approx(gamma, abs=1e-4)
        assert fit.length_coef > 0  # the longer reply won more often in FIXED
    else:
        assert fit.length_coef is None


def simulated_length_only_votes(n: int = 2000, seed: int = 0, gamma: float = 3.0) -> list[Comparison]:
    """Two settings of equal quality; one writes longer replies, and the voter prefers length alone."""
    rng = np.random.default_rng(seed)
    votes = []
    for _ in range(n):
        len_long, len_short = int(rng.integers(8, 31)), int(rng.integers(3, 16))
        long_is_a = bool(rng.random() < 0.5)
        len_a, len_b = (len_long, len_short) if long_is_a else (len_short, len_long)
        x = (len_a - len_b) / (len_a + len_b)
        a_wins = rng.random() < 1 / (1 + np.exp(-gamma * x))
        a, b = (LONG, SHORT) if long_is_a else (SHORT, LONG)
        votes.append(Comparison(a, b, "A" if a_wins else "B", len_a, len_b, swapped=bool(rng.random() < 0.5)))
    return votes


def overlap(first: tuple[float, float], second: tuple[float, float]) -> bool:
    return first[0] <= second[1] and second[0] <= first[1]


def test_length_only_preference_separates_raw_ratings_but_not_length_controlled_ones():
    votes = simulated_length_only_votes()
    raw = bootstrap(votes, rounds=200, seed=0)
    controlled = bootstrap(votes, length=True, rounds=200, seed=0)
    assert not overlap(raw.ratings[LONG], raw.ratings[SHORT])
    assert raw.ratings[LONG][0] > raw.ratings[SHORT][1]  # raw: the long setting looks better
    assert overlap(controlled.ratings[LONG], controlled.ratings[SHORT])
    fit = fit_ratings(votes, length=True)
    assert fit.length_coef == pytest.approx(3.0, abs=0.6)  # recovers the simulated preference
    low, high = controlled.length_coef
    assert low < fit.length_coef < high and low > 1.0


def test_store_tallies_give_the_same_board_as_the_votes_one_by_one(tmp_path):
    store = VoteStore(tmp_path / "v.sqlite3")
    replies = {20: "w " * 20, 8: "w " * 8, 15: "w " * 15, 12: "w " * 12}
    for c in FIXED[:4] * 3:
        store.add(
            Vote(
                c.winner, c.a, c.a, c.b, c.b, replies.get(c.len_a, "a " * c.len_a), replies.get(c.len_b, "b " * c.len_b)
            )
        )
    tallies = store.tallies()
    assert sum(t.n for t in tallies) == 12 and len(tallies) == 4  # each distinct vote once, counted 3 times
    one_by_one = build_board(comparisons_from_votes(store.votes()))
    assert build_board(tallies) == one_by_one
    assert one_by_one.standings[0].identity == LONG and one_by_one.total == 12


def test_flagged_votes_are_left_out_by_default_with_their_reasons():
    tallies = [
        Tally(LONG, SHORT, "A", n=5, provenance_a="own", provenance_b="own"),
        Tally(LONG, SHORT, "A", n=3, provenance_a="fallback", provenance_b="own"),
        Tally(LONG, SHORT, "B", n=2, provenance_a="own", provenance_b="retry"),
        Tally(LONG, SHORT, "tie", n=4, identical=True),
        Tally(LONG, LONG, "A", n=1),
    ]
    rated, left_out = rated_tallies(tallies)
    assert sum(t.n for t in rated) == 5
    assert left_out == {"fallback": 3, "retry": 2, "identical": 4, "same-setting": 1}
    board = build_board(tallies)
    assert (board.total, board.rated) == (15, 5)
    assert [s.votes for s in board.standings] == [5, 5]
    summary = board_summary(board)
    assert "5 of 15 votes rated" in summary and "3 because a reply was a canned fallback" in summary
    included = build_board(tallies, include_flagged=True)
    assert included.rated == 14 and included.left_out == left_out  # the same-setting vote is never rated
    assert "counted anyway" in board_summary(included)


def test_left_and_right_win_rates_show_position_bias():
    # the left reply always wins: A on the left (not swapped) or B on the left (swapped)
    tallies = [Tally(LONG, SHORT, "A", swapped=False, n=6), Tally(LONG, SHORT, "B", swapped=True, n=4)]
    board = build_board(tallies)
    assert board.left_points == 1.0
    long_row = next(s for s in board.standings if s.identity == LONG)
    assert (long_row.left_votes, long_row.left_win_rate, long_row.right_votes, long_row.right_win_rate) == (
        6,
        1.0,
        4,
        0.0,
    )
    assert "left reply won 100%" in board_summary(board)


def test_interval_cache_computes_in_the_background_then_fills_the_board():
    votes = as_tallies(simulated_length_only_votes(300))
    cache = IntervalCache(rounds=50)
    board = build_board(votes)
    assert not board.intervals and "updating" in board_summary(board)
    cells = fit_cells(votes)
    first = cache.get("300 votes", lambda: cells.cells)
    ready = cache.wait("300 votes", lambda: cells.cells, timeout=60)
    assert first is None and ready is not None
    assert ready == board_intervals(votes, False, rounds=50)
    filled = with_intervals(board, *ready)
    assert filled.intervals and filled.length_interval is not None
    assert all(s.low <= s.rating <= s.high and s.lc_low <= s.lc_rating <= s.lc_high for s in filled.standings)


def assert_same_board(live_board, expected):
    """Counts equal; ratings equal up to the fit's tolerance (the live fits start from earlier ratings)."""
    assert (live_board.total, live_board.rated, live_board.left_out) == (
        expected.total,
        expected.rated,
        expected.left_out,
    )
    assert [(s.identity, s.votes, s.counts) for s in live_board.standings] == [
        (s.identity, s.votes, s.counts) for s in expected.standings
    ]
    for got, want in zip(live_board.standings, expected.standings, strict=True):
        assert got.rating == pytest.approx(want.rating, abs=1e-6)
        assert got.lc_rating == pytest.approx(want.lc_rating, abs=1e-6)
    assert live_board.length_coef == pytest.approx(expected.length_coef, abs=1e-8)


def test_live_board_catches_up_with_votes_from_anywhere_and_with_clears(tmp_path):
    from chatbot.arena.live import LiveBoard

    store = VoteStore(tmp_path / "v.sqlite3")
    live = LiveBoard(store, {}, rounds=20)
    other = VoteStore(tmp_path / "v.sqlite3")  # another process's store object: its own connections

    def vote(c: Comparison, fingerprint: str, **extra) -> Vote:
        return Vote(c.winner, c.a, c.a, c.b, c.b, "a " * c.len_a, "b " * c.len_b, fingerprint=fingerprint, **extra)

    assert live.board("m1@1").total == 0 and live.models() == []
    store.add_many([vote(c, "m1@1") for c in FIXED])
    assert_same_board(live.board("m1@1"), build_board(store.tallies("m1@1")))
    other.add(vote(FIXED[0], "m2@2"))
    other.add(vote(FIXED[1], "m1@1", provenance_a="retry"))
    board = live.board("m1@1")
    assert board.total == len(FIXED) + 1 and board.left_out == {"retry": 1}
    assert_same_board(board, build_board(store.tallies("m1@1")))
    assert_same_board(
        live.board("m1@1", include_flagged=True), build_board(store.tallies("m1@1"), include_flagged=True)
    )
    assert [(m.fingerprint, m.votes) for m in live.models()] == [("m1@1", 14), ("m2@2", 1)]
    assert live.board(None).total == 15
    other.clear("m1@1")  # a vote the live board counted is gone: it reads the store's tallies again
    assert live.board("m1@1").total == 0 and live.board(None).total == 1
    store.add(vote(FIXED[2], "m2@2"))
    assert_same_board(live.board("m2@2"), build_board(store.tallies("m2@2")))
    assert [(m.fingerprint, m.votes) for m in live.models()] == [("m2@2", 2)]
    filled = live.board("m2@2", wait=True)
    assert filled.intervals and all(s.low is not None for s in filled.standings)


def test_a_fit_started_from_earlier_ratings_ends_where_a_cold_fit_does():
    votes = simulated_length_only_votes(400)
    earlier = fit_ratings(votes[:300], length=True)
    cells = fit_cells(votes)
    warm = fit_from_cells(cells, length=True, start=earlier)
    cold = fit_ratings(votes, length=True)
    assert warm.ratings == pytest.approx(cold.ratings, abs=1e-8)
    assert warm.length_coef == pytest.approx(cold.length_coef, abs=1e-10)


def test_live_board_names_a_setting_by_a_preset_saved_after_it_was_made(tmp_path):
    from chatbot.arena.live import LiveBoard
    from chatbot.sampling import PRESETS

    presets = {"greedy": PRESETS["greedy"]}  # the app's mapping, which "Save as preset" extends in place
    store = VoteStore(tmp_path / "v.sqlite3")
    live = LiveBoard(store, presets, rounds=20)
    mine = PRESETS["top-p"].replace(min_p=0.07)
    greedy = PRESETS["greedy"]
    store.add(Vote("A", mine.identity, mine.to_json(), greedy.identity, greedy.to_json(), "a b", "c d"))
    assert {s.name for s in live.board(None).standings} != {"greedy", "my-min-p"}
    presets["my-min-p"] = mine
    assert {s.name for s in live.board(None).standings} == {"greedy", "my-min-p"}
