"""``SamplingSettings``: every sampling field declared once, with the metadata every surface reads."""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from typing import Any

from chatbot.errors import SettingsError
from chatbot.sampling.fields import NO_NEUTRAL, SEED_MAX, STRATEGIES, FieldSpec, by_name, field_specs, setting

logger = logging.getLogger(__name__)

_SAMPLE = ("sample",)
_BEAM = ("beam",)
_RANKED = ("sample", "beam")  # greedy gives one candidate: nothing to rank


@dataclass(frozen=True, kw_only=True)
class SamplingSettings:
    """How a reply is decoded. Frozen: change it with ``replace`` so every value is validated.

    Field order is the order ``describe()`` reads in; the UI groups fields by ``group``, in the order
    the samplers run. Names follow text-generation-webui's where it has the sampler.
    """

    strategy: str = setting(
        "sample", kind="choice", choices=STRATEGIES, label="Strategy", group="decoding", applied_by="generate",
        short="{}", help="greedy (argmax), beam (beam search) or sample (draw from the filtered distribution)",
    )  # fmt: skip
    num_beams: int = setting(
        5, kind="int", low=1, ui_high=10, step=1, strategies=_BEAM, label="Beams", group="beam",
        applied_by="generate", kwarg="num_beams", short="{}", help="beams searched (>= num_candidates)",
    )  # fmt: skip
    length_penalty: float = setting(
        1.0, kind="float", neutral=0.0, ui_low=-2.0, ui_high=3.0, step=0.1, strategies=_BEAM, label="Length penalty",
        group="beam", applied_by="generate", kwarg="length_penalty", short="lp",
        help="beam score = log-prob / length**length_penalty (> 0 favours longer replies)",
    )  # fmt: skip
    early_stopping: bool = setting(
        True, kind="bool", strategies=_BEAM, label="Early stopping", group="beam", applied_by="generate",
        kwarg="early_stopping", short="early", help="stop once num_beams finished replies exist",
    )  # fmt: skip
    temperature: float = setting(
        0.7, kind="float", neutral=1.0, low=0.0, low_open=True, ui_low=0.05, ui_high=2.0, step=0.05,
        strategies=_SAMPLE, label="Temperature", group="temperature", applied_by="warper", kwarg="temperature",
        short="T", fix="use strategy=greedy for argmax decoding", help="divide the logits by this (< 1 sharper)",
    )  # fmt: skip
    dynamic_temperature: bool = setting(
        False, kind="bool", neutral=False, strategies=_SAMPLE, label="Dynamic temperature", group="temperature",
        applied_by="processor", short="dynatemp",
        help="scale the temperature with the entropy, between dynatemp_low and dynatemp_high (replaces temperature)",
    )  # fmt: skip
    dynatemp_low: float = setting(
        1.0, kind="float", low=0.0, low_open=True, ui_low=0.01, ui_high=5.0, step=0.01, strategies=_SAMPLE,
        enabled_by="dynamic_temperature", label="Dynamic temperature: low", group="temperature",
        applied_by="processor", short="dt_low", help="temperature of a confident (low-entropy) distribution",
    )  # fmt: skip
    dynatemp_high: float = setting(
        1.0, kind="float", low=0.0, low_open=True, ui_low=0.01, ui_high=5.0, step=0.01, strategies=_SAMPLE,
        enabled_by="dynamic_temperature", label="Dynamic temperature: high", group="temperature",
        applied_by="processor", short="dt_high", help="temperature of a flat (maximum-entropy) distribution",
    )  # fmt: skip
    dynatemp_exponent: float = setting(
        1.0, kind="float", low=0.0, low_open=True, ui_low=0.01, ui_high=10.0, step=0.01, strategies=_SAMPLE,
        enabled_by="dynamic_temperature", label="Dynamic temperature: exponent", group="temperature",
        applied_by="processor", short="dt_exp", help="T = low + (high - low) * (entropy / max entropy) ** exponent",
    )  # fmt: skip
    temperature_last: bool = setting(
        False, kind="bool", neutral=False, strategies=_SAMPLE, label="Temperature last", group="temperature",
        applied_by="processor", short="T_last", help="apply temperature after truncation instead of before",
    )  # fmt: skip
    top_k: int = setting(
        0, kind="int", neutral=0, low=0, ui_high=200, step=1, strategies=_SAMPLE, label="Top-k", group="truncation",
        applied_by="warper", kwarg="top_k", help="keep the k most likely tokens",
    )  # fmt: skip
    top_p: float = setting(
        0.9, kind="float", neutral=1.0, low=0.0, high=1.0, low_open=True, ui_low=0.05, step=0.01, strategies=_SAMPLE,
        label="Top-p (nucleus)", group="truncation", applied_by="warper", kwarg="top_p",
        help="keep the most likely tokens whose probabilities add up to top_p",
    )  # fmt: skip
    min_p: float = setting(
        0.0, kind="float", neutral=0.0, low=0.0, high=1.0, step=0.01, ui_high=0.5, strategies=_SAMPLE, label="Min-p",
        group="truncation", applied_by="warper", kwarg="min_p", kwarg_off=None,
        help="drop tokens less likely than min_p times the most likely one (0.05-0.1 is usual)",
    )  # fmt: skip
    typical_p: float = setting(
        1.0, kind="float", neutral=1.0, low=0.0, high=1.0, low_open=True, ui_low=0.05, step=0.01, strategies=_SAMPLE,
        label="Typical-p", group="truncation", applied_by="warper", kwarg="typical_p",
        help="keep the tokens closest to the expected surprise, up to this probability mass",
    )  # fmt: skip
    epsilon_cutoff: float = setting(
        0.0, kind="float", neutral=0.0, low=0.0, high=1.0, high_open=True, ui_high=0.01, step=0.0001,
        strategies=_SAMPLE, label="Epsilon cutoff", group="truncation", applied_by="warper", kwarg="epsilon_cutoff",
        short="epsilon", help="drop tokens below this probability (3e-4 to 9e-4 in Hewitt et al. 2022)",
    )  # fmt: skip
    eta_cutoff: float = setting(
        0.0, kind="float", neutral=0.0, low=0.0, high=1.0, high_open=True, ui_high=0.01, step=0.0001,
        strategies=_SAMPLE, label="Eta cutoff", group="truncation", applied_by="warper", kwarg="eta_cutoff",
        short="eta", help="entropy-dependent epsilon cutoff (3e-4 to 2e-3 in Hewitt et al. 2022)",
    )  # fmt: skip
    top_h: float = setting(
        0.0, kind="float", neutral=0.0, low=0.0, high=1.0, step=0.01, strategies=_SAMPLE, label="Top-H",
        group="truncation", applied_by="warper", kwarg="top_h", kwarg_off=None,
        help="keep the most likely tokens whose entropy stays within top_h times the whole distribution's",
    )  # fmt: skip
    repetition_penalty: float = setting(
        1.0, kind="float", neutral=1.0, low=0.0, low_open=True, ui_low=0.5, ui_high=2.0, step=0.05,
        label="Repetition penalty", group="penalties", applied_by="generate", kwarg="repetition_penalty", short="rep",
        help="divide the logits of tokens already in the context (> 1 discourages repeats)",
    )  # fmt: skip
    presence_penalty: float = setting(
        0.0, kind="float", neutral=0.0, low=-2.0, high=2.0, step=0.05, label="Presence penalty", group="penalties",
        applied_by="processor", short="presence", help="subtract this from each logit of a token already in the reply",
    )  # fmt: skip
    frequency_penalty: float = setting(
        0.0, kind="float", neutral=0.0, low=-2.0, high=2.0, step=0.05, label="Frequency penalty", group="penalties",
        applied_by="processor", short="frequency", help="subtract this times the count of each token in the reply",
    )  # fmt: skip
    no_repeat_ngram_size: int = setting(
        0, kind="int", neutral=0, low=0, ui_high=6, step=1, label="No-repeat n-gram size", group="penalties",
        applied_by="generate", kwarg="no_repeat_ngram_size", short="no_repeat",
        help="forbid repeating any n-gram of this size",
    )  # fmt: skip
    dry_multiplier: float = setting(
        0.0, kind="float", neutral=0.0, low=0.0, ui_high=5.0, step=0.05, label="DRY multiplier", group="dry",
        applied_by="processor", short="dry", help="penalise the token that would extend a repeat of the context",
    )  # fmt: skip
    dry_base: float = setting(
        1.75, kind="float", low=1.0, ui_high=4.0, step=0.05, enabled_by="dry_multiplier", label="DRY base",
        group="dry", applied_by="processor", help="penalty = multiplier * base ** (repeat length - allowed length)",
    )  # fmt: skip
    dry_allowed_length: int = setting(
        2, kind="int", low=1, ui_high=20, step=1, enabled_by="dry_multiplier", label="DRY allowed length",
        group="dry", applied_by="processor", short="dry_allowed", help="repeats this long go unpenalised",
    )  # fmt: skip
    dry_sequence_breakers: tuple[str, ...] = setting(
        ("\n", ":", '"', "*"), kind="words", enabled_by="dry_multiplier", label="DRY sequence breakers",
        group="dry", applied_by="processor", short="dry_breakers", help="text that ends a repeat (a list of strings)",
    )  # fmt: skip
    xtc_threshold: float = setting(
        0.1, kind="float", low=0.0, high=1.0, ui_high=0.5, step=0.01, strategies=_SAMPLE,
        enabled_by="xtc_probability", label="XTC threshold", group="xtc", applied_by="processor", short="xtc_thr",
        help="tokens at least this likely are top choices (above 0.5 XTC never acts)",
    )  # fmt: skip
    xtc_probability: float = setting(
        0.0, kind="float", neutral=0.0, low=0.0, high=1.0, step=0.05, strategies=_SAMPLE, label="XTC probability",
        group="xtc", applied_by="processor", short="xtc",
        help="how often to drop all top choices but the least likely one",
    )  # fmt: skip
    mirostat_mode: int = setting(
        0, kind="int", neutral=0, choices=(0, 2), strategies=_SAMPLE, label="Mirostat mode", group="mirostat",
        applied_by="processor", short="mirostat", help="0 = off, 2 = mirostat 2.0 (steers the surprise to tau)",
    )  # fmt: skip
    mirostat_tau: float = setting(
        5.0, kind="float", low=0.0, low_open=True, ui_low=0.05, ui_high=10.0, step=0.05, strategies=_SAMPLE,
        enabled_by="mirostat_mode", label="Mirostat tau", group="mirostat", applied_by="processor", short="tau",
        help="target surprise in bits per token",
    )  # fmt: skip
    mirostat_eta: float = setting(
        0.1, kind="float", low=0.0, high=1.0, low_open=True, ui_low=0.01, step=0.01, strategies=_SAMPLE,
        enabled_by="mirostat_mode", label="Mirostat eta", group="mirostat", applied_by="processor", short="eta_mu",
        help="learning rate of mirostat's threshold",
    )  # fmt: skip
    avoid_words: tuple[str, ...] = setting(
        (), kind="words", neutral=(), label="Avoid words", group="penalties", applied_by="generate",
        kwarg="bad_words_ids", short="avoid", help="words the reply must not contain (comma-separated)",
    )  # fmt: skip
    keywords: tuple[str, ...] = setting(
        (), kind="words", neutral=(), label="Keywords", group="keywords", applied_by="processor", short="kw",
        help="words the reply should contain (comma-separated): each one's next token is boosted until it appears",
    )  # fmt: skip
    keyword_strength: float = setting(
        8.0, kind="float", low=0.0, low_open=True, ui_high=15.0, step=0.5, enabled_by="keywords",
        label="Keyword strength", group="keywords", applied_by="processor", short="kw_strength",
        help="logits added to a keyword's next token (8: about 3,000 times its odds)",
    )  # fmt: skip
    # 8, measured on 100 chitchat test contexts, keyword from the reference, default preset and model
    # (python -m evaluation.benchmarks.keywords --threads 1 --strength 5 8 10): replies containing the
    # keyword 0% without, 36% at 5, 86% at 8, 94% at 10; mean log-probability per token of the shown reply
    # under the unbiased model -1.75 without, -1.95 at 5, -2.41 at 8, -2.60 at 10 nats: 8 is the lowest
    # strength tried that meets the 80% target (those runs ranked by logprob). With the default preset ranking
    # by coherence (--threads 2 --strength 8): 4% without, 87% at 8; -2.15 and -2.81 nats per token
    max_new_tokens: int = setting(
        40, kind="int", low=1, ui_high=200, step=1, label="Max new tokens", group="output", applied_by="generate",
        kwarg="max_new_tokens", short="max", help="most tokens in one reply",
    )  # fmt: skip
    num_candidates: int = setting(
        4, kind="int", low=1, ui_high=16, step=1, label="Candidates", group="output",
        applied_by="generate", kwarg="num_return_sequences", short="x{}",
        help="replies generated in one batch, filtered and ranked (1 streams word by word)",
    )  # fmt: skip
    min_new_tokens: int = setting(
        1, kind="int", neutral=0, low=0, ui_high=50, step=1, label="Min new tokens", group="output",
        applied_by="generate", kwarg="min_new_tokens", short="min", help="tokens generated before the reply may end",
    )  # fmt: skip
    # switched on by two or more candidates: one candidate has nothing to rank, so the reranker (and with it
    # the fields it switches) is no part of a one-candidate setting's identity and is not applied to it
    reranker: str = setting(
        "logprob", kind="choice", choices=("logprob", "mmi", "coherence", "mix"), neutral="logprob",
        strategies=_RANKED, enabled_by="num_candidates", enabled_values=range(2, 2**31),
        label="Reranker", group="ranking", applied_by="caller", short="rank",
        help="how candidates are ranked: logprob (mean log-probability), mmi (penalises replies likely without "
        "the context), coherence (MiniLM cosine with the user's turn), mix (weighted sum)",
    )  # fmt: skip
    mmi_lambda: float = setting(
        0.5, kind="float", low=0.0, ui_high=1.0, step=0.05, strategies=_RANKED, enabled_by="reranker",
        enabled_values=("mmi", "mix"), label="MMI lambda", group="ranking", applied_by="caller", short="mmi_l",
        help="mmi = mean log p(reply | context) - lambda * mean log p(reply | no context)",
    )  # fmt: skip
    mix_logprob: float = setting(
        0.0, kind="float", low=0.0, ui_high=5.0, step=0.1, strategies=_RANKED, enabled_by="reranker",
        enabled_values=("mix",), label="Mix weight: logprob", group="ranking", applied_by="caller", short="w_lp",
        help="weight of the mean log-probability in the mix reranker",
    )  # fmt: skip
    mix_mmi: float = setting(
        1.0, kind="float", low=0.0, ui_high=5.0, step=0.1, strategies=_RANKED, enabled_by="reranker",
        enabled_values=("mix",), label="Mix weight: mmi", group="ranking", applied_by="caller", short="w_mmi",
        help="weight of the mmi score in the mix reranker",
    )  # fmt: skip
    mix_coherence: float = setting(
        2.0, kind="float", low=0.0, ui_high=10.0, step=0.1, strategies=_RANKED, enabled_by="reranker",
        enabled_values=("mix",), label="Mix weight: coherence", group="ranking", applied_by="caller", short="w_coh",
        help="weight of the coherence cosine in the mix reranker (cosines span ~0.5, log-probabilities ~2 nats)",
    )  # fmt: skip
    seed: int | None = setting(
        None, kind="int", neutral=None, optional=True, low=0, high=SEED_MAX, strategies=_SAMPLE, label="Seed",
        group="decoding", applied_by="caller", fix="none draws a random seed",
        help="random seed for reproducible replies (none = random)",
    )  # fmt: skip

    def __post_init__(self):
        for spec in FIELDS:
            value = getattr(self, spec.name)
            spec.check(value)  # before normalising, so an error quotes the value as the user wrote it
            # normalise what JSON and Python hand us: 1 -> 1.0 (one identity), [..] -> (..) (hashable)
            if spec.kind == "float" and type(value) is int:
                object.__setattr__(self, spec.name, float(value))
            elif spec.kind == "words" and isinstance(value, list):
                object.__setattr__(self, spec.name, tuple(value))
        _check_combinations(self)

    # -- values derived from the fields -------------------------------------------------------

    @property
    def do_sample(self) -> bool:
        return self.strategy == "sample"

    def is_active(self, spec: FieldSpec) -> bool:
        """Whether the field can change a reply: its strategy is chosen and its switch (if any) is on."""
        if not spec.applies_to(self.strategy) or not spec.enabled_by:
            return spec.applies_to(self.strategy)
        switch, value = FIELD[spec.enabled_by], getattr(self, spec.enabled_by)
        if not self.is_active(switch):  # a switch that is itself off turns nothing on (mix weights at 1 candidate)
            return False
        if spec.enabled_values:
            return value in spec.enabled_values
        return not switch.is_neutral(value)

    def relevant_fields(self) -> dict[str, Any]:
        """The fields that change what this strategy does (others are ignored by it), as plain values."""
        return {s.name: _plain(getattr(self, s.name)) for s in FIELDS if self.is_active(s)}

    def identity_fields(self) -> dict[str, Any]:
        """The strategy plus every relevant field that differs from its neutral value."""
        return {k: v for k, v in self.relevant_fields().items() if not FIELD[k].is_neutral(v)}

    @property
    def identity(self) -> str:
        """Canonical JSON of :meth:`identity_fields`: equal identities decode the same way.

        Fields at their neutral value are left out, so a new field (neutral by default) renames no
        existing setting; keys are sorted and floats rounded, so the CLI, the app and the evaluation
        name one setting with one string.
        """
        return json.dumps(self.identity_fields(), sort_keys=True, separators=(",", ":"))

    def describe(self) -> str:
        """A short human-readable summary, e.g. ``sample T=0.7 top_p=0.9 max=40 x4 min=1``."""
        return " ".join(FIELD[k].format(getattr(self, k)) for k in self.identity_fields())

    # -- conversion ----------------------------------------------------------------------------

    def replace(self, **changes) -> SamplingSettings:
        unknown = set(changes) - set(FIELD_NAMES)
        if unknown:
            raise SettingsError(f"unknown sampling setting(s) {sorted(unknown)}; known: {', '.join(FIELD_NAMES)}")
        return dataclasses.replace(self, **changes)

    def adjust(self, **changes) -> SamplingSettings:
        """``replace`` for a user's edits (flags, UI): also applies what the strategy implies, see implied_values."""
        return self.replace(**implied_values(self.to_dict() | changes, changed=set(changes)))

    def to_dict(self) -> dict[str, Any]:
        return {s.name: _plain(getattr(self, s.name)) for s in FIELDS}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: dict[str, Any], base: SamplingSettings | None = None) -> SamplingSettings:
        """Fields missing from ``data`` come from ``base`` (default: the dataclass defaults)."""
        if not isinstance(data, dict):
            raise SettingsError(f"sampling settings must be a JSON object, got {type(data).__name__}")
        return (base or cls()).replace(**data)

    @classmethod
    def from_json(cls, text: str) -> SamplingSettings:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SettingsError(f"sampling settings are not valid JSON ({exc})") from exc
        return cls.from_dict(data)

    @classmethod
    def from_identity(cls, identity: str) -> SamplingSettings:
        """The settings an identity names: fields it leaves out are neutral (or, with no neutral, the default).

        Reads today's identities and those stored before neutral values existed (every field the
        strategy used, defaults included), so both canonicalise to today's form.
        """
        try:
            data = json.loads(identity)
        except json.JSONDecodeError as exc:
            raise SettingsError(f"sampling identity {identity[:80]!r} is not valid JSON ({exc})") from exc
        if not isinstance(data, dict):
            raise SettingsError(f"sampling identity {identity[:80]!r} is not a JSON object of settings")
        unknown = set(data) - set(FIELD_NAMES)
        if unknown:
            raise SettingsError(f"sampling identity names unknown setting(s) {sorted(unknown)}")
        return dataclasses.replace(NEUTRAL, **data)

    def to_generation_kwargs(self, tokenizer=None, end_token_ids=()) -> dict[str, Any]:
        """Keyword arguments for transformers' ``model.generate``; see :mod:`chatbot.sampling.generate`."""
        from chatbot.sampling.generate import generation_kwargs

        return generation_kwargs(self, tokenizer=tokenizer, end_token_ids=end_token_ids)


