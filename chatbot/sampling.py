"""Sampling settings: one validated, engine-neutral value for every decoding strategy, and named presets.

API (imported by the CLI, the web app and the evaluator)::

    from chatbot.sampling import SamplingSettings, PRESETS, DEFAULT_PRESET, get_preset, load_presets

    s = get_preset("top-p")                      # greedy, beam-5, top-p (default), diverse, top-k, ...
    s = s.replace(num_candidates=1, seed=7)      # a new, validated value
    s.identity                                   # canonical JSON: the name of this setting everywhere
    SamplingSettings.from_json(s.to_json()) == s
    model.generate(**inputs, **s.to_generation_kwargs())   # Hugging Face transformers
    presets = load_presets("my_presets.json")    # built-ins plus the user's, {"name": {field: value}}

The settings hold plain numbers and strings only, so another engine (an OpenAI-compatible or vLLM
server) can take the same fields; ``to_generation_kwargs`` is the one Hugging Face-specific adapter.
``add_sampling_arguments``/``settings_from_args`` derive command-line flags from the fields, so the
CLI, the app and the evaluator never declare a sampling flag twice.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from chatbot.errors import SettingsError

logger = logging.getLogger(__name__)

STRATEGIES = ("greedy", "beam", "sample")


@dataclass(frozen=True)
class SamplingSettings:
    """How a reply is decoded. Frozen: change it with ``replace`` so every value is validated."""

    strategy: str = field(
        default="sample",
        metadata={"help": "greedy (argmax), beam (beam search) or sample (temperature / top-k / top-p)"},
    )
    temperature: float = field(default=0.7, metadata={"help": "sample: divide logits by this (> 0)"})
    top_k: int = field(default=0, metadata={"help": "sample: keep the k most likely tokens (0 = off)"})
    top_p: float = field(default=0.9, metadata={"help": "sample: nucleus mass in (0, 1] (1 = off)"})
    num_beams: int = field(default=5, metadata={"help": "beam: beams searched (>= num_candidates)"})
    length_penalty: float = field(
        default=1.0, metadata={"help": "beam: score = logprob / length**length_penalty (> 0 favours longer)"}
    )
    early_stopping: bool = field(default=True, metadata={"help": "beam: stop when num_beams finished replies exist"})
    repetition_penalty: float = field(
        default=1.0, metadata={"help": "divide logits of tokens already in the input/reply (1 = off, > 0)"}
    )
    no_repeat_ngram_size: int = field(
        default=0, metadata={"help": "forbid repeating any n-gram of this size (0 = off)"}
    )
    min_new_tokens: int = field(default=1, metadata={"help": "tokens generated before end-of-turn is allowed"})
    max_new_tokens: int = field(default=40, metadata={"help": "most tokens in one reply"})
    num_candidates: int = field(
        default=4, metadata={"help": "replies generated in one batch, filtered and ranked (1 = stream)"}
    )
    seed: int | None = field(default=None, metadata={"help": "random seed for reproducible replies (none = random)"})

    def __post_init__(self):
        _validate(self)

    # -- values derived from the fields -------------------------------------------------------

    @property
    def do_sample(self) -> bool:
        return self.strategy == "sample"

    def relevant_fields(self) -> dict[str, Any]:
        """The fields that change what this strategy does (others are ignored by it)."""
        ignored = set(_BEAM_FIELDS | _SAMPLE_FIELDS)
        if self.strategy == "sample":
            ignored -= _SAMPLE_FIELDS
        else:
            ignored.add("seed")  # greedy decoding and beam search draw no random numbers
            if self.strategy == "beam":
                ignored -= _BEAM_FIELDS
        return {k: v for k, v in self.to_dict().items() if k not in ignored}

    @property
    def identity(self) -> str:
        """Canonical JSON of the fields that matter: equal identities decode the same way.

        Fields the strategy ignores are left out (greedy at temperature 0.7 and at 1.2 is the same
        setting), keys are sorted and floats normalised, so the CLI, the app and the evaluation
        name one setting with one string.
        """
        return json.dumps(self.relevant_fields(), sort_keys=True, separators=(",", ":"))

    def describe(self) -> str:
        """A short human-readable summary, e.g. ``sample T=0.7 top_p=0.9 x4``."""
        if self.strategy == "greedy":
            text = "greedy"
        elif self.strategy == "beam":
            text = f"beam {self.num_beams} lp={self.length_penalty:g}"
        else:
            text = f"sample T={self.temperature:g}"
            text += f" top_k={self.top_k}" if self.top_k else ""
            text += f" top_p={self.top_p:g}" if self.top_p < 1 else ""
        if self.repetition_penalty != 1:
            text += f" rep={self.repetition_penalty:g}"
        if self.no_repeat_ngram_size:
            text += f" no_repeat={self.no_repeat_ngram_size}"
        text += f" max={self.max_new_tokens} x{self.num_candidates}"
        return text + (f" seed={self.seed}" if self.seed is not None and self.do_sample else "")

    # -- conversion ----------------------------------------------------------------------------

    def replace(self, **changes) -> SamplingSettings:
        unknown = set(changes) - set(FIELD_NAMES)
        if unknown:
            raise SettingsError(f"unknown sampling setting(s) {sorted(unknown)}; known: {', '.join(FIELD_NAMES)}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}

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

    def to_generation_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for transformers' ``model.generate`` (the seed is the caller's: it is no kwarg)."""
        kwargs: dict[str, Any] = {
            "do_sample": self.do_sample,
            "num_beams": self.num_beams if self.strategy == "beam" else 1,
            "num_return_sequences": self.num_candidates,
            "max_new_tokens": self.max_new_tokens,
            "min_new_tokens": self.min_new_tokens,
            "repetition_penalty": self.repetition_penalty,
            "no_repeat_ngram_size": self.no_repeat_ngram_size,
        }
        if self.strategy == "sample":
            # top_k=0 disables the filter in transformers; the model's own generation_config may set 50
            kwargs |= {"temperature": self.temperature, "top_k": self.top_k, "top_p": self.top_p}
        if self.strategy == "beam":
            kwargs |= {"length_penalty": self.length_penalty, "early_stopping": self.early_stopping}
        return kwargs


