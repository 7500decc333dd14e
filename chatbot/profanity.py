"""Profanity: better-profanity's word list and matching rules behind a fast index, and a whitelist.

Profanity uses better-profanity's word list and its matching rules (case-insensitive words, its
leetspeak substitutions such as ``@`` for ``a``, multi-word entries across separators), through an
index instead of its matcher: better-profanity compares every word against ~900 entries one by one
(1-2.5 ms per word here), the index does one dictionary lookup per word (~2 us), which keeps the
filters' share of a reply's latency small. ``tests/test_filters.py`` checks that both agree.

The default whitelist removes entries with an ordinary everyday sense that made up most of
better-profanity's hits on real chit-chat. Measured on chitchat-dataset (a clean university chat
challenge): better-profanity flags 1.70% of the first 3,000 turns, mostly "god", "murder", "omg",
"kill", "pot", "organ", "ugly"; with the whitelist, 0.50% (all 138,737 turns: 1.27% -> 0.60%).
Mild insults and rude words ("stupid", "suck", "crap", "hell") stay blocked: a friendly bot can say
it otherwise. ``python -m evaluation.benchmarks.profanity`` repeats the measurement.
"""

from __future__ import annotations

from functools import lru_cache

# Entries of better-profanity's list with a common harmless meaning in conversation: religion
# ("god", "omg"), news, films and games ("kill", "murder", "pawn"), cooking and gardening ("pot",
# "weed"), music, health and anatomy ("organ", "stroke", "womb", "oral", "facial"), looks, food and
# drink ("ugly", "fat", "drunk"), everyday words ("gal", "strip"), and identity terms ("gay", "gays",
# "queer") that blocking would turn into a judgement on people. Slurs, insults and sexual words stay
# blocked. Chosen from what the list flagged in chitchat-dataset (evaluation/benchmarks/profanity.py).
DEFAULT_WHITELIST = (
    "god",
    "omg",
    "kill",
    "murder",
    "pawn",
    "pot",
    "weed",
    "organ",
    "stroke",
    "womb",
    "oral",
    "facial",
    "ugly",
    "fat",
    "drunk",
    "gal",
    "strip",
    "gay",
    "gays",
    "queer",
)



