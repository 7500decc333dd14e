"""How each reply of an A/B pair was made, and which votes the ratings leave out (and why).

A reply shown under a setting is not always that setting's work: when every candidate fails the
reply filters the bot retries (greedy retries by sampling with top-p) and, failing that, shows a
canned fallback. Crediting such a reply to the setting would mislead, so every vote records the
provenance of both replies and the leaderboard leaves these votes out by default::

    provenance = reply_provenance(reply, settings)          # "own", "retry" or "fallback"
    reason = exclusion_reason("own", "fallback", identical=False)  # "fallback"
"""

from __future__ import annotations

from chatbot.filters import FilterSettings
from chatbot.replies import retry_settings
from chatbot.sampling import SamplingSettings

OWN, RETRY, FALLBACK, UNKNOWN = "own", "retry", "fallback", "unknown"
PROVENANCE_NOTES = {
    OWN: "the setting's own candidate",
    RETRY: "a retry under other settings (its own candidates failed the filters)",
    FALLBACK: "a canned fallback (every candidate failed the filters)",
    UNKNOWN: "not recorded (a vote from before replies recorded how they were made)",
}

# why a vote is left out of the ratings by default, most serious first
EXCLUSION_REASONS = {
    FALLBACK: "a reply was a canned fallback",
    RETRY: "a reply was a retry under other settings",
    "identical": "both replies were the same text",
}


def word_count(text: str) -> int:
    """Words as the length control counts them: whitespace-separated pieces."""
    return len(text.split())


def same_text(reply_a: str, reply_b: str) -> bool:
    """The two replies read the same: equal ignoring case and spacing."""
    return " ".join(reply_a.split()).casefold() == " ".join(reply_b.split()).casefold()


def _ranked(settings: SamplingSettings) -> str:
    # what decides one draw: no seed (the draw), no candidate count (how many draws) and, since one candidate is
    # not ranked, no ranking fields: a retry that draws and ranks more of the same sampler is its own work
    return settings.replace(seed=None, num_candidates=1).identity


def reply_provenance(reply, settings: SamplingSettings) -> str:
    """``own``, ``retry`` or ``fallback`` for a :class:`chatbot.replies.Reply` made under ``settings``.

    A retry counts as the setting's own work when it drew from the same distribution (a sampler's
    retry is a fresh draw of the same sampler); it is a ``retry`` when the retry changed the
    decoding (greedy retries with top-p sampling, beam search with more beams).
    """
    if reply.fallback:
        return FALLBACK
    chosen = reply.candidates[reply.chosen] if reply.chosen is not None else None
    if chosen is None or chosen.attempt <= 1:
        return OWN
    return OWN if _ranked(retry_settings(settings, 1)) == _ranked(settings) else RETRY


def stored_provenance(text: str, fallbacks=None) -> str:
    """The provenance a vote stored before provenance was recorded can still be given: ``fallback``
    when the text is one of the canned replies, otherwise ``unknown``."""
    if fallbacks is None:
        defaults = FilterSettings()
        fallbacks = (*defaults.fallback_replies, defaults.refuse_reply)
    return FALLBACK if any(same_text(text, f) for f in fallbacks) else UNKNOWN


def exclusion_reason(provenance_a: str, provenance_b: str, identical: bool) -> str | None:
    """The key of :data:`EXCLUSION_REASONS` that leaves a vote out of the ratings, or None: it counts."""
    for reason in (FALLBACK, RETRY):
        if reason in (provenance_a, provenance_b):
            return reason
    return "identical" if identical else None
