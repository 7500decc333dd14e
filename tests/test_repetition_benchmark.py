"""The repetition benchmark's report on crafted utterances (the script itself runs by hand on chitchat)."""

from __future__ import annotations

from chatbot.filters import FilterSettings
from evaluation.benchmarks.repetition import judge, report_flagged, rule

TEXTS = [
    "i like italian",
    "I love pizza too! I love pizza too!",
    "I like to cook and cook a lot. I like to cook",
    "rororororo",
    "haha yes",
]


def test_rule_of_a_reason():
    assert rule("repeated phrase: 'i like to cook'") == "repeated phrase"
    assert rule("repeated sentence") == "repeated sentence"


def test_report_counts_rates_and_examples_per_rule(capsys):
    reasons = judge(TEXTS, FilterSettings())
    assert reasons == [None, "repeated sentence", "repeated phrase: 'i like to cook'", "token loop: 'rororororo'", None]
    report_flagged("crafted", TEXTS, reasons, examples=1)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "crafted: 3 of 5 flagged (60.00%)"
    assert "  repeated sentence          1 (20.00%)" in lines
    assert "      token loop: 'rororororo'  <-  'rororororo'" in lines
    assert len(lines) == 1 + 3 * 2  # one rule line and one example per rule
