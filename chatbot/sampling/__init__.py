"""Sampling settings: one validated, engine-neutral value for every decoding strategy and sampler, and presets.

API (imported by the CLI, the web app and the evaluator)::

    from chatbot.sampling import SamplingSettings, PRESETS, DEFAULT_PRESET, get_preset, load_presets, FIELDS

    s = get_preset("min-p")                       # greedy, beam-5, top-p (default), simple-1, min-p, dry, creative...
    s = s.replace(num_candidates=1, seed=7)       # a new, validated value
    s = s.adjust(strategy="greedy")               # a user's edit: also what the strategy implies (one candidate)
    s.identity                                    # canonical JSON of what differs from neutral: its name everywhere
    canonical_identity(stored)                    # an identity stored by any earlier version, in today's form
    model.generate(**inputs, **s.to_generation_kwargs(tokenizer, end_token_ids=stop_ids))
    presets = load_presets("my_presets.json")     # or a text-generation-webui preset .yaml, or a folder of them
    for spec in FIELDS: spec.label, spec.help, spec.group, spec.neutral, spec.low, spec.high, spec.step, ...
    chatbot.sampling.panel.sections(strategy)    # a UI's controls: grouped in the order samplers run, per strategy

Every field is declared once, on ``SamplingSettings`` (:mod:`chatbot.sampling.settings`), with a
:class:`FieldSpec`: type, default, neutral value, valid range, UI step, label, help, the strategies it
applies to, the UI group (``GROUPS``, in the order samplers run) and how it is applied (a ``generate``
keyword, a transformers warper, one of :mod:`chatbot.processors`, or the caller). Validation, the
flags of ``chatbot chat``, the app's controls, ``describe()``, grid casts and labels, identities and
the mapping to ``generate`` all read it, so a transformers sampler is one field, and a custom one is
one field plus one processor class.

The settings hold plain numbers and strings only, so another engine (an OpenAI-compatible or vLLM
server) can take the same fields; ``to_generation_kwargs`` is the one Hugging Face-specific adapter.
"""

from chatbot.sampling.fields import GROUPS, NO_NEUTRAL, SEED_MAX, STRATEGIES, FieldSpec, parse_words
from chatbot.sampling.flags import add_sampling_arguments, parse_assignment, settings_from_args
from chatbot.sampling.presets import (
    DEFAULT_PRESET,
    PRESET_DESCRIPTIONS,
    PRESETS,
    differences,
    get_preset,
    load_presets,
    parse_presets,
    parse_webui_preset,
    preset_name,
    save_preset,
    save_presets,
)
from chatbot.sampling.settings import (
    FIELD,
    FIELD_NAMES,
    FIELDS,
    NEUTRAL,
    SamplingSettings,
    canonical_identity,
    implied_values,
)

__all__ = [
    "DEFAULT_PRESET",
    "FIELD",
    "FIELDS",
    "FIELD_NAMES",
    "GROUPS",
    "NEUTRAL",
    "NO_NEUTRAL",
    "PRESETS",
    "PRESET_DESCRIPTIONS",
    "SEED_MAX",
    "STRATEGIES",
    "FieldSpec",
    "SamplingSettings",
    "add_sampling_arguments",
    "canonical_identity",
    "differences",
    "get_preset",
    "implied_values",
    "load_presets",
    "parse_assignment",
    "parse_presets",
    "parse_webui_preset",
    "parse_words",
    "preset_name",
    "save_preset",
    "save_presets",
    "settings_from_args",
]
