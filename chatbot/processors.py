"""Logits processors transformers lacks, and one place that writes down the order samplers run in.

transformers runs a custom ``logits_processor`` before all of its own warpers (temperature, top-k,
top-p, ...), so XTC, mirostat and ``temperature_last``, which must run after truncation, cannot be
passed to ``generate`` next to its sampling keywords. Instead, build the whole list here, from
transformers' warper classes plus ours, in text-generation-webui's order, and keep ``generate``'s
own samplers neutral::

    from chatbot.processors import NEUTRAL_GENERATE_KWARGS, build_processor_list

    spec = {"temperature": 0.8, "min_p": 0.05, "dry_multiplier": 0.8, "xtc_threshold": 0.1, "xtc_probability": 0.5}
    processors = build_processor_list(spec, tokenizer=tokenizer, seed=7, end_token_ids=[tokenizer.eos_token_id])
    model.generate(**inputs, do_sample=True, logits_processor=processors, **NEUTRAL_GENERATE_KWARGS)

Every processor takes scores (B, V) and input_ids (B, T). Prompts may be left-padded: all rows then
share one prompt length, the width of the padded prompt. Processors that keep state across the tokens
of a reply (mirostat) or count only the reply's tokens (presence/frequency penalties, keywords) notice
a new reply by itself: within one ``generate`` call each step's input_ids extend the previous step's
by one token, and anything else starts a new reply. Build one list per reply all the same: XTC's
random generator is seeded per list.
"""

# Over 400 lines on purpose: every processor of ours sits in this one module, next to ORDER and the
# builder that applies them, so the order samplers run in is read and changed in one place.

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch
from transformers import (
    EpsilonLogitsWarper,
    EtaLogitsWarper,
    LogitsProcessor,
    LogitsProcessorList,
    MinPLogitsWarper,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopHLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
    TypicalLogitsWarper,
)

from chatbot.errors import SettingsError
from chatbot.sampling import FIELD

logger = logging.getLogger(__name__)

# text-generation-webui's default sampler priority (modules/sampler_hijack.py, generation_config_init_patch),
# restricted to the samplers this project has. Two additions, placed where they do what they are for:
# "keywords" is an additive logit bias like the penalties, so it runs before truncation can drop the keyword;
# "top_h" (not in text-generation-webui) sits where transformers itself runs it, right after temperature.
ORDER: tuple[str, ...] = (
    "repetition_penalty",
    "presence_penalty",
    "frequency_penalty",
    "dry",
    "keywords",
    "temperature",
    "dynamic_temperature",
    "top_h",
    "top_k",
    "top_p",
    "typical_p",
    "epsilon_cutoff",
    "eta_cutoff",
    "min_p",
    "mirostat",
    "xtc",
)

# the stage each sampling field belongs to, so a UI can group controls in ORDER
FIELD_STAGE: dict[str, str] = {
    "repetition_penalty": "repetition_penalty",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
    "dry_multiplier": "dry",
    "dry_base": "dry",
    "dry_allowed_length": "dry",
    "dry_sequence_breakers": "dry",
    "keywords": "keywords",
    "keyword_strength": "keywords",
    "temperature": "temperature",
    "temperature_last": "temperature",
    "dynamic_temperature": "dynamic_temperature",
    "dynatemp_low": "dynamic_temperature",
    "dynatemp_high": "dynamic_temperature",
    "dynatemp_exponent": "dynamic_temperature",
    "top_h": "top_h",
    "top_k": "top_k",
    "top_p": "top_p",
    "typical_p": "typical_p",
    "epsilon_cutoff": "epsilon_cutoff",
    "eta_cutoff": "eta_cutoff",
    "min_p": "min_p",
    "mirostat_mode": "mirostat",
    "mirostat_tau": "mirostat",
    "mirostat_eta": "mirostat",
    "xtc_threshold": "xtc",
    "xtc_probability": "xtc",
}

# text-generation-webui moves both temperature stages to the end when temperature_last is set
_TEMPERATURE_STAGES = ("temperature", "dynamic_temperature")

