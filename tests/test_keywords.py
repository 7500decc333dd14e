"""Keyword-conditional generation in the evaluation: each context's keyword from its reference reply."""

from __future__ import annotations

from types import SimpleNamespace

from chatbot.sampling import PRESETS
from evaluation.decoding import chatbot_source
from evaluation.keywords import contains_word, reference_keyword
from evaluation.runner import Example


def test_reference_keyword_is_the_longest_non_stopword_first_of_equals():
    assert reference_keyword("I have never heard of toga. Is that where the Roman clothing gets its name?") == "clothing"
    assert reference_keyword("Pizza or pasta, honestly.") == "honestly"
    assert reference_keyword("pizza pasta") == "pizza"  # equally long: the first
    assert reference_keyword("Yourselves?? I don't know.") == "know"  # stopwords, even long ones, never count
    assert reference_keyword("I am. You are!") is None


def test_contains_word_is_whole_word_and_case_insensitive():
    assert contains_word("I love Pizza!", "pizza")
    assert contains_word("pizza's the best", "pizza")
    assert not contains_word("pizzas are great", "pizza")
    assert not contains_word("a mini-pizzeria", "pizza")


class RecordingBot:
    """A stand-in Chatbot that replies with its keywords and records how it was called."""

    def __init__(self):
        self.calls = []

    def generate_reply(self, history, *, persona=(), settings=None):
        self.calls.append(("one", settings.keywords))
        return SimpleNamespace(text=" ".join(settings.keywords) or "no keyword", candidates=[], fallback=False)

    def reply_batch(self, contexts, settings, *, personas=None, batch_size=16):
        self.calls.append(("batch", len(contexts)))
        return [SimpleNamespace(text="plain", candidates=[], fallback=False) for _ in contexts]


def examples() -> list[Example]:
    references = ["i love hiking in the mountains.", "and so am i.", "my dog is a golden retriever."]
    return [Example([f"context {i}"], ref, [], i, 1) for i, ref in enumerate(references)]


def test_keywords_from_reference_steer_each_context_to_its_own_keyword():
    bot = RecordingBot()
    settings = PRESETS["top-p"].replace(keywords=("always",))
    out = chatbot_source(bot, batch_size=2, progress=False, keywords_from_reference=True)(examples(), settings)
    # the settings' own keywords stay; a reference of stopwords only adds none
    assert bot.calls == [("one", ("always", "mountains")), ("one", ("always",)), ("one", ("always", "retriever"))]
    assert [g.text for g in out] == ["always mountains", "always", "always retriever"]


def test_without_the_flag_contexts_are_batched_with_the_settings_as_given():
    bot = RecordingBot()
    out = chatbot_source(bot, batch_size=2, progress=False)(examples(), PRESETS["top-p"])
    assert bot.calls == [("batch", 2), ("batch", 1)] and [g.text for g in out] == ["plain"] * 3


def test_evaluate_takes_the_flag():
    from evaluation.cli import parse_args

    config = parse_args(["--data", "chitchat", "--output", "out", "--keywords-from-reference"])[0]
    assert config.keywords_from_reference
    assert not parse_args(["--data", "chitchat", "--output", "out"])[0].keywords_from_reference
