"""What a sampling field is: its type, default, neutral value, range, UI step, label, help and how it is applied.

A field is declared once, on :class:`chatbot.sampling.SamplingSettings`, with :func:`setting`. Everything
else reads the :class:`FieldSpec` it carries: validation (:meth:`FieldSpec.check`), casting text or
slider values (:meth:`FieldSpec.cast`), command-line flags, the web app's controls, ``describe()``,
grid labels, identities and the mapping to ``generate``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Container, Mapping
from dataclasses import dataclass
from typing import Any

from chatbot.errors import SettingsError

STRATEGIES = ("greedy", "beam", "sample")
KINDS = ("choice", "int", "float", "bool", "words")
APPLIED_BY = ("generate", "warper", "processor", "caller")
SEED_MAX = 2**63 - 1  # torch.manual_seed takes it, and it fits the vote store's signed 64-bit INTEGER column

# UI sections, in the order the samplers run (chatbot.processors.ORDER); "beam" and "output" are not samplers
GROUPS: dict[str, str] = {
    "decoding": "Decoding",
    "penalties": "Repetition penalties",
    "dry": "DRY (don't repeat yourself)",
    "keywords": "Keywords",
    "temperature": "Temperature",
    "truncation": "Truncation (top-k, top-p, min-p, ...)",
    "mirostat": "Mirostat",
    "xtc": "XTC (exclude top choices)",
    "beam": "Beam search",
    "output": "Reply length and candidates",
    "ranking": "Ranking (rerankers)",
}


class _NoNeutral:
    """Marker: the field always has an effect (max_new_tokens), so it is always part of an identity."""

    def __repr__(self) -> str:
        return "NO_NEUTRAL"


NO_NEUTRAL: Any = _NoNeutral()


@dataclass(frozen=True)
class FieldSpec:
    """One sampling field's metadata. ``name`` and ``default`` are filled in from the dataclass field."""

    kind: str  # one of KINDS
    label: str  # UI label
    help: str  # one sentence: what it does (flag help, UI info, docs)
    group: str  # one of GROUPS
    applied_by: str  # one of APPLIED_BY: a generate keyword, a transformers warper, one of our processors, or us
    neutral: Any = NO_NEUTRAL  # the value at which the field has no effect
    low: float | None = None  # valid range; None: unbounded
    high: float | None = None
    low_open: bool = False  # True: low itself is invalid (temperature > 0)
    high_open: bool = False
    choices: tuple = ()  # allowed values (strategy, mirostat_mode)
    optional: bool = False  # None is allowed (seed)
    step: float | None = None  # UI slider step
    ui_low: float | None = None  # UI slider range when it is narrower than (or the range is open at) low/high
    ui_high: float | None = None
    strategies: tuple[str, ...] = STRATEGIES  # the strategies it changes
    enabled_by: str | None = None  # another field that must be non-neutral for this one to act (dry_base)
    enabled_values: Container = ()  # ... or, when given, must hold one of these (reranker=mix; a range of counts)
    short: str = ""  # compact label in describe() and grid labels; "x{}" is a template; "" = the field name
    kwarg: str | None = None  # generate keyword (applied_by generate/warper); the value sent when neutral:
    kwarg_off: Any = NO_NEUTRAL  # ... NO_NEUTRAL = the neutral value itself
    fix: str = ""  # added to every error message about the field
    name: str = ""
    default: Any = None

    # -- reading values --------------------------------------------------------------------------

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def numeric(self) -> bool:
        return self.kind in ("int", "float") and not self.choices

    def is_neutral(self, value) -> bool:
        value = tuple(value) if isinstance(value, list) else value  # a word list read back from JSON
        return self.neutral is not NO_NEUTRAL and value == self.neutral

    def applies_to(self, strategy: str) -> bool:
        return strategy in self.strategies

    def kwarg_value(self, value):
        """What ``generate`` gets for ``value``: neutral values become the keyword's own "off" value."""
        if self.is_neutral(value) and self.kwarg_off is not NO_NEUTRAL:
            return self.kwarg_off
        return value

    def format(self, value) -> str:
        """``value`` as describe() and grid labels show it, e.g. ``T=0.7``, ``x4``, ``avoid=foo|bar``."""
        if isinstance(value, bool):
            text = "on" if value else "off"
        elif isinstance(value, float):
            text = f"{value:g}"
        elif isinstance(value, tuple):
            text = "|".join(json.dumps(v)[1:-1] for v in value)
        else:
            text = str(value)
        short = self.short or self.name
        return short.format(text) if "{}" in short else f"{short}={text}"

    # -- casting and checking ------------------------------------------------------------------

    def cast(self, value):
        """``value`` from text (a flag, a YAML/JSON file, a text box) or a slider, as this field's type."""
        if self.optional and (value is None or (isinstance(value, str) and value.strip().lower() in _NONE_WORDS)):
            return None
        try:
            return _CASTS[self.kind](self, value)
        except (TypeError, ValueError) as exc:
            raise self.error(value, f"expected {self.type_text} ({exc})") from None

    def check(self, value) -> None:
        """Raise a SettingsError naming the field and the fix when ``value`` is not allowed."""
        if value is None and self.optional:
            return
        if not _TYPE_OK[self.kind](value):
            raise self.error(value, f"expected {self.type_text}")
        if isinstance(value, float) and not math.isfinite(value):
            raise self.error(value, "must be a finite number")
        if self.choices and value not in self.choices:
            raise self.error(value, f"choose one of {', '.join(map(str, self.choices))}")
        if self.numeric and not self.in_range(value):
            raise self.error(value, f"must be {self.range_text}")
        if self.kind == "words" and not all(value):
            raise self.error(value, "every item must be non-empty text")

    def in_range(self, value) -> bool:
        above = self.low is None or (value > self.low if self.low_open else value >= self.low)
        below = self.high is None or (value < self.high if self.high_open else value <= self.high)
        return above and below

    @property
    def range_text(self) -> str:
        low, high = _number(self.low), _number(self.high)
        if self.low is not None and self.high is not None:
            return f"in {'(' if self.low_open else '['}{low}, {high}{')' if self.high_open else ']'}"
        if self.low is not None:
            return f"{'>' if self.low_open else '>='} {low}"
        return f"{'<' if self.high_open else '<='} {high}" if self.high is not None else "any number"

    @property
    def type_text(self) -> str:
        text = {
            "choice": "one of " + ", ".join(map(str, self.choices)),
            "int": "a whole number",
            "float": "a number",
            "bool": "true or false",
            "words": "a list of words",
        }[self.kind]
        return text + (" or none" if self.optional else "")

    def error(self, value, rule: str) -> SettingsError:
        hint = []
        if self.neutral is not NO_NEUTRAL and self.neutral not in (None, ()) and self.numeric:
            hint.append(f"{self.neutral:g} turns it off")
        if self.fix:
            hint.append(self.fix)
        return SettingsError(f"sampling setting {self.name}={value!r} is invalid: {'; '.join([rule, *hint])}")