# What to pass to `generate` next to a built list, so transformers adds no warper of its own (the model's
# generation_config may hold top_k=50, and min_p=0.0 would still add a warper).
NEUTRAL_GENERATE_KWARGS: dict[str, Any] = {
    "temperature": 1.0,
    "top_k": 0,
    "top_p": 1.0,
    "min_p": None,
    "typical_p": 1.0,
    "epsilon_cutoff": 0.0,
    "eta_cutoff": 0.0,
    "top_h": None,
    "repetition_penalty": 1.0,
}

# A key missing from a spec takes the sampling field's default, declared once in chatbot.sampling
# (text-generation-webui's breakers '"\n", ":", "\"", "*"'; a keyword strength of 8 logits, e^8 ~ 3,000x the odds).
DEFAULT_KEYWORD_STRENGTH: float = FIELD["keyword_strength"].default


def _get(spec: Mapping[str, Any], name: str):
    """``spec[name]``, or the field's default where the spec leaves it out."""
    return spec.get(name, FIELD[name].default)


def processor_order(temperature_last: bool = False) -> tuple[str, ...]:
    """ORDER, with temperature and dynamic temperature moved to the end when ``temperature_last``."""
    if not temperature_last:
        return ORDER
    return tuple(s for s in ORDER if s not in _TEMPERATURE_STAGES) + _TEMPERATURE_STAGES


def _require(name: str, value, ok: bool, rule: str) -> None:
    if not ok:
        raise SettingsError(f"sampling setting {name}={value!r} is invalid: {rule}")


class _ReplyTracker:
    """Tells, step by step, whether input_ids extend the previous step's by one token or start a new reply.

    ``start`` is where the reply begins in input_ids: ``prompt_length`` when given, otherwise the width of
    input_ids at the reply's first step (the padded prompt, since generate calls processors before it
    appends the first new token).
    """

    def __init__(self, prompt_length: int | None = None):
        self.prompt_length = prompt_length
        self.start = 0
        self._previous: torch.Tensor | None = None

    def update(self, input_ids: torch.LongTensor) -> bool:
        """Record this step; True when it starts a new reply."""
        previous, self._previous = self._previous, input_ids
        continues = (
            previous is not None
            and input_ids.shape == (previous.shape[0], previous.shape[1] + 1)
            and torch.equal(input_ids[:, :-1], previous)
        )
        if not continues:
            self.start = input_ids.shape[1] if self.prompt_length is None else self.prompt_length
        return not continues


class PresenceFrequencyPenaltyProcessor(LogitsProcessor):
    """OpenAI's additive presence and frequency penalties.

    Source: OpenAI API docs, "Parameter details" (frequency and presence penalties):
    ``logit[j] -= c[j] * frequency_penalty + (c[j] > 0) * presence_penalty``, where ``c[j]`` counts how
    often token j was sampled before the current position. Following OpenAI, only the reply's tokens are
    counted: those from ``prompt_length`` on, or (None) from where the reply started. Pass
    ``prompt_length=0`` to count the whole context as text-generation-webui does.
    """

    def __init__(self, presence_penalty: float = 0.0, frequency_penalty: float = 0.0, prompt_length: int | None = None):
        for name, value in (("presence_penalty", presence_penalty), ("frequency_penalty", frequency_penalty)):
            _require(name, value, math.isfinite(value), "must be a finite number (0 = off)")
        self.presence_penalty = float(presence_penalty)
        self.frequency_penalty = float(frequency_penalty)
        self.reply = _ReplyTracker(prompt_length)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        self.reply.update(input_ids)
        generated = input_ids[:, self.reply.start :]  # (B, T_reply)
        vocab = scores.shape[-1]
        # one spare column absorbs ids the lm head cannot produce (an embedding larger than the head)
        counts = torch.zeros(scores.shape[0], vocab + 1, dtype=scores.dtype, device=scores.device)
        counts.scatter_add_(1, generated.clamp(max=vocab), torch.ones_like(generated, dtype=scores.dtype))
        counts = counts[:, :vocab]
        penalty = counts * self.frequency_penalty + (counts > 0).to(scores.dtype) * self.presence_penalty
        return scores - penalty


