"""What each kind of OpenAI-compatible server can do with our sampling settings, kept as data.

    from chatbot.backends.capabilities import SERVER_KINDS, plan_request

    plan = plan_request(settings, SERVER_KINDS["vllm"])   # UnsupportedSettingError if it cannot be honoured
    plan.body()                                            # the JSON fields to send (with the prompt added)

A field of :class:`chatbot.sampling.SamplingSettings` is *active* when its strategy uses it and it
differs from its neutral value (the value at which it has no effect: temperature 1, top_k 0,
penalties 0 or 1). Every active field must have a :class:`Route` on the server kind: the server's
name for it and how it is sent:

- ``top-level``: a key of the OpenAI request schema;
- ``extra_body``: a key outside that schema (what the ``openai`` client sends through ``extra_body``;
  on the wire it is one more key of the same JSON body);
- ``generation_config``: a key of the JSON string ``transformers serve`` reads as a whole
  ``GenerationConfig``. It *replaces* the model's own config (whose ``top_k`` default is 50), so for
  that server every decoding field goes in it, neutral ones included, and ``do_sample`` with them.

A field without a route on the server, or one the server applies with another meaning
(``frequency_penalty`` on transformers serve becomes ``repetition_penalty = 1 + value``), is an
:class:`UnsupportedSettingError` naming the field and the server kind; ``allow_unsupported`` turns
it into a warning kept on the plan (and recorded with every reply), and the field is not sent.
A field this table does not know is treated the same way, so a new sampler is never dropped silently.

The tables follow each server's documentation (vLLM's sampling parameters, llama.cpp's
``server/README.md``, TGI's OpenAI-compatible API) and, for transformers serve, what version 5.24
was seen to do; only transformers serve was run against them here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from chatbot.errors import SettingsError
from chatbot.sampling import FIELD, SamplingSettings

TOP_LEVEL = "top-level"
EXTRA_BODY = "extra_body"
GENERATION_CONFIG = "generation_config"
VIA = (TOP_LEVEL, EXTRA_BODY, GENERATION_CONFIG)


class UnsupportedSettingError(SettingsError):
    """A sampling setting the chosen server cannot apply as we define it."""


# Values a server without the field may leave unapplied: min_new_tokens=1 only forbids an empty
# reply, which the reply filters reject anyway (as "empty"). A server that has the field gets it.
TOLERATED: dict[str, Any] = {"min_new_tokens": 1}

# Handled by the client itself, never routed: how many candidates (``n`` or emulation) and the strategy.
# How candidates are ranked is too (CLIENT_GROUPS): the rerankers run here, on what the server returned.
STRUCTURAL = frozenset({"strategy", "num_candidates"})
CLIENT_GROUPS = frozenset({"ranking"})  # a sampling field in one of these groups is applied by the client

# llama.cpp's sampler chain with temperature moved last (its ``samplers`` request field).
LLAMA_CPP_TEMPERATURE_LAST = ["dry", "top_k", "typ_p", "top_p", "min_p", "xtc", "temperature"]

CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "same": lambda value: value,
    "list": lambda value: list(value),
    "temperature_last_order": lambda value: list(LLAMA_CPP_TEMPERATURE_LAST) if value else None,
}


@dataclass(frozen=True)
class Route:
    """How one of our fields reaches a server: its name there, where it goes, and a value conversion."""

    name: str
    via: str = TOP_LEVEL
    convert: str = "same"

    def __post_init__(self):
        assert self.via in VIA, self.via
        assert self.convert in CONVERTERS, self.convert


@dataclass(frozen=True)
class ServerKind:
    """One server kind: its routes and what it does with ``n``, log-probabilities, token prompts and seeds."""

    name: str
    routes: Mapping[str, Route]
    n: bool  # honours n (several choices in one request)
    logprobs: bool  # returns log-probabilities of the generated tokens
    token_prompts: bool  # /v1/completions accepts a list of token ids as the prompt
    seeds_per_request: bool  # False: a seed sets a process-wide generator, so requests must not overlap
    strategies: frozenset[str] = frozenset({"greedy", "sample"})
    always: frozenset[str] = frozenset({"temperature", "top_p", "max_new_tokens"})  # sent even when neutral
    notes: Mapping[str, str] = field(default_factory=dict)  # why a field is refused, where it is not obvious
    max_stops: int | None = None  # most stop strings a request may carry

    @property
    def uses_generation_config(self) -> bool:
        return any(r.via == GENERATION_CONFIG for r in self.routes.values())


def _routes(via: str, *names: str, **renamed: str) -> dict[str, Route]:
    """Routes of one kind of sending: ``names`` keep our name, ``renamed`` map ours to the server's."""
    return {n: Route(n, via) for n in names} | {ours: Route(theirs, via) for ours, theirs in renamed.items()}


