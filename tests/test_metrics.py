"""Reply metrics against hand-computed values on tiny inputs, and against sacrebleu/nltk where we wrap them."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import sacrebleu

from chatbot.embeddings import cosine_rows
from chatbot.format import bot_turns
from evaluation import metrics as m
from evaluation.coherence import CoherenceConfig, HashingEmbedder, coherence_scores, off_topic
from evaluation.wordnet import LEXNAMES, WordNetStatus, copy_debian_wordnet, find_wordnet, lexnames_text


def test_normalize_answer_is_parlai():
    assert m.normalize_answer("The cat, an owl & a DOG!") == "cat owl dog"
    assert m.normalize_answer("I don't know.") == "i don t know"


def test_unigram_f1_hand_computed():
    # pred "cat sat mat", gold "cat sat on mat": 3 common, p = 3/3, r = 3/4, f1 = 6/7
    assert m.unigram_f1("The cat sat, the mat", "a cat sat on the mat") == pytest.approx(6 / 7)
    assert m.unigram_f1("dog dog", "dog") == pytest.approx(2 * 0.5 * 1 / 1.5)  # multiset overlap
    assert m.unigram_f1("hello", "bye") == 0.0
    assert m.unigram_f1("", "bye") == 0.0


def test_corpus_bleu_equals_sacrebleu_and_sums_statistics():
    hyps = ["the cat sat on the mat", "a dog barks", "i like green tea very much", ""]
    refs = ["the cat sat on a mat", "the dog barks loudly", "i like tea very much", "hello there"]
    expected = sacrebleu.corpus_bleu(hyps, [refs]).score
    assert m.corpus_bleu(hyps, refs) == pytest.approx(expected)
    stats = m.bleu_statistics(hyps, refs)
    assert stats.shape == (4, 10)
    # a resample is a sum of per-reply statistics: duplicating a reply == sacrebleu on the duplicated corpus
    dup = m.bleu_from_statistics(stats[[0, 0, 1]])
    assert dup == pytest.approx(sacrebleu.corpus_bleu([hyps[0], hyps[0], hyps[1]], [[refs[0], refs[0], refs[1]]]).score)
    assert m.corpus_bleu(["the same five words here"], ["the same five words here"]) == pytest.approx(100.0)


def test_meteor_matches_nltk_without_wordnet():
    from nltk.translate.meteor_score import meteor_score

    class NoSyn:
        def synsets(self, *a, **k):
            return []

    ours = m.meteor("The cat sat on the mat.", "the cat was sitting on the mat")
    theirs = meteor_score(
        [["the", "cat", "was", "sitting", "on", "the", "mat"]],
        ["the", "cat", "sat", "on", "the", "mat", "."],
        wordnet=NoSyn(),
    )
    assert ours == pytest.approx(theirs)
    assert m.meteor("", "anything") == 0.0


def test_distinct_and_entropy_hand_computed():
    replies = ["a b a", "a c"]
    # unigrams a b a a c: 3 distinct of 5; bigrams (a b)(b a)(a c): 3 of 3
    assert m.distinct_n(replies, 1) == pytest.approx(3 / 5)
    assert m.distinct_n(replies, 2) == pytest.approx(1.0)
    # unigram distribution a 3/5, b 1/5, c 1/5: -(0.6 ln 0.6 + 2 * 0.2 ln 0.2) nats
    assert m.entropy_n(replies, 1) == pytest.approx(0.9502705392, abs=1e-9)
    # 4-grams (a b c d) twice and (b c d e) once: -(2/3 ln 2/3 + 1/3 ln 1/3) nats, not 0.918 bits
    assert m.entropy_n(["a b c d e", "a b c d"], 4) == pytest.approx(0.6365141683, abs=1e-9)
    assert m.entropy_n(["one two three"], 4) == 0.0  # no 4-grams
    assert m.distinct_n([], 1) == 0.0


def test_entropy_is_dialogpt_calc_entropy_on_tokenised_text():
    """DialoGPT's dstc/metrics.py: whitespace n-grams, -sum v/total * (ln v - ln total)."""
    replies = ["i do not know . how about you ?", "i do not know , really", "how about a walk ?"]
    for n in (1, 2, 3, 4):
        counts = Counter(" ".join(w[i : i + n]) for r in replies for w in [r.split()] for i in range(len(w) - n + 1))
        total = sum(counts.values())
        theirs = sum(-v / total * (math.log(v) - math.log(total)) for v in counts.values())
        assert m.entropy_n(replies, n) == pytest.approx(theirs, rel=1e-12)