class DRYProcessor(LogitsProcessor):
    """DRY ("Don't Repeat Yourself"): penalise the token that would extend a sequence already in the context.

    Source: text-generation-webui's ``DRYLogitsProcessor`` (modules/sampler_hijack.py, by p-e-w). For the
    last token, find its earlier occurrences; the match length is how far the text before each occurrence
    equals the text before the end, stopped by a sequence breaker. The token that followed the occurrence
    gets ``multiplier * base ** (match_length - allowed_length)`` subtracted when ``match_length >=
    allowed_length`` (longest match per token). The whole context counts, prompt included: repeating the
    conversation is what DRY is for. Matches are capped at 50 tokens, as upstream, to bound the exponent.
    """

    MAX_MATCH = 50

    def __init__(self, multiplier: float, base: float = 1.75, allowed_length: int = 2, sequence_breakers=()):
        _require("dry_multiplier", multiplier, multiplier >= 0, "must be >= 0 (0 turns DRY off)")
        _require("dry_base", base, base >= 1, "must be >= 1 (below 1 the penalty would shrink as repeats grow)")
        _require("dry_allowed_length", allowed_length, allowed_length >= 1, "must be a whole number >= 1")
        self.multiplier = float(multiplier)
        self.base = float(base)
        self.allowed_length = int(allowed_length)
        self.sequence_breakers = frozenset(int(t) for t in sequence_breakers)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        scores = scores.clone()
        for row, ids in enumerate(input_ids.tolist()):
            for token, length in self.match_lengths(ids).items():
                if length >= self.allowed_length and token < scores.shape[-1]:
                    scores[row, token] -= self.multiplier * self.base ** (length - self.allowed_length)
        return scores

    def match_lengths(self, ids: list[int]) -> dict[int, int]:
        """{token that followed an earlier occurrence of the last token: longest match length before it}."""
        breakers, last = self.sequence_breakers, ids[-1]
        if last in breakers:
            return {}
        lengths: dict[int, int] = {}
        for i in range(len(ids) - 1):  # the last token itself always matches: excluded
            following = ids[i + 1]
            if ids[i] != last or following in breakers:
                continue
            length = 1
            while length < self.MAX_MATCH and i - length >= 0:
                previous = ids[-(length + 1)]
                if ids[i - length] != previous or previous in breakers:
                    break
                length += 1
            lengths[following] = max(length, lengths.get(following, 0))
        return lengths


def parse_sequence_breakers(text: str) -> list[str]:
    """text-generation-webui's breaker syntax, a JSON list with or without brackets: '"\\n", ":", "*"'."""
    body = text.strip()
    try:
        items = json.loads(body if body.startswith("[") else f"[{body}]")
    except json.JSONDecodeError as exc:
        raise SettingsError(
            f'dry_sequence_breakers={text!r} is not a list of quoted strings, e.g. "\\n", ":", "*" ({exc})'
        ) from exc
    if not all(isinstance(s, str) for s in items):
        raise SettingsError(f"dry_sequence_breakers={text!r} must hold quoted strings only")
    return items


def sequence_breaker_ids(tokenizer, breakers: Iterable[str]) -> set[int]:
    """The token ids of breaker strings such as "\\n", ":", '"', "*".

    Each is encoded after an "a" and its last token kept (as text-generation-webui does), so a breaker
    gets the id it has when it ends a piece of text, not the id of a word-initial variant.
    """
    return {tokenizer.encode(f"a{s}", add_special_tokens=False)[-1] for s in breakers}


