"""Reply filters on crafted text: each check, the profanity index against better-profanity, settings."""

from __future__ import annotations

import time

import pytest
from better_profanity import Profanity

from chatbot.errors import SettingsError
from chatbot.filters import (
    DEFAULT_WHITELIST,
    FilterContext,
    FilterSettings,
    ProfanityIndex,
    ReplyFilter,
    check_degenerate,
    check_length,
    check_loop,
    hide_word,
    words,
)


@pytest.fixture(scope="module")
def library():
    return Profanity()  # better-profanity's own matcher, default list (slow to build: once per module)


@pytest.fixture(scope="module")
def index():
    return ProfanityIndex()  # the same list, no whitelist


def test_degenerate_output():
    assert check_degenerate("") == "empty"
    assert check_degenerate("   \n") == "empty"
    assert check_degenerate("", raw_text="<|user|><|bot|>") == "only special tokens"
    assert check_degenerate("?! ... :)") == "only punctuation"
    assert check_degenerate("ok.") is None


def test_length_in_words():
    assert words("I'm fine, thanks!") == ["i'm", "fine", "thanks"]
    assert check_length(0, 1, 5) == "too short (0 words < 1)"
    assert check_length(6, 1, 5) == "too long (6 words > 5)"
    assert check_length(5, 1, 5) is None


def test_loop_detection():
    assert check_loop(words("i like it i like it i like it"), 3, 2) == "loops on 'i like it' (3 times)"
    assert check_loop(words("no no no no no"), 3, 2) == "loops on 'no no no' (3 times)"
    assert check_loop(words("i don't know, i don't know."), 3, 2) is None
    assert check_loop(words("a b"), 3, 2) is None


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("...", "only punctuation"),
        ("word " * 61, "too long (61 words > 60)"),
        ("you are a bitch", "profanity (b****)"),
        ("you are a b1tch", "profanity (b****)"),
        ("what a bull shit answer", "profanity (b********)"),
        ("hi, how are you?", "echoes the user's message"),
        ("Hi how are you", "echoes the user's message"),
        ("i like pizza a lot.", "repeats a recent bot reply"),
        ("yes yes yes yes yes", "loops on 'yes yes yes' (3 times)"),
        ("i am good, thanks. how about you?", None),
        ("good, how are you?", None),  # answering with the same question is ordinary chit-chat
    ],
)
def test_reply_filter_on_crafted_candidates(text, reason):
    context = FilterContext(last_user="hi, how are you?", recent_bot=("i like pizza a lot!", "where do you live?"))
    assert ReplyFilter(FilterSettings()).check(text, context) == reason


def test_repetition_looks_only_at_the_last_replies():
    old = FilterContext(recent_bot=("i like pizza.", "a", "b", "c"))
    settings = FilterSettings(repeat_window=3)
    assert ReplyFilter(settings).check("i like pizza.", old) is None
    assert ReplyFilter(settings.replace(repeat_window=4)).check("i like pizza.", old) == "repeats a recent bot reply"
    assert ReplyFilter(settings.replace(repeat_window=0)).check("c", old) is None


def test_switches():
    context = FilterContext(last_user="hello there")
    assert ReplyFilter(FilterSettings(echo=False)).check("hello there", context) is None
    assert ReplyFilter(FilterSettings(profanity=False)).check("oh shit", context) is None
    assert ReplyFilter(FilterSettings(loop_ngram=0)).check("no no no no no", context) is None
    assert ReplyFilter(FilterSettings(min_words=3)).check("ok then", context) == "too short (2 words < 3)"


def test_profanity_whitelist_and_extra_words():
    default = ReplyFilter(FilterSettings())
    for word in ("god", "kill", "ugly", "murder", "omg"):
        assert default.check(f"oh my {word}, really", None) is None, word
    strict = ReplyFilter(FilterSettings(profanity_whitelist=()))
    assert strict.check("oh my god, really", None) == "profanity (g***)"
    extra = ReplyFilter(FilterSettings(profanity_extra_words=("provo",)))
    assert extra.check("i live in Provo now", None) == "profanity (P****)"
    assert extra.check("i live in pr0v0 now", None) == "profanity (p****)"  # the library's leetspeak map


