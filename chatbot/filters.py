"""Reply filters: pure checks that reject bad candidate replies, each with a reason a person can read.

API::

    from chatbot.filters import FilterSettings, FilterContext, ReplyFilter

    f = ReplyFilter(FilterSettings())                      # defaults; ChatbotSettings.filters overrides them
    ctx = FilterContext(last_user="how are you?", recent_bot=("i am fine.",))
    f.check("i am fine.", ctx)          # -> "repeats the bot's recent reply" (a reason), or None if it passes
    f.check_partial("so the first few words")   # streaming: only the checks a prefix can fail
    f.profanity.find("some text")       # -> the first profane word/phrase, or None

Checks, in the order they run (the first failure is the reason): degenerate output (empty, only
punctuation, only special tokens), length in words, profanity, the in-reply checks, echo of the
user's last message, and repetition of one of the bot's recent replies. Profanity is matched by
``chatbot.profanity`` (better-profanity's list through a fast index, with a measured whitelist).

The in-reply checks (``check_in_reply``) reject a reply that repeats itself or is garbled:

- ``replacement character``: U+FFFD, a byte sequence the tokenizer could not decode (always on);
- ``token loop: '...'``: a unit of 1-3 letters repeated to ``loop_chars`` (10) letters inside a word
  ("rororororo", "hahahahaha"; "hahaha" and "sooooo" pass), or one word ``loop_words`` (4) times in a
  row ("yes yes yes yes"; "no no no" and "very very good" pass);
- ``repeated sentence``: a sentence twice, compared lower-cased without punctuation;
- ``repeated phrase: '...'``: a phrase of ``repeat_phrase_words`` (4) words twice, anywhere in the reply.

Measured on every human utterance of the chitchat test split (``python -m
evaluation.benchmarks.repetition``), these checks flag 1.3% of what people wrote: mostly voice
dictation that typed a phrase twice, and long laughs. The thresholds were chosen there: one word 3
times in a row ("no no no") would flag 1.4%, a letter loop of 6 ("hahaha") 5.3%, of 8 ("hahahaha")
2.0%, and a 3-word phrase twice 3.2%. Of the default model's top-p replies to 200 test contexts
(one candidate), 3.5% repeated a phrase; with the filters on, none of the shown replies does (the
retry found a clean one every time, no fallback).
"""

from __future__ import annotations

import difflib
import logging
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from functools import lru_cache
from typing import Any

from chatbot.errors import SettingsError
from chatbot.profanity import DEFAULT_WHITELIST, hide_word, profanity_index

logger = logging.getLogger(__name__)

DEFAULT_FALLBACKS = (
    "Sorry, I'm not sure what to say. Tell me more?",
    "Interesting! What else is on your mind?",
    "I see. How about you?",
)
USER_PROFANITY_MODES = ("mask", "keep", "refuse")