class XTCProcessor(LogitsProcessor):
    """XTC, "Exclude Top Choices": with probability ``probability``, drop every token whose probability is
    at least ``threshold`` except the least likely of them.

    Source: text-generation-webui's ``XTCLogitsWarper`` (p-e-w). As upstream, a row is left unchanged when
    the removal would take out one of ``protected_token_ids`` (upstream protects newline and end-of-text, so
    XTC cannot stop a reply from ending). The coin is drawn per row from ``generator`` (or a new generator
    seeded with ``seed``; with neither, from torch's global generator), so the same seed gives the same reply.
    """

    def __init__(
        self,
        threshold: float,
        probability: float,
        *,
        generator: torch.Generator | None = None,
        seed: int | None = None,
        protected_token_ids: Iterable[int] = (),
    ):
        _require("xtc_threshold", threshold, 0 <= threshold <= 1, "must be within [0, 1] (above 0.5 it never acts)")
        _require("xtc_probability", probability, 0 <= probability <= 1, "must be within [0, 1] (0 turns XTC off)")
        self.threshold = float(threshold)
        self.probability = float(probability)
        if generator is None and seed is not None:
            generator = torch.Generator().manual_seed(seed)
        self.generator = generator
        self.protected_token_ids = sorted({int(t) for t in protected_token_ids})

    def _coins(self, rows: int) -> torch.Tensor:
        if self.generator is None:
            return torch.rand(rows)
        return torch.rand(rows, generator=self.generator, device=self.generator.device)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        act = (self._coins(scores.shape[0]) < self.probability).to(scores.device)  # (B,)
        sorted_scores, order = torch.sort(scores, descending=True)
        probs = sorted_scores.softmax(dim=-1)
        # sorted position i goes when position i + 1 also meets the threshold: all of them but the last
        sorted_remove = torch.zeros_like(probs, dtype=torch.bool)
        sorted_remove[:, :-1] = probs[:, 1:] >= self.threshold
        remove = sorted_remove.scatter(1, order, sorted_remove)  # (B, V), back in vocabulary order
        if self.protected_token_ids:
            act &= ~remove[:, self.protected_token_ids].any(dim=-1)
        return scores.masked_fill(remove & act[:, None], -float("inf"))


class DynamicTemperatureProcessor(LogitsProcessor):
    """Entropy-scaled temperature between ``low`` and ``high``.

    Source: text-generation-webui's ``DynamicTemperatureLogitsWarper`` (kalomaze's "DynaTemp"):
    ``T = low + (high - low) * (H / H_max) ** exponent``, where H is the entropy of the softmax and H_max
    = log(number of tokens not already -inf); scores are divided by T. Upstream sums the entropy over the
    whole batch; here each row gets its own temperature.
    """

    def __init__(self, low: float, high: float, exponent: float = 1.0):
        _require("dynatemp_low", low, low > 0, "must be > 0")
        _require("dynatemp_high", high, high >= low, f"must be >= dynatemp_low ({low})")
        _require("dynatemp_exponent", exponent, exponent > 0, "must be > 0")
        self.low, self.high, self.exponent = float(low), float(high), float(exponent)

    def temperatures(self, scores: torch.FloatTensor) -> torch.FloatTensor:
        """(B,) the temperature each row gets."""
        log_probs = scores.float().log_softmax(dim=-1)
        probs = log_probs.exp()
        entropy = -torch.where(probs > 0, probs * log_probs, torch.zeros_like(probs)).sum(dim=-1)
        entropy = entropy.clamp(min=1e-10)  # upstream's guard: a one-hot row would give 0 / 0 below
        valid = (scores > -float("inf")).sum(dim=-1).float()
        max_entropy = torch.log(valid).clamp(min=1e-10)
        return self.low + (self.high - self.low) * (entropy / max_entropy).pow(self.exponent)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        return scores / self.temperatures(scores).to(scores.dtype)[:, None]


