"""Leaderboard maths on hand-made votes: tallies, Bradley-Terry, bootstrap intervals, names."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest

from chatbot.arena.leaderboard import (
    TABLE_HEADERS,
    leaderboard,
    preset_names,
    presets_json,
    short_name,
    table_rows,
)
from chatbot.arena.ratings import (
    BASE_RATING,
    Comparison,
    Tally,
    bootstrap_intervals,
    bradley_terry,
    comparisons_from_votes,
)

G = json.dumps({"do_sample": False}, sort_keys=True)
P = json.dumps({"do_sample": True, "temperature": 0.7, "top_p": 0.9}, sort_keys=True)
D = json.dumps({"do_sample": True, "temperature": 1.2, "top_p": 0.95}, sort_keys=True)
PRESETS_JSON = {"greedy": json.loads(G), "top-p": json.loads(P), "diverse": json.loads(D)}


INTERVAL = TABLE_HEADERS.index("95% interval")


def votes(a, b, pattern):
    return [Comparison(a, b, w) for w in pattern]


def test_bradley_terry_matches_the_closed_form_for_two_settings():
    # without the prior, two settings: p_a / p_b = wins_a / wins_b exactly
    ratings = bradley_terry(votes(G, P, ["A", "A", "A", "B"]), prior=0.0)
    assert ratings[G] - ratings[P] == pytest.approx(400 * math.log10(3), abs=1e-6)


def test_prior_keeps_an_unbeaten_setting_finite_and_symmetric():
    ratings = bradley_terry(votes(G, P, ["A"] * 5))
    assert math.isfinite(ratings[G]) and ratings[G] > BASE_RATING > ratings[P]
    assert ratings[G] - BASE_RATING == pytest.approx(BASE_RATING - ratings[P], abs=1e-6)


def test_ties_and_both_bad_are_draws():
    ratings = bradley_terry(votes(G, P, ["tie", "both-bad", "A", "B"]))
    assert ratings[G] == pytest.approx(BASE_RATING) and ratings[P] == pytest.approx(BASE_RATING)


def test_transitive_order_of_three_settings():
    # greedy beats top-p 4-1, top-p beats diverse 4-1, greedy beats diverse 2-1
    comparisons = votes(G, P, ["A"] * 4 + ["B"]) + votes(P, D, ["A"] * 4 + ["B"]) + votes(G, D, ["A", "A", "B"])
    ratings = bradley_terry(comparisons)
    assert ratings[G] > ratings[P] > ratings[D]


def test_unknown_winner_is_refused():
    with pytest.raises(ValueError, match="unknown winner"):
        bradley_terry([Comparison(G, P, "left")])


def test_bootstrap_is_seeded_and_brackets_the_rating():
    comparisons = votes(G, P, ["A"] * 6 + ["B"] * 2 + ["tie"])
    first = bootstrap_intervals(comparisons, rounds=100, seed=3)
    assert first == bootstrap_intervals(comparisons, rounds=100, seed=3)
    ratings = bradley_terry(comparisons)
    for identity, (low, high) in first.items():
        assert low <= ratings[identity] <= high
        assert high - low > 10  # nine votes leave real doubt
    assert bootstrap_intervals([], rounds=10) == {}


def test_leaderboard_rows_counts_and_order():
    comparisons = votes(G, P, ["A", "B", "B", "tie", "both-bad"]) + [Comparison(D, D, "A")]
    rows = leaderboard(comparisons, names=preset_names({"greedy": SimpleNamespace(identity=G)}), rounds=50)
    assert [r.identity for r in rows] == [P, G]  # D only played itself: left out
    top, bottom = rows
    assert (top.votes, top.wins, top.losses, top.ties, top.counts["both-bad"]) == (5, 2, 1, 2, 1)
    assert top.win_rate == pytest.approx(3 / 5)
    assert bottom.win_rate == pytest.approx(2 / 5)
    assert bottom.name == "greedy"
    assert top.name.startswith("custom-")
    assert table_rows(rows)[0][:6] == [1, top.name, 5, "2-1-2", 1, "60%"]
    assert table_rows(rows)[0][INTERVAL] == f"{round(top.low)} to {round(top.high)}"
    assert table_rows(leaderboard(comparisons[:4], rounds=10))[0][INTERVAL] == "needs more votes"
    assert leaderboard([]) == []


def test_names_by_preset_nearest_preset_or_hash():
    names = {G: "greedy"}
    assert short_name(G, names) == "greedy"
    warmer = json.dumps({"do_sample": True, "temperature": 1.0, "top_p": 0.9}, sort_keys=True)
    assert short_name(warmer, names, PRESETS_JSON) == "top-p, temperature=1.0"
    assert short_name(warmer, names) == short_name(warmer, names) and short_name(warmer).startswith("custom-")
    assert short_name("not json", None, PRESETS_JSON).startswith("custom-")


def test_presets_json_parses_each_identity():
    presets = {"greedy": SimpleNamespace(identity=G), "top-p": SimpleNamespace(identity=P)}
    assert presets_json(presets) == {"greedy": PRESETS_JSON["greedy"], "top-p": PRESETS_JSON["top-p"]}


def test_comparisons_from_vote_objects():
    vote = SimpleNamespace(settings_a_id=G, settings_b_id=P, winner="tie")
    assert comparisons_from_votes([vote]) == [Tally(G, P, "tie")]