@dataclass(frozen=True)
class FilterSettings:
    """Which candidate replies are rejected; the defaults are saved in the checkpoint's ``chatbot.json``."""

    min_words: int = field(default=1, metadata={"help": "reject replies with fewer words"})
    max_words: int = field(default=60, metadata={"help": "reject replies with more words"})
    profanity: bool = field(default=True, metadata={"help": "reject replies with profanity (better-profanity)"})
    profanity_whitelist: tuple[str, ...] = field(
        default=DEFAULT_WHITELIST, metadata={"help": "words never counted as profanity"}
    )
    profanity_extra_words: tuple[str, ...] = field(default=(), metadata={"help": "more words to block"})
    user_profanity: str = field(
        default="mask",
        metadata={
            "help": "profanity in the user's message: mask (the model sees ****, the transcript keeps the text), "
            "keep (the model sees it as typed), refuse (answer with refuse_reply, no generation)"
        },
    )
    echo: bool = field(default=True, metadata={"help": "reject replies that echo the user's last message"})
    repeat_window: int = field(
        default=3, metadata={"help": "reject replies that repeat one of the bot's last N replies (0 = off)"}
    )
    similarity: float = field(
        default=0.9, metadata={"help": "word-sequence similarity in (0, 1] counted as an echo or a repeat"}
    )
    repetition: bool = field(
        default=True, metadata={"help": "reject replies that repeat a sentence or a phrase, or loop (token loops)"}
    )
    repeat_phrase_words: int = field(
        default=4, metadata={"help": "a phrase of this many words may occur only once in a reply"}
    )
    loop_chars: int = field(
        default=10, metadata={"help": "a unit of 1-3 letters repeated to this many letters is a loop (rororororo)"}
    )
    loop_words: int = field(default=4, metadata={"help": "one word this many times in a row is a loop"})
    retry_multiplier: int = field(
        default=2, metadata={"help": "when every candidate fails, retry once with this many times more"}
    )
    refuse_reply: str = field(
        default="Let's keep it friendly. What else would you like to talk about?",
        metadata={"help": "the reply to a profane message when user_profanity is refuse"},
    )
    fallback_replies: tuple[str, ...] = field(
        default=DEFAULT_FALLBACKS, metadata={"help": "safe replies used when every candidate fails"}
    )

    def __post_init__(self):
        for name in ("profanity_whitelist", "profanity_extra_words", "fallback_replies"):
            value = getattr(self, name)
            if isinstance(value, str) or not all(isinstance(v, str) for v in value):
                raise SettingsError(f"filter setting {name} must be a list of strings, got {value!r}")
            object.__setattr__(self, name, tuple(value))  # JSON gives lists; keep the value hashable
        _validate(self)

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, strict: bool = True) -> FilterSettings:
        """From ``ChatbotSettings.filters`` (missing keys keep their defaults; unknown ones fail when strict)."""
        data = migrate_legacy(dict(data or {}))
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown and not strict:
            logger.warning("ignoring unknown filter setting(s) %s", sorted(unknown))
            data = {k: v for k, v in data.items() if k not in unknown}
        elif unknown:
            raise SettingsError(f"unknown filter setting(s) {sorted(unknown)}; known: {', '.join(FILTER_FIELDS)}")
        return cls(**data)

    def replace(self, **changes) -> FilterSettings:
        return FilterSettings.from_dict(self.to_dict() | changes)


FILTER_FIELDS = tuple(f.name for f in fields(FilterSettings))
# keys of older chatbot.json files: a word n-gram allowed loop_max_repeats times (3 and 2 by default)
LEGACY_LOOP_KEYS = ("loop_ngram", "loop_max_repeats")


def migrate_legacy(data: dict[str, Any]) -> dict[str, Any]:
    """Filter settings saved before the in-reply checks, in today's terms.

    ``loop_ngram: 0`` turned loop detection off and becomes ``repetition: false``; any other value is
    dropped, because the rule it configured (a 3-gram allowed twice) let repeated phrases through and
    the in-reply checks replace it.
    """
    legacy = {k: data.pop(k) for k in LEGACY_LOOP_KEYS if k in data}
    if legacy.get("loop_ngram") == 0:
        data.setdefault("repetition", False)
    elif legacy:
        logger.info("filter settings %s are replaced by the in-reply repetition checks", sorted(legacy))
    return data