class MirostatV2Processor(LogitsProcessor):
    """Mirostat 2.0: keep the tokens whose surprise is at most mu, and steer mu so the reply's surprise
    approaches ``tau`` bits.

    Source: Basu et al., "Mirostat: A Neural Text Decoding Algorithm that Directly Controls Perplexity"
    (ICLR 2021), in its v2 form from llama.cpp (``llama_sample_token_mirostat_v2``), which
    text-generation-webui copies. mu starts at ``2 * tau``. Each step keeps the tokens with
    ``-log2 p <= mu`` (at least the most likely one) and renormalises; after a token x is sampled from
    that distribution, ``mu -= eta * (-log2 p_kept(x) - tau)``.

    How state is kept: ``generate`` samples after all processors have run, so the token is not known
    here. Each call stores the (B, V) log-probabilities of the distribution it kept and, on the next call
    of the same reply, reads the sampled token from ``input_ids[:, -1]`` and updates ``mu`` (one value per
    row) from it. The surprise is measured against mirostat's own distribution, as in llama.cpp, even
    when a later processor (XTC, ``temperature_last``) reshapes it. A new reply resets mu.
    """

    def __init__(self, tau: float, eta: float = 0.1):
        _require("mirostat_tau", tau, tau > 0, "must be > 0 bits (the target surprise)")
        _require("mirostat_eta", eta, 0 < eta <= 1, "must be within (0, 1] (the learning rate of mu)")
        self.tau, self.eta = float(tau), float(eta)
        self.mu: torch.Tensor | None = None  # (B,) bits
        self._kept_log2: torch.Tensor | None = None  # (B, V) log2-probabilities of the last kept distribution
        self.reply = _ReplyTracker()

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.reply.update(input_ids):
            self.mu = torch.full((scores.shape[0],), 2 * self.tau, device=scores.device)
        else:
            self._observe(input_ids[:, -1])
        log2_probs = scores.float().log_softmax(dim=-1) / math.log(2)
        keep = -log2_probs <= self.mu[:, None]
        keep.scatter_(1, scores.argmax(dim=-1, keepdim=True), True)
        kept = scores.masked_fill(~keep, -float("inf"))
        self._kept_log2 = kept.float().log_softmax(dim=-1) / math.log(2)
        return kept

    def _observe(self, sampled: torch.LongTensor) -> None:
        surprise = -self._kept_log2.gather(1, sampled[:, None]).squeeze(1)  # (B,) bits
        # a token mirostat had removed (forced by something else) carries no usable surprise: skip that row
        finite = torch.isfinite(surprise)
        self.mu = torch.where(finite, self.mu - self.eta * (surprise - self.tau), self.mu)


class KeywordBoostProcessor(LogitsProcessor):
    """Steer a reply to contain given keywords by adding ``strength`` to the logit of each keyword's next token.

    Source: keyword-conditional generation as a logit bias on the keyword's tokens (OpenAI's ``logit_bias``
    applied to a word's token sequence), advanced token by token. Each keyword is given as one or more
    token sequences (its tokenizations, e.g. with and without a leading space; see ``keyword_token_ids``).
    While a keyword is not yet in the reply, either a prefix of one of its sequences ends the reply, and
    the token that continues it is boosted, or the first token of every sequence is. Once a sequence
    appears in the reply's tokens the keyword is done and no longer boosted. Only the reply counts (tokens
    from ``prompt_length`` on, or from where the reply started); no other token is penalised. A keyword
    written with another tokenization is not recognised as present.
    """

    def __init__(self, keywords: Sequence[Sequence[Sequence[int]]], strength: float, prompt_length: int | None = None):
        _require("keyword_strength", strength, math.isfinite(strength) and strength > 0, "must be > 0 (logits added)")
        self.keywords = [[tuple(int(t) for t in seq) for seq in variants if len(seq)] for variants in keywords]
        if not all(self.keywords):
            raise SettingsError("every keyword needs at least one non-empty token sequence")
        self.strength = float(strength)
        self.reply = _ReplyTracker(prompt_length)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        self.reply.update(input_ids)
        bias = torch.zeros_like(scores)
        for row, generated in enumerate(input_ids[:, self.reply.start :].tolist()):
            for variants in self.keywords:
                tokens = self.next_tokens(generated, variants)
                bias[row, [t for t in tokens if t < scores.shape[-1]]] += self.strength
        return scores + bias

    @staticmethod
    def next_tokens(generated: list[int], variants: list[tuple[int, ...]]) -> set[int]:
        """The tokens to boost for one keyword after ``generated``: none once the keyword is in it."""
        if any(_contains(generated, seq) for seq in variants):
            return set()
        continuing = {seq[k] for seq in variants if (k := _prefix_at_end(generated, seq))}
        return continuing or {seq[0] for seq in variants}


def _contains(tokens: list[int], seq: tuple[int, ...]) -> bool:
    n = len(seq)
    return any(tuple(tokens[i : i + n]) == seq for i in range(len(tokens) - n + 1))


