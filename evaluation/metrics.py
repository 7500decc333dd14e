"""Reply metrics as pure functions on strings: overlap (BLEU, METEOR, F1), diversity, length, repetition.

Every corpus-level metric here is built from *per-reply statistics* plus an aggregate, so that
``chatbot.bootstrap`` can resample replies (paired bootstrap) without re-tokenising anything:

- mean metrics (F1, METEOR, length, repetition flags, self-BLEU) keep one number per reply;
- corpus BLEU keeps sacrebleu's 10 sufficient statistics per reply and sums them;
- distinct-n and entropy-4 keep each reply's n-grams as integer ids (:class:`NgramData`).

Tokenisation for diversity and repetition is :func:`tokenize` (lower-cased words and punctuation
marks, so "Hi!" and "hi" share the n-gram "hi"); entropy is in nats (natural log), the unit of
DialoGPT's ``dstc/metrics.py`` and Zhang et al.'s code, so Ent-4 compares with their tables.
BLEU uses sacrebleu's own ``13a`` tokeniser and F1 ParlAI's ``normalize_answer``, so numbers are
comparable with the papers that use those tools.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

import numpy as np

from chatbot.format import bot_turns

# ParlAI's normalisation for ConvAI2's unigram F1 (parlai/core/metrics.py): lower case, punctuation
# to spaces, drop the articles a/an/the, squeeze whitespace.
_RE_ART = re.compile(r"\b(a|an|the)\b")
_RE_PUNC = re.compile(r"[!\"#$%&()*+,\-./:;<=>?@\[\]\\^`{|}~_']")
_RE_TOKEN = re.compile(r"[\w']+|[^\w\s]")

# A reply "copies" a context utterance when its unigram F1 with that utterance reaches this; 0.8
# catches exact copies and copies with a word changed or appended, not replies that share a topic.
COPY_F1_THRESHOLD = 0.8


def normalize_answer(text: str) -> str:
    """ParlAI/ConvAI2 normalisation used by unigram F1."""
    text = _RE_PUNC.sub(" ", text.lower())
    text = _RE_ART.sub(" ", text)
    return " ".join(text.split())


def tokenize(text: str) -> list[str]:
    """Lower-cased words (apostrophes kept: "don't") and single punctuation marks."""
    return _RE_TOKEN.findall(text.lower())


def word_count(text: str) -> int:
    """Whitespace words, the unit of length and of per-word perplexity."""
    return len(text.split())


def ngrams(tokens: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


# --- overlap with the reference ---------------------------------------------------------------


def unigram_f1(prediction: str, reference: str) -> float:
    """ConvAI2's F1: harmonic mean of precision and recall of normalised unigrams (multiset overlap)."""
    pred, gold = normalize_answer(prediction).split(), normalize_answer(reference).split()
    common = Counter(pred) & Counter(gold)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(gold)
    return 2 * precision * recall / (precision + recall)


def bleu_statistics(hypotheses: Sequence[str], references: Sequence[str]) -> np.ndarray:
    """sacrebleu's sufficient statistics per reply, shape (N, 10): hyp_len, ref_len, correct[4], total[4]."""
    from sacrebleu.metrics import BLEU

    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
    if not hypotheses:
        return np.zeros((0, 10), dtype=np.int64)
    # _extract_corpus_statistics is what sacrebleu's own paired bootstrap uses; the aggregate goes
    # through the public compute_bleu, and a test checks the sum equals corpus_score exactly.
    stats = BLEU()._extract_corpus_statistics(list(hypotheses), [list(references)])
    return np.asarray(stats, dtype=np.int64)


def bleu_from_statistics(stats: np.ndarray) -> float:
    """Corpus BLEU (0-100, sacrebleu defaults: exp smoothing) from summed per-reply statistics."""
    from sacrebleu.metrics import BLEU

    total = stats.sum(axis=0) if stats.ndim == 2 else stats
    if len(total) == 0 or total[0] == 0:
        return 0.0
    total = [int(x) for x in total]
    return BLEU.compute_bleu(total[2:6], total[6:10], total[0], total[1], smooth_method="exp").score


