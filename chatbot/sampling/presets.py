"""Named sampling presets: the built-ins, and users' files (our JSON, text-generation-webui's preset YAML)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from chatbot.errors import SettingsError
from chatbot.sampling.fields import NO_NEUTRAL
from chatbot.sampling.settings import FIELD, FIELDS, SamplingSettings

logger = logging.getLogger(__name__)

DEFAULT_PRESET = "top-p"

PRESETS: dict[str, SamplingSettings] = {
    "greedy": SamplingSettings(strategy="greedy", num_candidates=1),
    "beam-5": SamplingSettings(strategy="beam", num_beams=5, num_candidates=5, no_repeat_ngram_size=3),
    "top-p": SamplingSettings(strategy="sample", temperature=0.7, top_p=0.9, reranker="coherence"),
    "diverse": SamplingSettings(strategy="sample", temperature=1.2, top_p=0.95),
    "top-k": SamplingSettings(strategy="sample", temperature=0.8, top_k=40, top_p=1.0),
    # top-p's reranker too (it ranks nothing with one candidate), so a top-p panel set to 1 candidate is this preset
    "top-p-stream": SamplingSettings(
        strategy="sample", temperature=0.7, top_p=0.9, num_candidates=1, reranker="coherence"
    ),
    "simple-1": SamplingSettings(temperature=0.7, top_p=0.9, top_k=20, repetition_penalty=1.15),
    "min-p": SamplingSettings(temperature=1.0, top_p=1.0, min_p=0.05),
    "dry": SamplingSettings(temperature=0.7, top_p=0.9, dry_multiplier=0.8, dry_base=1.75, dry_allowed_length=2),
    "creative": SamplingSettings(temperature=1.0, top_p=1.0, min_p=0.02, xtc_threshold=0.1, xtc_probability=0.5),
}

# where each built-in comes from (shown next to the preset in the app and in `chatbot chat --help`)
PRESET_DESCRIPTIONS: dict[str, str] = {
    "greedy": "Argmax decoding: one deterministic reply.",
    "beam-5": "Beam search over 5 beams, all 5 filtered and ranked; a 3-gram block, since beam search on a small "
    "model loops without one.",
    "top-p": "TransferTransfo's settings (Wolf et al. 2019, interact.py): temperature 0.7, top-p 0.9; its 4 "
    "candidates ranked by MiniLM coherence with your message, which beat mean log-probability on 300 chitchat test "
    "contexts (unigram F1 0.127 vs 0.110, Dist-2 0.502 vs 0.388).",
    "diverse": "Hotter nucleus sampling (temperature 1.2, top-p 0.95) for more varied replies.",
    "top-k": "Top-k 40 at temperature 0.8, as in the GPT-2 paper's story samples (Radford et al. 2019).",
    "top-p-stream": "top-p with one candidate, so the reply streams word by word.",
    "simple-1": "text-generation-webui's simple-1, the winner of its 2023 Preset Arena (oobabooga, 'Preset Arena' "
    "results, 2023): temperature 0.7, top-p 0.9, top-k 20, repetition penalty 1.15.",
    "min-p": "text-generation-webui's min_p preset: min-p 0.05 and nothing else (Nguyen et al. 2024, 'Turning Up the "
    "Heat: Min-p Sampling', suggest 0.05-0.1).",
    "dry": "top-p plus DRY at its author's recommended values (p-e-w, text-generation-webui PR #5677): multiplier "
    "0.8, base 1.75, allowed length 2.",
    "creative": "text-generation-webui's Creative preset: min-p 0.02 and XTC with probability 0.5 (p-e-w's "
    "recommended threshold 0.1).",
}
assert set(PRESET_DESCRIPTIONS) == set(PRESETS)

PRESET_SUFFIXES = (".json", ".yaml", ".yml")
# text-generation-webui shows these two in units of 1e-4 (modules/text_generation.py multiplies by 1e-4)
_WEBUI_SCALE = {"epsilon_cutoff": 1e-4, "eta_cutoff": 1e-4}


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


def differences(settings: SamplingSettings, preset: SamplingSettings) -> dict[str, tuple[Any, Any]]:
    """{field: (preset's value, this value)} for every field that differs, in field order."""
    mine, theirs = settings.to_dict(), preset.to_dict()
    return {s.name: (theirs[s.name], mine[s.name]) for s in FIELDS if mine[s.name] != theirs[s.name]}


def parse_presets(data: Any, source: str = "presets") -> dict[str, SamplingSettings]:
    """User presets: ``{"name": {"base": "top-p", "description": "...", field: value, ...}}``.

    ``base`` defaults to the field defaults; ``description`` is a note for people and is not a setting.
    """
    if not isinstance(data, dict):
        raise SettingsError(f"{source}: expected a JSON object of preset name -> settings")
    out: dict[str, SamplingSettings] = {}
    for name, spec in data.items():
        if not isinstance(spec, dict):
            raise SettingsError(f"{source}: preset {name!r} must be a JSON object of settings")
        spec = {k: v for k, v in spec.items() if k != "description"}
        base_name = spec.pop("base", None)
        base = get_preset(base_name, PRESETS | out) if base_name else None
        try:
            out[name] = _not_builtin(name, SamplingSettings.from_dict(spec, base=base), source)
        except SettingsError as exc:
            raise SettingsError(f"{source}: preset {name!r}: {exc}") from exc
    return out


def _not_builtin(name: str, settings: SamplingSettings, source: str) -> SamplingSettings:
    # a built-in name must mean one thing in the app, the CLI and every evaluation report
    if name in PRESETS and PRESETS[name].identity != settings.identity:
        raise SettingsError(f"{source}: preset {name!r} redefines a built-in preset with other values; rename it")
    return settings


def webui_base() -> SamplingSettings:
    """text-generation-webui's starting point: every sampler neutral; reply length and candidates ours."""
    samplers = {s.name: s.neutral for s in FIELDS if s.neutral is not NO_NEUTRAL and s.group not in _NOT_SAMPLERS}
    return SamplingSettings().replace(**samplers)


_NOT_SAMPLERS = ("decoding", "output", "beam")


def parse_webui_preset(data: Any, source: str) -> SamplingSettings:
    """One text-generation-webui preset (its ``presets/NAME.yaml``) as settings; unknown keys get one warning."""
    if data is None:
        data = {}  # an empty file is webui's "Null preset"
    if not isinstance(data, dict):
        raise SettingsError(f"{source}: expected a YAML mapping of sampler name -> value")
    changes: dict[str, Any] = {}
    if data.get("do_sample") is False:
        changes |= {"strategy": "greedy", "num_candidates": 1}
    known = {k: v for k, v in data.items() if k in FIELD}
    unknown = sorted(k for k in data if k not in FIELD and k != "do_sample")
    if unknown:
        logger.warning("%s: ignored settings this chatbot does not have: %s", source, ", ".join(map(str, unknown)))
    for name, value in known.items():
        value = FIELD[name].cast(value)
        changes[name] = value * _WEBUI_SCALE[name] if name in _WEBUI_SCALE else value
    try:
        return webui_base().adjust(**changes)
    except SettingsError as exc:
        raise SettingsError(f"{source}: {exc}") from exc


def _read_text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except FileNotFoundError as exc:
        raise SettingsError(f"{path}: presets file not found") from exc
    except UnicodeDecodeError as exc:
        byte = exc.object[exc.start]
        raise SettingsError(
            f"{path}: presets file is not UTF-8 text (byte 0x{byte:02x} at offset {exc.start}); save it as UTF-8"
        ) from None


def _load_file(path: Path) -> dict[str, SamplingSettings]:
    text = _read_text(path)
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise SettingsError(f"{path}: presets file is not valid YAML ({str(exc).splitlines()[0]})") from exc
        return {path.stem: _not_builtin(path.stem, parse_webui_preset(data, str(path)), str(path))}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SettingsError(f"{path}: presets file is not valid JSON ({exc})") from exc
    return parse_presets(data, source=str(path))


def load_presets(path: str | os.PathLike | None = None) -> dict[str, SamplingSettings]:
    """The built-in presets plus a user's: a JSON file, a text-generation-webui .yaml, or a folder of them."""
    if path is None:
        return dict(PRESETS)
    path = Path(path).expanduser()
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in PRESET_SUFFIXES) if path.is_dir() else [path]
    presets = dict(PRESETS)
    for file in files:
        presets |= _load_file(file)
    return presets


def save_presets(presets: dict[str, SamplingSettings], path: str | os.PathLike) -> Path:
    """Write presets in the JSON format ``load_presets`` reads (built-in names are skipped)."""
    data = {name: s.to_dict() for name, s in presets.items() if name not in PRESETS}
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(path)  # a crash mid-write leaves the old file, not half a file
    return path


def save_preset(name: str, settings: SamplingSettings, path: str | os.PathLike) -> Path:
    """Add (or overwrite) one user preset in a JSON presets file, keeping the others."""
    name = name.strip()
    if not name:
        raise SettingsError("a preset needs a name")
    if name in PRESETS:
        raise SettingsError(f"{name!r} is a built-in preset; pick another name")
    path = Path(path)
    presets = load_presets(path) if path.is_file() else {}
    return save_presets({**presets, name: settings}, path)
