"""Command-line flags derived from the field metadata: ``--temperature``, ``--min-p``, ``--early-stopping/--no-...``."""

from __future__ import annotations

import argparse
from typing import Any

from chatbot.errors import SettingsError
from chatbot.sampling.fields import NO_NEUTRAL, STRATEGIES, FieldSpec
from chatbot.sampling.presets import DEFAULT_PRESET, PRESETS, get_preset, load_presets
from chatbot.sampling.settings import FIELD, FIELD_NAMES, FIELDS, SamplingSettings


def _caster(spec: FieldSpec):
    def cast(text: str):
        try:
            return spec.cast(text)
        except SettingsError as exc:  # argparse shows an ArgumentTypeError's message as it is
            raise argparse.ArgumentTypeError(str(exc)) from None

    cast.__name__ = spec.kind  # argparse names the type in some messages
    return cast


def flag_help(spec: FieldSpec) -> str:
    parts = [spec.help]
    if spec.numeric:
        parts.append(spec.range_text)
    if spec.numeric and spec.neutral not in (NO_NEUTRAL, None):
        parts.append(f"{spec.neutral:g} = off")
    if spec.strategies != STRATEGIES:
        parts.append(f"{'/'.join(spec.strategies)} only")
    return "; ".join(parts)


def add_sampling_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--preset``, ``--presets-file`` and one flag per sampling field (default: unset = preset's)."""
    group = parser.add_argument_group("sampling (a preset, then any field overridden by its flag)")
    group.add_argument(
        "--preset", default=None, help=f"named settings (default {DEFAULT_PRESET}); built-in: {', '.join(PRESETS)}"
    )
    group.add_argument(
        "--presets-file",
        default=None,
        help="extra presets: a JSON file {name: {field: value}}, a text-generation-webui preset .yaml "
        "(named by its file stem), or a folder of them",
    )
    for spec in FIELDS:
        kwargs: dict[str, Any] = {"dest": spec.name, "default": None, "help": flag_help(spec)}
        if spec.kind == "bool":
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = _caster(spec)
            if spec.choices:
                kwargs["choices"] = spec.choices
        group.add_argument(spec.flag, **kwargs)


def settings_from_args(args: argparse.Namespace) -> tuple[SamplingSettings, dict[str, SamplingSettings]]:
    """The preset named by ``--preset`` with every given field flag applied; also returns all presets."""
    presets = load_presets(getattr(args, "presets_file", None))
    base = get_preset(getattr(args, "preset", None) or DEFAULT_PRESET, presets)
    changes = {name: getattr(args, name) for name in FIELD_NAMES if getattr(args, name, None) is not None}
    return base.adjust(**changes), presets


def parse_assignment(text: str) -> tuple[str, Any]:
    """``"min-p=0.05"`` -> ``("min_p", 0.05)``, cast by the field's type (for /set-style commands)."""
    key, sep, value = text.partition("=")
    name = key.strip().replace("-", "_")
    if not sep or name not in FIELD:
        raise SettingsError(f"{text!r}: write field=value with a field from {', '.join(FIELD_NAMES)}")
    return name, FIELD[name].cast(value.strip())