def _prefix_at_end(tokens: list[int], seq: tuple[int, ...]) -> int:
    """The longest proper prefix of ``seq`` that ``tokens`` ends with (0 when none)."""
    for k in range(min(len(seq) - 1, len(tokens)), 0, -1):
        if tuple(tokens[-k:]) == seq[:k]:
            return k
    return 0


def keyword_token_ids(tokenizer, word: str) -> list[list[int]]:
    """A word's token sequences as it appears mid-sentence (" word") and at the start of a reply ("word")."""
    word = word.strip()
    sequences = [tokenizer.encode(text, add_special_tokens=False) for text in (f" {word}", word)]
    return [list(s) for s in dict.fromkeys(tuple(s) for s in sequences if s)]


# -- building the whole list from plain field values ----------------------------------------------------


def _is_set(spec: Mapping[str, Any], name: str) -> bool:
    """Whether the spec gives ``name`` a value that does something (not missing, None or the field's neutral)."""
    value = spec.get(name)
    return value is not None and value != FIELD[name].neutral


def _require_tokenizer_for_text(name: str, items, tokenizer) -> None:
    if tokenizer is None and any(isinstance(i, str) for i in items):
        raise SettingsError(f"{name} holds text; pass tokenizer= to build_processor_list to map it to token ids")


def _dry(spec, ctx) -> LogitsProcessor | None:
    if not _is_set(spec, "dry_multiplier"):
        return None
    breakers = _get(spec, "dry_sequence_breakers")
    if isinstance(breakers, str):
        breakers = parse_sequence_breakers(breakers)
    _require_tokenizer_for_text("dry_sequence_breakers", breakers, ctx["tokenizer"])
    texts = [b for b in breakers if isinstance(b, str)]
    ids = {int(b) for b in breakers if not isinstance(b, str)}
    if texts:
        ids |= sequence_breaker_ids(ctx["tokenizer"], texts)
    return DRYProcessor(spec["dry_multiplier"], _get(spec, "dry_base"), _get(spec, "dry_allowed_length"), sorted(ids))


def _keywords(spec, ctx) -> LogitsProcessor | None:
    words = spec.get("keywords") or ()
    if isinstance(words, str):
        words = [w.strip() for w in words.split(",") if w.strip()]
    if not words:
        return None
    _require_tokenizer_for_text("keywords", words, ctx["tokenizer"])
    sequences = [keyword_token_ids(ctx["tokenizer"], w) if isinstance(w, str) else [list(w)] for w in words]
    strength = _get(spec, "keyword_strength")
    return KeywordBoostProcessor(sequences, strength, prompt_length=ctx["prompt_length"])


def _temperature(spec, ctx) -> LogitsProcessor | None:
    if not _is_set(spec, "temperature"):
        return None
    value = spec["temperature"]
    _require("temperature", value, value > 0, "must be > 0; use greedy decoding for temperature 0")
    return TemperatureLogitsWarper(float(value))


def _dynamic_temperature(spec, ctx) -> LogitsProcessor | None:
    low, high = spec.get("dynatemp_low", 1.0), spec.get("dynatemp_high", 1.0)
    # text-generation-webui switches it with `dynamic_temperature`; without that key, values other than 1 do
    if not spec.get("dynamic_temperature", (low, high) != (1, 1)):
        return None
    return DynamicTemperatureProcessor(low, high, spec.get("dynatemp_exponent", 1.0))


def _mirostat(spec, ctx) -> LogitsProcessor | None:
    tau = spec.get("mirostat_tau") or 0
    mode = spec.get("mirostat_mode", 2 if tau else 0)
    _require("mirostat_mode", mode, mode in (0, 2), "0 (off) or 2 (mirostat 2.0; version 1 is not provided)")
    return MirostatV2Processor(tau, _get(spec, "mirostat_eta")) if mode == 2 else None


def _xtc(spec, ctx) -> LogitsProcessor | None:
    if not _is_set(spec, "xtc_probability"):
        return None
    return XTCProcessor(
        _get(spec, "xtc_threshold"),
        spec["xtc_probability"],
        seed=ctx["seed"],
        protected_token_ids=ctx["end_token_ids"],
    )