class ProfanityIndex:
    """better-profanity's word list and matching rules, looked up through a dictionary.

    better-profanity matches a text word against an entry when both have the same length and each
    character of the word is one of the entry character's variants (``a`` -> ``a @ * 4``...). Every
    character that is some variant becomes ``?`` in a key, so a word can only match entries with the
    same key; the few entries sharing it are then compared character by character.
    """

    def __init__(self, whitelist: tuple[str, ...] = (), extra_words: tuple[str, ...] = ()):
        from better_profanity import Profanity
        from better_profanity.constants import ALLOWED_CHARACTERS
        from better_profanity.utils import get_complete_path_of_file, read_wordlist

        # only its character map: a one-word list keeps its constructor from building the slow default set
        self.char_map: dict[str, tuple[str, ...]] = Profanity(words=["x"]).CHARS_MAPPING
        self.allowed = ALLOWED_CHARACTERS
        self.wild = {c for variants in self.char_map.values() for c in variants} | set(self.char_map)
        words = {w.lower() for w in read_wordlist(get_complete_path_of_file("profanity_wordlist.txt"))}
        words |= {w.lower().strip() for w in extra_words if w.strip()}
        # a whitelisted word is removed from the list (as better-profanity does) and is also never
        # matched as a leetspeak spelling of another entry ("gal" reads as "gai" through l -> i)
        self.whitelist = frozenset(w.lower().strip() for w in whitelist)
        words -= self.whitelist
        self.entries = frozenset(words)
        self.index: dict[str, list[str]] = {}
        for word in self.entries:
            self.index.setdefault(self._key(word), []).append(word)
        # an entry with k separators spans k+1 words of the text
        self.max_words = 1 + max((sum(c not in self.allowed for c in w) for w in self.entries), default=0)

    def _key(self, word: str) -> str:
        return "".join("?" if c in self.wild else c for c in word)

    def _matches(self, word: str, entry: str) -> bool:
        return all(c == e or c in self.char_map.get(e, ()) for c, e in zip(word, entry, strict=True))

    def is_profane(self, word: str) -> bool:
        word = word.lower()
        if word in self.whitelist:
            return False
        return any(self._matches(word, entry) for entry in self.index.get(self._key(word), ()))

    def split(self, text: str) -> list[tuple[int, int]]:
        """(start, end) of each word, with better-profanity's idea of word characters."""
        spans, start = [], None
        for i, char in enumerate(text):
            if char in self.allowed:
                start = i if start is None else start
            elif start is not None:
                spans.append((start, i))
                start = None
        if start is not None:
            spans.append((start, len(text)))
        return spans

    def find_spans(self, text: str, first_only: bool = False, checked: int = 0) -> list[tuple[int, int]]:
        """(start, end) of each profane word or phrase.

        ``checked``: the first ``checked`` characters end a word and were found clean before (a reply being
        streamed), so only phrases that reach past them are looked for: those start at most ``max_words - 1``
        words back. Each new word then costs the same however long the reply is, not the whole text again.

        A phrase is consecutive words joined with their own separators ("blow job"), or joined
        without them when the separators hold no whitespace ("blow_job", "f.u.c.k") or every word is
        one character ("f u c k"). better-profanity also joins ordinary words across spaces, which
        flags "so used" (soused), "test is" (testis) and "T. It" (tit) in real chat; that is the one
        place this index deliberately disagrees with it.
        """
        spans = self.split(text)
        found: list[tuple[int, int]] = []
        first_new = next((k for k, (_, end) in enumerate(spans) if end > checked), len(spans))
        i = max(0, first_new - self.max_words + 1)
        while i < len(spans):
            end = self._match_at(text, spans, i)
            if end is None:
                i += 1
                continue
            found.append((spans[i][0], spans[end][1]))
            if first_only:
                break
            i = end + 1
        return found

    def _match_at(self, text: str, spans: list[tuple[int, int]], i: int) -> int | None:
        """Index of the last word of a profane phrase starting at word i, or None."""
        first = text[spans[i][0] : spans[i][1]]
        if self.is_profane(first):
            return i
        joined, tight, spelled = first, True, len(first) == 1
        for j in range(i + 1, min(i + self.max_words, len(spans))):
            word = text[spans[j][0] : spans[j][1]]
            separator = text[spans[j - 1][1] : spans[j][0]]
            tight = tight and not any(c.isspace() for c in separator)
            joined += word
            spelled = spelled and len(word) == 1
            if self.is_profane(text[spans[i][0] : spans[j][1]]) or ((tight or spelled) and self.is_profane(joined)):
                return j
        return None

    def find(self, text: str, checked: int = 0) -> str | None:
        """The first profane word or phrase, or None (``checked``: see :meth:`find_spans`)."""
        found = self.find_spans(text, first_only=True, checked=checked)
        return text[found[0][0] : found[0][1]] if found else None

    def mask(self, text: str, char: str = "*") -> str:
        """The text with each profane word or phrase replaced by ``****`` (as better-profanity censors)."""
        out, last = [], 0
        for start, end in self.find_spans(text):
            out.append(text[last:start] + char * 4)
            last = end
        return "".join(out) + text[last:]


@lru_cache(maxsize=8)
def profanity_index(whitelist: tuple[str, ...], extra_words: tuple[str, ...]) -> ProfanityIndex:
    # building the index reads ~900 entries (a few ms); one per distinct word-list setting is enough
    return ProfanityIndex(whitelist, extra_words)


def hide_word(word: str) -> str:
    """A rejection reason must not display the word it rejects: ``f***``."""
    return word[:1] + "*" * max(len(word) - 1, 3)