def corpus_bleu(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Corpus BLEU with one reference per reply, exactly sacrebleu's ``corpus_bleu(...).score``."""
    return bleu_from_statistics(bleu_statistics(hypotheses, references))


def meteor(prediction: str, reference: str, wordnet=None) -> float:
    """nltk's METEOR of one reply (0-1). ``wordnet``: an nltk WordNet reader, or None for no synonyms.

    Use :func:`evaluation.wordnet.find_wordnet` to get the reader; without it METEOR still counts
    exact and stemmed matches, and the report says synonyms were off.
    """
    from nltk.translate.meteor_score import meteor_score

    hyp, ref = tokenize(prediction), tokenize(reference)
    if not hyp or not ref:
        return 0.0
    return float(meteor_score([ref], hyp, wordnet=wordnet if wordnet is not None else _NoSynonyms()))


class _NoSynonyms:
    """Stands in for nltk's WordNet reader when WordNet is missing: every word has no synsets."""

    def synsets(self, *args, **kwargs) -> list:
        return []


# --- diversity ----------------------------------------------------------------------------------


class NgramData:
    """All replies' n-grams as integer ids with the reply each came from, for fast resampled counts.

    A bootstrap resample repeats reply ``i`` ``k_i`` times; its n-gram counts are then one
    ``np.bincount`` weighted by ``k`` of the owning reply, with no re-tokenising.
    """

    def __init__(self, ids: np.ndarray, owner: np.ndarray, n_items: int):
        self.ids, self.owner, self.n_items = ids, owner, n_items

    @classmethod
    def from_replies(cls, replies: Sequence[str], n: int) -> NgramData:
        index: dict[tuple[str, ...], int] = {}
        ids: list[int] = []
        owner: list[int] = []
        for i, reply in enumerate(replies):
            for gram in ngrams(tokenize(reply), n):
                ids.append(index.setdefault(gram, len(index)))
                owner.append(i)
        return cls(np.asarray(ids, dtype=np.int64), np.asarray(owner, dtype=np.int64), len(replies))

    def counts(self, indices: np.ndarray | None = None) -> np.ndarray:
        """Count of each n-gram id in the sample (``None``: every reply once)."""
        if indices is None:
            return np.bincount(self.ids) if len(self.ids) else np.zeros(0)
        times = np.bincount(indices, minlength=self.n_items)[self.owner]  # copies of each n-gram's reply
        return np.bincount(self.ids, weights=times) if len(self.ids) else np.zeros(0)

    def distinct(self, indices: np.ndarray | None = None) -> float:
        """Distinct-n: distinct n-grams / all n-grams over all replies together (Li et al., 2016).

        N-grams are of :func:`tokenize` tokens: lower-cased, each punctuation mark its own token,
        apostrophes kept inside words. DialoGPT's ``calc_diversity`` splits on whitespace text that its
        DSTC cleaning already lower-cased and tokenised the same way, except that it also splits
        contractions ("don't" -> "do n't"), so the two agree on text without contractions.
        """
        counts = self.counts(indices)
        total = counts.sum()
        return float((counts > 0).sum() / total) if total else 0.0

    def entropy(self, indices: np.ndarray | None = None) -> float:
        """Shannon entropy, in nats, of the n-gram distribution (Zhang et al., 2018 report n=4).

        Natural log, as in DialoGPT's ``dstc/metrics.py`` ``calc_entropy``: divide by ln 2 for bits.
        """
        counts = self.counts(indices)
        total = counts.sum()
        if not total:
            return 0.0
        p = counts[counts > 0] / total
        return float(-(p * np.log(p)).sum())


def distinct_n(replies: Sequence[str], n: int) -> float:
    """Distinct-n of a set of replies (see :meth:`NgramData.distinct` for the tokenisation)."""
    return NgramData.from_replies(replies, n).distinct()


def entropy_n(replies: Sequence[str], n: int = 4) -> float:
    """Entropy-n in nats of a set of replies' n-grams (Ent-4 with the default n)."""
    return NgramData.from_replies(replies, n).entropy()


def self_bleu_per_reply(replies: Sequence[str], max_others: int | None = 200, seed: int = 0) -> np.ndarray:
    """Each reply's sentence BLEU (0-100) against the other replies as references (Zhu et al., 2018).

    Higher means the setting says the same things to everyone. With many replies each one is scored
    against a fixed random sample of ``max_others`` others (the cost is quadratic otherwise).
    """
    from sacrebleu.metrics import BLEU

    bleu = BLEU(effective_order=True)  # sentence-level BLEU needs effective order for short replies
    rng = np.random.default_rng(seed)
    scores = np.zeros(len(replies))
    for i, reply in enumerate(replies):
        others = [j for j in range(len(replies)) if j != i]
        if max_others is not None and len(others) > max_others:
            others = sorted(rng.choice(others, size=max_others, replace=False).tolist())
        if others and reply.strip():
            scores[i] = bleu.sentence_score(reply, [replies[j] for j in others]).score
    return scores


# --- repetition ---------------------------------------------------------------------------------


def repeated_ngram_fraction(text: str, n: int = 3) -> float:
    """Share of a reply's n-grams that repeat an earlier n-gram of the same reply (0 = no loop)."""
    grams = ngrams(tokenize(text), n)
    return (len(grams) - len(set(grams))) / len(grams) if grams else 0.0


def max_copy_f1(reply: str, utterances: Sequence[str]) -> float:
    """Highest unigram F1 between the reply and any of the given utterances (0 when none)."""
    return max((unigram_f1(reply, u) for u in utterances if u.strip()), default=0.0)


def repeats_self(reply: str, context: Sequence[str], threshold: float = COPY_F1_THRESHOLD) -> bool:
    """The reply (nearly) repeats one of the bot's earlier utterances in the context."""
    return bool(reply.strip()) and max_copy_f1(reply, bot_turns(context)) >= threshold


def copies_user(reply: str, context: Sequence[str], threshold: float = COPY_F1_THRESHOLD) -> bool:
    """The reply (nearly) echoes the user's last utterance."""
    return bool(reply.strip()) and bool(context) and max_copy_f1(reply, context[-1:]) >= threshold


def mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if len(values) else math.nan