FIELD_NAMES = tuple(f.name for f in fields(SamplingSettings))
_BEAM_FIELDS = frozenset({"num_beams", "length_penalty", "early_stopping"})
_SAMPLE_FIELDS = frozenset({"temperature", "top_k", "top_p"})


def _plain(value):
    # 0.70000001 and 0.7 must not give two identities; ints stay ints
    return round(value, 6) if isinstance(value, float) else value


def _fail(name: str, value, rule: str) -> SettingsError:
    return SettingsError(f"sampling setting {name}={value!r} is invalid: {rule}")


def _check_types(s: SamplingSettings) -> None:
    for f in fields(s):
        value = getattr(s, f.name)
        is_int = isinstance(value, int) and not isinstance(value, bool)
        ok = {
            "str": isinstance(value, str),
            "bool": isinstance(value, bool),
            "int": is_int,
            "int | None": value is None or is_int,
            "float": is_int or isinstance(value, float),  # floats accept ints (temperature 1)
        }[f.type]
        if not ok:
            raise _fail(f.name, value, f"expected {f.type}")
        if isinstance(value, float) and not math.isfinite(value):
            raise _fail(f.name, value, "must be a finite number")


def _validate(s: SamplingSettings) -> None:
    """Reject impossible values with a message naming the setting and the fix."""
    _check_types(s)
    if s.strategy not in STRATEGIES:
        raise _fail("strategy", s.strategy, f"choose one of {', '.join(STRATEGIES)}")
    if s.temperature <= 0:
        raise _fail("temperature", s.temperature, "must be > 0; use strategy=greedy for argmax decoding")
    if not 0 < s.top_p <= 1:
        raise _fail("top_p", s.top_p, "must be in (0, 1]; 1 turns nucleus filtering off")
    if s.top_k < 0:
        raise _fail("top_k", s.top_k, "must be >= 0; 0 turns top-k filtering off")
    if s.num_beams < 1:
        raise _fail("num_beams", s.num_beams, "must be >= 1")
    if s.repetition_penalty <= 0:
        raise _fail("repetition_penalty", s.repetition_penalty, "must be > 0; 1 turns it off")
    if s.no_repeat_ngram_size < 0:
        raise _fail("no_repeat_ngram_size", s.no_repeat_ngram_size, "must be >= 0; 0 turns it off")
    if s.max_new_tokens < 1:
        raise _fail("max_new_tokens", s.max_new_tokens, "must be >= 1")
    if not 0 <= s.min_new_tokens <= s.max_new_tokens:
        raise _fail("min_new_tokens", s.min_new_tokens, f"must be in [0, max_new_tokens={s.max_new_tokens}]")
    if s.num_candidates < 1:
        raise _fail("num_candidates", s.num_candidates, "must be >= 1")
    if s.strategy == "greedy" and s.num_candidates != 1:
        raise _fail("num_candidates", s.num_candidates, "greedy decoding gives one reply; use 1, or strategy=sample")
    if s.strategy == "beam" and s.num_candidates > s.num_beams:
        raise _fail("num_candidates", s.num_candidates, f"beam search returns at most num_beams={s.num_beams}")
    if s.seed is not None and s.seed < 0:
        raise _fail("seed", s.seed, "must be >= 0 or none")


# -- presets ----------------------------------------------------------------------------------

DEFAULT_PRESET = "top-p"