_OPENAI_CORE = _routes(
    TOP_LEVEL, "temperature", "top_p", "seed", "presence_penalty", "frequency_penalty", max_new_tokens="max_tokens"
)

SERVER_KINDS: dict[str, ServerKind] = {
    kind.name: kind
    for kind in (
        # OpenAI's own API (and servers that implement exactly its schema)
        ServerKind(
            "openai-standard",
            _OPENAI_CORE,
            n=True,
            logprobs=True,
            token_prompts=False,
            seeds_per_request=True,
            max_stops=4,
        ),
        # vLLM: sampling extras are top-level keys outside the schema; prompts may be token ids
        ServerKind(
            "vllm",
            _OPENAI_CORE
            | _routes(EXTRA_BODY, "top_k", "min_p", "repetition_penalty", min_new_tokens="min_tokens")
            | {"avoid_words": Route("bad_words", EXTRA_BODY, "list")},
            n=True,
            logprobs=True,
            token_prompts=True,
            seeds_per_request=True,
        ),
        # transformers serve 5.x: temperature/top_p/seed/max_tokens top-level, the rest in generation_config
        ServerKind(
            "transformers-serve",
            _routes(TOP_LEVEL, "temperature", "top_p", "seed", max_new_tokens="max_tokens")
            | _routes(
                GENERATION_CONFIG,
                "top_k",
                "min_p",
                "typical_p",
                "epsilon_cutoff",
                "eta_cutoff",
                "top_h",
                "repetition_penalty",
                "no_repeat_ngram_size",
                "min_new_tokens",
                "num_beams",
                "length_penalty",
                "early_stopping",
            ),
            n=False,
            logprobs=False,
            token_prompts=False,
            seeds_per_request=False,
            strategies=frozenset({"greedy", "sample", "beam"}),
            always=frozenset({"temperature", "top_p", "max_new_tokens", "top_k", "repetition_penalty"}),
            notes={
                "frequency_penalty": "turns it into repetition_penalty = 1 + value, not OpenAI's additive penalty; "
                "use repetition_penalty",
                "presence_penalty": "logs and ignores it",
            },
        ),
        # llama.cpp's server: its native samplers (DRY, XTC, mirostat) are accepted by /v1/completions too
        ServerKind(
            "llama.cpp",
            _OPENAI_CORE
            | _routes(
                EXTRA_BODY,
                "top_k",
                "min_p",
                "typical_p",
                "dry_multiplier",
                "dry_base",
                "dry_allowed_length",
                "xtc_threshold",
                "xtc_probability",
                "mirostat_tau",
                "mirostat_eta",
                repetition_penalty="repeat_penalty",
                mirostat_mode="mirostat",
            )
            | {
                "dry_sequence_breakers": Route("dry_sequence_breakers", EXTRA_BODY, "list"),
                "temperature_last": Route("samplers", EXTRA_BODY, "temperature_last_order"),
            },
            n=False,
            logprobs=True,
            token_prompts=True,
            seeds_per_request=True,
            notes={
                "dynamic_temperature": "takes dynamic temperature as a range around temperature "
                "(dynatemp_range), which is not mapped",
            },
        ),
        # Hugging Face TGI's OpenAI-compatible API: no top_k/min_p there, and its Messages API ignores n
        ServerKind(
            "tgi",
            _OPENAI_CORE | _routes(EXTRA_BODY, "repetition_penalty"),
            n=False,
            logprobs=True,
            token_prompts=False,
            seeds_per_request=True,
        ),
    )  # fmt: skip
}


