"""Keywords for keyword-conditional generation: one per context, taken from its reference reply.

``chatbot evaluate --keywords-from-reference`` asks every context's reply to contain the longest word
of the recorded reply that is not a stopword (the first of equally long ones), as written there;
:func:`contains_word` is how a reply is judged to contain it (a whole word, case-insensitive).
"""

from __future__ import annotations

import re

# NLTK's English stopword list (nltk.corpus.stopwords, 179 words), written out because the corpus is
# a separate download that is not reachable offline
STOPWORDS = frozenset(
    """
    i me my myself we our ours ourselves you you're you've you'll you'd your yours yourself yourselves he him
    his himself she she's her hers herself it it's its itself they them their theirs themselves what which who
    whom this that that'll these those am is are was were be been being have has had having do does did doing
    a an the and but if or because as until while of at by for with about against between into through during
    before after above below to from up down in out on off over under again further then once here there when
    where why how all any both each few more most other some such no nor not only own same so than too very s
    t can will just don don't should should've now d ll m o re ve y ain aren aren't couldn couldn't didn didn't
    doesn doesn't hadn hadn't hasn hasn't haven haven't isn isn't ma mightn mightn't mustn mustn't needn
    needn't shan shan't shouldn shouldn't wasn wasn't weren weren't won won't wouldn wouldn't
    """.split()
)
_WORD = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)*")


def reference_keyword(reference: str) -> str | None:
    """The longest word of ``reference`` that is not a stopword (first of equals); None when there is none."""
    words = [w for w in _WORD.findall(reference) if w.lower() not in STOPWORDS]
    return max(words, key=len) if words else None  # max keeps the first of equally long words


def contains_word(text: str, word: str) -> bool:
    """Whether ``word`` occurs in ``text`` as a whole word, case-insensitive."""
    return re.search(rf"(?<!\w){re.escape(word)}(?!\w)", text, flags=re.IGNORECASE) is not None