def _validate(s: FilterSettings) -> None:
    def fail(name, rule):
        return SettingsError(f"filter setting {name}={getattr(s, name)!r} is invalid: {rule}")

    if s.min_words < 0:
        raise fail("min_words", "must be >= 0")
    if s.max_words < max(1, s.min_words):
        raise fail("max_words", f"must be >= 1 and >= min_words={s.min_words}")
    if s.user_profanity not in USER_PROFANITY_MODES:
        raise fail("user_profanity", f"choose one of {', '.join(USER_PROFANITY_MODES)}")
    if s.repeat_window < 0:
        raise fail("repeat_window", "must be >= 0; 0 turns the check off")
    if not 0 < s.similarity <= 1:
        raise fail("similarity", "must be in (0, 1]; 1 means only exact repeats count")
    if s.repeat_phrase_words < 2:
        raise fail("repeat_phrase_words", "must be >= 2 (set repetition to false to turn the checks off)")
    if s.loop_chars < 4:
        raise fail("loop_chars", "must be >= 4, so that every unit repeats at least twice")
    if s.loop_words < 2:
        raise fail("loop_words", "must be >= 2")
    if s.retry_multiplier < 1:
        raise fail("retry_multiplier", "must be >= 1")
    if not isinstance(s.refuse_reply, str) or not s.refuse_reply.strip():
        raise fail("refuse_reply", "needs a non-empty reply")
    if not s.fallback_replies or not all(r.strip() for r in s.fallback_replies):
        raise fail("fallback_replies", "needs at least one non-empty reply")


# -- text checks (pure) -------------------------------------------------------------------------

_WORD = re.compile(r"[\w']+")


def words(text: str) -> list[str]:
    """Lower-cased words (letters, digits, apostrophes) used by the length and repetition checks."""
    return _WORD.findall(text.lower())


def check_degenerate(text: str, raw_text: str | None = None) -> str | None:
    """Empty, only punctuation, or only special tokens (``raw_text`` = decoded with special tokens kept)."""
    if not text.strip():
        return "only special tokens" if raw_text and raw_text.strip() else "empty"
    if not any(c.isalnum() for c in text):
        return "only punctuation"
    return None


def check_length(n_words: int, min_words: int, max_words: int) -> str | None:
    if n_words < min_words:
        return f"too short ({n_words} words < {min_words})"
    if n_words > max_words:
        return f"too long ({n_words} words > {max_words})"
    return None


def similarity(a: list[str], b: list[str]) -> float:
    """Similarity of two word sequences in [0, 1] (difflib ratio: 2 * matches / total length)."""
    if not a or not b:
        return 0.0
    return difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()


def check_replacement_char(text: str) -> str | None:
    """U+FFFD: bytes that decode to no character, shown as a box or a question mark."""
    return "replacement character" if "\ufffd" in text else None


@lru_cache(maxsize=8)
def _letter_loop(min_chars: int) -> re.Pattern:
    # one alternative per unit length; a unit of n letters needs ceil(min_chars / n) copies in a row
    units = [f"(?P<u{n}>[^\\W\\d_]{{{n}}})(?P=u{n}){{{-(-min_chars // n) - 1},}}" for n in (1, 2, 3)]
    return re.compile("|".join(units))


def shorten(text: str, limit: int = 24) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_loop(text: str, reply_words: list[str], min_chars: int, min_words: int) -> str | None:
    """A token loop: a unit of 1-3 letters repeated to ``min_chars`` letters, or one word ``min_words`` times in a row."""
    if match := _letter_loop(min_chars).search(text.lower()):
        return f"token loop: {shorten(match.group(0))!r}"
    run = 1
    for previous, word in zip(reply_words, reply_words[1:]):
        run = run + 1 if word == previous else 1
        if run >= min_words:
            return f"token loop: {shorten(' '.join([word] * run))!r}"
    return None


_SENTENCE_END = re.compile(r"[.!?\n]+")


def sentences(text: str, finished_only: bool = False) -> list[str]:
    """Each sentence's lower-cased words joined by spaces; ``finished_only`` drops the text after the last end mark."""
    parts = _SENTENCE_END.split(text)
    if finished_only:
        parts = parts[:-1]  # a reply still streaming: its last sentence may go on differently
    normalised = (" ".join(words(part)) for part in parts)
    return [sentence for sentence in normalised if any(c.isalnum() for c in sentence)]  # not a lone "'"


def check_repeated_sentence(text: str, finished_only: bool = False) -> str | None:
    seen: set[str] = set()
    for sentence in sentences(text, finished_only):
        if sentence in seen:
            return "repeated sentence"
        seen.add(sentence)
    return None


