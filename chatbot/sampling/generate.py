"""The mapping from SamplingSettings to transformers' ``generate`` keywords, read from the field metadata.

Fields applied by ``generate`` or a transformers warper become keywords (neutral values as the keyword's
own "off" value, so the model's ``generation_config`` cannot slip in a sampler of its own). When any of our
processors is active (:mod:`chatbot.processors`: presence/frequency penalties, DRY, XTC, dynamic temperature,
mirostat, temperature_last), transformers could only run them before its own warpers, which is wrong for
XTC, mirostat and temperature_last. Then the whole list is built by ``build_processor_list``, in
text-generation-webui's order, and generate's own samplers are kept neutral.
"""

from __future__ import annotations

from typing import Any

from chatbot.sampling.settings import FIELDS, SamplingSettings


def uses_processor_list(settings: SamplingSettings) -> bool:
    """Whether a field applied by one of our processors is active and not neutral."""
    active = settings.identity_fields()
    return any(s.applied_by == "processor" and s.name in active for s in FIELDS)


def bad_words_ids(tokenizer, words) -> list[list[int]]:
    """Token sequences of each word as it starts a reply and mid-sentence, lower-case and capitalised."""
    variants = {v for w in words for base in (w.strip(), w.strip().capitalize()) for v in (base, " " + base)}
    sequences = {tuple(tokenizer.encode(v, add_special_tokens=False)) for v in variants if v.strip()}
    return [list(s) for s in sorted(sequences) if s]


def generation_kwargs(settings: SamplingSettings, tokenizer=None, end_token_ids=()) -> dict[str, Any]:
    """Keyword arguments for ``model.generate`` (the seed is the caller's: it seeds torch's generator).

    ``tokenizer`` maps avoid_words and DRY's sequence breakers to token ids; ``end_token_ids`` are the
    tokens XTC never removes (end-of-turn, end-of-text).
    """
    kwargs: dict[str, Any] = {"do_sample": settings.do_sample, "num_beams": 1}
    for spec in FIELDS:
        if spec.kwarg and spec.applied_by in ("generate", "warper") and settings.is_active(spec):
            kwargs[spec.kwarg] = spec.kwarg_value(getattr(settings, spec.name))
    words = kwargs.pop("bad_words_ids", ())
    if words:
        if tokenizer is None:
            raise ValueError("avoid_words needs the tokenizer to find the words' tokens; pass tokenizer=")
        kwargs["bad_words_ids"] = bad_words_ids(tokenizer, words)
    if uses_processor_list(settings):
        kwargs |= _processor_list_kwargs(settings, tokenizer, end_token_ids)
    return kwargs


def _processor_list_kwargs(settings: SamplingSettings, tokenizer, end_token_ids) -> dict[str, Any]:
    from chatbot.processors import NEUTRAL_GENERATE_KWARGS, build_processor_list

    # the list holds every sampler and the repetition penalty: generate must add none of its own
    neutral = NEUTRAL_GENERATE_KWARGS if settings.do_sample else {"repetition_penalty": 1.0}
    processors = build_processor_list(
        settings.identity_fields(), tokenizer=tokenizer, seed=settings.seed, end_token_ids=end_token_ids
    )
    return {**neutral, "logits_processor": processors}