_NONE_WORDS = ("", "none", "null", "random")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


_TYPE_OK = {
    "choice": lambda v: isinstance(v, str | int) and not isinstance(v, bool),
    "int": _is_int,
    "float": lambda v: isinstance(v, float) or _is_int(v),  # normalised to float by SamplingSettings
    "bool": lambda v: isinstance(v, bool),
    "words": lambda v: isinstance(v, tuple | list) and all(isinstance(w, str) for w in v),
}


def _cast_int(spec: FieldSpec, value) -> int:
    if isinstance(value, str):
        value = float(value.strip()) if any(c in value for c in ".eE") else int(value.strip())
    if isinstance(value, bool) or not float(value).is_integer():
        raise ValueError(f"{value!r} is not a whole number")
    return int(value)


def _cast_float(spec: FieldSpec, value) -> float:
    if isinstance(value, bool):
        raise ValueError("true/false is not a number")
    return float(value.strip() if isinstance(value, str) else value)


def _cast_bool(spec: FieldSpec, value) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise ValueError(f"{value!r} is neither true nor false")


def _cast_choice(spec: FieldSpec, value):
    if all(_is_int(c) for c in spec.choices):
        return _cast_int(spec, value)
    return str(value).strip()


def parse_words(text: str) -> tuple[str, ...]:
    """A list of words from text: a JSON list with or without brackets ('"\\n", ":"'), else comma-separated."""
    body = text.strip()
    if body.startswith(("[", '"')):
        items = json.loads(body if body.startswith("[") else f"[{body}]")
        if not all(isinstance(i, str) for i in items):
            raise ValueError("a list of quoted strings was expected")
        return tuple(items)
    return tuple(w.strip() for w in body.split(",") if w.strip())


def _cast_words(spec: FieldSpec, value) -> tuple[str, ...]:
    if isinstance(value, str):
        return parse_words(value)
    if isinstance(value, list | tuple) and all(isinstance(w, str) for w in value):
        return tuple(value)
    raise ValueError(f"{value!r} is not a list of words")


_CASTS = {"choice": _cast_choice, "int": _cast_int, "float": _cast_float, "bool": _cast_bool, "words": _cast_words}


def setting(default, **spec) -> Any:
    """A dataclass field carrying its :class:`FieldSpec` (``name`` and ``default`` are filled in later)."""
    return dataclasses.field(default=default, metadata={"spec": FieldSpec(**spec)})


def field_specs(cls) -> tuple[FieldSpec, ...]:
    """The FieldSpecs of a settings dataclass, in declaration order, with name and default filled in."""
    specs = []
    for f in dataclasses.fields(cls):
        spec = dataclasses.replace(f.metadata["spec"], name=f.name, default=f.default)
        assert spec.kind in KINDS and spec.group in GROUPS and spec.applied_by in APPLIED_BY, spec
        specs.append(spec)
    return tuple(specs)


def by_name(specs: tuple[FieldSpec, ...]) -> Mapping[str, FieldSpec]:
    return {s.name: s for s in specs}


def _number(value: float | int | None) -> str:
    """A bound as a person reads it: integers whole (a seed's 9223372036854775807, not 9.22337e+18)."""
    if value is None:
        return ""
    return str(value) if isinstance(value, int) else f"{value:g}"