FIELDS: tuple[FieldSpec, ...] = field_specs(SamplingSettings)
FIELD = by_name(FIELDS)
FIELD_NAMES = tuple(FIELD)


def _plain(value):
    # 0.70000001 and 0.7 must not give two identities; ints stay ints; word lists become JSON lists
    if isinstance(value, float):
        return round(value, 6)
    return list(value) if isinstance(value, tuple) else value


def implied_values(values: dict[str, Any], changed: set[str] = frozenset()) -> dict[str, Any]:
    """What a strategy implies for a user's edit, written once for the CLI and the app.

    Greedy decoding gives one reply and beam search at most ``num_beams``, so the candidate count is
    clamped to that; the minimum reply length is clamped to the maximum. A clamp the user asked
    for explicitly (``changed``) is logged.
    """
    values = dict(values)
    limit = {"greedy": 1, "beam": values.get("num_beams", 1)}.get(values.get("strategy"))
    clamps = {"min_new_tokens": values.get("max_new_tokens")}
    if limit is not None:
        clamps["num_candidates"] = limit
    for name, most in clamps.items():
        if isinstance(most, int) and isinstance(values.get(name), int) and values[name] > most:
            if name in changed:
                logger.info(
                    "%s=%s lowered to %s (what strategy=%s allows)", name, values[name], most, values["strategy"]
                )
            values[name] = most
    return values


