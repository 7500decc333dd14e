"""What a settings panel (the web app's, or any UI's) needs, as plain values: no widget library here::

    sections(strategy)                 # [(group label, [FieldSpec, ...]), ...] in the order samplers run
    settings_from_values(base, {"temperature": "0.9", "seed": ""})   # cast by each field's type, then adjusted
    differs_line(settings, "top-p", presets)  # 'top-p, changed: T 0.7 -> 1, min_p 0 -> 0.05'
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from chatbot.sampling.fields import GROUPS, FieldSpec, parse_words
from chatbot.sampling.settings import FIELD, FIELDS, SamplingSettings


def sections(strategy: str | None = None) -> list[tuple[str, list[FieldSpec]]]:
    """Fields grouped by GROUPS order (the order samplers run); with a strategy, only the fields it uses."""
    out = []
    for group, label in GROUPS.items():
        specs = [s for s in FIELDS if s.group == group and (strategy is None or s.applies_to(strategy))]
        if specs:
            out.append((label, specs))
    return out


def visible(spec: FieldSpec, strategy: str) -> bool:
    """Whether a panel shows the field's control for ``strategy`` (the strategy picker always shows)."""
    return spec.name == "strategy" or spec.applies_to(strategy)


def settings_from_values(base: SamplingSettings, values: Mapping[str, Any]) -> SamplingSettings:
    """``base`` with a panel's values (text or numbers, cast by each field's type) and what the strategy implies."""
    return base.adjust(**{name: FIELD[name].cast(value) for name, value in values.items()})


def control_value(spec: FieldSpec, value):
    """A value as a control shows it: word lists and the optional seed as text, the rest as they are.

    A word list is comma-separated while that reads back the same; otherwise (a newline, a comma or a
    quote in a word, as in DRY's sequence breakers) it is JSON items, which :func:`parse_words` also reads.
    """
    if spec.kind == "words":
        plain = ", ".join(value)
        return plain if parse_words(plain) == tuple(value) else ", ".join(json.dumps(w) for w in value)
    if spec.optional:
        return "" if value is None else str(value)
    return value


def differs_line(settings: SamplingSettings, preset: str, presets: Mapping[str, SamplingSettings]) -> str:
    """One line: the preset, and each field the panel changed from it (``old -> new``), as short labels."""
    base = presets.get(preset)
    if base is None:
        return f"custom settings ({settings.describe()})"
    mine, theirs = settings.relevant_fields(), base.to_dict()
    changed = [
        f"{_short_name(name)} {_show(theirs[name])} -> {_show(value)}"
        for name, value in mine.items()
        if value != theirs[name]
    ]
    return f"{preset}, changed: {', '.join(changed)}" if changed else f"{preset} (unchanged)"


def _short_name(name: str) -> str:
    # a template short label ("x{}" for num_candidates) says nothing without its value: use the field name
    short = FIELD[name].short
    return name if not short or "{}" in short else short


def _show(value) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return "|".join(value) or "none"
    return "none" if value is None else str(value)