def test_whitelist_only_removes_ordinary_words():
    # the whitelist is short and every entry is an ordinary word; slurs and insults stay listed
    unfiltered = ProfanityIndex()
    assert all(unfiltered.find(word) == word for word in DEFAULT_WHITELIST)  # each one was a real hit
    assert len(DEFAULT_WHITELIST) <= 25
    filt = ReplyFilter(FilterSettings())
    for word in ("fuck", "shit", "bitch", "stupid", "crap"):
        assert filt.profanity.find(f"you {word}") == word


AGREEMENT_TEXTS = [
    "hello there, how are you today?",
    "that is fucking great",
    "F*ck this",
    "sh1t happens",
    "a$$hole driver",
    "he is such a b!tch",  # '!' is no word character for better-profanity: neither flags it
    "what the hell is that",
    "bull shit",
    "blow_job",
    "f.u.c.k off",
    "f u c k you",
    "2 girls 1 cup",
    "i love my dog and my cat",
    "an assassin in the class",
    "Scunthorpe is a town",
    "we went to the shitake mushroom farm",
    "I went to Provo on my mission",
    "she is so pretty",
    "",
    "!!!",
    "ass",
]


@pytest.mark.parametrize("text", AGREEMENT_TEXTS)
def test_index_agrees_with_better_profanity(index, library, text):
    assert (index.find(text) is not None) == library.contains_profanity(text)
    assert index.mask(text) == library.censor(text)


@pytest.mark.parametrize("text", ["i am so used to it", "what test is it?", "words with the letter T. It is"])
def test_index_does_not_join_ordinary_words_across_spaces(index, library, text):
    # the documented disagreement: better-profanity reads "so used" as "soused", "test is" as "testis"
    assert library.contains_profanity(text)
    assert index.find(text) is None


def test_index_is_fast(index):
    text = " ".join(["hello there my friend, what a lovely day for a walk in the park"] * 5)  # 70 words
    index.find(text)
    start = time.perf_counter()
    for _ in range(20):
        index.find(text)
    per_call = (time.perf_counter() - start) / 20
    assert per_call < 0.02  # better-profanity takes ~0.1-0.2 s for this text here; the index ~1 ms


def test_hide_word_never_shows_the_word():
    assert hide_word("shit") == "s***"
    assert hide_word("ab") == "a***"


def test_partial_checks_are_the_prefix_safe_ones():
    filt = ReplyFilter(FilterSettings(max_words=3))
    assert filt.check_partial("oh shit ") == "profanity (s***)"
    assert filt.check_partial("one two three four ") == "too long (4 words > 3)"
    assert filt.check_partial("") is None  # empty is fine while streaming: the reply is not over


def test_settings_validation_names_the_setting():
    for changes, name in [
        ({"min_words": -1}, "min_words"),
        ({"max_words": 0}, "max_words"),
        ({"min_words": 5, "max_words": 3}, "max_words"),
        ({"user_profanity": "ban"}, "user_profanity"),
        ({"similarity": 0}, "similarity"),
        ({"loop_ngram": 1}, "loop_ngram"),
        ({"loop_max_repeats": 0}, "loop_max_repeats"),
        ({"retry_multiplier": 0}, "retry_multiplier"),
        ({"fallback_replies": []}, "fallback_replies"),
        ({"profanity_whitelist": "god"}, "profanity_whitelist"),
    ]:
        with pytest.raises(SettingsError, match=name):
            FilterSettings(**changes)


def test_settings_dict_round_trip_and_unknown_keys():
    settings = FilterSettings(max_words=20, profanity_extra_words=("darn",))
    data = settings.to_dict()
    assert data["profanity_extra_words"] == ["darn"]  # JSON-friendly
    assert FilterSettings.from_dict(data) == settings
    assert FilterSettings.from_dict(None) == FilterSettings()
    with pytest.raises(SettingsError, match="colour"):
        FilterSettings.from_dict({"colour": 1})
    assert FilterSettings.from_dict({"colour": 1, "max_words": 9}, strict=False).max_words == 9


def test_a_whitelisted_word_is_not_read_as_another_entry():
    # "gal" matches the entry "gai" through better-profanity's l -> i substitution
    assert ProfanityIndex().find("she is a nice gal") == "gal"
    assert ProfanityIndex(whitelist=("gal",)).find("she is a nice gal") is None