def _check_combinations(s: SamplingSettings) -> None:
    """Rules between fields; single-field rules live in the field metadata."""
    if s.min_new_tokens > s.max_new_tokens:
        raise FIELD["min_new_tokens"].error(s.min_new_tokens, f"must be <= max_new_tokens={s.max_new_tokens}")
    if s.strategy == "greedy" and s.num_candidates != 1:
        raise FIELD["num_candidates"].error(s.num_candidates, "greedy decoding gives one reply; use 1, or sample")
    if s.strategy == "beam" and s.num_candidates > s.num_beams:
        raise FIELD["num_candidates"].error(s.num_candidates, f"beam search returns at most num_beams={s.num_beams}")
    if s.dynatemp_low > s.dynatemp_high:
        raise FIELD["dynatemp_high"].error(s.dynatemp_high, f"must be >= dynatemp_low={s.dynatemp_low:g}")


# every field at its neutral value (fields with none keep their default): what an identity's omitted fields mean
NEUTRAL = SamplingSettings(**{s.name: s.neutral for s in FIELDS if s.neutral is not NO_NEUTRAL})


def canonical_identity(identity: str) -> str:
    """A stored identity in today's form (parsed, then re-identified); stable when applied twice."""
    return SamplingSettings.from_identity(identity).identity
