"""Failure labels on crafted replies."""

from __future__ import annotations

import pytest

from evaluation.failures import (
    LABELS,
    FailureConfig,
    count_labels,
    examples_of,
    failure_labels,
    frequent_replies,
    label_replies,
)

CONTEXT = ["i have a dog named max.", "what breed is your dog?"]
CONFIG = FailureConfig(min_words=2, max_words=12)


def labels(reply, coherence=0.5, frequent=frozenset(), profanity=False):
    return failure_labels(reply, CONTEXT, coherence, 0.1, set(frequent), CONFIG, profanity=profanity)


@pytest.mark.parametrize(
    "reply, expected",
    [
        ("he is a golden retriever.", []),
        ("", ["empty"]),
        (" ?! ", ["empty"]),
        ("retriever", ["too-short"]),
        ("he is a very good dog and he likes to run in the park every day", ["too-long"]),
        ("i like dogs a lot. i like dogs a lot.", ["repetition"]),  # the same sentence twice
        ("What breed is your dog?", ["repetition"]),  # echoes the user
        ("I have a dog named Max!", ["repetition"]),  # repeats the bot's own earlier turn
        ("I don't know.", ["generic"]),
        ("hmm, i'm not sure really", ["generic"]),
    ],
)
def test_labels_on_crafted_replies(reply, expected):
    assert labels(reply) == expected


def test_off_topic_profanity_and_frequent():
    assert labels("the stock market fell today", coherence=0.02) == ["off-topic"]
    assert labels("he is a golden retriever.", coherence=None) == []  # no coherence measured: no label
    assert labels("he is a golden retriever.", profanity=True) == ["profanity"]
    assert labels("he is a golden retriever", frequent={"he is golden retriever"}) == ["generic"]
    assert labels("", profanity=True) == ["empty", "profanity"]


def test_frequent_replies_need_share_and_count():
    replies = ["i like it."] * 3 + [f"reply number {i}" for i in range(17)]
    assert frequent_replies(replies, FailureConfig()) == {"i like it"}  # 3 of 20 >= 5% and >= 3
    assert frequent_replies(replies[:2] + replies[3:], FailureConfig()) == set()


def test_label_replies_counts_and_examples():
    replies = ["he is a golden retriever.", "", "I don't know", "i don't know."]
    per_reply = label_replies(replies, [CONTEXT] * 4, [0.5, 0.0, 0.5, 0.01], 0.1, CONFIG)
    assert per_reply == [[], ["empty"], ["generic"], ["off-topic", "generic"]]
    counts = count_labels(per_reply)
    assert set(LABELS) <= set(counts) and counts["generic"] == 2 and counts["any"] == 3 and counts["too-long"] == 0
    assert examples_of(per_reply, "generic", limit=1) == [2]


def test_config_validation():
    with pytest.raises(ValueError, match="min_words"):
        FailureConfig(min_words=5, max_words=3)


def test_shown_profanity_uses_the_chatbot_filter_lists():
    from evaluation.runner import shown_is_profane

    assert shown_is_profane("you are a shit")
    assert not shown_is_profane("oh my god, i could kill for a pizza")  # whitelisted everyday words