def _simple(name: str, make: Callable[[Any, dict], LogitsProcessor]):
    """A builder for a one-field stage: ``make(value, ctx)`` unless the field is missing or neutral."""

    def build(spec, ctx):
        return make(spec[name], ctx) if _is_set(spec, name) else None

    return build


_BUILDERS: dict[str, Callable[[Mapping[str, Any], dict], LogitsProcessor | None]] = {
    "repetition_penalty": _simple("repetition_penalty", lambda v, c: RepetitionPenaltyLogitsProcessor(float(v))),
    "presence_penalty": _simple(
        "presence_penalty", lambda v, c: PresenceFrequencyPenaltyProcessor(v, 0.0, c["prompt_length"])
    ),
    "frequency_penalty": _simple(
        "frequency_penalty", lambda v, c: PresenceFrequencyPenaltyProcessor(0.0, v, c["prompt_length"])
    ),
    "dry": _dry,
    "keywords": _keywords,
    "temperature": _temperature,
    "dynamic_temperature": _dynamic_temperature,
    "top_h": _simple("top_h", lambda v, c: TopHLogitsWarper(float(v))),
    "top_k": _simple("top_k", lambda v, c: TopKLogitsWarper(int(v))),
    "top_p": _simple("top_p", lambda v, c: TopPLogitsWarper(float(v))),
    "typical_p": _simple("typical_p", lambda v, c: TypicalLogitsWarper(float(v))),
    "epsilon_cutoff": _simple("epsilon_cutoff", lambda v, c: EpsilonLogitsWarper(float(v))),
    "eta_cutoff": _simple("eta_cutoff", lambda v, c: EtaLogitsWarper(float(v), device=c["device"])),
    "min_p": _simple("min_p", lambda v, c: MinPLogitsWarper(float(v))),
    "mirostat": _mirostat,
    "xtc": _xtc,
}
assert set(_BUILDERS) == set(ORDER), "every stage in ORDER has exactly one builder"


def build_processor_list(
    spec: Mapping[str, Any],
    *,
    tokenizer=None,
    seed: int | None = None,
    end_token_ids: Iterable[int] = (),
    prompt_length: int | None = None,
    device: str | torch.device = "cpu",
) -> LogitsProcessorList:
    """The processors for ``spec`` in ``processor_order(spec["temperature_last"])``, neutral ones left out.

    ``spec`` holds plain field values named as in text-generation-webui (temperature, top_k, top_p,
    typical_p, min_p, epsilon_cutoff, eta_cutoff, top_h, repetition_penalty, presence_penalty,
    frequency_penalty, dry_*, xtc_*, dynatemp_*, mirostat_*, temperature_last) plus keywords and
    keyword_strength. A missing field is neutral; mirostat is on when ``mirostat_mode`` is 2 or, without
    that key, when ``mirostat_tau`` > 0; dynamic temperature when ``dynamic_temperature`` is true or, without
    that key, when dynatemp_low/high are not both 1; keys that are not sampler fields (strategy, seed,
    max_new_tokens, ...) are ignored. Units are transformers': epsilon_cutoff and eta_cutoff are
    probabilities (text-generation-webui's sliders show them in units of 1e-4).

    ``tokenizer`` maps text to token ids (DRY breakers, keywords); ``seed`` seeds XTC; ``end_token_ids``
    (end-of-turn, end-of-text) are tokens XTC never removes; ``prompt_length`` is where the reply starts
    (None: where the first step's input_ids end). Pass ``NEUTRAL_GENERATE_KWARGS`` to ``generate`` with it.
    """
    ctx = {
        "tokenizer": tokenizer,
        "seed": seed,
        "end_token_ids": tuple(end_token_ids),
        "prompt_length": prompt_length,
        "device": device,
    }
    processors = LogitsProcessorList()
    for stage in processor_order(bool(spec.get("temperature_last", False))):
        processor = _BUILDERS[stage](spec, ctx)
        if processor is not None:
            processors.append(processor)
    logger.debug("sampler order: %s", [type(p).__name__ for p in processors])
    return processors