PRESETS: dict[str, SamplingSettings] = {
    "greedy": SamplingSettings(strategy="greedy", num_candidates=1),
    # beams are natural candidates: all 5 are filtered and ranked. Beam search on a small model loops
    # without an n-gram block, hence no_repeat_ngram_size=3.
    "beam-5": SamplingSettings(strategy="beam", num_beams=5, num_candidates=5, no_repeat_ngram_size=3),
    # TransferTransfo's defaults (Wolf et al. 2019, interact.py): top_p 0.9, temperature 0.7
    "top-p": SamplingSettings(strategy="sample", temperature=0.7, top_p=0.9),
    "diverse": SamplingSettings(strategy="sample", temperature=1.2, top_p=0.95),
    # GPT-2 paper's story samples used top-k 40
    "top-k": SamplingSettings(strategy="sample", temperature=0.8, top_k=40, top_p=1.0),
    # one candidate, so the reply streams word by word in the terminal and the app
    "top-p-stream": SamplingSettings(strategy="sample", temperature=0.7, top_p=0.9, num_candidates=1),
}


def get_preset(name: str, presets: dict[str, SamplingSettings] | None = None) -> SamplingSettings:
    presets = PRESETS if presets is None else presets
    if name not in presets:
        raise SettingsError(f"unknown preset {name!r}; choose one of {', '.join(presets)}")
    return presets[name]


def preset_name(settings: SamplingSettings, presets: dict[str, SamplingSettings] | None = None) -> str | None:
    """The name of the preset with the same identity, if any (for display)."""
    for name, preset in (PRESETS if presets is None else presets).items():
        if preset.identity == settings.identity:
            return name
    return None


def parse_presets(data: Any, source: str = "presets") -> dict[str, SamplingSettings]:
    """User presets: ``{"name": {"base": "top-p", field: value, ...}}``; ``base`` defaults to the field defaults."""
    if not isinstance(data, dict):
        raise SettingsError(f"{source}: expected a JSON object of preset name -> settings")
    out: dict[str, SamplingSettings] = {}
    for name, spec in data.items():
        if name in PRESETS:
            # a built-in name must mean one thing in the app, the CLI and every evaluation report
            raise SettingsError(f"{source}: preset {name!r} redefines a built-in preset; pick another name")
        if not isinstance(spec, dict):
            raise SettingsError(f"{source}: preset {name!r} must be a JSON object of settings")
        spec = dict(spec)
        base_name = spec.pop("base", None)
        base = get_preset(base_name, PRESETS | out) if base_name else None
        try:
            out[name] = SamplingSettings.from_dict(spec, base=base)
        except SettingsError as exc:
            raise SettingsError(f"{source}: preset {name!r}: {exc}") from exc
    return out


def load_presets(path: str | os.PathLike | None = None) -> dict[str, SamplingSettings]:
    """The built-in presets plus those of a user's JSON file (None: built-ins only)."""
    if path is None:
        return dict(PRESETS)
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise SettingsError(f"{path}: presets file not found") from exc
    except json.JSONDecodeError as exc:
        raise SettingsError(f"{path}: presets file is not valid JSON ({exc})") from exc
    return PRESETS | parse_presets(data, source=str(path))


def save_presets(presets: dict[str, SamplingSettings], path: str | os.PathLike) -> Path:
    """Write presets in the format ``load_presets`` reads (built-in names are skipped)."""
    data = {name: s.to_dict() for name, s in presets.items() if name not in PRESETS}
    path = Path(path)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


# -- command-line flags, derived from the fields ------------------------------------------------


def _flag_type(f: dataclasses.Field):
    if f.name == "seed":
        return int
    if f.name == "early_stopping":
        return lambda text: _parse_bool(f.name, text)
    return {"str": str, "int": int, "float": float}.get(str(f.type), str)


def _parse_bool(name: str, text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"--{name.replace('_', '-')} takes true or false, not {text!r}")


def add_sampling_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--preset``, ``--presets-file`` and one flag per sampling field (default: unset = preset's)."""
    group = parser.add_argument_group("sampling (a preset, then any field overridden by its flag)")
    group.add_argument(
        "--preset", default=None, help=f"named settings (default {DEFAULT_PRESET}); built-in: {', '.join(PRESETS)}"
    )
    group.add_argument("--presets-file", default=None, help="JSON file of extra presets {name: {field: value}}")
    for f in fields(SamplingSettings):
        kwargs: dict[str, Any] = {"default": None, "type": _flag_type(f), "help": f.metadata.get("help", "")}
        if f.name == "strategy":
            kwargs["choices"] = STRATEGIES
        group.add_argument("--" + f.name.replace("_", "-"), dest=f.name, **kwargs)


def settings_from_args(args: argparse.Namespace) -> tuple[SamplingSettings, dict[str, SamplingSettings]]:
    """The preset named by ``--preset`` with every given field flag applied; also returns all presets."""
    presets = load_presets(getattr(args, "presets_file", None))
    base = get_preset(getattr(args, "preset", None) or DEFAULT_PRESET, presets)
    changes = {name: getattr(args, name) for name in FIELD_NAMES if getattr(args, name, None) is not None}
    # switching to greedy from a multi-candidate preset: one candidate is implied, not an error
    if changes.get("strategy") == "greedy" and "num_candidates" not in changes:
        changes["num_candidates"] = 1
    if changes.get("strategy") == "beam" and "num_candidates" not in changes:
        changes["num_candidates"] = min(base.num_candidates, changes.get("num_beams", base.num_beams))
    return base.replace(**changes), presets