@dataclass
class RequestPlan:
    """The sampling part of one request: keys by where they go, and the fields that were not sent."""

    top_level: dict[str, Any] = field(default_factory=dict)
    extra_body: dict[str, Any] = field(default_factory=dict)
    generation_config: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def body(self) -> dict[str, Any]:
        """The JSON body's sampling keys (``generation_config`` as the JSON string the server parses)."""
        out = dict(self.top_level) | dict(self.extra_body)
        if self.generation_config:
            out["generation_config"] = json.dumps(self.generation_config, sort_keys=True)
        return out


def sent_fields(settings: SamplingSettings, kind: ServerKind) -> dict[str, Any]:
    """The fields a request must carry: active ones, plus the kind's ``always`` fields the strategy uses.

    What a field's neutral value and switch are comes from its FieldSpec (``chatbot.sampling``): DRY's base
    is not sent while DRY's multiplier is off, a penalty at 0 is not sent at all.
    """
    active = {}
    for name, value in settings.relevant_fields().items():  # the strategy's fields whose switch is on
        spec = FIELD[name]
        if name in STRUCTURAL or spec.group in CLIENT_GROUPS:
            continue
        if (name in kind.always and name in kind.routes) or not spec.is_neutral(value):
            active[name] = value
    return active


def _refusal(name: str, value: Any, kind: ServerKind) -> str:
    why = kind.notes.get(name, f"has no {name} (or an equivalent) in its API")
    return f"{name}={value!r} cannot be applied by a {kind.name} server: it {why}"


def plan_request(settings: SamplingSettings, kind: ServerKind, *, allow_unsupported: bool = False) -> RequestPlan:
    """Map ``settings`` onto ``kind``'s request fields; refuse what the server cannot apply as we mean it."""
    plan = RequestPlan()
    problems: list[str] = []
    if settings.strategy not in kind.strategies:
        problems.append(f"strategy={settings.strategy!r} cannot be applied by a {kind.name} server")
    if settings.strategy == "beam" and settings.num_candidates > 1 and not kind.n:
        problems.append(
            f"num_candidates={settings.num_candidates} with beam search: a {kind.name} server returns one "
            "beam per request, so every candidate would be the same; use num_candidates=1"
        )
    targets = {TOP_LEVEL: plan.top_level, EXTRA_BODY: plan.extra_body, GENERATION_CONFIG: plan.generation_config}
    for name, value in sent_fields(settings, kind).items():
        route = kind.routes.get(name)
        if route is None and TOLERATED.get(name, ...) == value:
            continue
        if route is None:
            problems.append(_refusal(name, value, kind))
            continue
        converted = CONVERTERS[route.convert](value)
        if converted is not None:
            targets[route.via][route.name] = converted
    if settings.strategy == "greedy":
        plan.top_level["temperature"] = 0.0  # every kind here decodes greedily at temperature 0
        plan.top_level.pop("top_p", None)
    if kind.uses_generation_config:
        plan.generation_config["do_sample"] = settings.strategy == "sample"
    if problems and not allow_unsupported:
        raise UnsupportedSettingError(
            "; ".join(problems) + ". Change the setting, pass --server-kind if the server was misdetected, "
            "or --allow-unsupported to send the request without it"
        )
    plan.warnings = [f"not applied: {p}" for p in problems]
    return plan