def check_repeated_phrase(reply_words: list[str], n: int) -> str | None:
    """A phrase of ``n`` words that occurs twice; the reason shows it extended to the longest repeat."""
    first: dict[tuple[str, ...], int] = {}
    for j in range(len(reply_words) - n + 1):
        i = first.setdefault(tuple(reply_words[j : j + n]), j)
        if i != j:
            length = n
            while (
                j + length < len(reply_words) and i + length < j and reply_words[i + length] == reply_words[j + length]
            ):
                length += 1
            return f"repeated phrase: {shorten(' '.join(reply_words[j : j + length]), 60)!r}"
    return None


def check_in_reply(text: str, settings: FilterSettings, partial: bool = False) -> str | None:
    """The in-reply checks: U+FFFD, then (when ``settings.repetition``) a loop, a repeated sentence or phrase.

    ``partial``: ``text`` is the start of a reply still being generated, so an unfinished last
    sentence is not compared yet; every other check can only fail more as the reply grows.
    """
    if reason := check_replacement_char(text):
        return reason
    if not settings.repetition:
        return None
    reply_words = words(text)
    return (
        check_loop(text, reply_words, settings.loop_chars, settings.loop_words)
        or check_repeated_sentence(text, finished_only=partial)
        or check_repeated_phrase(reply_words, settings.repeat_phrase_words)
    )


@dataclass(frozen=True)
class FilterContext:
    """What a candidate is compared with: the user's last message and the bot's replies, most recent last."""

    last_user: str | None = None
    recent_bot: tuple[str, ...] = ()


class ReplyFilter:
    """The filters of one FilterSettings value; ``check`` returns a rejection reason or None."""

    def __init__(self, settings: FilterSettings | None = None):
        self.settings = settings or FilterSettings()
        s = self.settings
        self.profanity = profanity_index(s.profanity_whitelist, s.profanity_extra_words)

    def refuses(self, history: Sequence[str], profane: bool | None = None) -> bool:
        """Whether the reply to ``history`` is the refusal, without generating: the user's last message is
        profane and ``user_profanity`` is refuse. ``profane``: that message's verdict, when already checked."""
        if not history or self.settings.user_profanity != "refuse":
            return False
        return self.user_has_profanity(history[-1]) if profane is None else profane

    def check_partial(self, text: str, checked: int = 0) -> str | None:
        """Checks that the start of a reply still being streamed can fail: length, profanity, in-reply checks.

        ``checked``: how many leading characters (ending a word) passed this check before; profanity is then
        looked for only where it could reach the new words.
        """
        return self._text_checks(text, partial=True, checked=checked)

    def _text_checks(self, text: str, partial: bool, checked: int = 0) -> str | None:
        s = self.settings
        n_words = len(words(text))
        if n_words > s.max_words:
            return check_length(n_words, s.min_words, s.max_words)
        if s.profanity and (hit := self.profanity.find(text, checked)):
            return f"profanity ({hide_word(hit)})"
        return check_in_reply(text, s, partial)

    def check(self, text: str, context: FilterContext | None = None, raw_text: str | None = None) -> str | None:
        """Every check on a finished reply; the first failure's reason, or None when the reply may be shown."""
        s = self.settings
        context = context or FilterContext()
        if reason := check_degenerate(text, raw_text):
            return reason
        reply_words = words(text)
        if reason := check_length(len(reply_words), s.min_words, s.max_words):
            return reason
        if reason := self._text_checks(text, partial=False):
            return reason
        if s.echo and context.last_user and similarity(reply_words, words(context.last_user)) >= s.similarity:
            return "echoes the user's message"
        if s.repeat_window:
            for previous in context.recent_bot[-s.repeat_window :]:
                if similarity(reply_words, words(previous)) >= s.similarity:
                    return "repeats a recent bot reply"
        return None

    def user_has_profanity(self, text: str) -> bool:
        return self.settings.profanity and self.profanity.find(text) is not None