def test_distinct_n_tokenisation_is_lower_cased_words_and_punctuation():
    # tokens: hi ! hi , hi | don't stop ! -> 8 tokens; distinct: hi ! , don't stop
    replies = ["Hi! hi, HI", "Don't stop!"]
    assert m.tokenize(replies[1]) == ["don't", "stop", "!"]
    assert m.distinct_n(replies, 1) == pytest.approx(5 / 8)
    # bigrams: (hi !)(! hi)(hi ,)(, hi) | (don't stop)(stop !): 6 of 6
    assert m.distinct_n(replies, 2) == pytest.approx(1.0)
    assert m.distinct_n(["hi  there", "HI THERE"], 2) == pytest.approx(1 / 2)  # case and spacing do not count


def test_ngram_data_resamples_like_the_corpus():
    replies = ["a b a", "a c", "d d d"]
    data = m.NgramData.from_replies(replies, 1)
    idx = np.array([0, 0, 2])
    resampled = [replies[i] for i in idx]
    assert data.distinct(idx) == pytest.approx(m.distinct_n(resampled, 1))
    assert data.entropy(idx) == pytest.approx(m.entropy_n(resampled, 1))


def test_self_bleu():
    same = m.self_bleu_per_reply(["i like pizza a lot"] * 3)
    assert same == pytest.approx([100.0] * 3)
    different = m.self_bleu_per_reply(["i like pizza a lot", "where do you hike today", "my dog is big"])
    assert different.max() < 20


def test_repetition_measures():
    assert m.repeated_ngram_fraction("i like it i like it", 3) == pytest.approx(1 / 4)  # 4 trigrams, 1 repeat
    assert m.repeated_ngram_fraction("no loops here at all", 3) == 0.0
    context = ["i love dogs.", "what dogs do you have?", "hi there how are you"]
    assert bot_turns(context) == ["what dogs do you have?"]
    assert m.repeats_self("What dogs do you have", context)
    assert not m.repeats_self("i am fine thanks", context)
    assert m.copies_user("hi there, how are you?", context)
    assert not m.copies_user("i am fine", context)


def test_coherence_with_tiny_embedder():
    embedder = HashingEmbedder()
    config = CoherenceConfig(context_utterances=1)
    scores = coherence_scores(
        embedder, [["do you like pizza"], ["do you like pizza"], ["x"]], ["i like pizza", "the train left", ""], config
    )
    assert scores[0] > 0.5 and scores[1] == 0.0 and scores[2] == 0.0
    assert off_topic(scores, CoherenceConfig()).tolist() == [0.0, 1.0, 1.0]
    assert cosine_rows(np.array([[1.0, 0.0]]), np.array([[1.0, 1.0]]))[0] == pytest.approx(1 / math.sqrt(2))


def test_lexnames_is_the_standard_list():
    lines = lexnames_text().splitlines()
    assert len(lines) == 45 == len(LEXNAMES)
    assert lines[0] == "00\tadj.all\t3" and lines[3] == "03\tnoun.Tops\t1" and lines[44] == "44\tadj.ppl\t3"


def test_wordnet_missing_is_reported_loudly(tmp_path):
    reader, status = find_wordnet(tmp_path, debian_dir=tmp_path / "none", search_nltk_path=False, allow_download=False)
    assert reader is None and isinstance(status, WordNetStatus)
    assert not status.available and "NOT FOUND" in status.message and "apt-get install" in status.message


@pytest.mark.skipif(not (Path("/usr/share/wordnet") / "data.noun").is_file(), reason="Debian wordnet-base absent")
@pytest.mark.slow
def test_wordnet_from_debian_gives_meteor_synonyms(tmp_path):
    root = copy_debian_wordnet("/usr/share/wordnet", tmp_path)
    assert (root / "lexnames").read_text() == lexnames_text()
    reader, status = find_wordnet(tmp_path, search_nltk_path=False, allow_download=False)
    assert status.available and status.source == "debian-copy"
    # "kid"/"child" and "happy"/"glad" match only through WordNet synonyms
    with_syn = m.meteor("the kid is happy", "the child is glad", reader)
    assert with_syn > m.meteor("the kid is happy", "the child is glad") + 0.3
